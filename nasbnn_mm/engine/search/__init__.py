"""Evolutionary search: the loop, its objectives, state, report and the
problems it searches over."""
from .archive import Archive
from .data import (ShardedEpochSampler, StridedSampler, build_dataset,
                   build_loader, strided_indices)
from .evaluation import count_top1
from .loop import EvolutionSearchLoop
from .objectives import (BUCKET_RULES, OBJECTIVES, Buckets, FitnessObjective,
                         ParetoObjective, bucket_index, build_objective,
                         num_buckets, pareto_front, rank_by_fitness)
from .problems import (SearchProblem, SupernetSearchProblem,
                       WidthSearchProblem, build_problem)
from .state import STATE_FILE, STATE_FORMAT, SearchState, check_settings
from .weights import load_weights

__all__ = [
    'Archive', 'ShardedEpochSampler', 'StridedSampler', 'build_dataset',
    'build_loader', 'strided_indices', 'count_top1', 'EvolutionSearchLoop',
    'BUCKET_RULES', 'OBJECTIVES', 'Buckets', 'FitnessObjective',
    'ParetoObjective', 'bucket_index', 'build_objective', 'num_buckets',
    'pareto_front', 'rank_by_fitness', 'SearchProblem',
    'SupernetSearchProblem', 'WidthSearchProblem', 'build_problem',
    'STATE_FILE', 'STATE_FORMAT', 'SearchState', 'check_settings',
    'load_weights'
]
