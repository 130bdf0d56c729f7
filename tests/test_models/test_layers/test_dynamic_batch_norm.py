from unittest import mock

import pytest
import torch
import torch.nn as nn

from nasbnn_mm.models.layers import DynamicBatchNorm2d, dynamic_batch_norm
from nasbnn_mm.ops import training
from nasbnn_mm.ops.training import training_kernels


def _randomize(bn):
    with torch.no_grad():
        bn.weight.normal_()
        bn.bias.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2)


def test_train_updates_only_active_channels():
    torch.manual_seed(0)
    bn = DynamicBatchNorm2d(8)
    _randomize(bn)
    ref = nn.BatchNorm2d(5)
    ref.load_state_dict({
        k: v[:5] if v.dim() else v
        for k, v in bn.state_dict().items()
    })
    before = bn.running_mean.clone()
    x = torch.randn(4, 5, 3, 3)
    torch.testing.assert_close(bn(x), ref(x))
    torch.testing.assert_close(bn.running_mean[:5], ref.running_mean)
    torch.testing.assert_close(bn.running_var[:5], ref.running_var)
    assert torch.equal(bn.running_mean[5:], before[5:])
    assert bn.num_batches_tracked == 1


def test_eval_and_to_static():
    torch.manual_seed(0)
    bn = DynamicBatchNorm2d(8).eval()
    _randomize(bn)
    x = torch.randn(2, 6, 3, 3)
    static = bn.to_static(channels=6)
    assert type(static) is nn.BatchNorm2d and not static.training
    torch.testing.assert_close(static(x), bn(x))
    mean, var, weight, bias = (
        t[:6].view(1, 6, 1, 1)
        for t in (bn.running_mean, bn.running_var, bn.weight, bn.bias))
    expected = (x - mean) / torch.sqrt(var + bn.eps) * weight + bias
    torch.testing.assert_close(bn(x), expected)


def test_errors():
    bn = DynamicBatchNorm2d(4)
    with pytest.raises(ValueError, match='channels 5 .* exceed'):
        bn(torch.randn(2, 5, 2, 2))
    with pytest.raises(ValueError, match=r'channels 5 not in \[1, 4\]'):
        bn.to_static(channels=5)


@pytest.mark.parametrize('shape', [(4, 5, 3, 3), (3, 7, 2, 2), (2, 6, 17, 5),
                                   (1, 3, 1, 2), (33, 4, 1, 1),
                                   (2, 9, 100, 180)])
@pytest.mark.parametrize('momentum', [0.1, None])
def test_kernel_matches_aten(shape, momentum):
    """The extension's batch norm (CPU float32, training) against
    F.batch_norm: output, running statistics and the three gradients, for
    planes shorter and longer than the 16 sum lanes, channel blocks of
    many channels and of one (36000 values per channel); and the two
    calls took the two paths."""
    torch.manual_seed(0)
    bns = [DynamicBatchNorm2d(9, momentum=momentum) for _ in range(2)]
    _randomize(bns[0])
    bns[1].load_state_dict(bns[0].state_dict())
    x = (torch.randn(shape) * 3 + 1).requires_grad_()
    grad = torch.randn(shape)
    outs = []
    for bn, kernel in zip(bns, (True, False)):
        calls = []
        with mock.patch.object(dynamic_batch_norm,
                               '_batch_norm_kernel_applies',
                               lambda *a: calls.append(1) or kernel):
            bn(x).backward(grad)  # momentum None: the second step's 1 / 2
            y = bn(x)
            y.backward(grad)
        fn = type(y.grad_fn).__name__
        assert fn == ('BatchNormFunctionBackward'
                      if kernel else 'NativeBatchNormBackward0')
        outs.append((y, x.grad.clone(), bn.weight.grad, bn.bias.grad,
                     bn.running_mean, bn.running_var))
        x.grad = None
    for got, want in zip(*outs):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_kernel_path_rules():
    """The kernel takes contiguous affine training maps with more than one
    value per channel; the rest goes to F.batch_norm (same values)."""
    applies = dynamic_batch_norm._batch_norm_kernel_applies
    weight = torch.ones(4)
    x = torch.randn(2, 4, 3, 3)
    assert applies(x, weight)
    assert not applies(x, None)
    assert not applies(x.transpose(2, 3), weight)
    assert not applies(x.double(), weight)
    assert not applies(torch.randn(1, 4, 1, 1), weight)
    with training_kernels(False):
        assert not applies(x, weight)
    bn = DynamicBatchNorm2d(4)
    y = bn(x.transpose(2, 3))
    assert type(y.grad_fn).__name__ != 'BatchNormFunctionBackward'
    with pytest.raises(ValueError, match='Expected more than 1 value'):
        bn(torch.randn(1, 4, 1, 1))


def test_kernel_thread_independent():
    """A channel's sums run in a fixed order: 1 and 2 threads agree to
    the bit (forward, running statistics, gradients)."""
    x = torch.randn(8, 300, 9, 9)  # 3 channel blocks of 101
    grad = torch.randn_like(x)
    weight, bias = torch.rand(300) + 0.5, torch.randn(300)
    results = []
    threads = torch.get_num_threads()
    for n in (1, 2):
        torch.set_num_threads(n)
        try:
            rm, rv = torch.zeros(300), torch.ones(300)
            y, mean, invstd = training.batch_norm_forward(
                x, weight, bias, rm, rv, 0.1, 1e-5)
            grads = training.batch_norm_backward(grad, x, weight, mean, invstd)
        finally:
            torch.set_num_threads(threads)
        results.append([y, rm, rv, *grads])
    for one, two in zip(*results):
        assert torch.equal(one, two)


def test_kernel_errors():
    ext_forward = training.batch_norm_forward
    w, b = torch.ones(3), torch.zeros(3)
    with pytest.raises(RuntimeError, match='more than 1 value per channel'):
        ext_forward(torch.randn(1, 3, 1, 1), w, b, None, None, 0.1, 1e-5)
    with pytest.raises(RuntimeError, match='go together'):
        ext_forward(
            torch.randn(2, 3, 2, 2), w, b, torch.zeros(3), None, 0.1, 1e-5)
    with pytest.raises(RuntimeError, match='contiguous float32 CPU vector'):
        ext_forward(
            torch.randn(2, 3, 2, 2), torch.ones(4), b, None, None, 0.1, 1e-5)
