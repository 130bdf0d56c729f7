"""One ``to_static(**choice)`` contract for every dynamic op."""
import pytest
import torch

from nasbnn_mm.models import SuperSeparableBlock, SuperStem
from nasbnn_mm.models.layers import (DynamicBatchNorm2d, DynamicBinaryConv2d,
                                     DynamicLinear, DynamicLSQConv2d,
                                     DynamicMixin, DynamicRPReLU, DynamicRSign)
from nasbnn_mm.nas import LayerSpec

# (op, input shape, forward without choices). Ops whose forward takes a
# spec get the largest one.
OPS = {
    'binary_conv':
    (lambda: DynamicBinaryConv2d(8, 12, [3, 5], [1, 2]), (2, 8, 6, 6), None),
    'lsq_conv': (lambda: DynamicLSQConv2d(3, 8, 3), (2, 3, 6, 6), None),
    'batch_norm': (lambda: DynamicBatchNorm2d(8), (2, 8, 3, 3), None),
    'rsign': (lambda: DynamicRSign(8), (2, 8, 3, 3), None),
    'rprelu': (lambda: DynamicRPReLU(8), (2, 8, 3, 3), None),
    'linear': (lambda: DynamicLinear(8, 4), (2, 8), None),
    'super_stem':
    (lambda: SuperStem(3, 8, 3, 2, True), (2, 3, 8, 8), LayerSpec(8, 3, 1)),
    'super_block': (lambda: SuperSeparableBlock(8, 12, [3, 5], [1, 2], 2, True,
                                                True, 'cyclic'), (2, 8, 8, 8),
                    LayerSpec(12, 5, 1)),
}


@pytest.mark.parametrize('name', sorted(OPS))
def test_to_static_defaults_to_the_largest_setting(name):
    build, shape, layer = OPS[name]
    torch.manual_seed(0)
    op = build().eval()
    assert isinstance(op, DynamicMixin)
    x = torch.randn(shape)
    with torch.no_grad():
        expected = op(x) if layer is None else op(x, layer)
    static = op.to_static()
    assert not static.training
    torch.testing.assert_close(static(x), expected, atol=1e-5, rtol=0)
    # every choice by name gives the same static op
    named = op.to_static(**op.largest_choice())
    for a, b in zip(static.state_dict().values(), named.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize('name', sorted(OPS))
def test_unknown_choice_is_named(name):
    op = OPS[name][0]()
    allowed = ', '.join(op.largest_choice())
    with pytest.raises(
            ValueError,
            match=rf"{type(op).__name__}\.to_static: unknown choice "
            rf"'width'; allowed: {allowed}$"):
        op.to_static(width=4)


def test_static_op_takes_the_mode_of_the_dynamic_op():
    bn = DynamicBatchNorm2d(8)
    assert bn.to_static(channels=4).training
    assert not bn.eval().to_static(channels=4).training
