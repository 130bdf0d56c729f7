"""Checkpoint conventions travel with the weights (issue 13).

A supernet checkpoint written by this project (paper weight
normalization, 8-bit stem input) and a converted official one
(``weight_norm='official'``, float stem input, Bi-Transformation of the
largest kernel only) initialise a detector backbone from the same
detection config, each with its own conventions; a config that
contradicts its checkpoint fails with one line.
"""
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
# NOTE: pytest puts this folder on sys.path (no __init__.py in tests/).
from official_layout import official_state_dict

from nasbnn_mm.engine.hooks import ConventionsHook
from nasbnn_mm.models import SandwichSupernet, SuperBNN
from nasbnn_mm.models.layers import normalize_weight
from nasbnn_mm.nas import SearchSpace
from nasbnn_mm.registry import MODELS
from nasbnn_mm.testing import load_tool
from nasbnn_mm.utils import UserError, extract_state_dict
from nasbnn_mm.utils.conventions import checkpoint_conventions

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DET_CONFIG = osp.join(REPO, 'configs', 'nasbnn_det',
                      'faster-rcnn_nasbnn-digits-l_fpn_6e_digits.py')
SPACE = 'nasbnn_digits'


def _tool(*parts):
    return load_tool(*parts).main


@torch.no_grad()
def _trained_like(model, seed):
    gen = torch.Generator().manual_seed(seed)
    for name, value in model.state_dict().items():
        if name.endswith('running_var'):
            value.copy_(0.02 + 0.05 * torch.rand(value.shape, generator=gen))
        elif name.endswith(('running_mean', 'bias', 'bias_in', 'bias_out')):
            value.copy_(0.1 * torch.randn(value.shape, generator=gen))
    return model


@pytest.fixture(scope='module')
def project_checkpoint(tmp_path_factory):
    """A digits supernet checkpoint as this project's training saves it."""
    model = _trained_like(
        SandwichSupernet(
            backbone=dict(type='nasbnn_mm.SuperBNN', search_space=SPACE)), 0)
    ckpt = dict(state_dict=model.state_dict(), meta=dict(epoch=1))
    ConventionsHook().before_save_checkpoint(
        SimpleNamespace(model=model), ckpt)
    path = str(tmp_path_factory.mktemp('project') / 'supernet.pth')
    torch.save(ckpt, path)
    return path


@pytest.fixture(scope='module')
def official_checkpoint(tmp_path_factory):
    """An official-layout digits supernet through the converter."""
    folder = tmp_path_factory.mktemp('official')
    src, dst = folder / 'official.pth.tar', folder / 'converted.pth'
    state = official_state_dict(SearchSpace.from_config(SPACE), seed=1)
    torch.save(dict(state_dict=state, epoch=3), src)
    convert = _tool('model_converters', 'nasbnn_official_to_mm.py')
    assert convert([str(src), str(dst), '--search-space', SPACE]) == 0
    return str(dst)


def _backbone(checkpoint, monkeypatch, **overrides):
    """The detection config's backbone, initialised from ``checkpoint``."""
    monkeypatch.chdir(REPO)  # the config names its arch file relatively
    cfg = Config.fromfile(DET_CONFIG).model.backbone.to_dict()
    cfg.pop('_delete_', None)
    cfg['init_cfg']['checkpoint'] = checkpoint
    cfg.update(overrides)
    backbone = MODELS.build(cfg)
    backbone.init_weights()
    return backbone.eval()


def _supernet(checkpoint, conventions):
    supernet = SuperBNN(SPACE, **conventions)
    supernet.load_state_dict(
        extract_state_dict(checkpoint, 'backbone.'), strict=True)
    return supernet.eval()


CASES = dict(
    project=dict(
        weight_norm=True,
        stem_quantize_input=True,
        group_slicing='cyclic',
        bi_transform=True),
    official=dict(
        weight_norm='official',
        stem_quantize_input=False,
        group_slicing='cyclic',
        bi_transform='max_kernel'))


