import pytest
import torch
import torch.nn.functional as F

from nasbnn_mm.models.layers import RPReLU, RSign, binary_sign


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
