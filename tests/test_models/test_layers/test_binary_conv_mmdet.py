import pytest
import torch
from mmengine.registry import DefaultScope

from nasbnn_mm.models.layers import BinaryConv2d


def test_fpn_with_binary_conv_cfg():
    pytest.importorskip('mmdet')
    from mmcv.cnn import build_conv_layer
    from mmdet.models.necks import FPN

    with DefaultScope.overwrite_default_scope('mmdet'):
        neck = FPN(
            in_channels=[8, 16, 32],
            out_channels=8,
            num_outs=4,
            add_extra_convs='on_input',
            conv_cfg=dict(type='BinaryConv2d'))
        scoped = build_conv_layer(
            dict(type='nasbnn_mm.BinaryConv2d'), 4, 4, 3, padding=1)
    assert type(scoped) is BinaryConv2d
    convs = [m for m in neck.modules() if isinstance(m, BinaryConv2d)]
    assert len(convs) == 7  # 3 lateral, 3 output, 1 extra
    feats = [
        torch.randn(2, c, s, s, requires_grad=True)
        for c, s in zip([8, 16, 32], [16, 8, 4])
    ]
    outs = neck(feats)
    assert [tuple(o.shape) for o in outs] == [(2, 8, 16, 16), (2, 8, 8, 8),
                                              (2, 8, 4, 4), (2, 8, 2, 2)]
    sum(o.pow(2).sum() for o in outs).backward()
    for conv in convs:
        assert conv.weight.grad.abs().sum() > 0
        assert conv.input_sign.bias.grad is not None
    assert all(f.grad.abs().sum() > 0 for f in feats)
