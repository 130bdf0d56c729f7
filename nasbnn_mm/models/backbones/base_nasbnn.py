"""What the NAS-BNN backbones share: the space, the subnet, the stages.

NAS-BNN (https://arxiv.org/abs/2408.15484) backbones come in three forms
over one search space: the supernet :class:`SuperBNN`, the static subnet
:class:`NASBNN` and the bit-packed :class:`~nasbnn_mm.deploy.PackedNASBNN`.
This module holds what they have in common, written once:

- :func:`resolve_arch`: the one way to name a subnet (``'smallest'``,
  ``'largest'``, a preset, a spec file, a dict or an ``ArchSpec``);
- :class:`BaseNASBNNBackbone`: the space, ``out_indices``, the subnet
  ``arch`` and ``out_channels`` (all three backbones);
- :class:`BaseSubnet`: one subnet built at its widths, an 8-bit
  :class:`NASBNNStem` and a stage loop whose blocks come from one hook,
  :meth:`BaseSubnet.make_block` (as MMDetection's ResNet variants override
  ``make_res_layer``); :class:`NASBNN` and ``PackedNASBNN`` differ only in
  their blocks.
"""
import logging
import os.path as osp
from abc import ABCMeta, abstractmethod
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import Tensor

from nasbnn_mm.nas import (PRESETS, ArchSpec, ArchType, SearchSpace, load_arch,
                           sample_largest, sample_smallest, validate_arch)
from nasbnn_mm.utils import OptMultiConfig, UserError
from nasbnn_mm.utils.conventions import (SUPERNET_DEFAULTS,
                                         checkpoint_conventions,
                                         init_checkpoint, merge_conventions)
from ..layers import LSQConv2d, RPReLU

__all__ = [
    'SUBNET_NAMES', 'resolve_arch', 'normalize_out_indices', 'NASBNNStem',
    'BaseNASBNNBackbone', 'BaseSubnet'
]

# Subnets named by their place in the space, wherever a subnet is named.
SUBNET_NAMES = ('smallest', 'largest')


def resolve_arch(arch: ArchType,
                 space: SearchSpace,
                 non_decreasing: bool = True,
                 warn_non_decreasing: bool = False) -> ArchSpec:
    """Name a subnet of ``space``: the one vocabulary of the package.

    Args:
        arch (str | dict | ArchSpec): ``'smallest'`` or ``'largest'`` (the
            sandwich rule's extremes), a preset of Table 6 (``'A'``..
            ``'F'``), a JSON/YAML spec file, a spec dict or an
            :class:`~nasbnn_mm.nas.ArchSpec`.
        space (SearchSpace): The space the subnet belongs to.
        non_decreasing (bool): For ``'smallest'``/``'largest'``: the
            extremes under the Non-Decreasing constraint (eq. 3), as the
            supernet trains them. Other specs are validated without that
            constraint, so ablation subnets load too. Defaults to True.
        warn_non_decreasing (bool): Log a warning when a spec breaks the
            Non-Decreasing constraint (a supernet trained under it never
            sampled such a subnet). Defaults to False.

    Returns:
        ArchSpec: A validated subnet of ``space``.

    Raises:
        UserError: One line naming the unknown name, the file or the layer
            that does not fit the space.

    Example:
        >>> from nasbnn_mm.nas import SearchSpace
        >>> space = SearchSpace.from_config('nasbnn_digits')
        >>> str(resolve_arch('smallest', space).stem)
        'c8_k3_g1'
        >>> resolve_arch('largest', space).depths
        (2, 2, 2)
    """
    if isinstance(arch, str) and arch in SUBNET_NAMES:
        sample = sample_smallest if arch == 'smallest' else sample_largest
        return sample(space, non_decreasing)
    try:
        spec = load_arch(arch)
    except ValueError as e:
        if isinstance(arch, str) and not osp.isfile(arch):
            raise UserError(
                f'arch {arch!r}: neither {" nor ".join(SUBNET_NAMES)}, a '
                f'preset ({", ".join(PRESETS)}) nor an existing spec file'
            ) from None
        raise UserError(str(e)) from None
    try:
        validate_arch(spec, space, non_decreasing=False)
    except ValueError as e:
        raise UserError(str(e)) from None
    if warn_non_decreasing:
        try:
            validate_arch(spec, space, non_decreasing=True)
        except ValueError as e:
            # NOTE: valid in the space, so ablations load; but a supernet
            # trained under eq. 3 never trained it, so its score is not one.
            print_log(
                f'{e}: a supernet trained under that constraint (eq. 3) '
                'never sampled this subnet', 'current', logging.WARNING)
    return spec


