"""The NAS-BNN binary supernet (https://arxiv.org/abs/2408.15484, sec. 3).

A MobileNetV1-style network of binary separable blocks whose every subnet of
a search space (Table 1) runs from one set of shared weights: an 8-bit LSQ
stem, then per stage up to ``max(depth)`` blocks, each a grouped binary k×k
conv that keeps the width and a binary 1×1 conv that sets the output width,
both wrapped ReActNet-style (RSign -> binary conv -> BN -> Bi-Real shortcut
-> RPReLU).
"""
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from torch import Tensor

from nasbnn_mm.nas import ArchSpec, ArchType, LayerSpec
from nasbnn_mm.registry import MODELS
from nasbnn_mm.utils import OptMultiConfig, UserError
from ..layers import (DynamicBatchNorm2d, DynamicBinaryConv2d,
                      DynamicLSQConv2d, DynamicMixin, DynamicRPReLU,
                      DynamicRSign)
from ..layers.activations import residual_rprelu_rsign
from ..layers.shortcut import bireal_shortcut
from .base_nasbnn import BaseNASBNNBackbone, NASBNNStem
from .nasbnn import NASBNN, BinarySeparableBlock, WeightNormType

__all__ = ['SuperStem', 'SuperSeparableBlock', 'SuperBNN']


def _load_exported(static: nn.Module, parts: Dict[str, nn.Module]) -> None:
    """Load the exported layers ``parts`` into ``static`` by name.

    Strict: every name and shape of the static module must be covered, so a
    static block that stops mirroring its supernet block fails here.
    """
    static.load_state_dict({
        f'{name}.{key}': value
        for name, part in parts.items()
        for key, value in part.state_dict().items()
    })


