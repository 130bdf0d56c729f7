"""Operation counts (OPs) of binary networks, as the NAS-BNN paper counts them.

Paper: NAS-BNN: Neural Architecture Search for Binary Neural Networks,
https://arxiv.org/abs/2408.15484 (section 4.1, Tables 2, 3 and 6).

``OPs = FLOPs + Int8OPs / 8 + BOPs / 64``, each term a count of
multiply-accumulates (MACs):

* the 8-bit stem conv counts as Int8OPs, the binary convs as BOPs and the
  full-precision classifier as FLOPs, with its bias as one more input:
  ``(in + 1) * out``;
* BN, activations, shortcuts, additions and pooling are not counted;
* a conv with kernel ``k`` (odd) uses padding ``k // 2``, so its output is
  ``(H + 2 * (k // 2) - k) // stride + 1 = ceil(H / stride)``: the floor
  division ``H // stride`` of the official code wherever ``H`` is a multiple
  of the stride, which holds at every layer of the paper's 224×224 space.

:func:`count_arch_ops` counts a spec of a search space analytically;
:func:`count_module_ops` counts any ``nn.Module`` tree with forward hooks on
``nn.Conv2d``/``nn.Linear``, taking the kind of a layer from its class
attribute ``ops_kind`` (``'bops'``, ``'int8ops'`` or ``'flops'``; layers
without it are ``'flops'``).
"""
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .arch_spec import ArchSpec, LayerSpec, validate_arch
from .search_space import SearchSpace

__all__ = [
    'OPS_KINDS', 'OPS_DIVISORS', 'OpsRow', 'OpsReport', 'conv_output_size',
    'stem_row', 'layer_rows', 'classifier_row', 'count_arch_ops',
    'count_module_ops'
]

OPS_KINDS = ('flops', 'int8ops', 'bops')
# One OP is one FP MAC, 8 Int8 MACs or 64 binary MACs.
OPS_DIVISORS = {'flops': 1, 'int8ops': 8, 'bops': 64}

Size = Tuple[int, int]


def conv_output_size(size: Size, kernel_size: int, stride: int) -> Size:
    """Return the output ``(H, W)`` of a conv with padding ``k // 2``."""
    pad = kernel_size // 2
    return tuple((s + 2 * pad - kernel_size) // stride + 1 for s in size)


def _by(size: Size) -> str:
    return f'{size[0]}x{size[1]}'


@dataclass(frozen=True)
class OpsRow:
    """The count of one conv or linear layer (one call of it).

    Args:
        name (str): Layer name, e.g. ``'stages[3][1].conv1'``.
        kind (str): One of :data:`OPS_KINDS`.
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (tuple[int, int]): Kernel ``(kh, kw)``.
        groups (int): Groups.
        stride (tuple[int, int]): Stride ``(sh, sw)``.
        out_hw (tuple[int, int]): Output ``(H, W)``; ``(1, 1)`` for linear.
        macs (int): Multiply-accumulates for one sample.
    """
    name: str
    kind: str
    in_channels: int
    out_channels: int
    kernel_size: Size
    groups: int
    stride: Size
    out_hw: Size
    macs: int

    @property
    def ops(self) -> float:
        """float: ``macs`` divided by the divisor of the row's kind."""
        return self.macs / OPS_DIVISORS[self.kind]

    def cells(self) -> Tuple[str, ...]:
        """Return the row as the text cells of :meth:`OpsReport.table`."""
        return (self.name, self.kind, str(self.in_channels),
                str(self.out_channels), _by(self.kernel_size),
                str(self.groups), _by(self.stride), _by(self.out_hw),
                str(self.macs), f'{self.ops / 1e6:.4f}')


@dataclass
class OpsReport:
    """Per-layer rows and their totals.

    Args:
        rows (list[OpsRow]): The counted layers, in forward order.

    Example:
        >>> from nasbnn_mm.nas import OpsReport, OpsRow
        >>> report = OpsReport([
        ...     OpsRow('conv', 'bops', 4, 8, (3, 3), 1, (1, 1), (4, 4), 4608),
        ...     OpsRow('fc', 'flops', 8, 2, (1, 1), 1, (1, 1), (1, 1), 18)])
        >>> report.total('bops'), report.ops
        (4608, 90.0)
    """
    rows: List[OpsRow] = field(default_factory=list)

    def total(self, kind: str) -> int:
        """Return the MACs of all rows of ``kind``."""
        if kind not in OPS_KINDS:
            raise ValueError(f'kind: {kind!r} not in {OPS_KINDS}')
        return sum(r.macs for r in self.rows if r.kind == kind)

    @property
    def ops(self) -> float:
        """float: ``FLOPs + Int8OPs / 8 + BOPs / 64``."""
        return sum(r.ops for r in self.rows)

    @property
    def ops_m(self) -> float:
        """float: :attr:`ops` in millions, the unit of the paper."""
        return self.ops / 1e6

    def summary(self) -> Dict[str, float]:
        """Return ``flops_m``, ``int8ops_m``, ``bops_m`` and ``ops_m``.

        All in millions; the first three count MACs, ``ops_m`` is the
        weighted sum.
        """
        out = {f'{k}_m': self.total(k) / 1e6 for k in OPS_KINDS}
        out['ops_m'] = self.ops_m
        return out

    def table(self) -> str:
        """Return the rows and the totals as a plain-text table."""
        head = ('name', 'kind', 'in', 'out', 'kernel', 'groups', 'stride',
                'out HW', 'MACs', 'OPs (M)')
        lines = [head] + [r.cells() for r in self.rows]
        widths = [max(len(line[i]) for line in lines) for i in range(10)]
        text = [
            '  '.join(
                cell.ljust(w) if i < 2 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(line, widths)))
            for line in lines
        ]
        totals = [f'{k[:-2]} {v:.4f}M' for k, v in self.summary().items()]
        text.append('total: ' + ', '.join(totals))
        return '\n'.join(text)

    def parts(self) -> Dict[str, 'OpsReport']:
        """Split the rows by the top-level module of their names.

        A detector's rows ``backbone.*``, ``neck.*``, ``rpn_head.*`` and
        ``roi_head.*`` give four parts, in order of first appearance.

        Returns:
            dict[str, OpsReport]: One report per part.
        """
        parts: Dict[str, OpsReport] = {}
        for row in self.rows:
            parts.setdefault(row.name.split('.')[0],
                             OpsReport()).rows.append(row)
        return parts

    def parts_table(self) -> str:
        """Return the totals of each of :meth:`parts`, and of all rows.

        Columns: part, FLOPs, Int8OPs and BOPs (MACs) and OPs, all in
        millions, and the part's share of the OPs.
        """
        head = ('part', 'FLOPs (M)', 'Int8OPs (M)', 'BOPs (M)', 'OPs (M)',
                'share')
        total = self.ops
        lines = [head]
        for name, part in [*self.parts().items(), ('total', self)]:
            values = [f'{v:.2f}' for v in part.summary().values()]
            share = part.ops / total if total else 0.
            lines.append((name, *values, f'{share:.1%}'))
        widths = [max(len(line[i]) for line in lines) for i in range(6)]
        return '\n'.join('  '.join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths)))
                         for line in lines)


