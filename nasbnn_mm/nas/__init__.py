"""Search space, architecture specs, sampling and OPs counting of NAS-BNN.

Plain Python/PyTorch (plus mmengine to read config files): the supernet, the
search loop and the analysis tools all build on this package.
"""
from .arch_spec import (PRESETS, ArchSpec, ArchType, LayerSpec, dump_arch,
                        format_arch, load_arch, parse_arch, validate_arch)
from .ops_counter import (OPS_DIVISORS, OPS_KINDS, OpsReport, OpsRow,
                          count_arch_ops, count_module_ops)
from .sampler import (RandomGenerator, crossover, mutate, ops_bounds,
                      sample_in_ops_range, sample_largest, sample_random,
                      sample_smallest)
from .search_space import (BUILTIN_SPACES, DEFAULT_SPACE, LayerSpace,
                           SearchSpace, StageSpace)
from .width_counter import WidthCost, count_width_cost
from .width_fitness import width_fitness

__all__ = [
    'DEFAULT_SPACE', 'BUILTIN_SPACES', 'LayerSpace', 'StageSpace',
    'SearchSpace', 'PRESETS', 'LayerSpec', 'ArchSpec', 'ArchType',
    'parse_arch', 'format_arch', 'load_arch', 'dump_arch', 'validate_arch',
    'OPS_KINDS', 'OPS_DIVISORS', 'OpsRow', 'OpsReport', 'count_arch_ops',
    'count_module_ops', 'RandomGenerator', 'ops_bounds', 'sample_smallest',
    'sample_largest', 'sample_random', 'sample_in_ops_range', 'mutate',
    'crossover', 'WidthCost', 'count_width_cost', 'width_fitness'
]
