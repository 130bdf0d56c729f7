import json
import os
import os.path as osp
import random
import re

import pytest
import search_toys
import torch
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmpretrain.structures import DataSample
from torch.utils.data import Dataset

from nasbnn_mm.engine.search import STATE_FILE, WidthSearchProblem
from nasbnn_mm.models import WidthVGGSmall
from nasbnn_mm.nas.width_counter import count_width_cost
from nasbnn_mm.nas.width_fitness import width_fitness
from nasbnn_mm.nas.width_space import EXPAND_RATIOS

# The wide network is uniform 0.5x and candidates use 0.25x/0.5x: the same
# code path as 4x -> {0.25, ..., 4}, a few ms per image on a CPU.
RATIOS = (0.25, 0.5)
WIDE = 0.5


def model_cfg(expand_ratios=WIDE) -> dict:
    return dict(
        type='ImageClassifier',
        backbone=dict(
            type='nasbnn_mm.WidthVGGSmall',
            expand_ratios=expand_ratios,
            num_classes=4),
        neck=None,
        head=dict(type='ClsHead', loss=dict(type='CrossEntropyLoss')),
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=4))


class TinyDataset(Dataset):
    """Random 3x32x32 images with labels in [0, 4)."""

    def __init__(self, num: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.rand(num, 3, 32, 32, generator=generator) * 255
        self.labels = torch.randint(0, 4, (num, ), generator=generator)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return dict(
            inputs=self.images[i],
            data_samples=DataSample().set_gt_label(int(self.labels[i])))


@pytest.fixture(autouse=True)
def mmpretrain_scope():
    """Problems build mmpretrain classifiers, as under tools/search.py."""
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


def problem_cfg(**kwargs) -> dict:
    cfg = dict(
        type='nasbnn_mm.WidthSearchProblem',
        eval_dataloader=dict(
            dataset=TinyDataset(8, seed=1), batch_size=4, num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05)),
        train_epochs=1,
        train_subset=8,
        model=model_cfg(),
        ratios=RATIOS,
        calibrate_batches=1,
        seed=0)
    cfg.update(kwargs)
    return cfg


def make_runner(work_dir, train_cfg: dict) -> Runner:
    return search_toys.make_runner(
        work_dir,
        train_cfg,
        model=model_cfg(),
        dataset=TinyDataset(12, seed=0),
        batch_size=4,
        default_scope='mmpretrain')


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory) -> str:
    """A random-weight wide classifier saved like a training checkpoint."""
    torch.manual_seed(0)
    runner = make_runner(
        tmp_path_factory.mktemp('wide_run'),
        dict(type='EpochBasedTrainLoop', max_epochs=1))
    model = runner.model
    model.init_weights()
    for m in model.modules():  # non-trivial BN statistics and affines
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2)
            m.weight.data.normal_()
            m.bias.data.normal_()
    path = str(tmp_path_factory.mktemp('ckpt') / 'wide.pth')
    torch.save(dict(state_dict=model.state_dict()), path)
    return path


@pytest.fixture(scope='module')
def problem(tmp_path_factory, checkpoint) -> WidthSearchProblem:
    runner = make_runner(
        tmp_path_factory.mktemp('problem'),
        dict(type='EpochBasedTrainLoop', max_epochs=1))
    state = torch.load(checkpoint, weights_only=True)['state_dict']
    runner.model.load_state_dict(state)
    cfg = problem_cfg()
    cfg.pop('type')
    return WidthSearchProblem(
        runner=runner,
        train_dataloader=dict(
            dataset=TinyDataset(12, seed=0), batch_size=4, num_workers=0),
        **cfg)


