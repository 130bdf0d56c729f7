"""PackedNASBNN equals the float subnet on sizes that are not multiples of 32.
"""
import pytest
import torch
import torch.nn as nn
from test_packed_nasbnn import ARCH, SPACE

from nasbnn_mm.deploy import pack_nasbnn
from nasbnn_mm.models import NASBNN
from nasbnn_mm.testing import trained_like


@pytest.mark.parametrize('size', [(33, 47), (47, 33), (37, 65)])
@pytest.mark.parametrize('reference', [False, True])
def test_packed_equals_float_on_odd_sizes(size, reference):
    torch.manual_seed(0)
    backbone = trained_like(NASBNN(ARCH, SPACE, out_indices=(0, 1, 2)), 0)
    fc = nn.Linear(128, 10)
    packed = pack_nasbnn(backbone, fc)
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = backbone(x)
        outs = packed(x, reference=reference)
        logits = packed.logits(x, reference=reference)
        float_logits = fc(expected[-1].mean((2, 3)))
    h, w = size
    # Stem stride 2, then stages of stride 1, 2, 2: every stride rounds up.
    sizes = [(-(-h // d), -(-w // d)) for d in (2, 4, 8)]
    assert [tuple(o.shape[2:]) for o in outs] == sizes
    for out, ref in zip(outs, expected):
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-4)
    torch.testing.assert_close(logits, float_logits, rtol=0, atol=1e-4)


def test_channels_last_outputs_same_values_no_copy():
    backbone = trained_like(NASBNN(ARCH, SPACE, out_indices=(0, 1, 2)), 0)
    contiguous = pack_nasbnn(backbone)
    channels_last = pack_nasbnn(backbone, channels_last_outputs=True)
    x = torch.randn(1, 3, 33, 47, generator=torch.Generator().manual_seed(2))
    for a, b in zip(contiguous(x), channels_last(x)):
        assert a.is_contiguous()
        assert b.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(a, b)