def normalize_out_indices(out_indices: Sequence[int],
                          num_stages: int) -> Tuple[int, ...]:
    """Check stage indices and make them non-negative.

    Args:
        out_indices (Sequence[int]): Indices in ``[-num_stages, num_stages)``;
            negative ones count from the last stage.
        num_stages (int): Number of stages.

    Returns:
        tuple[int]: The indices in ``[0, num_stages)``.

    Raises:
        UserError: If an index is out of range.
    """
    for index in out_indices:
        if not -num_stages <= index < num_stages:
            raise UserError(f'out_indices: {index} not in '
                            f'[{-num_stages}, {num_stages - 1}]')
    return tuple(index % num_stages for index in out_indices)


class NASBNNStem(nn.Module):
    """8-bit LSQ conv -> BN -> RPReLU, the stem of a NAS-BNN subnet.

    Args:
        in_channels (int): Image channels.
        channels (int): Output width.
        kernel_size (int): Odd kernel size; padding ``(k - 1) // 2``.
        stride (int): Stride.
        quantize_input (bool): Quantize the input to 8 bits too.

    Shape:
        - Input: (N, in_channels, H, W).
        - Output: (N, channels, H / stride, W / stride).
    """

    def __init__(self, in_channels: int, channels: int, kernel_size: int,
                 stride: int, quantize_input: bool) -> None:
        super().__init__()
        self.conv = LSQConv2d(
            in_channels,
            channels,
            kernel_size,
            stride=stride,
            padding=(kernel_size - 1) // 2,
            bias=False,
            quantize_input=quantize_input)
        self.bn = nn.BatchNorm2d(channels)
        self.act = RPReLU(channels)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C_img, H, W) -> (N, channels, H / s, W / s)."""
        return self.act(self.bn(self.conv(x)))


class BaseNASBNNBackbone(BaseModule):
    """A backbone over a NAS-BNN search space.

    Holds the space, the stages it returns and the subnet :attr:`arch`
    (set by subclasses: the one it is, or the one a supernet runs by
    default).

    Args:
        search_space (str | dict): A built-in space name, a config file
            defining ``search_space``, or the dict.
        out_indices (Sequence[int]): Stages whose outputs are returned
            (negative counts from the end).
        init_cfg (dict | list[dict], optional): Initialization config.
    """

    arch: ArchSpec

    def __init__(self,
                 search_space: Union[str, dict],
                 out_indices: Sequence[int],
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.space = SearchSpace.from_config(search_space)
        self.out_indices = normalize_out_indices(out_indices,
                                                 len(self.space.stages))

    @property
    def out_channels(self) -> Tuple[int, ...]:
        """tuple[int]: Widths of the returned stages of :attr:`arch`, e.g.
        for an FPN's ``in_channels``."""
        return tuple(self.arch.stages[i][-1].channels
                     for i in self.out_indices)

    def resolve_arch(self, arch: ArchType) -> ArchSpec:
        """:func:`resolve_arch` in this backbone's space."""
        return resolve_arch(arch, self.space)


