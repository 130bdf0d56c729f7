"""CPU kernels of the supernet's training step (extension ``nasbnn_mm._ext``).

- ``weight_norm_forward`` / ``weight_norm_backward``: what
  ``NormalizedWeightFunction`` (``models/layers/binary_conv.py``) does with
  PyTorch operations, one output channel at a time on torch's threads, so
  a channel's values stay in L1 across the passes (mean, variance,
  ``mean |W_n|``, the output; in the backward the clipped gradient's mean
  and dot product with ``W_n``, then the gradient) instead of ~14 passes
  over the whole weight in memory.
- ``rsign_*`` / ``rprelu_*``: RSign and RPReLU (``models/layers/
  activations.py``), forward and backward in one pass over the map each,
  the per-channel parameter gradients summed in that pass.
- ``rprelu_rsign_*``: a block's ``RSign(RPReLU(y + r))`` (the residual
  add, RPReLU and the next RSign) in one pass each way, keeping RPReLU's
  output (the next shortcut) too.
- ``batch_norm_*``: training-mode batch normalization of the supernet's
  ``DynamicBatchNorm2d`` (``models/layers/dynamic_batch_norm.py``), one
  channel at a time so its planes stay in cache across the passes (mean,
  variance, output; two sums, then the gradient), where ATen's CPU kernel
  takes ~1 ns per value at the supernet's shapes.
- ``avg_pool2x2_*``: the 2 x 2 average pooling of the stride-2 shortcut
  (``models/layers/shortcut.py``) on even sizes, ATen's arithmetic with
  one output row per step (ATen's window loops run ~3x slower).
- ``nchw_from_nhwc``: the popcount convolutions' channels_last output
  copied to (N, C, H, W) by 16 x 16 tiles (ATen's strided copy runs 4-6x
  slower than a plain copy).
- ``kernel_map_*``: a sliced conv weight's kernel transformations and
  Bi-Transformation, ``w[o, i, :] @ M`` per row of a strided view
  (``models/layers/kernel_map.py``).
- ``sign_input_conv2d`` / ``sign_conv_weight_grad`` /
  ``sign_conv_input_grad``: a convolution of a +-1 input (an RSign output)
  and its weight gradient, and the input gradient of a +-alpha_o weight, by
  table lookup: one vector permute and add for four products
  (``models/layers/conv_operands.py``: the Bi-Teacher's convolutions, the
  backward of the binary ones).
- ``pack_signs``: the signs of a (N, C, H, W) map or a conv weight packed
  for the XNOR-popcount kernels, with the check that makes them exact
  (``models/layers/xnor_conv.py``: the forward of a binary convolution).

Sums run in 16 interleaved partial sums per channel, so the results differ
from PyTorch's reductions in the last bits only; element-wise results are
the modules' own float operations, bit for bit (up to the sign of a
zero; batch normalization's follow its statistics). Callers take these paths
where :func:`training_ext` returns the extension (CPU float32 tensors) and
PyTorch operations elsewhere (CUDA, other dtypes, extension not built).
"""
from contextlib import contextmanager
from types import ModuleType
from typing import Iterator, List, Optional, Tuple

import torch
from torch import Tensor

from .binary_conv import load_ext

__all__ = [
    'training_ext', 'training_kernels', 'weight_norm_forward',
    'weight_norm_backward', 'rsign_forward', 'rsign_backward',
    'rprelu_forward', 'rprelu_backward', 'rprelu_rsign_forward',
    'rprelu_rsign_backward', 'batch_norm_forward', 'batch_norm_backward',
    'avg_pool2x2_forward', 'avg_pool2x2_backward', 'nchw_from_nhwc',
    'pack_signs', 'kernel_map_forward', 'kernel_map_backward',
    'sign_input_conv2d', 'sign_conv_weight_grad', 'sign_conv_input_grad'
]

_ext_missing = False
_enabled = True


@contextmanager
def training_kernels(enabled: bool) -> Iterator[None]:
    """Turn these kernels on or off inside a block (e.g. to time or check
    the PyTorch path on the CPU); not thread-safe.

    Example:
        >>> with training_kernels(False):
        ...     loss = model(inputs).sum()  # PyTorch operations only
    """
    global _enabled
    previous, _enabled = _enabled, enabled
    try:
        yield
    finally:
        _enabled = previous


