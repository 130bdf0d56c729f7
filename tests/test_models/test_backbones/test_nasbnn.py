"""The static NASBNN backbone and the export from the supernet."""
import random

import pytest
import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope

from nasbnn_mm.models import (NASBNN, SandwichSupernet, SuperBNN, SupernetInit,
                              export_subnet, load_supernet_weights,
                              resolve_arch, subnet_checkpoint)
from nasbnn_mm.models.layers import BinaryConv2d
from nasbnn_mm.nas import (SearchSpace, count_arch_ops, count_module_ops,
                           sample_largest, sample_random, sample_smallest)
from nasbnn_mm.testing import TINY_ARCH, TINY_SPACE, LabelSample
from nasbnn_mm.utils import UserError

# Same layout, narrower last stage: its checkpoints do not fit TINY_SPACE.
NARROW_SPACE = dict(
    TINY_SPACE,
    stages=[
        TINY_SPACE['stages'][0],
        dict(TINY_SPACE['stages'][1], channels=[24, 28])
    ])


def _images(n=4, seed=1):
    return torch.randn(
        n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope='module')
def supernet():
    """A supernet after two sandwich steps: LSQ steps, transforms and BN
    statistics are no longer at their initial values."""
    torch.manual_seed(0)
    model = SandwichSupernet(
        backbone=dict(type='nasbnn_mm.SuperBNN', search_space=TINY_SPACE))
    optim = OptimWrapper(torch.optim.Adam(model.parameters(), lr=1e-2))
    for step in range(2):
        model.train_step(
            dict(
                inputs=_images(8, step),
                data_samples=[LabelSample(i % 4) for i in range(8)]), optim)
    return model.eval()


def _archs(space):
    return {
        'smallest': sample_smallest(space),
        'largest': sample_largest(space),
        'random': sample_random(space, random.Random(3)),
        'fixed': TINY_ARCH,
    }


def _export(supernet, arch):
    return export_subnet(supernet.backbone, supernet.head, arch)


def _static_logits(backbone, fc, x):
    return fc(backbone(x)[-1].mean(dim=(2, 3)))


@pytest.mark.parametrize('name', ['smallest', 'largest', 'random', 'fixed'])
def test_export_matches_supernet(supernet, name):
    arch = supernet.backbone.resolve_arch(_archs(supernet.space)[name])
    backbone, fc = _export(supernet, arch)
    assert not backbone.training
    x = _images()
    with torch.no_grad():
        expected = supernet.logits(x, arch)
        actual = _static_logits(backbone, fc, x)
    assert (actual - expected).abs().max() <= 1e-4
    # the static layers have the subnet's exact shapes
    assert backbone.stem.conv.weight.shape[0] == arch.stem.channels
    last = arch.stages[-1][-1]
    assert fc.weight.shape == (4, last.channels)
    block = backbone.stages[-1][-1]
    assert block.conv1.weight.shape == (block.conv1.in_channels,
                                        block.conv1.in_channels // last.groups,
                                        last.kernel_size, last.kernel_size)
    assert all(m.bi_transform is None and m.input_sign is None
               for m in backbone.modules() if isinstance(m, BinaryConv2d))


def test_export_does_not_share_parameters(supernet):
    backbone, fc = _export(supernet, TINY_ARCH)
    supernet_params = {p.data_ptr() for p in supernet.parameters()}
    assert not supernet_params & {
        p.data_ptr()
        for p in list(backbone.parameters()) + list(fc.parameters())
    }


def test_export_names_mirror_supernet(supernet):
    backbone, _ = _export(supernet, TINY_ARCH)
    supernet_keys = set(supernet.backbone.state_dict())
    static_keys = set(backbone.state_dict())
    assert static_keys <= supernet_keys
    assert {
        'stem.conv.weight', 'stem.conv.input_quantizer.step',
        'stages.1.0.conv1.weight', 'stages.0.1.act2.bias_out'
    } <= static_keys
    # a NASBNN built from the spec has the same entries
    built = NASBNN(TINY_ARCH, TINY_SPACE)
    assert {
        k: v.shape
        for k, v in built.state_dict().items()
    } == {
        k: v.shape
        for k, v in backbone.state_dict().items()
    }


