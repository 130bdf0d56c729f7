"""Binary RPN and box heads: binary shared layers, FP predictors."""
import subprocess
import sys

import pytest
import torch
from mmengine.registry import DefaultScope
from torch import nn

from nasbnn_mm.models.detection import (BinaryConvBlock, BinaryConvFCBBoxHead,
                                        BinaryLinearBlock, BinaryRPNHead,
                                        BinaryShared2FCBBoxHead)
from nasbnn_mm.models.utils import precision_map


@pytest.fixture(autouse=True)
def mmdet_scope():
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


def _fp_layers(module):
    return sorted(name for name, precision, _ in precision_map(module)
                  if precision == 'FP32')


def test_rpn_head_binary_conv_fp_predictors():
    head = BinaryRPNHead(in_channels=8, feat_channels=8, num_convs=2)
    head.init_weights()
    assert [type(m) for m in head.rpn_conv] == [BinaryConvBlock] * 2
    assert all(m.has_shortcut for m in head.rpn_conv)
    assert type(head.rpn_cls) is nn.Conv2d and type(head.rpn_reg) is nn.Conv2d
    assert _fp_layers(head) == ['rpn_cls', 'rpn_reg']
    # no ReLU after the binary block: its RPReLU is the activation
    x = torch.randn(1, 8, 5, 5)
    head.eval()
    cls, reg = head.forward_single(x)
    feat = head.rpn_conv(x)
    assert (feat < 0).any()
    torch.testing.assert_close(cls, head.rpn_cls(feat))
    torch.testing.assert_close(reg, head.rpn_reg(feat))
    # AnchorHead's default: 3 scales x 3 ratios
    assert cls.shape == (1, 9, 5, 5) and reg.shape == (1, 36, 5, 5)


def test_rpn_head_block_cfg():
    head = BinaryRPNHead(
        in_channels=8, feat_channels=8, block_cfg=dict(shortcut=False))
    assert not head.rpn_conv[0].has_shortcut


def test_shared2fc_head_binary_fcs_fp_predictors():
    torch.manual_seed(0)
    head = BinaryShared2FCBBoxHead(
        fc_out_channels=32, in_channels=8, roi_feat_size=7, num_classes=3)
    head.init_weights()  # no Xavier on the 1-D BN/RPReLU weights
    assert [type(m) for m in head.shared_fcs] == [BinaryLinearBlock] * 2
    assert [m.has_shortcut for m in head.shared_fcs] == [False, True]
    assert [(m.in_features, m.out_features)
            for m in head.shared_fcs] == [(8 * 49, 32), (32, 32)]
    assert type(head.fc_cls) is nn.Linear and type(head.fc_reg) is nn.Linear
    assert _fp_layers(head) == ['fc_cls', 'fc_reg']
    assert head.fc_reg.weight.std() < 0.01  # mmdet's Normal(std=0.001)
    x = torch.randn(6, 8, 7, 7, requires_grad=True)
    cls, reg = head(x)
    assert cls.shape == (6, 4) and reg.shape == (6, 12)
    (cls.sum() + reg.sum()).backward()
    assert x.grad.abs().sum() > 0
    # the FCs' output reaches the predictors as it is (no ReLU after RPReLU)
    head.eval()
    feat = head.shared_fcs[1](head.shared_fcs[0](x.flatten(1)))
    assert (feat < 0).any()
    torch.testing.assert_close(head(x)[0], head.fc_cls(feat))


def test_convfc_head_with_convs():
    head = BinaryConvFCBBoxHead(
        num_shared_convs=2,
        num_shared_fcs=1,
        conv_out_channels=8,
        fc_out_channels=16,
        in_channels=4,
        roi_feat_size=5,
        num_classes=2,
        block_cfg=dict(weight_norm='official'))
    head.init_weights()
    assert [type(m) for m in head.shared_convs] == [BinaryConvBlock] * 2
    # 4 -> 8 channels tiled, then 8 -> 8
    assert [m.has_shortcut for m in head.shared_convs] == [True, True]
    assert head.shared_fcs[0].fc.weight_norm == 'official'
    cls, reg = head(torch.randn(3, 4, 5, 5))
    assert cls.shape == (3, 3) and reg.shape == (3, 8)


def test_nasbnn_import_leaves_mmdet_out():
    code = ('import sys, nasbnn_mm; '
            "bad = [m for m in ('mmdet', 'nasbnn_mm.models.detection') "
            'if m in sys.modules]; '
            'assert not bad, bad')
    result = subprocess.run([sys.executable, '-c', code],
                            capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