@pytest.mark.parametrize('case', ['project', 'official'])
def test_one_detection_config_takes_each_checkpoints_conventions(
        case, project_checkpoint, official_checkpoint, monkeypatch):
    checkpoint = dict(
        project=project_checkpoint, official=official_checkpoint)[case]
    expected = CASES[case]
    stored = checkpoint_conventions(checkpoint)
    assert {k: stored[k] for k in expected} == expected
    backbone = _backbone(checkpoint, monkeypatch)
    assert backbone.weight_norm == expected['weight_norm']
    assert backbone.stem_quantize_input == expected['stem_quantize_input']
    # the 1x1 conv of a block: the checkpoint's leading slice, normalized
    # as the checkpoint's supernet normalizes it
    state = extract_state_dict(checkpoint, 'backbone.')
    conv = backbone.stages[2][1].conv2
    sliced = state['stages.2.1.conv2.weight'][:conv.out_channels, :conv.
                                              in_channels]
    torch.testing.assert_close(conv.weight, sliced, rtol=0, atol=0)
    style = 'official' if expected['weight_norm'] == 'official' else 'paper'
    torch.testing.assert_close(
        normalize_weight(conv.weight, style=style),
        normalize_weight(sliced, style=style))
    # the whole subnet computes what the checkpoint's supernet computes
    supernet = _supernet(checkpoint, expected)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = backbone(x)
        reference = supernet(x, backbone.arch)
    assert len(ours) == 2  # out_indices (1, 2); the supernet returns (2, )
    torch.testing.assert_close(ours[-1], reference[-1], rtol=1e-4, atol=1e-4)


def test_other_normalization_computes_another_network(official_checkpoint,
                                                      monkeypatch):
    """The check above can fail: the official weights under the paper's
    normalization are another network."""
    right = _backbone(official_checkpoint, monkeypatch)
    ckpt = torch.load(official_checkpoint, weights_only=True)
    ckpt['meta'].pop('nasbnn_conventions')  # an old, unlabelled file
    old = osp.join(osp.dirname(official_checkpoint), 'unlabelled.pth')
    torch.save(ckpt, old)
    wrong = _backbone(
        old, monkeypatch, weight_norm=True, stem_quantize_input=False)
    assert wrong.weight_norm is True  # old files keep the config's values
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert not torch.allclose(right(x)[-1], wrong(x)[-1], atol=1e-3)


@pytest.mark.parametrize('name,value,stored', [
    ('weight_norm', True, "'official'"),
    ('stem_quantize_input', True, 'False'),
])
def test_contradicting_config_fails_with_one_line(official_checkpoint,
                                                  monkeypatch, name, value,
                                                  stored):
    with pytest.raises(UserError) as info:
        _backbone(official_checkpoint, monkeypatch, **{name: value})
    message = str(info.value)
    assert message.startswith(f'{name}: config says {value!r}, checkpoint '
                              f'{official_checkpoint} says {stored}')
    assert '\n' not in message


def test_contradicting_search_space_fails_with_one_line(
        project_checkpoint, monkeypatch):
    monkeypatch.chdir(REPO)
    with pytest.raises(UserError, match='^search_space: config says'):
        MODELS.build(
            dict(
                type='nasbnn_mm.NASBNN',
                arch='smallest',
                search_space='nasbnn_in1k',
                init_cfg=dict(
                    type='SupernetInit', checkpoint=project_checkpoint)))


def test_hook_refuses_a_checkpoint_of_other_conventions(official_checkpoint):
    """``load_from``/``resume`` of a model built with other conventions
    fails before mmengine loads anything."""
    model = SandwichSupernet(
        backbone=dict(type='nasbnn_mm.SuperBNN', search_space=SPACE))
    runner = SimpleNamespace(
        model=model, cfg=dict(load_from=official_checkpoint))
    checkpoint = torch.load(official_checkpoint, weights_only=True)
    with pytest.raises(UserError, match='^weight_norm: config says True, '):
        ConventionsHook().after_load_checkpoint(runner, checkpoint)
    # the same conventions pass; an old checkpoint is not checked
    official = SandwichSupernet(
        backbone=dict(
            type='nasbnn_mm.SuperBNN', search_space=SPACE, **
            CASES['official']))
    ConventionsHook().after_load_checkpoint(
        SimpleNamespace(model=official, cfg=runner.cfg), checkpoint)
    checkpoint['meta'].pop('nasbnn_conventions')
    ConventionsHook().after_load_checkpoint(runner, checkpoint)
