"""Width-searchable binary VGG-small for CIFAR-10.

"Searching for Accurate Binary Neural Architectures" (Shen et al., 2019,
https://arxiv.org/abs/1909.07378) binarizes VGG-small with DoReFa (eq. 1) and
searches one expansion ratio per layer (eq. 2). The first and the last layer
stay full precision. The ratios and the weight inheritance shared by the
width-search backbones live in :mod:`nasbnn_mm.nas.width_space` and
:mod:`nasbnn_mm.nas.width_inheritance`.
"""
from collections import OrderedDict
from typing import Mapping, Optional, Sequence, Tuple

import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from nasbnn_mm.models.layers import DoReFaActivation, DoReFaConv2d
from nasbnn_mm.nas.width_inheritance import inherit_leading_channels
from nasbnn_mm.nas.width_space import RatiosType, parse_expand_ratios
from nasbnn_mm.registry import MODELS
from nasbnn_mm.utils import OptMultiConfig

__all__ = ['WidthVGGSmall', 'parse_out_indices']


def parse_out_indices(out_indices: Optional[Sequence[int]], num_stages: int,
                      num_classes: int) -> Tuple[int, ...]:
    """Check the outputs of a backbone whose classifier is index num_stages.

    Args:
        out_indices (Sequence[int], optional): Stage indices in
            ``[0, num_stages)``, and ``num_stages`` for the logits when there
            is a classifier. None for the last output.
        num_stages (int): Number of stages.
        num_classes (int): Classes of the classifier; none when ``<= 0``.

    Returns:
        tuple[int]: The indices; ``(num_stages, )`` (the logits) or
        ``(num_stages - 1, )`` (the last stage) when ``out_indices`` is None.

    Raises:
        ValueError: If an index is out of range.
    """
    last = num_stages if num_classes > 0 else num_stages - 1
    if out_indices is None:
        return (last, )
    for index in out_indices:
        if not 0 <= index <= last:
            raise ValueError(f'out_indices: {index} not in 0..{last} '
                             f'(num_classes={num_classes})')
    return tuple(out_indices)


@MODELS.register_module()
class WidthVGGSmall(BaseModule):
    """Binary VGG-small with one expansion ratio per convolution.

    VGG-small (Cai et al., HWGQ, 2017) on 32x32 inputs::

        conv 128 - conv 128 - M - conv 256 - conv 256 - M
        - conv 512 - conv 512 - M - FC

    All convolutions are 3x3 with padding 1. Searchable layer ``i`` has
    ``round(base_i * a_i)`` output channels, ``base = (128, 128, 256, 256,
    512, 512)`` (the paper's; narrower bases scale the network down for tiny
    data) and ``a_i`` in ``(0.25, 0.5, 1, 2, 3, 4)``. Each stage is
    ``conv - [max-pool] - BN - act`` twice; the max-pool ends a stage. With
    ``binary=True`` the first convolution and the classifier are full
    precision, the other five convolutions are :class:`DoReFaConv2d` and
    ``act`` is :class:`DoReFaActivation`; ``binary=False`` gives the
    full-precision reference (``nn.Conv2d`` and ReLU).

    Like MMPretrain's ``VGG``, the classifier (``FC``, on the flattened
    ``(C, 4, 4)`` map, as in the paper's VGG-small) is part of the backbone
    when ``num_classes > 0``; use it with ``ClsHead`` and no neck. It needs
    32x32 inputs.

    Args:
        expand_ratios (float | Sequence[float]): 6 ratios, one per
            convolution, or one for all (uniform). Defaults to 1.0.
        base_channels (Sequence[int]): The 1x widths of the 6
            convolutions. Defaults to the paper's
            ``(128, 128, 256, 256, 512, 512)``.
        binary (bool): Binarize the middle layers. Defaults to True.
        num_classes (int): Classes of the full-precision classifier; no
            classifier when ``<= 0``. Defaults to -1.
        out_indices (Sequence[int], optional): Outputs to return: stage
            indices 0-2, and 3 for the classifier's logits. Defaults to
            ``(3, )`` with a classifier, else ``(2, )``.
        init_cfg (dict | list[dict], optional): Initialization config.
            Defaults to Kaiming for convolutions, constant 1 for BN and
            normal (std 0.01) for the classifier.

    Example:
        >>> model = WidthVGGSmall([0.5, 1, 2, 1, 0.25, 4], out_indices=(0, 2))
        >>> [tuple(o.shape) for o in model(torch.rand(1, 3, 32, 32))]
        [(1, 128, 16, 16), (1, 2048, 4, 4)]
    """

    layer_names = ('conv0', 'conv1', 'conv2', 'conv3', 'conv4', 'conv5')
    num_stages = 3

    def __init__(
        self,
        expand_ratios: RatiosType = 1.0,
        base_channels: Sequence[int] = (128, 128, 256, 256, 512, 512),
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
        if len(base_channels) != len(self.layer_names) or any(
                isinstance(c, bool) or not isinstance(c, int) or c < 1
                for c in base_channels):
            raise ValueError(
                f'base_channels: {base_channels!r}, expected '
                f'{len(self.layer_names)} positive ints, one per layer '
                f'({", ".join(self.layer_names)})')
        self.base_channels = tuple(base_channels)
        self.expand_ratios = parse_expand_ratios(expand_ratios,
                                                 self.layer_names)
        self.channels = [
            int(round(base * ratio))
            for base, ratio in zip(self.base_channels, self.expand_ratios)
        ]
        self.binary = binary
        self.num_classes = num_classes
        self.out_indices = parse_out_indices(out_indices, self.num_stages,
                                             num_classes)

        conv_binary = DoReFaConv2d if binary else nn.Conv2d
        act = DoReFaActivation if binary else nn.ReLU
        self.stages = nn.ModuleList()
        in_channels = 3
        for stage in range(self.num_stages):
            layers = OrderedDict()
            for j in (2 * stage, 2 * stage + 1):
                out_channels = self.channels[j]
                conv = nn.Conv2d if j == 0 else conv_binary
                layers[f'conv{j}'] = conv(
                    in_channels, out_channels, 3, padding=1, bias=False)
                if j % 2 == 1:
                    layers[f'pool{j}'] = nn.MaxPool2d(2, 2)
                layers[f'bn{j}'] = nn.BatchNorm2d(out_channels)
                layers[f'act{j}'] = act()
                in_channels = out_channels
            self.stages.append(nn.Sequential(layers))
        if num_classes > 0:
            # Full precision, on the flattened 4x4 map of a 32x32 input.
            self.classifier = nn.Linear(in_channels * 16, num_classes)

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Forward the stages and, if present, the classifier.

        Args:
            x (Tensor): Images, (N, 3, 32, 32).

        Returns:
            tuple[Tensor]: For each index in ``out_indices``, in increasing
            order: the output of stage i, (N, C_{2i+1}, 32 / 2^(i+1),
            32 / 2^(i+1)), or for index 3 the logits (N, num_classes).
        """
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x)
        if self.num_stages in self.out_indices:
            outs.append(self.classifier(x.flatten(1)))
        return tuple(outs)

    def inherit_from(self, wide_state_dict: Mapping[str, Tensor]) -> None:
        """Initialise from the leading channels of a wider VGG-small.

        Args:
            wide_state_dict (Mapping[str, Tensor]): State dict of a
                :class:`WidthVGGSmall` at least as wide in every layer, with
                the same ``binary`` and ``num_classes`` (typically the
                uniform-4x network).
        """
        inherit_leading_channels(self, wide_state_dict)
