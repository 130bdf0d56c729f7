from .checkpoint_keys_hook import CheckpointKeysHook, checkpoint_key_problems
from .conventions_hook import ConventionsHook, runner_conventions
from .inherit_leading_channels_hook import InheritLeadingChannelsHook
from .precision_map_hook import PrecisionMapHook, check_neck_in_channels
from .random_state_hook import RandomStateHook
from .recalibrate_bn_hook import RecalibrateBNHook
from .weights_only_checkpoint_hook import (WeightsOnlyCheckpointHook,
                                           from_weights_only, to_weights_only)

__all__ = [
    'WeightsOnlyCheckpointHook', 'to_weights_only', 'from_weights_only',
    'RandomStateHook', 'RecalibrateBNHook', 'PrecisionMapHook',
    'check_neck_in_channels', 'InheritLeadingChannelsHook',
    'CheckpointKeysHook', 'checkpoint_key_problems', 'ConventionsHook',
    'runner_conventions'
]
