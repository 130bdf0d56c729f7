import random

import pytest
import torch
import torch.nn.functional as F

from nasbnn_mm.models.layers import (BinaryConv2d, DynamicBinaryConv2d,
                                     binary_conv_weight, normalize_weight)

SETTING = ('in_channels', 'out_channels', 'kernel_size', 'groups')


def _perturb_transforms(conv):
    with torch.no_grad():
        for name, p in conv.named_parameters():
            if name != 'weight':
                p.add_(0.1 * torch.randn_like(p))


@pytest.mark.parametrize('group_slicing', ['prefix', 'cyclic'])
def test_dynamic_equals_static_on_random_settings(group_slicing):
    rng = random.Random(0)
    torch.manual_seed(0)
    conv = DynamicBinaryConv2d(
        16, 16, [3, 5, 7], groups=[1, 2, 4], group_slicing=group_slicing)
    _perturb_transforms(conv)
    for _ in range(6):
        groups = rng.choice([1, 2, 4])
        c_in = groups * rng.randint(1, 16 // groups)
        c_out = groups * rng.randint(1, 16 // groups)
        k = rng.choice([3, 5, 7])
        x = torch.randn(2, c_in, 7, 7)
        static = conv.to_static(
            in_channels=c_in, out_channels=c_out, kernel_size=k, groups=groups)
        assert type(static) is BinaryConv2d
        assert static.weight.shape == (c_out, c_in // groups, k, k)
        assert static.bi_transform is None and static.input_sign is None
        out = conv(x, c_out, k, groups)
        assert out.shape == (2, c_out, 7, 7)
        torch.testing.assert_close(static(x), out, atol=1e-5, rtol=0)


def test_prefix_slicing_rule():
    torch.manual_seed(0)
    conv = DynamicBinaryConv2d(
        8, 12, [3, 5], groups=[1, 2], weight_norm=False, stride=2)
    conv.binary_weights = False
    x = torch.randn(1, 6, 9, 9)
    # identity kernel transformation: a plain center crop
    expected = F.conv2d(
        x, conv.weight[:10, :3, 1:4, 1:4], stride=2, padding=1, groups=2)
    torch.testing.assert_close(conv(x, 10, 3, 2), expected)


def test_active_weight_is_a_view():
    conv = DynamicBinaryConv2d(8, 8, [3, 5], groups=[1, 2])
    setting = conv._setting(8, 6, 5, 2)
    w = conv._active_weight(setting, binary=False)
    assert w.data_ptr() == conv.weight.data_ptr()
    assert w.shape == (6, 4, 5, 5)
    conv = DynamicBinaryConv2d(8, 8, [3, 5], bi_transform=False)
    w = conv._active_weight(conv._setting(8, 6, 5, 1), binary=True)
    assert w.data_ptr() == conv.weight.data_ptr()


def test_folded_kernel_map_equals_sequential_transforms():
    torch.manual_seed(0)
    conv = DynamicBinaryConv2d(6, 8, [3, 5, 7])
    _perturb_transforms(conv)
    w = conv.weight[:5, :4]
    seq = conv.kernel_transforms['5to3'](conv.kernel_transforms['7to5'](w))
    seq_binary = conv.bi_transforms['3'](seq)
    setting = conv._setting(4, 5, 3, 1)
    torch.testing.assert_close(conv._active_weight(setting, False), seq)
    torch.testing.assert_close(conv._active_weight(setting, True), seq_binary)
    seq5 = conv.bi_transforms['5'](conv.kernel_transforms['7to5'](w))
    torch.testing.assert_close(
        conv._active_weight(conv._setting(4, 5, 5, 1), True), seq5)


def test_cyclic_slicing_matches_official_rule():
    torch.manual_seed(0)
    conv = DynamicBinaryConv2d(
        12, 12, 3, groups=[2, 4], group_slicing='cyclic', weight_norm=False)
    conv.binary_weights = False
    # weight columns: 12 / 2 = 6; in_channels 12, groups 4 -> 3 per group,
    # ratio 6 // 3 = 2: groups 0, 1, 2, 3 use column blocks 0, 1, 0, 1
    blocks = [
        conv.weight[o * 2:(o + 1) * 2, (o % 2) * 3:(o % 2) * 3 + 3]
        for o in range(4)
    ]
    x = torch.randn(1, 12, 5, 5)
    expected = F.conv2d(x, torch.cat(blocks), padding=1, groups=4)
    torch.testing.assert_close(conv(x, 8, 3, 4), expected)
    # groups 2 fill all 6 columns: a view, same as prefix
    assert conv._setting(12, 8, 3, 2).column_cycle is None


def test_fp_weights_use_normalized_float_weight():
    torch.manual_seed(0)
    conv = DynamicBinaryConv2d(8, 8, [3, 5], groups=[1, 2])
    _perturb_transforms(conv)
    x = torch.randn(1, 8, 6, 6)
    binary_out = conv(x, 8, 3, 2)
    conv.binary_weights = False
    w = conv.kernel_transforms['5to3'](conv.weight[:8, :4])
    expected = F.conv2d(x, normalize_weight(w), padding=1, groups=2)
    torch.testing.assert_close(conv(x, 8, 3, 2), expected)
    assert not torch.allclose(binary_out, expected)


def test_binary_weights_two_values_per_channel():
    conv = DynamicBinaryConv2d(8, 8, [3, 5])
    w = conv._active_weight(conv._setting(8, 6, 3, 1), binary=True)
    wb = binary_conv_weight(w, True, True, None)
    for o in range(6):
        assert wb[o].abs().unique().numel() == 1


def test_gradients_reach_transforms():
    conv = DynamicBinaryConv2d(8, 8, [3, 5, 7])
    conv(torch.randn(2, 8, 6, 6), 8, 3, 1).pow(2).sum().backward()
    for name in ['7to5', '5to3']:
        assert conv.kernel_transforms[name].matrix.grad.abs().sum() > 0
    assert conv.bi_transforms['3'].theta.grad.abs().sum() > 0
    assert conv.bi_transforms['7'].theta.grad is None


def test_defaults_are_largest_setting():
    conv = DynamicBinaryConv2d(8, 12, [3, 5], groups=[2, 4])
    assert conv.weight.shape == (12, 4, 5, 5)
    x = torch.randn(1, 8, 6, 6)
    torch.testing.assert_close(conv(x), conv(x, 12, 5, 2))


@pytest.mark.parametrize('args,match', [
    ((16, 8, 3, 1), r'in_channels 16 \(x.shape\[1\]\) not in \[1, 8\]'),
    ((8, 9, 3, 1), r'out_channels 9 not in \[1, 8\]'),
    ((8, 8, 7, 1), r'kernel_size 7 not in \[3, 5\]'),
    ((8, 8, 3, 3), r'groups 3 not in \[1, 2\]'),
    ((5, 8, 3, 2), 'groups 2 must divide in_channels 5'),
    ((8, 7, 3, 2), 'groups 2 must divide out_channels 7'),
])
def test_setting_errors(args, match):
    conv = DynamicBinaryConv2d(8, 8, [3, 5], groups=[1, 2])
    with pytest.raises(ValueError, match=match):
        conv.to_static(**dict(zip(SETTING, args)))
    with pytest.raises(ValueError, match=match):
        conv(torch.randn(1, args[0], 5, 5), *args[1:])


def test_constructor_errors():
    with pytest.raises(ValueError, match=r'kernel_sizes: \[4\] are even'):
        DynamicBinaryConv2d(8, 8, [3, 4])
    with pytest.raises(ValueError, match='groups 3 must divide max_in'):
        DynamicBinaryConv2d(8, 8, 3, groups=[3, 6])
    with pytest.raises(ValueError, match="group_slicing 'diag' not in"):
        DynamicBinaryConv2d(8, 8, 3, group_slicing='diag')
