"""What the evolutionary search optimizes: a Pareto front or a fitness.

Paper: NAS-BNN: Neural Architecture Search for Binary Neural Networks,
https://arxiv.org/abs/2408.15484 (sec. 4.1.2): parents are drawn from the
front, the most accurate candidate of each OPs bucket
(:class:`ParetoObjective`). The single-objective mode ranks candidates by
eq. (4) of "Searching for Accurate Binary Neural Architectures"
(https://arxiv.org/abs/1909.07378), ``f = max(Acc - lambda * FLOPs /
FLOPs_ref, 0)``, and draws parents among the best
(:class:`FitnessObjective`).

Records are ``(cost, accuracy)`` pairs in evaluation order; objectives
answer with indices into them.
"""
import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from nasbnn_mm.nas.width_fitness import width_fitness

__all__ = [
    'OBJECTIVES', 'BUCKET_RULES', 'num_buckets', 'bucket_index',
    'pareto_front', 'rank_by_fitness', 'Buckets', 'ParetoObjective',
    'FitnessObjective', 'build_objective'
]

OBJECTIVES = ('pareto', 'fitness')
# 'interval': [low + i * step, low + (i + 1) * step); 'nearest': the grid
# point low + i * step nearest to the cost, as the official code's
# ``round(ops / step) * step``.
BUCKET_RULES = ('interval', 'nearest')
# Slack of bucket edges against rounding of float OPs sums.
_EPS = 1e-9

CostRange = Tuple[float, float]
Record = Tuple[float, float]


def num_buckets(cost_range: CostRange,
                step: float,
                rule: str = 'interval') -> int:
    """Number of buckets of ``cost_range`` (see :data:`BUCKET_RULES`).

    With ``'interval'`` the last bucket also holds ``high`` (and may be
    narrower); with ``'nearest'`` there is one bucket per grid point
    ``low, low + step, ...`` up to the one nearest to ``high``.

    Example:
        >>> num_buckets((40, 250), 10), num_buckets((20, 180), 2, 'nearest')
        (21, 81)
    """
    low, high = cost_range
    if rule == 'nearest':
        return int(math.floor((high - low) / step + 0.5 + _EPS)) + 1
    return max(1, math.ceil((high - low) / step - _EPS))


def bucket_index(cost: float,
                 cost_range: CostRange,
                 step: float,
                 rule: str = 'interval') -> int:
    """Index of the bucket of ``cost`` (see :func:`num_buckets`).

    A cost outside ``cost_range`` (only the seeded smallest and largest
    candidates can be) has a bucket of its own on each side: -1 below the
    range, :func:`num_buckets` above it.

    Example:
        >>> [bucket_index(c, (40, 250), 10) for c in (45.0, 250, 30, 300)]
        [0, 20, -1, 21]
    """
    low, high = cost_range
    n = num_buckets(cost_range, step, rule)
    if cost < low - _EPS:
        return -1
    if cost > high + _EPS:
        return n
    offset = 0.5 if rule == 'nearest' else 0.0
    index = int(math.floor((cost - low) / step + offset + _EPS))
    return min(max(index, 0), n - 1)


def pareto_front(records: Sequence[Record],
                 cost_range: CostRange,
                 step: float,
                 rule: str = 'interval') -> List[int]:
    """The most accurate record of each cost bucket.

    Args:
        records (Sequence[tuple[float, float]]): ``(cost, accuracy)`` of
            every evaluated candidate, in evaluation order.
        cost_range (tuple[float, float]): ``(low, high)``.
        step (float): Bucket width.
        rule (str): One of :data:`BUCKET_RULES`. Defaults to 'interval'.

    Returns:
        list[int]: Indices into ``records``, one per non-empty bucket,
        sorted by bucket (so by cost); on equal accuracy the earlier
        record wins.

    Example:
        >>> pareto_front([(1.0, 50.), (1.5, 60.), (2.5, 55.), (2.2, 55.)],
        ...              (1, 3), 1)
        [1, 2]
    """
    best: Dict[int, int] = {}
    for i, (cost, accuracy) in enumerate(records):
        b = bucket_index(cost, cost_range, step, rule)
        if b not in best or records[best[b]][1] < accuracy:
            best[b] = i
    return [best[b] for b in sorted(best)]


