"""The journey of a user with the released NAS-BNN supernet, rehearsed.

An official-layout state dict of the FULL ``nasbnn_in1k`` supernet
(synthetic weights, official key names and shapes, DDP ``module.``
prefix) -> ``tools/model_converters/nasbnn_official_to_mm.py`` ->
``tools/search.py`` with the ImageNet search config (one generation, a
handful of candidates, a tiny image folder at 32x32) ->
``tools/export_subnet.py`` -> the COCO Faster R-CNN config for that
subnet builds, takes its backbone from the converted supernet with the
official conventions and runs one training step on a tiny image ->
``tools/test.py`` on the classification export. No convention is named on
any command line: they travel in the checkpoints' meta.
"""
import json
import os
import os.path as osp
import sys

import numpy as np
import torch
from mmdet.registry import MODELS as MMDET_MODELS
from mmdet.testing import demo_mm_inputs
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope
# NOTE: pytest puts this folder on sys.path (no __init__.py in tests/).
from official_layout import official_state_dict
from PIL import Image

from nasbnn_mm.models import NASBNN
from nasbnn_mm.nas import SearchSpace
from nasbnn_mm.testing import load_tool
from nasbnn_mm.utils.conventions import checkpoint_conventions

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SEARCH_CONFIG = osp.join(REPO, 'configs', 'nasbnn',
                         'nasbnn_search_8xb256_in1k.py')
FT_CONFIG = osp.join(REPO, 'configs', 'nasbnn',
                     'nasbnn-b_ft_8xb64-100e_in1k.py')
DET_CONFIG = osp.join(REPO, 'configs', 'nasbnn_det',
                      'faster-rcnn_nasbnn-base_fpn_1x_coco.py')
NUM_CLASSES = 4


def _tool(*parts):
    return load_tool(*parts).main


def _image_folder(root):
    """``root/train/<class>/<i>.png``: 4 classes x 4 RGB images, 32x32."""
    rng = np.random.default_rng(0)
    for c in range(NUM_CLASSES):
        folder = osp.join(root, 'train', f'n{c:08d}')
        os.makedirs(folder)
        for i in range(4):
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(osp.join(folder, f'{i}.png'))


def _tiny_data(root):
    """Config text pointing every dataloader at the image folder."""
    return f'''
tiny_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(32, 32)),
    dict(type='PackInputs'),
]
tiny_dataset = dict(
    _delete_=True, type='CustomDataset', data_root={root!r},
    data_prefix='train', pipeline=tiny_pipeline)
tiny_loader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=tiny_dataset,
    sampler=dict(type='DefaultSampler', shuffle=False))
train_dataloader = tiny_loader
test_dataloader = tiny_loader
'''


def _write(path, text):
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    return str(path)


def test_official_supernet_to_search_export_detector_and_test(
        tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _image_folder(str(tmp_path / 'images'))
    data = _tiny_data(str(tmp_path / 'images'))

    # 1. the released checkpoint's layout -> converter
    space = SearchSpace.from_config('nasbnn_in1k')
    official = tmp_path / 'checkpoint.pth.tar'
    torch.save(
        dict(state_dict=official_state_dict(space), epoch=511), official)
    converted = str(tmp_path / 'nasbnn_supernet_in1k.pth')
    convert = _tool('model_converters', 'nasbnn_official_to_mm.py')
    assert convert([str(official), converted]) == 0
    assert checkpoint_conventions(converted)['bi_transform'] == 'max_kernel'

    # 2. tools/search.py with the ImageNet search config, no convention
    # on the command line
    search_cfg = _write(
        tmp_path / 'search_cfg.py',
        f'_base_ = [{SEARCH_CONFIG!r}]\n' + data + '''
train_cfg = dict(
    problem=dict(eval_dataloader=tiny_loader, calibrate_batches=1),
    max_generations=1, population_size=3, num_mutation=1, num_crossover=1,
    save_interval=0)
''')
    monkeypatch.setattr(sys, 'argv', [
        'search.py', search_cfg, converted, '--work-dir',
        str(tmp_path / 'search')
    ])
    assert _tool('search.py')() == 0
    pareto = str(tmp_path / 'search' / 'pareto.json')
    with open(pareto, encoding='utf-8') as f:
        front = json.load(f)
    assert front and all(20 <= e['ops_m'] for e in front)

    # 3. export the cheapest subnet of the front (pipeline 1)
    subnet_base = _write(tmp_path / 'subnet_base.py',
                         f'_base_ = [{FT_CONFIG!r}]\n' + data)
    export = _tool('export_subnet.py')
    assert export([
        converted, '--config', search_cfg, '--pareto', pareto, '--ops',
        str(min(e['ops_m'] for e in front)), '--out',
        str(tmp_path / 'export'), '--calibrate-batches', '1',
        '--subnet-config', subnet_base, '--device', 'cpu'
    ]) == 0
    subnet = str(tmp_path / 'export' / 'subnet.pth')
    exported = checkpoint_conventions(subnet)
    assert exported['weight_norm'] == 'official'
    assert exported['stem_quantize_input'] is False

    # 4. the COCO Faster R-CNN config for that subnet: builds, slices the
    # converted supernet with its conventions, takes a training step
    arch = str(tmp_path / 'export' / 'arch.json')
    det = Config.fromfile(DET_CONFIG)
    det.model.backbone.arch = arch
    det.model.backbone.init_cfg.checkpoint = converted
    det.model.neck.in_channels = list(
        NASBNN(arch, out_indices=(1, 2, 3, 4)).out_channels)
    with DefaultScope.overwrite_default_scope('mmdet'):
        detector = MMDET_MODELS.build(det.model)
        detector.init_weights()
        assert detector.backbone.weight_norm == 'official'
        assert detector.backbone.stem_quantize_input is False
        batch = demo_mm_inputs(
            batch_size=1, image_shapes=[(3, 64, 64)], num_items=[2])
        optim = OptimWrapper(torch.optim.SGD(detector.parameters(), lr=1e-3))
        losses = detector.train_step(batch, optim)
    assert all(torch.isfinite(v).all() for v in losses.values())

    # 5. tools/test.py on the classification export
    capsys.readouterr()
    assert _tool('test.py')([
        str(tmp_path / 'export' / 'subnet_cfg.py'), subnet, '--work-dir',
        str(tmp_path / 'test')
    ]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0 <= metrics['accuracy/top1'] <= 100
