"""A sliced conv weight through its kernel map, on the extension's loops."""
import pytest
import torch

from nasbnn_mm.models.layers import DynamicBinaryConv2d
from nasbnn_mm.models.layers.kernel_map import apply_kernel_map
from nasbnn_mm.ops import binary_conv as ops
from nasbnn_mm.ops.training import training_ext, training_kernels

pytestmark = pytest.mark.skipif(
    training_ext(torch.zeros(1)) is None, reason='extension not built')


@pytest.fixture(params=('scalar', 'avx512'))
def path(request):
    """The portable loops and the register-blocked AVX-512 ones (skipped
    where the CPU cannot run them)."""
    if request.param not in ops.available_kernel_paths():
        pytest.skip(f'CPU cannot run the {request.param} path')
    with ops.force_kernel_path(request.param) as taken:
        yield taken


def _reference(weight, kernel_map, k):
    """The PyTorch expression in float64."""
    out = weight.double().flatten(2) @ kernel_map.double()
    return out.view(*weight.shape[:2], k, k)


def _weights(kind, out_channels=24, in_channels=12, taps=5):
    g = torch.Generator().manual_seed(0)
    full = torch.randn(out_channels, in_channels, taps, taps, generator=g)
    if kind == 'contiguous':
        return full
    if kind == 'column slice':  # a strided view, as slice_weight returns
        return full[:16, :6]
    index = torch.arange(5)[None, :, None, None].expand(16, 5, taps, taps)
    return full[:16].gather(1, index + 3)  # cyclic group slicing


@pytest.mark.parametrize('kind', ['contiguous', 'column slice', 'gathered'])
@pytest.mark.parametrize('taps, k', [(5, 3), (5, 5), (3, 3), (7, 5), (5, 7)])
def test_values_and_gradients_match_pytorch(path, kind, taps, k):
    weight = _weights(kind, taps=taps).requires_grad_()
    g = torch.Generator().manual_seed(1)
    kernel_map = torch.randn(
        taps * taps, k * k, generator=g, requires_grad=True)
    out = apply_kernel_map(weight, kernel_map, k)
    assert type(out.grad_fn).__name__ == 'ViewBackward0'
    assert out.shape == (*weight.shape[:2], k, k) and out.is_contiguous()
    torch.testing.assert_close(
        out.double(), _reference(weight, kernel_map, k), rtol=1e-5, atol=1e-5)
    grad = torch.randn(out.shape, generator=g)
    out.backward(grad)
    w64 = weight.detach().double().requires_grad_()
    m64 = kernel_map.detach().double().requires_grad_()
    _reference(w64, m64, k).backward(grad.double())
    torch.testing.assert_close(
        weight.grad.double(), w64.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        kernel_map.grad.double(), m64.grad, rtol=1e-5, atol=1e-4)


def test_only_the_asked_gradients():
    weight = _weights('column slice')
    kernel_map = torch.randn(25, 9, requires_grad=True)
    apply_kernel_map(weight, kernel_map, 3).sum().backward()
    assert weight.grad is None and kernel_map.grad is not None
    weight = _weights('contiguous').requires_grad_()
    apply_kernel_map(weight, torch.randn(25, 9), 3).sum().backward()
    assert weight.grad is not None


def test_map_gradient_does_not_depend_on_threads(path):
    weight = torch.randn(64, 96, 5, 5)  # several row chunks
    kernel_map = torch.randn(25, 9, requires_grad=True)
    grad = torch.randn(64, 96, 3, 3)
    grads = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            kernel_map.grad = None
            apply_kernel_map(weight, kernel_map, 3).backward(grad)
            grads.append(kernel_map.grad)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(grads[0], grads[1])


def test_kernels_off_runs_the_pytorch_expression():
    weight, kernel_map = _weights('column slice'), torch.randn(25, 9)
    with training_kernels(False):
        out = apply_kernel_map(weight, kernel_map, 3)
    assert torch.equal(out, (weight.flatten(2) @ kernel_map).view(16, 6, 3, 3))


def test_dynamic_conv_takes_the_path():
    conv = DynamicBinaryConv2d(16, 16, [3, 5], [1, 2])
    out = conv(torch.randn(2, 16, 6, 6), kernel_size=3, groups=2)
    names = set()
    stack = [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or type(node).__name__ in names:
            continue
        names.add(type(node).__name__)
        stack.extend(n for n, _ in node.next_functions)
    assert 'KernelMapFunctionBackward' in names, names