def rank_by_fitness(records: Sequence[Record], cost_ref: float,
                    trade_off: float) -> List[int]:
    """Indices of ``(cost, accuracy)`` records by decreasing fitness.

    Fitness is :func:`~nasbnn_mm.nas.width_fitness.width_fitness`,
    ``max(accuracy - trade_off * cost / cost_ref, 0)``; ties keep the
    evaluation order.

    Example:
        >>> rank_by_fitness([(1.0, 50.), (2.0, 60.), (1.0, 58.)], 1.0, 4.0)
        [2, 1, 0]
    """
    fitness = [
        width_fitness(accuracy, cost, cost_ref, trade_off)
        for cost, accuracy in records
    ]
    return sorted(range(len(records)), key=lambda i: (-fitness[i], i))


@dataclass(frozen=True)
class Buckets:
    """The cost buckets of a front.

    Args:
        cost_range (tuple[float, float]): ``(low, high)``.
        step (float): Bucket width, > 0.
        rule (str): One of :data:`BUCKET_RULES`. Defaults to 'interval'.

    Example:
        >>> len(Buckets((20.0, 180.0), 2.0, 'nearest'))
        81
    """

    cost_range: CostRange
    step: float
    rule: str = 'interval'

    def __post_init__(self) -> None:
        if self.step <= 0:
            raise ValueError(f'bucket_step: {self.step} must be > 0')
        if self.rule not in BUCKET_RULES:
            raise ValueError(
                f'bucket_rule: {self.rule!r} not in {BUCKET_RULES}')

    def __len__(self) -> int:
        return num_buckets(self.cost_range, self.step, self.rule)

    def index(self, cost: float) -> int:
        """:func:`bucket_index` of ``cost``."""
        return bucket_index(cost, self.cost_range, self.step, self.rule)

    def front(self, records: Sequence[Record]) -> List[int]:
        """:func:`pareto_front` of ``records``."""
        return pareto_front(records, self.cost_range, self.step, self.rule)

    def describe(self, index: int) -> str:
        """The cost interval of a bucket, e.g. ``'[40, 50)'``."""
        if index < 0:
            return '(below the cost range)'
        if index >= len(self):
            return '(above the cost range)'
        low = self.cost_range[0] + index * self.step
        if self.rule == 'nearest':
            low -= self.step / 2
        return f'[{low:.4g}, {low + self.step:.4g})'

    def settings(self) -> dict:
        """What a resumed search must share."""
        return dict(bucket_step=self.step, bucket_rule=self.rule)


class ParetoObjective:
    """Parents from the front: the best candidate of each cost bucket.

    Args:
        buckets (Buckets): The front's buckets.
    """

    name = 'pareto'

    def __init__(self, buckets: Buckets) -> None:
        self.buckets = buckets

    def front(self, records: Sequence[Record]) -> List[int]:
        """Indices of the front, sorted by bucket."""
        return self.buckets.front(records)

    def parents(self, records: Sequence[Record],
                front: List[int]) -> List[int]:
        """Indices of the candidates new ones are bred from: the front."""
        return list(front)

    def ranking(self, records: Sequence[Record]) -> List[Tuple[int, float]]:
        """No fitness: an empty ranking."""
        return []

    def settings(self) -> dict:
        """What a resumed search must share."""
        return dict(objective=self.name, **self.buckets.settings())


