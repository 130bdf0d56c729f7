from . import algorithms, backbones, layers  # noqa: F401 (registers modules)
from .algorithms import *  # noqa: F401,F403
from .backbones import *  # noqa: F401,F403

__all__ = backbones.__all__ + algorithms.__all__
