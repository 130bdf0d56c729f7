"""PackedNASBNN's folded 8-bit stem and its cached kernel arguments."""
import copy

import pytest
import torch
import torch.nn as nn

from nasbnn_mm.deploy import pack_nasbnn
from nasbnn_mm.deploy.packed_layers import PackedSeparableBlock
from nasbnn_mm.deploy.packed_stem import fold_quantized_stem
from nasbnn_mm.models import NASBNN
from nasbnn_mm.ops import fused as ops
from nasbnn_mm.ops import quantized_stem_ref
from nasbnn_mm.testing import trained_like

SPACE = 'nasbnn_digits'
ARCH = dict(
    stem='c16_k3_g1',
    stages=[['c24_k3_g1', 'c32_k3_g1'], ['c64_k5_g2', 'c64_k3_g1'],
            ['c96_k5_g4', 'c128_k3_g2']])


def float_model(seed: int, **kwargs) -> NASBNN:
    torch.manual_seed(seed)
    return trained_like(NASBNN(ARCH, SPACE, **kwargs), seed).eval()


def images(seed: int, size: int = 32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, size, size, generator=gen)


@torch.no_grad()
def test_folded_stem_matches_float_stem():
    """Integer codes times the folded steps and BN = the float stem up to
    float rounding; the codes are the float quantizer's."""
    stem = float_model(0).stem
    for size in (32, 29):
        x = images(size, size)
        params = fold_quantized_stem(stem, x)
        quant = stem.conv.input_quantizer
        codes = quant(x) / quant.effective_step(x)
        assert torch.equal(codes.round(), (x / params.step).clamp(-128,
                                                                  127).round())
        torch.testing.assert_close(
            quantized_stem_ref(x, params)[0], stem(x), rtol=1e-5, atol=1e-5)


def test_stem_without_input_quantizer_folds_on_the_float_input():
    """The official code's stem (float input, 8-bit weights) folds too:
    close to the float stem, and the packed model to the float model."""
    backbone = float_model(1, stem_quantize_input=False)
    x = images(0)
    params = fold_quantized_stem(backbone.stem, x)
    assert params.step is None
    with torch.no_grad():
        torch.testing.assert_close(
            quantized_stem_ref(x, params)[0],
            backbone.stem(x),
            rtol=1e-5,
            atol=1e-5)
    fc = nn.Linear(128, 10)
    packed = pack_nasbnn(backbone, fc)
    x = images(1)
    logits = packed.logits(x)
    with torch.no_grad():
        expected = fc(backbone(x)[-1].mean((2, 3)))
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-4)
    assert torch.equal(packed.logits(x, reference=True), logits)


def test_cached_kernel_arguments_follow_every_change():
    """After each kind of change the kernels still give the reference
    ops' output (a stale cache would not)."""
    packed = pack_nasbnn(float_model(2))
    x = images(2)

    def check():
        outs, refs = packed(x), packed(x, reference=True)
        for out, ref in zip(outs, refs):
            assert torch.equal(out, ref)
        return outs[-1]

    first = check()
    # built once: forwards reuse the cached arguments
    plan = packed._kernels.block_plan(packed.stages)
    packed(x)
    assert packed._kernels.block_plan(packed.stages) is plan
    # new weights through load_state_dict (float keys, packed on the fly)
    packed.load_state_dict(float_model(3).state_dict())
    assert not torch.equal(check(), first)
    expected = pack_nasbnn(float_model(3))(x)[-1]
    assert torch.equal(packed(x)[-1], expected)
    # in place: a folded scale, the weight bits, an RSign shift
    block = packed.stages[0][0]
    block.conv2.scale.mul_(-1)
    check()
    block.conv1.weight_bits.copy_(
        block.conv1.weight_bits.view(torch.int64).bitwise_not().view(
            torch.uint64))
    check()
    packed.stages[1][1].sign1.bias.add_(0.5)
    check()
    # a replaced block, a replaced buffer
    packed.stages[1][0] = PackedSeparableBlock.from_float(
        float_model(4).stages[1][0])
    check()
    packed.stages[2][1].conv2.bias = torch.randn(128)
    check()


