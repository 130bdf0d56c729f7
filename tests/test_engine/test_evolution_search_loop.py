import json
import os
import os.path as osp
import types

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.runner import Runner
from torch.utils.data import Dataset

from nasbnn_mm.engine.evolution_search_loop import (STATE_FILE,
                                                    EvolutionSearchLoop,
                                                    bucket_index, num_buckets,
                                                    pareto_front,
                                                    rank_by_fitness)
from nasbnn_mm.engine.search_problems import (StridedSampler,
                                              SupernetSearchProblem,
                                              strided_indices)
from nasbnn_mm.models.algorithms import SandwichSupernet
from nasbnn_mm.nas import (ArchSpec, SearchSpace, ops_bounds, sample_largest,
                           sample_smallest, validate_arch)
from nasbnn_mm.nas.width_fitness import width_fitness
from nasbnn_mm.testing import ONE_STAGE_SPACE, LabelSample


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


def _space() -> SearchSpace:
    return SearchSpace.from_dict(ONE_STAGE_SPACE)


def tiny_supernet() -> SandwichSupernet:
    return SandwichSupernet(
        backbone=dict(type='nasbnn_mm.SuperBNN', search_space=ONE_STAGE_SPACE),
        data_preprocessor=dict(type='ImgDataPreprocessor'))


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory) -> str:
    """A random-weight supernet saved like a training checkpoint."""
    torch.manual_seed(0)
    model = tiny_supernet()
    path = str(tmp_path_factory.mktemp('ckpt') / 'supernet.pth')
    torch.save(dict(state_dict=model.state_dict()), path)
    return path


def problem_cfg() -> dict:
    return dict(
        type='nasbnn_mm.SupernetSearchProblem',
        eval_dataloader=dict(
            dataset=TinyDataset(20, seed=1), batch_size=6, num_workers=0),
        calibrate_batches=2)


