"""``bi_transform`` modes of DynamicBinaryConv2d against the official rule.

The reference below is the official NAS-BNN formula written from its
description (``DynamicBinConv2d.get_active_filter`` and ``fp2bin_filter``):
smaller kernels are center crops pushed through the ``matrix_<K>to<k>``
chain of the untransformed weight; ``fp2bin_<K>`` (applied as ``w @ M.T``)
transforms the active weight only when its kernel is the largest one; then
``(w - mean) / std`` (unbiased) and ``mean|w_n| * sign(w_n)``.
"""
import pytest
import torch
import torch.nn.functional as F

from nasbnn_mm.models.backbones import SuperBNN
from nasbnn_mm.models.layers import DynamicBinaryConv2d


def _official_weight(weight, matrices, fp2bin, ks_list, out_channels,
                     in_channels, k):
    """Binary weight of the official rule for a prefix (groups 1) slice."""
    w = weight[:out_channels, :in_channels]
    big = max(ks_list)
    src = big
    for target in sorted(ks_list, reverse=True)[1:]:
        if src <= k:
            break
        start = (src - target) // 2
        crop = w[:, :, start:start + target, start:start + target]
        w = F.linear(crop.flatten(2), matrices[f'{src}to{target}'])
        w = w.view(out_channels, in_channels, target, target)
        src = target
    if k == big and k > 1:
        w = F.linear(w.flatten(2), fp2bin).view_as(w)
    mean = w.mean(dim=(1, 2, 3), keepdim=True)
    std = w.std(dim=(1, 2, 3), keepdim=True)
    wn = (w - mean) / std
    alpha = wn.abs().mean(dim=(1, 2, 3), keepdim=True)
    return alpha * torch.sign(wn)


@pytest.mark.parametrize('ks_list', [[3], [3, 5], [3, 5, 7]])
def test_max_kernel_mode_equals_official_formula(ks_list):
    torch.manual_seed(0)
    conv = DynamicBinaryConv2d(
        8, 12, ks_list, weight_norm='official', bi_transform='max_kernel')
    big = max(ks_list)
    assert [k for k, _ in conv.named_parameters()
            if 'bi_' in k] == [f'bi_transforms.{big}.theta']
    fp2bin = torch.eye(big * big) + 0.2 * torch.randn(big * big, big * big)
    matrices = {}
    with torch.no_grad():
        # the converter's rule: theta = fp2bin.T
        conv.bi_transforms[str(big)].theta.copy_(fp2bin.T)
        for name, m in conv.kernel_transforms.items():
            m.matrix.add_(0.2 * torch.randn_like(m.matrix))
            matrices[name] = m.matrix.detach().clone()
    x = torch.randn(2, 6, 9, 9)
    for k in ks_list:
        expected = F.conv2d(
            x,
            _official_weight(conv.weight.detach(), matrices, fp2bin, ks_list,
                             10, 6, k),
            padding=k // 2)
        torch.testing.assert_close(
            conv(x, 10, k, 1), expected, atol=1e-4, rtol=1e-5)
        static = conv.to_static(in_channels=6, out_channels=10, kernel_size=k)
        torch.testing.assert_close(static(x), expected, atol=1e-4, rtol=1e-5)


def test_per_kernel_mode_keeps_one_theta_per_kernel():
    conv = DynamicBinaryConv2d(8, 8, [3, 5], bi_transform=True)
    assert sorted(conv.bi_transforms) == ['3', '5']
    assert not any('bi_' in k for k, _ in DynamicBinaryConv2d(
        8, 8, [3, 5], bi_transform=False).named_parameters())
    assert len(
        DynamicBinaryConv2d(8, 8, 1,
                            bi_transform='max_kernel').bi_transforms) == 0


def test_max_kernel_small_kernel_trains_no_theta():
    conv = DynamicBinaryConv2d(8, 8, [3, 5], bi_transform='max_kernel')
    conv(torch.randn(2, 8, 6, 6), 8, 3, 1).pow(2).sum().backward()
    assert conv.bi_transforms['5'].theta.grad is None
    conv(torch.randn(2, 8, 6, 6), 8, 5, 1).pow(2).sum().backward()
    assert conv.bi_transforms['5'].theta.grad.abs().sum() > 0


@pytest.mark.parametrize('value', ['max', 1, None])
def test_bad_bi_transform(value):
    with pytest.raises(ValueError, match='bi_transform: .* not in'):
        DynamicBinaryConv2d(8, 8, 3, bi_transform=value)


def test_supernet_theta_keys_follow_the_mode():
    per_kernel = SuperBNN('nasbnn_in1k', bi_transform=True).state_dict()
    official = SuperBNN('nasbnn_in1k', bi_transform='max_kernel').state_dict()
    theta = [k for k in official if '.bi_transforms.' in k]
    # one theta per k x k conv (3 + 3 + 3 + 9 + 3), for the largest kernel:
    # 3 in stage 0 (kernels [3]), 5 elsewhere (kernels [3, 5])
    assert len(theta) == 21
    for key in theta:
        big = '3' if key.startswith('stages.0.') else '5'
        assert key.endswith(f'.conv1.bi_transforms.{big}.theta'), key
    assert set(theta) < set(per_kernel)
    assert len([k for k in per_kernel if '.bi_transforms.' in k]) == 21 + 18
