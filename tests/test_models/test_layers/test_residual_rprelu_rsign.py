"""A block's residual add, RPReLU and RSign in one extension call."""
import pytest
import torch

from nasbnn_mm.models.layers import DynamicRPReLU, DynamicRSign, RPReLU, RSign
from nasbnn_mm.models.layers.activations import residual_rprelu_rsign
from nasbnn_mm.ops import training


def _modules(max_channels=6):
    torch.manual_seed(0)
    act, sign = DynamicRPReLU(max_channels), DynamicRSign(max_channels)
    with torch.no_grad():  # quarter steps: values land on the breakpoints
        for p in [*act.parameters(), *sign.parameters()]:
            p.copy_(torch.randn_like(p).mul_(4).round_().div_(4))
    return act, sign


def _run(fn, act, sign, y, r, grads):
    """Outputs, then the gradients of y, r and every parameter."""
    act.zero_grad()
    sign.zero_grad()
    y, r = y.clone().requires_grad_(), r.clone().requires_grad_()
    out, signs = fn(y, r)
    torch.autograd.backward([out, signs], grads)
    params = [*act.parameters(), *sign.parameters()]
    return [out.detach(), signs.detach(), y.grad, r.grad
            ] + [p.grad for p in params], type(out.grad_fn).__name__


def _separate(act, sign):

    def run(y, r):
        out = act(y + r)
        return out, sign(out)

    return run


@pytest.mark.parametrize('shape', [(2, 4, 1, 1), (3, 5, 7, 7), (2, 6, 4, 5)])
def test_fused_equals_the_modules(shape):
    """Outputs, input and parameter gradients equal the separate extension
    modules' bit for bit (the same float operations and per-channel sums),
    with fewer channels than the modules hold (their first C)."""
    if training.training_ext(torch.zeros(1)) is None:
        pytest.skip('nasbnn_mm._ext not built')
    act, sign = _modules()
    y = torch.randn(*shape).mul_(8).round_().div_(8)
    r = torch.randn(*shape).mul_(8).round_().div_(8)
    grads = [torch.randn(*shape), torch.randn(*shape)]
    fused, node = _run(lambda y, r: residual_rprelu_rsign(y, r, act, sign),
                       act, sign, y, r, grads)
    assert node == 'RPReLURSignFunctionBackward'
    separate, node = _run(_separate(act, sign), act, sign, y, r, grads)
    assert node == 'RPReLUFunctionBackward'
    for got, want in zip(fused, separate):
        assert (got is None) == (want is None)
        if got is not None:
            assert torch.equal(got, want)


@pytest.mark.parametrize('case', ['float_sign', 'broadcast', 'kernels_off'])
def test_other_cases_take_the_modules(case):
    """A non-binarizing RSign, a shortcut of another shape or the kernels
    off: the modules' own operations, the same values."""
    act, sign = _modules(4)
    y, r = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    if case == 'float_sign':
        sign.binary = False
    elif case == 'broadcast':
        r = torch.randn(1, 4, 1, 1)
    grads = [torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)]
    with training.training_kernels(case != 'kernels_off'):
        got, node = _run(lambda y, r: residual_rprelu_rsign(y, r, act, sign),
                         act, sign, y, r, grads)
        want, _ = _run(_separate(act, sign), act, sign, y, r, grads)
    assert node != 'RPReLURSignFunctionBackward'
    for a, b in zip(got, want):
        assert torch.equal(a, b)


def test_static_modules_need_their_width():
    """Static RPReLU / RSign take the fused path at their own width only;
    at another width the modules raise as they would alone."""
    act, sign = RPReLU(4), RSign(4)
    y = torch.randn(2, 4, 3, 3, requires_grad=True)
    out, _ = residual_rprelu_rsign(y, torch.randn(2, 4, 3, 3), act, sign)
    if training.training_ext(y) is not None:
        assert type(out.grad_fn).__name__ == 'RPReLURSignFunctionBackward'
    with pytest.raises(RuntimeError):
        residual_rprelu_rsign(y[:, :3], torch.randn(2, 3, 3, 3), act, sign)
