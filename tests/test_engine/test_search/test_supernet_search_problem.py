import json
import os
import os.path as osp
import types

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from search_toys import TinyDataset, space, tiny_supernet

from nasbnn_mm.engine.search import SupernetSearchProblem
from nasbnn_mm.nas import sample_largest, sample_smallest


def _problem(checkpoint: str, num_eval: int) -> SupernetSearchProblem:
    model = tiny_supernet()
    model.load_state_dict(
        torch.load(checkpoint, weights_only=True)['state_dict'])
    return SupernetSearchProblem(
        types.SimpleNamespace(model=model),
        dict(dataset=TinyDataset(32, 0), batch_size=8, num_workers=0),
        dict(dataset=TinyDataset(num_eval, 1), batch_size=4, num_workers=0),
        calibrate_batches=2)


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
    arch = sample_largest(space())
    correct, total = problem.count_correct(arch)
    assert total == 20
    # by hand: the same BN statistics, then the whole set in one batch
    model.eval()
    logits = model(evalset.images, mode='tensor')
    assert correct == int((logits.argmax(1) == evalset.labels).sum())
    assert problem.evaluate(arch) == 100.0 * correct / total
    # the same candidate evaluates the same whatever ran before
    problem.evaluate(sample_smallest(space()))
    assert problem.count_correct(arch) == (correct, total)


def _dist_worker(rank: int, world_size: int, port: int, checkpoint: str,
                 out_dir: str) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world_size)
    torch.set_num_threads(1)
    problem = _problem(checkpoint, 19)
    counts = [
        problem.count_correct(a)
        for a in (sample_smallest(space()), sample_largest(space()))
    ]
    with open(osp.join(out_dir, f'rank{rank}.json'), 'w') as f:
        json.dump(
            dict(counts=counts, mine=len(problem.eval_loader.sampler)), f)
    dist.destroy_process_group()


def test_ranks_split_evaluation_and_sum_exact_counts(tmp_path, checkpoint):
    single = _problem(checkpoint, 19)
    expected = [
        list(single.count_correct(a))
        for a in (sample_smallest(space()), sample_largest(space()))
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