def training_ext(tensor: Tensor) -> Optional[ModuleType]:
    """The extension when its kernels run on ``tensor``: a CPU float32
    tensor, the extension built and :func:`training_kernels` not off; else
    None (the caller then uses PyTorch operations, e.g. on CUDA)."""
    global _ext_missing
    if (not _enabled or _ext_missing or tensor.device.type != 'cpu'
            or tensor.dtype != torch.float32):
        return None
    try:
        return load_ext()
    except ImportError:
        _ext_missing = True
        return None


def weight_norm_forward(flat: Tensor, official: bool, eps: float,
                        binary: bool) -> List[Tensor]:
    """Eq. (6) per row of ``flat`` (C, n), then (``binary``) ``alpha *
    sign``.

    Args:
        flat (Tensor): (C, n) CPU float32, rows contiguous (any row stride).
        official (bool): ``(W - mean) / std`` with the unbiased std (the
            official code) instead of ``(W - mean) / sqrt(var + eps)``.
        eps (float): Added to the biased variance (not ``official``).
        binary (bool): Return ``alpha * sign(W_n)``, ``alpha = mean |W_n|``.

    Returns:
        list[Tensor]: ``[out (C, n), mean (C, ), norm (C, ), alpha (C, )]``;
        ``norm`` is ``1 / sqrt(var + eps)`` or (``official``) the std,
        ``alpha`` is 1 unless ``binary``.
    """
    return load_ext().weight_norm_forward(flat, official, eps, binary)


def weight_norm_backward(grad: Tensor, flat: Tensor, stats: List[Tensor],
                         official: bool, binary: bool) -> Tensor:
    """Gradient w.r.t. ``flat`` of :func:`weight_norm_forward`.

    Args:
        grad (Tensor): (C, n) gradient of the output, rows contiguous.
        flat (Tensor): The forward's input.
        stats (list[Tensor]): The forward's ``[mean, norm, alpha]``.
        official (bool): As in the forward.
        binary (bool): As in the forward; the gradient passes where
            ``|W_n| <= 1`` (straight-through), scaled by ``alpha``.

    Returns:
        Tensor: (C, n).
    """
    mean, norm, alpha = stats
    return load_ext().weight_norm_backward(grad, flat, mean, norm, alpha,
                                           official, binary)


def rsign_forward(x: Tensor, bias: Tensor) -> Tensor:
    """``sign(x + bias)`` (``+1`` at 0) of a contiguous (N, C, H, W) map,
    ``bias`` (C, )."""
    return load_ext().rsign_forward(x, bias)


def rsign_backward(grad: Tensor, x: Tensor,
                   bias: Tensor) -> Tuple[Tensor, Tensor]:
    """ApproxSign gradients of :func:`rsign_forward`: ``grad * 2 * max(0,
    1 - |x + bias|)`` (N, C, H, W) and its sum per channel (C, )."""
    return load_ext().rsign_backward(grad, x, bias)


def rprelu_forward(x: Tensor, bias_in: Tensor, weight: Tensor,
                   bias_out: Tensor) -> Tensor:
    """``PReLU(x + bias_in) + bias_out`` of a contiguous (N, C, H, W) map,
    the parameters (C, ) each; the module's float operations (a zero
    may come out +0 where PReLU gives -0)."""
    return load_ext().rprelu_forward(x, bias_in, weight, bias_out)


def rprelu_backward(grad: Tensor, x: Tensor, bias_in: Tensor,
                    weight: Tensor) -> List[Tensor]:
    """Gradients of :func:`rprelu_forward`: ``[x (N, C, H, W), bias_in,
    weight, bias_out (C, )]``."""
    return load_ext().rprelu_backward(grad, x, bias_in, weight)


def rprelu_rsign_forward(y: Tensor, r: Tensor, bias_in: Tensor, weight: Tensor,
                         bias_out: Tensor, sign_bias: Tensor) -> List[Tensor]:
    """``[out, sign]`` of contiguous (N, C, H, W) maps ``y``, ``r``: ``out
    = PReLU(y + r + bias_in) + bias_out`` and ``sign = sign(out +
    sign_bias)``, the float operations of :func:`rprelu_forward` and
    :func:`rsign_forward`; parameters (C, ) each."""
    return load_ext().rprelu_rsign_forward(y, r, bias_in, weight, bias_out,
                                           sign_bias)


