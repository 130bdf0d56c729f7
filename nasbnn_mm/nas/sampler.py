"""Sampling, mutation and crossover of subnets of a search space.

Paper: NAS-BNN: Neural Architecture Search for Binary Neural Networks,
https://arxiv.org/abs/2408.15484 (section 3.2, Non-Decreasing constraint;
sections 3.3-3.4, sandwich rule and evolutionary search).

All functions are pure: they take the generator they draw from
(``random.Random`` or ``numpy.random.Generator``) and return a new
:class:`~nasbnn_mm.nas.ArchSpec`. Every decision (a stage's depth, then a
layer's width, kernel and groups, stem first) is drawn only among the choices
that keep the subnet valid: groups divide the input width, and with
``non_decreasing=True`` the width never decreases. Choices after which no
valid completion exists are excluded too, so a draw never dead-ends.

That exclusion, :func:`ops_bounds`, the smallest and largest subnets and the
steering of :func:`sample_in_ops_range` come from one table per space and
switch, computed backwards over the layers: the least and most OPs that any
completion adds after each (stage, depth, layer, input width). OPs are in
millions (M) throughout, as in the paper.
"""
import random
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from .arch_spec import ArchSpec, LayerSpec
from .decision_tables import (Bounds, Option, Picker, build_arch,
                              decision_tables, merge_bounds)
from .ops_counter import count_arch_ops
from .search_space import SearchSpace

__all__ = [
    'RandomGenerator', 'ops_bounds', 'sample_smallest', 'sample_largest',
    'sample_random', 'sample_in_ops_range', 'mutate', 'crossover'
]

RandomGenerator = Union[random.Random, np.random.Generator]


def _choice(rng: RandomGenerator, seq: Sequence):
    if isinstance(rng, random.Random):
        return rng.choice(seq)
    if isinstance(rng, np.random.Generator):
        return seq[int(rng.integers(len(seq)))]
    raise TypeError('rng: expected random.Random or numpy.random.Generator, '
                    f'got {type(rng).__name__}')


def ops_bounds(space: SearchSpace, non_decreasing: bool = True) -> Bounds:
    """Return the least and most OPs (M) of any subnet of the space.

    Args:
        space (SearchSpace): The space.
        non_decreasing (bool): Only subnets meeting the Non-Decreasing
            constraint. Defaults to True.
    """
    return merge_bounds([
        (o[1] + o[2][0], o[1] + o[2][1])
        for o in decision_tables(space, non_decreasing).stem_options()
    ])


def _extreme(space: SearchSpace, non_decreasing: bool,
             largest: bool) -> ArchSpec:
    side, best = (1, max) if largest else (0, min)

    def pick(options: List[Option]) -> Option:
        return best(options, key=lambda o: o[1] + o[2][side])

    return build_arch(space, non_decreasing, pick, lambda i: pick,
                      lambda i, j: pick)


def sample_smallest(space: SearchSpace,
                    non_decreasing: bool = True) -> ArchSpec:
    """Return the subnet with the fewest OPs (the sandwich rule's smallest).

    In a space where fewer layers, narrower widths, smaller kernels and more
    groups always cost less, as in Table 1, this is the subnet taking the
    least depth, width and kernel and the most groups everywhere.

    Args:
        space (SearchSpace): The space.
        non_decreasing (bool): Keep the Non-Decreasing constraint. Defaults
            to True.
    """
    return _extreme(space, non_decreasing, largest=False)


def sample_largest(space: SearchSpace,
                   non_decreasing: bool = True) -> ArchSpec:
    """Return the subnet with the most OPs (the sandwich rule's largest).

    Args:
        space (SearchSpace): The space.
        non_decreasing (bool): Keep the Non-Decreasing constraint. Defaults
            to True.
    """
    return _extreme(space, non_decreasing, largest=True)


def _draw(space: SearchSpace,
          rng: RandomGenerator,
          non_decreasing: bool,
          ops_range: Optional[Bounds] = None) -> Optional[ArchSpec]:

    def pick(options: List[Option]) -> Option:
        return _choice(rng, options)

    return build_arch(space, non_decreasing, pick, lambda i: pick,
                      lambda i, j: pick, ops_range)


def sample_random(space: SearchSpace,
                  rng: RandomGenerator,
                  non_decreasing: bool = True) -> ArchSpec:
    """Draw a subnet, each decision uniform among its feasible choices.

    As in the official code, decisions are drawn one after the other (stem,
    then per stage the depth and each layer's width, kernel and groups), so
    subnets are not equally likely: under the Non-Decreasing constraint a
    narrow early layer leaves more choices after it.

    Args:
        space (SearchSpace): The space.
        rng (random.Random | numpy.random.Generator): The generator.
        non_decreasing (bool): Keep the Non-Decreasing constraint; False
            draws from the unconstrained space of the ablation. Defaults to
            True.
    """
    return _draw(space, rng, non_decreasing)


