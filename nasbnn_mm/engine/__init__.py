from .bn_calibration import loss_forward, recalibrate_bn, tensor_forward
from .hooks import (InheritLeadingChannelsHook, PrecisionMapHook,
                    RandomStateHook, RecalibrateBNHook,
                    WeightsOnlyCheckpointHook, check_neck_in_channels,
                    from_weights_only, to_weights_only)
from .search import (EvolutionSearchLoop, SearchProblem, ShardedEpochSampler,
                     StridedSampler, SupernetSearchProblem, WidthSearchProblem,
                     bucket_index, build_problem, num_buckets, pareto_front,
                     rank_by_fitness, strided_indices)
from .subnet_val_loop import SubnetTestLoop, SubnetValLoop, middle_subnet

__all__ = [
    'recalibrate_bn', 'tensor_forward', 'loss_forward', 'EvolutionSearchLoop',
    'bucket_index', 'build_problem', 'num_buckets', 'pareto_front',
    'rank_by_fitness', 'SearchProblem', 'StridedSampler',
    'SupernetSearchProblem', 'strided_indices', 'SubnetValLoop',
    'SubnetTestLoop', 'middle_subnet', 'WeightsOnlyCheckpointHook',
    'RandomStateHook', 'RecalibrateBNHook', 'PrecisionMapHook',
    'check_neck_in_channels', 'to_weights_only', 'from_weights_only',
    'WidthSearchProblem', 'InheritLeadingChannelsHook', 'ShardedEpochSampler'
]