def rprelu_rsign_backward(grad_out: Tensor, grad_sign: Tensor, y: Tensor,
                          r: Tensor, bias_in: Tensor, weight: Tensor,
                          bias_out: Tensor, sign_bias: Tensor) -> List[Tensor]:
    """Gradients of :func:`rprelu_rsign_forward` from those of ``out`` and
    ``sign``: ``[y (= r) (N, C, H, W), bias_in, weight, bias_out, sign_bias
    (C, )]``, the values :func:`rsign_backward`, the sum of the two
    gradients of ``out`` and :func:`rprelu_backward` give."""
    return load_ext().rprelu_rsign_backward(grad_out, grad_sign, y, r, bias_in,
                                            weight, bias_out, sign_bias)


def batch_norm_forward(x: Tensor, weight: Tensor, bias: Tensor,
                       running_mean: Optional[Tensor],
                       running_var: Optional[Tensor], momentum: float,
                       eps: float) -> List[Tensor]:
    """Training-mode batch normalization of a contiguous (N, C, H, W) map
    with its batch statistics, as ``F.batch_norm(..., training=True)``.

    Args:
        x (Tensor): (N, C, H, W) CPU float32, ``N * H * W > 1``.
        weight, bias (Tensor): (C, ) contiguous.
        running_mean, running_var (Tensor, optional): (C, ) contiguous,
            both or neither; updated in place with ``momentum`` (the
            running variance with the unbiased batch variance).
        momentum (float): Weight of the batch statistics.
        eps (float): Added to the biased batch variance.

    Returns:
        list[Tensor]: ``[y (N, C, H, W), mean (C, ), invstd (C, )]``,
        ``invstd = 1 / sqrt(var + eps)``.
    """
    return load_ext().batch_norm_forward(x, weight, bias, running_mean,
                                         running_var, momentum, eps)


def batch_norm_backward(grad: Tensor, x: Tensor, weight: Tensor, mean: Tensor,
                        invstd: Tensor) -> List[Tensor]:
    """Gradients of :func:`batch_norm_forward` for the output gradient
    ``grad`` (N, C, H, W contiguous): ``[x (N, C, H, W), weight (C, ),
    bias (C, )]``."""
    return load_ext().batch_norm_backward(grad, x, weight, mean, invstd)


def avg_pool2x2_forward(x: Tensor) -> Tensor:
    """``F.avg_pool2d(x, 2)`` of a contiguous (N, C, H, W) CPU float32 map
    of even H and W, bit for bit."""
    return load_ext().avg_pool2x2_forward(x)


def avg_pool2x2_backward(grad: Tensor, height: int, width: int) -> Tensor:
    """The input gradient (N, C, height, width) of
    :func:`avg_pool2x2_forward`: ``grad / 4`` at each of a window's four
    inputs; ``grad`` contiguous."""
    return load_ext().avg_pool2x2_backward(grad, height, width)


def nchw_from_nhwc(x: Tensor) -> Tensor:
    """A contiguous copy of a channels_last (N, C, H, W) CPU float32
    tensor (the values of ``x.contiguous()``)."""
    return load_ext().nchw_from_nhwc(x)


def pack_signs(x: Tensor, groups: int) -> Tuple[Tensor, Tensor, bool]:
    """Signs (``>= 0`` is +1) of a contiguous (N, C, H, W) float32 tensor
    packed along C per group, read in place.

    Args:
        x (Tensor): An activation map, or a conv weight (C_out, C_in / G,
            KH, KW) with ``groups=1``.
        groups (int): Groups G of the convolution that reads ``x``.

    Returns:
        tuple: ``(packed, magnitude, uniform)``: packed (N, H, W, G * Wg)
        uint64 as :func:`~nasbnn_mm.ops.binary_conv.pack_activation` (for a
        weight: the :func:`~nasbnn_mm.ops.binary_conv.pack_weight` layout),
        ``magnitude`` (N, ) = ``|x[n, 0, 0, 0]|``, and ``uniform``: every
        value of each n has that magnitude (so ``x = magnitude * sign``
        exactly; False on a zero among nonzeros, or a NaN).
    """
    return load_ext().pack_signs(x, groups)


