import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.optim import OptimWrapper

from nasbnn_mm.models.algorithms import SandwichDataParallel, SandwichSupernet
from nasbnn_mm.testing import ONE_STAGE_SPACE, LabelSample


def _worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world_size)
    torch.manual_seed(rank)  # different initial weights: rank 0's win
    model = SandwichSupernet(
        backbone=dict(type='nasbnn_mm.SuperBNN', search_space=ONE_STAGE_SPACE),
        seed=5)
    wrapper = SandwichDataParallel(model)
    optim = OptimWrapper(torch.optim.Adam(model.parameters(), lr=1e-2))
    sampled = []
    original = model.sample_students

    def recording_sample_students():
        students = original()
        sampled.append([s.to_dict() for _, s in students])
        return students

    model.sample_students = recording_sample_students
    generator = torch.Generator().manual_seed(100 + rank)  # own data
    for _ in range(3):
        batch = dict(
            inputs=torch.randn(4, 3, 16, 16, generator=generator),
            data_samples=[LabelSample(i % 4) for i in range(4)])
        wrapper.train_step(batch, optim)
    torch.save(
        dict(
            sampled=sampled,
            state={
                k: v.detach()
                for k, v in model.state_dict().items()
            }), os.path.join(out_dir, f'rank{rank}.pth'))
    dist.destroy_process_group()


def test_two_ranks_sample_the_same_subnets_and_end_equal(tmp_path):
    port = 29500 + os.getpid() % 1000
    mp.spawn(_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / 'rank0.pth', weights_only=True)
    r1 = torch.load(tmp_path / 'rank1.pth', weights_only=True)
    assert r0['sampled'] == r1['sampled']
    assert len(r0['sampled']) == 3
    for key, value in r0['state'].items():
        torch.testing.assert_close(
            value, r1['state'][key], rtol=0, atol=0, msg=key)
