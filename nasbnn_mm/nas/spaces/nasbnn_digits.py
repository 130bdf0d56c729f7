# A tiny NAS-BNN-style search space for the embedded 32x32 digits set (RGB,
# 10 classes), small enough for a supernet to train in a few CPU minutes.
# Same layout as `nasbnn_in1k.py` (Table 1 of the paper): an 8-bit stem and
# stages of binary separable layers, feature maps 32 -> 16 -> 16 -> 8 -> 4.
# Every group choice divides every width that can enter its stage.
search_space = dict(
    input_size=32,
    in_channels=3,
    num_classes=10,
    stem=dict(channels=[8, 16], kernel_size=[3], groups=[1], stride=2),
    stages=[
        dict(
            depth=[1, 2],
            channels=[16, 24, 32],
            kernel_size=[3],
            groups=[1],
            stride=1),
        dict(
            depth=[1, 2],
            channels=[32, 48, 64],
            kernel_size=[3, 5],
            groups=[1, 2],
            stride=2),
        dict(
            depth=[1, 2],
            channels=[64, 96, 128],
            kernel_size=[3, 5],
            groups=[2, 4],
            stride=2),
    ])
