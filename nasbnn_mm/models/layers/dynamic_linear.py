"""Full-precision linear layer that reads the first C input features."""
from typing import Dict

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .dynamic_op import DynamicMixin

__all__ = ['DynamicLinear']


class DynamicLinear(DynamicMixin, nn.Linear):
    """:class:`torch.nn.Linear` over the first ``C = x.shape[1]`` inputs.

    The supernet's classifier: every subnet's last width reads a prefix of
    the shared weight.

    Args:
        max_in_features (int): Largest input width.
        out_features (int): Outputs (classes).
        bias (bool): Learnable bias. Defaults to True.

    Shape:
        - Input: (N, C) with C <= max_in_features.
        - Output: (N, out_features).

    Example:
        >>> fc = DynamicLinear(64, 10)
        >>> fc(torch.randn(2, 48)).shape
        torch.Size([2, 10])
    """

    ops_kind = 'flops'

    def __init__(self,
                 max_in_features: int,
                 out_features: int,
                 bias: bool = True) -> None:
        super().__init__(max_in_features, out_features, bias)

    def forward(self, x: Tensor) -> Tensor:
        c = x.shape[1]
        if c > self.in_features:
            raise ValueError(f'in_features {c} (x.shape[1]) exceed '
                             f'max_in_features {self.in_features}')
        return F.linear(x, self.weight[:, :c], self.bias)

    def largest_choice(self) -> Dict[str, int]:
        """All input features."""
        return dict(in_features=self.in_features)

    def _to_static(self, in_features: int) -> nn.Linear:
        """The first ``in_features`` inputs as a plain ``nn.Linear``."""
        if not 1 <= in_features <= self.in_features:
            raise ValueError(f'in_features {in_features} not in '
                             f'[1, {self.in_features}]')
        static = nn.Linear(in_features, self.out_features, self.bias
                           is not None).to(self.weight)
        static.weight.copy_(self.weight[:, :in_features])
        if self.bias is not None:
            static.bias.copy_(self.bias)
        return static
