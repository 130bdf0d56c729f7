"""Packed binary neck, heads and backbone of a detector against the float
ones (:mod:`nasbnn_mm.deploy.packed_detector`)."""
import copy
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope

from nasbnn_mm.deploy import PackedNASBNN
from nasbnn_mm.deploy.packed_det_layers import (PackedBinaryConvBlock,
                                                PackedBinaryLinearBlock)
from nasbnn_mm.deploy.packed_detector import (PackedInferenceHook,
                                              match_detections, pack_detector)
from nasbnn_mm.models.detection import BinaryConvBlock, BinaryLinearBlock
from nasbnn_mm.models.detection.binary_blocks import CONV_MODULE_ATTRS
from nasbnn_mm.testing import trained_like
from nasbnn_mm.utils import UserError

CONFIG = ('configs/nasbnn_det/'
          'faster-rcnn_nasbnn-digits-l_binary-fpn-head_6e_digits.py')


@pytest.mark.parametrize('reference', [False, True])
@pytest.mark.parametrize(
    'in_channels, out_channels, kernel_size, stride, groups',
    [
        (48, 16, 1, 1, 1),  # FPN lateral conv: narrowing, no shortcut
        (16, 16, 3, 1, 1),  # FPN output / RPN conv: identity shortcut
        (16, 40, 3, 1, 1),  # widening: channel-tiled shortcut
        (16, 16, 3, 2, 1),  # stride 2 (an extra FPN level): no shortcut
        (32, 64, 3, 1, 4),  # grouped, tiled shortcut
    ])
def test_conv_block_equals_float(in_channels, out_channels, kernel_size,
                                 stride, groups, reference):
    block = BinaryConvBlock(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=kernel_size // 2,
        groups=groups)
    trained_like(block, 0, input_shape=None)
    packed = PackedBinaryConvBlock(block)
    x = torch.randn(
        2, in_channels, 13, 17, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = block(x)
        out = packed(x, reference=reference)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-4)
    assert packed.has_shortcut == block.has_shortcut
    for name in CONV_MODULE_ATTRS:
        assert getattr(packed, name) == getattr(block, name)


@pytest.mark.parametrize('reference', [False, True])
@pytest.mark.parametrize('in_features, out_features, shortcut', [
    (392, 24, False),
    (24, 24, True),
    (24, 40, True),
])
def test_linear_block_equals_float(in_features, out_features, shortcut,
                                   reference):
    block = trained_like(
        BinaryLinearBlock(in_features, out_features), 0, input_shape=None)
    assert block.has_shortcut == shortcut
    packed = PackedBinaryLinearBlock(block)
    x = torch.randn(7, in_features, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = block(x)
        out = packed(x, reference=reference)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-4)


def build_detector():
    """The digits binary neck+head detector, trained-like statistics."""
    cfg = Config.fromfile(CONFIG)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        import mmdet.models  # noqa: F401 (registers the detector parts)
        from mmdet.registry import MODELS as DET_MODELS
        det = DET_MODELS.build(cfg.model)
    trained_like(det, 3, input_shape=None)
    with torch.no_grad():  # initialise the LSQ stem steps
        det.extract_feat(
            torch.randn(
                2, 3, 64, 64, generator=torch.Generator().manual_seed(5)))
    return det


def test_pack_detector_equals_float():
    det = build_detector()
    packed = copy.deepcopy(det)
    counts = pack_detector(packed)
    assert counts == dict(
        PackedNASBNN=1,
        PackedBinaryConvBlock=sum(
            isinstance(m, BinaryConvBlock) for m in det.modules()),
        PackedBinaryLinearBlock=sum(
            isinstance(m, BinaryLinearBlock) for m in det.modules()),
        ChannelsLastRoIAlign=len(det.roi_head.bbox_roi_extractor.roi_layers))
    assert not any(
        isinstance(m, (BinaryConvBlock, BinaryLinearBlock))
        for m in packed.modules())
    x = torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(4))
    sample = DetDataSample(
        metainfo=dict(
            img_shape=(96, 128), ori_shape=(96, 128), scale_factor=(1., 1.)))
    with torch.no_grad():
        for a, b in zip(packed.extract_feat(x), det.extract_feat(x)):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
        expected = det.predict(x, [copy.deepcopy(sample)])[0].pred_instances
        result = packed.predict(x, [sample])[0].pred_instances
    assert len(expected) > 0
    # NOTE: the float simulation sums +-alpha in float32 (features within
    # ~1e-4 of the exact packed ones, see above); the FP box regression
    # turns that into ~1e-3 px.
    match = match_detections(expected, result, box_tol=1e-2)
    assert match['identical'], match
    assert match['max_score_diff'] <= 1e-4


