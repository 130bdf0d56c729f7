from .sandwich_data_parallel import SandwichDataParallel
from .sandwich_supernet import TEACHER_MODES, SandwichSupernet

__all__ = ['SandwichDataParallel', 'SandwichSupernet', 'TEACHER_MODES']
