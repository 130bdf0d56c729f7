import pytest
import torch

from nasbnn_mm.models.layers import DynamicLSQConv2d, LSQConv2d


def test_dynamic_equals_static_for_each_width():
    torch.manual_seed(0)
    stem = DynamicLSQConv2d(3, 16, 3, stride=2, bias=True)
    x = torch.randn(2, 3, 12, 12)
    stem(x)  # initialises the steps
    for width in [4, 9, 16]:
        static = stem.to_static(in_channels=3, out_channels=width)
        assert type(static) is LSQConv2d
        assert static.weight.shape == (width, 3, 3, 3)
        out = stem(x, width)
        assert out.shape == (2, width, 6, 6)
        torch.testing.assert_close(static(x), out, atol=1e-5, rtol=0)


def test_weight_steps_initialised_from_full_weight():
    torch.manual_seed(0)
    stem = DynamicLSQConv2d(3, 8, 3)
    stem(torch.randn(1, 3, 6, 6), out_channels=2)
    expected = 2 * stem.weight.abs().flatten(1).mean(1) / 127**0.5
    torch.testing.assert_close(stem.weight_quantizer.step.detach(), expected)


def test_sliced_weights_on_grid_and_grads():
    stem = DynamicLSQConv2d(3, 8, 3)
    stem(torch.randn(2, 3, 6, 6), out_channels=5).pow(2).sum().backward()
    step_grad = stem.weight_quantizer.step.grad
    assert step_grad[:5].abs().min() > 0 and step_grad[5:].abs().max() == 0
    w_q = stem.weight_quantizer(stem.weight[:5])
    codes = w_q / stem.weight_quantizer.step.detach()[:5].view(5, 1, 1, 1)
    torch.testing.assert_close(codes, codes.round(), atol=1e-4, rtol=0)
    assert DynamicLSQConv2d.ops_kind == 'int8ops'


def test_errors():
    stem = DynamicLSQConv2d(3, 8, 3)
    with pytest.raises(ValueError, match=r'out_channels 9 not in \[1, 8\]'):
        stem(torch.randn(1, 3, 6, 6), 9)
    with pytest.raises(ValueError, match=r'in_channels 4 \(x.shape\[1\]\)'):
        stem(torch.randn(1, 4, 6, 6))
    with pytest.raises(ValueError, match='kernel_size 4 must be'):
        DynamicLSQConv2d(3, 8, 4)
