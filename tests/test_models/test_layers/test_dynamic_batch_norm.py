import pytest
import torch
import torch.nn as nn

from nasbnn_mm.models.layers import DynamicBatchNorm2d


def _randomize(bn):
    with torch.no_grad():
        bn.weight.normal_()
        bn.bias.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2)


def test_train_updates_only_active_channels():
    torch.manual_seed(0)
    bn = DynamicBatchNorm2d(8)
    _randomize(bn)
    ref = nn.BatchNorm2d(5)
    ref.load_state_dict({
        k: v[:5] if v.dim() else v
        for k, v in bn.state_dict().items()
    })
    before = bn.running_mean.clone()
    x = torch.randn(4, 5, 3, 3)
    torch.testing.assert_close(bn(x), ref(x))
    torch.testing.assert_close(bn.running_mean[:5], ref.running_mean)
    torch.testing.assert_close(bn.running_var[:5], ref.running_var)
    assert torch.equal(bn.running_mean[5:], before[5:])
    assert bn.num_batches_tracked == 1


def test_eval_and_to_static():
    torch.manual_seed(0)
    bn = DynamicBatchNorm2d(8).eval()
    _randomize(bn)
    x = torch.randn(2, 6, 3, 3)
    static = bn.to_static(channels=6)
    assert type(static) is nn.BatchNorm2d and not static.training
    torch.testing.assert_close(static(x), bn(x))
    mean, var, weight, bias = (
        t[:6].view(1, 6, 1, 1)
        for t in (bn.running_mean, bn.running_var, bn.weight, bn.bias))
    expected = (x - mean) / torch.sqrt(var + bn.eps) * weight + bias
    torch.testing.assert_close(bn(x), expected)


def test_errors():
    bn = DynamicBatchNorm2d(4)
    with pytest.raises(ValueError, match='channels 5 .* exceed'):
        bn(torch.randn(2, 5, 2, 2))
    with pytest.raises(ValueError, match=r'channels 5 not in \[1, 4\]'):
        bn.to_static(channels=5)