def _conv_row(name: str, kind: str, in_channels: int, out_channels: int,
              kernel_size: int, groups: int, stride: int,
              in_hw: Size) -> OpsRow:
    out_hw = conv_output_size(in_hw, kernel_size, stride)
    macs = (
        out_channels * out_hw[0] * out_hw[1] * (in_channels // groups) *
        kernel_size * kernel_size)
    return OpsRow(name, kind, in_channels, out_channels,
                  (kernel_size, kernel_size), groups, (stride, stride), out_hw,
                  macs)


def stem_row(layer: LayerSpec, space: SearchSpace) -> OpsRow:
    """Count the 8-bit stem conv (Int8OPs) at the space's input size."""
    return _conv_row('stem', 'int8ops', space.in_channels, layer.channels,
                     layer.kernel_size, layer.groups, space.stem.stride,
                     space.input_size)


def layer_rows(name: str, in_channels: int, layer: LayerSpec, stride: int,
               in_hw: Size) -> Tuple[OpsRow, OpsRow]:
    """Count a separable layer: the grouped k×k conv and the 1×1 conv.

    Args:
        name (str): Layer place, e.g. ``'stages[3][1]'``.
        in_channels (int): Input width, kept by the k×k conv.
        layer (LayerSpec): The chosen layer.
        stride (int): Stride of the k×k conv.
        in_hw (tuple[int, int]): Input ``(H, W)``.

    Returns:
        tuple[OpsRow, OpsRow]: ``<name>.conv1`` (k×k) and ``<name>.conv2``
        (1×1), both BOPs.
    """
    conv1 = _conv_row(f'{name}.conv1', 'bops', in_channels, in_channels,
                      layer.kernel_size, layer.groups, stride, in_hw)
    conv2 = _conv_row(f'{name}.conv2', 'bops', in_channels, layer.channels, 1,
                      1, 1, conv1.out_hw)
    return conv1, conv2


def classifier_row(in_channels: int, num_classes: int) -> OpsRow:
    """Count the full-precision classifier, bias included: ``(in+1)*out``.
    """
    return OpsRow('classifier', 'flops', in_channels, num_classes, (1, 1), 1,
                  (1, 1), (1, 1), (in_channels + 1) * num_classes)


def count_arch_ops(arch: ArchSpec,
                   space: SearchSpace,
                   input_size: Union[int, Size, None] = None) -> OpsReport:
    """Count a subnet of a search space analytically.

    Args:
        arch (ArchSpec): The subnet; checked against ``space`` first (the
            Non-Decreasing constraint is not required, so that subnets of
            the ablation space can be counted).
        space (SearchSpace): Gives strides, input channels and classes.
        input_size (int | tuple[int, int], optional): Input ``(H, W)`` to
            count at. Defaults to the space's ``input_size``.

    Returns:
        OpsReport: Rows ``stem``, ``stages[i][j].conv1``/``conv2`` and
        ``classifier``.

    Example:
        >>> from nasbnn_mm.nas import (DEFAULT_SPACE, SearchSpace,
        ...                            count_arch_ops, load_arch)
        >>> space = SearchSpace.from_config(DEFAULT_SPACE)
        >>> report = count_arch_ops(load_arch('B'), space)
        >>> round(report.ops_m, 2)
        56.83
    """
    validate_arch(arch, space, non_decreasing=False)
    if input_size is not None:
        if isinstance(input_size, int):
            input_size = (input_size, input_size)
        space = replace(space, input_size=tuple(input_size))
    rows = [stem_row(arch.stem, space)]
    width, hw = arch.stem.channels, rows[0].out_hw
    for i, (stage, choices) in enumerate(zip(arch.stages, space.stages)):
        for j, layer in enumerate(stage):
            stride = choices.stride if j == 0 else 1
            conv1, conv2 = layer_rows(f'stages[{i}][{j}]', width, layer,
                                      stride, hw)
            rows += [conv1, conv2]
            width, hw = layer.channels, conv2.out_hw
    rows.append(classifier_row(width, space.num_classes))
    return OpsReport(rows)


def _pair(value: Union[int, Sequence[int]]) -> Size:
    return (value, value) if isinstance(value, int) else tuple(value)


def count_module_ops(
        model: nn.Module,
        input_shape: Sequence[int],
        forward: Optional[Callable[[torch.Tensor], Any]] = None) -> OpsReport:
    """Count the ``nn.Conv2d``/``nn.Linear`` layers of any module tree.

    One forward pass of a zero input of batch 1 runs in eval mode under
    ``torch.no_grad()`` (the training flags are restored afterwards); a hook
    on every conv and linear layer (subclasses included) adds a row per call,
    so a layer shared by several inputs (e.g. an FPN head) has several rows.
    A conv counts ``C_out * H_out * W_out * C_in / groups * kh * kw`` MACs
    from the real input and output shapes, a linear ``out * in``; a bias
    adds one MAC per output, as for the classifier of the paper.

    Args:
        model (nn.Module): The model.
        input_shape (Sequence[int]): Shape of one sample, e.g.
            ``(3, 224, 224)``.
        forward (Callable, optional): Called with the input instead of
            ``model``, e.g. ``model.extract_feat`` for a detector. Defaults
            to None (``model(x)``).

    Returns:
        OpsReport: One row per call, named by the module's path; its kind is
        ``getattr(layer, 'ops_kind', 'flops')``.

    Raises:
        ValueError: If a layer's ``ops_kind`` is not in :data:`OPS_KINDS`.
    """
    rows: List[OpsRow] = []

    def hook(module: nn.Module, inputs: Tuple[torch.Tensor, ...],
             output: torch.Tensor) -> None:
        name = names[module]
        kind = getattr(module, 'ops_kind', 'flops')
        if kind not in OPS_KINDS:
            raise ValueError(f'{name} ({type(module).__name__}): ops_kind '
                             f'{kind!r} not in {OPS_KINDS}')
        if isinstance(module, nn.Conv2d):
            in_channels, out_channels = inputs[0].shape[1], output.shape[1]
            kernel = _pair(module.kernel_size)
            per_output = in_channels // module.groups * kernel[0] * kernel[1]
            groups, stride = module.groups, _pair(module.stride)
            out_hw = tuple(output.shape[2:])
        else:
            in_channels, out_channels = inputs[0].shape[-1], output.shape[-1]
            per_output, kernel, groups = in_channels, (1, 1), 1
            stride = out_hw = (1, 1)
        macs = output[0].numel() * (per_output + (module.bias is not None))
        rows.append(
            OpsRow(name, kind, in_channels, out_channels, kernel, groups,
                   stride, out_hw, macs))

    names = {
        m: name
        for name, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    }
    handles = [m.register_forward_hook(hook) for m in names]
    modes = {m: m.training for m in model.modules()}
    param = next(model.parameters(), None)
    device = param.device if param is not None else None
    try:
        model.eval()
        with torch.no_grad():
            x = torch.zeros((1, *input_shape), device=device)
            (forward or model)(x)
    finally:
        for handle in handles:
            handle.remove()
        for m, mode in modes.items():
            m.training = mode
    return OpsReport(rows)
