import math

import torch
import torch.nn.functional as F
from mmengine.registry import MODELS as MMENGINE_MODELS

from nasbnn_mm.models.layers import LSQConv2d, LSQQuantizer


def test_stem_weights_on_8bit_grid():
    torch.manual_seed(0)
    conv = LSQConv2d(3, 8, 3, padding=1, bias=False)
    conv(torch.randn(2, 3, 8, 8))
    w_q = conv.weight_quantizer(conv.weight)
    steps = conv.weight_quantizer.step.detach().view(8, 1, 1, 1)
    codes = w_q / steps
    torch.testing.assert_close(codes, codes.round(), atol=1e-4, rtol=0)
    assert codes.min() >= -128 and codes.max() <= 127
    for o in range(8):
        assert codes[o].round().unique().numel() <= 256


def test_step_init():
    torch.manual_seed(0)
    conv = LSQConv2d(3, 4, 3, bias=False)
    x = torch.randn(2, 3, 8, 8)
    conv(x)
    w_init = 2 * conv.weight.abs().flatten(1).mean(1) / math.sqrt(127)
    torch.testing.assert_close(conv.weight_quantizer.step.detach(), w_init)
    x_init = 2 * x.abs().mean() / math.sqrt(127)
    torch.testing.assert_close(conv.input_quantizer.step.detach(),
                               x_init.view(1))
    assert conv.weight_quantizer.initialized == 1


def test_steps_get_gradients():
    conv = LSQConv2d(3, 4, 3, bias=False)
    conv(torch.randn(2, 3, 8, 8)).pow(2).sum().backward()
    assert conv.weight_quantizer.step.grad.abs().min() > 0
    assert conv.input_quantizer.step.grad.abs().sum() > 0
    assert conv.weight.grad.abs().sum() > 0


def test_step_gradient_is_lsq_with_scale():
    torch.manual_seed(0)
    q = LSQQuantizer(8)
    with torch.no_grad():
        q.step.fill_(0.02)
    q.initialized.fill_(1)
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64) * 2
    q.double()
    r = torch.randn_like(x)
    (q(x) * r).sum().backward()
    v = x / 0.02
    # LSQ: d q / d s = round(v) - v inside the grid, -Qn / Qp outside
    dq_ds = torch.where(
        v < -128, torch.full_like(v, -128.),
        torch.where(v > 127, torch.full_like(v, 127.),
                    v.round() - v))
    g = 1 / math.sqrt(x[0].numel() * 127)
    torch.testing.assert_close(q.step.grad, (g * (r * dq_ds).sum()).view(1))


def test_input_quantized_to_grid():
    q = LSQQuantizer(8)
    x = torch.randn(2, 3, 4, 4)
    out = q(x)
    codes = out / q.step.detach()
    torch.testing.assert_close(codes, codes.round(), atol=1e-4, rtol=0)
    assert codes.unique().numel() <= 256


def test_loaded_step_is_not_reinitialised():
    src = LSQConv2d(3, 4, 3, bias=False)
    src(torch.randn(1, 3, 8, 8))
    with torch.no_grad():
        src.weight_quantizer.step.mul_(3)
    dst = LSQConv2d(3, 4, 3, bias=False)
    dst.load_state_dict(src.state_dict())
    dst(torch.randn(1, 3, 8, 8))
    torch.testing.assert_close(dst.weight_quantizer.step,
                               src.weight_quantizer.step)


def test_without_input_quantization_and_registry():
    conv = MMENGINE_MODELS.build(
        dict(
            type='LSQConv2d',
            in_channels=3,
            out_channels=4,
            kernel_size=3,
            bias=False,
            quantize_input=False))
    assert conv.input_quantizer is None
    x = torch.randn(1, 3, 6, 6)
    expected = F.conv2d(x, conv.weight_quantizer(conv.weight))
    torch.testing.assert_close(conv(x), expected)
    assert LSQConv2d.ops_kind == 'int8ops'
