import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import MODELS as MMENGINE_MODELS

from nasbnn_mm.models.layers import (BinaryConv2d, binarize_weight,
                                     binary_conv_weight, normalize_weight,
                                     sign_ste)
from nasbnn_mm.registry import MODELS


def _sign(x):
    return torch.where(x >= 0, 1., -1.)


def test_normalize_weight_statistics():
    torch.manual_seed(0)
    w = torch.randn(8, 4, 3, 3) * 3 + 1
    wn = normalize_weight(w)
    flat = wn.flatten(1)
    torch.testing.assert_close(flat.mean(1), torch.zeros(8), atol=1e-6, rtol=0)
    # biased (population) variance, as in eq. (6) with sigma^2 of the channel
    torch.testing.assert_close(
        flat.var(1, correction=0), torch.ones(8), atol=1e-4, rtol=0)


def test_normalize_weight_eps_of_eq6():
    torch.manual_seed(0)
    w = torch.randn(6, 2, 3, 3) * 1e-2
    var = w.flatten(1).var(1, correction=0)
    wn = normalize_weight(w)
    torch.testing.assert_close(
        wn.flatten(1).var(1, correction=0), var / (var + 1e-5))


def test_sign_ste_gradient_is_clipped_identity():
    x = torch.linspace(-2, 2, 81, requires_grad=True)
    upstream = torch.rand(81) + 0.5
    out = sign_ste(x)
    assert set(out.tolist()) == {-1., 1.}
    assert sign_ste(torch.tensor([0., -0.])).tolist() == [1., 1.]
    out.backward(upstream)
    expected = upstream * (x.detach().abs() <= 1)
    torch.testing.assert_close(x.grad, expected)


def test_binarize_weight_two_values_per_channel():
    torch.manual_seed(0)
    w = torch.randn(5, 3, 3, 3)
    wn = normalize_weight(w)
    wb = binarize_weight(wn)
    alpha = wn.abs().flatten(1).mean(1)
    for o in range(5):
        assert torch.equal(wb[o].abs().unique(), alpha[o].view(1))
        assert set(wb[o].sign().unique().tolist()) == {-1., 1.}
    assert torch.equal(wb.sign(), _sign(wn))


def test_binary_conv_forward_matches_manual():
    torch.manual_seed(0)
    conv = BinaryConv2d(4, 6, 3, padding=1, bias=True)
    with torch.no_grad():
        conv.input_sign.bias.normal_()
        conv.bi_transform.theta.add_(0.1 * torch.randn(9, 9))
    x = torch.randn(2, 4, 5, 5)
    x_b = _sign(x + conv.input_sign.bias.view(1, 4, 1, 1))
    w = (conv.weight.flatten(2) @ conv.bi_transform.theta).view(6, 4, 3, 3)
    wn = normalize_weight(w)
    w_b = wn.abs().flatten(1).mean(1).view(6, 1, 1, 1) * _sign(wn)
    expected = F.conv2d(x_b, w_b, conv.bias, padding=1)
    torch.testing.assert_close(conv(x), expected)


def test_binary_conv_switches_change_the_path():
    torch.manual_seed(0)
    conv = BinaryConv2d(4, 6, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.input_sign.bias.normal_()
        conv.bi_transform.theta.add_(0.1 * torch.randn(9, 9))
    x = torch.randn(2, 4, 5, 5)
    shifted = x + conv.input_sign.bias.view(1, 4, 1, 1)
    w_bin = binary_conv_weight(conv.weight, True, True, conv.bi_transform)
    bwba = conv(x)
    # FWBA: F.conv2d of the normalized float weight, no Bi-Transformation
    conv.binary_weights = False
    fwba = conv(x)
    torch.testing.assert_close(
        fwba,
        F.conv2d(_sign(shifted), normalize_weight(conv.weight), padding=1))
    # FWFA: the shifted float input too
    conv.input_sign.binary = False
    fwfa = conv(x)
    torch.testing.assert_close(
        fwfa, F.conv2d(shifted, normalize_weight(conv.weight), padding=1))
    # BWFA
    conv.binary_weights = True
    torch.testing.assert_close(conv(x), F.conv2d(shifted, w_bin, padding=1))
    assert not torch.allclose(bwba, fwba)
    assert not torch.allclose(fwba, fwfa)


def test_fp_weights_do_not_train_bi_transformation():
    conv = BinaryConv2d(2, 2, 3, bias=False)
    conv.binary_weights = False
    conv(torch.randn(1, 2, 5, 5)).sum().backward()
    assert conv.bi_transform.theta.grad is None
    assert conv.weight.grad is not None


def test_ablation_flags():
    torch.manual_seed(0)
    conv = BinaryConv2d(
        3,
        4,
        3,
        bias=False,
        weight_norm=False,
        bi_transform=False,
        binarize_input=False)
    assert conv.bi_transform is None and conv.input_sign is None
    x = torch.randn(1, 3, 6, 6)
    w = conv.weight
    w_b = w.abs().flatten(1).mean(1).view(4, 1, 1, 1) * _sign(w)
    torch.testing.assert_close(conv(x), F.conv2d(x, w_b))
    conv.binary_weights = False
    torch.testing.assert_close(conv(x), F.conv2d(x, w))


def test_1x1_has_no_bi_transformation():
    assert BinaryConv2d(4, 4, 1).bi_transform is None


def test_weight_gradient_flows():
    conv = BinaryConv2d(3, 4, 3, padding=1)
    conv(torch.randn(2, 3, 6, 6)).pow(2).sum().backward()
    assert conv.weight.grad.abs().sum() > 0
    assert conv.input_sign.bias.grad.abs().sum() > 0
    assert conv.bi_transform.theta.grad.abs().sum() > 0


def test_registration_and_ops_kind():
    assert MMENGINE_MODELS.get('BinaryConv2d') is BinaryConv2d
    assert MODELS.get('BinaryConv2d') is BinaryConv2d
    conv = MMENGINE_MODELS.build(
        dict(
            type='BinaryConv2d',
            in_channels=4,
            out_channels=8,
            kernel_size=3,
            stride=2,
            padding=1,
            dilation=1,
            groups=2,
            bias=False))
    assert conv(torch.randn(1, 4, 8, 8)).shape == (1, 8, 4, 4)
    assert BinaryConv2d.ops_kind == 'bops'


def test_groups_validation_from_conv2d():
    with pytest.raises(ValueError, match='in_channels must be divisible'):
        BinaryConv2d(3, 4, 3, groups=2)


def test_official_weight_norm_uses_unbiased_std_without_eps():
    torch.manual_seed(0)
    w = torch.randn(4, 3, 3, 3) * 0.01
    flat = w.flatten(1)
    expected = (flat - flat.mean(1, keepdim=True)) / flat.std(
        1, unbiased=True, keepdim=True)
    torch.testing.assert_close(
        normalize_weight(w, style='official'), expected.view_as(w))
    # the paper's eq. 6 differs through the biased variance and the eps
    assert not torch.allclose(normalize_weight(w), expected.view_as(w))
    with pytest.raises(ValueError, match="weight_norm: 'std'"):
        BinaryConv2d(3, 4, 3, weight_norm='std')
