import inspect
import json
import os.path as osp
import re
import shutil
import types

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from search_toys import (TinyDataset, make_runner, run_search, search_cfg,
                         space, tiny_supernet)

from nasbnn_mm.engine.search import (STATE_FILE, EvolutionSearchLoop,
                                     SupernetSearchProblem, build_problem)
from nasbnn_mm.nas import (ArchSpec, ops_bounds, sample_largest,
                           sample_smallest, validate_arch)
from nasbnn_mm.utils import CheckpointError, UserError

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


@pytest.fixture(scope='module')
def reference(tmp_path_factory, checkpoint) -> dict:
    """An uninterrupted search with the default settings of search_toys."""
    work_dir = tmp_path_factory.mktemp('reference')
    out = run_search(work_dir, checkpoint)
    out['work_dir'] = work_dir
    return out


def test_search_is_deterministic_and_front_is_well_formed(
        tmp_path, checkpoint, reference):
    a = reference
    b = run_search(tmp_path, checkpoint)
    assert a['front'] == b['front']
    assert a['state'] == b['state']

    state, loop = a['state'], a['loop']
    buckets = loop.objective.buckets
    evaluated = state['evaluated']
    archs = [json.dumps(e['arch'], sort_keys=True) for e in evaluated]
    assert len(set(archs)) == len(archs)  # each candidate evaluated once
    low, high = loop.cost_range
    for e in evaluated:
        validate_arch(ArchSpec.from_dict(e['arch']), space(), True)
        assert low <= e['cost'] <= high
    # generation 0 starts with the smallest and the largest subnet
    assert evaluated[0]['arch'] == sample_smallest(space()).to_dict()
    assert evaluated[1]['arch'] == sample_largest(space()).to_dict()
    assert sum(e['generation'] == 0 for e in evaluated) == 6
    assert state['generation'] == 3 and state['pending'] is None
    assert state['settings']['checkpoint']['path'] == checkpoint

    front = a['front']
    costs = [f['ops_m'] for f in front]
    assert costs == sorted(costs)
    indices = [buckets.index(c) for c in costs]
    assert len(set(indices)) == len(indices)  # one per bucket
    for f, b in zip(front, indices):
        same = [e['top1'] for e in evaluated if buckets.index(e['cost']) == b]
        assert f['top1'] == max(same)  # the best of its bucket
        assert set(f) == {'arch', 'ops_m', 'top1'}
    assert set(indices) == {buckets.index(e['cost']) for e in evaluated}
    assert osp.getsize(a['work_dir'] / 'pareto.png') > 1000


def test_smallest_and_largest_start_the_population_outside_the_range(
        tmp_path, checkpoint):
    low, high = ops_bounds(space(), True)
    mid = (low + high) / 2
    out = run_search(
        tmp_path,
        checkpoint,
        max_generations=1,
        cost_range=(low, mid),
        bucket_step=(mid - low) / 4)
    evaluated = out['state']['evaluated']
    largest = sample_largest(space()).to_dict()
    assert evaluated[1]['arch'] == largest and evaluated[1]['cost'] > mid
    assert sum(e['generation'] == 0 for e in evaluated) == 6
    # every other candidate is in the range
    assert all(low <= e['cost'] <= mid for e in evaluated
               if e['arch'] != largest)
    # the largest subnet has the bucket above the range, on the front
    assert out['front'][-1]['arch'] == largest
    assert out['loop'].objective.buckets.index(evaluated[1]['cost']) == 4


class _Crash(Exception):
    pass


@pytest.mark.parametrize('save_interval', [0, 2])
def test_killed_search_resumes_to_the_same_front(tmp_path, checkpoint,
                                                 reference, monkeypatch,
                                                 save_interval):
    # Crash in the middle of generation 2: evaluation 6 (init) + 6 + 3.
    original = SupernetSearchProblem.evaluate
    calls = dict(n=0)

    def crashing(self, candidate):
        calls['n'] += 1
        if calls['n'] == 15:
            raise _Crash()
        return original(self, candidate)

    monkeypatch.setattr(SupernetSearchProblem, 'evaluate', crashing)
    with pytest.raises(_Crash):
        run_search(tmp_path / 'run', checkpoint, save_interval=save_interval)
    monkeypatch.setattr(SupernetSearchProblem, 'evaluate', original)
    with open(tmp_path / 'run' / STATE_FILE) as f:
        saved = json.load(f)
    assert saved['generation'] == 2 and saved['pending'] is not None
    expected_saved = 12 + (2 if save_interval else 0)
    assert len(saved['evaluated']) == expected_saved
    assert not osp.exists(tmp_path / 'run' / (STATE_FILE + '.tmp'))

    resumed = run_search(tmp_path / 'run', checkpoint, resume=True)
    assert resumed['front'] == reference['front']
    assert resumed['state'] == reference['state']


def test_resume_continues_a_finished_search_with_more_generations(
        tmp_path, checkpoint, reference):
    run_search(tmp_path / 'run', checkpoint, max_generations=1)
    resumed = run_search(
        tmp_path / 'run', checkpoint, max_generations=2, resume=True)
    assert resumed['front'] == reference['front']
    assert resumed['state']['evaluated'] == reference['state']['evaluated']


def test_resume_refuses_other_settings(tmp_path, checkpoint):
    run_search(tmp_path, checkpoint, max_generations=0)
    with pytest.raises(UserError, match='resume: num_mutation is 4'):
        run_search(
            tmp_path,
            checkpoint,
            max_generations=1,
            num_mutation=4,
            resume=True)


