"""The Bi-Real shortcut and the backbones at any input size (H, W >= 32)."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from nasbnn_mm.models import NASBNN, SuperBNN
from nasbnn_mm.models.backbones import nasbnn as nasbnn_module
from nasbnn_mm.models.backbones import super_bnn as super_bnn_module
from nasbnn_mm.models.layers import bireal_shortcut
from nasbnn_mm.models.layers.shortcut import bireal_pool
from nasbnn_mm.nas import SearchSpace
from nasbnn_mm.ops import training

DIGITS = 'nasbnn_digits'
# Every kind of layer of the digits space: strides 1/2, kernels 3/5,
# groups 1/2/4, widening shortcuts.
ARCH = dict(
    stem='c16_k3_g1',
    stages=[['c24_k3_g1', 'c32_k3_g1'], ['c64_k5_g2', 'c64_k3_g1'],
            ['c96_k5_g4', 'c128_k3_g2']])
# The layout of the ImageNet space (Table 1: strides, depths, kernels,
# groups) with 1/8 of its smallest widths, so that 600x1000 runs quickly.
IN1K_NARROW = dict(
    input_size=224,
    in_channels=3,
    num_classes=1000,
    stem=dict(channels=[3], kernel_size=[3], groups=[1], stride=2),
    stages=[
        dict(depth=[2], channels=[6], kernel_size=[3], groups=[1], stride=1),
        dict(
            depth=[2],
            channels=[12],
            kernel_size=[3, 5],
            groups=[1, 2],
            stride=2),
        dict(
            depth=[2],
            channels=[24],
            kernel_size=[3, 5],
            groups=[2, 4],
            stride=2),
        dict(
            depth=[8],
            channels=[48],
            kernel_size=[3, 5],
            groups=[4, 8],
            stride=2),
        dict(
            depth=[2],
            channels=[96],
            kernel_size=[3, 5],
            groups=[8, 16],
            stride=2),
    ])
IN1K_NARROW_ARCH = dict(
    stem='c3_k3_g1',
    stages=[['c6_k3_g1'] * 2, ['c12_k5_g2', 'c12_k3_g1'],
            ['c24_k5_g4', 'c24_k3_g2'], ['c48_k5_g8'] + ['c48_k3_g4'] * 7,
            ['c96_k5_g16', 'c96_k3_g8']])


def floor_shortcut(x, out_channels, stride):
    """The shortcut before any-size support: floor pooling."""
    if stride == 2:
        x = F.avg_pool2d(x, 2, stride=2)
    in_channels = x.shape[1]
    repeats = -(-out_channels // in_channels)
    return x.repeat(1, repeats, 1, 1)[:, :out_channels]


def expected_sizes(space: SearchSpace, size):
    """(H, W) of each stage output: every stride rounds up."""
    h, w = size
    sizes = []
    h, w = math.ceil(h / space.stem.stride), math.ceil(w / space.stem.stride)
    for stage in space.stages:
        h, w = math.ceil(h / stage.stride), math.ceil(w / stage.stride)
        sizes.append((h, w))
    return sizes


@torch.no_grad()
def randomize_bn(model: nn.Module, seed: int) -> nn.Module:
    """Non-trivial BN statistics and affine, as after training; eval mode.
    """
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            for t, (low, high) in ((module.running_mean,
                                    (-1, 1)), (module.running_var, (0.5, 2)),
                                   (module.weight, (0.5, 1.5)), (module.bias,
                                                                 (-0.5, 0.5))):
                t.copy_(
                    torch.rand(t.shape, generator=gen) * (high - low) + low)
    return model.eval()


def images(*size, seed=0):
    return torch.randn(
        2, 3, *size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize('size', [(2, 2), (4, 6), (32, 32), (224, 224)])
def test_pool_even_sizes_equal_floor_pooling(size):
    """On even sizes the extension's pooling (contiguous CPU float32) and
    the ATen path (channels_last, float64) give ATen's values and
    gradients, bit for bit."""
    x = torch.randn(2, 5, *size)
    grad = torch.randn(2, 5, size[0] // 2, size[1] // 2)
    for layout in (x, x.contiguous(memory_format=torch.channels_last),
                   x.double()):
        ours = layout.detach().requires_grad_()
        ref = layout.detach().requires_grad_()
        out = bireal_pool(ours)
        extension = layout.is_contiguous() and layout.dtype == torch.float32
        assert (type(
            out.grad_fn).__name__ == 'Pool2x2FunctionBackward') == extension
        expected = F.avg_pool2d(ref, 2, stride=2)
        assert torch.equal(out, expected)
        out.backward(grad.to(layout.dtype))
        expected.backward(grad.to(layout.dtype))
        assert torch.equal(ours.grad, ref.grad)


def test_pool_kernel_errors():
    with pytest.raises(RuntimeError, match='expected even H and W'):
        training.avg_pool2x2_forward(torch.randn(1, 2, 3, 4))
    with pytest.raises(RuntimeError, match='is not the pooling of a 6 x 4'):
        training.avg_pool2x2_backward(torch.randn(1, 2, 2, 2), 6, 4)


@pytest.mark.parametrize('size', [(3, 3), (5, 2), (7, 9), (33, 47)])
def test_pool_odd_sizes_average_present_pixels(size):
    x = torch.randn(1, 3, *size, dtype=torch.float64)
    out = bireal_pool(x)
    h, w = size
    assert out.shape == (1, 3, -(-h // 2), -(-w // 2))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            window = x[:, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
            torch.testing.assert_close(out[:, :, i, j], window.mean((2, 3)))
    # The last row of an odd height is its own mean of pairs.
    if h % 2:
        torch.testing.assert_close(out[:, :, -1, 0], x[:, :, -1, :2].mean(-1))


def test_shortcut_odd_size_tiles_channels():
    x = torch.randn(1, 4, 7, 5)
    out = bireal_shortcut(x, 10, 2)
    assert out.shape == (1, 10, 4, 3)
    pooled = bireal_pool(x)
    assert torch.equal(out, torch.cat([pooled, pooled, pooled[:, :2]], 1))


@pytest.mark.parametrize('size', [(32, 32), (33, 47), (47, 33), (65, 97),
                                  (600, 1000)])
def test_static_subnet_any_size(size):
    space = SearchSpace.from_config(DIGITS)
    torch.manual_seed(0)
    model = randomize_bn(NASBNN(ARCH, DIGITS, out_indices=(0, 1, 2)), 1)
    with torch.no_grad():
        outs = model(images(*size)[:1])
    assert [tuple(o.shape[2:]) for o in outs] == expected_sizes(space, size)
    assert all(torch.isfinite(o).all() for o in outs)


@pytest.mark.parametrize('size', [(600, 1000), (800, 1333)])
def test_in1k_layout_detection_sizes(size):
    space = SearchSpace.from_dict(IN1K_NARROW)
    model = NASBNN(IN1K_NARROW_ARCH, IN1K_NARROW, out_indices=range(5))
    with torch.no_grad():
        outs = model.eval()(torch.randn(1, 3, *size))
    sizes = [tuple(o.shape[2:]) for o in outs]
    assert sizes == expected_sizes(space, size)
    if size == (600, 1000):
        assert sizes == [(300, 500), (150, 250), (75, 125), (38, 63), (19, 32)]


@pytest.mark.parametrize('size', [(33, 47), (64, 35)])
def test_supernet_any_size_equals_exported(size):
    space = SearchSpace.from_config(DIGITS)
    torch.manual_seed(0)
    supernet = randomize_bn(SuperBNN(DIGITS, out_indices=(0, 1, 2)), 2)
    x = images(*size)
    with torch.no_grad():
        outs = supernet(x, supernet.resolve_arch(ARCH))
        static = supernet.to_static(ARCH).eval()(x)
    assert [tuple(o.shape[2:]) for o in outs] == expected_sizes(space, size)
    for out, ref in zip(outs, static):
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('size', [(32, 32), (64, 96)])
@pytest.mark.parametrize('kind', ['static', 'supernet'])
def test_multiples_of_32_unchanged(monkeypatch, kind, size):
    """Same outputs, bit for bit, as with the old floor pooling."""
    torch.manual_seed(0)
    if kind == 'static':
        model = NASBNN(ARCH, DIGITS, out_indices=(0, 1, 2))
        module = nasbnn_module
    else:
        model = SuperBNN(DIGITS, ARCH, out_indices=(0, 1, 2))
        module = super_bnn_module
    model = randomize_bn(model, 3)
    x = images(*size, seed=4)
    with torch.no_grad():
        model(x)  # LSQ step initialisation happens on the first call.
        new = model(x)
        monkeypatch.setattr(module, 'bireal_shortcut', floor_shortcut)
        old = model(x)
        # The old path cannot run an odd size: the test uses the shortcut.
        with pytest.raises(RuntimeError, match='must match'):
            model(images(size[0] + 1, size[1]))
    assert len(new) == len(old) == 3
    for a, b in zip(new, old):
        assert torch.equal(a, b)
