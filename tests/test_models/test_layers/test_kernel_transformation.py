import torch
import torch.nn.functional as F

from nasbnn_mm.models.layers import KernelTransformation, center_crop_kernel


def test_center_crop_is_a_view():
    w = torch.randn(4, 2, 7, 7)
    crop = center_crop_kernel(w, 3)
    assert crop.shape == (4, 2, 3, 3)
    assert crop.data_ptr() == w[:, :, 2:5, 2:5].data_ptr()
    assert torch.equal(crop, w[:, :, 2:5, 2:5])


def test_identity_init_equals_center_crop():
    w = torch.randn(4, 2, 5, 5)
    assert torch.equal(KernelTransformation(5, 3)(w), w[:, :, 1:4, 1:4])


def test_matrix_applied_as_in_ofa():
    torch.manual_seed(0)
    m = KernelTransformation(5, 3)
    with torch.no_grad():
        m.matrix.normal_()
    w = torch.randn(4, 2, 5, 5)
    crop = w[:, :, 1:4, 1:4].reshape(4, 2, 9)
    expected = F.linear(crop, m.matrix).reshape(4, 2, 3, 3)
    torch.testing.assert_close(m(w), expected)
    m(w).sum().backward()
    assert m.matrix.grad.abs().sum() > 0
