"""Sliceable binary convolution for the NAS-BNN supernet.

One shared weight at the largest setting serves every (in_channels,
out_channels, kernel_size, groups) of the search space
(https://arxiv.org/abs/2408.15484, sec. 3.2): channels and groups are
slices, smaller kernels are center crops with Once-for-All kernel
transformations, and each kernel size has its own Bi-Transformation (or, as
in the official code, only the largest kernel has one).
"""
import math
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from torch import Tensor

from .bi_transformation import BiTransformation
from .binary_conv import BinaryConv2d, binary_conv_weight, check_weight_norm
from .conv_operands import float_conv2d
from .dynamic_op import DynamicMixin
from .kernel_map import apply_kernel_map
from .kernel_transformation import KernelTransformation
from .sliced_weight import ColumnCycle, slice_weight
from .xnor_conv import xnor_conv2d

__all__ = ['DynamicBinaryConv2d']

GROUP_SLICINGS = ('prefix', 'cyclic')
# True: one theta per kernel size > 1; 'max_kernel': the official rule
BI_TRANSFORM_CHOICES = (False, True, 'max_kernel')


class _Setting(NamedTuple):
    """What a forward needs for one active setting (cached)."""
    in_channels: int
    out_channels: int
    kernel_size: int
    groups: int
    padding: int
    kernel_chain: Tuple[str, ...]
    column_cycle: Optional[ColumnCycle]


def _as_choices(name: str, value: Union[int, Sequence[int]]) -> List[int]:
    choices = [value] if isinstance(value, int) else list(value)
    if not choices or any(not isinstance(c, int) or c < 1 for c in choices):
        raise ValueError(f'{name}: {value!r} must be positive ints')
    return sorted(set(choices))


