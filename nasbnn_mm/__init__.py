"""nasbnn_mm: NAS-BNN for MMPretrain and MMDetection.

Importing the package registers its modules into the ``nasbnn_mm`` scope. It
imports torch and mmengine only; MMPretrain/MMDetection are never imported
here (configs bring them with their ``default_scope``).
"""
from . import datasets, engine, models, nas  # noqa: F401 (registers modules)
from .version import __version__

__all__ = ['__version__']
