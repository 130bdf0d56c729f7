"""Toys of the search tests (imported by the test modules of this folder):
a tiny supernet, data and a search runner on the one-stage space of
:mod:`nasbnn_mm.testing`."""
import json
import os
import os.path as osp
from itertools import count
from typing import Optional

import torch
from mmengine.runner import Runner
from torch.utils.data import Dataset

from nasbnn_mm.models import SandwichSupernet
from nasbnn_mm.nas import SearchSpace, ops_bounds
from nasbnn_mm.testing import ONE_STAGE_SPACE, LabelSample

_RUNS = count()


class TinyDataset(Dataset):
    """Random 3x16x16 images with labels in [0, 4)."""

    def __init__(self, num: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.randn(num, 3, 16, 16, generator=generator)
        self.labels = torch.randint(0, 4, (num, ), generator=generator)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return dict(
            inputs=self.images[i],
            data_samples=LabelSample(int(self.labels[i])))


def space() -> SearchSpace:
    return SearchSpace.from_dict(ONE_STAGE_SPACE)


def tiny_supernet() -> SandwichSupernet:
    return SandwichSupernet(
        backbone=dict(type='nasbnn_mm.SuperBNN', search_space=ONE_STAGE_SPACE),
        data_preprocessor=dict(type='ImgDataPreprocessor'))


def search_cfg(checkpoint: str, **kwargs) -> dict:
    """A 3-generation search of 6 + 2 x 6 candidates over the whole space.
    """
    low, high = ops_bounds(space(), True)
    cfg = dict(
        type='nasbnn_mm.EvolutionSearchLoop',
        problem=dict(
            type='nasbnn_mm.SupernetSearchProblem',
            eval_dataloader=dict(
                dataset=TinyDataset(20, seed=1), batch_size=6, num_workers=0),
            calibrate_batches=2),
        max_generations=2,
        population_size=6,
        num_mutation=3,
        num_crossover=3,
        mutate_prob=0.3,
        cost_range=(low, high),
        bucket_step=(high - low) / 5,
        seed=0,
        checkpoint=checkpoint)
    cfg.update(kwargs)
    return cfg


def make_runner(work_dir,
                train_cfg: dict,
                model: Optional[dict] = None,
                dataset: Optional[Dataset] = None,
                batch_size: int = 8,
                **runner_kwargs) -> Runner:
    """A Runner of a search loop (``train_cfg``); by default over the
    one-stage supernet and 32 :class:`TinyDataset` images."""
    if model is None:
        model = dict(
            type='nasbnn_mm.SandwichSupernet',
            backbone=dict(
                type='nasbnn_mm.SuperBNN', search_space=ONE_STAGE_SPACE),
            data_preprocessor=dict(type='ImgDataPreprocessor'))
    return Runner(
        model=model,
        work_dir=str(work_dir),
        experiment_name=f'search_{os.getpid()}_{next(_RUNS)}',
        train_dataloader=dict(
            dataset=TinyDataset(32, seed=0) if dataset is None else dataset,
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=batch_size,
            num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=train_cfg,
        default_hooks=dict(checkpoint=None),
        randomness=dict(seed=123),
        **runner_kwargs)


def run_search(work_dir, checkpoint, **kwargs) -> dict:
    """Run a search; its front, state file and loop."""
    runner = make_runner(work_dir, search_cfg(checkpoint, **kwargs))
    runner.train()
    with open(osp.join(work_dir, 'pareto.json')) as f:
        front = json.load(f)
    with open(osp.join(work_dir, 'search_state.json')) as f:
        state = json.load(f)
    return dict(front=front, state=state, loop=runner.train_loop)
