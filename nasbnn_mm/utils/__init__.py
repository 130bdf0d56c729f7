from .checkpoint import (CheckpointType, checkpoint_meta, extract_state_dict,
                         file_digest, read_checkpoint, save_atomic)
from .config_utils import apply_common_args
from .dist_utils import (all_reduce_gradients, broadcast_tensors,
                         init_cpu_process_group, tool_process_group)
from .errors import CheckpointError, UserError
from .model_utils import unwrap_model
from .random_utils import python_rng_state, set_python_rng_state
from .typing_utils import (ConfigType, MultiConfig, OptConfigType,
                           OptMultiConfig)

__all__ = [
    'ConfigType', 'OptConfigType', 'MultiConfig', 'OptMultiConfig',
    'apply_common_args', 'init_cpu_process_group', 'tool_process_group',
    'all_reduce_gradients', 'broadcast_tensors', 'UserError',
    'CheckpointError', 'CheckpointType', 'read_checkpoint',
    'extract_state_dict', 'checkpoint_meta', 'file_digest', 'save_atomic',
    'unwrap_model', 'python_rng_state', 'set_python_rng_state'
]
