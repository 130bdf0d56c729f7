"""8-bit LSQ quantization for the NAS-BNN stem.

NAS-BNN (https://arxiv.org/abs/2408.15484, sec. 4.1.2) quantizes the first
convolution to 8 bits with LSQ (Esser et al., https://arxiv.org/abs/1902.08153)
instead of keeping it in full precision. LSQ learns the step size ``s``:
``q(v) = round(clip(v / s, -Qn, Qp)) * s`` with a straight-through round and
the step's gradient scaled by ``g = 1 / sqrt(N * Qp)``.
"""
import math
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.dist import all_reduce
from mmengine.registry import MODELS as MMENGINE_MODELS
from torch import Tensor

from nasbnn_mm.registry import MODELS

__all__ = ['grad_scale', 'round_ste', 'LSQQuantizer', 'LSQConv2d']


def grad_scale(x: Tensor, scale: float) -> Tensor:
    """Return ``x`` unchanged with its gradient multiplied by ``scale``."""
    y = x * scale
    return (x - y).detach() + y


def round_ste(x: Tensor) -> Tensor:
    """Round to the nearest integer with a straight-through gradient."""
    return (x.round() - x).detach() + x


class LSQQuantizer(nn.Module):
    """Signed LSQ fake quantizer with a learned step size.

    The integer grid is ``[q_min, q_max] = [-2^(b-1), 2^(b-1) - 1]``
    (``[-128, 127]`` for 8 bits; LSQ's ``-Qn`` and ``Qp``). The step is per
    channel along dim 0 (weights, one step per output channel) when
    ``num_channels`` is given, else one step (activations).
    The gradient scale uses ``N = x[0].numel()``: the elements of one output
    channel for per-channel weights (N_W of the step), the features of one
    sample for activations (LSQ's N_F).

    The step is initialised on the first forward from the tensor it
    quantizes, ``2 * mean|x| / sqrt(Qp)`` (per channel for weights), then
    averaged over distributed ranks so every rank starts equal; the
    ``initialized`` buffer keeps loaded checkpoints from being re-initialised.
    Per-channel quantizers also accept the first ``C <= num_channels``
    channels (sliced steps), as dynamic layers need, once initialised.

    Args:
        num_bits (int): Bit width b. Defaults to 8.
        num_channels (int, optional): Per-channel steps along dim 0; None
            for a single step. Defaults to None.

    Shape:
        - Input: any shape, (C, ...) with C <= num_channels if per channel.
        - Output: same as the input.

    Example:
        >>> q = LSQQuantizer(8, num_channels=4)
        >>> w_q = q(torch.randn(4, 3, 3, 3))
        >>> codes = w_q / q.step.detach().view(4, 1, 1, 1)
        >>> bool((codes - codes.round()).abs().max() < 1e-3)
        True
    """

    def __init__(self,
                 num_bits: int = 8,
                 num_channels: Optional[int] = None) -> None:
        super().__init__()
        if num_bits < 2:
            raise ValueError(f'num_bits {num_bits} must be >= 2')
        self.num_bits = num_bits
        self.num_channels = num_channels
        self.q_min = -2**(num_bits - 1)
        self.q_max = 2**(num_bits - 1) - 1
        self.step = nn.Parameter(torch.ones(num_channels or 1))
        self.register_buffer('initialized', torch.zeros((), dtype=torch.uint8))
        # Python-side copy of ``initialized``: avoids a device sync per call.
        self._init_checked = False

    @torch.no_grad()
    def maybe_init(self, x: Tensor) -> None:
        """Initialise the step from ``x`` unless already initialised.

        Args:
            x (Tensor): The full tensor, (num_channels, ...) if per channel.
        """
        if self._init_checked:
            return
        if not self.initialized:
            if self.num_channels is None:
                mean_abs = x.abs().mean().view(1)
            else:
                if x.shape[0] != self.num_channels:
                    raise ValueError(
                        f'LSQQuantizer init: x.shape[0] {x.shape[0]} != '
                        f'num_channels {self.num_channels}')
                mean_abs = x.abs().flatten(1).mean(1)
            step = 2 * mean_abs / math.sqrt(self.q_max)
            all_reduce(step, op='mean')
            self.step.copy_(step.clamp_(min=torch.finfo(step.dtype).eps))
            self.initialized.fill_(1)
        self._init_checked = True

    def forward(self, x: Tensor) -> Tensor:
        """Fake-quantize ``x`` to the integer grid times the step.

        Args:
            x (Tensor): (C, ...) for per-channel steps, else any shape.

        Returns:
            Tensor: Same shape, values in ``step * {q_min, ..., q_max}``.
        """
        self.maybe_init(x)
        step = self.effective_step(x)
        return round_ste((x / step).clamp(self.q_min, self.q_max)) * step

    def effective_step(self, x: Tensor) -> Tensor:
        """The step :meth:`forward` quantizes ``x`` with: clamped to
        ``eps``, with LSQ's gradient scale (its value may differ from
        ``step`` in the last bit, and depends on ``x[0].numel()``).

        Args:
            x (Tensor): (C, ...) for per-channel steps, else any shape.

        Returns:
            Tensor: (C, 1, ...) per channel (broadcasting over ``x``),
            else (1, ).
        """
        step = self.step
        if self.num_channels is not None:
            if x.shape[0] > self.num_channels:
                raise ValueError(f'LSQQuantizer: x.shape[0] {x.shape[0]} > '
                                 f'num_channels {self.num_channels}')
            step = step[:x.shape[0]].view((-1, ) + (1, ) * (x.dim() - 1))
        return grad_scale(
            step.clamp(min=torch.finfo(step.dtype).eps),
            1.0 / math.sqrt(x[0].numel() * self.q_max))

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self._init_checked = False
        super()._load_from_state_dict(*args, **kwargs)

    def extra_repr(self) -> str:
        return f'num_bits={self.num_bits}, num_channels={self.num_channels}'