def search_cfg(checkpoint: str, **kwargs) -> dict:
    low, high = ops_bounds(_space(), True)
    cfg = dict(
        type='nasbnn_mm.EvolutionSearchLoop',
        problem=problem_cfg(),
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


_RUNS = iter(range(10**6))


def make_runner(work_dir, train_cfg: dict) -> Runner:
    return Runner(
        model=dict(
            type='nasbnn_mm.SandwichSupernet',
            backbone=dict(
                type='nasbnn_mm.SuperBNN', search_space=ONE_STAGE_SPACE),
            data_preprocessor=dict(type='ImgDataPreprocessor')),
        work_dir=str(work_dir),
        experiment_name=f'search_{os.getpid()}_{next(_RUNS)}',
        train_dataloader=dict(
            dataset=TinyDataset(32, seed=0),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=8,
            num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=train_cfg,
        default_hooks=dict(checkpoint=None),
        randomness=dict(seed=123))


def run_search(work_dir, checkpoint, **kwargs) -> dict:
    runner = make_runner(work_dir, search_cfg(checkpoint, **kwargs))
    runner.train()
    with open(osp.join(work_dir, 'pareto.json')) as f:
        front = json.load(f)
    with open(osp.join(work_dir, STATE_FILE)) as f:
        state = json.load(f)
    return dict(front=front, state=state, loop=runner.train_loop)


# ------------------------------------------------------------ pure parts
def test_strided_indices_cover_the_dataset_exactly():
    for num in range(12):
        for world in range(1, 5):
            parts = [
                list(strided_indices(num, r, world)) for r in range(world)
            ]
            flat = [i for part in parts for i in part]
            assert sorted(flat) == list(range(num))  # no pad, no duplicate
            assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert list(StridedSampler(10, rank=2, world_size=4)) == [2, 6]
    assert len(StridedSampler(10, rank=2, world_size=4)) == 2
    assert list(StridedSampler(3)) == [0, 1, 2]  # not distributed
    with pytest.raises(ValueError, match='rank: 4 not in'):
        strided_indices(10, 4, 4)
    with pytest.raises(ValueError, match='world_size: 0'):
        strided_indices(10, 0, 0)


def test_buckets():
    assert num_buckets((40, 250), 10) == 21
    assert num_buckets((0, 1), 0.3) == 4  # last bucket narrower
    assert num_buckets((1, 1), 0.5) == 1
    assert [bucket_index(c, (40, 250), 10)
            for c in (40, 49.99, 50, 245, 250)] == [0, 0, 1, 20, 20]
    # float sums landing a hair below an edge stay in the upper bucket
    assert bucket_index(0.1 + 0.2, (0.0, 1.0), 0.1) == 3
    with pytest.raises(ValueError, match='outside cost_range'):
        bucket_index(251, (40, 250), 10)


def test_pareto_front_keeps_the_best_of_each_bucket_sorted():
    records = [
        (2.5, 40.0),  # bucket 2
        (1.2, 50.0),  # bucket 1
        (1.8, 55.0),  # bucket 1, best
        (0.1, 30.0),  # bucket 0
        (2.9, 40.0),  # bucket 2, tie: the earlier one stays
        (1.5, 55.0),  # bucket 1, tie with the best: earlier stays
    ]
    assert pareto_front(records, (0, 3), 1) == [3, 2, 0]
    assert pareto_front([], (0, 3), 1) == []


def test_fitness_values_and_ranking():
    # eq. (4) of Shen et al.: max(Acc - lambda * FLOPs / FLOPs_ref, 0)
    assert width_fitness(92.0, 26.4e6, 13.2e6, 4.0) == pytest.approx(84.0)
    assert width_fitness(90.0, 13.2e6, 13.2e6, 4.0) == pytest.approx(86.0)
    assert width_fitness(3.0, 13.2e6, 13.2e6, 4.0) == 0.0
    assert width_fitness(50.0, 3.0, 1.0, 0.0) == 50.0
    records = [(1.0, 50.0), (2.0, 60.0), (1.0, 58.0), (0.5, 52.0), (9, 1)]
    # fitness 46, 52, 54, 50, 0 (clamped)
    assert rank_by_fitness(records, 1.0, 4.0) == [2, 1, 3, 0, 4]
    # lambda = 0: accuracy only; ties keep the evaluation order
    assert rank_by_fitness([(1, 5.0), (2, 5.0)], 1.0, 0.0) == [0, 1]


# --------------------------------------------------------------- search
@pytest.fixture(scope='module')
def reference(tmp_path_factory, checkpoint) -> dict:
    """An uninterrupted search with the default settings of this file."""
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
    space = _space()
    evaluated = state['evaluated']
    archs = [json.dumps(e['arch'], sort_keys=True) for e in evaluated]
    assert len(set(archs)) == len(archs)  # each candidate evaluated once
    low, high = loop.cost_range
    for e in evaluated:
        validate_arch(ArchSpec.from_dict(e['arch']), space, True)
        assert low <= e['cost'] <= high
    # generation 0 starts with the smallest and the largest subnet
    assert evaluated[0]['arch'] == sample_smallest(space).to_dict()
    assert evaluated[1]['arch'] == sample_largest(space).to_dict()
    assert sum(e['generation'] == 0 for e in evaluated) == 6
    assert state['generation'] == 3 and state['pending'] is None

    front = a['front']
    costs = [f['ops_m'] for f in front]
    assert costs == sorted(costs)
    buckets = [
        bucket_index(c, loop.cost_range, loop.bucket_step) for c in costs
    ]
    assert len(set(buckets)) == len(buckets)  # one per bucket
    for f, b in zip(front, buckets):
        same = [
            e['top1'] for e in evaluated
            if bucket_index(e['cost'], loop.cost_range, loop.bucket_step) == b
        ]
        assert f['top1'] == max(same)  # the best of its bucket
        assert set(f) == {'arch', 'ops_m', 'top1'}
    every_bucket = {
        bucket_index(e['cost'], loop.cost_range, loop.bucket_step)
        for e in evaluated
    }
    assert set(buckets) == every_bucket
    assert osp.getsize(a['work_dir'] / 'pareto.png') > 1000


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
    with pytest.raises(ValueError, match='resume: num_mutation is 4'):
        run_search(
            tmp_path,
            checkpoint,
            max_generations=1,
            num_mutation=4,
            resume=True)


def test_infeasible_cost_range_fails_with_the_achievable_range(
        tmp_path, checkpoint):
    low, high = ops_bounds(_space(), True)
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


def test_fitness_objective(tmp_path, checkpoint):
    out = run_search(
        tmp_path,
        checkpoint,
        objective='fitness',
        trade_off=20.0,
        num_parents=3)
    loop = out['loop']
    with open(tmp_path / 'best.json') as f:
        best = json.load(f)
    assert len(best) == 3
    ref = loop.cost_ref
    assert ref == pytest.approx(loop.problem.cost(sample_largest(_space())))
    fitness = [
        max(e['top1'] - 20.0 * e['cost'] / ref, 0.0)
        for e in out['state']['evaluated']
    ]
    assert [b['fitness']
            for b in best] == pytest.approx(sorted(fitness, reverse=True)[:3])
    for b in best:
        assert b['fitness'] == pytest.approx(
            max(b['top1'] - 20.0 * b['ops_m'] / ref, 0.0))


def test_problem_counts_match_a_plain_evaluation(checkpoint):
    model = tiny_supernet()
    model.load_state_dict(
        torch.load(checkpoint, weights_only=True)['state_dict'])
    runner = types.SimpleNamespace(model=model)
    train = dict(dataset=TinyDataset(32, 0), batch_size=8, num_workers=0)
    evalset = TinyDataset(20, 1)
    problem = SupernetSearchProblem(
        runner,
        train,
        dict(dataset=evalset, batch_size=6, num_workers=0),
        calibrate_batches=2)
    arch = sample_largest(_space())
    correct, total = problem.count_correct(arch)
    assert total == 20
    # by hand: the same BN statistics, then the whole set in one batch
    model.eval()
    logits = model(evalset.images, mode='tensor')
    assert correct == int((logits.argmax(1) == evalset.labels).sum())
    assert problem.evaluate(arch) == 100.0 * correct / total
    # the same candidate evaluates the same whatever ran before
    problem.evaluate(sample_smallest(_space()))
    assert problem.count_correct(arch) == (correct, total)


def _dist_worker(rank: int, world_size: int, port: int, checkpoint: str,
                 out_dir: str) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world_size)
    torch.set_num_threads(1)
    model = tiny_supernet()
    model.load_state_dict(
        torch.load(checkpoint, weights_only=True)['state_dict'])
    problem = SupernetSearchProblem(
        types.SimpleNamespace(model=model),
        dict(dataset=TinyDataset(32, 0), batch_size=8, num_workers=0),
        dict(dataset=TinyDataset(19, 1), batch_size=4, num_workers=0),
        calibrate_batches=2)
    counts = [
        problem.count_correct(a)
        for a in (sample_smallest(_space()), sample_largest(_space()))
    ]
    with open(osp.join(out_dir, f'rank{rank}.json'), 'w') as f:
        json.dump(
            dict(counts=counts, mine=len(problem.eval_loader.sampler)), f)
    dist.destroy_process_group()


def test_ranks_split_evaluation_and_sum_exact_counts(tmp_path, checkpoint):
    model = tiny_supernet()
    model.load_state_dict(
        torch.load(checkpoint, weights_only=True)['state_dict'])
    single = SupernetSearchProblem(
        types.SimpleNamespace(model=model),
        dict(dataset=TinyDataset(32, 0), batch_size=8, num_workers=0),
        dict(dataset=TinyDataset(19, 1), batch_size=4, num_workers=0),
        calibrate_batches=2)
    expected = [
        list(single.count_correct(a))
        for a in (sample_smallest(_space()), sample_largest(_space()))
    ]
    port = 29600 + os.getpid() % 1000
    mp.spawn(
        _dist_worker,
        args=(2, port, checkpoint, str(tmp_path)),
        nprocs=2,
        join=True)
    results = []
    for rank in range(2):
        with open(tmp_path / f'rank{rank}.json') as f:
            results.append(json.load(f))
    assert [r['mine'] for r in results] == [10, 9]  # 19 images, no padding
    for r in results:
        assert r['counts'] == expected
        assert all(total == 19 for _, total in r['counts'])


def test_loop_reports_train_loop_counters(tmp_path, checkpoint):
    runner = make_runner(tmp_path, search_cfg(checkpoint, max_generations=0))
    runner.train()
    loop = runner.train_loop
    assert isinstance(loop, EvolutionSearchLoop)
    assert loop.max_epochs == loop.max_iters == 0
    assert loop.epoch == loop.iter == 1


@pytest.mark.parametrize(
    'name', ['nasbnn_search_digits.py', 'nasbnn_search_8xb256_in1k.py'])
def test_search_configs_fit_the_loop_and_problem(name):
    import inspect

    from mmengine.config import Config
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    cfg = Config.fromfile(osp.join(repo, 'configs', 'nasbnn', name))
    train_cfg = cfg.train_cfg.to_dict()
    assert train_cfg.pop('type') == 'nasbnn_mm.EvolutionSearchLoop'
    problem = dict(train_cfg['problem'])
    assert problem.pop('type') == 'nasbnn_mm.SupernetSearchProblem'
    inspect.signature(EvolutionSearchLoop).bind(None, None, **train_cfg)
    inspect.signature(SupernetSearchProblem).bind(None, None, **problem)
    assert 'dataset' in problem['eval_dataloader']
    # the runner builds no scheduler or validation loop for a search
    assert cfg.param_scheduler is None and cfg.val_cfg is None
    low, high = train_cfg['cost_range']
    assert num_buckets((low, high), train_cfg['bucket_step']) >= 4
