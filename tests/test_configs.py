"""Every shipped config parses and builds; detectors run a forward pass."""
import copy
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DATASETS, MODELS, DefaultScope

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    p for p in glob.glob(
        osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p)


def _rel(path: str) -> str:
    return osp.relpath(path, REPO)


@pytest.fixture(scope='module')
def digits_root(tmp_path_factory):
    from nasbnn_mm.datasets import prepare_digits
    root = str(tmp_path_factory.mktemp('digits'))
    prepare_digits(root, num_train_canvases=8, num_val_canvases=4)
    return root


def _load(path: str) -> Config:
    cfg = Config.fromfile(path)
    if cfg.get('custom_imports'):
        from mmengine.utils import import_modules_from_strings
        import_modules_from_strings(**cfg.custom_imports)
    return cfg


def _point_digits_datasets(cfg: Config, root: str) -> list:
    """Redirect the digits dataloaders to ``root``; return their configs."""
    datasets = []
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader',
                'search_val_dataloader'):
        loader = cfg.get(key)
        if not loader or 'digits' not in str(loader['dataset'].get(
                'data_root', '')):
            continue
        dataset = loader['dataset']
        kind = 'det' if 'det' in dataset['data_root'] else 'cls'
        dataset['data_root'] = osp.join(root, kind) + '/'
        datasets.append(dataset)
    evaluator = cfg.get('val_evaluator')
    if isinstance(evaluator, dict) and 'ann_file' in evaluator:
        evaluator['ann_file'] = osp.join(root, 'det', 'annotations',
                                         'instances_val.json')
    return datasets


def test_configs_are_found():
    assert len(CONFIGS) >= 5


@pytest.mark.parametrize('path', CONFIGS, ids=_rel)
def test_config_builds(path, digits_root):
    cfg = _load(path)
    # the config's scope only inside this test
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
        _build_and_run(cfg, digits_root)


def _build_and_run(cfg: Config, digits_root: str) -> None:
    if cfg.model.get('backbone', {}).get('init_cfg'):
        cfg.model.backbone.init_cfg = None  # no pretrained files in tests
    model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0
    for dataset_cfg in _point_digits_datasets(cfg, digits_root):
        assert len(DATASETS.build(dataset_cfg)) > 0
    if cfg.get('default_scope') == 'mmdet':
        model.eval()
        with torch.no_grad():
            feats = model.extract_feat(torch.zeros(1, 3, 64, 64))
            outs = model.rpn_head(feats)
        assert len(outs[0]) == len(feats)


# Detectors with the binary neck and heads (`_binary-fpn-head_` configs).
BINARY_DET_CONFIGS = [p for p in CONFIGS if '_binary-fpn-head_' in p]


def test_binary_det_configs_are_found():
    names = {osp.basename(p) for p in BINARY_DET_CONFIGS}
    assert names == {
        f'faster-rcnn_nasbnn-{name}_binary-fpn-head_{schedule}.py'
        for name, schedule in [(a, '1x_coco') for a in 'abcdef'] +
        [('base', '1x_coco'), ('digits-l',
                               '6e_digits'), ('digits-l', '6e_digits_packed')]
    }


def _precision(model, prefix: str) -> set:
    from nasbnn_mm.models.utils import precision_map
    return {p for n, p, _ in precision_map(model) if n.startswith(prefix)}


@pytest.mark.parametrize('path', BINARY_DET_CONFIGS, ids=_rel)
def test_binary_det_config_trains_one_step(path):
    """Build (init included), check the precision map, take one SGD step
    on two tiny images: every binary part gets a gradient."""
    from mmdet.testing import demo_mm_inputs
    from mmengine.optim import OptimWrapper

    cfg = _load(path)
    cfg.model.backbone.init_cfg = None  # no supernet file in tests
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
        model.init_weights()
        assert _precision(model, 'backbone.stem') == {'8-bit'}
        for prefix in ('neck.', 'rpn_head.rpn_conv.',
                       'roi_head.bbox_head.shared_fcs.'):
            assert _precision(model, prefix) == {'binary'}, prefix
        for prefix in ('rpn_head.rpn_cls', 'rpn_head.rpn_reg',
                       'roi_head.bbox_head.fc_cls',
                       'roi_head.bbox_head.fc_reg'):
            assert _precision(model, prefix) == {'FP32'}, prefix
        torch.manual_seed(0)
        data = demo_mm_inputs(
            batch_size=2,
            image_shapes=(3, 64, 64),
            num_items=[2, 1],
            num_classes=cfg.model.roi_head.bbox_head.num_classes)
        optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        losses = model.train_step(data, optim)
    assert all(torch.isfinite(v).all() for v in losses.values())
    changed = [
        n for n, p in model.named_parameters()
        if not torch.equal(p, before[n])
    ]
    for part in ('backbone.stages.', 'neck.lateral_convs.', 'neck.fpn_convs.',
                 'rpn_head.rpn_conv.', 'roi_head.bbox_head.shared_fcs.',
                 'roi_head.bbox_head.fc_cls.'):
        assert any(n.startswith(part) for n in changed), part


def test_supernet_schedule_adam_is_fused_and_updates_as_the_loop():
    """supernet_adam.py's Adam (``fused=True``, with the paramwise decay
    rules) takes the same steps as torch's per-parameter loop."""
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/_base_/schedules/supernet_adam.py'))
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.Flatten(),
        torch.nn.Linear(8, 4))
    reference = copy.deepcopy(model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    groups = wrapper.optimizer.param_groups
    assert all(group['fused'] for group in groups)
    loop = torch.optim.Adam([
        dict(
            group,
            params=[
                dict(reference.named_parameters())[name]
                for name, p in model.named_parameters()
                if any(p is q for q in group['params'])
            ],
            fused=None) for group in groups
    ])
    assert sorted({g['weight_decay'] for g in groups}) == [0.0, 5e-6]
    initial = [p.detach().clone() for p in model.parameters()]
    for _ in range(3):
        for p, q in zip(model.parameters(), reference.parameters()):
            p.grad = torch.randn_like(p)
            q.grad = p.grad.clone()
        wrapper.step()
        loop.step()
    for p, q, start in zip(model.parameters(), reference.parameters(),
                           initial):
        assert not torch.equal(p, start)
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