class DynamicBinaryConv2d(DynamicMixin, nn.Module):
    """Binary convolution with width, kernel size and groups set per call.

    The shared weight is ``(max_out_channels, max_in_channels / min(groups),
    max_k, max_k)``. For ``in_channels = x.shape[1]`` and an active
    ``(out_channels, kernel_size, groups)`` the weight is taken as a view of
    ``weight[:out_channels]`` whose input columns follow ``group_slicing``:

    - ``'prefix'``: every group uses ``weight[:, :in_channels // groups]``.
    - ``'cyclic'``: the rule of the official NAS-BNN code (to run its
      checkpoints): with ``cols = min(in_channels, weight.shape[1])`` and
      ``r = cols // (in_channels // groups)``, group ``i`` uses the column
      block ``i % r``. A gather through a cached index when ``r > 1``, a
      view otherwise.

    A kernel smaller than ``max_k`` is reached through the chain of
    :class:`KernelTransformation` (e.g. 7 -> 5 -> 3); with binary weights
    a Bi-Transformation follows (``bi_transform``), then
    :func:`binary_conv_weight` normalizes and binarizes. Crops, kernel
    transformations and the Bi-Transformation are all linear maps of each
    flattened kernel, so they are composed into one small ``(max_k^2, k^2)``
    matrix and the shared weight is multiplied once. Padding is
    ``(k - 1) // 2 * dilation`` (same size at stride 1). The input is not
    binarized here: put an :class:`RSign` before it.

    Switches: ``binary_weights`` (bool), set by :func:`set_binarization`;
    ``in_place_grad`` (bool, default False), set by
    :func:`sliced_grad_accumulation`: the slice's gradient is added straight
    into ``weight.grad`` (see :func:`slice_weight`).

    Args:
        max_in_channels (int): Largest input width.
        max_out_channels (int): Largest output width.
        kernel_sizes (int | Sequence[int]): Odd kernel size choices.
        groups (int | Sequence[int]): Group choices; ``min(groups)`` must
            divide ``max_in_channels``. Defaults to 1.
        stride (int): Stride. Defaults to 1.
        dilation (int): Dilation. Defaults to 1.
        weight_norm (bool | str): Weight normalization, eq. (6); see
            :class:`BinaryConv2d`. Defaults to True.
        bi_transform (bool | str): Bi-Transformation, eq. (5). True: one
            ``theta`` per kernel size > 1 (``bi_transforms.<k>``), applied
            after the kernel transformations of that size. 'max_kernel': the
            official code's rule (``fp2bin_<K>``): only the largest kernel
            ``K > 1`` has one (``bi_transforms.<K>``); smaller kernels are
            the kernel-transformed crops of the untransformed weight, with
            no Bi-Transformation. False: none. Defaults to True.
        group_slicing (str): 'prefix' or 'cyclic'. Defaults to 'prefix'.

    Shape:
        - Input: (N, C_in, H, W) with C_in <= max_in_channels.
        - Output: (N, out_channels, H_out, W_out).

    Example:
        >>> conv = DynamicBinaryConv2d(64, 64, [3, 5], groups=[1, 2])
        >>> x = torch.randn(2, 32, 8, 8)
        >>> conv(x, out_channels=48, kernel_size=3, groups=2).shape
        torch.Size([2, 48, 8, 8])
        >>> static = conv.to_static(
        ...     in_channels=32, out_channels=48, kernel_size=3, groups=2)
        >>> torch.allclose(static(x), conv(x, 48, 3, 2), atol=1e-5)
        True
    """

    ops_kind = 'bops'

    def __init__(self,
                 max_in_channels: int,
                 max_out_channels: int,
                 kernel_sizes: Union[int, Sequence[int]],
                 groups: Union[int, Sequence[int]] = 1,
                 stride: int = 1,
                 dilation: int = 1,
                 weight_norm: Union[bool, str] = True,
                 bi_transform: Union[bool, str] = True,
                 group_slicing: str = 'prefix') -> None:
        super().__init__()
        self.kernel_sizes = _as_choices('kernel_sizes', kernel_sizes)
        even = [k for k in self.kernel_sizes if k % 2 == 0]
        if even:
            raise ValueError(f'kernel_sizes: {even} are even; center crops '
                             'need odd kernel sizes')
        self.groups_choices = _as_choices('groups', groups)
        min_groups = self.groups_choices[0]
        if max_in_channels % min_groups:
            raise ValueError(f'groups {min_groups} must divide '
                             f'max_in_channels {max_in_channels}')
        if not (isinstance(bi_transform, bool)
                or bi_transform == 'max_kernel'):
            raise ValueError(f'bi_transform: {bi_transform!r} not in '
                             f'{BI_TRANSFORM_CHOICES}')
        if group_slicing not in GROUP_SLICINGS:
            raise ValueError(f'group_slicing {group_slicing!r} not in '
                             f'{GROUP_SLICINGS}')
        self.max_in_channels = max_in_channels
        self.max_out_channels = max_out_channels
        self.max_kernel_size = self.kernel_sizes[-1]
        self.stride = stride
        self.dilation = dilation
        self.weight_norm = check_weight_norm(weight_norm)
        self.group_slicing = group_slicing
        self.weight = nn.Parameter(
            torch.empty(max_out_channels, max_in_channels // min_groups,
                        self.max_kernel_size, self.max_kernel_size))
        self.kernel_transforms = nn.ModuleDict()
        for big, small in self._kernel_steps():
            self.kernel_transforms[f'{big}to{small}'] = KernelTransformation(
                big, small)
        self.bi_transform = bi_transform
        self.bi_transforms = None
        if bi_transform:
            transformed = (
                self.kernel_sizes
                if bi_transform is True else [self.max_kernel_size])
            self.bi_transforms = nn.ModuleDict(
                {str(k): BiTransformation(k)
                 for k in transformed if k > 1})
        # The flattened max kernel's basis, pushed through kernel transforms.
        k = self.max_kernel_size
        self.register_buffer(
            'kernel_basis',
            torch.eye(k * k).view(k * k, 1, k, k),
            persistent=False)
        self.binary_weights = True
        self.in_place_grad = False
        self._settings: Dict[tuple, _Setting] = {}
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise the weight as :class:`torch.nn.Conv2d` does."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def _kernel_steps(self) -> List[Tuple[int, int]]:
        """(bigger, smaller) consecutive kernel sizes, largest first."""
        descending = self.kernel_sizes[::-1]
        return list(zip(descending, descending[1:]))

    def _setting(self, in_channels: int, out_channels: int, kernel_size: int,
                 groups: int) -> _Setting:
        """Validate a setting and cache what its forward needs."""
        key = (in_channels, out_channels, kernel_size, groups)
        setting = self._settings.get(key)
        if setting is not None:
            return setting
        if not 1 <= in_channels <= self.max_in_channels:
            raise ValueError(f'in_channels {in_channels} (x.shape[1]) not in '
                             f'[1, {self.max_in_channels}]')
        if not 1 <= out_channels <= self.max_out_channels:
            raise ValueError(f'out_channels {out_channels} not in '
                             f'[1, {self.max_out_channels}]')
        if kernel_size not in self.kernel_sizes:
            raise ValueError(
                f'kernel_size {kernel_size} not in {self.kernel_sizes}')
        if groups not in self.groups_choices:
            raise ValueError(f'groups {groups} not in {self.groups_choices}')
        if in_channels % groups:
            raise ValueError(
                f'groups {groups} must divide in_channels {in_channels}')
        if out_channels % groups:
            raise ValueError(
                f'groups {groups} must divide out_channels {out_channels}')
        chain = tuple(f'{big}to{small}' for big, small in self._kernel_steps()
                      if small >= kernel_size)
        padding = (kernel_size - 1) // 2 * self.dilation
        cycle = self._column_cycle(in_channels, out_channels, groups)
        setting = _Setting(in_channels, out_channels, kernel_size, groups,
                           padding, chain, cycle)
        self._settings[key] = setting
        return setting

    def _column_cycle(self, in_channels: int, out_channels: int,
                      groups: int) -> Optional[ColumnCycle]:
        """The 'cyclic' rule: group g's rows keep column block ``g %
        ratio`` (``in_channels / groups`` wide, ``ratio`` blocks fit the
        weight's columns); None where the columns are the prefix
        ``[:in_channels // groups]``.
        """
        group_in = in_channels // groups
        ratio = min(in_channels, self.weight.shape[1]) // group_in
        if self.group_slicing == 'prefix' or ratio == 1:
            return None
        return ColumnCycle(out_channels // groups, ratio)

    def _kernel_map(self, setting: _Setting, binary: bool) -> Optional[Tensor]:
        """(max_k^2, k^2) matrix taking a flattened max kernel to the active
        kernel: crops and kernel transformations, then (``binary``) the
        Bi-Transformation. None when that is the identity.
        """
        k = setting.kernel_size
        bi_transform = None
        if binary and self.bi_transforms is not None:
            bi_transform = self.bi_transforms[str(k)] if str(
                k) in self.bi_transforms else None
        if k == self.max_kernel_size:
            return None if bi_transform is None else bi_transform.theta
        basis = self.kernel_basis
        for name in setting.kernel_chain:
            basis = self.kernel_transforms[name](basis)
        kernel_map = basis.view(-1, k * k)
        if bi_transform is not None:
            kernel_map = kernel_map @ bi_transform.theta
        return kernel_map

    def _active_weight(self, setting: _Setting, binary: bool) -> Tensor:
        """The sliced shared weight through :meth:`_kernel_map`.

        Returns:
            Tensor: (out_channels, in_channels / groups, k, k), a view of
            ``weight`` when the kernel map is the identity.
        """
        weight = slice_weight(self.weight, setting.out_channels,
                              setting.in_channels // setting.groups,
                              setting.column_cycle, self.in_place_grad)
        kernel_map = self._kernel_map(setting, binary)
        if kernel_map is None:
            return weight
        return apply_kernel_map(weight, kernel_map, setting.kernel_size)

    def forward(self,
                x: Tensor,
                out_channels: Optional[int] = None,
                kernel_size: Optional[int] = None,
                groups: Optional[int] = None) -> Tensor:
        """Convolve with the active sub-weight.

        Args:
            x (Tensor): (N, C_in, H, W); C_in is the active input width.
            out_channels (int, optional): Active output width. Defaults to
                ``max_out_channels``.
            kernel_size (int, optional): Active kernel size. Defaults to the
                largest.
            groups (int, optional): Active groups. Defaults to the smallest.

        Returns:
            Tensor: (N, out_channels, H_out, W_out).
        """
        setting = self._setting(
            x.shape[1],
            self.max_out_channels if out_channels is None else out_channels,
            self.max_kernel_size if kernel_size is None else kernel_size,
            self.groups_choices[0] if groups is None else groups)
        weight = binary_conv_weight(
            self._active_weight(setting, self.binary_weights),
            self.binary_weights, self.weight_norm, None)
        conv = xnor_conv2d if self.binary_weights else float_conv2d
        return conv(x, weight, None, self.stride, setting.padding,
                    self.dilation, setting.groups)

    def largest_choice(self) -> Dict[str, int]:
        """The setting of ``forward`` without arguments."""
        return dict(
            in_channels=self.max_in_channels,
            out_channels=self.max_out_channels,
            kernel_size=self.max_kernel_size,
            groups=self.groups_choices[0])

    def _to_static(self, in_channels: int, out_channels: int, kernel_size: int,
                   groups: int) -> BinaryConv2d:
        """Export one setting as a plain :class:`BinaryConv2d`.

        Kernel transformations and the Bi-Transformation are folded into the
        exported weight (it is the binary-domain weight), so the static layer
        equals this one with binary weights; weight normalization and the
        ``binary_weights`` switch are carried over. The static layer does not
        binarize its input (``binarize_input=False``).

        Returns:
            BinaryConv2d: Weight (out_channels, in_channels / groups,
            kernel_size, kernel_size), no bias.
        """
        setting = self._setting(in_channels, out_channels, kernel_size, groups)
        static = BinaryConv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=self.stride,
            padding=setting.padding,
            dilation=self.dilation,
            groups=groups,
            bias=False,
            weight_norm=self.weight_norm,
            bi_transform=False,
            binarize_input=False).to(self.weight)
        static.weight.copy_(self._active_weight(setting, binary=True))
        static.binary_weights = self.binary_weights
        return static

    def extra_repr(self) -> str:
        return (f'{self.max_in_channels}, {self.max_out_channels}, '
                f'kernel_sizes={self.kernel_sizes}, '
                f'groups={self.groups_choices}, stride={self.stride}, '
                f'group_slicing={self.group_slicing!r}, '
                f'weight_norm={self.weight_norm}, '
                f'binary_weights={self.binary_weights}')
