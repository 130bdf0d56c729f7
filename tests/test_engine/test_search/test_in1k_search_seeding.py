"""The ImageNet search config seeds and buckets as the official launch
command (issue 13): proposals only, nothing is evaluated."""
import os.path as osp
import types

import pytest
import torch
from mmengine.config import Config
from search_toys import TinyDataset

from nasbnn_mm.engine.search import EvolutionSearchLoop, SupernetSearchProblem
from nasbnn_mm.models import SandwichSupernet
from nasbnn_mm.nas import SearchSpace, load_arch, sample_largest

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
CONFIG = osp.join(REPO, 'configs/nasbnn/nasbnn_search_8xb256_in1k.py')


@pytest.fixture(scope='module')
def in1k_loop(tmp_path_factory) -> EvolutionSearchLoop:
    """The config's loop on the real nasbnn_in1k supernet (built on the meta
    device: OPs need no weights) with tiny stand-in data."""
    cfg = Config.fromfile(CONFIG)
    model_cfg = cfg.model.to_dict()
    assert model_cfg.pop('type') == 'nasbnn_mm.SandwichSupernet'
    with torch.device('meta'):
        model = SandwichSupernet(**model_cfg)
    assert model.space == SearchSpace.from_config('nasbnn_in1k')
    runner = types.SimpleNamespace(
        model=model, work_dir=str(tmp_path_factory.mktemp('in1k')))
    train_cfg = cfg.train_cfg.to_dict()
    train_cfg.pop('type')
    problem_cfg = train_cfg.pop('problem')
    problem_cfg.pop('type')
    problem_cfg['eval_dataloader'] = dict(
        dataset=TinyDataset(4, 1), batch_size=2, num_workers=0)
    problem = SupernetSearchProblem(
        runner, dict(dataset=TinyDataset(4, 0), batch_size=2, num_workers=0),
        **problem_cfg)
    return EvolutionSearchLoop(runner, {}, problem, **train_cfg)


def test_in1k_buckets_are_the_official_81(in1k_loop):
    buckets = in1k_loop.objective.buckets
    assert len(buckets) == 81
    assert in1k_loop.cost_range == (20.0, 180.0)
    # 20, 22, ..., 180: the keys of the official round(ops / 2) * 2
    assert [buckets.index(ops) for ops in (20.2, 21.5, 179.4)] == [0, 1, 80]


def test_in1k_initial_population_holds_preset_a_and_the_largest(in1k_loop):
    initial = in1k_loop.propose()
    assert len(initial) == len(set(initial)) == 512
    problem, buckets = in1k_loop.problem, in1k_loop.objective.buckets
    costs = [problem.cost(c) for c in initial]
    preset_a = problem.cost(load_arch('nasbnn_a'))
    assert 20 <= preset_a < 22
    assert buckets.index(preset_a) in {buckets.index(c) for c in costs}
    largest = sample_largest(problem.space, problem.non_decreasing)
    assert initial[1] == largest and costs[1] > 180  # outside the range
    assert all(20 <= c <= 180 for c in costs[2:])