def kernel_map_forward(weight: Tensor, kernel_map: Tensor) -> Tensor:
    """``weight[o, i, :] @ kernel_map`` for every row of a (O, I, K) CPU
    float32 view whose rows are contiguous (any strides over O and I), a
    (K, J) map, K, J <= 64; returns (O, I, J) contiguous."""
    return load_ext().kernel_map_forward(weight, kernel_map)


def kernel_map_backward(grad: Tensor, weight: Tensor, kernel_map: Tensor,
                        need_weight: bool,
                        need_map: bool) -> List[Optional[Tensor]]:
    """Gradients of :func:`kernel_map_forward` for the output gradient
    ``grad`` (O, I, J): ``[grad @ kernel_map.T (O, I, K), weight^T grad
    summed over the rows (K, J)]``, each None unless asked for."""
    grads = load_ext().kernel_map_backward(grad, weight, kernel_map,
                                           need_weight, need_map)
    return [
        g if want else None for g, want in zip(grads, (need_weight, need_map))
    ]


def sign_conv_weight_grad(grad: Tensor, x: Tensor, kernel_size: int,
                          stride: int, padding: int,
                          groups: int) -> Optional[Tensor]:
    """The weight gradient of ``F.conv2d(x, W, stride=stride,
    padding=padding, groups=groups)`` for a square ``kernel_size`` kernel,
    when ``x`` is +-1, by table lookup (``csrc/sign_grad_op.cpp``).

    Four samples' signs at one input position are a 4-bit pattern, and the
    16 signed sums of the four samples' output gradients one table, so one
    vector permute and add stand for four multiply-adds; products on the
    zero padding are skipped. Each value sums its terms in a fixed order
    (any thread count); the sums differ from a float convolution's in the
    last bits. The avx512 kernel path only (:func:`~nasbnn_mm.ops.
    binary_conv.kernel_path`).

    Args:
        grad (Tensor): (N, C_out, H_out, W_out) CPU float32.
        x (Tensor): (N, C_in, H, W) CPU float32.

    Returns:
        Tensor | None: (C_out, C_in / groups, K, K), or None when ``x`` has
        a value other than +-1.
    """
    return load_ext().sign_conv_weight_grad(grad, x, kernel_size, stride,
                                            padding, groups)


def sign_input_conv2d(x: Tensor, weight: Tensor, stride: int, padding: int,
                      groups: int) -> Optional[Tensor]:
    """``F.conv2d(x, weight, stride=stride, padding=padding, groups=groups)``
    for a square kernel, when ``x`` is +-1, by table lookup
    (``csrc/sign_conv_op.cpp``).

    Four input channels' signs of one sample at one position are a 4-bit
    pattern, and the 16 signed sums of those channels' weights at one tap
    one table; products on the zero padding are skipped. Each output sums
    its terms in a fixed order (any thread count); the sums differ from
    ``F.conv2d``'s in the last bits. The avx512 kernel path only.

    Args:
        x (Tensor): (N, C_in, H, W) CPU float32.
        weight (Tensor): (C_out, C_in / groups, K, K) CPU float32.

    Returns:
        Tensor | None: (N, C_out, H_out, W_out), or None when ``x`` has a
        value other than +-1.
    """
    return load_ext().sign_input_conv2d(x, weight, stride, padding, groups)


def sign_conv_input_grad(grad: Tensor, weight: Tensor, height: int, width: int,
                         stride: int, padding: int,
                         groups: int) -> Optional[Tensor]:
    """The input gradient of ``F.conv2d(x, weight, stride=stride,
    padding=padding, groups=groups)`` for an ``x`` of ``height`` x
    ``width`` when every weight row is +-alpha_o, by table lookup
    (``csrc/sign_dgrad_op.cpp``).

    Four output channels' weight signs at one tap are a 4-bit pattern, and
    the 16 signed sums of those channels' ``alpha_o * grad`` at one output
    position one table; terms outside the map are skipped. Each value sums
    its terms in a fixed order (any thread count); the sums differ from a
    float convolution's in the last bits. The avx512 kernel path only.

    Args:
        grad (Tensor): (N, C_out, H_out, W_out) CPU float32.
        weight (Tensor): (C_out, C_in / groups, K, K) CPU float32.

    Returns:
        Tensor | None: (N, C_in, height, width), or None when a weight row
        is not +-alpha_o with alpha_o > 0.
    """
    return load_ext().sign_conv_input_grad(grad, weight, height, width, stride,
                                           padding, groups)
