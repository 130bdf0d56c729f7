"""The classifier head of the NAS-BNN supernet."""
from torch import Tensor, nn

from ..layers import DynamicLinear

__all__ = ['SupernetHead']


class SupernetHead(nn.Module):
    """Global average pooling and the full-precision classifier.

    The classifier reads the first ``C`` inputs of its shared weight for a
    subnet whose last stage is ``C`` wide; ``fc.to_static(in_features=C)``
    exports it as the ``nn.Linear`` of an MMPretrain ``LinearClsHead``.

    Args:
        max_in_channels (int): Largest width of the last stage.
        num_classes (int): Number of classes.

    Example:
        >>> import torch
        >>> head = SupernetHead(64, 10)
        >>> head(torch.randn(2, 48, 4, 4)).shape
        torch.Size([2, 10])
    """

    def __init__(self, max_in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.fc = DynamicLinear(max_in_channels, num_classes)

    def forward(self, feature: Tensor) -> Tensor:
        """(N, C, H, W) -> logits (N, num_classes)."""
        return self.fc(feature.mean(dim=(2, 3)))
