import types

import pytest
import torch
import torch.nn as nn

from nasbnn_mm.engine.hooks import InheritLeadingChannelsHook
from nasbnn_mm.utils import CheckpointError


def _net(width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, width, 3, bias=False), nn.BatchNorm2d(width))


def _runner(model: nn.Module, iteration: int = 0):
    return types.SimpleNamespace(model=model, iter=iteration)


@pytest.mark.parametrize('reset_bn_stats', [False, True])
def test_hook_loads_leading_channels_before_training(tmp_path, reset_bn_stats):
    torch.manual_seed(0)
    wide = _net(8)
    wide[1].running_mean.normal_()
    path = str(tmp_path / 'wide.pth')
    # saved by DDP: the module. prefix is dropped
    torch.save(
        dict(state_dict={
            f'module.{k}': v
            for k, v in wide.state_dict().items()
        }), path)
    model = _net(4)
    InheritLeadingChannelsHook(path,
                               reset_bn_stats).before_train(_runner(model))
    torch.testing.assert_close(model[0].weight, wide[0].weight[:4])
    torch.testing.assert_close(model[1].weight, wide[1].weight[:4])
    expected = torch.zeros(4) if reset_bn_stats else \
        wide[1].running_mean[:4]
    torch.testing.assert_close(model[1].running_mean, expected)


def test_hook_keeps_a_resumed_run_and_names_a_bad_file(tmp_path):
    model = _net(4)
    before = model[0].weight.clone()
    hook = InheritLeadingChannelsHook(str(tmp_path / 'missing.pth'))
    hook.before_train(_runner(model, iteration=5))  # resumed: untouched
    torch.testing.assert_close(model[0].weight, before)
    with pytest.raises(CheckpointError, match='missing.pth: no such file'):
        hook.before_train(_runner(model))
    damaged = tmp_path / 'damaged.pth'
    damaged.write_bytes(b'PK\x03\x04 not really')
    with pytest.raises(CheckpointError, match='damaged.pth: it is'):
        InheritLeadingChannelsHook(str(damaged)).before_train(_runner(model))