def test_batch_chunks_give_the_whole_batch_result():
    """A batch split into chunks of images (CHUNK_BYTES) gives the
    one-pass and the reference result, channels_last as before."""
    packed = pack_nasbnn(float_model(5))
    packed.out_indices = (0, 1, 2)
    packed.channels_last_outputs = True
    x = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    whole = packed(x)
    packed.CHUNK_BYTES = 1  # one image per chunk
    chunked = packed(x)
    for a, b, ref in zip(whole, chunked, packed(x, reference=True)):
        assert torch.equal(a, b) and torch.equal(a, ref)
        assert b.is_contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def test_block_chain_equals_the_per_block_calls():
    """One BlockChain call gives every requested stage's output bit for
    bit as the per-block calls; sizes a stride-2 block meets odd take the
    per-block path."""
    packed = pack_nasbnn(float_model(6))
    x = images(6)
    kernels = packed._kernels
    for indices in ((0, 1, 2), (2, ), (1, )):
        stem = packed._kernels.stem_params(packed.stem, x)
        chained = packed._forward_kernels(x, indices, stem)
        assert kernels.chain_outputs(packed.stages, 16, 16,
                                     indices) == [[1, 3, 5][i]
                                                  for i in indices]
        kernels.chain_outputs = lambda *args: None  # the per-block loop
        try:
            per_block = packed._forward_kernels(x, indices, stem)
        finally:
            del kernels.chain_outputs
        assert len(chained) == len(per_block) == len(indices)
        for a, b in zip(chained, per_block):
            assert torch.equal(a, b)
    assert kernels.chain_outputs(packed.stages, 15, 16, (2, )) is None
    assert kernels.chain_outputs(packed.stages, 16, 24, (2, )) == [5]
    # 7 columns at a stride-2 block
    assert kernels.chain_outputs(packed.stages, 16, 14, (2, )) is None
    with pytest.raises(RuntimeError, match='keep must be increasing'):
        kernels.chain.run(
            torch.zeros(1, dtype=torch.uint64), torch.zeros(1), [3, 1])
    with pytest.raises(RuntimeError, match='binary_block_args'):
        ops.block_chain([(1, 2)])


@torch.no_grad()
def test_folded_stem_follows_stem_changes():
    """The folded stem is cached; an in-place change of a stem buffer, a
    replaced stem parameter and a new image size refold it (the output
    equals a fresh fold's)."""
    packed = pack_nasbnn(float_model(7))
    x = images(7)

    def fresh(inputs):
        twin = copy.deepcopy(packed)  # a new, empty kernel cache
        return twin(inputs)[-1]

    before = packed(x)[-1]
    packed.stem.bn.running_mean.add_(0.5)
    after = packed(x)[-1]
    assert not torch.equal(after, before)
    assert torch.equal(after, fresh(x))
    packed.stem.act.weight = nn.Parameter(packed.stem.act.weight * -2)
    assert torch.equal(packed(x)[-1], fresh(x))
    bigger = images(8, size=40)
    assert torch.equal(packed(bigger)[-1], fresh(bigger))


def test_tensor_watch_sees_moves_and_in_place_writes():
    a, b = torch.zeros(3), torch.ones(2)
    watch = ops.tensor_watch([a, b])
    assert len(watch) == 2 and not watch.changed()
    b.add_(1)
    assert watch.changed()
    watch = ops.tensor_watch([a, b])
    a.data = torch.zeros(3)  # another storage, no write
    assert watch.changed()
    assert not ops.tensor_watch([]).changed()


@torch.no_grad()
def test_folded_stem_refolds_on_a_replaced_submodule():
    """A stem submodule replaced by one with other weights (its old
    tensors untouched) refolds the stem."""
    packed = pack_nasbnn(float_model(9))
    x = images(9)
    before = packed(x)[-1]
    bn = copy.deepcopy(packed.stem.bn)
    bn.running_var.mul_(4)
    packed.stem.bn = bn
    after = packed(x)[-1]
    assert not torch.equal(after, before)
    assert torch.equal(after, copy.deepcopy(packed)(x)[-1])


@torch.no_grad()
def test_logits_in_one_call_follow_every_change(monkeypatch):
    """The second logits call on inputs of a shape runs in one extension
    call (no Python forward); after each kind of change its logits still
    equal the reference ops' (a stale call would not)."""
    backbone = float_model(11)
    torch.manual_seed(11)
    packed = pack_nasbnn(backbone, nn.Linear(128, 10))
    x = images(11)

    def check():
        logits = packed.logits(x)
        assert torch.equal(logits, packed.logits(x, reference=True))
        return logits

    first = check()
    forward = packed._stages
    monkeypatch.setattr(packed, '_stages', None)  # the Python forward
    assert torch.equal(packed.logits(x), first)
    monkeypatch.setattr(packed, '_stages', forward)
    # another batch size and image size
    assert check().shape == (2, 10)
    packed.logits(torch.cat([x, x]))
    assert torch.equal(packed.logits(torch.cat([x, x]))[2:], first)
    packed.logits(images(12, size=40))
    assert torch.equal(check(), first)
    # the stem: a buffer in place, a replaced parameter, a forward that
    # refolds it first
    packed.stem.bn.running_mean.add_(0.5)
    assert not torch.equal(check(), first)
    packed.stem.act.weight = nn.Parameter(packed.stem.act.weight * -2)
    check()
    packed.stem.bn.running_var.mul_(2)
    packed(x)
    check()
    # the blocks: weight bits in place, a replaced buffer and block
    conv = packed.stages[0][1].conv1
    conv.weight_bits.copy_(
        conv.weight_bits.view(torch.int64).bitwise_not().view(torch.uint64))
    check()
    packed.stages[2][1].conv2.bias = torch.randn(128)
    check()
    packed.stages[1][0] = PackedSeparableBlock.from_float(
        float_model(4).stages[1][0])
    check()
    # the classifier: in place, replaced
    packed.fc.bias.add_(1)
    check()
    packed.fc = nn.Linear(128, 3)
    assert check().shape == (2, 3)
