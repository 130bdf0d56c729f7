"""Search problems: what :class:`EvolutionSearchLoop` searches over."""
from .base import SearchProblem, build_problem
from .supernet import SupernetSearchProblem
from .width import WidthSearchProblem

__all__ = [
    'SearchProblem', 'build_problem', 'SupernetSearchProblem',
    'WidthSearchProblem'
]
