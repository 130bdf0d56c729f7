from .bn_calibration import recalibrate_bn
from .hooks import *  # noqa: F401,F403
from .subnet_val_loop import SubnetTestLoop, SubnetValLoop, middle_subnet

__all__ = [
    'recalibrate_bn', 'SubnetValLoop', 'SubnetTestLoop', 'middle_subnet',
    'WeightsOnlyCheckpointHook', 'RandomStateHook', 'to_weights_only',
    'from_weights_only'
]
