"""The fused normalization/binarization gradient equals autograd's.

Reference: eq. (6) (or the official variant) and ``alpha * sign`` written
as plain autograd operations, the composition ``binary_conv_weight`` used
before its backward was fused.
"""
import pytest
import torch

from nasbnn_mm.models.layers import binary_conv_weight, sign_ste


def _reference(weight, style, binary):
    flat = weight.flatten(1)
    if style == 'official':
        std, mean = torch.std_mean(flat, dim=1, correction=1, keepdim=True)
        w = ((flat - mean) / std).view_as(weight)
    else:
        var, mean = torch.var_mean(flat, dim=1, correction=0, keepdim=True)
        w = ((flat - mean) * torch.rsqrt(var + 1e-5)).view_as(weight)
    if not binary:
        return w
    alpha = w.detach().abs().mean(dim=(1, 2, 3), keepdim=True)
    return sign_ste(w) * alpha


@pytest.mark.parametrize('style', [True, 'official'])
@pytest.mark.parametrize('binary', [True, False])
@pytest.mark.parametrize('shape', [(8, 4, 3, 3), (6, 5, 1, 1), (3, 2, 5, 5)])
def test_fused_equals_autograd(style, binary, shape):
    torch.manual_seed(0)
    base = torch.randn(*shape) * 0.3 + 0.1
    weight = base.clone().requires_grad_()
    ref_weight = base.clone().requires_grad_()
    grad = torch.randn(*shape)
    out = binary_conv_weight(weight, binary, style, None)
    ref_style = 'official' if style == 'official' else 'paper'
    expected = _reference(ref_weight, ref_style, binary)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-6)
    out.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(
        weight.grad, ref_weight.grad, atol=1e-6, rtol=1e-5)
    if binary:  # the straight-through clip is active somewhere
        normalized = _reference(base, ref_style, False)
        assert (normalized.abs() > 1).any()


def test_non_contiguous_input():
    torch.manual_seed(0)
    big = torch.randn(8, 6, 5, 5, requires_grad=True)
    out = binary_conv_weight(big[:5, :3, 1:4, 1:4], True, True, None)
    out.pow(2).sum().backward()
    ref = big.detach().clone().requires_grad_()
    _reference(ref[:5, :3, 1:4, 1:4], 'paper', True).pow(2).sum().backward()
    torch.testing.assert_close(big.grad, ref.grad, atol=1e-6, rtol=1e-5)
