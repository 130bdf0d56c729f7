"""A +-1 input's convolution and its weight gradient, and a +-alpha_o
weight's input gradient, by table lookup."""
import pytest
import torch
import torch.nn.functional as F

from nasbnn_mm.models.layers import conv_operands
from nasbnn_mm.ops import binary_conv as ops
from nasbnn_mm.ops.training import (sign_conv_input_grad,
                                    sign_conv_weight_grad, sign_input_conv2d)


@pytest.fixture(autouse=True)
def avx512():
    """The lookup runs on the avx512 kernel path only."""
    if 'avx512' not in ops.available_kernel_paths():
        pytest.skip('CPU cannot run the avx512 path')
    with ops.force_kernel_path('avx512'):
        yield


def _signs(*shape):
    return torch.where(torch.randn(*shape) >= 0, 1., -1.)


def _binary_weight(o, c, k):
    """alpha_o * sign, alpha_o > 0 per output channel."""
    return _signs(o, c, k, k) * (0.1 + torch.rand(o, 1, 1, 1))


def _exact(grad, x, weight_shape, stride, padding, groups):
    """The weight gradient in float64 (exact sums of the float32 values up
    to float64 rounding)."""
    return torch.ops.aten.convolution_backward(
        grad.double(), x.double(),
        torch.zeros(weight_shape).double(), None, [stride] * 2, [padding] * 2,
        [1, 1], False, [0, 0], groups, [False, True, False])[1]


# (N, C_in, H, C_out, K, stride, padding, groups): N not a multiple of the
# 4 samples of a pattern, channels past and short of the 16 lanes (passes
# over 1 to 4 blocks of 16), kernels larger than the map (most taps on the
# padding), stride 2, odd sizes
CASES = [
    (5, 20, 7, 6, 3, 1, 1, 1),
    (8, 32, 4, 16, 5, 1, 2, 2),
    (3, 17, 5, 9, 3, 2, 1, 1),
    (4, 96, 2, 48, 5, 1, 2, 4),
    (6, 16, 9, 8, 1, 1, 0, 1),
    (7, 40, 6, 12, 5, 2, 2, 2),
    (4, 33, 3, 5, 3, 1, 0, 1),
    (2, 80, 4, 24, 3, 1, 1, 1),
    (9, 8, 5, 4, 7, 1, 3, 1),
    (3, 48, 5, 8, 3, 1, 1, 1),  # 3 blocks of 16 channels: one pass of 3
    (2, 96, 4, 8, 3, 1, 1, 1),  # 6 blocks: 3 + 3
]


