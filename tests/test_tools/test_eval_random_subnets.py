"""tools/analysis_tools/eval_random_subnets.py on a tiny toy supernet.

Run in-process (``main(argv)``): starting Python with torch takes seconds.
"""
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from nasbnn_mm.models import SandwichSupernet
from nasbnn_mm.nas import SearchSpace, count_arch_ops, parse_arch
from nasbnn_mm.testing import TINY_SPACE, load_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
NUM_VAL = 6
CONFIG = """
default_scope = 'mmpretrain'
custom_imports = dict(imports=['nasbnn_mm'], allow_failed_imports=False)
model = dict(
    type='nasbnn_mm.SandwichSupernet',
    backbone=dict(type='nasbnn_mm.SuperBNN', search_space={space!r}))
data_preprocessor = dict(
    type='mmpretrain.ClsDataPreprocessor', num_classes=4,
    mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5])
pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=4, num_workers=0,
    dataset=dict(type='CustomDataset', data_root={root!r} + '/train',
                 pipeline=pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=4, num_workers=0,
    dataset=dict(type='CustomDataset', data_root={root!r} + '/val',
                 pipeline=pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_cfg = dict(type='nasbnn_mm.SubnetValLoop', calibrate_batches=2)
"""


def _main():
    return load_tool('analysis_tools', 'eval_random_subnets.py').main


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """A config over tiny image folders and a supernet checkpoint."""
    root = tmp_path_factory.mktemp('random_subnets')
    rng = np.random.default_rng(0)
    for split, per_class in (('train', 3), ('val', 2)):
        for label in range(3 if split == 'val' else 4):
            folder = root / split / f'class{label}'
            folder.mkdir(parents=True)
            for i in range(per_class):
                image = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
                cv2.imwrite(str(folder / f'{i}.png'), image)
    config = root / 'supernet_tiny.py'
    config.write_text(CONFIG.format(space=TINY_SPACE, root=str(root)))
    torch.manual_seed(0)
    model = SandwichSupernet(
        backbone=dict(type='nasbnn_mm.SuperBNN', search_space=TINY_SPACE))
    checkpoint = str(root / 'supernet.pth')
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    return dict(config=str(config), checkpoint=checkpoint)


def test_random_subnets_json_and_plot(setup, tmp_path):
    main = _main()
    argv = [
        setup['config'], setup['checkpoint'], '--num', '5', '--device', 'cpu'
    ]
    assert main(argv + ['--out-dir', str(tmp_path / 'a')]) == 0
    with open(tmp_path / 'a' / 'random_subnets.json') as f:
        result = json.load(f)
    assert osp.getsize(tmp_path / 'a' / 'random_subnets.png') > 1000
    assert result['num'] == 5 and result['calibrate_batches'] == 2
    subnets = result['subnets']
    archs = [json.dumps(s['arch'], sort_keys=True) for s in subnets]
    assert len(set(archs)) == 5  # distinct
    space = SearchSpace.from_dict(TINY_SPACE)
    top1 = []
    for s in subnets:
        arch = parse_arch(s['arch'])
        assert s['ops_m'] == pytest.approx(
            count_arch_ops(arch, space).ops / 1e6)
        # a count of the 6 validation images
        assert s['top1'] * NUM_VAL / 100 == pytest.approx(
            round(s['top1'] * NUM_VAL / 100))
        top1.append(s['top1'])
    assert result['summary']['mean'] == pytest.approx(np.mean(top1))
    assert result['summary']['std'] == pytest.approx(np.std(top1))
    assert result['summary']['max'] == max(top1)

    # the seed fixes the subnets and their scores; another seed draws others
    assert main(argv + ['--out-dir', str(tmp_path / 'b')]) == 0
    with open(tmp_path / 'b' / 'random_subnets.json') as f:
        assert json.load(f)['subnets'] == subnets
    assert main(argv + ['--seed', '1', '--out-dir', str(tmp_path / 'c')]) == 0
    with open(tmp_path / 'c' / 'random_subnets.json') as f:
        assert [s['arch'] for s in json.load(f)['subnets']
                ] != [s['arch'] for s in subnets]


def test_bad_inputs_print_one_line(setup, tmp_path, capsys):
    main = _main()
    missing = str(tmp_path / 'missing.pth')
    assert main([setup['config'], missing, '--num', '2']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f'eval_random_subnets.py: error: checkpoint {missing}: '
        'no such file'
    ]
    assert main([setup['config'], setup['checkpoint'], '--num', '0']) == 2
    assert 'error: --num: 0 must be >= 1' in capsys.readouterr().err
