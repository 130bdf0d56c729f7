"""Kernel transformation of Once-for-All (https://arxiv.org/abs/1908.09791).

A supernet that searches kernel sizes shares one weight of the largest kernel.
A smaller kernel is the center crop of the next larger one followed by a
learnable ``k^2 x k^2`` matrix (initialised to the identity) shared by all
channels; e.g. 7x7 -> 5x5 -> 3x3 goes through two such matrices.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ['center_crop_kernel', 'KernelTransformation']


def center_crop_kernel(weight: Tensor, kernel_size: int) -> Tensor:
    """Return the centered ``kernel_size x kernel_size`` window as a view.

    Args:
        weight (Tensor): (C_out, C_in, K, K) with K odd and >= kernel_size.
        kernel_size (int): Odd target size k.

    Returns:
        Tensor: (C_out, C_in, k, k), a view of ``weight``.
    """
    start = (weight.shape[-1] - kernel_size) // 2
    end = start + kernel_size
    return weight[..., start:end, start:end]


class KernelTransformation(nn.Module):
    """Center crop from a larger kernel, then a learnable kernel map (OFA).

    The matrix is applied as in OFA and the official NAS-BNN code
    (``F.linear``, i.e. ``w @ matrix.T``), so their ``matrix_<K>to<k>``
    parameters load unchanged.

    Args:
        in_kernel_size (int): Odd source kernel size K.
        out_kernel_size (int): Odd target kernel size k < K.

    Shape:
        - Input: (C_out, C_in, K, K).
        - Output: (C_out, C_in, k, k).

    Example:
        >>> m = KernelTransformation(5, 3)
        >>> w = torch.randn(8, 4, 5, 5)
        >>> torch.equal(m(w), w[:, :, 1:4, 1:4])
        True
    """

    def __init__(self, in_kernel_size: int, out_kernel_size: int) -> None:
        super().__init__()
        self.in_kernel_size = in_kernel_size
        self.out_kernel_size = out_kernel_size
        self.matrix = nn.Parameter(torch.eye(out_kernel_size**2))

    def forward(self, weight: Tensor) -> Tensor:
        """Crop the center and transform it.

        Args:
            weight (Tensor): (C_out, C_in, K, K).

        Returns:
            Tensor: (C_out, C_in, k, k).
        """
        crop = center_crop_kernel(weight, self.out_kernel_size)
        out = F.linear(crop.flatten(2), self.matrix)
        return out.view_as(crop)

    def extra_repr(self) -> str:
        return f'{self.in_kernel_size} -> {self.out_kernel_size}'
