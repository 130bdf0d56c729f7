"""PackedNASBNN equals the float subnet on sizes that are not multiples of 32.
"""
import pytest
import torch
import torch.nn as nn

from nasbnn_mm.deploy import pack_nasbnn
from nasbnn_mm.models import NASBNN

SPACE = 'nasbnn_digits'
# Strides 1/2, kernels 3/5, groups 1/2/4, widening shortcuts.
ARCH = dict(
    stem='c16_k3_g1',
    stages=[['c24_k3_g1', 'c32_k3_g1'], ['c64_k5_g2', 'c64_k3_g1'],
            ['c96_k5_g4', 'c128_k3_g2']])


@torch.no_grad()
def trained_like(model: NASBNN, seed: int) -> NASBNN:
    """Non-trivial BN statistics and RSign/RPReLU shifts (no exact sign
    ties), LSQ steps initialised on an image-like batch; eval mode."""
    gen = torch.Generator().manual_seed(seed)

    def uniform(t, low, high):
        t.copy_(torch.rand(t.shape, generator=gen) * (high - low) + low)

    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            uniform(module.running_mean, -1, 1)
            uniform(module.running_var, 0.5, 2)
            uniform(module.weight, 0.5, 1.5)
            uniform(module.bias, -0.5, 0.5)
    for name, param in model.named_parameters():
        if 'bias' in name and '.bn' not in name:
            uniform(param, -0.3, 0.3)
    model.eval()
    model(torch.randn(2, 3, 32, 32, generator=gen))
    return model


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
