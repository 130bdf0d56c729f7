import pytest
import torch
import torch.nn as nn

from nasbnn_mm.models import WidthVGGSmall
from nasbnn_mm.models.layers.dorefa import DoReFaActivation, DoReFaConv2d
from nasbnn_mm.nas.width_space import EXPAND_RATIOS
from nasbnn_mm.registry import MODELS

BASE = (128, 128, 256, 256, 512, 512)


def _convs(model):
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize('ratios', [
    0.25, [4, 0.25, 3, 0.25, 2, 0.25], [0.25, 0.5, 1, 0.5, 0.25, 4],
    [0.5, 0.5, 0.25, 0.25, 1, 0.5]
])
def test_shapes_and_widths(ratios):
    model = WidthVGGSmall(ratios, num_classes=10, out_indices=(0, 1, 2, 3))
    uniform = [ratios] * 6 if isinstance(ratios, float) else ratios
    widths = [round(b * a) for b, a in zip(BASE, uniform)]
    assert model.channels == widths
    assert [c.out_channels for c in _convs(model)] == widths
    outs = model(torch.rand(2, 3, 32, 32))
    assert [tuple(o.shape) for o in outs] == [(2, widths[1], 16, 16),
                                              (2, widths[3], 8, 8),
                                              (2, widths[5], 4, 4), (2, 10)]
    assert model.classifier.in_features == widths[5] * 16


def test_default_out_indices():
    x = torch.rand(1, 3, 32, 32)
    outs = WidthVGGSmall(0.25)(x)
    assert len(outs) == 1 and outs[0].shape == (1, 128, 4, 4)
    outs = WidthVGGSmall(0.25, num_classes=7)(x)
    assert len(outs) == 1 and outs[0].shape == (1, 7)


def test_first_and_last_layers_full_precision():
    model = WidthVGGSmall(1, num_classes=10)
    convs = _convs(model)
    assert type(convs[0]) is nn.Conv2d
    assert all(type(c) is DoReFaConv2d for c in convs[1:])
    assert type(model.classifier) is nn.Linear
    acts = [m for m in model.modules() if isinstance(m, DoReFaActivation)]
    assert len(acts) == 6
    fp = WidthVGGSmall(1, binary=False, num_classes=10)
    assert all(type(c) is nn.Conv2d for c in _convs(fp))
    assert not any(isinstance(m, DoReFaActivation) for m in fp.modules())


def test_binary_activations_feed_binary_convs():
    model = WidthVGGSmall(0.25)
    seen = []
    for conv in _convs(model)[1:]:
        conv.register_forward_hook(
            lambda m, inputs, out: seen.append(inputs[0].unique().tolist()))
    model(torch.randn(2, 3, 32, 32))
    assert len(seen) == 5
    assert all(set(values) <= {0., 1.} for values in seen)


@pytest.mark.parametrize('ratios, message', [
    (1.5, r'expand_ratios\[0\] \(conv0\): 1.5 not in'),
    ([1, 1, 1, 1, 1, 8], r'expand_ratios\[5\] \(conv5\): 8 not in'),
    ([1, 1, True, 1, 1, 1], r'expand_ratios\[2\] \(conv2\): True'),
    ([1, 1, 1, 1, 1], r'got 5 ratios, expected 6'),
])
def test_bad_ratios(ratios, message):
    assert EXPAND_RATIOS == (0.25, 0.5, 1, 2, 3, 4)
    with pytest.raises(ValueError, match=message):
        WidthVGGSmall(ratios)


def test_bad_out_indices():
    with pytest.raises(ValueError, match=r'out_indices: 3 not in 0..2'):
        WidthVGGSmall(1, out_indices=(3, ))
    with pytest.raises(ValueError, match=r'out_indices: -1 not in 0..3'):
        WidthVGGSmall(1, num_classes=10, out_indices=(-1, ))


def test_base_channels_scale_every_layer():
    model = WidthVGGSmall([0.25, 1, 2, 3, 4, 0.5],
                          base_channels=(16, 16, 32, 32, 64, 64),
                          num_classes=10)
    assert model.channels == [4, 16, 64, 96, 256, 32]
    assert model.classifier.in_features == 32 * 16
    assert model(torch.rand(2, 3, 32, 32))[0].shape == (2, 10)


@pytest.mark.parametrize('base', [(16, 16, 32), (16, 16, 32, 32, 64, 0),
                                  (16, 16, 32, 32, 64, 6.5)])
def test_bad_base_channels(base):
    with pytest.raises(ValueError, match=r'base_channels: .* 6 positive'):
        WidthVGGSmall(1, base_channels=base)


