"""Sliceable 8-bit LSQ stem convolution for the NAS-BNN supernet.

The stem of the NAS-BNN search space (https://arxiv.org/abs/2408.15484,
Table 1) searches only its output width; its kernel and groups are fixed.
"""
import math
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .dynamic_op import DynamicMixin
from .lsq import LSQConv2d, LSQQuantizer

__all__ = ['DynamicLSQConv2d']


class DynamicLSQConv2d(DynamicMixin, nn.Module):
    """LSQ convolution whose output width is chosen per forward.

    The weight ``(max_out_channels, max_in_channels, k, k)`` and the
    per-output-channel weight steps are sliced to the first
    ``out_channels`` (and ``in_channels = x.shape[1]``) as views. The weight
    steps are initialised from the whole weight on the first forward, so
    every width starts from the same per-channel steps.

    Args:
        max_in_channels (int): Largest input width (3 for images).
        max_out_channels (int): Largest output width.
        kernel_size (int): Odd kernel size k.
        stride (int): Stride. Defaults to 1.
        dilation (int): Dilation. Defaults to 1.
        bias (bool): Full-precision bias. Defaults to False.
        num_bits (int): Bits of weights and input. Defaults to 8.
        quantize_input (bool): Quantize the input. Defaults to True.

    Shape:
        - Input: (N, C_in, H, W) with C_in <= max_in_channels.
        - Output: (N, out_channels, H_out, W_out), 'same' padding
          ``(k - 1) // 2 * dilation``.

    Example:
        >>> stem = DynamicLSQConv2d(3, 48, 3, stride=2)
        >>> x = torch.randn(2, 3, 32, 32)
        >>> stem(x, out_channels=24).shape
        torch.Size([2, 24, 16, 16])
        >>> torch.allclose(stem.to_static(out_channels=24)(x), stem(x, 24))
        True
    """

    ops_kind = 'int8ops'

    def __init__(self,
                 max_in_channels: int,
                 max_out_channels: int,
                 kernel_size: int,
                 stride: int = 1,
                 dilation: int = 1,
                 bias: bool = False,
                 num_bits: int = 8,
                 quantize_input: bool = True) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(
                f'kernel_size {kernel_size} must be a positive odd int')
        self.max_in_channels = max_in_channels
        self.max_out_channels = max_out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.dilation = dilation
        self.padding = (kernel_size - 1) // 2 * dilation
        self.num_bits = num_bits
        self.weight = nn.Parameter(
            torch.empty(max_out_channels, max_in_channels, kernel_size,
                        kernel_size))
        self.bias = nn.Parameter(
            torch.empty(max_out_channels)) if bias else None
        self.weight_quantizer = LSQQuantizer(num_bits, max_out_channels)
        self.input_quantizer = (
            LSQQuantizer(num_bits) if quantize_input else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise weight and bias as :class:`torch.nn.Conv2d` does."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.weight[0].numel())
            nn.init.uniform_(self.bias, -bound, bound)

    def _check(self, in_channels: int, out_channels: int) -> None:
        if not 1 <= in_channels <= self.max_in_channels:
            raise ValueError(f'in_channels {in_channels} (x.shape[1]) not in '
                             f'[1, {self.max_in_channels}]')
        if not 1 <= out_channels <= self.max_out_channels:
            raise ValueError(f'out_channels {out_channels} not in '
                             f'[1, {self.max_out_channels}]')

    def forward(self, x: Tensor, out_channels: Optional[int] = None) -> Tensor:
        """Quantize and convolve with the first ``out_channels`` filters.

        Args:
            x (Tensor): (N, C_in, H, W).
            out_channels (int, optional): Active output width. Defaults to
                ``max_out_channels``.

        Returns:
            Tensor: (N, out_channels, H_out, W_out).
        """
        if out_channels is None:
            out_channels = self.max_out_channels
        self._check(x.shape[1], out_channels)
        self.weight_quantizer.maybe_init(self.weight)
        if self.input_quantizer is not None:
            x = self.input_quantizer(x)
        weight = self.weight_quantizer(self.weight[:out_channels, :x.shape[1]])
        bias = None if self.bias is None else self.bias[:out_channels]
        return F.conv2d(x, weight, bias, self.stride, self.padding,
                        self.dilation)

    def largest_choice(self) -> Dict[str, int]:
        """The setting of ``forward`` without arguments."""
        return dict(
            in_channels=self.max_in_channels,
            out_channels=self.max_out_channels)

    def _to_static(self, in_channels: int, out_channels: int) -> LSQConv2d:
        """Export one width as a plain :class:`LSQConv2d`.

        Weight, bias and the weight steps are sliced copies; the input step
        and the ``initialized`` states are copied too.

        Returns:
            LSQConv2d: Same output as this layer at that width.
        """
        self._check(in_channels, out_channels)
        self.weight_quantizer.maybe_init(self.weight)
        static = LSQConv2d(
            in_channels,
            out_channels,
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            bias=self.bias is not None,
            num_bits=self.num_bits,
            quantize_input=self.input_quantizer is not None).to(self.weight)
        static.weight.copy_(self.weight[:out_channels, :in_channels])
        if self.bias is not None:
            static.bias.copy_(self.bias[:out_channels])
        static.weight_quantizer.step.copy_(
            self.weight_quantizer.step[:out_channels])
        static.weight_quantizer.initialized.copy_(
            self.weight_quantizer.initialized)
        if self.input_quantizer is not None:
            static.input_quantizer.load_state_dict(
                self.input_quantizer.state_dict())
        return static

    def extra_repr(self) -> str:
        return (f'{self.max_in_channels}, {self.max_out_channels}, '
                f'kernel_size={self.kernel_size}, stride={self.stride}, '
                f'num_bits={self.num_bits}')
