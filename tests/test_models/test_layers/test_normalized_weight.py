"""The fused normalization/binarization gradient equals autograd's.

Reference: eq. (6) (or the official variant) and ``alpha * sign`` written
as plain autograd operations, the composition ``binary_conv_weight`` used
before its backward was fused. Both paths of ``NormalizedWeightFunction``
are checked: the extension's (CPU float32) and PyTorch operations (CUDA,
other dtypes, extension not built).
"""
import pytest
import torch

from nasbnn_mm.models.layers import binary_conv, binary_conv_weight, sign_ste
from nasbnn_mm.ops import training


@pytest.fixture(params=['extension', 'torch'])
def path(request, monkeypatch):
    """Which path ``NormalizedWeightFunction`` takes, checked to be the one
    that ran."""
    if training.training_ext(torch.zeros(1)) is None:
        pytest.skip('nasbnn_mm._ext not built')
    calls = []
    forward = training.weight_norm_forward

    def counted(*args):
        calls.append(args)
        return forward(*args)

    monkeypatch.setattr(binary_conv, 'weight_norm_forward', counted)
    use_ext = request.param == 'extension'
    with training.training_kernels(use_ext):
        yield request.param
    assert bool(calls) == use_ext, f'{request.param} path did not run'


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
def test_fused_equals_autograd(style, binary, shape, path):
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


def test_non_contiguous_input(path):
    torch.manual_seed(0)
    big = torch.randn(8, 6, 5, 5, requires_grad=True)
    out = binary_conv_weight(big[:5, :3, 1:4, 1:4], True, True, None)
    out.pow(2).sum().backward()
    ref = big.detach().clone().requires_grad_()
    _reference(ref[:5, :3, 1:4, 1:4], 'paper', True).pow(2).sum().backward()
    torch.testing.assert_close(big.grad, ref.grad, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize('official', [False, True])
@pytest.mark.parametrize('binary', [True, False])
def test_extension_equals_torch_path(official, binary):
    """Rows of 1..70 values (partial sums' tails), a row stride, a row of
    equal values, the straight-through clip: the extension's forward and
    backward against the PyTorch path."""
    torch.manual_seed(0)
    style = 'official' if official else True
    for n in (2, 7, 16, 33, 70):
        big = torch.randn(5, n + 3) * 0.5 + 0.2
        big[1] = 0.25  # variance exactly 0 ('official': nan)
        grad = torch.randn(5, n)
        results = []
        for use_ext in (True, False):
            w = big.clone().requires_grad_()
            with training.training_kernels(use_ext):
                out = binary_conv_weight(w[:, :n].view(5, n, 1, 1), binary,
                                         style, None)
                out.backward(grad.view(5, n, 1, 1))
            results.append((out.detach().view(5, n), w.grad))
        (out, dw), (ref_out, ref_dw) = results
        torch.testing.assert_close(
            out, ref_out, atol=1e-6, rtol=1e-5, equal_nan=True)
        torch.testing.assert_close(
            dw, ref_dw, atol=1e-5, rtol=1e-4, equal_nan=True)
        assert not dw[:, n:].any()  # columns past the slice get nothing


def test_extension_inputs_checked():
    ext = training.training_ext(torch.zeros(1))
    if ext is None:
        pytest.skip('nasbnn_mm._ext not built')
    with pytest.raises(RuntimeError, match='contiguous rows'):
        training.weight_norm_forward(torch.randn(4, 6).t(), False, 1e-5, True)
    assert training.training_ext(torch.zeros(1, dtype=torch.float64)) \
        is None