def test_registry_and_init_weights():
    model = MODELS.build(
        dict(type='WidthVGGSmall', expand_ratios=0.25, num_classes=3))
    assert isinstance(model, WidthVGGSmall)
    model.init_weights()
    assert model(torch.rand(1, 3, 32, 32))[0].shape == (1, 3)


def _randomize_bn(model):
    torch.manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 2)
            m.bias.data.uniform_(-1, 1)
            m.num_batches_tracked.fill_(3)


def test_inherit_leading_channels_of_4x():
    wide = WidthVGGSmall(4, num_classes=10)
    _randomize_bn(wide)
    wide_state = wide.state_dict()
    ratios = [0.25, 4, 2, 0.5, 1, 3]
    cand = WidthVGGSmall(ratios, num_classes=10)
    cand.inherit_from(wide_state)
    for key, value in cand.state_dict().items():
        index = tuple(slice(0, n) for n in value.shape)
        torch.testing.assert_close(value, wide_state[key][index])
    # spot checks of the layouts: conv (out, in, k, k), BN, flattened FC
    c = cand.channels
    conv3 = cand.stages[1].conv3.weight
    assert conv3.shape == (c[3], c[2], 3, 3)
    torch.testing.assert_close(
        conv3, wide.stages[1].conv3.weight[:c[3], :c[2]].detach())
    torch.testing.assert_close(cand.stages[2].bn5.running_var,
                               wide.stages[2].bn5.running_var[:c[5]])
    wide_fc = wide.classifier.weight.detach().view(10, 2048, 4, 4)
    torch.testing.assert_close(
        cand.classifier.weight.detach().view(10, c[5], 4, 4),
        wide_fc[:, :c[5]])


def test_inherit_errors():
    cand = WidthVGGSmall(2)
    narrow = WidthVGGSmall([2, 2, 1, 2, 2, 2]).state_dict()
    with pytest.raises(
            ValueError,
            match=r"stages.1.conv2.weight'\]: shape "
            r'\(256, 256, 3, 3\) cannot be sliced'):
        cand.inherit_from(narrow)
    wide = WidthVGGSmall(4).state_dict()
    del wide['stages.0.bn0.bias']
    with pytest.raises(ValueError, match=r"missing key 'stages.0.bn0.bias'"):
        cand.inherit_from(wide)
    with pytest.raises(ValueError, match='classifier.weight'):
        WidthVGGSmall(
            1, num_classes=10).inherit_from(WidthVGGSmall(1).state_dict())


def _dyadic_and_masked(wide, cand):
    """Make the wide net compute exactly what the candidate computes.

    Weights become +-2^-k (one magnitude per layer, so DoReFa's E(|w|) is
    the same over the wide and the sliced tensor) and every BN channel the
    candidate does not have outputs -1, which the activation maps to 0.
    """
    torch.manual_seed(2)
    cand_state = cand.state_dict()
    for name, m in wide.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            sign = torch.where(torch.rand_like(m.weight) > 0.5, 1., -1.)
            magnitude = 2.**-torch.randint(1, 4, ())
            if not isinstance(m, DoReFaConv2d):
                magnitude = torch.randint(1, 5, m.weight.shape) / 8
            m.weight.data.copy_(sign * magnitude)
            if m.bias is not None:
                m.bias.data.copy_(torch.randint(-4, 5, m.bias.shape) / 8)
        elif isinstance(m, nn.BatchNorm2d):
            kept = cand_state[f'{name}.weight'].shape[0]
            m.running_mean.copy_(torch.randint(-8, 9, m.running_mean.shape))
            m.running_var.fill_(4 - m.eps)
            m.weight.data.copy_(torch.randint(1, 5, m.weight.shape) / 4)
            m.bias.data.copy_(torch.randint(-4, 5, m.bias.shape) / 8)
            m.weight.data[kept:] = 0
            m.bias.data[kept:] = -1


@pytest.mark.parametrize('binary', [True, False])
def test_inherited_candidate_matches_masked_wide(binary):
    wide = WidthVGGSmall([1, 1, 1, 0.5, 0.5, 0.5],
                         binary=binary,
                         num_classes=10).eval()
    cand = WidthVGGSmall([0.5, 0.25, 1, 0.25, 0.5, 0.25],
                         binary=binary,
                         num_classes=10).eval()
    _dyadic_and_masked(wide, cand)
    cand.inherit_from(wide.state_dict())
    x = torch.randint(0, 5, (2, 3, 32, 32)) / 4
    logits = cand(x)[0]
    assert logits.abs().sum() > 0
    torch.testing.assert_close(logits, wide(x)[0])
