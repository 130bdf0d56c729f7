import copy
import os.path as osp

import numpy as np
import torch
import torch.nn as nn
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner

from nasbnn_mm.engine.hooks import (WeightsOnlyCheckpointHook,
                                    from_weights_only, to_weights_only)
from nasbnn_mm.testing import toy_train_dataloader


class ToyModel(BaseModel):

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, inputs, targets, mode='tensor'):
        outputs = self.linear(inputs)
        if mode == 'loss':
            return dict(loss=((outputs - targets)**2).mean())
        return outputs


def _dataset():
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(32, 4, generator=generator)
    targets = inputs.sum(dim=1, keepdim=True)
    return [dict(inputs=x, targets=y) for x, y in zip(inputs, targets)]


def _runner(work_dir: str, max_iters: int, resume: bool = False) -> Runner:
    torch.manual_seed(0)  # the same initial weights in every run
    return Runner(
        model=ToyModel(),
        work_dir=work_dir,
        train_dataloader=toy_train_dataloader(_dataset()),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=4,
                            by_epoch=False)),
        custom_hooks=[WeightsOnlyCheckpointHook()],
        randomness=dict(seed=0),
        resume=resume,
        experiment_name=f'toy_{max_iters}_{resume}_{osp.basename(work_dir)}')


def test_round_trip_restores_history_buffers():
    buffer = HistoryBuffer([1.0, 2.5], [1, 2], max_length=10)
    state = dict(
        message_hub=dict(
            log_scalars={'train/loss': buffer},
            runtime_info=dict(iter=np.int64(3), lr=np.float32(0.5)),
            resumed_keys={'train/loss': True}),
        meta=dict(seed=np.int64(7), arr=np.arange(3)))
    plain = to_weights_only(copy.deepcopy(state))
    assert plain['meta']['seed'] == 7 and type(plain['meta']['seed']) is int
    assert torch.equal(plain['meta']['arr'], torch.arange(3))
    restored = from_weights_only(plain['message_hub'])
    restored_buffer = restored['log_scalars']['train/loss']
    assert isinstance(restored_buffer, HistoryBuffer)
    np.testing.assert_array_equal(restored_buffer.data[0], [1.0, 2.5])
    np.testing.assert_array_equal(restored_buffer.data[1], [1, 2])
    assert restored_buffer.max_length == 10


def test_checkpoint_loads_weights_only_and_resume_matches(tmp_path):
    # An uninterrupted run of 8 iterations ...
    full = _runner(str(tmp_path / 'full'), max_iters=8)
    full.train()
    # ... equals 4 iterations, a restart, and 4 more from the checkpoint.
    first = _runner(str(tmp_path / 'split'), max_iters=4)
    first.train()
    ckpt = osp.join(str(tmp_path / 'split'), 'iter_4.pth')
    checkpoint = torch.load(ckpt, weights_only=True)  # no pickled code
    assert checkpoint['meta']['iter'] == 4
    assert 'train/loss' in checkpoint['message_hub']['log_scalars']
    second = _runner(str(tmp_path / 'split'), max_iters=8, resume=True)
    second.train()
    assert second.iter == 8
    for (name, a), b in zip(full.model.state_dict().items(),
                            second.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    loss = second.message_hub.get_scalar('train/loss')
    assert isinstance(loss, HistoryBuffer) and len(loss.data[0]) == 8
