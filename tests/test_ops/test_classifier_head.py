"""classifier_head: pooling + fully connected layer in one fixed order."""
import pytest
import torch
import torch.nn.functional as F

from nasbnn_mm.ops.head import (classifier_head, classifier_head_ref,
                                head_weight_blocks)

CASES = [
    # N, C, H, W, O
    (1, 768, 7, 7, 1000),  # NAS-BNN-A's head
    (5, 40, 3, 5, 17),  # 4 + 1 images, partial channel and output vectors
    (2, 7, 1, 1, 3),  # fewer channels and outputs than a vector
    (9, 96, 2, 2, 300),  # two image tiles and one left over, many outputs
]


def head_case(gen, n, c, h, w, o):
    feat = torch.randn(n, c, h, w, generator=gen)
    weight = torch.randn(o, c, generator=gen)
    bias = torch.randn(o, generator=gen)
    return feat.contiguous(memory_format=torch.channels_last), weight, bias


@pytest.mark.parametrize('threads', [1, 2])
@pytest.mark.parametrize('case', CASES)
def test_classifier_head_bitwise(path, case, threads):
    """Kernels = reference, bit for bit, on every path and thread count;
    within float rounding of adaptive_avg_pool2d + linear."""
    gen = torch.Generator().manual_seed(sum(case))
    feat, weight, bias = head_case(gen, *case)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out = classifier_head(feat, head_weight_blocks(weight), bias)
    finally:
        torch.set_num_threads(before)
    ref = classifier_head_ref(feat, weight, bias)
    assert torch.equal(out, ref)
    aten = F.linear(F.adaptive_avg_pool2d(feat, 1).flatten(1), weight, bias)
    torch.testing.assert_close(out, aten, rtol=1e-5, atol=1e-5)
    # a contiguous (not channels_last) map gives the same bits
    same = classifier_head(feat.contiguous(), head_weight_blocks(weight), bias)
    assert torch.equal(same, out)


def test_reference_order_is_one_term_at_a_time():
    """The reference sums from 0 in order: 1 + 1e8 - 1e8 style
    cancellation shows the order (a pairwise sum would keep the 1)."""
    feat = torch.tensor([1.0, 1e8, -1e8]).view(1, 1, 1, 3)
    weight = torch.ones(1, 1)
    out = classifier_head_ref(feat, weight, torch.zeros(1))
    assert out.item() == 0.0  # ((0 + 1) + 1e8) - 1e8 = 0 in float32
    kern = classifier_head(
        feat.contiguous(memory_format=torch.channels_last),
        head_weight_blocks(weight), torch.zeros(1))
    assert torch.equal(kern, out)


def test_head_weight_blocks_layout():
    weight = torch.arange(20 * 3, dtype=torch.float32).view(20, 3)
    blocks = head_weight_blocks(weight)
    assert blocks.shape == (2, 3, 16) and blocks.is_contiguous()
    for o in range(20):
        assert torch.equal(blocks[o // 16, :, o % 16], weight[o])
    assert not blocks[1, :, 4:].any()


def test_classifier_head_errors():
    feat = torch.randn(1, 8, 2,
                       2).contiguous(memory_format=torch.channels_last)
    weight = head_weight_blocks(torch.randn(5, 8))
    with pytest.raises(RuntimeError, match='weight_blocks must be'):
        classifier_head(feat, weight[:, :4], torch.zeros(5))
    with pytest.raises(RuntimeError, match='bias must be'):
        classifier_head(feat, weight, torch.zeros(17))
    with pytest.raises(RuntimeError, match='feat must be'):
        classifier_head(feat.double(), weight, torch.zeros(5))
