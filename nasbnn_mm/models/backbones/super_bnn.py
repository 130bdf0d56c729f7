"""The NAS-BNN binary supernet (https://arxiv.org/abs/2408.15484, sec. 3).

A MobileNetV1-style network of binary separable blocks whose every subnet of
a search space (Table 1) runs from one set of shared weights: an 8-bit LSQ
stem, then per stage up to ``max(depth)`` blocks, each a grouped binary k×k
conv that keeps the width and a binary 1×1 conv that sets the output width,
both wrapped ReActNet-style (RSign -> binary conv -> BN -> Bi-Real shortcut
-> RPReLU).
"""
from typing import Optional, Sequence, Tuple, Union

import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from nasbnn_mm.nas import (ArchSpec, LayerSpec, SearchSpace, load_arch,
                           parse_arch, sample_largest, validate_arch)
from nasbnn_mm.registry import MODELS
from ..layers import (DynamicBatchNorm2d, DynamicBinaryConv2d,
                      DynamicLSQConv2d, DynamicRPReLU, DynamicRSign)
from ..layers.shortcut import bireal_shortcut

__all__ = ['SuperStem', 'SuperSeparableBlock', 'SuperBNN']

ArchType = Union[str, dict, ArchSpec]


class SuperStem(nn.Module):
    """8-bit LSQ conv -> BN -> RPReLU, output width chosen per forward.

    Args:
        in_channels (int): Image channels.
        max_channels (int): Largest stem width.
        kernel_size (int): Kernel size.
        stride (int): Stride.
        quantize_input (bool): Quantize the input to 8 bits too.
    """

    def __init__(self, in_channels: int, max_channels: int, kernel_size: int,
                 stride: int, quantize_input: bool) -> None:
        super().__init__()
        self.conv = DynamicLSQConv2d(
            in_channels,
            max_channels,
            kernel_size,
            stride=stride,
            quantize_input=quantize_input)
        self.bn = DynamicBatchNorm2d(max_channels)
        self.act = DynamicRPReLU(max_channels)

    def forward(self, x: Tensor, layer: LayerSpec) -> Tensor:
        """(N, C_img, H, W) -> (N, layer.channels, H / s, W / s)."""
        return self.act(self.bn(self.conv(x, layer.channels)))


class SuperSeparableBlock(nn.Module):
    """A binary separable block of the supernet.

    ``x -> RSign -> grouped k×k binary conv (width kept, stride s) -> BN
    -> + shortcut(x) -> RPReLU -> RSign -> 1×1 binary conv (width set) -> BN
    -> + shortcut -> RPReLU``. Shortcuts average-pool for stride 2 and tile
    channels for a wider output (:func:`bireal_shortcut`).

    Args:
        max_in_channels (int): Largest input width.
        max_out_channels (int): Largest output width.
        kernel_sizes (Sequence[int]): Kernel choices of the k×k conv.
        groups (Sequence[int]): Group choices of the k×k conv.
        stride (int): Stride of the k×k conv.
        weight_norm (bool): Weight normalization (eq. 6).
        bi_transform (bool): Bi-Transformation (eq. 5).
        group_slicing (str): See :class:`DynamicBinaryConv2d`.
    """

    def __init__(self, max_in_channels: int, max_out_channels: int,
                 kernel_sizes: Sequence[int], groups: Sequence[int],
                 stride: int, weight_norm: bool, bi_transform: bool,
                 group_slicing: str) -> None:
        super().__init__()
        self.stride = stride
        self.sign1 = DynamicRSign(max_in_channels)
        self.conv1 = DynamicBinaryConv2d(
            max_in_channels,
            max_in_channels,
            kernel_sizes,
            groups,
            stride=stride,
            weight_norm=weight_norm,
            bi_transform=bi_transform,
            group_slicing=group_slicing)
        self.bn1 = DynamicBatchNorm2d(max_in_channels)
        self.act1 = DynamicRPReLU(max_in_channels)
        self.sign2 = DynamicRSign(max_in_channels)
        self.conv2 = DynamicBinaryConv2d(
            max_in_channels,
            max_out_channels,
            1,
            weight_norm=weight_norm,
            bi_transform=bi_transform,
            group_slicing=group_slicing)
        self.bn2 = DynamicBatchNorm2d(max_out_channels)
        self.act2 = DynamicRPReLU(max_out_channels)

    def forward(self, x: Tensor, layer: LayerSpec) -> Tensor:
        """(N, C_in, H, W) -> (N, layer.channels, H / s, W / s)."""
        in_channels = x.shape[1]
        out = self.conv1(
            self.sign1(x), in_channels, layer.kernel_size, layer.groups)
        out = self.act1(
            self.bn1(out) + bireal_shortcut(x, in_channels, self.stride))
        out2 = self.conv2(self.sign2(out), layer.channels, 1, 1)
        return self.act2(
            self.bn2(out2) + bireal_shortcut(out, layer.channels, 1))


