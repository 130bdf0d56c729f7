"""tools/train.py and tools/test.py, MMPretrain's own tools, torchrun on CPU.

* a checkpoint that does not fit the model is refused by
  ``CheckpointKeysHook`` (unless ``allow_partial_load``);
* every shipped config has consistent dataloader options and a complete
  (or no) set of training parts, as MMPretrain's and MMDetection's own
  ``tools/train.py`` / ``tools/test.py`` need;
* the digits supernet trains and tests with MMPretrain's own tools;
* training configs run under ``torchrun --nproc-per-node 2`` on CPU (gloo).
  The supernet runs in every test session; the other training configs
  (fine-tuning, width search, the two digits detectors, 25-40 s each on 2
  cores) run with ``NASBNN_DIST_ALL=1``. The searched width config needs
  the 4x network's checkpoint and the search configs run through
  ``tools/search.py``.
"""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from nasbnn_mm.datasets import prepare_digits
from nasbnn_mm.engine.hooks.checkpoint_keys_hook import (
    CheckpointKeysHook, add_checkpoint_keys_hook, checkpoint_key_problems)
from nasbnn_mm.utils import CheckpointError

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SUPERNET_CFG = osp.join(REPO, 'configs/nasbnn/nasbnn_supernet_digits.py')
SUBNET_CFG = osp.join(REPO, 'configs/nasbnn/nasbnn-subnet_digits.py')
MMPRETRAIN_TOOLS = osp.join(
    osp.dirname(pytest.importorskip('mmpretrain').__file__), '.mim', 'tools')
SHIPPED = sorted(
    p for p in glob.glob(
        osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p.split(os.sep))
DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader',
               'search_val_dataloader')
TRAINING_PARTS = ('train_dataloader', 'train_cfg', 'optim_wrapper')


class _Net(nn.Module):

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)


class _Runner:
    """What the hook reads of a runner."""

    def __init__(self, model, load_from='net.pth') -> None:
        self.model = model
        self.cfg = Config(dict(load_from=load_from))


def test_fitting_checkpoint_has_no_problem():
    net = _Net()
    assert checkpoint_key_problems(net, dict(state_dict=net.state_dict())) \
        == []
    # DDP's prefix is dropped, as mmengine's loader drops it
    state = {f'module.{k}': v for k, v in net.state_dict().items()}
    assert checkpoint_key_problems(_Net(), state) == []


def test_missing_unexpected_and_mis_shaped_keys_are_named():
    state = _Net().state_dict()
    del state['bn.weight'], state['bn.bias'], state['conv.bias']
    state['head.fc.weight'] = torch.zeros(2)
    assert checkpoint_key_problems(_Net(), state) == [
        "3 missing keys: 'bn.bias', 'bn.weight' (+1 more)",
        "1 unexpected keys: 'head.fc.weight'"
    ]
    state = _Net().state_dict()
    state['bn.weight'] = torch.zeros(8)
    assert checkpoint_key_problems(_Net(), state) == [
        "1 shape mismatches, first 'bn.weight': (8,) in the checkpoint, "
        '(4,) in the model'
    ]


def test_hook_refuses_a_checkpoint_of_another_model():
    state = dict(state_dict={'fc.weight': torch.zeros(2, 2)})
    with pytest.raises(CheckpointError) as e:
        CheckpointKeysHook().after_load_checkpoint(_Runner(_Net()), state)
    message = str(e.value)
    assert message.startswith(
        # BatchNorm fills in a missing num_batches_tracked itself
        "checkpoint net.pth does not fit the model (_Net): 6 missing keys: "
        "'bn.bias', 'bn.running_mean' (+4 more); 1 unexpected keys: "
        "'fc.weight'; for an intended partial load set "
        'allow_partial_load=True')
    assert '\n' not in message


def test_hook_allows_an_intended_partial_load():
    net = _Net()
    state = net.state_dict()
    del state['bn.running_mean']
    state['bn.weight'] = torch.full((4, ), 3.0)
    hook = CheckpointKeysHook(allow_partial_load=True, checkpoint_name='x')
    hook.after_load_checkpoint(_Runner(net), dict(state_dict=state))
    assert torch.equal(net.bn.weight, torch.full((4, ), 3.0))


def test_tools_add_the_hook_to_any_config():
    cfg = Config(dict(custom_hooks=[dict(type='nasbnn_mm.RandomStateHook')]))
    add_checkpoint_keys_hook(cfg, 'a.pth', allow_partial_load=True)
    assert cfg.custom_hooks[-1] == dict(
        type='nasbnn_mm.CheckpointKeysHook',
        checkpoint_name='a.pth',
        allow_partial_load=True)
    add_checkpoint_keys_hook(cfg, 'b.pth')
    assert len(cfg.custom_hooks) == 2
    assert cfg.custom_hooks[-1]['checkpoint_name'] == 'b.pth'


@pytest.mark.parametrize('path', SHIPPED, ids=lambda p: osp.relpath(p, REPO))
def test_shipped_configs_suit_the_downstream_tools(path):
    """MMPretrain's tools/train.py turns persistent_workers on where a config
    leaves it unset (PyTorch refuses that without workers); mmengine's
    Runner (all tools/test.py) wants all training parts or none."""
    cfg = Config.fromfile(path)
    for key in DATALOADERS:
        loader = cfg.get(key, None)
        if loader is None:
            continue
        persistent = loader.get('persistent_workers', True)
        assert loader.get('num_workers', 0) > 0 or not persistent, \
            f'{key}: num_workers=0 needs persistent_workers=False'
    given = [cfg.get(key, None) is not None for key in TRAINING_PARTS]
    assert all(given) or not any(given), dict(zip(TRAINING_PARTS, given))