def test_draws_stay_in_the_ratios(problem):
    rng = random.Random(0)
    n = len(WidthVGGSmall.layer_names)
    drawn = [problem.sample(rng) for _ in range(20)]
    drawn += [problem.mutate(c, rng, 0.5) for c in drawn]
    drawn += [problem.crossover(a, b, rng) for a, b in zip(drawn, drawn[1:])]
    for c in drawn:
        assert len(c) == n and set(c) <= set(RATIOS)
        assert problem.from_dict(problem.to_dict(c)) == c
    assert len(set(drawn)) > 10
    a, b = (0.25, ) * n, (0.5, ) * n
    assert problem.mutate(a, rng, 0.0) == a
    children = {problem.crossover(a, b, rng) for _ in range(50)}
    assert len(children) > 10  # uniform per layer, not one cut point
    for child in children:
        assert set(child) <= {0.25, 0.5}
    # the 6 default ratios of eq. (2), readable specs
    spec = dict(expand_ratios=[0.25, 0.5, 0.25, 0.5, 0.5, 0.25])
    assert problem.to_dict(tuple(spec['expand_ratios'])) == spec
    assert problem.from_dict([0.5] * 6) == (0.5, ) * 6
    with pytest.raises(ValueError, match=r'conv2\): 2.0 not in'):
        problem.from_dict(dict(expand_ratios=[0.5, 0.5, 2, 0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match='expected 6'):
        problem.from_dict([0.5] * 5)
    assert set(EXPAND_RATIOS) >= set(problem.ratios)


def test_sample_respects_the_cost_range(problem):
    low, high = problem.cost_bounds()
    mid = (low + high) / 2
    rng = random.Random(1)
    for _ in range(5):
        assert low <= problem.cost(problem.sample(rng, (low, mid))) <= mid
    with pytest.raises(ValueError, match='no candidate'):
        problem.sample(rng, (high + 1, high + 2))


def test_cost_is_count_width_cost_and_reference_is_1x(problem):
    candidate = (0.25, 0.5, 0.5, 0.25, 0.5, 0.25)
    model = WidthVGGSmall(list(candidate), num_classes=4)
    expected = count_width_cost(model, (1, 3, 32, 32)).flops / 1e6
    assert problem.cost(candidate) == pytest.approx(expected, rel=1e-12)
    one_x = count_width_cost(
        WidthVGGSmall(1.0, num_classes=4), (1, 3, 32, 32)).flops / 1e6
    assert problem.reference_cost() == pytest.approx(one_x, rel=1e-12)
    assert WidthSearchProblem.cost_key == 'flops_m'
    low, high = problem.cost((0.25, ) * 6), problem.cost((0.5, ) * 6)
    assert problem.cost_bounds() == (low, high)


def test_evaluate_path_inherits_the_leading_channels(problem, checkpoint):
    wide = torch.load(checkpoint, weights_only=True)['state_dict']
    candidate = (0.5, 0.25, 0.5, 0.25, 0.25, 0.5)
    model = problem.inherit(candidate)
    own = model.state_dict()
    assert own['backbone.stages.0.conv1.weight'].shape == (32, 64, 3, 3)
    for key, tensor in own.items():
        expected = wide[key][tuple(slice(0, n) for n in tensor.shape)]
        torch.testing.assert_close(tensor, expected, rtol=0, atol=0)
    # the FC reads the flattened (C, 4, 4) map: a prefix of its columns
    assert own['backbone.classifier.weight'].shape == (4, 256 * 16)


def test_evaluate_is_deterministic(problem):
    candidate = (0.25, 0.5, 0.25, 0.5, 0.25, 0.5)
    a = problem.evaluate(candidate)
    b = problem.evaluate(candidate)
    assert a == b and 0 <= a <= 100
    assert a * 8 / 100 == pytest.approx(round(a * 8 / 100))


def test_tiny_search_logs_nondecreasing_best_fitness(tmp_path, checkpoint):
    train_cfg = dict(
        type='nasbnn_mm.EvolutionSearchLoop',
        problem=problem_cfg(),
        max_generations=2,
        population_size=3,
        num_mutation=2,
        num_crossover=1,
        mutate_prob=0.5,
        objective='fitness',
        trade_off=4.0,
        num_parents=2,
        seed=0,
        checkpoint=checkpoint)
    runner = make_runner(tmp_path, train_cfg)
    runner.train()
    loop = runner.train_loop
    cost_ref = loop.objective.cost_ref
    assert cost_ref == pytest.approx(
        loop.problem.reference_cost())  # uniform 1x
    with open(osp.join(tmp_path, STATE_FILE)) as f:
        state = json.load(f)
    evaluated = state['evaluated']
    assert len(evaluated) == 3 + 2 * 3
    assert [e['generation'] for e in evaluated] == [0] * 3 + [1] * 3 + [2] * 3
    best, per_generation = 0.0, []
    for g in range(3):
        for e in evaluated:
            if e['generation'] == g:
                best = max(best,
                           width_fitness(e['top1'], e['cost'], cost_ref, 4.0))
        per_generation.append(best)
    assert per_generation == sorted(per_generation)
    # the log: the best candidate after every generation; its fitness
    # never decreases
    with open(_log_file(tmp_path)) as f:
        log = f.read()
    found = re.findall(
        r'best fitness: ([\d.]+) \(FLOPs \(M\) ([\d.]+) top-1 ([\d.]+)%\)',
        log)
    assert len(found) == 3
    logged = [float(fitness) for fitness, _, _ in found]
    assert logged == pytest.approx([
        width_fitness(float(top1), float(cost), cost_ref, 4.0)
        for _, cost, top1 in found
    ],
                                   abs=2e-3)
    assert logged == sorted(logged)
    assert logged == pytest.approx(per_generation, abs=1e-2)
    with open(osp.join(tmp_path, 'best.json')) as f:
        top = json.load(f)[0]
    assert top['fitness'] == pytest.approx(per_generation[-1])
    assert set(top['arch']) == {'expand_ratios'}


def _log_file(work_dir) -> str:
    for root, _, files in os.walk(work_dir):
        for name in files:
            if name.endswith('.log'):
                return osp.join(root, name)
    raise FileNotFoundError(f'no log in {work_dir}')
