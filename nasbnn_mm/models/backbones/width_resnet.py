"""Width-searchable binary ResNet-18.

"Searching for Accurate Binary Neural Architectures" (Shen et al., 2019,
https://arxiv.org/abs/1909.07378) binarizes ResNet-18 with DoReFa (eq. 1),
including the 1x1 downsample convolutions (unlike PCNN, sec. 3.2), keeps the
first and the last layer full precision, and searches the widths (eq. 2).
"""
from typing import List, Mapping, Optional, Sequence, Tuple

import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from nasbnn_mm.models.layers import DoReFaActivation, DoReFaConv2d
from nasbnn_mm.nas.width_inheritance import inherit_leading_channels
from nasbnn_mm.nas.width_space import RatiosType, parse_expand_ratios
from nasbnn_mm.registry import MODELS
from nasbnn_mm.utils import OptMultiConfig
from .width_vgg import parse_out_indices

__all__ = ['WidthBasicBlock', 'WidthResNet18']


class WidthBasicBlock(nn.Module):
    """ResNet basic block with its own middle width.

    ``act(BN(conv2(act(BN(conv1(x))))) + shortcut(x))``, where ``act`` is
    where ResNet has its ReLU. The shortcut is ``BN(conv1x1(x))`` with the
    block's stride when the stride is 2, else the identity, which needs
    ``C_in == C_out``.

    Args:
        in_channels (int): Input channels C_in.
        mid_channels (int): Output channels of ``conv1``.
        out_channels (int): Output channels C_out of ``conv2`` and of the
            shortcut.
        stride (int): Stride of ``conv1`` and of the downsample conv.
        conv (type): Class of the 3x3 and 1x1 convolutions.
        act (type): Class of the activation.

    Shape:
        - Input: (N, C_in, H, W).
        - Output: (N, C_out, H / stride, W / stride).
    """

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int,
                 stride: int, conv: type, act: type) -> None:
        super().__init__()
        self.conv1 = conv(
            in_channels, mid_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid_channels)
        self.act1 = act()
        self.conv2 = conv(mid_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.act2 = act()
        self.downsample = None
        if stride != 1:
            self.downsample = nn.Sequential(
                conv(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels))

    def forward(self, x: Tensor) -> Tensor:
        """Forward the block.

        Args:
            x (Tensor): (N, C_in, H, W).

        Returns:
            Tensor: (N, C_out, H / stride, W / stride).
        """
        identity = x if self.downsample is None else self.downsample(x)
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + identity)


def _layer_names(num_stages: int, blocks_per_stage: int) -> Tuple[str, ...]:
    """Per stage: the stage's output, then each block's middle width."""
    names: List[str] = []
    for i in range(1, num_stages + 1):
        names.append(f'stage{i}')
        names += [
            f'stage{i}.block{j}.mid' for j in range(1, blocks_per_stage + 1)
        ]
    return tuple(names)


