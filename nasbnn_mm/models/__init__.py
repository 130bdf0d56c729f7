from . import algorithms, backbones, layers, supernet  # noqa: F401 (registers)
from .algorithms import *  # noqa: F401,F403
from .backbones import *  # noqa: F401,F403
from .layers import binarization, set_binarization
from .supernet import *  # noqa: F401,F403

__all__ = (
    backbones.__all__ + supernet.__all__ + algorithms.__all__ +
    ['binarization', 'set_binarization'])
