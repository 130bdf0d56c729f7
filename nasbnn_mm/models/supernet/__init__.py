"""What knows the supernet beyond its backbone: its classifier head, the
export of subnets and the slicing of supernet checkpoints into static
backbones (:class:`SupernetInit`). Deployment code never imports it."""
from .conventions import apply_checkpoint_conventions, model_conventions
from .export import export_subnet, subnet_checkpoint
from .head import SupernetHead
from .slicing import (SupernetInit, load_supernet_weights,
                      supernet_conventions, supernet_state_dict)

__all__ = [
    'SupernetHead', 'export_subnet', 'subnet_checkpoint', 'model_conventions',
    'apply_checkpoint_conventions', 'supernet_state_dict',
    'supernet_conventions', 'load_supernet_weights', 'SupernetInit'
]
