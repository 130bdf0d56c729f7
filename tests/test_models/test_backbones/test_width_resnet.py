import pytest
import torch
import torch.nn as nn

from nasbnn_mm.models.backbones.width_resnet import WidthResNet18
from nasbnn_mm.models.layers.dorefa import DoReFaActivation, DoReFaConv2d
from nasbnn_mm.registry import MODELS

SMALL = [0.25, 0.5, 0.25, 0.25, 0.5, 0.25, 0.25, 0.25, 0.5, 0.25, 0.5, 0.25]


def _widths(ratios):
    """(stage widths, middle widths) from the 12 ratios, by hand."""
    ratios = [ratios] * 12 if isinstance(ratios, (int, float)) else ratios
    base = (64, 128, 256, 512)
    stages = [round(base[i] * ratios[3 * i]) for i in range(4)]
    mids = [[round(base[i] * r) for r in ratios[3 * i + 1:3 * i + 3]]
            for i in range(4)]
    return stages, mids


def test_layer_names():
    assert WidthResNet18.layer_names == ('stage1', 'stage1.block1.mid',
                                         'stage1.block2.mid', 'stage2',
                                         'stage2.block1.mid',
                                         'stage2.block2.mid', 'stage3',
                                         'stage3.block1.mid',
                                         'stage3.block2.mid', 'stage4',
                                         'stage4.block1.mid',
                                         'stage4.block2.mid')


@pytest.mark.parametrize('ratios', [
    0.25, SMALL, [0.5, 0.25, 1, 0.25, 0.5, 0.25, 0.25, 1, 0.25, 0.25, 0.25, 1]
])
@pytest.mark.parametrize('stem, size, strides',
                         [('imagenet', 64, (4, 8, 16, 32)),
                          ('cifar', 16, (1, 2, 4, 8))])
def test_shapes_and_widths(ratios, stem, size, strides):
    model = WidthResNet18(
        ratios, stem=stem, num_classes=5, out_indices=(0, 1, 2, 3, 4))
    stages, mids = _widths(ratios)
    assert model.stage_channels == stages
    assert model.mid_channels == mids
    assert model.stem[0].out_channels == stages[0]
    for i, stage in enumerate(model.stages):
        for j, block in enumerate(stage):
            assert block.conv1.out_channels == mids[i][j]
            assert block.conv2.in_channels == mids[i][j]
            assert block.conv2.out_channels == stages[i]
    outs = model(torch.rand(2, 3, size, size))
    expected = [(2, c, size // s, size // s) for c, s in zip(stages, strides)]
    assert [tuple(o.shape) for o in outs] == expected + [(2, 5)]
    assert model.classifier.in_features == stages[3]


def test_default_out_indices():
    x = torch.rand(1, 3, 32, 32)
    outs = WidthResNet18(0.25, stem='cifar')(x)
    assert len(outs) == 1 and outs[0].shape == (1, 128, 4, 4)
    outs = WidthResNet18(0.25, stem='cifar', num_classes=4)(x)
    assert len(outs) == 1 and outs[0].shape == (1, 4)


def test_binarization_and_shortcuts():
    model = WidthResNet18(SMALL, num_classes=10)
    assert type(model.stem[0]) is nn.Conv2d
    assert type(model.classifier) is nn.Linear
    convs = [m for m in model.stages.modules() if isinstance(m, nn.Conv2d)]
    # 16 block convs and 3 downsample convs, all binary (sec. 3.2)
    assert len(convs) == 19
    assert all(type(c) is DoReFaConv2d for c in convs)
    for i, stage in enumerate(model.stages):
        assert stage[1].downsample is None
        if i == 0:
            assert stage[0].downsample is None
            continue
        ds_conv = stage[0].downsample[0]
        assert ds_conv.kernel_size == (1, 1) and ds_conv.stride == (2, 2)
        assert ds_conv.in_channels == model.stage_channels[i - 1]
        assert ds_conv.out_channels == model.stage_channels[i]
    fp = WidthResNet18(SMALL, binary=False)
    assert not any(
        isinstance(m, (DoReFaConv2d, DoReFaActivation)) for m in fp.modules())


def test_binary_convs_see_binary_inputs():
    model = WidthResNet18(SMALL, stem='cifar')
    seen = []
    for m in model.stages.modules():
        if isinstance(m, DoReFaConv2d):
            m.register_forward_hook(lambda m, inputs, out: seen.append(inputs[
                0].unique().tolist()))
    model(torch.randn(2, 3, 16, 16))
    assert len(seen) == 19
    assert all(set(values) <= {0., 1.} for values in seen)


@pytest.mark.parametrize('ratios, message', [
    (0.75, r'expand_ratios\[0\] \(stage1\): 0.75 not in'),
    (SMALL[:4] + [5] + SMALL[5:],
     r'expand_ratios\[4\] \(stage2.block1.mid\): 5 not in'),
    (SMALL[:11], r'got 11 ratios, expected 12'),
    ([1] * 17, r'got 17 ratios, expected 12'),
])
def test_bad_ratios(ratios, message):
    with pytest.raises(ValueError, match=message):
        WidthResNet18(ratios)


def test_bad_stem_and_out_indices():
    with pytest.raises(ValueError, match=r"stem: 'deep' not in"):
        WidthResNet18(1, stem='deep')
    with pytest.raises(ValueError, match=r'out_indices: 4 not in 0..3'):
        WidthResNet18(1, out_indices=(4, ))


def test_registry_and_init_weights():
    model = MODELS.build(
        dict(
            type='WidthResNet18',
            expand_ratios=SMALL,
            stem='cifar',
            num_classes=3))
    assert isinstance(model, WidthResNet18)
    model.init_weights()
    assert model(torch.rand(2, 3, 16, 16))[0].shape == (2, 3)


def test_inherit_leading_channels_of_wide():
    torch.manual_seed(0)
    wide = WidthResNet18(1, num_classes=10)
    for m in wide.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    wide_state = wide.state_dict()
    cand = WidthResNet18(SMALL, num_classes=10)
    cand.inherit_from(wide_state)
    for key, value in cand.state_dict().items():
        index = tuple(slice(0, n) for n in value.shape)
        torch.testing.assert_close(value, wide_state[key][index])
    ds = cand.stages[2][0].downsample
    c_in, c_out = cand.stage_channels[1], cand.stage_channels[2]
    torch.testing.assert_close(
        ds[0].weight, wide.stages[2][0].downsample[0].weight[:c_out, :c_in])
    torch.testing.assert_close(
        ds[1].running_mean,
        wide.stages[2][0].downsample[1].running_mean[:c_out])
    with pytest.raises(ValueError, match='cannot be sliced'):
        WidthResNet18(2).inherit_from(WidthResNet18(1).state_dict())


def _dyadic_and_masked(wide, cand):
    """Make the wide net compute exactly what the candidate computes.

    Weights become dyadic with one magnitude per binary layer (so E(|w|) is
    the same over the wide and the sliced tensor); every BN channel the
    candidate does not have outputs -1 (or -2 with the downsample branch),
    which the activation maps to 0.
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
    wide = WidthResNet18(
        0.5, stem='cifar', binary=binary, num_classes=10).eval()
    cand = WidthResNet18(
        SMALL, stem='cifar', binary=binary, num_classes=10).eval()
    _dyadic_and_masked(wide, cand)
    cand.inherit_from(wide.state_dict())
    x = torch.randint(0, 5, (2, 3, 16, 16)) / 4
    logits = cand(x)[0]
    assert logits.abs().sum() > 0
    torch.testing.assert_close(logits, wide(x)[0])
