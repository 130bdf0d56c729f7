"""bfloat16 operands for the binary layers' float convolutions (opt-in)."""
import pytest
import torch
import torch.nn.functional as F

from nasbnn_mm.models.layers import conv_operand_dtype, float_conv2d
from nasbnn_mm.models.layers.xnor_conv import xnor_conv2d

BF16 = torch.bfloat16


def _signs(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.where(torch.randn(*shape, generator=g) >= 0, 1., -1.)


def _grads(conv, x, w, grad, **kwargs):
    """Output and (x, w) gradients of ``conv``."""
    x, w = x.clone().requires_grad_(), w.clone().requires_grad_()
    out = conv(x, w, **kwargs)
    out.backward(grad)
    return out.detach(), x.grad, w.grad


def _exact_operands():
    """+-1 maps and gradients, integer weights in [-2, 2]: every product
    and every sum (|.| < 256) is exact in bfloat16 as in float32."""
    x = _signs(2, 8, 6, 6)
    w = torch.randint(
        -2, 3, (4, 4, 3, 3),
        generator=torch.Generator().manual_seed(1)).float()
    grad = _signs(2, 4, 6, 6, seed=2)
    return x, w, grad


def test_default_is_f_conv2d_bit_for_bit():
    x, grad = torch.randn(2, 8, 6, 6), torch.randn(2, 4, 6, 6)
    w = torch.randn(4, 4, 3, 3)
    ours = _grads(float_conv2d, x, w, grad, padding=1, groups=2)
    reference = _grads(F.conv2d, x, w, grad, padding=1, groups=2)
    for a, b in zip(ours, reference):
        assert torch.equal(a, b)


def test_bf16_operands_are_exact_where_the_values_are():
    x, w, grad = _exact_operands()
    reference = _grads(F.conv2d, x, w, grad, padding=1, groups=2)
    with conv_operand_dtype(BF16):
        ours = _grads(float_conv2d, x, w, grad, padding=1, groups=2)
    for a, b in zip(ours, reference):
        assert a.dtype == torch.float32
        assert torch.equal(a, b)


def test_bf16_operands_round_the_float_operand():
    x = _signs(2, 8, 6, 6)
    w = torch.randn(4, 8, 3, 3, generator=torch.Generator().manual_seed(3))
    grad = torch.randn(2, 4, 6, 6, generator=torch.Generator().manual_seed(4))
    reference = _grads(F.conv2d, x, w, grad, padding=1)
    with conv_operand_dtype(BF16):
        ours = _grads(float_conv2d, x, w, grad, padding=1)
    # what the context promises: the convolution of the bfloat16-rounded
    # operands, summed in float32, rounded to bfloat16 once
    rounded = _grads(
        F.conv2d, x, w.to(BF16).float(), grad.to(BF16).float(), padding=1)
    for a, b, r in zip(ours, reference, rounded):
        scale = b.abs().max()
        assert not torch.equal(a, b)
        assert (a - b).abs().max() <= 2**-7 * scale
        torch.testing.assert_close(a, r, rtol=2**-8, atol=2**-8 * scale)


def _node(x, w):
    """The autograd node of float_conv2d on ``x`` (made to require grad)."""
    out = float_conv2d(x.requires_grad_(), w, padding=1, groups=2)
    return type(out.grad_fn).__name__


def test_bias_and_context_nesting():
    x, w, _ = _exact_operands()
    bias = torch.tensor([0.5, -1., 2., 0.])
    reference = F.conv2d(x, w, bias, padding=1, groups=2)
    with conv_operand_dtype(BF16):
        with conv_operand_dtype(None):
            assert _node(x.clone(), w) == 'ConvolutionBackward0'
        assert _node(x.clone(), w) == 'OperandConvFunctionBackward'
        out = float_conv2d(x, w, bias, padding=1, groups=2)
        # float64 operands are left alone
        assert _node(x.double(), w.double()) == 'ConvolutionBackward0'
    assert torch.equal(out, reference)
    assert _node(x.clone(), w) == 'ConvolutionBackward0'


def test_xnor_forward_stays_exact_and_backward_takes_bf16():
    x = _signs(2, 8, 6, 6)
    alpha = torch.tensor([0.75, 1.5, 0.25, 2.]).view(4, 1, 1, 1)
    w = _signs(4, 8, 3, 3, seed=5) * alpha  # +-alpha_o, exact in bf16
    grad = torch.randn(2, 4, 6, 6, generator=torch.Generator().manual_seed(6))
    fp32 = _grads(xnor_conv2d, x, w, grad, padding=1)
    with conv_operand_dtype(BF16):
        bf16 = _grads(xnor_conv2d, x, w, grad, padding=1)
    assert torch.equal(bf16[0], fp32[0])
    rounded = _grads(F.conv2d, x, w, grad.to(BF16).float(), padding=1)
    for a, b, r in zip(bf16[1:], fp32[1:], rounded[1:]):
        scale = b.abs().max()
        assert not torch.equal(a, b)
        torch.testing.assert_close(a, r, rtol=2**-8, atol=2**-8 * scale)


@pytest.mark.parametrize('conv', [float_conv2d, xnor_conv2d])
def test_backward_uses_the_dtype_of_the_forward(conv):
    x, w, grad = _signs(2, 8, 6, 6), _signs(4, 8, 3, 3), torch.randn(
        2, 4, 6, 6, generator=torch.Generator().manual_seed(7))
    x.requires_grad_()
    with conv_operand_dtype(BF16):
        out = conv(x, w, padding=1)
    out.backward(grad)  # outside the context
    rounded = F.conv_transpose2d(grad.to(BF16).float(), w, padding=1)
    torch.testing.assert_close(
        x.grad, rounded, rtol=2**-8, atol=2**-8 * rounded.abs().max())
    assert not torch.equal(x.grad, F.conv_transpose2d(grad, w, padding=1))
