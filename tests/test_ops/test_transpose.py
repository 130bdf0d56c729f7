"""nchw_from_nhwc: the tiled layout change of the popcount convolutions'
output (and, inside sign_input_conv2d, of the lookups' output)."""
import pytest
import torch

from nasbnn_mm.ops.training import nchw_from_nhwc


@pytest.mark.parametrize('shape', [(2, 16, 8, 8), (3, 5, 7, 9), (1, 130, 9, 1),
                                   (2, 4, 65, 3), (4, 1536, 2, 2),
                                   (1, 1, 1, 1)])
def test_values_equal_contiguous(shape):
    """Whole 64 x 16 tiles and 4 x 4 blocks, and rows and columns past
    them, move every value to its place."""
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    out = nchw_from_nhwc(x)
    assert out.is_contiguous()
    assert torch.equal(out, x)
    assert out.data_ptr() != x.data_ptr()


def test_rejects_other_layouts():
    with pytest.raises(RuntimeError, match='expected a channels_last'):
        nchw_from_nhwc(torch.randn(2, 3, 4, 5))
    with pytest.raises(RuntimeError, match='expected a channels_last'):
        nchw_from_nhwc(
            torch.randn(2, 3, 4, 5, dtype=torch.float64).contiguous(
                memory_format=torch.channels_last))
