"""Which layers of a model compute in binary, 8 bits or full precision."""
from collections import OrderedDict
from typing import Dict, List, Tuple

import torch.nn as nn

__all__ = ['PRECISIONS', 'precision_map', 'format_precision_map']

# ``ops_kind`` of a layer class -> its precision
PRECISIONS = OrderedDict(bops='binary', int8ops='8-bit', flops='FP32')


def precision_map(model: nn.Module) -> List[Tuple[str, str, str]]:
    """List every convolution and linear layer with its precision.

    Layers are classified by their class attribute ``ops_kind`` (the same
    rule the OPs counter uses); plain ``nn.Conv*``/``nn.Linear`` are full
    precision.

    Returns:
        list[tuple[str, str, str]]: ``(name, precision, class name)`` in
        module order.
    """
    rows = []
    for name, module in model.named_modules():
        kind = getattr(type(module), 'ops_kind', None)
        if kind is None and isinstance(module,
                                       (nn.modules.conv._ConvNd, nn.Linear)):
            kind = 'flops'
        if kind is not None:
            rows.append((name, PRECISIONS[kind], type(module).__name__))
    return rows


def format_precision_map(model: nn.Module) -> str:
    """A summary per top-level module, then one line per layer.

    Example output::

        precision map: backbone: 24 binary, 1 8-bit | neck: 6 FP32 | ...
          backbone.stem.conv  8-bit  LSQConv2d
    """
    rows = precision_map(model)
    counts: Dict[str, Dict[str, int]] = OrderedDict()
    for name, precision, _ in rows:
        part = counts.setdefault(name.split('.')[0], OrderedDict())
        part[precision] = part.get(precision, 0) + 1
    # precisions in the order of PRECISIONS: binary, 8-bit, FP32
    summary = ' | '.join(f'{part}: ' +
                         ', '.join(f'{kinds[p]} {p}'
                                   for p in PRECISIONS.values() if p in kinds)
                         for part, kinds in counts.items())
    width = max((len(name) for name, _, _ in rows), default=0)
    lines = [f'precision map: {summary}']
    lines += [
        f'  {name:<{width}}  {precision:<6}  {cls}'
        for name, precision, cls in rows
    ]
    return '\n'.join(lines)