@MODELS.register_module()
class SuperBNN(BaseModule):
    """The binary supernet of a NAS-BNN search space.

    Any subnet of the space runs without rebuilding modules:
    ``forward(x, arch)`` with an :class:`~nasbnn_mm.nas.ArchSpec` (or set a
    default with :meth:`set_arch`). Used as a backbone it returns the
    feature maps of the stages in ``out_indices``.

    Args:
        search_space (str | dict): A built-in space name
            (``'nasbnn_in1k'``, ``'nasbnn_digits'``), a config file defining
            ``search_space``, or the ``search_space`` dict.
        arch (str | dict | ArchSpec, optional): The subnet ``forward(x)``
            runs: a preset name (``'A'``..``'F'``), a spec file or dict.
            Defaults to the largest subnet.
        out_indices (Sequence[int]): Stages whose outputs are returned
            (negative counts from the end). Defaults to (-1, ).
        weight_norm (bool): Channel-wise weight normalization (eq. 6);
            off for the ablation. Defaults to True.
        bi_transform (bool): Bi-Transformation (eq. 5); off for the
            ablation. Defaults to True.
        stem_quantize_input (bool): Quantize the stem's input to 8 bits as
            well as its weights. Defaults to True.
        group_slicing (str): How grouped convs slice the shared weight:
            ``'cyclic'`` (the official code's rule) or ``'prefix'``.
            Defaults to 'cyclic'.
        init_cfg (dict | list[dict], optional): Initialization config.

    Example:
        >>> model = SuperBNN('nasbnn_digits')
        >>> from nasbnn_mm.nas import sample_smallest
        >>> x = torch.randn(2, 3, 32, 32)
        >>> [o.shape for o in model(x)]
        [torch.Size([2, 128, 4, 4])]
        >>> model(x, sample_smallest(model.space))[-1].shape
        torch.Size([2, 64, 4, 4])
    """

    def __init__(self,
                 search_space: Union[str, dict],
                 arch: Optional[ArchType] = None,
                 out_indices: Sequence[int] = (-1, ),
                 weight_norm: bool = True,
                 bi_transform: bool = True,
                 stem_quantize_input: bool = True,
                 group_slicing: str = 'cyclic',
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.space = SearchSpace.from_config(search_space)
        num_stages = len(self.space.stages)
        self.out_indices = tuple(
            self._check_index(i, num_stages) for i in out_indices)
        stem = self.space.stem
        if len(stem.kernel_size) != 1 or stem.groups != (1, ):
            raise ValueError('search_space.stem: the stem searches only its '
                             f'width; got kernel_size {stem.kernel_size} and '
                             f'groups {stem.groups}')
        self.stem = SuperStem(self.space.in_channels, max(stem.channels),
                              stem.kernel_size[0], stem.stride,
                              stem_quantize_input)
        self.stages = nn.ModuleList()
        in_channels = max(stem.channels)
        for stage in self.space.stages:
            blocks = nn.ModuleList()
            for j in range(max(stage.depth)):
                blocks.append(
                    SuperSeparableBlock(in_channels, max(stage.channels),
                                        stage.kernel_size, stage.groups,
                                        stage.stride if j == 0 else 1,
                                        weight_norm, bi_transform,
                                        group_slicing))
                in_channels = max(stage.channels)
            self.stages.append(blocks)
        self.arch = self.resolve_arch(
            sample_largest(self.space) if arch is None else arch)

    @staticmethod
    def _check_index(index: int, num_stages: int) -> int:
        if not -num_stages <= index < num_stages:
            raise ValueError(f'out_indices: {index} not in '
                             f'[{-num_stages}, {num_stages - 1}]')
        return index % num_stages

    @property
    def out_channels(self) -> Tuple[int, ...]:
        """tuple[int]: Widths of the returned stages for :attr:`arch`."""
        return tuple(self.arch.stages[i][-1].channels
                     for i in self.out_indices)

    def resolve_arch(self, arch: ArchType) -> ArchSpec:
        """Parse ``arch`` (preset name, file, dict or spec) and validate it
        against this supernet's space (without the Non-Decreasing check, so
        ablation subnets run too)."""
        if isinstance(arch, str):
            arch = load_arch(arch)
        arch = parse_arch(arch)
        validate_arch(arch, self.space, non_decreasing=False)
        return arch

    def set_arch(self, arch: ArchType) -> None:
        """Set the subnet that ``forward(x)`` runs."""
        self.arch = self.resolve_arch(arch)

    def forward(self,
                x: Tensor,
                arch: Optional[ArchSpec] = None) -> Tuple[Tensor, ...]:
        """Run one subnet.

        Args:
            x (Tensor): Images (N, C_img, H, W).
            arch (ArchSpec, optional): The subnet; must belong to the space
                (not re-validated here, for speed). Defaults to :attr:`arch`.

        Returns:
            tuple[Tensor]: Outputs (N, C_i, H_i, W_i) of ``out_indices``.
        """
        arch = self.arch if arch is None else arch
        x = self.stem(x, arch.stem)
        outs = []
        for i, (blocks, layers) in enumerate(zip(self.stages, arch.stages)):
            for block, layer in zip(blocks, layers):
                x = block(x, layer)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
