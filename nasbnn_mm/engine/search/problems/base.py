"""The interface of what :class:`EvolutionSearchLoop` searches over.

The loop only knows candidates as hashable values. A :class:`SearchProblem`
says how to draw, mutate and cross them, what they cost and how accurate
they are; problems are registered in
:data:`~nasbnn_mm.registry.SEARCH_PROBLEMS` and built from a config's
``train_cfg.problem`` by :func:`build_problem`.
"""
import random
from typing import Hashable, List, Optional, Tuple, Union

from torch.utils.data import DataLoader

from nasbnn_mm.registry import SEARCH_PROBLEMS
from nasbnn_mm.utils.typing_utils import ConfigType

__all__ = ['SearchProblem', 'build_problem', 'Candidate', 'CostRange']

Candidate = Hashable
CostRange = Optional[Tuple[float, float]]


class SearchProblem:
    """What an evolutionary search searches over (interface).

    Candidates are hashable (they key the cache of evaluated candidates)
    and are written to JSON through :meth:`to_dict`/:meth:`from_dict`.
    Every method that draws takes the search's generator and must draw
    from nothing else, so that a seed fixes the search. :meth:`evaluate`
    must return the same value on every rank.
    """

    #: Key of the cost in ``pareto.json`` records.
    cost_key = 'cost'
    #: Axis label of the cost in plots.
    cost_label = 'cost'
    #: The training dataloader, if the problem has one (mmengine's hooks
    #: read ``runner.train_dataloader``).
    dataloader: Optional[DataLoader] = None

    def cost_bounds(self) -> Tuple[float, float]:
        """Least and most cost of any candidate."""
        raise NotImplementedError

    def check_cost_range(self, cost_range: Tuple[float, float]) -> None:
        """Refuse a cost range that no candidate reaches.

        Raises:
            ValueError: Naming the range and the achievable one.
        """
        low, high = (float(b) for b in self.cost_bounds())
        if cost_range[1] < low or cost_range[0] > high:
            raise ValueError(
                f'cost_range: [{cost_range[0]}, {cost_range[1]}] '
                f'{self.cost_label} has no candidate; achievable range '
                f'[{low:.4f}, {high:.4f}] {self.cost_label}')

    def initial(self) -> List[Candidate]:
        """Candidates every initial population starts with, whatever their
        cost (may be none)."""
        return []

    def sample(self,
               rng: random.Random,
               cost_range: CostRange = None) -> Candidate:
        """Draw a random candidate, within ``cost_range`` if given."""
        raise NotImplementedError

    def mutate(self, candidate: Candidate, rng: random.Random,
               prob: float) -> Candidate:
        """Return a mutant: each choice redrawn with probability ``prob``."""
        raise NotImplementedError

    def crossover(self, a: Candidate, b: Candidate,
                  rng: random.Random) -> Candidate:
        """Return a child mixing the choices of ``a`` and ``b``."""
        raise NotImplementedError

    def cost(self, candidate: Candidate) -> float:
        """Cost of a candidate (e.g. OPs in M)."""
        raise NotImplementedError

    def reference_cost(self) -> float:
        """``FLOPs_ref`` of the single-objective fitness."""
        raise NotImplementedError

    def evaluate(self, candidate: Candidate) -> float:
        """Top-1 accuracy in percent, identical on every rank."""
        raise NotImplementedError

    def to_dict(self, candidate: Candidate) -> dict:
        """A JSON-serializable form of a candidate."""
        raise NotImplementedError

    def from_dict(self, data: dict) -> Candidate:
        """Inverse of :meth:`to_dict`."""
        raise NotImplementedError


def build_problem(cfg: Union[ConfigType, SearchProblem], runner,
                  train_dataloader: ConfigType) -> SearchProblem:
    """Build a problem from :data:`SEARCH_PROBLEMS` (by name or class).

    ``runner`` and ``train_dataloader`` are passed unless ``cfg`` sets them;
    a built problem passes through.

    Raises:
        ValueError: If ``cfg`` names no registered search problem.
    """
    if isinstance(cfg, SearchProblem):
        return cfg
    cfg = dict(cfg)
    if 'type' not in cfg:
        raise ValueError('problem: missing key \'type\', e.g. '
                         "'nasbnn_mm.SupernetSearchProblem'")
    problem_type = cfg['type']
    cls = problem_type if isinstance(
        problem_type, type) else SEARCH_PROBLEMS.get(problem_type)
    if cls is None or not issubclass(cls, SearchProblem):
        raise ValueError(
            f'problem.type: {problem_type!r} is not a registered search '
            f'problem; registered: {sorted(SEARCH_PROBLEMS.module_dict)}')
    return SEARCH_PROBLEMS.build(
        cfg,
        default_args=dict(runner=runner, train_dataloader=train_dataloader))