def sample_in_ops_range(space: SearchSpace,
                        rng: RandomGenerator,
                        ops_min: float,
                        ops_max: float,
                        non_decreasing: bool = True,
                        max_tries: int = 100) -> ArchSpec:
    """Draw a subnet whose OPs lie in ``[ops_min, ops_max]``.

    Draws as :func:`sample_random`, but each decision only among the choices
    from which some subnet can still end in the range (by the OPs bounds of
    what follows), so narrow ranges and the tails of the distribution are
    reached too. The reachable OPs are not an interval, so a draw can still
    miss; it is then repeated, at most ``max_tries`` times.

    Args:
        space (SearchSpace): The space.
        rng (random.Random | numpy.random.Generator): The generator.
        ops_min (float): Least OPs (M), inclusive.
        ops_max (float): Most OPs (M), inclusive.
        non_decreasing (bool): Keep the Non-Decreasing constraint. Defaults
            to True.
        max_tries (int): Draws before giving up. Defaults to 100.

    Raises:
        ValueError: Before any draw, if the range is empty or misses the
            achievable range of :func:`ops_bounds`, which it names.
        RuntimeError: If ``max_tries`` draws all miss the range.
    """
    low, high = ops_bounds(space, non_decreasing)
    achievable = f'achievable [{low:.4f}, {high:.4f}]M'
    if not ops_min <= ops_max:
        raise ValueError(f'OPs range [{ops_min}, {ops_max}]M is empty; '
                         f'{achievable}')
    if ops_max < low or ops_min > high:
        raise ValueError(f'OPs range [{ops_min}, {ops_max}]M has no subnet: '
                         f'{achievable} (non_decreasing={non_decreasing})')
    for _ in range(max_tries):
        arch = _draw(space, rng, non_decreasing, (ops_min, ops_max))
        if arch is not None and ops_min <= count_arch_ops(
                arch, space).ops_m <= ops_max:
            return arch
    raise RuntimeError(
        f'no subnet in OPs range [{ops_min}, {ops_max}]M after {max_tries} '
        f'draws ({achievable}); widen the range or raise max_tries')


def _nearest(options: List[Option], want: Union[LayerSpec, int]) -> Option:
    """The option closest to ``want``: width, then kernel, then groups.

    Ties go to the first option, i.e. the smaller value.
    """
    if isinstance(want, int):
        return min(options, key=lambda o: abs(o[0] - want))

    def distance(option: Option) -> Tuple[int, int, int]:
        layer = option[0]
        return (abs(layer.channels - want.channels),
                abs(layer.kernel_size - want.kernel_size),
                abs(layer.groups - want.groups))

    return min(options, key=distance)


def _stage_layer(arch: ArchSpec, i: int, j: int) -> LayerSpec:
    """Layer j of stage i; past the stage's end, its last layer."""
    stage = arch.stages[i]
    return stage[min(j, len(stage) - 1)]


def mutate(arch: ArchSpec,
           space: SearchSpace,
           prob: float,
           rng: RandomGenerator,
           non_decreasing: bool = True) -> ArchSpec:
    """Redraw each decision of ``arch`` with probability ``prob``.

    Each stage's depth and each layer (width, kernel and groups together) is
    redrawn uniformly among its feasible choices with probability ``prob``;
    otherwise it is kept, or, if an earlier change made it infeasible, moved
    to the closest feasible choice. A layer added by a deeper stage starts
    as a copy of the stage's last layer. The result is always valid.

    Args:
        arch (ArchSpec): The parent (left unchanged).
        space (SearchSpace): The space.
        prob (float): Probability of redrawing each decision, in [0, 1].
        rng (random.Random | numpy.random.Generator): The generator.
        non_decreasing (bool): Keep the Non-Decreasing constraint. Defaults
            to True.
    """
    if not 0 <= prob <= 1:
        raise ValueError(f'prob: {prob} not in [0, 1]')
    if len(arch.stages) != len(space.stages):
        raise ValueError(f'stages: {len(arch.stages)} stages given, the '
                         f'space has {len(space.stages)}')

    def redraw() -> bool:
        return rng.random() < prob

    def keep_or_redraw(old: Union[LayerSpec, int]) -> Picker:

        def pick(options: List[Option]) -> Option:
            return _choice(rng, options) if redraw() else _nearest(
                options, old)

        return pick

    return build_arch(space, non_decreasing, keep_or_redraw(arch.stem),
                      lambda i: keep_or_redraw(len(arch.stages[i])),
                      lambda i, j: keep_or_redraw(_stage_layer(arch, i, j)))


def crossover(a: ArchSpec,
              b: ArchSpec,
              space: SearchSpace,
              rng: RandomGenerator,
              non_decreasing: bool = True) -> ArchSpec:
    """Mix two parents decision by decision.

    The stem, each stage's depth and each layer come from ``a`` or ``b``
    with equal chance (a layer only one parent has comes from it; past both
    parents' depths, from the last layer of the parent with the deeper
    stage). A choice made infeasible by an earlier one (e.g. a narrower
    layer after a wider one under the Non-Decreasing constraint) moves to
    the closest feasible choice, so the child is always valid.

    Args:
        a (ArchSpec): First parent (left unchanged).
        b (ArchSpec): Second parent (left unchanged).
        space (SearchSpace): The space.
        rng (random.Random | numpy.random.Generator): The generator.
        non_decreasing (bool): Keep the Non-Decreasing constraint. Defaults
            to True.
    """
    for name, parent in (('a', a), ('b', b)):
        if len(parent.stages) != len(space.stages):
            raise ValueError(f'{name}.stages: {len(parent.stages)} stages '
                             f'given, the space has {len(space.stages)}')

    def from_parents(values: List[Union[LayerSpec, int]]) -> Picker:
        return lambda options: _nearest(options, _choice(rng, values))

    def pick_layer(i: int, j: int) -> Picker:
        parents = [p.stages[i][j] for p in (a, b) if j < len(p.stages[i])]
        if not parents:
            deeper = max((a, b), key=lambda p: len(p.stages[i]))
            parents = [_stage_layer(deeper, i, j)]
        return from_parents(parents)

    return build_arch(
        space, non_decreasing, from_parents([a.stem, b.stem]),
        lambda i: from_parents([len(a.stages[i]),
                                len(b.stages[i])]), pick_layer)
