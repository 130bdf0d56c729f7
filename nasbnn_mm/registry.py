"""Registries of nasbnn_mm.

Each node is a child of the matching mmengine root registry, so configs of
MMPretrain or MMDetection (``default_scope='mmpretrain'`` / ``'mmdet'``) can
name our types with the ``nasbnn_mm.`` prefix, e.g.
``backbone=dict(type='nasbnn_mm.NASBNN', ...)``, after
``custom_imports=dict(imports=['nasbnn_mm'])``.
"""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

__all__ = [
    'MODELS', 'MODEL_WRAPPERS', 'LOOPS', 'HOOKS', 'DATASETS', 'TRANSFORMS',
    'SEARCH_PROBLEMS'
]

MODELS = Registry(
    'model',
    parent=MMENGINE_MODELS,
    locations=['nasbnn_mm.models', 'nasbnn_mm.deploy'])
MODEL_WRAPPERS = Registry(
    'model_wrapper',
    parent=MMENGINE_MODEL_WRAPPERS,
    locations=['nasbnn_mm.models'])
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, locations=['nasbnn_mm.engine'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, locations=['nasbnn_mm.engine'])
DATASETS = Registry(
    'dataset', parent=MMENGINE_DATASETS, locations=['nasbnn_mm.datasets'])
TRANSFORMS = Registry(
    'transform', parent=MMENGINE_TRANSFORMS, locations=['nasbnn_mm.datasets'])
# What an EvolutionSearchLoop searches over (``train_cfg.problem``). mmengine
# has no such root: the node hangs under its task utilities, so a config in
# any default scope names a problem as ``type='nasbnn_mm.<Problem>'``.
SEARCH_PROBLEMS = Registry(
    'search problem',
    parent=MMENGINE_TASK_UTILS,
    locations=['nasbnn_mm.engine'])
