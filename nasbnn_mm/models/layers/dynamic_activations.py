"""Sliceable RSign and RPReLU for the NAS-BNN supernet."""
from typing import Dict

from torch import Tensor

from .activations import RPReLU, RSign
from .dynamic_op import DynamicMixin

__all__ = ['DynamicRSign', 'DynamicRPReLU']


def _check_channels(name: str, channels: int, max_channels: int) -> None:
    if not 1 <= channels <= max_channels:
        raise ValueError(f'{name}: channels {channels} not in '
                         f'[1, {max_channels}]')


class DynamicRSign(DynamicMixin, RSign):
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

    def largest_choice(self) -> Dict[str, int]:
        """All channels."""
        return dict(channels=self.num_channels)

    def _to_static(self, channels: int) -> RSign:
        """The first ``channels`` shifts as an :class:`RSign` with the same
        ``binary`` switch."""
        _check_channels('DynamicRSign', channels, self.num_channels)
        static = RSign(channels).to(self.bias)
        static.bias.copy_(self.bias[:channels])
        static.binary = self.binary
        return static


class DynamicRPReLU(DynamicMixin, RPReLU):
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

    def largest_choice(self) -> Dict[str, int]:
        """All channels."""
        return dict(channels=self.num_channels)

    def _to_static(self, channels: int) -> RPReLU:
        """The first ``channels`` parameters as an :class:`RPReLU`."""
        _check_channels('DynamicRPReLU', channels, self.num_channels)
        static = RPReLU(channels).to(self.weight)
        static.load_state_dict({
            k: v[:channels]
            for k, v in self.state_dict().items()
        })
        return static
