"""Binary blocks of the detection neck and heads."""
import pytest
import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.registry import DefaultScope

from nasbnn_mm.models.detection import (BinaryConvBlock, BinaryLinear,
                                        BinaryLinearBlock)
from nasbnn_mm.models.layers import (BinaryConv2d, RSign, normalize_weight,
                                     set_binarization)


def _sign(x):
    return torch.where(x >= 0, 1., -1.)


def _binary_weight(w):
    """alpha * sign of eq. (6)'s normalized weight, by hand."""
    flat = w.flatten(1)
    wn = (flat - flat.mean(1, keepdim=True)
          ) / torch.sqrt(flat.var(1, correction=0, keepdim=True) + 1e-5)
    alpha = wn.abs().mean(1, keepdim=True)
    return (_sign(wn) * alpha).view_as(w)


def _rprelu(x, act):
    shape = (1, -1) + (1, ) * (x.dim() - 2)
    y = x + act.bias_in.view(shape)
    y = torch.where(y >= 0, y, act.weight.view(shape) * y)
    return y + act.bias_out.view(shape)


def _randomize(module):
    """Non-trivial shifts, slopes and BN statistics."""
    torch.manual_seed(1)
    for name, p in module.named_parameters():
        if 'bias' in name or name.endswith('act.weight'):
            p.data.uniform_(-0.3, 0.3)
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)


def test_binary_linear_matches_hand_formula_and_switch():
    torch.manual_seed(0)
    fc = BinaryLinear(12, 5)
    x = _sign(torch.randn(3, 12))
    expected = x @ _binary_weight(fc.weight.detach()).t() + fc.bias.detach()
    torch.testing.assert_close(fc(x), expected)
    assert fc.ops_kind == 'bops'
    set_binarization(fc, weights=False, activations=True)
    torch.testing.assert_close(
        fc(x), F.linear(x, normalize_weight(fc.weight), fc.bias))


def test_binary_linear_gradient_is_clipped_ste():
    torch.manual_seed(0)
    fc = BinaryLinear(6, 4, bias=False, weight_norm=False)
    fc.weight.data.mul_(4)  # some |W| > 1: zero gradient there
    x = torch.randn(3, 6)
    upstream = torch.randn(3, 4)
    fc(x).backward(upstream)
    alpha = fc.weight.detach().abs().mean(1, keepdim=True)
    expected = (upstream.t() @ x) * alpha * (fc.weight.detach().abs() <= 1)
    torch.testing.assert_close(fc.weight.grad, expected)
    assert (fc.weight.detach().abs() > 1).any()


@pytest.mark.parametrize('args, kwargs, shortcut', [
    ((8, 8, 3), dict(padding=1), True),
    ((4, 10, 1), dict(), True),
    ((8, 4, 1), dict(), False),
    ((8, 8, 3), dict(stride=2, padding=1), False),
    ((8, 8, 3), dict(padding=0), False),
    ((8, 8, 3), dict(padding=2, dilation=2), True),
    ((8, 8, 3), dict(padding=1, shortcut=False), False),
])
def test_conv_block_shortcut_where_shapes_allow(args, kwargs, shortcut):
    block = BinaryConvBlock(*args, **kwargs)
    assert block.has_shortcut is shortcut
    x = torch.randn(2, args[0], 9, 9)
    out = block(x)
    assert out.shape == (2, args[1], *block.conv(x).shape[2:])


def test_conv_block_forward_matches_hand_formula():
    torch.manual_seed(0)
    block = BinaryConvBlock(4, 10, 3, padding=1).eval()
    _randomize(block)
    x = torch.randn(2, 4, 6, 6)
    xb = _sign(x + block.sign.bias.view(1, -1, 1, 1))
    y = F.conv2d(xb, _binary_weight(block.conv.weight.detach()), padding=1)
    bn = block.bn
    y = (y - bn.running_mean.view(
        1, -1, 1, 1)) / torch.sqrt(bn.running_var.view(1, -1, 1, 1) + bn.eps)
    y = y * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)
    # 4 input channels tiled to 10: [x, x, x[:, :2]]
    y = y + torch.cat([x, x, x[:, :2]], 1)
    torch.testing.assert_close(block(x), _rprelu(y, block.act))


def test_conv_block_backward_reaches_every_parameter():
    torch.manual_seed(0)
    block = BinaryConvBlock(6, 6, 3, padding=1)
    x = torch.randn(2, 6, 5, 5, requires_grad=True)
    block(x).pow(2).sum().backward()
    for name, p in block.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0


def test_conv_block_is_a_conv_cfg_of_conv_module():
    with DefaultScope.overwrite_default_scope('mmdet'):
        # as FPN builds its lateral and output convs
        module = ConvModule(
            6,
            12,
            3,
            padding=1,
            conv_cfg=dict(type='nasbnn_mm.BinaryConvBlock'),
            norm_cfg=None,
            act_cfg=None)
    assert type(module.conv) is BinaryConvBlock
    assert (module.in_channels, module.out_channels, module.kernel_size,
            module.conv.padding) == (6, 12, (3, 3), (1, 1))
    assert not module.with_norm and not module.with_activation
    module.init_weights()
    assert module(torch.randn(1, 6, 4, 4)).shape == (1, 12, 4, 4)
    # one binary conv; its input is binarized by the block's RSign
    assert [
        type(m) for m in module.modules()
        if isinstance(m, (BinaryConv2d, RSign))
    ] == [RSign, BinaryConv2d]
    conv = module.conv.conv
    assert conv.input_sign is None
    assert conv.bias is None and conv.bi_transform is None


def test_linear_block_forward_matches_hand_formula():
    torch.manual_seed(0)
    block = BinaryLinearBlock(16, 16).eval()
    _randomize(block)
    assert block.has_shortcut
    x = torch.randn(5, 16)
    xb = _sign(x + block.sign.bias)
    y = xb @ _binary_weight(block.fc.weight.detach()).t()
    bn = block.bn
    y = (y - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps)
    y = y * bn.weight + bn.bias + x
    torch.testing.assert_close(block(x), _rprelu(y, block.act))


def test_linear_block_shortcut_and_backward():
    torch.manual_seed(0)
    assert not BinaryLinearBlock(16, 8).has_shortcut
    assert BinaryLinearBlock(8, 20).has_shortcut
    assert not BinaryLinearBlock(8, 8, shortcut=False).has_shortcut
    block = BinaryLinearBlock(8, 20)
    x = torch.randn(6, 8, requires_grad=True)
    out = block(x)
    assert out.shape == (6, 20)
    out.pow(2).sum().backward()
    for name, p in block.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
