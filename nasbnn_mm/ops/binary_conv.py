"""Bit-packed XNOR-popcount binary convolution on x86 CPUs.

Real 1-bit inference for NAS-BNN (https://arxiv.org/abs/2408.15484): the
C++ extension ``nasbnn_mm._ext`` (``ops/csrc``) packs the signs of
activations and weights along channels into uint64 words and convolves them
with XOR + popcount: AVX-512 VPOPCNTDQ, AVX2 (nibble-lookup popcount) or
scalar, chosen at run time (:func:`kernel_path`; force one with
``NASBNN_BINARY_KERNEL=scalar|avx2|avx512`` or :func:`set_kernel_path`).

Encoding: bit 1 is +1, bit 0 is -1, bit i of word j of a group is channel
``64 * j + i`` of that group; a group's channels are padded to whole words
with 0 bits in activations and weights alike, so padding never counts.
Layouts:

- packed activations: (N, H, W, G * Wg) uint64, ``Wg = ceil(C / G / 64)``;
- packed weights: (C_out, KH, KW, Wg) uint64, and the kernels' blocked form
  (G, ceil(C_out / G / 8), KH, KW, Wg, 8) from :func:`block_weight`.

:func:`binary_conv2d` gives exactly ``F.conv2d(sign(x), sign(W), stride,
padding, groups=G)`` (zero padding included: taps on the padding are left
out of the popcount), then an optional per-channel epilogue
``dot * scale + bias + residual`` and RPReLU, all in float32.
"""
import contextlib
import importlib
from types import ModuleType
from typing import Dict, Iterator, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    'EXT_MISSING_MESSAGE', 'load_ext', 'kernel_path', 'set_kernel_path',
    'available_kernel_paths', 'cpu_features', 'force_kernel_path', 'num_words',
    'kernel_threads', 'pack_activation', 'pack_weight', 'block_weight',
    'binary_conv2d', 'binary_gemm', 'pack_activation_ref',
    'unpack_activation_ref', 'pack_weight_ref', 'unpack_weight_ref',
    'binary_conv2d_ref', 'binary_gemm_ref', 'pack_bits_flat',
    'unpack_bits_flat'
]

EXT_MISSING_MESSAGE = (
    'nasbnn_mm._ext not built: run `pip install -e .` (or `python setup.py '
    'build_ext --inplace`) in the nasbnn_mm repository root to compile the '
    'C++ binary kernels (nasbnn_mm/ops/csrc)')

LANES = 8  # output channels per weight block of the kernels
_ext: Optional[ModuleType] = None


def load_ext() -> ModuleType:
    """Return the compiled extension ``nasbnn_mm._ext``.

    Raises:
        ImportError: If the extension was not built, saying how to build it.
    """
    global _ext
    if _ext is None:
        try:
            ext = importlib.import_module('nasbnn_mm._ext')
        except ImportError as e:
            raise ImportError(f'{EXT_MISSING_MESSAGE} ({e})') from e
        _ext = ext
    return _ext


def kernel_path() -> str:
    """The kernel path in use: ``'avx512'``, ``'avx2'`` or ``'scalar'``."""
    return load_ext().kernel_path()


def set_kernel_path(path: str) -> str:
    """Force a kernel path for this process.

    Args:
        path (str): ``'scalar'``, ``'avx2'``, ``'avx512'`` or ``'auto'``
            (the fastest the CPU runs).

    Returns:
        str: The path now in use.

    Raises:
        RuntimeError: If this CPU or build cannot run ``path``.
    """
    return load_ext().set_kernel_path(path)


def available_kernel_paths() -> List[str]:
    """Kernel paths this CPU and build can run, slowest first."""
    return list(load_ext().available_kernel_paths())


def kernel_threads() -> int:
    """Threads the kernels run on with torch's current thread count
    (``torch.set_num_threads``).

    The kernels split their work with ``at::parallel_for``; an extension
    built without OpenMP (``-fopenmp``) runs it serially and reports 1.
    """
    return load_ext().kernel_threads()


def cpu_features() -> Dict[str, bool]:
    """The CPU flags the dispatcher looks at (popcnt, avx2; avx512f,
    avx512vpopcntdq, avx512ifma; avx512vnni: the 8-bit stem)."""
    return dict(load_ext().cpu_features())


