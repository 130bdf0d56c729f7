from .config_utils import apply_common_args
from .dist_utils import init_cpu_process_group
from .typing_utils import (ConfigType, MultiConfig, OptConfigType,
                           OptMultiConfig)

__all__ = [
    'ConfigType', 'OptConfigType', 'MultiConfig', 'OptMultiConfig',
    'apply_common_args', 'init_cpu_process_group'
]