def test_export_ops_match_the_counter(supernet):
    arch = supernet.backbone.resolve_arch(TINY_ARCH)
    backbone, fc = _export(supernet, arch)
    model = nn.ModuleDict(dict(backbone=backbone, fc=fc))
    report = count_module_ops(model, (3, 16, 16),
                              lambda x: _static_logits(backbone, fc, x))
    expected = count_arch_ops(arch, supernet.space)
    for kind in ('flops', 'int8ops', 'bops'):
        assert report.total(kind) == expected.total(kind)


def test_checkpoint_is_small_and_weights_only(supernet, tmp_path):
    backbone, fc = _export(supernet, TINY_ARCH)
    ckpt = subnet_checkpoint(backbone, fc, dict(name='tiny'))
    path = tmp_path / 'subnet.pth'
    torch.save(ckpt, path)
    loaded = torch.load(path, weights_only=True)
    state = loaded['state_dict']
    assert set(state) == {f'backbone.{k}'
                          for k in backbone.state_dict()
                          } | {'head.fc.weight', 'head.fc.bias'}
    numel = sum(v.numel() for v in state.values())
    assert numel < sum(v.numel() for v in supernet.state_dict().values())
    meta = loaded['meta']
    assert meta['arch'] == TINY_ARCH and meta['name'] == 'tiny'
    assert meta['ops_m'] == pytest.approx(
        count_arch_ops(backbone.arch, supernet.space).ops / 1e6)
    assert meta['out_channels'] == [32] and meta['num_classes'] == 4
    # a NASBNN of the spec loads it with the Pretrained init
    model = NASBNN(
        TINY_ARCH,
        TINY_SPACE,
        init_cfg=dict(
            type='Pretrained', checkpoint=str(path), prefix='backbone.'))
    model.init_weights()
    x = _images()
    torch.testing.assert_close(model.eval()(x), backbone(x))


def test_out_indices_and_out_channels():
    model = NASBNN(TINY_ARCH, TINY_SPACE, out_indices=(0, -1)).eval()
    assert model.out_indices == (0, 1)
    assert model.out_channels == (24, 32)
    outs = model(torch.randn(2, 3, 16, 16))
    assert [o.shape for o in outs] == [(2, 24, 8, 8), (2, 32, 4, 4)]
    with pytest.raises(ValueError, match=r'out_indices: 2 not in \[-2, 1\]'):
        NASBNN(TINY_ARCH, TINY_SPACE, out_indices=(2, ))


def test_arch_is_validated():
    bad = dict(TINY_ARCH, stages=[['c16_k7_g1'], ['c32_k5_g4']])
    with pytest.raises(ValueError, match=r'stages\[0\]\[0\]: kernel_size 7'):
        NASBNN(bad, TINY_SPACE)


def test_frozen_stages():
    model = NASBNN(TINY_ARCH, TINY_SPACE, frozen_stages=1)
    model.train()
    for module in (model.stem, model.stages[0]):
        assert not any(p.requires_grad for p in module.parameters())
        assert not any(m.training for m in module.modules())
    assert all(p.requires_grad for p in model.stages[1].parameters())
    assert all(m.training for m in model.stages[1].modules())
    stem_only = NASBNN(TINY_ARCH, TINY_SPACE, frozen_stages=0).train()
    assert not any(p.requires_grad for p in stem_only.stem.parameters())
    assert all(p.requires_grad for p in stem_only.stages.parameters())
    assert all(
        p.requires_grad
        for p in NASBNN(TINY_ARCH, TINY_SPACE).train().parameters())
    with pytest.raises(ValueError, match=r'frozen_stages: 3 not in \[-1, 2\]'):
        NASBNN(TINY_ARCH, TINY_SPACE, frozen_stages=3)


def test_norm_eval():
    model = NASBNN(TINY_ARCH, TINY_SPACE, norm_eval=True).train()
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and not any(m.training for m in norms)
    assert model.stages[0][0].conv1.training
    before = norms[0].running_mean.clone()
    model(torch.randn(2, 3, 16, 16))
    torch.testing.assert_close(norms[0].running_mean, before)


