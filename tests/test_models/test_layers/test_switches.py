import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from nasbnn_mm.models.layers import (BinaryConv2d, DynamicBinaryConv2d,
                                     DynamicRSign, binarization,
                                     normalize_weight, set_binarization)


def _model():
    torch.manual_seed(0)
    model = nn.Sequential(
        DynamicRSign(8), DynamicBinaryConv2d(8, 8, [3, 5]),
        BinaryConv2d(8, 4, 3, padding=1, bias=False))
    with torch.no_grad():
        model[0].bias.normal_()
        model[2].input_sign.bias.normal_()
    return model


def _states(model):
    return ([model[1].binary_weights, model[2].binary_weights],
            [model[0].binary, model[2].input_sign.binary])


@pytest.mark.parametrize('weights', [True, False])
@pytest.mark.parametrize('activations', [True, False])
def test_set_binarization_sets_every_switch(weights, activations):
    model = _model()
    set_binarization(model, weights, activations)
    assert _states(model) == ([weights] * 2, [activations] * 2)


def test_fwfa_is_full_precision_network():
    model = _model()
    x = torch.randn(1, 8, 6, 6)
    bwba = model(x)
    set_binarization(model, weights=False, activations=False)
    h = x + model[0].bias.view(1, 8, 1, 1)
    h = F.conv2d(h, normalize_weight(model[1].weight), padding=2)
    h = h + model[2].input_sign.bias.view(1, 8, 1, 1)
    expected = F.conv2d(h, normalize_weight(model[2].weight), padding=1)
    torch.testing.assert_close(model(x), expected)
    assert not torch.allclose(bwba, expected)


def test_context_manager_restores_on_error():
    model = _model()
    model[1].binary_weights = False
    before = _states(model)
    with pytest.raises(RuntimeError):
        with binarization(model, weights=False, activations=True):
            assert _states(model) == ([False] * 2, [True] * 2)
            raise RuntimeError
    assert _states(model) == before
