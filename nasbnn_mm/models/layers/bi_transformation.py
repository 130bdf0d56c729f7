"""Bi-Transformation of NAS-BNN (https://arxiv.org/abs/2408.15484, 3.3.2).

A learnable ``k^2 x k^2`` matrix, one per layer and kernel size, shared by all
channels, maps the shared full-precision weight to the binary domain:
``W_b = Reshape_kxk(Flatten(W_r) @ theta)`` (eq. 5).
"""
from typing import Tuple, Union

import torch
import torch.nn as nn
from torch import Tensor
from torch.nn.modules.utils import _pair

__all__ = ['BiTransformation']


class BiTransformation(nn.Module):
    """Learnable linear map of each ``k x k`` kernel slice (eq. 5).

    ``theta`` multiplies the flattened kernels from the right, as in eq. 5.
    It starts as the identity, so an untrained Bi-Transformation changes
    nothing.

    NOTE: the official NAS-BNN code stores this matrix as ``fp2bin_<k>`` and
    applies it with ``F.linear`` (``w @ M.T``), so its ``M`` is ``theta.T``.

    Args:
        kernel_size (int | tuple[int, int]): Kernel size k (or (kh, kw), then
            theta is ``kh*kw x kh*kw``).

    Shape:
        - Input: (C_out, C_in, kh, kw).
        - Output: (C_out, C_in, kh, kw).

    Example:
        >>> m = BiTransformation(3)
        >>> w = torch.randn(8, 4, 3, 3)
        >>> torch.equal(m(w), w)
        True
    """

    def __init__(self, kernel_size: Union[int, Tuple[int, int]]) -> None:
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        kh, kw = self.kernel_size
        self.theta = nn.Parameter(torch.eye(kh * kw))

    def forward(self, weight: Tensor) -> Tensor:
        """Map the kernels to the binary domain.

        Args:
            weight (Tensor): (C_out, C_in, kh, kw).

        Returns:
            Tensor: (C_out, C_in, kh, kw).
        """
        return (weight.flatten(2) @ self.theta).view_as(weight)

    def extra_repr(self) -> str:
        return f'kernel_size={self.kernel_size}'