class FitnessObjective:
    """Parents among the fittest: eq. (4) of Shen et al.

    ``f = max(top1 - trade_off * cost / cost_ref, 0)``; the
    ``num_parents`` fittest candidates so far are the parents (and
    ``best.json``). With ``buckets`` a front is kept for ``pareto.json``
    too.

    Args:
        cost_ref (float): ``FLOPs_ref``, > 0.
        trade_off (float): lambda, >= 0.
        num_parents (int): Parents per generation.
        buckets (Buckets, optional): Buckets of a front to report.
            Defaults to None.
    """

    name = 'fitness'

    def __init__(self,
                 cost_ref: float,
                 trade_off: float,
                 num_parents: int,
                 buckets: Optional[Buckets] = None) -> None:
        if trade_off < 0:
            raise ValueError(f'trade_off: {trade_off} must be >= 0')
        if cost_ref <= 0:
            raise ValueError(f'cost_ref: {cost_ref} must be > 0')
        self.cost_ref = float(cost_ref)
        self.trade_off = float(trade_off)
        self.num_parents = num_parents
        self.buckets = buckets

    def front(self, records: Sequence[Record]) -> List[int]:
        """The front of ``buckets``, or none."""
        return [] if self.buckets is None else self.buckets.front(records)

    def ranking(self, records: Sequence[Record]) -> List[Tuple[int, float]]:
        """``(index, fitness)`` of the ``num_parents`` fittest, best first.
        """
        best = rank_by_fitness(records, self.cost_ref,
                               self.trade_off)[:self.num_parents]
        return [(i,
                 width_fitness(records[i][1], records[i][0], self.cost_ref,
                               self.trade_off)) for i in best]

    def parents(self, records: Sequence[Record],
                front: List[int]) -> List[int]:
        """Indices of the ``num_parents`` fittest candidates."""
        return [i for i, _ in self.ranking(records)]

    def settings(self) -> dict:
        """What a resumed search must share."""
        buckets = self.buckets.settings() if self.buckets else dict(
            bucket_step=None, bucket_rule=None)
        return dict(
            objective=self.name,
            trade_off=self.trade_off,
            cost_ref=self.cost_ref,
            num_parents=self.num_parents,
            **buckets)


Objective = Union[ParetoObjective, FitnessObjective]


def build_objective(objective: str, cost_range: Optional[CostRange],
                    bucket_step: Optional[float], bucket_rule: str,
                    trade_off: float, cost_ref: Optional[float],
                    num_parents: int,
                    reference_cost: Callable[[], float]) -> Objective:
    """The objective of :class:`EvolutionSearchLoop`'s settings.

    Args:
        objective (str): One of :data:`OBJECTIVES`.
        cost_range (tuple[float, float], optional): Range of the buckets.
        bucket_step (float, optional): Bucket width; required by
            ``'pareto'``, optional with ``'fitness'``.
        bucket_rule (str): One of :data:`BUCKET_RULES`.
        trade_off (float): lambda of the fitness.
        cost_ref (float, optional): ``FLOPs_ref`` of the fitness; None
            calls ``reference_cost()``.
        num_parents (int): Parents of the fitness objective.
        reference_cost (Callable): Returns the default ``cost_ref``.

    Raises:
        ValueError: Naming the setting that is wrong.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f'objective: {objective!r} not in {OBJECTIVES}')
    if bucket_rule not in BUCKET_RULES:
        raise ValueError(f'bucket_rule: {bucket_rule!r} not in {BUCKET_RULES}')
    buckets = None
    if bucket_step is not None:
        if cost_range is None:
            raise ValueError('bucket_step: buckets need a cost_range')
        buckets = Buckets(cost_range, float(bucket_step), bucket_rule)
    if objective == 'pareto':
        if buckets is None:
            raise ValueError("objective 'pareto': set cost_range and "
                             'bucket_step (the front keeps the best '
                             'candidate of each bucket)')
        return ParetoObjective(buckets)
    if cost_ref is None:
        cost_ref = reference_cost()
    return FitnessObjective(cost_ref, trade_off, num_parents, buckets)
