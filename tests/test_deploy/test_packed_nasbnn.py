"""PackedNASBNN: packed subnets against the float subnet they come from."""
import random

import pytest
import torch
import torch.nn as nn
from mmengine.config import ConfigDict
from mmengine.runner.checkpoint import load_state_dict

from nasbnn_mm.deploy import (PackedNASBNN, load_packed, pack_nasbnn,
                              save_packed)
from nasbnn_mm.models import NASBNN, SuperBNN, subnet_checkpoint
from nasbnn_mm.nas import SearchSpace, sample_random
from nasbnn_mm.registry import MODELS
from nasbnn_mm.testing import trained_like
from nasbnn_mm.utils import CheckpointError

SPACE = 'nasbnn_digits'
# Every kind of layer of the digits space: strides 1/2, kernels 3/5,
# groups 1/2/4, widening (channel tiling) shortcuts.
ARCH = dict(
    stem='c16_k3_g1',
    stages=[['c24_k3_g1', 'c32_k3_g1'], ['c64_k5_g2', 'c64_k3_g1'],
            ['c96_k5_g4', 'c128_k3_g2']])


def float_pair(arch, seed: int, num_classes: int = 10):
    torch.manual_seed(seed)
    backbone = trained_like(NASBNN(arch, SPACE, out_indices=(0, 1, 2)), seed)
    fc = nn.Linear(backbone.arch.stages[-1][-1].channels, num_classes)
    return backbone, fc


@torch.no_grad()
def float_logits(backbone: NASBNN, fc: nn.Linear, x: torch.Tensor):
    return fc(backbone(x)[-1].mean((2, 3)))


@pytest.mark.parametrize('seed', range(4))
def test_logits_match_float_subnet(seed):
    arch = ARCH if seed == 0 else sample_random(
        SearchSpace.from_config(SPACE), random.Random(seed)).to_dict()
    backbone, fc = float_pair(arch, seed)
    packed = pack_nasbnn(backbone, fc)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(9))
    logits = packed.logits(x)
    torch.testing.assert_close(
        logits, float_logits(backbone, fc, x), rtol=0, atol=1e-4)
    # Same features as NASBNN, stage by stage.
    with torch.no_grad():
        expected = backbone(x)
    outs = packed(x)
    assert [o.shape for o in outs] == [e.shape for e in expected]
    for out, exp in zip(outs, expected):
        torch.testing.assert_close(out, exp, rtol=1e-5, atol=1e-4)
    # The pure-PyTorch reference ops give the very same bits and floats.
    assert torch.equal(packed.logits(x, reference=True), logits)


