"""Feasible choices and OPs bounds of every decision of a search space.

A subnet is made decision by decision (stem, then per stage the depth and
each layer). :class:`DecisionTables` lists, for every decision, the choices
after which a valid completion exists, with the OPs each adds and the least
and most OPs (M) of everything after it, computed backwards over the layers.
:func:`build_arch` walks these tables with pickers, which is how the
sampler draws, mutates and crosses subnets without ever dead-ending.
"""
from functools import lru_cache
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from .arch_spec import ArchSpec, LayerSpec
from .ops_counter import classifier_row, conv_output_size, layer_rows, stem_row
from .search_space import SearchSpace

__all__ = [
    'Bounds', 'Option', 'Picker', 'DecisionTables', 'decision_tables',
    'build_arch', 'merge_bounds'
]

Bounds = Tuple[float, float]
# An option of a decision: (the choice, a LayerSpec or a depth; the OPs it
# adds in M; the least and most OPs in M of everything after it).
Option = Tuple[Union[LayerSpec, int], float, Bounds]
Picker = Callable[[List[Option]], Option]
# Slack of the OPs-range pruning, against rounding of float sums (M).
_EPS = 1e-9


def merge_bounds(bounds: Sequence[Bounds]) -> Optional[Bounds]:
    """The hull of several (least, most) OPs bounds; None for none."""
    if not bounds:
        return None
    return min(b[0] for b in bounds), max(b[1] for b in bounds)


class DecisionTables:
    """Feasible choices and OPs bounds of every decision of a space."""

    def __init__(self, space: SearchSpace, non_decreasing: bool) -> None:
        self.space = space
        self.non_decreasing = non_decreasing
        # (H, W) entering each stage and after its first layer: with odd
        # kernels and padding k // 2, they do not depend on the choices.
        hw = conv_output_size(space.input_size, space.stem.kernel_size[0],
                              space.stem.stride)
        self.stage_hw = []
        for stage in space.stages:
            out_hw = conv_output_size(hw, stage.kernel_size[0], stage.stride)
            self.stage_hw.append((hw, out_hw))
            hw = out_hw
        widths = set(space.stem.channels)
        for stage in space.stages:
            widths.update(stage.channels)
        # rest[(i, d, j)][w]: OPs bounds of layers j.. of stage i at depth d,
        # the later stages and the classifier, given input width w.
        self.rest: Dict[Tuple[int, int, int], Dict[int, Bounds]] = {}
        after = {
            w: (classifier_row(w, space.num_classes).ops / 1e6, ) * 2
            for w in widths
        }
        for i in reversed(range(len(space.stages))):
            stage = space.stages[i]
            for d in stage.depth:
                self.rest[(i, d, d)] = after
                for j in reversed(range(d)):
                    self.rest[(i, d, j)] = {}
                    for w in widths:
                        options = self.layer_options(i, d, j, w)
                        bounds = merge_bounds([(ops + rest[0], ops + rest[1])
                                               for _, ops, rest in options])
                        if bounds is not None:
                            self.rest[(i, d, j)][w] = bounds
            after = {}
            for w in widths:
                bounds = merge_bounds(
                    [b for _, _, b in self.depth_options(i, w)])
                if bounds is not None:
                    after[w] = bounds
        self.after_stem = after

    def stem_options(self) -> List[Option]:
        space = self.space
        options = []
        for c in space.stem.channels:
            if c not in self.after_stem:
                continue
            for k in space.stem.kernel_size:
                for g in space.stem_groups(c):
                    layer = LayerSpec(c, k, g)
                    ops = stem_row(layer, space).ops / 1e6
                    options.append((layer, ops, self.after_stem[c]))
        return options

    def depth_options(self, i: int, width: int) -> List[Option]:
        return [(d, 0.0, self.rest[(i, d, 0)][width])
                for d in self.space.stages[i].depth
                if width in self.rest[(i, d, 0)]]

    def layer_options(self, i: int, d: int, j: int,
                      width: int) -> List[Option]:
        stage = self.space.stages[i]
        rest = self.rest[(i, d, j + 1)]
        stride = stage.stride if j == 0 else 1
        hw = self.stage_hw[i][0 if j == 0 else 1]
        options = []
        for c in stage.next_channels(width, self.non_decreasing):
            if c not in rest:
                continue
            for k in stage.kernel_size:
                for g in stage.valid_groups(width):
                    layer = LayerSpec(c, k, g)
                    rows = layer_rows('', width, layer, stride, hw)
                    ops = sum(r.ops for r in rows) / 1e6
                    options.append((layer, ops, rest[c]))
        return options


@lru_cache(maxsize=16)
def decision_tables(space: SearchSpace,
                    non_decreasing: bool) -> DecisionTables:
    """The (cached) tables of a space; raises if it has no subnet."""
    tables = DecisionTables(space, non_decreasing)
    if not tables.stem_options():
        raise ValueError(
            f'search space: no subnet (non_decreasing={non_decreasing}); '
            'every stage needs a width not below the widths before it '
            '(with the constraint) and groups dividing its input widths')
    return tables


def build_arch(space: SearchSpace,
               non_decreasing: bool,
               pick_stem: Picker,
               pick_depth: Callable[[int], Picker],
               pick_layer: Callable[[int, int], Picker],
               ops_range: Optional[Bounds] = None) -> Optional[ArchSpec]:
    """Make a subnet decision by decision, from feasible options only.

    ``pick_depth(i)`` and ``pick_layer(i, j)`` return the picker of stage
    ``i`` (layer ``j``). With ``ops_range``, options whose subnets all miss
    the range are dropped too; None if that leaves a decision no option.
    """
    tables = decision_tables(space, non_decreasing)
    spent = 0.0

    def in_reach(option: Option) -> bool:
        low, high = (spent + option[1] + b for b in option[2])
        return low <= ops_range[1] + _EPS and high >= ops_range[0] - _EPS

    def pick(picker: Picker, options: List[Option]) -> Optional[Option]:
        nonlocal spent
        if ops_range is not None:
            options = [o for o in options if in_reach(o)]
            if not options:
                return None
        option = picker(options)
        spent += option[1]
        return option

    option = pick(pick_stem, tables.stem_options())
    if option is None:
        return None
    stem, stages = option[0], []
    width = stem.channels
    for i in range(len(space.stages)):
        option = pick(pick_depth(i), tables.depth_options(i, width))
        if option is None:
            return None
        layers = []
        for j in range(option[0]):
            layer = pick(
                pick_layer(i, j), tables.layer_options(i, option[0], j, width))
            if layer is None:
                return None
            layers.append(layer[0])
            width = layer[0].channels
        stages.append(tuple(layers))
    return ArchSpec(stem, tuple(stages))
