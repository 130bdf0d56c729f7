import pytest
import torch
import torch.nn.functional as F

from nasbnn_mm.models.layers import RPReLU, RSign, binary_sign
from nasbnn_mm.ops import training


def test_binary_sign_forward_values():
    x = torch.tensor([-2., -1e-8, -0., 0., 1e-8, 3.])
    out = binary_sign(x)
    # eq. (1): sign(0) = +1 (also for -0.0, which is >= 0)
    assert out.tolist() == [-1., -1., 1., 1., 1., 1.]
    assert out.dtype == x.dtype


def test_binary_sign_gradient_is_approxsign_derivative():
    x = torch.linspace(-2, 2, 401, dtype=torch.float64, requires_grad=True)
    upstream = torch.rand(401, dtype=torch.float64) + 0.5
    binary_sign(x).backward(upstream)
    xd = x.detach()
    # d/dx ApproxSign: 2 + 2x on [-1, 0), 2 - 2x on [0, 1), 0 elsewhere
    expected = torch.where(xd.abs() < 1,
                           torch.where(xd < 0, 2 + 2 * xd, 2 - 2 * xd),
                           torch.zeros_like(xd))
    torch.testing.assert_close(x.grad, upstream * expected)
    assert x.grad[200] == pytest.approx(2 * upstream[200].item())  # x = 0


def test_rsign_shift_and_switch():
    m = RSign(2)
    with torch.no_grad():
        m.bias.copy_(torch.tensor([-0.5, 0.5]))
    x = torch.full((1, 2, 1, 1), 0.3, requires_grad=True)
    assert m(x).flatten().tolist() == [-1., 1.]
    m.binary = False
    out = m(x)
    torch.testing.assert_close(out.flatten(), torch.tensor([-0.2, 0.8]))
    out.sum().backward()
    assert m.bias.grad.tolist() == [1., 1.]


def test_rsign_binary_gradient_reaches_shift():
    m = RSign(3)
    x = torch.randn(2, 3, 4, 4)
    m(x).sum().backward()
    expected = (2 - 2 * x.abs()).clamp(min=0).sum(dim=(0, 2, 3))
    torch.testing.assert_close(m.bias.grad, expected)


def test_rprelu_formula():
    torch.manual_seed(0)
    m = RPReLU(3)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_()
    x = torch.randn(2, 3, 4, 4)
    expected = F.prelu(x + m.bias_in.view(1, 3, 1, 1),
                       m.weight) + m.bias_out.view(1, 3, 1, 1)
    torch.testing.assert_close(m(x), expected)
    m(x).sum().backward()
    assert all(p.grad is not None for p in m.parameters())


def test_rprelu_init():
    m = RPReLU(4)
    x = torch.randn(1, 4, 2, 2)
    torch.testing.assert_close(m(x), F.prelu(x, torch.full((4, ), 0.25)))


def _run(module, x, grad, use_ext):
    """Output and gradients (input, then parameters) of module on x."""
    module.zero_grad()
    x = x.clone().requires_grad_()
    with training.training_kernels(use_ext):
        out = module(x)
        out.backward(grad)
    return [out.detach(), x.grad] + [p.grad for p in module.parameters()]


@pytest.mark.parametrize('shape', [(2, 3, 1, 1), (3, 5, 7, 7), (2, 4, 4, 5),
                                   (1, 2, 9, 9)])
@pytest.mark.parametrize('kind', ['rsign', 'rprelu'])
def test_extension_equals_torch(kind, shape):
    """The extension's RSign/RPReLU against the modules' PyTorch
    operations: outputs and input gradients bit for bit, parameter
    gradients (per-channel sums in another order) to rounding; maps of
    1..81 values per plane, values at the breakpoints (x + b = 0, -0,
    |x + b| = 1), a channels_last input."""
    if training.training_ext(torch.zeros(1)) is None:
        pytest.skip('nasbnn_mm._ext not built')
    torch.manual_seed(0)
    module = RSign(shape[1]) if kind == 'rsign' else RPReLU(shape[1])
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p).mul_(4).round_().div_(4))
    x = torch.randn(*shape).mul_(8).round_().div_(8)
    x.view(-1)[::7] = -0.
    grad = torch.randn(*shape)
    for data in (x, x.to(memory_format=torch.channels_last)):
        ext = _run(module, data, grad, True)
        ref = _run(module, data, grad, False)
        assert torch.equal(ext[0], ref[0])
        assert torch.equal(ext[1], ref[1])
        for a, b in zip(ext[2:], ref[2:]):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    for use_ext in (True, False):  # the paths compared above
        with training.training_kernels(use_ext):
            node = type(module(x.clone().requires_grad_()).grad_fn).__name__
        assert node.startswith(('RSignFunction', 'RPReLUFunction')) == use_ext
    if kind == 'rsign':  # x + b = 0 gives +1 (eq. 1)
        zero = -module.bias.detach().view(1, -1, 1, 1).expand(shape)
        assert _run(module, zero.contiguous(), grad, True)[0].eq(1).all()


def test_extension_checks_inputs():
    if training.training_ext(torch.zeros(1)) is None:
        pytest.skip('nasbnn_mm._ext not built')
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(RuntimeError, match='float32 CPU vector of 3'):
        training.rsign_forward(x, torch.zeros(4))
    with pytest.raises(RuntimeError, match=r'contiguous \(N, C, H, W\)'):
        training.rprelu_forward(x[:, :, ::2], *torch.zeros(3, 3))