def _env():
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (REPO, env.get('PYTHONPATH')) if p)
    return env


@pytest.fixture(scope='module')
def digits(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('digits'))
    prepare_digits(root, num_train_canvases=4, num_val_canvases=4)
    return root


def _cls_options(digits):
    cls = osp.join(digits, 'cls')
    return [
        'train_cfg.max_epochs=1', 'default_hooks.logger.interval=1',
        'train_dataloader.batch_size=4'
    ] + [
        f'{key}.dataset.{option}'
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader')
        for option in (f'data_root={cls}', 'indices=8')
    ]


def _det_options(digits):
    det = osp.join(digits, 'det') + '/'
    ann = osp.join(det, 'annotations', 'instances_val.json')
    return [
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
        'default_hooks.logger.interval=1', 'train_dataloader.batch_size=2',
        f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}'
    ] + [
        f'{key}.dataset.data_root={det}'
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]


def _run(command, cwd):
    proc = subprocess.run(
        command,
        env=_env(),
        cwd=str(cwd),
        capture_output=True,
        text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _supernet_checkpoint(path):
    cfg = Config.fromfile(SUPERNET_CFG)
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    torch.save(dict(state_dict=MODELS.build(cfg.model).state_dict()), path)
    return str(path)


def test_test_py_partial_load_only_when_asked(digits, tmp_path):
    """The supernet's weights in the static largest subnet: refused (the
    supernet has Bi-Transformation matrices the subnet does not), and
    accepted with --allow-partial-load."""
    ckpt = _supernet_checkpoint(tmp_path / 'supernet.pth')
    command = [
        sys.executable,
        osp.join(REPO, 'tools/test.py'), SUBNET_CFG, ckpt, '--work-dir',
        str(tmp_path / 'work'), '--cfg-options', *_cls_options(digits)[3:]
    ]
    proc = subprocess.run(
        command, env=_env(), cwd=str(tmp_path), capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f'test.py: error: checkpoint {ckpt} does '
                                  'not fit the model (ImageClassifier): ')
    assert 'unexpected keys' in proc.stderr
    proc = _run(command + ['--allow-partial-load'], tmp_path)
    metrics = json.loads(proc.stdout.strip().splitlines()[-1])
    assert 0 <= metrics['accuracy/top1'] <= 100


def test_mmpretrain_own_tools_train_and_test_the_supernet(digits, tmp_path):
    work = tmp_path / 'work'
    _run([
        sys.executable,
        osp.join(MMPRETRAIN_TOOLS, 'train.py'), SUPERNET_CFG, '--work-dir',
        str(work), '--cfg-options', *_cls_options(digits),
        'val_cfg.calibrate_batches=1'
    ], tmp_path)
    ckpt = str(work / 'epoch_1.pth')
    proc = _run([
        sys.executable,
        osp.join(MMPRETRAIN_TOOLS,
                 'test.py'), SUPERNET_CFG, ckpt, '--work-dir',
        str(work), '--cfg-options', *_cls_options(digits),
        'test_cfg.calibrate_batches=1'
    ], tmp_path)
    assert 'largest/accuracy/top1' in proc.stdout


def _torchrun(config, options, work, cwd):
    return _run([
        sys.executable, '-m', 'torch.distributed.run', '--standalone',
        '--nproc-per-node', '2',
        osp.join(REPO, 'tools/train.py'), config, '--launcher', 'pytorch',
        '--work-dir',
        str(work), '--cfg-options', *options
    ], cwd)


def test_torchrun_trains_the_supernet_on_two_cpu_processes(digits, tmp_path):
    _torchrun(SUPERNET_CFG,
              _cls_options(digits) + ['val_cfg.calibrate_batches=1'],
              tmp_path / 'work', tmp_path)
    assert osp.isfile(tmp_path / 'work' / 'epoch_1.pth')


def _nasbnn_det_options(digits, tmp_path):
    arch = osp.join(REPO, 'configs/nasbnn_det/archs/nasbnn-digits-l.json')
    supernet = _supernet_checkpoint(tmp_path / 'supernet.pth')
    return _det_options(digits) + [
        f'model.backbone.arch={arch}',
        f'model.backbone.init_cfg.checkpoint={supernet}'
    ]


DIST_CONFIGS = [
    ('configs/nasbnn/nasbnn-subnet_ft_digits.py',
     lambda digits, _: _cls_options(digits)),
    ('configs/width_search/vgg-small_4x_digits.py',
     lambda digits, _: _cls_options(digits)),
    ('configs/nasbnn_det/faster-rcnn_r18_fpn_6e_digits.py',
     lambda digits, _: _det_options(digits)),
    ('configs/nasbnn_det/faster-rcnn_nasbnn-digits-l_fpn_6e_digits.py',
     _nasbnn_det_options),
]


@pytest.mark.skipif(
    not os.environ.get('NASBNN_DIST_ALL'),
    reason='~40 s each on 2 cores: set NASBNN_DIST_ALL=1')
@pytest.mark.parametrize(
    'config, options',
    DIST_CONFIGS,
    ids=lambda x: x if isinstance(x, str) else '')
def test_torchrun_trains_each_config_on_two_cpu_processes(
        digits, tmp_path, config, options):
    _torchrun(
        osp.join(REPO, config), options(digits, tmp_path), tmp_path / 'work',
        tmp_path)
    assert glob.glob(str(tmp_path / 'work' / 'epoch_1.pth'))
