"""The bit-packed binary kernels (nasbnn_mm._ext) against the references.

The extension is built by the install (``pip install -e .``); if it is
missing these tests fail with the build instruction, they do not skip.
"""
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from nasbnn_mm.ops import binary_conv as ops

GROUPS = (1, 2, 3, 4, 8, 16)


def sign(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x >= 0, 1., -1.)


def random_case(gen: torch.Generator) -> dict:
    """A random conv of the NAS-BNN space's kinds, odd widths included."""

    def pick(values):
        return values[int(torch.randint(len(values), (), generator=gen))]

    def rand(low, high):
        return int(torch.randint(low, high, (), generator=gen))

    groups, k = pick(GROUPS), pick((1, 3, 5))
    # Widths per group from 1 to 140: odd, < 64, = 64, > 64 all occur.
    cin, cout = groups * rand(1, 141), groups * rand(1, 30)
    padding = pick((k // 2, k // 2, 0, k))
    size = max(1, k - 2 * padding)
    return dict(
        n=rand(1, 3),
        cin=cin,
        cout=cout,
        k=k,
        stride=pick((1, 2)),
        padding=padding,
        groups=groups,
        h=rand(size, 10),
        w=rand(size, 10))


def test_extension_built_and_dispatch():
    ext = ops.load_ext()
    paths = ops.available_kernel_paths()
    assert paths[0] == 'scalar'
    assert ops.kernel_path() in paths
    features = ops.cpu_features()
    avx512 = ('avx512f', 'avx512vpopcntdq', 'avx512ifma')
    assert ('avx512' in paths) == all(features.get(f) for f in avx512)
    assert ext.set_kernel_path('auto') == paths[-1]


def test_missing_extension_error(monkeypatch):
    monkeypatch.setattr(ops, '_ext', None)
    monkeypatch.setitem(sys.modules, 'nasbnn_mm._ext', None)
    with pytest.raises(
            ImportError,
            match=r'nasbnn_mm\._ext not built: run '
            r'`pip install -e \.`'):
        ops.kernel_path()


def test_invalid_and_unsupported_path():
    with pytest.raises(ValueError, match="'sse' not in"):
        ops.set_kernel_path('sse')
    missing = [
        p for p in ('scalar', 'avx2', 'avx512')
        if p not in ops.available_kernel_paths()
    ]
    for p in missing:
        with pytest.raises(RuntimeError, match='not supported by this CPU'):
            ops.set_kernel_path(p)


def test_env_var_forces_path():
    # NOTE: loads the built module by path: importing all of nasbnn_mm in
    # a fresh interpreter would take most of this test's time.
    code = ('import importlib.util as u, sys, torch\n'
            's = u.spec_from_file_location("_ext", sys.argv[1])\n'
            'ext = u.module_from_spec(s); s.loader.exec_module(ext)\n'
            'ext.pack_activation(torch.randn(1, 3, 3, 70))\n'
            'print(ext.kernel_path())\n'
            'try:\n    ext.set_kernel_path("bogus")\n'
            'except ValueError as e:\n    print("bad path:", e)')
    env = dict(os.environ, NASBNN_BINARY_KERNEL='scalar')
    done = subprocess.run(
        [sys.executable, '-c', code,
         ops.load_ext().__file__],
        env=env,
        capture_output=True,
        text=True,
        timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == 'scalar'
    assert 'bad path:' in done.stdout


@pytest.mark.parametrize('groups', GROUPS)
def test_pack_activation_round_trip(path, groups):
    gen = torch.Generator().manual_seed(groups)
    x = torch.randn(2, groups * 37, 3, 5, generator=gen)
    x[0, :, 0, 0] = 0.  # sign(0) = +1, as RSign
    x[0, :, 0, 1] = -0.
    bias = torch.randn(groups * 37, generator=gen)
    for b in (None, bias):
        packed = ops.pack_activation(x, groups, b)
        assert packed.shape == (2, 3, 5, groups * 1)
        assert packed.dtype == torch.uint64
        ref = ops.pack_activation_ref(x, groups, b)
        assert torch.equal(packed.view(torch.int64), ref.view(torch.int64))
        shifted = x if b is None else x + b.view(1, -1, 1, 1)
        assert torch.equal(
            ops.unpack_activation_ref(packed, x.shape[1], groups),
            sign(shifted))


@pytest.mark.parametrize('channels', [1, 63, 64, 65, 130])
def test_pack_channels_layout(path, channels):
    x = -torch.ones(1, channels, 1, 1)
    x[0, -1] = 1.  # only the last channel is +1
    packed = ops.pack_activation(x).view(torch.int64)[0, 0, 0]
    assert packed.numel() == -(-channels // 64)
    last = channels - 1
    expected = torch.zeros_like(packed)
    expected[last // 64] = 1 << (last % 64) if last % 64 < 63 else -2**63
    assert torch.equal(packed, expected)


def test_pack_weight_and_flat_bits_round_trip():
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(24, 77, 3, 3, generator=gen)
    packed = ops.pack_weight(weight, groups=2)
    assert packed.shape == (24, 3, 3, 2)
    assert torch.equal(
        packed.view(torch.int64),
        ops.pack_weight_ref(weight, 2).view(torch.int64))
    assert torch.equal(ops.unpack_weight_ref(packed, 77), sign(weight))
    bits = torch.rand(1000, generator=gen) > 0.5
    words = ops.pack_bits_flat(bits)
    assert words.shape == (16, ) and words.dtype == torch.uint64
    assert torch.equal(ops.unpack_bits_flat(words, 1000), bits)


def test_block_weight_layout():
    packed = torch.arange(6 * 2 * 2 * 3).view(6, 2, 2, 3).view(torch.uint64)
    blocked = ops.block_weight(packed, groups=2)
    assert blocked.shape == (2, 1, 2, 2, 3, 8)
    b = blocked.view(torch.int64)
    p = packed.view(torch.int64)
    for oc in range(6):
        g, lane = oc // 3, oc % 3
        assert torch.equal(b[g, 0, ..., lane], p[oc])
    assert (b[..., 3:] == 0).all()  # lanes past C_out / G


@pytest.mark.parametrize('seed', range(12))
def test_conv_exact_on_signs(path, seed):
    """Packed conv == F.conv2d on +-1 tensors, exactly, zero padding incl.
    """
    gen = torch.Generator().manual_seed(seed)
    for _ in range(4):
        c = random_case(gen)
        x = torch.randn(c['n'], c['cin'], c['h'], c['w'], generator=gen)
        weight = torch.randn(
            c['cout'], c['cin'] // c['groups'], c['k'], c['k'], generator=gen)
        out = ops.binary_conv2d(
            ops.pack_activation(x, c['groups']),
            ops.pack_weight(weight, c['groups']), c['cin'], c['cout'],
            c['stride'], c['padding'], c['groups'])
        ref = F.conv2d(
            sign(x),
            sign(weight),
            None,
            c['stride'],
            c['padding'],
            groups=c['groups'])
        assert out.shape == ref.shape, c
        assert torch.equal(out, ref), c


def test_conv_with_alpha_matches_float_simulation(path):
    """``F.conv2d(sign(x), alpha * sign(W), padding=p)`` as the float
    model computes it, up to its float summation."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 96, 9, 9, generator=gen)
    weight = torch.randn(48, 48, 3, 3, generator=gen)
    alpha = weight.abs().mean((1, 2, 3))
    out = ops.binary_conv2d(
        ops.pack_activation(x, 2),
        ops.pack_weight(weight, 2),
        96,
        48,
        2,
        1,
        2,
        scale=alpha)
    ref = F.conv2d(
        sign(x), sign(weight) * alpha.view(-1, 1, 1, 1), None, 2, 1, groups=2)
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize('res_channels', [40, 64, 200, 13])
def test_fused_epilogue_bitwise(path, res_channels):
    """Scale, bias, channel-tiled residual and RPReLU equal the reference
    bit for bit (the same float operations in the same order)."""
    gen = torch.Generator().manual_seed(res_channels)
    cin, cout, groups = 96, 100, 4
    x = torch.randn(2, cin, 7, 7, generator=gen)
    weight = torch.randn(cout, cin // groups, 5, 5, generator=gen)
    xp, wp = ops.pack_activation(x, groups), ops.pack_weight(weight, groups)
    args = dict(
        scale=torch.rand(cout, generator=gen),
        bias=torch.randn(cout, generator=gen),
        residual=torch.randn(2, res_channels, 4, 4, generator=gen),
        act=(torch.randn(cout, generator=gen), torch.rand(cout, generator=gen),
             torch.randn(cout, generator=gen)))
    out = ops.binary_conv2d(xp, wp, cin, cout, 2, 2, groups, **args)
    ref = ops.binary_conv2d_ref(xp, wp, cin, cout, 2, 2, groups, **args)
    assert torch.equal(out, ref)
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_binary_gemm_exact(path):
    gen = torch.Generator().manual_seed(2)
    m, k, n = 37, 200, 29
    a, b = torch.randn(m, k, generator=gen), torch.randn(n, k, generator=gen)
    pa = ops.pack_activation(a.view(m, k, 1, 1)).view(m, -1)
    pb = ops.pack_activation(b.view(n, k, 1, 1)).view(n, -1)
    out = ops.binary_gemm(pa, pb, k, n)
    assert torch.equal(out, sign(a) @ sign(b).T)
    assert torch.equal(out, ops.binary_gemm_ref(pa, pb, k))


def test_paths_agree_and_threads():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 130, 12, 12, generator=gen)
    weight = torch.randn(70, 65, 3, 3, generator=gen)
    scale = torch.rand(70, generator=gen)
    outs = []
    threads = torch.get_num_threads()
    try:
        for p in ops.available_kernel_paths():
            with ops.force_kernel_path(p):
                for t in (1, 2):
                    torch.set_num_threads(t)
                    outs.append(
                        ops.binary_conv2d(
                            ops.pack_activation(x, 2),
                            ops.pack_weight(weight, 2),
                            130,
                            70,
                            1,
                            1,
                            2,
                            scale=scale))
    finally:
        torch.set_num_threads(threads)
    for out in outs[1:]:
        assert torch.equal(out, outs[0])


def test_kernels_use_torch_threads():
    """The kernels run on the threads torch is given (an extension built
    without OpenMP would run serially)."""
    threads = torch.get_num_threads()
    try:
        for t in (1, 2, 3):
            torch.set_num_threads(t)
            assert ops.kernel_threads() == t
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize('k,stride,padding,hw,groups', [
    (3, 1, 1, 7, 4),
    (5, 2, 2, 7, 16),
    (3, 2, 1, 3, 1),
    (1, 1, 0, 5, 1),
    (1, 1, 0, 13, 2),
])
def test_thread_splits_exact(k, stride, padding, hw, groups):
    """Small maps split rows and weight blocks among threads: every split
    gives the exact single-thread result."""
    gen = torch.Generator().manual_seed(hw * k)
    cin, cout = 48 * groups, 40 * groups
    x = torch.randn(1, cin, hw, hw, generator=gen)
    weight = torch.randn(cout, cin // groups, k, k, generator=gen)
    scale = torch.rand(cout, generator=gen)
    xp, wp = ops.pack_activation(x, groups), ops.pack_weight(weight, groups)
    ref = F.conv2d(
        sign(x), sign(weight), None, stride, padding,
        groups=groups) * scale.view(1, -1, 1, 1)
    threads = torch.get_num_threads()
    try:
        for t in (1, 2, 3):
            torch.set_num_threads(t)
            out = ops.binary_conv2d(
                xp, wp, cin, cout, stride, padding, groups, scale=scale)
            assert torch.equal(out, ref), t
    finally:
        torch.set_num_threads(threads)


def test_shape_errors():
    x = ops.pack_activation(torch.randn(1, 64, 4, 4))
    weight = ops.pack_weight(torch.randn(8, 32, 3, 3), groups=2)
    with pytest.raises(RuntimeError, match='words per pixel'):
        ops.binary_conv2d(x, weight, 64, 8, groups=2)
    with pytest.raises(RuntimeError, match='float32 CPU tensor'):
        ops.pack_activation(torch.randn(1, 8, 2, 2).double())
    with pytest.raises(RuntimeError, match='not divisible by groups 3'):
        ops.pack_activation(torch.randn(1, 8, 2, 2), groups=3)