@pytest.mark.parametrize('wrapped', [True, False])
def test_load_supernet_weights(supernet, tmp_path, wrapped):
    state = supernet.state_dict() if wrapped \
        else supernet.backbone.state_dict()
    path = tmp_path / 'supernet.pth'
    torch.save(dict(state_dict=state), path)
    model = NASBNN(
        TINY_ARCH,
        TINY_SPACE,
        init_cfg=dict(type='SupernetInit', checkpoint=str(path)))
    model.init_weights()
    expected, _ = _export(supernet, TINY_ARCH)
    x = _images()
    torch.testing.assert_close(model.eval()(x), expected(x))
    report = load_supernet_weights(
        NASBNN(TINY_ARCH, TINY_SPACE), dict(state_dict=state))
    assert report['missing'] == [] and report['unexpected'] == []
    assert report['ignored'] == (['head.fc.weight', 'head.fc.bias']
                                 if wrapped else [])


def test_load_supernet_weights_reports_missing_keys(supernet):
    state = {
        k: v
        for k, v in supernet.backbone.state_dict().items()
        if not k.startswith('stages.1.1.')
    }
    report = load_supernet_weights(NASBNN(TINY_ARCH, TINY_SPACE), state)
    assert report['missing'] and all(
        k.startswith('stages.1.1.') for k in report['missing'])


def test_load_supernet_weights_width_mismatch():
    narrow = SuperBNN(NARROW_SPACE).state_dict()
    model = NASBNN(TINY_ARCH, TINY_SPACE)
    with pytest.raises(
            ValueError,
            match=r'stages\.1\.0\.conv2\.weight: checkpoint \(28, 24, 1, 1\) '
            r'vs model \(32, 24, 1, 1\)'):
        load_supernet_weights(model, narrow)


def test_supernet_init_arguments_are_checked():
    with pytest.raises(
            UserError,
            match=r"group_slicing 'rows' not in \('prefix', 'cyclic'\)"):
        SupernetInit('a.pth', group_slicing='rows')
    with pytest.raises(UserError, match='not a SuperBNN'):
        SupernetInit('a.pth')(SuperBNN(TINY_SPACE))
    model = NASBNN(
        TINY_ARCH,
        TINY_SPACE,
        init_cfg=dict(type='SupernetInit', checkpoint='missing.pth'))
    with pytest.raises(
            UserError, match='supernet checkpoint missing.pth: no such file'):
        model.init_weights()


def test_one_vocabulary_names_subnets():
    space = SearchSpace.from_config(TINY_SPACE)
    assert resolve_arch('smallest', space) == sample_smallest(space)
    assert resolve_arch('largest', space, non_decreasing=False) == \
        sample_largest(space, non_decreasing=False)
    model = NASBNN('largest', TINY_SPACE)
    assert model.arch == sample_largest(space)
    assert SuperBNN(TINY_SPACE, arch='smallest').arch == \
        sample_smallest(space)
    with pytest.raises(
            UserError,
            match=r"arch 'tiny': neither smallest nor largest, a preset "
            r'\(A, B, C, D, E, F\) nor an existing spec file'):
        NASBNN('tiny', TINY_SPACE)


def test_image_classifier_loads_the_export(supernet, tmp_path):
    pytest.importorskip('mmpretrain')
    from mmpretrain.models import ImageClassifier
    backbone, fc = _export(supernet, TINY_ARCH)
    path = tmp_path / 'subnet.pth'
    torch.save(subnet_checkpoint(backbone, fc), path)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        classifier = ImageClassifier(
            backbone=dict(
                type='nasbnn_mm.NASBNN',
                arch=TINY_ARCH,
                search_space=TINY_SPACE),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=4, in_channels=32),
            init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    classifier.init_weights()
    x = _images()
    with torch.no_grad():
        expected = supernet.logits(x,
                                   supernet.backbone.resolve_arch(TINY_ARCH))
        actual = classifier.eval()(x, mode='tensor')
    assert (actual - expected).abs().max() <= 1e-4