@MODELS.register_module()
class LSQConv2d(nn.Conv2d):
    """Conv2d with LSQ-quantized weights and input (the 8-bit stem).

    Weights use per-output-channel steps (as the official NAS-BNN stem);
    the input uses one step. Both grids are signed, ``[-128, 127]`` for 8
    bits, since the stem input (a normalized image) is signed. The bias, if
    any, stays in full precision. Registered as ``LSQConv2d`` in MMEngine's
    root ``MODELS`` and in ``nasbnn_mm``.

    Args:
        in_channels (int): Input channels C_in.
        out_channels (int): Output channels C_out.
        kernel_size (int | tuple[int, int]): Kernel size.
        stride (int | tuple[int, int]): Stride. Defaults to 1.
        padding (int | tuple[int, int] | str): Padding. Defaults to 0.
        dilation (int | tuple[int, int]): Dilation. Defaults to 1.
        groups (int): Groups. Defaults to 1.
        bias (bool): Full-precision bias. Defaults to True.
        padding_mode (str): As in ``Conv2d``. Defaults to 'zeros'.
        num_bits (int): Bits of weights and input. Defaults to 8.
        quantize_input (bool): Quantize the input too (the official code
            does not; set False to load its stem). Defaults to True.

    Shape:
        - Input: (N, C_in, H, W).
        - Output: (N, C_out, H_out, W_out).

    Example:
        >>> conv = LSQConv2d(3, 16, 3, stride=2, padding=1, bias=False)
        >>> conv(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 16, 16, 16])
    """

    ops_kind = 'int8ops'

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: Union[int, Tuple[int, int]],
                 stride: Union[int, Tuple[int, int]] = 1,
                 padding: Union[int, Tuple[int, int], str] = 0,
                 dilation: Union[int, Tuple[int, int]] = 1,
                 groups: int = 1,
                 bias: bool = True,
                 padding_mode: str = 'zeros',
                 num_bits: int = 8,
                 quantize_input: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride,
                         padding, dilation, groups, bias, padding_mode)
        self.weight_quantizer = LSQQuantizer(num_bits, out_channels)
        self.input_quantizer = (
            LSQQuantizer(num_bits) if quantize_input else None)

    def forward(self, x: Tensor) -> Tensor:
        """Quantize input and weight, then convolve.

        Args:
            x (Tensor): (N, C_in, H, W).

        Returns:
            Tensor: (N, C_out, H_out, W_out).
        """
        if self.input_quantizer is not None:
            x = self.input_quantizer(x)
        return self._conv_forward(x, self.weight_quantizer(self.weight),
                                  self.bias)


MMENGINE_MODELS.register_module('LSQConv2d', module=LSQConv2d)