class BaseSubnet(BaseNASBNNBackbone, metaclass=ABCMeta):
    """One subnet with its layers at their exact widths.

    Builds :class:`NASBNNStem` and, per layer of the spec, one block from
    :meth:`make_block`; the first block of a stage has the stage's stride.
    Module names mirror :class:`SuperBNN` (``stem.conv``,
    ``stages.<i>.<j>``), so sliced supernet weights load by name.

    The conventions its weights depend on (``weight_norm``,
    ``stem_quantize_input``) come from the checkpoint of its ``init_cfg``
    (``SupernetInit`` or ``Pretrained``) when that checkpoint stores them
    (:mod:`nasbnn_mm.utils.conventions`); a value given here must agree
    with it. Without stored conventions the values given here hold, and
    unset ones default to True.

    Args:
        arch (str | dict | ArchSpec): The subnet (see :func:`resolve_arch`).
        search_space (str | dict): Its search space (input channels,
            strides).
        out_indices (Sequence[int]): Stages whose outputs are returned.
        weight_norm (bool | str, optional): Weight normalization of the
            binary convolutions (eq. 6): True/'paper', 'official' or
            False. None: the checkpoint's, else True.
        stem_quantize_input (bool, optional): Quantize the stem's input to
            8 bits. None: the checkpoint's, else True.
        init_cfg (dict | list[dict], optional): Initialization config.

    Raises:
        UserError: If a given convention or the search space contradicts
            the checkpoint's, naming both values.
    """

    def __init__(self,
                 arch: ArchType,
                 search_space: Union[str, dict],
                 out_indices: Sequence[int],
                 weight_norm: Optional[Union[bool, str]],
                 stem_quantize_input: Optional[bool],
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(search_space, out_indices, init_cfg)
        self.arch = self.resolve_arch(arch)
        conventions = self._conventions(
            init_cfg,
            dict(
                weight_norm=weight_norm,
                stem_quantize_input=stem_quantize_input))
        self.weight_norm = conventions['weight_norm']
        self.stem_quantize_input = conventions['stem_quantize_input']
        stem = self.arch.stem
        if stem.groups != 1:
            raise UserError(f'stem: groups {stem.groups} not in {{1}}')
        self.stem = NASBNNStem(self.space.in_channels, stem.channels,
                               stem.kernel_size, self.space.stem.stride,
                               self.stem_quantize_input)
        self.stages = nn.ModuleList()
        in_channels = stem.channels
        for layers, stage in zip(self.arch.stages, self.space.stages):
            blocks = nn.ModuleList()
            for j, layer in enumerate(layers):
                blocks.append(
                    self.make_block(in_channels, layer.channels,
                                    layer.kernel_size, layer.groups,
                                    stage.stride if j == 0 else 1))
                in_channels = layer.channels
            self.stages.append(blocks)

    def _conventions(self, init_cfg: OptMultiConfig,
                     given: Dict[str, Any]) -> Dict[str, Any]:
        """``given`` (None: unset) merged with the conventions of the
        ``init_cfg`` checkpoint, then the defaults (True)."""
        configured = {k: v for k, v in given.items() if v is not None}
        checkpoint = init_checkpoint(init_cfg)
        stored = {}
        if checkpoint is not None:
            stored = checkpoint_conventions(checkpoint)
            if 'search_space' in stored:
                configured['search_space'] = self.space.to_dict()
            where = checkpoint if isinstance(checkpoint, str) else 'dict'
            configured = merge_conventions(
                configured,
                stored,
                where,
                same=dict(search_space=lambda a, b: a == SearchSpace.
                          from_config(b).to_dict()))
        return {
            name: configured.get(name, SUPERNET_DEFAULTS[name])
            for name in given
        }

    @abstractmethod
    def make_block(self, in_channels: int, out_channels: int, kernel_size: int,
                   groups: int, stride: int) -> nn.Module:
        """Build the block of one layer of the spec.

        Args:
            in_channels (int): Input width (the previous layer's).
            out_channels (int): Output width.
            kernel_size (int): Kernel size of the k×k conv.
            groups (int): Groups of the k×k conv.
            stride (int): Stride of the k×k conv.

        Returns:
            nn.Module: (N, in_channels, H, W) -> (N, out_channels,
            H / stride, W / stride).
        """

    def forward_stages(self, x: Tensor, indices: Sequence[int],
                       **block_kwargs) -> Tuple[Tensor, ...]:
        """Run the stem and every block.

        Args:
            x (Tensor): Images (N, C_img, H, W).
            indices (Sequence[int]): Non-negative stage indices to return.
            **block_kwargs: Passed to every block.

        Returns:
            tuple[Tensor]: Outputs (N, C_i, H_i, W_i) of ``indices``, in
            stage order.
        """
        x = self.stem(x)
        outs = []
        for i, blocks in enumerate(self.stages):
            for block in blocks:
                x = block(x, **block_kwargs)
            if i in indices:
                outs.append(x)
        return tuple(outs)

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Run the subnet.

        Args:
            x (Tensor): Images (N, C_img, H, W).

        Returns:
            tuple[Tensor]: Outputs (N, C_i, H_i, W_i) of ``out_indices``.
        """
        return self.forward_stages(x, self.out_indices)
