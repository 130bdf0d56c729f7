"""Killing supernet training and resuming ends with the same weights."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs/nasbnn/nasbnn_supernet_digits.py')


class Interrupted(Exception):
    pass


class KillAfterEpoch(Hook):
    """Stop the run right after the checkpoint of ``epoch`` is written."""
    priority = 'LOWEST'

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def after_train_epoch(self, runner) -> None:
        if runner.epoch + 1 == self.epoch:
            raise Interrupted


@pytest.fixture(scope='module')
def digits_root(tmp_path_factory):
    from nasbnn_mm.datasets import prepare_digits
    root = str(tmp_path_factory.mktemp('digits'))
    prepare_digits(root, num_train_canvases=1, num_val_canvases=1)
    return root


def _cfg(digits_root: str, work_dir: str, resume: bool) -> Config:
    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = work_dir
    cfg.resume = resume
    cfg.train_dataloader.dataset.data_root = osp.join(digits_root, 'cls')
    cfg.train_dataloader.dataset.indices = 48
    cfg.train_dataloader.batch_size = 16
    cfg.val_dataloader.dataset.data_root = osp.join(digits_root, 'cls')
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_cfg.max_epochs = 2
    cfg.train_cfg.val_interval = 100
    # warm-up across the interruption, so the resumed LR must continue
    cfg.param_scheduler = [cfg.param_scheduler[0]]
    cfg.default_hooks.checkpoint.interval = 1
    cfg.default_hooks.logger.interval = 1
    cfg.log_level = 'WARNING'
    return cfg


def test_resume_after_kill_matches_uninterrupted_run(digits_root, tmp_path):
    full = Runner.from_cfg(_cfg(digits_root, str(tmp_path / 'full'), False))
    full.train()
    # the schedule's fused Adam, whose state the resume restores
    assert full.optim_wrapper.optimizer.param_groups[0]['fused']

    killed = Runner.from_cfg(
        _cfg(digits_root, str(tmp_path / 'killed'), False))
    killed.register_hook(KillAfterEpoch(epoch=1))
    with pytest.raises(Interrupted):
        killed.train()
    assert osp.isfile(tmp_path / 'killed' / 'epoch_1.pth')
    checkpoint = torch.load(
        tmp_path / 'killed' / 'epoch_1.pth', weights_only=True)
    assert 'sampler' in checkpoint['random_states']

    resumed = Runner.from_cfg(
        _cfg(digits_root, str(tmp_path / 'killed'), True))
    resumed.train()
    assert resumed.epoch == 2
    expected = full.model.state_dict()
    for key, value in resumed.model.state_dict().items():
        torch.testing.assert_close(
            value, expected[key], rtol=0, atol=0, msg=key)
