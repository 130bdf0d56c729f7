"""The channels_last RoIAlign against torchvision's and MMCV's CPU ops."""
import pytest
import torch
from torchvision.ops import roi_align

from nasbnn_mm.ops import roi_align_nhwc

pytest.importorskip('nasbnn_mm._ext')


def random_rois(n, h, w, stride, k=60, seed=0):
    """(K, 5) RoIs over an (h * stride) x (w * stride) image, some outside
    it, some empty, some covering it."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(k, 2, generator=g) * torch.tensor([w, h]) * stride
    wh = torch.rand(k, 2, generator=g) * 30 * stride
    wh[:3] = 0  # empty boxes
    rois = torch.cat([
        torch.randint(0, n,
                      (k, 1), generator=g).float(), xy - 2 * stride, xy + wh
    ], 1)
    rois[3, 1:] = torch.tensor([-40., -40, w * stride + 40, h * stride + 40])
    return rois


@pytest.mark.parametrize('n, c, h, w', [(2, 64, 13, 21), (1, 5, 1, 3)])
@pytest.mark.parametrize('sampling_ratio, aligned', [(0, True), (2, True),
                                                     (0, False)])
def test_roi_align_nhwc_equals_torchvision(n, c, h, w, sampling_ratio,
                                           aligned):
    x = torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(1))
    rois = random_rois(n, h, w, stride=8)
    expected = roi_align(x, rois, (7, 7), 0.125, sampling_ratio, aligned)
    for memory_format in (torch.channels_last, torch.contiguous_format):
        out = roi_align_nhwc(
            x.contiguous(memory_format=memory_format), rois, (7, 7), 0.125,
            sampling_ratio, aligned)
        assert out.is_contiguous()
        assert torch.equal(out, expected)  # same float ops, same order


def test_roi_align_nhwc_equals_mmcv():
    mmcv_ops = pytest.importorskip('mmcv.ops')
    x = torch.randn(1, 32, 25, 17, generator=torch.Generator().manual_seed(2))
    rois = random_rois(1, 25, 17, stride=4, seed=3)
    expected = mmcv_ops.RoIAlign((7, 5), 0.25, 0, 'avg', True)(x, rois)
    out = roi_align_nhwc(
        x.contiguous(memory_format=torch.channels_last), rois, (7, 5), 0.25)
    assert torch.equal(out, expected)


def test_roi_align_nhwc_no_rois():
    x = torch.randn(2, 6, 8, 8).contiguous(memory_format=torch.channels_last)
    out = roi_align_nhwc(x, torch.zeros(0, 5), (7, 7), 1.)
    assert out.shape == (0, 6, 7, 7)


def test_roi_align_nhwc_rejects_bad_rois():
    x = torch.randn(1, 4, 8, 8)
    with pytest.raises(RuntimeError, match=r'rois must be \(K, 5\)'):
        roi_align_nhwc(x, torch.zeros(3, 4), (7, 7), 1.)
    with pytest.raises(RuntimeError, match='batch index 1 outside'):
        roi_align_nhwc(x, torch.tensor([[1., 0, 0, 4, 4]]), (7, 7), 1.)