@pytest.mark.parametrize('pool_mode', ['avg', 'max'])
def test_packed_roi_extractor_reads_channels_last_maps(pool_mode):
    """Given the packed backbone's channels_last maps, the packed RoI
    extractor equals the float one on NCHW copies: through
    ChannelsLastRoIAlign ('avg'), or MMCV's layer behind the contiguous
    pre-hook ('max')."""
    det = build_detector()
    for layer in det.roi_head.bbox_roi_extractor.roi_layers:
        layer.pool_mode = pool_mode
    packed = copy.deepcopy(det)
    pack_detector(packed)
    layer_types = {
        type(m).__name__
        for m in packed.roi_head.bbox_roi_extractor.roi_layers
    }
    assert layer_types == {
        'avg': {'ChannelsLastRoIAlign'},
        'max': {'RoIAlign'}
    }[pool_mode]
    x = torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(6)
    xy = torch.rand(40, 2, generator=g) * torch.tensor([128., 96.])
    rois = torch.cat(
        [torch.zeros(40, 1), xy, xy + 4 + 60 * torch.rand(40, 2, generator=g)],
        1)
    with torch.no_grad():
        feats = packed.extract_feat(x)[:4]
        assert feats[0].is_contiguous(memory_format=torch.channels_last)
        expected = det.roi_head.bbox_roi_extractor(
            tuple(f.contiguous() for f in feats), rois)
        out = packed.roi_head.bbox_roi_extractor(feats, rois)
    assert torch.equal(out, expected)


def test_match_detections_pairs_regardless_of_order():
    from mmengine.structures import InstanceData
    boxes = torch.tensor([[0., 0, 4, 4], [1, 1, 5, 5], [2, 2, 9, 9]])
    expected = InstanceData(
        bboxes=boxes,
        labels=torch.tensor([0, 1, 1]),
        scores=torch.tensor([.9, .8, .8]))
    result = InstanceData(
        bboxes=boxes[[0, 2, 1]] + 5e-4,
        labels=torch.tensor([0, 1, 1]),
        scores=torch.tensor([.9, .8, .8]))
    assert match_detections(expected, result)['identical']
    result.labels = torch.tensor([0, 2, 1])  # one label differs
    match = match_detections(expected, result)
    assert not match['identical'] and match['unmatched'] == 2
    result.labels = torch.tensor([0, 1, 1])
    result.bboxes = result.bboxes + 1e-2  # beyond the tolerance
    assert match_detections(expected, result)['unmatched'] == 6


def fake_runner(model: nn.Module) -> SimpleNamespace:
    return SimpleNamespace(
        model=model, logger=MMLogger.get_instance('test_packed_detector'))


def test_hook_packs_before_test():
    det = build_detector()
    PackedInferenceHook().before_test(fake_runner(det))
    assert isinstance(det.backbone, PackedNASBNN)
    assert not det.training


def test_hook_errors_are_one_line():
    with pytest.raises(UserError, match='no binary'):
        PackedInferenceHook().before_test(fake_runner(nn.Conv2d(3, 8, 3)))
    det = build_detector()
    det.rpn_head.rpn_conv[0].sign.binary = False
    with pytest.raises(
            UserError, match=r'rpn_head\.rpn_conv\.0: sign\.binary'):
        PackedInferenceHook().before_test(fake_runner(det))
