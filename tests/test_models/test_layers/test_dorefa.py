import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from nasbnn_mm.models.layers.dorefa import (DoReFaActivation, DoReFaConv2d,
                                            dorefa_binarize_activation,
                                            dorefa_binarize_weight)


def test_weight_values_are_signed_layer_mean():
    torch.manual_seed(0)
    w = torch.randn(8, 4, 3, 3) * 2 + 0.5
    w[0, 0, 0, 0] = 0.
    wb = dorefa_binarize_weight(w)
    scale = w.abs().mean()
    # one scalar per layer (not per output channel), sign(0) = +1
    assert wb.shape == w.shape
    torch.testing.assert_close(wb.abs(), scale.expand_as(w))
    torch.testing.assert_close(wb, torch.where(w >= 0, scale, -scale))
    assert wb[0, 0, 0, 0] == scale


def test_weight_gradient_is_straight_through():
    torch.manual_seed(0)
    w = torch.randn(6, 3, 3, 3, requires_grad=True)
    g = torch.randn(6, 3, 3, 3)
    (dorefa_binarize_weight(w) * g).sum().backward()
    # dL/dw = dL/dw_b; the scale E(|w|) gets no gradient
    torch.testing.assert_close(w.grad, g)


def test_activation_values():
    x = torch.tensor([-2., -0.1, 0., 0.3, 0.5, 0.51, 0.9, 1., 1.7])
    expected = torch.tensor([0., 0., 0., 0., 0., 1., 1., 1., 1.])
    torch.testing.assert_close(dorefa_binarize_activation(x), expected)
    torch.testing.assert_close(DoReFaActivation()(x), expected)


def test_activation_gradient_is_clip_window():
    x = torch.tensor([-2., -0.1, 0., 0.3, 0.5, 0.9, 1., 1.7],
                     requires_grad=True)
    g = torch.arange(1., 9.)
    (DoReFaActivation()(x) * g).sum().backward()
    window = ((x >= 0) & (x <= 1)).float()
    torch.testing.assert_close(x.grad, g * window)


def test_activation_infinite_inputs():
    x = torch.tensor([-float('inf'), 0.7, float('inf')], requires_grad=True)
    out = dorefa_binarize_activation(x)
    out.sum().backward()
    assert out.tolist() == [0., 1., 1.]
    assert x.grad.tolist() == [0., 1., 0.]


def test_activation_any_shape_is_binary():
    torch.manual_seed(0)
    out = DoReFaActivation()(torch.randn(2, 3, 4, 5))
    assert out.shape == (2, 3, 4, 5)
    assert set(out.unique().tolist()) <= {0., 1.}


def test_conv_forward_and_gradients():
    torch.manual_seed(0)
    conv = DoReFaConv2d(4, 6, 3, stride=2, padding=1, bias=False)
    assert isinstance(conv, nn.Conv2d)
    assert DoReFaConv2d.ops_kind == 'bops'
    x = (torch.rand(2, 4, 7, 7) > 0.5).float().requires_grad_()
    g = torch.randn(2, 6, 4, 4)
    (conv(x) * g).sum().backward()

    w = conv.weight.detach()
    scale = w.abs().mean()
    wb = torch.where(w >= 0, scale, -scale).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    out_ref = F.conv2d(x_ref, wb, stride=2, padding=1)
    (out_ref * g).sum().backward()
    torch.testing.assert_close(conv(x), out_ref)
    # straight-through: the weight gets the gradient of its binary version
    torch.testing.assert_close(conv.weight.grad, wb.grad)
    torch.testing.assert_close(x.grad, x_ref.grad)


def test_conv_keeps_conv2d_options():
    conv = DoReFaConv2d(
        4, 4, 3, padding=1, groups=2, bias=True, padding_mode='circular')
    x = (torch.rand(1, 4, 5, 5) > 0.5).float()
    w = conv.weight.detach()
    wb = torch.where(w >= 0, w.abs().mean(), -w.abs().mean())
    ref = F.conv2d(
        F.pad(x, (1, 1, 1, 1), mode='circular'), wb, conv.bias, groups=2)
    torch.testing.assert_close(conv(x), ref)


@pytest.mark.parametrize('shape', [(5, ), (3, 4), (2, 3, 4, 4)])
def test_weight_any_shape(shape):
    w = torch.randn(shape)
    assert dorefa_binarize_weight(w).abs().unique().numel() == 1