@MODELS.register_module()
class WidthResNet18(BaseModule):
    """Binary ResNet-18 with searchable widths.

    ResNet-18 (He et al., 2016) with its ReLUs replaced by
    :class:`DoReFaActivation` and every convolution but the stem's a
    :class:`DoReFaConv2d` (``binary=True``), or the full-precision network
    (``binary=False``). The classifier stays full precision.

    Searchable layers. A residual addition forces the second convolution of
    every block of a stage, its downsample convolution and the stage's input
    (for stage 1, the stem) to share one width, so each stage has one
    "output" ratio, and each block one "middle" ratio for its first
    convolution: 12 ratios, ordered per stage as ``[stage, block 1 middle,
    block 2 middle]``::

        [s1 (= stem), b1.mid, b2.mid, s2, b3.mid, b4.mid,
         s3, b5.mid, b6.mid, s4, b7.mid, b8.mid]

    Widths are ``round(base * a)`` with base 64, 128, 256, 512 for stages
    1-4 and ``a`` in ``(0.25, 0.5, 1, 2, 3, 4)``. The downsample 1x1 conv of
    stages 2-4 maps the previous stage's width to the stage's width, so it
    follows those two ratios and is not searched by itself.

    Like MMPretrain's ``VGG``, a full-precision classifier (global average
    pooling and FC) is part of the backbone when ``num_classes > 0``; use it
    with ``ClsHead`` and no neck, or leave it out and use
    ``GlobalAveragePooling`` with ``LinearClsHead``.

    Args:
        expand_ratios (float | Sequence[float]): 12 ratios as above, or one
            for all (uniform). Defaults to 1.0.
        stem (str): ``'imagenet'``: 7x7 stride-2 conv and 3x3 stride-2
            max-pool (224x224 inputs); ``'cifar'``: 3x3 stride-1 conv, no
            pool (32x32 inputs). Defaults to ``'imagenet'``.
        binary (bool): Binarize all convolutions but the stem. Defaults to
            True.
        num_classes (int): Classes of the full-precision classifier; no
            classifier when ``<= 0``. Defaults to -1.
        out_indices (Sequence[int], optional): Outputs to return: stage
            indices 0-3, and 4 for the classifier's logits. Defaults to
            ``(4, )`` with a classifier, else ``(3, )``.
        init_cfg (dict | list[dict], optional): Initialization config.
            Defaults to Kaiming for convolutions, constant 1 for BN and
            normal (std 0.01) for the classifier.

    Example:
        >>> model = WidthResNet18(2, stem='cifar', out_indices=(0, 3))
        >>> [tuple(o.shape) for o in model(torch.rand(1, 3, 32, 32))]
        [(1, 128, 32, 32), (1, 1024, 4, 4)]
    """

    base_channels = (64, 128, 256, 512)
    blocks_per_stage = 2
    num_stages = 4
    # The searchable layers in the order of the ratios: 'stage1',
    # 'stage1.block1.mid', 'stage1.block2.mid', 'stage2', ...
    layer_names = _layer_names(num_stages, blocks_per_stage)
    stems = ('imagenet', 'cifar')

    def __init__(
        self,
        expand_ratios: RatiosType = 1.0,
        stem: str = 'imagenet',
        binary: bool = True,
        num_classes: int = -1,
        out_indices: Optional[Sequence[int]] = None,
        init_cfg: OptMultiConfig = [
            dict(type='Kaiming', layer=['Conv2d']),
            dict(type='Constant', val=1, layer=['_BatchNorm']),
            dict(type='Normal', std=0.01, layer=['Linear'])
        ]
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if stem not in self.stems:
            raise ValueError(f'stem: {stem!r} not in {self.stems}')
        self.expand_ratios = parse_expand_ratios(expand_ratios,
                                                 self.layer_names)
        self.stage_channels, self.mid_channels = self._widths(
            self.expand_ratios)
        self.stem_type = stem
        self.binary = binary
        self.num_classes = num_classes
        self.out_indices = parse_out_indices(out_indices, self.num_stages,
                                             num_classes)

        act = DoReFaActivation if binary else nn.ReLU
        width = self.stage_channels[0]
        if stem == 'imagenet':
            self.stem = nn.Sequential(
                nn.Conv2d(3, width, 7, 2, padding=3, bias=False),
                nn.BatchNorm2d(width), act(), nn.MaxPool2d(3, 2, padding=1))
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(3, width, 3, 1, padding=1, bias=False),
                nn.BatchNorm2d(width), act())

        conv = DoReFaConv2d if binary else nn.Conv2d
        self.stages = nn.ModuleList()
        for i, out_channels in enumerate(self.stage_channels):
            blocks = []
            for j in range(self.blocks_per_stage):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(
                    WidthBasicBlock(width, self.mid_channels[i][j],
                                    out_channels, stride, conv, act))
                width = out_channels
            self.stages.append(nn.Sequential(*blocks))
        if num_classes > 0:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Linear(width, num_classes)

    @classmethod
    def _widths(cls,
                ratios: Sequence[float]) -> Tuple[List[int], List[List[int]]]:
        """Stage widths and per-block middle widths from the 12 ratios."""
        step = 1 + cls.blocks_per_stage
        stage_channels, mid_channels = [], []
        for i, base in enumerate(cls.base_channels):
            group = ratios[i * step:(i + 1) * step]
            stage_channels.append(int(round(base * group[0])))
            mid_channels.append([int(round(base * a)) for a in group[1:]])
        return stage_channels, mid_channels

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Forward the stem, the stages and, if present, the classifier.

        Args:
            x (Tensor): Images, (N, 3, H, W).

        Returns:
            tuple[Tensor]: For each index in ``out_indices``, in increasing
            order: the output of stage i, (N, C_i, H / s_i, W / s_i) with
            ``s_i = 2^(i+2)`` for the ImageNet stem and ``2^i`` for the CIFAR
            stem, or for index 4 the logits (N, num_classes).
        """
        x = self.stem(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x)
        if self.num_stages in self.out_indices:
            outs.append(self.classifier(self.avgpool(x).flatten(1)))
        return tuple(outs)

    def inherit_from(self, wide_state_dict: Mapping[str, Tensor]) -> None:
        """Initialise from the leading channels of a wider ResNet-18.

        Args:
            wide_state_dict (Mapping[str, Tensor]): State dict of a
                :class:`WidthResNet18` at least as wide in every layer, with
                the same ``stem``, ``binary`` and ``num_classes`` (typically
                the uniform-4x network).
        """
        inherit_leading_channels(self, wide_state_dict)
