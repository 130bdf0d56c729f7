"""A whole detector with the binary neck and heads, from its config."""
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from mmengine.utils import import_modules_from_strings

from nasbnn_mm.engine.hooks import PrecisionMapHook

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
CONFIG = osp.join(
    REPO, 'configs/nasbnn_det/'
    'faster-rcnn_nasbnn-digits-l_binary-fpn-head_6e_digits.py')


class _Runner:
    """What PrecisionMapHook.before_run reads from a runner; keeps the
    logged messages."""

    def __init__(self, model) -> None:
        self.model = model
        self.logged = []
        self.logger = self

    def info(self, message: str) -> None:
        self.logged.append(message)


@pytest.fixture
def detector_cfg():
    cfg = Config.fromfile(CONFIG)
    import_modules_from_strings(**cfg.custom_imports)
    cfg.model.backbone.init_cfg = None  # no supernet file in tests
    return cfg


def test_precision_map_hook_logs_backbone_neck_and_heads(detector_cfg):
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(detector_cfg.model)
    runner = _Runner(model)
    PrecisionMapHook().before_run(runner)
    lines = '\n'.join(runner.logged).splitlines()
    summary = next(line for line in lines if 'precision map:' in line)
    assert summary.split('precision map: ')[1] == (
        'backbone: 12 binary, 1 8-bit | neck: 4 binary | '
        'rpn_head: 1 binary, 2 FP32 | roi_head: 2 binary, 2 FP32')
    layers = {
        line.split()[0]: line.split()[1:]
        for line in lines if line.startswith('  ')
    }
    assert layers['backbone.stem.conv'] == ['8-bit', 'LSQConv2d']
    assert layers['neck.lateral_convs.0.conv.conv'] == [
        'binary', 'BinaryConv2d'
    ]
    assert layers['rpn_head.rpn_conv.0.conv'] == ['binary', 'BinaryConv2d']
    assert layers['roi_head.bbox_head.shared_fcs.1.fc'] == [
        'binary', 'BinaryLinear'
    ]
    for name in ('rpn_head.rpn_cls', 'rpn_head.rpn_reg'):
        assert layers[name] == ['FP32', 'Conv2d']
    for name in ('roi_head.bbox_head.fc_cls', 'roi_head.bbox_head.fc_reg'):
        assert layers[name] == ['FP32', 'Linear']


def test_precision_map_hook_checks_neck_widths(detector_cfg):
    detector_cfg.model.neck.in_channels = [64, 96]
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(detector_cfg.model)
    with pytest.raises(ValueError, match=r'neck.in_channels \[64, 96\]'):
        PrecisionMapHook().before_run(_Runner(model))
