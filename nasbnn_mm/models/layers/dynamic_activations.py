"""Sliceable RSign and RPReLU for the NAS-BNN supernet."""
import torch
from torch import Tensor

from .activations import RPReLU, RSign

__all__ = ['DynamicRSign', 'DynamicRPReLU']


def _check_channels(name: str, channels: int, max_channels: int) -> None:
    if not 1 <= channels <= max_channels:
        raise ValueError(f'{name}: channels {channels} not in '
                         f'[1, {max_channels}]')


class DynamicRSign(RSign):
    """:class:`RSign` using the first ``C = x.shape[1]`` of its shifts.

    Args:
        max_channels (int): Largest channel count.

    Shape:
        - Input: (N, C, H, W) with C <= max_channels.
        - Output: (N, C, H, W).

    Example:
        >>> m = DynamicRSign(64)
        >>> m(torch.randn(2, 32, 4, 4)).shape
        torch.Size([2, 32, 4, 4])
    """

    def __init__(self, max_channels: int) -> None:
        super().__init__(max_channels)

    def forward(self, x: Tensor) -> Tensor:
        """Shift by the first C shifts, then binarize (if ``binary``).

        Args:
            x (Tensor): (N, C, H, W).

        Returns:
            Tensor: (N, C, H, W).
        """
        c = x.shape[1]
        _check_channels('DynamicRSign', c, self.num_channels)
        return self._shift(x, self.bias[:c])

    @torch.no_grad()
    def to_static(self, channels: int) -> RSign:
        """Export the first ``channels`` as an :class:`RSign`.

        Args:
            channels (int): Active channel count.

        Returns:
            RSign: With copied shifts and the same ``binary`` switch.
        """
        _check_channels('DynamicRSign', channels, self.num_channels)
        static = RSign(channels).to(self.bias)
        static.bias.copy_(self.bias[:channels])
        static.binary = self.binary
        return static


class DynamicRPReLU(RPReLU):
    """:class:`RPReLU` using the first ``C = x.shape[1]`` of its parameters.

    Args:
        max_channels (int): Largest channel count.

    Shape:
        - Input: (N, C, H, W) with C <= max_channels.
        - Output: (N, C, H, W).

    Example:
        >>> m = DynamicRPReLU(64)
        >>> m(torch.randn(2, 32, 4, 4)).shape
        torch.Size([2, 32, 4, 4])
    """

    def __init__(self, max_channels: int) -> None:
        super().__init__(max_channels)

    def forward(self, x: Tensor) -> Tensor:
        """Apply shift, PReLU, shift with the first C parameters.

        Args:
            x (Tensor): (N, C, H, W).

        Returns:
            Tensor: (N, C, H, W).
        """
        c = x.shape[1]
        _check_channels('DynamicRPReLU', c, self.num_channels)
        return self._rprelu(x, self.bias_in[:c], self.weight[:c],
                            self.bias_out[:c])

    @torch.no_grad()
    def to_static(self, channels: int) -> RPReLU:
        """Export the first ``channels`` as an :class:`RPReLU`.

        Args:
            channels (int): Active channel count.

        Returns:
            RPReLU: With copied parameters.
        """
        _check_channels('DynamicRPReLU', channels, self.num_channels)
        static = RPReLU(channels).to(self.weight)
        static.load_state_dict({
            k: v[:channels]
            for k, v in self.state_dict().items()
        })
        return static
