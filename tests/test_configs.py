"""Every shipped config parses and builds; detectors run a forward pass."""
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
