"""Keep every random generator a training run draws from in its checkpoint.
"""
import random

import numpy as np
import torch
from mmengine.hooks import Hook

from nasbnn_mm.registry import HOOKS
from nasbnn_mm.utils import (python_rng_state, set_python_rng_state,
                             unwrap_model)

__all__ = ['RandomStateHook']

CHECKPOINT_KEY = 'random_states'


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save and restore the random states a resumed run needs.

    mmengine reseeds the global generators when a run resumes, so a resumed
    run would draw other subnets and other augmentations than an
    uninterrupted one. This hook stores, as plain ints and tensors
    (``torch.load(weights_only=True)`` accepts them):

    * the algorithm's subnet sampler ``model.rng`` (if it has one), and
    * the global Python, NumPy and torch (CPU) generators, which the data
      pipeline draws augmentations from when ``num_workers=0``.

    Resuming from a checkpoint saved at the end of an epoch then continues
    exactly as the uninterrupted run.
    """

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        algorithm = unwrap_model(runner.model)
        name, keys, pos, has_gauss, cached = np.random.get_state()
        states = dict(
            python=python_rng_state(random),
            numpy=dict(
                name=name,
                keys=torch.from_numpy(keys.astype(np.int64)),
                pos=int(pos),
                has_gauss=int(has_gauss),
                cached_gaussian=float(cached)),
            torch=torch.get_rng_state())
        if isinstance(getattr(algorithm, 'rng', None), random.Random):
            states['sampler'] = python_rng_state(algorithm.rng)
        checkpoint[CHECKPOINT_KEY] = states

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        states = checkpoint.get(CHECKPOINT_KEY)
        if states is None:
            return
        algorithm = unwrap_model(runner.model)
        if 'sampler' in states and isinstance(
                getattr(algorithm, 'rng', None), random.Random):
            set_python_rng_state(algorithm.rng, states['sampler'])
        if not runner._resume:
            return  # load_from: only the weights (and the sampler) matter
        set_python_rng_state(random, states['python'])
        numpy_state = states['numpy']
        np.random.set_state(
            (numpy_state['name'],
             numpy_state['keys'].numpy().astype(np.uint32), numpy_state['pos'],
             numpy_state['has_gauss'], numpy_state['cached_gaussian']))
        torch.set_rng_state(states['torch'])