@pytest.mark.parametrize('case', CASES)
def test_matches_the_convolution_gradient(case):
    n, c, h, o, k, stride, padding, groups = case
    torch.manual_seed(sum(case))
    x = _signs(n, c, h, h)
    out_h = (h + 2 * padding - k) // stride + 1
    grad = torch.randn(n, o, out_h, out_h)
    got = sign_conv_weight_grad(grad, x, k, stride, padding, groups)
    exact = _exact(grad, x, (o, c // groups, k, k), stride, padding, groups)
    assert got.shape == exact.shape and got.dtype == torch.float32
    # float32 sums of n * out_h^2 terms of size ~1
    torch.testing.assert_close(got.double(), exact, rtol=0, atol=2e-5 * n)
    assert not torch.equal(got, torch.zeros_like(got))


@pytest.mark.parametrize(
    'case', CASES + [(20, 8, 5, 3, 3, 1, 1, 1), (33, 12, 3, 4, 3, 2, 1, 1)])
def test_forward_matches_the_convolution(case):
    """Any N (16 samples per vector: 20 and 33 leave partial blocks)."""
    n, c, h, o, k, stride, padding, groups = case
    torch.manual_seed(sum(case))
    x, w = _signs(n, c, h, h), torch.randn(o, c // groups, k, k)
    got = sign_input_conv2d(x, w, stride, padding, groups)
    exact = F.conv2d(x.double(), w.double(), None, stride, padding, 1, groups)
    assert got.shape == exact.shape and got.is_contiguous()
    # float32 sums of C / groups * K^2 terms of size ~1
    torch.testing.assert_close(got.double(), exact, rtol=0, atol=1e-5 * c)


@pytest.mark.parametrize('case', CASES)
def test_input_grad_matches_the_convolution_gradient(case):
    n, c, h, o, k, stride, padding, groups = case
    torch.manual_seed(sum(case))
    w = _binary_weight(o, c // groups, k)
    out_h = (h + 2 * padding - k) // stride + 1
    grad = torch.randn(n, o, out_h, out_h)
    got = sign_conv_input_grad(grad, w, h, h, stride, padding, groups)
    exact = torch.ops.aten.convolution_backward(
        grad.double(),
        torch.zeros(n, c, h, h).double(), w.double(), None, [stride] * 2,
        [padding] * 2, [1, 1], False, [0, 0], groups, [True, False, False])[0]
    assert got.shape == exact.shape and got.is_contiguous()
    # float32 sums of C_out / groups * K^2 terms of size ~1
    torch.testing.assert_close(got.double(), exact, rtol=0, atol=1e-5 * o)


def test_same_result_at_any_thread_count():
    torch.manual_seed(0)
    x, grad = _signs(8, 48, 6, 6), torch.randn(8, 32, 6, 6)
    w = torch.randn(32, 48, 3, 3)
    kernels = (lambda: sign_conv_weight_grad(grad, x, 3, 1, 1, 1),
               lambda: sign_input_conv2d(x, w, 1, 1, 1),
               lambda: sign_conv_input_grad(grad, w.sign(), 6, 6, 1, 1, 1))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = [op() for op in kernels]
        torch.set_num_threads(2)
        two = [op() for op in kernels]
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(one, two))


@pytest.mark.parametrize('value', [0., 0.5, float('nan')])
def test_other_values_return_none(value):
    x = _signs(4, 16, 5, 5)
    x[3, 7, 2, 1] = value
    assert sign_conv_weight_grad(torch.randn(4, 8, 5, 5), x, 3, 1, 1,
                                 1) is None
    assert sign_input_conv2d(x, torch.randn(8, 16, 3, 3), 1, 1, 1) is None
    w = _binary_weight(8, 16, 3)
    w[5, 3, 1, 2] = value * w[5, 0, 0, 0]  # one value off its row's alpha
    assert sign_conv_input_grad(torch.randn(4, 8, 5, 5), w, 5, 5, 1, 1,
                                1) is None


# (K, C_in per group, use, takes the lookup): 1x1 kernels only from
# LOOKUP_MIN_1X1_CHANNELS input channels per group
RULES = [(3, 16, 'forward', True), (1, 128, 'forward', False),
         (1, 256, 'forward', True), (1, 64, 'weight_grad', False),
         (1, 128, 'weight_grad', True), (1, 128, 'input_grad', True),
         (5, 8, 'input_grad', True)]


@pytest.mark.parametrize('k, channels, use, takes', RULES)
def test_lookup_applies(k, channels, use, takes):
    x, w = _signs(2, channels, 4, 4), torch.randn(8, channels, k, k)
    assert conv_operands.lookup_applies(x, w, 1, k // 2, 1, use) is takes
    # never with dilation, on other dtypes or on another kernel path
    assert not conv_operands.lookup_applies(x, w, 1, k // 2, 2, use)
    assert not conv_operands.lookup_applies(x.double(), w, 1, k // 2, 1, use)
    with ops.force_kernel_path('scalar'):
        assert not conv_operands.lookup_applies(x, w, 1, k // 2, 1, use)


def test_backward_takes_the_lookup_and_falls_back():
    """conv2d_backward: the lookup's weight gradient for a +-1 input (close
    to aten's, not equal), aten's for another input."""
    torch.manual_seed(0)
    w = torch.randn(16, 24, 3, 3)
    for signs in (True, False):
        x = _signs(4, 24, 6, 6) if signs else torch.randn(4, 24, 6, 6)
        grad = torch.randn(4, 16, 6, 6)
        got = conv_operands.conv2d_backward(grad, x, w, None, 1, 1, 1, 1,
                                            (True, True, False), None)
        want = torch.ops.aten.convolution_backward(grad, x, w, None, [1, 1],
                                                   [1, 1], [1, 1], False,
                                                   [0, 0], 1,
                                                   [True, True, False])
        assert torch.equal(got[0], want[0]) and got[2] is None
        lookup = sign_conv_weight_grad(grad, x, 3, 1, 1, 1)
        assert (lookup is not None) is signs
        if signs:
            assert torch.equal(got[1], lookup)
            assert not torch.equal(got[1], want[1])
            torch.testing.assert_close(got[1], want[1], rtol=0, atol=1e-4)
        else:
            assert torch.equal(got[1], want[1])


def test_backward_of_sign_weights_takes_the_input_lookup():
    """conv2d_backward(weight_signs=True): the input gradient by lookup from
    LOOKUP_MIN_INPUT_GRAD_POSITIONS output positions on, aten's below."""
    torch.manual_seed(0)
    w = _binary_weight(16, 24, 3)
    for h in (6, 3):
        x, grad = _signs(4, 24, h, h), torch.randn(4, 16, h, h)
        got = conv_operands.conv2d_backward(
            grad,
            x,
            w,
            None,
            1,
            1,
            1,
            1,
            needs=(True, False, False),
            dtype=None,
            weight_signs=True)
        want = torch.ops.aten.convolution_backward(grad, x, w, None, [1, 1],
                                                   [1, 1], [1, 1], False,
                                                   [0, 0], 1,
                                                   [True, False, False])
        lookup = sign_conv_input_grad(grad, w, h, h, 1, 1, 1)
        expected = lookup if h * h >= 16 else want[0]
        assert torch.equal(got[0], expected) and got[1] is None
        assert not torch.equal(lookup, want[0])


def test_float_conv2d_takes_the_lookups():
    """The Bi-Teacher's convolution (+-1 input, float weight): output and
    weight gradient by table lookup, F.conv2d's to float rounding; the
    input gradient F.conv2d's own."""
    torch.manual_seed(0)
    x = _signs(4, 32, 6, 6).requires_grad_()
    w = torch.randn(16, 32, 3, 3, requires_grad=True)
    out = conv_operands.float_conv2d(x, w, None, 1, 1)
    assert type(out.grad_fn).__name__ == 'OperandConvFunctionBackward'
    expected = F.conv2d(x, w, None, 1, 1)
    assert torch.equal(out, sign_input_conv2d(x.detach(), w.detach(), 1, 1, 1))
    exact = F.conv2d(x.detach().double(), w.detach().double(), None, 1, 1)
    torch.testing.assert_close(out.double(), exact, rtol=0, atol=1e-4)
    grad = torch.randn_like(out)
    got, want = (torch.autograd.grad(y, [x, w], grad) for y in (out, expected))
    assert torch.equal(got[0], want[0])
    assert torch.equal(got[1],
                       sign_conv_weight_grad(grad, x.detach(), 3, 1, 1, 1))


def test_float_conv2d_of_other_inputs_is_conv2d(monkeypatch):
    """A float input (no +-1) gives F.conv2d's values and gradients, and
    the backward does not pack it again once the forward found it."""
    torch.manual_seed(0)
    x = torch.randn(4, 32, 6, 6, requires_grad=True)
    w = torch.randn(16, 32, 3, 3, requires_grad=True)
    out, expected = (
        conv(x, w, None, 1, 1)
        for conv in (conv_operands.float_conv2d, F.conv2d))
    assert type(out.grad_fn).__name__ == 'OperandConvFunctionBackward'
    assert torch.equal(out, expected)

    def unexpected(*args):
        raise AssertionError('weight-gradient lookup tried again')

    monkeypatch.setattr(conv_operands, 'sign_conv_weight_grad', unexpected)
    grad = torch.randn_like(out)
    for a, b in zip(
            torch.autograd.grad(out, [x, w], grad),
            torch.autograd.grad(expected, [x, w], grad)):
        assert torch.equal(a, b)


def test_other_kernel_paths_refuse():
    """Called directly on another kernel path, each op raises one error
    naming itself and the path (the layers check lookup_applies first)."""
    x, w = _signs(4, 16, 5, 5), torch.randn(8, 16, 3, 3)
    grad = torch.randn(4, 8, 5, 5)
    with ops.force_kernel_path('scalar'):
        for name, call in (
            ('sign_input_conv2d', lambda: sign_input_conv2d(x, w, 1, 1, 1)),
            ('sign_conv_weight_grad',
             lambda: sign_conv_weight_grad(grad, x, 3, 1, 1, 1)),
            ('sign_conv_input_grad',
             lambda: sign_conv_input_grad(grad, w.sign(), 5, 5, 1, 1, 1))):
            with pytest.raises(
                    RuntimeError,
                    match=f'{name} runs on the avx512 kernel '
                    'path only, the active path is scalar'):
                call()
