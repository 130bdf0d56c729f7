"""Binary convolutions on the XNOR-popcount kernels during training."""
import pytest
import torch
import torch.nn.functional as F

from nasbnn_mm.models.layers import BinaryConv2d, DynamicBinaryConv2d, RSign
from nasbnn_mm.models.layers.xnor_conv import xnor_conv2d
from nasbnn_mm.ops import binary_conv as ops
from nasbnn_mm.ops.training import pack_signs, training_kernels

PATHS = ('scalar', 'avx512')  # pack_signs' strided routines


@pytest.fixture(params=PATHS)
def path(request):
    """Each kernel path pack_signs distinguishes (skipped where the CPU
    cannot run it)."""
    if request.param not in ops.available_kernel_paths():
        pytest.skip(f'CPU cannot run the {request.param} path')
    with ops.force_kernel_path(request.param) as taken:
        yield taken


def _signs(*shape):
    """+-1 values (torch.randn(...).sign() can hold a 0)."""
    return torch.where(torch.randn(*shape) >= 0, 1., -1.)


def _binary_weight(out_channels, in_channels, k):
    """alpha_o * sign, alpha_o > 0 per output channel."""
    return _signs(out_channels, in_channels, k,
                  k) * (0.1 + torch.rand(out_channels, 1, 1, 1))


# (N, C_in, H, C_out, K, stride, padding, groups, bias)
CASES = [
    (2, 96, 9, 64, 3, 1, 1, 1, False),  # 2 words per pixel, 3x3
    (2, 48, 8, 96, 5, 2, 2, 4, True),  # groups of 12 channels, stride 2
    (3, 70, 5, 70, 1, 1, 0, 1, True),  # 1x1, channels past a word
    (2, 8, 7, 16, 3, 2, 1, 2, False),  # odd map, stride 2
    (2, 128, 2, 32, 5, 1, 2, 1, False),  # a 5x5 kernel on a 2x2 map
]


