import pytest
import torch
import torch.nn as nn

from nasbnn_mm.engine.bn_calibration import recalibrate_bn


def _model():
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4, momentum=0.3),
        nn.ReLU(), nn.Conv2d(4, 2, 1), nn.BatchNorm2d(2))


def test_statistics_are_the_cumulative_average_over_batches():
    torch.manual_seed(0)
    model = _model()
    model[1].running_mean.fill_(5.)  # stale statistics must be discarded
    batches = [torch.randn(6, 3, 8, 8) + i for i in range(3)]
    used = recalibrate_bn(model, batches, model)
    assert used == 3
    features = [model[0](b) for b in batches]
    expected_mean = torch.stack([f.mean(dim=(0, 2, 3)) for f in features])
    expected_var = torch.stack(
        [f.var(dim=(0, 2, 3), unbiased=True) for f in features])
    torch.testing.assert_close(model[1].running_mean, expected_mean.mean(0))
    torch.testing.assert_close(model[1].running_var, expected_var.mean(0))
    assert model[1].num_batches_tracked.item() == 3


def test_modes_and_momenta_are_restored_and_weights_untouched():
    model = _model()
    model.train()
    model[4].eval()
    weights = {
        k: v.clone()
        for k, v in model.state_dict().items()
        if 'running' not in k and 'num_batches' not in k
    }
    recalibrate_bn(model, [torch.randn(2, 3, 8, 8)] * 4, model, num_batches=2)
    assert model[1].num_batches_tracked.item() == 2
    assert model[1].momentum == 0.3 and model[4].momentum == 0.1
    assert model.training and model[1].training and not model[4].training
    for k, v in weights.items():
        assert torch.equal(model.state_dict()[k], v), k


def test_empty_batches_and_bad_count_raise():
    with pytest.raises(ValueError, match='empty'):
        recalibrate_bn(_model(), [], lambda b: b)
    with pytest.raises(ValueError, match='num_batches: 0'):
        recalibrate_bn(_model(), [torch.zeros(1)], lambda b: b, 0)