def test_save_load_round_trip_and_size(tmp_path):
    backbone, fc = float_pair(ARCH, 0)
    packed = pack_nasbnn(backbone, fc)
    path = str(tmp_path / 'packed.pth')
    file_bytes = save_packed(packed, path, dict(note='test'))
    raw = torch.load(path, weights_only=True)
    assert raw['format'] == 'nasbnn_mm.packed_nasbnn'
    loaded = load_packed(path, out_indices=(0, 1, 2))
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(loaded.logits(x), packed.logits(x))
    for a, b in zip(loaded(x), packed(x)):
        assert torch.equal(a, b)
    # 1 bit per binary weight (plus < 64 bits per conv) vs 32 in fp32.
    report = packed.size_report()
    convs = [(m.weight.numel()) for n, m in backbone.named_modules()
             if n.endswith(('conv1', 'conv2')) and 'stem' not in n]
    assert report['binary_weights'] == sum(convs)
    assert report['packed_bytes'] <= sum(-(-n // 64) * 8 for n in convs)
    assert report['ratio'] >= 31.5
    float_bytes = sum(t.numel() * t.element_size()
                      for t in backbone.state_dict().values())
    assert file_bytes < float_bytes / 4
    torch.save(subnet_checkpoint(backbone), str(tmp_path / 'f.pth'))
    with pytest.raises(CheckpointError, match='not a packed NAS-BNN file'):
        load_packed(str(tmp_path / 'f.pth'))


def test_preset_size_ratio():
    """Table-6 preset B: binary weights 32x smaller, >= 25x with the
    per-channel float affine of every binary conv."""
    report = PackedNASBNN('B').size_report()
    assert report['binary_weights'] == 22296384
    assert report['ratio'] == pytest.approx(32, rel=1e-4)
    assert report['ratio_with_affine'] >= 25


def test_float_checkpoint_conversions(tmp_path):
    """A float classifier checkpoint, through the Pretrained init or
    ``load_state_dict`` (a detector's ``load_from``), is packed."""
    backbone, fc = float_pair(ARCH, 1)
    expected = pack_nasbnn(backbone, fc)
    x = torch.randn(2, 3, 32, 32)
    path = str(tmp_path / 'subnet.pth')
    torch.save(subnet_checkpoint(backbone, fc), path)
    from_ckpt = PackedNASBNN(
        ARCH,
        SPACE,
        out_indices=(0, 1, 2),
        init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.'))
    from_ckpt.init_weights()
    for a, b in zip(from_ckpt(x), expected(x)):
        assert torch.equal(a, b)
    # the float model is checked: a state dict of another arch is refused
    other = NASBNN(dict(ARCH, stem='c8_k3_g1'), SPACE).state_dict()
    with pytest.raises(
            CheckpointError,
            match='float state dict: does not '
            r'fit NASBNN of arch .*stem\.conv\.weight'):
        PackedNASBNN(ARCH, SPACE).load_state_dict(other)

    class Wrapper(nn.Module):

        def __init__(self) -> None:
            super().__init__()
            self.backbone = PackedNASBNN(ARCH, SPACE, out_indices=(0, 1, 2))

    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    for loader in (lambda m: m.load_state_dict(state),
                   lambda m: load_state_dict(m, state, strict=True)):
        model = Wrapper()
        loader(model)
        for a, b in zip(model.backbone(x), expected(x)):
            assert torch.equal(a, b)


def test_registry_and_errors():
    model = MODELS.build(
        dict(
            type='nasbnn_mm.PackedNASBNN',
            arch=ARCH,
            search_space=SPACE,
            out_indices=(1, 2)))
    outs = model(torch.randn(1, 3, 32, 32))
    assert [o.shape for o in outs] == [(1, 64, 8, 8), (1, 128, 4, 4)]
    assert model.out_channels == (64, 128)
    with pytest.raises(ValueError, match='out_indices: 3 not in'):
        PackedNASBNN(ARCH, SPACE, out_indices=(3, ))
    # inference only: no training options accepted and ignored
    with pytest.raises(TypeError, match='frozen_stages'):
        PackedNASBNN(ARCH, SPACE, frozen_stages=1)
    backbone = NASBNN(ARCH, SPACE).eval()
    backbone.stages[0][0].sign1.binary = False
    with pytest.raises(ValueError, match='sign1.binary is False'):
        pack_nasbnn(backbone)


def test_supernet_init_packs_the_sliced_subnet():
    """``init_cfg=dict(type='SupernetInit', ...)`` fills a PackedNASBNN
    through its float-weight loading: the same model as packing the NASBNN
    sliced from the same supernet."""
    torch.manual_seed(3)
    supernet = SuperBNN(SPACE).eval()
    with torch.no_grad():
        supernet(torch.randn(2, 3, 32, 32))  # initialises the LSQ steps
    init_cfg = dict(type='SupernetInit', checkpoint=supernet.state_dict())
    packed = PackedNASBNN(ARCH, SPACE, init_cfg=init_cfg)
    packed.init_weights()
    expected = pack_nasbnn(supernet.to_static(ARCH).eval())
    for key, value in expected.state_dict().items():
        assert torch.equal(packed.state_dict()[key], value), key


def test_detector_with_packed_backbone():
    """Swapping ``backbone.type`` of an MMDetection detector: same FPN
    features from the float detector's weights, and predict runs."""
    pytest.importorskip('mmdet')
    from mmdet.structures import DetDataSample
    from mmengine.registry import DefaultScope

    def detector_cfg(backbone_type: str) -> ConfigDict:
        return ConfigDict(
            type='RetinaNet',
            data_preprocessor=dict(type='DetDataPreprocessor'),
            backbone=dict(
                type=backbone_type,
                arch=ARCH,
                search_space=SPACE,
                out_indices=(1, 2)),
            neck=dict(
                type='FPN',
                in_channels=[64, 128],
                out_channels=16,
                start_level=0,
                add_extra_convs='on_input',
                num_outs=3),
            bbox_head=dict(
                type='RetinaHead',
                num_classes=3,
                in_channels=16,
                feat_channels=16,
                stacked_convs=1,
                anchor_generator=dict(
                    type='AnchorGenerator',
                    octave_base_scale=4,
                    scales_per_octave=1,
                    ratios=[1.0],
                    strides=[4, 8, 16]),
                bbox_coder=dict(type='DeltaXYWHBBoxCoder'),
                loss_cls=dict(type='FocalLoss', use_sigmoid=True),
                loss_bbox=dict(type='L1Loss')),
            test_cfg=dict(
                nms_pre=100,
                score_thr=0.0,
                nms=dict(type='nms', iou_threshold=0.5),
                max_per_img=10))

    with DefaultScope.overwrite_default_scope('mmdet'):
        import mmdet.models  # noqa: F401 (registers the detector parts)
        from mmdet.registry import MODELS as DET_MODELS
        float_det = DET_MODELS.build(detector_cfg('nasbnn_mm.NASBNN'))
        trained_like(float_det.backbone, 2)
        float_det.eval()
        packed_det = DET_MODELS.build(
            detector_cfg('nasbnn_mm.PackedNASBNN')).eval()
        load_state_dict(packed_det, float_det.state_dict(), strict=True)
        x = torch.randn(1, 3, 64, 64)
        with torch.no_grad():
            expected = float_det.extract_feat(x)
            feats = packed_det.extract_feat(x)
            for a, b in zip(feats, expected):
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-3)
            sample = DetDataSample(
                metainfo=dict(
                    img_shape=(64, 64),
                    ori_shape=(64, 64),
                    scale_factor=(1., 1.)))
            result = packed_det.predict(x, [sample])[0]
        assert result.pred_instances.bboxes.shape[1] == 4


@torch.no_grad()
def test_cached_classifier_follows_fc_changes():
    """The classifier's weight blocks are cached; an in-place write, a
    replaced bias and a classifier without bias are seen (logits equal the
    reference path's, which reads fc directly)."""
    backbone, fc = float_pair(ARCH, 5)
    packed = pack_nasbnn(backbone, fc)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    before = packed.logits(x)
    packed.fc.weight.mul_(-1)
    after = packed.logits(x)
    assert not torch.equal(after, before)
    assert torch.equal(after, packed.logits(x, reference=True))
    packed.fc.bias = nn.Parameter(packed.fc.bias + 1)
    shifted = packed.logits(x)
    torch.testing.assert_close(shifted, after + 1)
    assert torch.equal(shifted, packed.logits(x, reference=True))
    packed.fc = nn.Linear(packed.fc.in_features, 3, bias=False)
    logits = packed.logits(x)
    assert logits.shape == (2, 3)
    assert torch.equal(logits, packed.logits(x, reference=True))