class SuperStem(DynamicMixin, nn.Module):
    """8-bit LSQ conv -> BN -> RPReLU, output width chosen per forward.

    Its one choice is ``out_channels`` (see :class:`DynamicMixin`).

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

    def largest_choice(self) -> Dict[str, int]:
        """The widest stem."""
        return dict(out_channels=self.conv.max_out_channels)

    def _to_static(self, out_channels: int) -> NASBNNStem:
        """The stem at width ``out_channels`` as a :class:`NASBNNStem`:
        copies of the sliced weights, LSQ steps and BN statistics."""
        conv = self.conv
        static = NASBNNStem(conv.max_in_channels, out_channels,
                            conv.kernel_size, conv.stride, conv.input_quantizer
                            is not None)
        _load_exported(
            static.to(conv.weight.device),
            dict(
                conv=conv.to_static(out_channels=out_channels),
                bn=self.bn.to_static(channels=out_channels),
                act=self.act.to_static(channels=out_channels)))
        return static


class SuperSeparableBlock(DynamicMixin, nn.Module):
    """A binary separable block of the supernet.

    ``x -> RSign -> grouped k×k binary conv (width kept, stride s) -> BN
    -> + shortcut(x) -> RPReLU -> RSign -> 1×1 binary conv (width set) -> BN
    -> + shortcut -> RPReLU``. Shortcuts average-pool for stride 2 and tile
    channels for a wider output (:func:`bireal_shortcut`). Its choices
    are ``in_channels``, ``out_channels``, ``kernel_size`` and ``groups``
    (see :class:`DynamicMixin`).

    Args:
        max_in_channels (int): Largest input width.
        max_out_channels (int): Largest output width.
        kernel_sizes (Sequence[int]): Kernel choices of the k×k conv.
        groups (Sequence[int]): Group choices of the k×k conv.
        stride (int): Stride of the k×k conv.
        weight_norm (bool | str): Weight normalization (eq. 6).
        bi_transform (bool | str): Bi-Transformation (eq. 5): True, False
            or 'max_kernel' (see :class:`DynamicBinaryConv2d`).
        group_slicing (str): See :class:`DynamicBinaryConv2d`.
    """

    def __init__(self, max_in_channels: int, max_out_channels: int,
                 kernel_sizes: Sequence[int], groups: Sequence[int],
                 stride: int, weight_norm: WeightNormType,
                 bi_transform: Union[bool, str], group_slicing: str) -> None:
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
        out, signs = residual_rprelu_rsign(
            self.bn1(out), bireal_shortcut(x, in_channels, self.stride),
            self.act1, self.sign2)
        out2 = self.conv2(signs, layer.channels, 1, 1)
        return self.act2(
            self.bn2(out2) + bireal_shortcut(out, layer.channels, 1))

    def largest_choice(self) -> Dict[str, int]:
        """The widest block with the largest kernel and fewest groups."""
        return dict(
            in_channels=self.conv1.max_in_channels,
            out_channels=self.conv2.max_out_channels,
            kernel_size=self.conv1.max_kernel_size,
            groups=self.conv1.groups_choices[0])

    def _to_static(self, in_channels: int, out_channels: int, kernel_size: int,
                   groups: int) -> BinarySeparableBlock:
        """One layer as a :class:`BinarySeparableBlock`: the same output
        as ``self(x, layer)`` for an input of ``in_channels``, with binary
        weights and activations. Kernel and Bi-Transformations are folded
        into the binary convolution weights (see
        :class:`DynamicBinaryConv2d`)."""
        static = BinarySeparableBlock(in_channels, out_channels, kernel_size,
                                      groups, self.stride,
                                      self.conv1.weight_norm)
        _load_exported(
            static.to(self.conv1.weight.device),
            dict(
                sign1=self.sign1.to_static(channels=in_channels),
                conv1=self.conv1.to_static(
                    in_channels=in_channels,
                    out_channels=in_channels,
                    kernel_size=kernel_size,
                    groups=groups),
                bn1=self.bn1.to_static(channels=in_channels),
                act1=self.act1.to_static(channels=in_channels),
                sign2=self.sign2.to_static(channels=in_channels),
                conv2=self.conv2.to_static(
                    in_channels=in_channels, out_channels=out_channels),
                bn2=self.bn2.to_static(channels=out_channels),
                act2=self.act2.to_static(channels=out_channels)))
        return static


@MODELS.register_module()
class SuperBNN(BaseNASBNNBackbone):
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
            runs: ``'smallest'``, ``'largest'``, a preset name
            (``'A'``..``'F'``), a spec file or dict. Defaults to the largest
            subnet.
        out_indices (Sequence[int]): Stages whose outputs are returned
            (negative counts from the end). Defaults to (-1, ).
        weight_norm (bool | str): Channel-wise weight normalization (eq. 6);
            False for the ablation; 'official' for the official code's
            variant (unbiased std, no eps: converted official checkpoints).
            Defaults to True.
        bi_transform (bool | str): Bi-Transformation (eq. 5). True: one
            learnable matrix per k×k conv and kernel size (this project's
            training; the paper is silent on smaller kernels). 'max_kernel':
            only the largest kernel of each conv has one, smaller kernels
            none (the official code's ``fp2bin_<K>``; converted official
            checkpoints). False: none (the ablation). Defaults to True.
        stem_quantize_input (bool): Quantize the stem's input to 8 bits as
            well as its weights. Defaults to True.
        group_slicing (str): How grouped convs slice the shared weight:
            ``'cyclic'`` (the official code's rule) or ``'prefix'``.
            Defaults to 'cyclic'.
        init_cfg (dict | list[dict], optional): Initialization config.

    Example:
        >>> model = SuperBNN('nasbnn_digits')
        >>> x = torch.randn(2, 3, 32, 32)
        >>> [o.shape for o in model(x)]
        [torch.Size([2, 128, 4, 4])]
        >>> model(x, model.resolve_arch('smallest'))[-1].shape
        torch.Size([2, 64, 4, 4])
    """

    def __init__(self,
                 search_space: Union[str, dict],
                 arch: Optional[ArchType] = None,
                 out_indices: Sequence[int] = (-1, ),
                 weight_norm: WeightNormType = True,
                 bi_transform: Union[bool, str] = True,
                 stem_quantize_input: bool = True,
                 group_slicing: str = 'cyclic',
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(search_space, out_indices, init_cfg)
        stem = self.space.stem
        if len(stem.kernel_size) != 1 or stem.groups != (1, ):
            raise UserError('search_space.stem: the stem searches only its '
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
        self.arch = self.resolve_arch('largest' if arch is None else arch)

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

    @torch.no_grad()
    def to_static(self, arch: Optional[ArchType] = None) -> NASBNN:
        """Export one subnet as a static :class:`NASBNN` (pipeline 1).

        Every layer goes through the ``to_static`` of its dynamic layers:
        weights, LSQ steps, BN statistics, RSign/RPReLU parameters are
        sliced copies, and kernel and Bi-Transformations are folded into
        the binary weights. In eval mode the result computes the same
        outputs as ``self(x, arch)``; it has its own parameters (training
        it leaves the supernet unchanged). BN statistics are the
        supernet's shared ones: recalibrate them for the subnet
        (:func:`nasbnn_mm.engine.recalibrate_bn`) before evaluating.

        Args:
            arch (str | dict | ArchSpec, optional): The subnet. Defaults to
                :attr:`arch`.

        Returns:
            NASBNN: With this supernet's ``out_indices``, ``weight_norm``
            and stem quantization, on its device and in its mode.

        Example:
            >>> supernet = SuperBNN('nasbnn_digits').eval()
            >>> static = supernet.to_static().eval()
            >>> x = torch.randn(2, 3, 32, 32)
            >>> torch.allclose(static(x)[-1], supernet(x)[-1], atol=1e-5)
            True
        """
        arch = self.arch if arch is None else self.resolve_arch(arch)
        static = NASBNN(
            arch,
            self.space.to_dict(),
            out_indices=self.out_indices,
            weight_norm=self.stages[0][0].conv1.weight_norm,
            stem_quantize_input=self.stem.conv.input_quantizer is not None)
        static.stem = self.stem.to_static(out_channels=arch.stem.channels)
        in_channels = arch.stem.channels
        for i, layers in enumerate(arch.stages):
            for j, layer in enumerate(layers):
                static.stages[i][j] = self.stages[i][j].to_static(
                    in_channels=in_channels,
                    out_channels=layer.channels,
                    kernel_size=layer.kernel_size,
                    groups=layer.groups)
                in_channels = layer.channels
        return static.train(self.training)
