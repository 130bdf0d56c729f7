"""The Bi-Real shortcut of NAS-BNN's separable blocks."""
import torch.nn.functional as F
from torch import Tensor

__all__ = ['bireal_shortcut']


def bireal_shortcut(x: Tensor, out_channels: int, stride: int) -> Tensor:
    """Match ``x`` to a block output of ``out_channels`` and ``stride``.

    Stride 2 is a 2×2 average pooling (stride 2); a wider output tiles the
    input channels (``[x, x, ...]`` cut to ``out_channels``) as in the paper's
    Fig. 1(b); a narrower one keeps the first ``out_channels`` (Fig. 1(c), the
    information loss the Non-Decreasing constraint avoids; only subnets of the
    constraint-off ablation have it).

    Args:
        x (Tensor): Block input (N, C_in, H, W).
        out_channels (int): Output width C_out.
        stride (int): 1 or 2.

    Returns:
        Tensor: (N, C_out, H / stride, W / stride); ``x`` itself when nothing
        changes.
    """
    if stride == 2:
        x = F.avg_pool2d(x, 2, stride=2)
    elif stride != 1:
        raise ValueError(f'stride {stride} not in (1, 2)')
    in_channels = x.shape[1]
    if out_channels == in_channels:
        return x
    if out_channels < in_channels:
        return x[:, :out_channels]
    repeats = -(-out_channels // in_channels)
    return x.repeat(1, repeats, 1, 1)[:, :out_channels]