def test_resume_refuses_another_checkpoint_and_accepts_a_moved_one(
        tmp_path, checkpoint):
    run_search(tmp_path / 'run', checkpoint, max_generations=0)
    moved = str(tmp_path / 'moved.pth')
    shutil.copy(checkpoint, moved)
    run_search(tmp_path / 'run', moved, max_generations=1, resume=True)

    other = str(tmp_path / 'other.pth')
    state = torch.load(checkpoint, weights_only=True)
    state['state_dict'] = {
        k: v + 1 if v.is_floating_point() else v
        for k, v in state['state_dict'].items()
    }
    torch.save(state, other)
    with pytest.raises(UserError) as e:
        run_search(tmp_path / 'run', other, max_generations=2, resume=True)
    message = str(e.value)
    # the state names the checkpoint of the last run, the moved file
    assert other in message and moved in message
    assert message.count('sha256') == 2


def test_resume_from_a_truncated_state_names_the_file(tmp_path, checkpoint):
    run_search(tmp_path, checkpoint, max_generations=0)
    path = tmp_path / STATE_FILE
    path.write_text(path.read_text()[:-30])
    with pytest.raises(UserError, match=re.escape(str(path))):
        run_search(tmp_path, checkpoint, max_generations=1, resume=True)


def test_a_checkpoint_that_does_not_fit_fails_in_one_line(
        tmp_path, checkpoint):
    state = torch.load(checkpoint, weights_only=True)['state_dict']
    wrong = str(tmp_path / 'wrong.pth')
    torch.save(dict(state_dict=dict(list(state.items())[1:])), wrong)
    with pytest.raises(CheckpointError, match='does not fit the model') as e:
        run_search(tmp_path / 'run', wrong)
    assert wrong in str(e.value) and '\n' not in str(e.value)
    with pytest.raises(CheckpointError, match='no such file'):
        run_search(tmp_path / 'run', str(tmp_path / 'missing.pth'))


def test_infeasible_cost_range_fails_with_the_achievable_range(
        tmp_path, checkpoint):
    low, high = ops_bounds(space(), True)
    runner = make_runner(
        tmp_path,
        search_cfg(
            checkpoint, cost_range=(high + 1, high + 2), bucket_step=0.5))
    with pytest.raises(ValueError, match='achievable range') as e:
        runner.train()
    assert f'{low:.4f}' in str(e.value) and f'{high:.4f}' in str(e.value)


def test_invalid_settings(tmp_path, checkpoint):
    with pytest.raises(ValueError, match='objective'):
        make_runner(tmp_path, search_cfg(checkpoint, objective='nsga')).train()
    with pytest.raises(ValueError, match='bucket_step'):
        make_runner(tmp_path, search_cfg(checkpoint, bucket_step=None)).train()
    with pytest.raises(ValueError, match='population_size: 0 must be'):
        make_runner(tmp_path, search_cfg(checkpoint,
                                         population_size=0)).train()


def test_fitness_objective(tmp_path, checkpoint):
    out = run_search(
        tmp_path,
        checkpoint,
        objective='fitness',
        trade_off=20.0,
        num_parents=3)
    objective = out['loop'].objective
    with open(tmp_path / 'best.json') as f:
        best = json.load(f)
    assert len(best) == 3
    ref = objective.cost_ref
    assert ref == pytest.approx(out['loop'].problem.cost(
        sample_largest(space())))
    fitness = [
        max(e['top1'] - 20.0 * e['cost'] / ref, 0.0)
        for e in out['state']['evaluated']
    ]
    assert [b['fitness']
            for b in best] == pytest.approx(sorted(fitness, reverse=True)[:3])
    for b in best:
        assert b['fitness'] == pytest.approx(
            max(b['top1'] - 20.0 * b['ops_m'] / ref, 0.0))


def test_loop_reports_train_loop_counters(tmp_path, checkpoint):
    runner = make_runner(tmp_path, search_cfg(checkpoint, max_generations=0))
    runner.train()
    loop = runner.train_loop
    assert isinstance(loop, EvolutionSearchLoop)
    assert loop.max_epochs == loop.max_iters == 0
    assert loop.epoch == loop.iter == 1
    assert loop.num_evaluated == 6


def test_problems_come_from_the_registry_in_any_default_scope(checkpoint):
    cfg = search_cfg(checkpoint)['problem']
    with pytest.raises(ValueError, match='registered: .*SupernetSearch'):
        build_problem(dict(cfg, type='nasbnn_mm.NoSuchProblem'), None, {})
    runner = types.SimpleNamespace(model=tiny_supernet())
    train = dict(dataset=TinyDataset(8, 0), batch_size=4, num_workers=0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        problem = build_problem(cfg, runner, train)
    assert type(problem) is SupernetSearchProblem
    assert build_problem(problem, None, {}) is problem


@pytest.mark.parametrize(
    'name', ['nasbnn_search_digits.py', 'nasbnn_search_8xb256_in1k.py'])
def test_search_configs_fit_the_loop_and_problem(name):
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'nasbnn', name))
    train_cfg = cfg.train_cfg.to_dict()
    assert train_cfg.pop('type') == 'nasbnn_mm.EvolutionSearchLoop'
    problem = dict(train_cfg['problem'])
    assert problem.pop('type') == 'nasbnn_mm.SupernetSearchProblem'
    inspect.signature(EvolutionSearchLoop).bind(None, None, **train_cfg)
    inspect.signature(SupernetSearchProblem).bind(None, None, **problem)
    assert 'dataset' in problem['eval_dataloader']
    # the runner builds no scheduler or validation loop for a search
    assert cfg.param_scheduler is None and cfg.val_cfg is None
