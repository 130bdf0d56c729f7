"""quantized_stem: the fused 8-bit stem against its pure-PyTorch reference."""
import pytest
import torch

from nasbnn_mm.ops import (QuantizedStemParams, quantized_stem,
                           quantized_stem_ref)


def stem_case(gen, batch, cin, cout, k, stride, h, w, quantize=True):
    x = torch.randn(batch, cin, h, w, generator=gen) * 2
    step = None
    if quantize:
        step = float(torch.rand(1, generator=gen) * 0.03 + 0.005)
    codes = torch.randint(-128, 128, (cout, cin, k, k), generator=gen).float()

    def vec(s=1.0):
        return torch.randn(cout, generator=gen) * s

    params = QuantizedStemParams(step, -128, 127, codes, stride, (k - 1) // 2,
                                 vec(1e-4), vec(),
                                 (vec(), vec().abs() * 0.3, vec()))
    return x, params, vec()


CASES = [
    # batch, C_in, C_out, K, stride, H, W, pack groups
    (1, 3, 24, 3, 2, 32, 32, 1),  # NAS-BNN's stem
    (2, 3, 16, 3, 2, 33, 31, 2),  # odd sizes, batch, groups
    (1, 3, 40, 5, 1, 17, 23, 1),  # 5x5, a partial vector of channels
    (1, 1, 72, 3, 2, 20, 20, 8),  # more than 64 channels (two chunks)
    (1, 3, 8, 3, 1, 5, 3, 1),  # fewer columns than a pixel tile
    (1, 3, 96, 3, 2, 14, 10, 2),  # packed in the epilogue, 2 groups
]


@pytest.mark.parametrize('quantize', [True, False])
@pytest.mark.parametrize('case', CASES)
def test_quantized_stem_bitwise(path, case, quantize):
    """Kernels = reference, bit for bit: on the codes of a quantized input
    and on a float input (rounded sums, in the reference's order)."""
    gen = torch.Generator().manual_seed(sum(case))
    *shape, groups = case
    x, params, pack_bias = stem_case(gen, *shape, quantize=quantize)
    if quantize:
        # values on the clamp bounds, rounding ties (x / step = k + 0.5)
        # and -0.0 codes
        x.view(-1)[:4] = torch.tensor([1e3, -1e3, 2.5, -0.2]) * params.step
    out, packed = quantized_stem(x, params, groups, pack_bias)
    ref, ref_packed = quantized_stem_ref(x, params, groups, pack_bias)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, ref)
    assert torch.equal(packed, ref_packed)


def test_quantized_stem_nan_and_unsigned_codes(path):
    """Inputs the 8-bit path (VNNI, codes in [-128, 127]) cannot hold
    take the float path, still bit for bit: a NaN input (NaN outputs where
    its taps reach) and codes in [0, 255]."""
    gen = torch.Generator().manual_seed(3)
    x, params, pack_bias = stem_case(gen, 1, 3, 24, 3, 2, 20, 19)
    x[0, 1, 7, 5] = float('nan')
    out, packed = quantized_stem(x, params, 1, pack_bias)
    ref, ref_packed = quantized_stem_ref(x, params, 1, pack_bias)
    assert out.isnan().any()
    assert torch.equal(out.view(torch.int32), ref.view(torch.int32))
    assert torch.equal(packed, ref_packed)
    unsigned = params._replace(
        q_min=0, q_max=255, weight_codes=params.weight_codes.abs())
    out, packed = quantized_stem(x.nan_to_num(), unsigned, 1, pack_bias)
    ref, ref_packed = quantized_stem_ref(x.nan_to_num(), unsigned, 1,
                                         pack_bias)
    assert torch.equal(out, ref) and torch.equal(packed, ref_packed)


def test_quantized_stem_codes_are_exact():
    """The codes' convolution is exact: doubling every code's weight
    doubles the sums exactly (scale 1, shift 0, identity RPReLU)."""
    gen = torch.Generator().manual_seed(0)
    x, params, _ = stem_case(gen, 1, 3, 16, 3, 2, 16, 16)
    ones, zeros = torch.ones(16), torch.zeros(16)
    ident = params._replace(
        scale=ones,
        shift=zeros,
        act=(zeros, ones, zeros),
        weight_codes=params.weight_codes.clamp(-64, 63))
    out, _ = quantized_stem(x, ident)
    double, _ = quantized_stem(
        x, ident._replace(weight_codes=ident.weight_codes * 2))
    assert torch.equal(double, out * 2)
    assert torch.equal(out, out.round())


def test_codes_over_many_taps_keep_the_reference_order(path):
    """Codes whose sums could pass 2^24 (400 x 3 x 3 taps of 8-bit codes)
    are summed in the reference's order, not with FMA: still bit for
    bit."""
    gen = torch.Generator().manual_seed(2)
    x, params, pack_bias = stem_case(gen, 1, 400, 16, 3, 2, 8, 8)
    # positive codes near the clamp bounds times positive weight codes:
    # partial sums up to ~5.8e7, rounded in float32
    x = x.abs() * 60
    params = params._replace(weight_codes=params.weight_codes.abs().clamp(
        max=127))
    out, packed = quantized_stem(x, params, 1, pack_bias)
    ref, ref_packed = quantized_stem_ref(x, params, 1, pack_bias)
    assert torch.equal(out, ref) and torch.equal(packed, ref_packed)


def test_quantized_stem_errors():
    gen = torch.Generator().manual_seed(1)
    x, params, _ = stem_case(gen, 1, 3, 8, 3, 2, 8, 8)
    bad_codes = params.weight_codes.clone()
    bad_codes[0, 0, 0, 0] = 0.5
    with pytest.raises(RuntimeError, match='integers in \\[-128, 127\\]'):
        quantized_stem(x, params._replace(weight_codes=bad_codes))
    with pytest.raises(RuntimeError, match='positive finite'):
        quantized_stem(x, params._replace(step=0.0))
    with pytest.raises(RuntimeError, match='not divisible by pack_groups'):
        quantized_stem(x, params, pack_groups=3)
