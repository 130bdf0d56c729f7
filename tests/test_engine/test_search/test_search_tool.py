"""tools/search.py: a search, and one line with exit status 2 for bad input.

Run in-process (``main()``): starting Python with torch takes seconds.
"""
import json
import os.path as osp
import sys

import cv2
import numpy as np
import pytest
import torch

from nasbnn_mm.models import SandwichSupernet
from nasbnn_mm.testing import ONE_STAGE_SPACE, load_tool

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

CONFIG = """
default_scope = 'mmpretrain'
custom_imports = dict(imports=['nasbnn_mm'], allow_failed_imports=False)
model = dict(
    type='nasbnn_mm.SandwichSupernet',
    backbone=dict(type='nasbnn_mm.SuperBNN', search_space={space!r}))
data_preprocessor = dict(
    type='mmpretrain.ClsDataPreprocessor', num_classes=4,
    mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5])
data = dict(
    batch_size=4, num_workers=0,
    dataset=dict(type='CustomDataset', data_root={root!r},
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='PackInputs')]),
    sampler=dict(type='DefaultSampler', shuffle=False))
train_dataloader = data
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01))
train_cfg = dict(
    type='nasbnn_mm.EvolutionSearchLoop',
    problem=dict(type='nasbnn_mm.SupernetSearchProblem',
                 eval_dataloader=data, calibrate_batches=1),
    max_generations=0, population_size=3, cost_range=(0.001, 0.02),
    bucket_step=0.005)
default_hooks = dict(checkpoint=None)
"""


def _main():
    return load_tool('search.py').main


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """A config over a 4-class image folder and two supernet checkpoints."""
    root = tmp_path_factory.mktemp('search_tool')
    rng = np.random.default_rng(0)
    for label in range(4):
        folder = root / 'images' / f'class{label}'
        folder.mkdir(parents=True)
        for i in range(2):
            image = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
            cv2.imwrite(str(folder / f'{i}.png'), image)
    config = root / 'search_tiny.py'
    config.write_text(
        CONFIG.format(space=ONE_STAGE_SPACE, root=str(root / 'images')))
    checkpoints = []
    for seed in range(2):
        torch.manual_seed(seed)
        model = SandwichSupernet(
            backbone=dict(
                type='nasbnn_mm.SuperBNN', search_space=ONE_STAGE_SPACE))
        path = str(root / f'supernet{seed}.pth')
        torch.save(dict(state_dict=model.state_dict()), path)
        checkpoints.append(path)
    return dict(config=str(config), checkpoints=checkpoints)


def _run(monkeypatch, capsys, *argv) -> tuple:
    monkeypatch.setattr(sys, 'argv', ['search.py', *argv])
    code = _main()()
    captured = capsys.readouterr()
    return code, captured.err.strip().splitlines()


def test_search_then_resume_checks_the_checkpoint(setup, tmp_path, monkeypatch,
                                                  capsys):
    config, (ckpt, other) = setup['config'], setup['checkpoints']
    work = str(tmp_path / 'work')
    code, _ = _run(monkeypatch, capsys, config, ckpt, '--work-dir', work)
    assert code == 0
    with open(osp.join(work, 'pareto.json')) as f:
        assert len(json.load(f)) >= 1
    with open(osp.join(work, 'search_state.json')) as f:
        before = f.read()

    code, err = _run(monkeypatch, capsys, config, other, '--work-dir', work,
                     '--resume')
    assert code == 2 and len(err) == 1
    assert err[0].startswith('search.py: error: resume: checkpoint')
    assert ckpt in err[0] and other in err[0]
    with open(osp.join(work, 'search_state.json')) as f:
        assert f.read() == before  # nothing was written

    # NOTE: a name of its own, or MMEngine warns that a runner of the same
    # timestamped name (the run before, within the same second) exists
    code, _ = _run(monkeypatch, capsys, config, ckpt, '--work-dir', work,
                   '--resume', '--cfg-options', 'train_cfg.max_generations=1',
                   'experiment_name=search_resumed')
    assert code == 0


def test_bad_inputs_print_one_line(setup, tmp_path, monkeypatch, capsys):
    config, (ckpt, _) = setup['config'], setup['checkpoints']
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'search_state.json').write_text('{"format": "nasbnn_mm.Evo')
    code, err = _run(monkeypatch, capsys, config, ckpt, '--work-dir',
                     str(work), '--resume')
    assert code == 2 and len(err) == 1
    assert str(work / 'search_state.json') in err[0]
    assert 'truncated or damaged' in err[0] and 'delete it' in err[0]

    code, err = _run(monkeypatch, capsys, config, str(tmp_path / 'no.pth'))
    assert code == 2 and err == [
        f'search.py: error: checkpoint {tmp_path / "no.pth"}: no such file'
    ]

    damaged = tmp_path / 'damaged.pth'
    with open(ckpt, 'rb') as f:
        damaged.write_bytes(f.read()[:100])
    code, err = _run(monkeypatch, capsys, config, str(damaged), '--work-dir',
                     str(tmp_path / 'w2'))
    assert code == 2 and len(err) == 1
    assert str(damaged) in err[0] and 'truncated' in err[0]