@pytest.mark.parametrize('case', CASES)
def test_equals_conv2d(case, path):
    """Output F.conv2d's to float rounding (it sums +-alpha products, the
    kernels scale an exact count once); the bias gradient identical, the
    input and weight gradients F.conv2d's to float rounding (by table
    lookup on the avx512 path)."""
    n, c, h, o, k, stride, padding, groups, with_bias = case
    torch.manual_seed(0)
    x = _signs(n, c, h, h).requires_grad_()
    w = _binary_weight(o, c // groups, k).requires_grad_()
    b = torch.randn(o, requires_grad=True) if with_bias else None
    out = xnor_conv2d(x, w, b, stride, padding, 1, groups)
    assert type(out.grad_fn).__name__ == 'XnorConvFunctionBackward'
    expected = F.conv2d(x, w, b, stride, padding, 1, groups)
    # alpha_o * count is exact in float64: the kernels round it once, then
    # add the bias in float32
    exact = F.conv2d(x.double(), w.double(), None, stride, padding, 1,
                     groups).float()
    if with_bias:
        exact = exact + b.detach().view(-1, 1, 1)
    assert out.shape == expected.shape and out.is_contiguous()
    assert torch.equal(out, exact)
    # F.conv2d's sums of +-alpha round on the way (a 0 comes out ~1e-6)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    grad = torch.randn_like(out)
    inputs = [x, w] + ([b] if with_bias else [])
    got = torch.autograd.grad(out, inputs, grad)
    want = torch.autograd.grad(expected, inputs, grad)
    assert with_bias is False or torch.equal(got[2], want[2])
    exact = torch.ops.aten.convolution_backward(grad.double(),
                                                x.detach().double(),
                                                w.detach().double(), None,
                                                [stride] * 2, [padding] * 2,
                                                [1, 1], False, [0, 0], groups,
                                                [True, True, False])
    for g, e in zip(got[:2], exact[:2]):
        torch.testing.assert_close(g.double(), e, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize('spoil',
                         ['half', 'scaled', 'zero', 'nan', 'row', 'dilation'])
def test_other_values_take_conv2d(spoil):
    """Inputs that are not +-1, weights not +-alpha_o per row, or a
    dilation run F.conv2d itself (the same values, to the bit)."""
    torch.manual_seed(0)
    x, w, dilation = _signs(2, 16, 6, 6), _binary_weight(8, 16, 3), 1
    if spoil == 'half':
        x[1, 3, 2, 2] = 0.5
    elif spoil == 'scaled':  # +-0.5 everywhere: uniform, but not +-1
        x *= 0.5
    elif spoil == 'zero':
        x[0, 15, 5, 5] = 0.
    elif spoil == 'nan':
        w[3, 0, 0, 0] = float('nan')
    elif spoil == 'row':
        w[7, 15, 2, 2] *= 1.5
    else:
        dilation = 2
    x.requires_grad_()
    out = xnor_conv2d(x, w, None, 1, 2, dilation)
    assert type(out.grad_fn).__name__ == 'ConvolutionBackward0'
    expected = F.conv2d(x, w, None, 1, 2, dilation)
    torch.testing.assert_close(out, expected, atol=0, rtol=0, equal_nan=True)


def test_empty_batch_takes_conv2d():
    """No images (e.g. no RoIs for a binary head): F.conv2d's empty
    output."""
    x = torch.ones(0, 16, 6, 6, requires_grad=True)
    out = xnor_conv2d(x, _binary_weight(8, 16, 3), None, 1, 1)
    assert out.shape == (0, 8, 6, 6)


def test_training_kernels_off_takes_conv2d():
    x = _signs(2, 16, 6, 6).requires_grad_()
    with training_kernels(False):
        out = xnor_conv2d(x, _binary_weight(8, 16, 3), None, 1, 1)
    assert type(out.grad_fn).__name__ == 'ConvolutionBackward0'


@pytest.mark.parametrize('shape,groups', [((2, 96, 5, 7), 3),
                                          ((3, 64, 4, 4), 1),
                                          ((2, 200, 6, 6), 2),
                                          ((2, 130, 1, 1), 1)])
def test_pack_signs_equals_pack_activation(shape, groups, path):
    """The same words as the NHWC packer, at every plane size routine
    (hw 1, 16, 35 and 36: strided, or plane by plane from 32)."""
    x = _signs(*shape) * 0.25
    packed, magnitude, uniform = pack_signs(x, groups)
    assert torch.equal(packed, ops.pack_activation(x, groups))
    assert uniform and torch.equal(magnitude, torch.full((shape[0], ), .25))


def test_pack_signs_refuses_an_empty_tensor():
    with pytest.raises(RuntimeError, match='pack_signs: empty tensor'):
        pack_signs(torch.ones(0, 16, 4, 4), 1)


@pytest.mark.parametrize('k', [1, 3, 5])
def test_pack_signs_of_a_weight(k, path):
    """A (C_out, C_in, K, K) weight packs as pack_weight; magnitude is each
    row's alpha; one differing |value| in one row clears uniform."""
    w = _binary_weight(24, 80, k)
    packed, magnitude, uniform = pack_signs(w, 1)
    assert torch.equal(packed, ops.pack_weight(w))
    assert uniform and torch.equal(magnitude, w[:, 0, 0, 0].abs())
    w[23, 79, k - 1, k - 1] *= -2
    assert not pack_signs(w, 1)[2]
    w[23, 79, k - 1, k - 1] /= -2
    w[5, 0, 0, 0] = -0.
    assert not pack_signs(w, 1)[2]


def test_binary_layers_run_the_kernels():
    """BinaryConv2d (its own RSign) and DynamicBinaryConv2d after an RSign
    take the kernels with binary weights, F.conv2d with full-precision
    weights (DynamicBinaryConv2d's weight gradient by table lookup on the
    avx512 path)."""
    torch.manual_seed(0)
    x = torch.randn(2, 16, 8, 8)
    conv = BinaryConv2d(16, 32, 3, padding=1)
    assert type(conv(x).grad_fn).__name__ == 'XnorConvFunctionBackward'
    dynamic = DynamicBinaryConv2d(16, 32, kernel_sizes=(3, 5))
    signs = RSign(16)(x)
    assert type(dynamic(signs, 24,
                        3).grad_fn).__name__ == ('XnorConvFunctionBackward')
    conv.binary_weights = dynamic.binary_weights = False
    float_node = ('OperandConvFunctionBackward'
                  if ops.kernel_path() == 'avx512' else 'ConvolutionBackward0')
    assert type(conv(x).grad_fn).__name__ == 'ConvolutionBackward0'
    assert type(dynamic(signs).grad_fn).__name__ == float_node
