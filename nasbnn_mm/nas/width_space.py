"""The width-expansion search space: one expansion ratio per layer.

"Searching for Accurate Binary Neural Architectures" (Shen et al., 2019,
https://arxiv.org/abs/1909.07378), eq. (2): searchable layer ``i`` of a
binary network has ``round(base_i * a_i)`` channels, ``a_i`` one of
:data:`EXPAND_RATIOS`. The width-search backbones
(``WidthVGGSmall``, ``WidthResNet18``) and the width search problem share
these definitions; a backbone names its searchable layers in the class
attribute ``layer_names`` (a tuple, in the order of the ratios).
"""
from typing import List, Sequence, Union

__all__ = ['EXPAND_RATIOS', 'RatiosType', 'parse_expand_ratios']

# The candidates of eq. (2).
EXPAND_RATIOS = (0.25, 0.5, 1, 2, 3, 4)
# One ratio per searchable layer, or one for all of them.
RatiosType = Union[float, Sequence[float]]


def parse_expand_ratios(expand_ratios: RatiosType,
                        layer_names: Sequence[str]) -> List[float]:
    """Check expansion ratios and broadcast a single one to every layer.

    Args:
        expand_ratios (float | Sequence[float]): One ratio per searchable
            layer, or one ratio for all of them (uniform expansion).
        layer_names (Sequence[str]): Names of the n searchable layers, in
            order (error messages name them).

    Returns:
        list[float]: n ratios, each in :data:`EXPAND_RATIOS`.

    Raises:
        ValueError: If the length is not n or a ratio is not allowed.

    Example:
        >>> parse_expand_ratios(2, ('conv0', 'conv1'))
        [2.0, 2.0]
    """
    num_layers = len(layer_names)
    if isinstance(expand_ratios, (int, float)):
        ratios = [expand_ratios] * num_layers
    else:
        ratios = list(expand_ratios)
        if len(ratios) != num_layers:
            raise ValueError(
                f'expand_ratios: got {len(ratios)} ratios, expected '
                f'{num_layers}, one per searchable layer '
                f'({", ".join(layer_names)})')
    for i, ratio in enumerate(ratios):
        if isinstance(ratio, bool) or ratio not in EXPAND_RATIOS:
            raise ValueError(f'expand_ratios[{i}] ({layer_names[i]}): '
                             f'{ratio!r} not in {EXPAND_RATIOS}')
    return [float(ratio) for ratio in ratios]
