"""A sliced conv weight through its kernel map (kernel and Bi-Transformations).

``apply_kernel_map(W, M)`` is ``(W.flatten(2) @ M).view(O, I, k, k)``: every
flattened K-tap kernel of ``W`` (O, I, kh, kw) times the (K, k^2) map of
:meth:`DynamicBinaryConv2d._kernel_map`. PyTorch runs it as one GEMM over
the O * I rows, after copying a column-sliced ``W`` into a contiguous one,
and BLAS is slow at so few columns. On CPU float32 tensors the extension's
``kernel_map_*`` loops read the strided view in place and keep each row's
sums in registers: 1.4-3.2x faster forward + backward on the supernet's
shapes, about as fast forward on a whole weight's 25 -> 25 map
(``docs/benchmarks.md``); elsewhere (CUDA, other dtypes, the extension
off) the PyTorch expression runs. The two differ in the last bits (fused
multiply-adds in another order).
"""
import torch
from torch import Tensor
from torch.autograd import Function

from nasbnn_mm.ops.training import (kernel_map_backward, kernel_map_forward,
                                    training_ext)

__all__ = ['apply_kernel_map']

MAX_TAPS = 64  # the extension's limit on K and k^2


class KernelMapFunction(Function):
    """``W (O, I, K) @ M (K, J)`` on the extension, both gradients."""

    @staticmethod
    def forward(ctx, weight: Tensor, kernel_map: Tensor) -> Tensor:
        ctx.save_for_backward(weight, kernel_map)
        return kernel_map_forward(weight, kernel_map.detach())

    @staticmethod
    def backward(ctx, grad: Tensor):
        weight, kernel_map = ctx.saved_tensors
        return tuple(
            kernel_map_backward(grad, weight, kernel_map.detach(),
                                *ctx.needs_input_grad[:2]))


def apply_kernel_map(weight: Tensor, kernel_map: Tensor, k: int) -> Tensor:
    """Each kernel of ``weight`` through ``kernel_map``.

    Args:
        weight (Tensor): (O, I, kh, kw), e.g. a slice of a shared weight.
        kernel_map (Tensor): (kh * kw, k * k).
        k (int): Kernel size of the result.

    Returns:
        Tensor: (O, I, k, k), contiguous.
    """
    rows, shape = weight.flatten(2), (*weight.shape[:2], k, k)
    if (training_ext(weight) is None or kernel_map.dtype != torch.float32
            or max(kernel_map.shape) > MAX_TAPS or rows.stride(2) != 1):
        return (rows @ kernel_map).view(shape)
    return KernelMapFunction.apply(rows, kernel_map).view(shape)
