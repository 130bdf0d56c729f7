from .sandwich_data_parallel import SandwichDataParallel
from .sandwich_supernet import TEACHER_MODES, SandwichSupernet, SupernetHead

__all__ = [
    'SandwichDataParallel', 'SandwichSupernet', 'SupernetHead', 'TEACHER_MODES'
]