@contextlib.contextmanager
def force_kernel_path(path: str) -> Iterator[str]:
    """Run a block with ``path`` forced, then restore the previous path.

    Example:
        >>> with force_kernel_path('scalar'):
        ...     kernel_path()
        'scalar'
    """
    previous = kernel_path()
    try:
        yield set_kernel_path(path)
    finally:
        set_kernel_path(previous)


def num_words(channels: int, groups: int = 1) -> int:
    """Words per group holding ``channels / groups`` bits."""
    return -(-(channels // groups) // 64)


def _nhwc(x: Tensor) -> Tensor:
    """(N, C, H, W) -> contiguous (N, H, W, C); free for channels_last."""
    return x.permute(0, 2, 3, 1).contiguous()


# --------------------------------------------------------------- kernels
def pack_activation(x: Tensor,
                    groups: int = 1,
                    bias: Optional[Tensor] = None) -> Tensor:
    """Pack the signs of ``x + bias`` (``>= 0`` is +1, as RSign).

    Args:
        x (Tensor): (N, C, H, W) float32; channels_last memory avoids a copy.
        groups (int): Groups of the convolution that reads the result.
            Defaults to 1.
        bias (Tensor, optional): (C, ) added before the sign (the RSign
            shift). Defaults to None.

    Returns:
        Tensor: (N, H, W, G * Wg) uint64.
    """
    return load_ext().pack_activation(_nhwc(x), bias, groups)


def pack_weight(weight: Tensor, groups: int = 1) -> Tensor:
    """Pack the signs of a conv weight (``>= 0`` is +1).

    Args:
        weight (Tensor): (C_out, C_in / G, KH, KW) float32.
        groups (int): Groups G; the packing is per group along C_in / G, the
            same for every group, so G only checks C_out. Defaults to 1.

    Returns:
        Tensor: (C_out, KH, KW, Wg) uint64.
    """
    if weight.shape[0] % groups:
        raise ValueError(f'pack_weight: C_out {weight.shape[0]} not '
                         f'divisible by groups {groups}')
    return load_ext().pack_activation(
        weight.detach().float().permute(0, 2, 3, 1).contiguous(), None, 1)


def block_weight(packed: Tensor, groups: int = 1) -> Tensor:
    """Reorder a packed weight into the kernels' blocks of 8 channels.

    Args:
        packed (Tensor): (C_out, KH, KW, Wg) uint64.
        groups (int): Groups G. Defaults to 1.

    Returns:
        Tensor: (G, ceil(C_out / G / 8), KH, KW, Wg, 8) uint64, zero words
        for the channels past C_out / G.
    """
    return load_ext().block_weight(packed.contiguous(), groups)


def binary_conv2d(x: Tensor,
                  weight: Tensor,
                  in_channels: int,
                  out_channels: int,
                  stride: int = 1,
                  padding: int = 0,
                  groups: int = 1,
                  scale: Optional[Tensor] = None,
                  bias: Optional[Tensor] = None,
                  residual: Optional[Tensor] = None,
                  act: Optional[Sequence[Tensor]] = None,
                  pool_residual: bool = False,
                  out: Optional[Tensor] = None) -> Tensor:
    """XNOR-popcount convolution of packed activations and weights.

    ``v = dot * scale + bias + residual`` per output channel, then the
    RPReLU ``act = (bias_in, weight, bias_out)`` if given; ``dot`` is
    ``F.conv2d(sign(x), sign(W), stride, padding, groups)``, exact.

    Args:
        x (Tensor): (N, H, W, G * Wg) uint64 from :func:`pack_activation`.
        weight (Tensor): (C_out, K, K, Wg) uint64 from :func:`pack_weight`
            or its blocked form from :func:`block_weight` (faster: no
            reordering per call).
        in_channels (int): C_in.
        out_channels (int): C_out.
        stride (int): Stride. Defaults to 1.
        padding (int): Zero padding. Defaults to 0.
        groups (int): Groups; ignored for a blocked weight (it has them).
            Defaults to 1.
        scale (Tensor, optional): (C_out, ) float32. Defaults to None.
        bias (Tensor, optional): (C_out, ) float32. Defaults to None.
        residual (Tensor, optional): (N, C_r, OH, OW) float32 added to
            channel ``oc`` from channel ``oc % C_r`` (the Bi-Real channel
            tiling); channels_last memory avoids a copy. Defaults to None.
        act (Sequence[Tensor], optional): RPReLU ``(bias_in, weight,
            bias_out)``, each (C_out, ). Defaults to None.
        pool_residual (bool): ``residual`` is (N, C_r, 2 * OH, 2 * OW)
            (or one more row/column) and its ``F.avg_pool2d(residual, 2)``
            is added, computed in the epilogue (the stride-2 shortcut).
            Defaults to False.
        out (Tensor, optional): (N, C_out, OH, OW) float32 in
            channels_last memory to write into; must not overlap
            ``residual``. Defaults to None (a new tensor).

    Returns:
        Tensor: (N, C_out, OH, OW) float32 in channels_last memory.
    """
    if weight.dim() == 4:
        weight = block_weight(weight, groups)
    act = tuple(act) if act is not None else (None, None, None)
    return load_ext().binary_conv2d(
        x,
        weight,
        in_channels,
        out_channels,
        stride,
        padding,
        scale,
        bias,
        residual,
        *act,
        pool_residual=pool_residual,
        out=out)[0]


def binary_gemm(a: Tensor, b: Tensor, k: int, n: int) -> Tensor:
    """Binary GEMM ``sign(A) @ sign(B)^T`` of packed rows.

    The 1×1 convolution: rows of ``a`` are pixels, rows of ``b`` output
    channels, both packed along K.

    Args:
        a (Tensor): (M, Wk) uint64, e.g. ``pack_activation`` of an
            (M, K, 1, 1) tensor viewed as (M, Wk).
        b (Tensor): (N, Wk) uint64 packed rows, or their blocked form
            ``block_weight(b.view(N, 1, 1, Wk))``.
        k (int): K, the bits per row.
        n (int): N, the rows of ``b``.

    Returns:
        Tensor: (M, N) float32 holding the integer dot products.
    """
    if b.dim() == 2:
        b = block_weight(b.view(b.shape[0], 1, 1, b.shape[1]))
    out = load_ext().binary_conv2d(a.view(1, 1, *a.shape), b, k, n)[0]
    return out[0, :, 0].T  # channels_last (1, n, 1, M): (M, n) rows


# ------------------------------------------------------------ references
def _pack_last_dim(bits: Tensor, groups: int) -> Tensor:
    """bool (..., C) -> uint64 (..., G * Wg), padding bits 0."""
    channels = bits.shape[-1]
    if channels % groups:
        raise ValueError(
            f'channels {channels} not divisible by groups {groups}')
    words = num_words(channels, groups)
    per_group = bits.reshape(*bits.shape[:-1], groups, channels // groups)
    per_group = F.pad(per_group.long(), (0, words * 64 - channels // groups))
    halves = per_group.reshape(*per_group.shape[:-1], words, 2, 32)
    halves = (halves << torch.arange(32)).sum(-1)  # < 2**32: no overflow
    packed = halves[..., 0] | (halves[..., 1] << 32)  # bit 63 wraps sign
    return packed.reshape(*bits.shape[:-1], groups * words).view(torch.uint64)


def _unpack_last_dim(packed: Tensor, channels: int, groups: int) -> Tensor:
    """uint64 (..., G * Wg) -> bool (..., C)."""
    words = num_words(channels, groups)
    if packed.shape[-1] != groups * words:
        raise ValueError(f'packed has {packed.shape[-1]} words per row; '
                         f'{channels} channels in {groups} groups need '
                         f'{groups * words}')
    bits = (packed.view(torch.int64).unsqueeze(-1) >> torch.arange(64)) & 1
    bits = bits.reshape(*packed.shape[:-1], groups, words * 64)
    bits = bits[..., :channels // groups].bool()
    return bits.reshape(*packed.shape[:-1], channels)


def pack_activation_ref(x: Tensor,
                        groups: int = 1,
                        bias: Optional[Tensor] = None) -> Tensor:
    """Pure-PyTorch :func:`pack_activation`."""
    if bias is not None:
        x = x + bias.view(1, -1, 1, 1)
    return _pack_last_dim(x.permute(0, 2, 3, 1) >= 0, groups)


def unpack_activation_ref(packed: Tensor,
                          channels: int,
                          groups: int = 1) -> Tensor:
    """Inverse of :func:`pack_activation`: (N, H, W, G * Wg) uint64 ->
    (N, C, H, W) float32 of +-1."""
    bits = _unpack_last_dim(packed, channels, groups)
    return (bits.float() * 2 - 1).permute(0, 3, 1, 2)


def pack_weight_ref(weight: Tensor, groups: int = 1) -> Tensor:
    """Pure-PyTorch :func:`pack_weight`."""
    if weight.shape[0] % groups:
        raise ValueError(f'pack_weight: C_out {weight.shape[0]} not '
                         f'divisible by groups {groups}')
    return _pack_last_dim(weight.detach().permute(0, 2, 3, 1) >= 0, 1)


def unpack_weight_ref(packed: Tensor, in_channels_g: int) -> Tensor:
    """Inverse of :func:`pack_weight`: (C_out, KH, KW, Wg) uint64 ->
    (C_out, C_in / G, KH, KW) float32 of +-1."""
    bits = _unpack_last_dim(packed, in_channels_g, 1)
    return (bits.float() * 2 - 1).permute(0, 3, 1, 2)


def binary_conv2d_ref(x: Tensor,
                      weight: Tensor,
                      in_channels: int,
                      out_channels: int,
                      stride: int = 1,
                      padding: int = 0,
                      groups: int = 1,
                      scale: Optional[Tensor] = None,
                      bias: Optional[Tensor] = None,
                      residual: Optional[Tensor] = None,
                      act: Optional[Sequence[Tensor]] = None,
                      pool_residual: bool = False) -> Tensor:
    """Pure-PyTorch :func:`binary_conv2d` (canonical weight only).

    Unpacks to +-1 and convolves in float64 (exact integers), then applies
    the epilogue in float32 in the kernels' order, so it matches them
    bitwise.
    """
    if weight.shape[0] != out_channels:
        raise ValueError(f'weight has {weight.shape[0]} output channels, '
                         f'expected {out_channels}')
    xs = unpack_activation_ref(x, in_channels, groups).double()
    ws = unpack_weight_ref(weight, in_channels // groups).double()
    out = F.conv2d(xs, ws, None, stride, padding, 1, groups).float()
    if scale is not None:
        out = out * scale.view(1, -1, 1, 1)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    if residual is not None:
        if pool_residual:
            residual = F.avg_pool2d(residual, 2)
        index = torch.arange(out_channels) % residual.shape[1]
        out = out + residual[:, index]
    if act is not None:
        bias_in, slope, bias_out = act
        out = out + bias_in.view(1, -1, 1, 1)
        out = torch.where(out > 0, out, out * slope.view(1, -1, 1, 1))
        out = out + bias_out.view(1, -1, 1, 1)
    return out


def binary_gemm_ref(a: Tensor, b: Tensor, k: int) -> Tensor:
    """Pure-PyTorch :func:`binary_gemm` for packed rows ``a``, ``b``."""
    sa = _unpack_last_dim(a, k, 1).double() * 2 - 1
    sb = _unpack_last_dim(b, k, 1).double() * 2 - 1
    return (sa @ sb.T).float()


# ----------------------------------------------------- file storage bits
def pack_bits_flat(bits: Tensor) -> Tensor:
    """Pack a bool tensor, flattened, into ``ceil(numel / 64)`` uint64.

    The storage form of binary weights: exactly 1 bit per weight plus at
    most 63 padding bits per tensor.
    """
    flat = bits.reshape(1, -1)
    return _pack_last_dim(F.pad(flat, (0, (-flat.shape[1]) % 64)), 1)[0]


def unpack_bits_flat(words: Tensor, numel: int) -> Tensor:
    """Inverse of :func:`pack_bits_flat`: the first ``numel`` bits, bool."""
    return _unpack_last_dim(words.view(1, -1),
                            words.numel() * 64, 1)[0, :numel]
