"""Fused ops (nasbnn_mm.ops.fused) against their unfused references."""
import pytest
import torch
import torch.nn.functional as F

from nasbnn_mm.models.layers import RPReLU
from nasbnn_mm.ops import binary_conv as ops
from nasbnn_mm.ops import fused


def channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def conv_case(gen, cin, cout, groups, k, stride, hw, res_channels, pool):
    """Packed input and weight, epilogue parameters and a residual."""
    x = torch.randn(2, cin, hw, hw, generator=gen)
    weight = torch.randn(cout, cin // groups, k, k, generator=gen)
    out_hw = (hw + 2 * (k // 2) - k) // stride + 1
    res_hw = 2 * out_hw + hw % 2 if pool else out_hw
    return dict(
        x=ops.pack_activation(x, groups),
        weight=ops.pack_weight(weight, groups),
        in_channels=cin,
        out_channels=cout,
        stride=stride,
        padding=k // 2,
        groups=groups,
        scale=torch.rand(cout, generator=gen),
        bias=torch.randn(cout, generator=gen),
        residual=channels_last(
            torch.randn(2, res_channels, res_hw, res_hw, generator=gen)),
        act=(torch.randn(cout, generator=gen), torch.rand(cout, generator=gen),
             torch.randn(cout, generator=gen)),
        pool_residual=pool)


# (C_in, C_out, groups, k, stride, hw, C_r, pool, pack_groups): the first
# ones have NAS-BNN's multiples of 8 (signs packed in the epilogue), the
# last ones do not (a packing pass after the convolution).
CASES = [
    (48, 48, 2, 3, 1, 9, 48, False, 1),
    (96, 96, 4, 5, 2, 10, 96, True, 8),
    (96, 96, 4, 3, 2, 9, 96, True, 2),
    (64, 192, 1, 1, 1, 6, 64, False, 16),
    (32, 32, 1, 1, 1, 5, 32, False, 4),
    (128, 128, 1, 3, 1, 5, 128, False, 2),
    (24, 48, 1, 1, 1, 7, 24, False, 2),
    (128, 200, 2, 3, 1, 5, 128, False, 4),
    (30, 36, 3, 3, 1, 6, 30, False, 2),
    (40, 52, 1, 1, 1, 5, 13, False, 4),
    (21, 21, 3, 3, 2, 7, 21, True, 7),
]


@pytest.mark.parametrize('case', CASES)
def test_conv_pack_bitwise(path, case):
    cin, cout, groups, k, stride, hw, res_c, pool, pack_groups = case
    gen = torch.Generator().manual_seed(cin + cout + hw)
    args = conv_case(gen, cin, cout, groups, k, stride, hw, res_c, pool)
    pack_bias = torch.randn(cout, generator=gen) * 0.5
    for bias in (None, pack_bias):
        out, packed = fused.binary_conv2d_pack(
            **args, pack_groups=pack_groups, pack_bias=bias)
        ref_out, ref_packed = fused.binary_conv2d_pack_ref(
            **args, pack_groups=pack_groups, pack_bias=bias)
        assert torch.equal(out, ref_out)
        assert out.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(
            packed.view(torch.int64), ref_packed.view(torch.int64))
        # the same as packing the float output afterwards
        assert torch.equal(
            packed.view(torch.int64),
            ops.pack_activation(out, pack_groups, bias).view(torch.int64))


@pytest.mark.parametrize('cin', [48, 21])
def test_extreme_scales_bitwise(path, cin):
    """Scales near the float range, zeros of both signs, subnormals and
    negatives, with even and odd C_in_g * taps: the outputs' bits (signed
    zeros and infinities included) equal the reference's."""
    gen = torch.Generator().manual_seed(cin)
    args = conv_case(gen, cin, 32, 1, 3, 1, 6, 32, False)
    near_max = [3e38, -3e38, 0., -0., 1e-40, -1e-40, -2.5, 1.7e38]
    small = [0., -0., 1e-40, -1e-40, -2.5, 1e-3, 7., -1e-38]
    scale = torch.tensor(near_max * 2 + small * 2)
    args.update(scale=scale, bias=None, residual=None, act=None)
    out, packed = fused.binary_conv2d_pack(**args, pack_groups=1)
    ref_out, ref_packed = fused.binary_conv2d_pack_ref(**args, pack_groups=1)
    assert torch.isinf(ref_out).any() and (ref_out == 0).any()
    assert torch.equal(out.view(torch.int32), ref_out.view(torch.int32))
    assert torch.equal(packed.view(torch.int64), ref_packed.view(torch.int64))


def test_pack_signs_at_the_edges_bitwise(path):
    """Packed signs where v + pack_bias is exactly 0, overflows, or meets
    zeros of both signs, subnormals, infinities and NaN: the reference's
    bits."""
    gen = torch.Generator().manual_seed(3)
    args = conv_case(gen, 48, 32, 1, 3, 1, 6, 32, False)
    scale = torch.ones(32)
    scale[::4] = 3e38  # |dot| >= 2 overflows to +-inf
    residual = torch.zeros_like(args['residual'])
    residual[:, 1::2] = -0.
    args.update(
        scale=scale,
        bias=torch.zeros(32),
        residual=residual,
        act=(torch.zeros(32), torch.ones(32), torch.zeros(32)))
    pack_bias = torch.randint(-6, 7, (32, ), generator=gen).float()
    pack_bias[1:12:5] = torch.tensor([3e38, -3e38, 1e-40])
    pack_bias[2], pack_bias[6] = 0., -0.
    for special in (None, float('inf'), float('-inf'), float('nan')):
        bias = pack_bias.clone()
        if special is not None:
            bias[4] = special
        out, packed = fused.binary_conv2d_pack(
            **args, pack_groups=1, pack_bias=bias)
        ref_out, ref_packed = fused.binary_conv2d_pack_ref(
            **args, pack_groups=1, pack_bias=bias)
        assert torch.equal(out.view(torch.int32), ref_out.view(torch.int32))
        assert torch.equal(
            packed.view(torch.int64), ref_packed.view(torch.int64)), special
    assert torch.isinf(ref_out).any()
    assert (ref_out + pack_bias.view(1, -1, 1, 1) == 0).any()


@pytest.mark.parametrize('hw', [8, 9])
def test_pooled_residual_is_avg_pool(path, hw):
    """The epilogue's 2x2 pool equals F.avg_pool2d, for NCHW and
    channels_last residuals and odd sizes (floor)."""
    gen = torch.Generator().manual_seed(hw)
    args = conv_case(gen, 64, 64, 2, 3, 2, hw, 64, True)
    residual = args.pop('residual')
    args.pop('pool_residual')
    expected = ops.binary_conv2d(**args, residual=F.avg_pool2d(residual, 2))
    for res in (residual, residual.contiguous()):
        out = ops.binary_conv2d(**args, residual=res, pool_residual=True)
        assert torch.equal(out, expected)


def test_out_buffers_and_threads():
    gen = torch.Generator().manual_seed(0)
    args = conv_case(gen, 96, 96, 2, 3, 1, 7, 96, False)
    ref_out, ref_packed = fused.binary_conv2d_pack_ref(**args, pack_groups=4)
    out = channels_last(torch.full((2, 96, 7, 7), float('nan')))
    # garbage in the padding bits (96 / 4 = 24 channels of 64) is cleared
    packed = torch.full((2, 7, 7, 4), -1, dtype=torch.int64).view(torch.uint64)
    threads = torch.get_num_threads()
    try:
        for t in (1, 2, 3):
            torch.set_num_threads(t)
            got, got_packed = fused.binary_conv2d_pack(
                **args, pack_groups=4, out=out, packed_out=packed)
            assert got.data_ptr() == out.data_ptr()
            assert got_packed.data_ptr() == packed.data_ptr()
            assert torch.equal(out, ref_out)
            assert torch.equal(
                packed.view(torch.int64), ref_packed.view(torch.int64))
            plain = ops.binary_conv2d(**args, out=torch.empty_like(out))
            assert torch.equal(plain, ref_out)
    finally:
        torch.set_num_threads(threads)


def test_binary_conv2d_errors():
    gen = torch.Generator().manual_seed(1)
    args = conv_case(gen, 64, 64, 1, 3, 1, 6, 64, False)
    residual = args.pop('residual')
    args.pop('pool_residual')
    with pytest.raises(RuntimeError, match='pool_residual without'):
        ops.binary_conv2d(**args, pool_residual=True)
    with pytest.raises(RuntimeError, match='pooled 2x2 is not the output'):
        ops.binary_conv2d(**args, residual=residual, pool_residual=True)
    with pytest.raises(RuntimeError, match='channels_last memory'):
        ops.binary_conv2d(**args, out=torch.empty(2, 64, 6, 6))
    with pytest.raises(RuntimeError, match='single memory location'):
        ops.binary_conv2d(**args, residual=residual, out=residual)
    with pytest.raises(RuntimeError, match='not divisible by pack_groups'):
        fused.binary_conv2d_pack(**args, pack_groups=3)
    with pytest.raises(RuntimeError, match='expected shape'):
        fused.binary_conv2d_pack(
            **args,
            pack_groups=1,
            packed_out=torch.zeros(2, 6, 6, 2, dtype=torch.uint64))


@pytest.mark.parametrize('channels_last_input', [False, True])
def test_rprelu_pack_bitwise(path, channels_last_input):
    gen = torch.Generator().manual_seed(2)
    c, groups = 24, 2
    x = torch.randn(2, c, 9, 11, generator=gen)
    x[0, :, 0, 0] = 0.
    if channels_last_input:
        x = channels_last(x)
    act = RPReLU(c)
    with torch.no_grad():
        for p in act.parameters():
            p.copy_(torch.randn(c, generator=gen))
    params = (act.bias_in.detach(), act.weight.detach(), act.bias_out.detach())
    pack_bias = torch.randn(c, generator=gen)
    out, packed = fused.rprelu_pack(x, params, groups, pack_bias)
    ref_out, ref_packed = fused.rprelu_pack_ref(x, params, groups, pack_bias)
    assert out.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.equal(out, act(x))
    assert torch.equal(out, ref_out)
    assert torch.equal(packed.view(torch.int64), ref_packed.view(torch.int64))
    with pytest.raises(RuntimeError, match='not divisible by pack_groups'):
        fused.rprelu_pack(x, params, 5)


def block_case(gen, cin, cout, k, groups, stride, hw, batch):
    """A block's packed input, float input and both convs (blocked for the
    kernels, canonical for the reference)."""

    def conv(c_in, c_out, kernel, g, s):
        weight = ops.pack_weight(
            torch.randn(c_out, c_in // g, kernel, kernel, generator=gen), g)
        params = dict(
            in_channels=c_in,
            out_channels=c_out,
            stride=s,
            padding=kernel // 2,
            groups=g,
            scale=torch.rand(c_out, generator=gen),
            bias=torch.randn(c_out, generator=gen),
            act=(torch.randn(c_out,
                             generator=gen), torch.rand(c_out, generator=gen),
                 torch.randn(c_out, generator=gen)))
        return (fused.BinaryConvParams(ops.block_weight(weight, g), **params),
                fused.BinaryConvParams(weight, **params))

    x = channels_last(torch.randn(batch, cin, hw, hw, generator=gen))
    shift = torch.randn(cin, generator=gen) * 0.3
    return (ops.pack_activation(x, groups,
                                shift), x, conv(cin, cin, k, groups, stride),
            conv(cin, cout, 1, 1, 1), torch.randn(cin, generator=gen) * 0.3)


# (C_in, C_out, k, groups, stride, hw, batch, pack_groups)
BLOCKS = [
    (48, 48, 3, 1, 1, 20, 1, 2),
    (48, 96, 3, 2, 2, 22, 2, 4),
    (96, 192, 5, 4, 1, 6, 1, 0),
    (64, 64, 3, 8, 2, 8, 1, 1),
    (24, 40, 3, 3, 1, 17, 1, 2),
    (20, 36, 3, 2, 1, 9, 2, 3),
]


@pytest.mark.parametrize('case', BLOCKS)
def test_binary_block_bitwise(path, case):
    """One call per block (row buffers where rows suffice, else two passes
    inside the call) equals the two unfused convolutions, at 1-3 threads.
    """
    cin, cout, k, groups, stride, hw, batch, pack_groups = case
    gen = torch.Generator().manual_seed(cin * hw + k)
    x_packed, x, (conv1, ref1), (conv2, ref2), sign2 = block_case(
        gen, cin, cout, k, groups, stride, hw, batch)
    pack_bias = torch.randn(cout, generator=gen) * 0.3 if pack_groups else None
    ref_out, ref_packed = fused.binary_block_ref(x_packed, x, ref1, ref2,
                                                 sign2, stride == 2,
                                                 pack_groups, pack_bias)
    threads = torch.get_num_threads()
    try:
        for t in (1, 2, 3):
            torch.set_num_threads(t)
            out, packed = fused.binary_block(x_packed, x, conv1, conv2, sign2,
                                             stride == 2, pack_groups,
                                             pack_bias)
            assert torch.equal(out, ref_out), t
            assert out.is_contiguous(memory_format=torch.channels_last)
            if pack_groups:
                assert torch.equal(
                    packed.view(torch.int64), ref_packed.view(torch.int64))
            else:
                assert packed is None
    finally:
        torch.set_num_threads(threads)
    if pack_groups:  # into given buffers, garbage in the padding bits
        out = channels_last(torch.full_like(ref_out, float('nan')))
        packed = torch.full_like(ref_packed.view(torch.int64),
                                 -1).view(torch.uint64)
        got = fused.binary_block(x_packed, x, conv1, conv2, sign2, stride == 2,
                                 pack_groups, pack_bias, out, packed)
        assert got[0].data_ptr() == out.data_ptr()
        assert got[1].data_ptr() == packed.data_ptr()
        assert torch.equal(out, ref_out)
        assert torch.equal(
            packed.view(torch.int64), ref_packed.view(torch.int64))


# (C_in, k, groups, stride, hw, batch, compacted): channels per group from 8
# to 56 (20: compacted in chunks of 24 bits, its weight blocks' width), k 3
# and 5, strides 1 and 2, maps with and without interior pixels; 64 per
# group and k = 7 are not compacted.
COMPACT_BLOCKS = [
    (8, 3, 1, 1, 9, 2, True),
    (32, 3, 2, 2, 12, 1, True),
    (48, 3, 1, 1, 11, 2, True),
    (96, 5, 2, 1, 8, 1, True),
    (72, 3, 3, 2, 10, 2, True),
    (112, 5, 2, 2, 14, 1, True),
    (40, 3, 2, 1, 9, 2, True),
    (40, 3, 2, 1, 2, 1, True),
    (40, 3, 2, 1, 1, 2, True),
    (64, 3, 1, 1, 6, 1, False),
    (48, 7, 2, 1, 9, 1, False),
]


@pytest.mark.parametrize('case', COMPACT_BLOCKS)
def test_block_chain_compacted_taps_bitwise(path, case):
    """A block chain with the k×k taps compacted gives the reference block's
    bits at 1-3 threads, and says which blocks it compacted."""
    cin, k, groups, stride, hw, batch, compacted = case
    gen = torch.Generator().manual_seed(cin * hw + k + stride)
    x_packed, x, (conv1, ref1), (conv2, ref2), sign2 = block_case(
        gen, cin, 2 * cin, k, groups, stride, hw, batch)
    ref_out, _ = fused.binary_block_ref(x_packed, x, ref1, ref2, sign2,
                                        stride == 2)
    args = fused.binary_block_args(conv1, conv2, sign2, stride == 2)
    chain = fused.block_chain([args])
    assert chain.compacted() == [compacted]
    assert fused.block_chain([args], compact_taps=False).compacted() == [False]
    threads = torch.get_num_threads()
    try:
        for t in (1, 2, 3):
            torch.set_num_threads(t)
            assert torch.equal(chain.run(x_packed, x, [0])[0], ref_out), t
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize('cin,groups', [(48, 2), (24, 1)])
def test_pooled_block_output_bitwise(path, cin, groups):
    """A block asked for its output's 2x2 average pool (the shortcut of a
    stride-2 block next) writes F.avg_pool2d of its output, bit for bit,
    and the same packed signs; a chain pools where a stride-2 block
    follows a block whose output is not kept, with the same result, at 1-3
    threads. (24 -> 48: the second conv's shortcut wraps its channels.)"""
    gen = torch.Generator().manual_seed(cin)
    x_packed, x, convs1, convs2, sign2 = block_case(gen, cin, 48, 3, groups, 1,
                                                    12, 2)
    down = block_case(gen, 48, 96, 3, 2, 2, 12, 2)
    shift = torch.randn(48, generator=gen) * 0.3  # the stride-2 RSign's
    first = fused.binary_block_args(convs1[0], convs2[0], sign2, False, 2,
                                    shift)
    second = fused.binary_block_args(down[2][0], down[3][0], down[4], True)
    ext = fused.load_ext()
    threads = torch.get_num_threads()
    try:
        for t in (1, 2, 3):
            torch.set_num_threads(t)
            out, packed = ext.binary_block(x_packed, x, *first)
            pooled, pooled_packed = ext.binary_block(
                x_packed, x, *first, pool_output=True)
            assert pooled.shape == (2, 48, 6, 6)
            assert torch.equal(pooled, F.avg_pool2d(out, 2)), t
            assert torch.equal(
                pooled_packed.view(torch.int64), packed.view(torch.int64))
            expected = ext.binary_block(packed, out, *second)[0]
            chain = fused.block_chain([first, second])
            assert torch.equal(chain.run(x_packed, x, [1])[0], expected), t
            kept = chain.run(x_packed, x, [0, 1])
            assert torch.equal(kept[0], out) and torch.equal(kept[1], expected)
    finally:
        torch.set_num_threads(threads)
    odd = block_case(gen, cin, 48, 3, groups, 1, 11, 1)
    with pytest.raises(RuntimeError, match='pool_output needs an even'):
        ext.binary_block(odd[0], odd[1], *first, pool_output=True)


def test_binary_block_errors():
    gen = torch.Generator().manual_seed(5)
    x_packed, x, (conv1, _), (conv2,
                              _), sign2 = block_case(gen, 16, 16, 3, 1, 1, 6,
                                                     1)
    with pytest.raises(RuntimeError, match='must be 1x1 with groups 1'):
        fused.binary_block(x_packed, x, conv1, conv1._replace(in_channels=16),
                           sign2)
    with pytest.raises(RuntimeError, match='block input must be'):
        fused.binary_block(x_packed, x[0], conv1, conv2, sign2)
    with pytest.raises(RuntimeError, match='single memory location'):
        fused.binary_block(x_packed, x, conv1, conv2, sign2, out=x)
