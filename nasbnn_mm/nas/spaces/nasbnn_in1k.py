# The NAS-BNN search space for ImageNet-1K: Table 1 of the paper
# (https://arxiv.org/abs/2408.15484). This file is the single source of these
# numbers: `SearchSpace.from_config('nasbnn_in1k')` reads it, and
# `configs/_base_/search_spaces/nasbnn_in1k.py` inherits it.
#
# Every list is a set of choices. The stem is an 8-bit 3x3 conv. A stage is a
# stack of `depth` separable layers: a binary k x k conv with `groups` that
# keeps its input width, then a binary 1x1 conv (groups 1) that sets the
# layer's output width `channels`. Only the first layer of a stage has
# `stride`. The classifier is a full-precision Linear after global pooling.
search_space = dict(
    input_size=224,
    in_channels=3,
    num_classes=1000,
    stem=dict(channels=[24, 32, 48], kernel_size=[3], groups=[1], stride=2),
    stages=[
        dict(
            depth=[2, 3],
            channels=[48, 64, 96],
            kernel_size=[3],
            groups=[1],
            stride=1),
        dict(
            depth=[2, 3],
            channels=[96, 128, 192],
            kernel_size=[3, 5],
            groups=[1, 2],
            stride=2),
        dict(
            depth=[2, 3],
            channels=[192, 256, 384],
            kernel_size=[3, 5],
            groups=[2, 4],
            stride=2),
        dict(
            depth=[8, 9],
            channels=[384, 512, 768],
            kernel_size=[3, 5],
            groups=[4, 8],
            stride=2),
        dict(
            depth=[2, 3],
            channels=[768, 1024, 1536],
            kernel_size=[3, 5],
            groups=[8, 16],
            stride=2),
    ])
