import pytest
import torch

from nasbnn_mm.models.layers import DynamicRPReLU, DynamicRSign, RPReLU, RSign


def _randomize(m):
    with torch.no_grad():
        for p in m.parameters():
            p.normal_()


def test_dynamic_rsign_equals_static():
    torch.manual_seed(0)
    m = DynamicRSign(8)
    _randomize(m)
    x = torch.randn(2, 5, 3, 3)
    static = m.to_static(channels=5)
    assert type(static) is RSign
    assert torch.equal(static(x), m(x))
    m.binary = False
    torch.testing.assert_close(m(x), x + m.bias[:5].view(1, 5, 1, 1))
    assert not m.to_static(channels=5).binary


def test_dynamic_rprelu_equals_static():
    torch.manual_seed(0)
    m = DynamicRPReLU(8)
    _randomize(m)
    x = torch.randn(2, 5, 3, 3)
    static = m.to_static(channels=5)
    assert type(static) is RPReLU
    torch.testing.assert_close(static(x), m(x))
    m(x).sum().backward()
    assert m.weight.grad[5:].abs().max() == 0
    assert m.weight.grad[:5].abs().sum() > 0


@pytest.mark.parametrize('cls', [DynamicRSign, DynamicRPReLU])
def test_errors(cls):
    m = cls(4)
    with pytest.raises(ValueError, match=r'channels 6 not in \[1, 4\]'):
        m(torch.randn(1, 6, 2, 2))
    with pytest.raises(ValueError, match=r'channels 0 not in \[1, 4\]'):
        m.to_static(channels=0)
