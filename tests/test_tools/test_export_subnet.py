"""tools/export_subnet.py end to end on a tiny supernet checkpoint.

Run in-process (``main(argv)``): starting Python with torch takes seconds.
"""
import copy
import json
import os.path as osp
import pickle

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import Runner

from nasbnn_mm.engine import recalibrate_bn
from nasbnn_mm.models import NASBNN, SandwichSupernet, export_subnet
from nasbnn_mm.nas import (count_arch_ops, load_arch, parse_arch,
                           sample_largest, sample_smallest)
from nasbnn_mm.testing import TINY_ARCH, TINY_SPACE, LabelSample, load_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SUBNET_CFG = osp.join(REPO, 'configs/nasbnn/nasbnn-subnet_digits.py')

# Without MMPretrain: the supernet alone, BN statistics kept.
PLAIN_CFG = f"""
default_scope = 'nasbnn_mm'
model = dict(
    type='SandwichSupernet',
    backbone=dict(type='SuperBNN', search_space={TINY_SPACE!r}))
"""
# With MMPretrain: its data preprocessor and an image folder (at ROOT) to
# recalibrate BN on.
MMPRETRAIN_CFG = f"""
default_scope = 'mmpretrain'
custom_imports = dict(imports=['nasbnn_mm'], allow_failed_imports=False)
model = dict(
    type='nasbnn_mm.SandwichSupernet',
    backbone=dict(type='nasbnn_mm.SuperBNN', search_space={TINY_SPACE!r}))
data_preprocessor = dict(
    type='mmpretrain.ClsDataPreprocessor',
    num_classes=4,
    mean=[127.5, 127.5, 127.5],
    std=[127.5, 127.5, 127.5])
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    dataset=dict(
        type='CustomDataset',
        data_root=ROOT,
        pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')]),
    sampler=dict(type='DefaultSampler', shuffle=False))
"""


def _main(tool: str = 'export_subnet.py'):
    return load_tool(tool).main


@pytest.fixture(scope='module')
def supernet():
    torch.manual_seed(0)
    model = SandwichSupernet(
        backbone=dict(type='nasbnn_mm.SuperBNN', search_space=TINY_SPACE))
    optim = OptimWrapper(torch.optim.Adam(model.parameters(), lr=1e-2))
    model.train_step(
        dict(
            inputs=torch.randn(8, 3, 16, 16),
            data_samples=[LabelSample(i % 4) for i in range(8)]), optim)
    return model.eval()


@pytest.fixture
def checkpoint(supernet, tmp_path):
    path = tmp_path / 'supernet.pth'
    torch.save(
        dict(state_dict=supernet.state_dict(), meta=dict(epoch=1)), path)
    return str(path)


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _pareto(tmp_path, space):
    entries = [
        dict(arch=sample_smallest(space).to_dict(), top1=50.0),
        dict(arch=TINY_ARCH, top1=60.0),
        dict(arch=sample_largest(space).to_dict(), top1=70.0),
    ]
    for entry in entries:
        entry['ops_m'] = count_arch_ops(parse_arch(entry['arch']),
                                        space).ops / 1e6
    path = tmp_path / 'pareto.json'
    path.write_text(json.dumps(entries))
    return str(path), [e['ops_m'] for e in entries]


def test_export_from_pareto_without_calibration(supernet, checkpoint,
                                                tmp_path):
    config = _write(tmp_path, 'supernet_cfg.py', PLAIN_CFG)
    pareto, ops = _pareto(tmp_path, supernet.space)
    out = tmp_path / 'export'
    budget = (ops[1] + ops[2]) / 2
    assert _main()([
        checkpoint, '--config', config, '--pareto', pareto, '--ops',
        str(budget), '--out',
        str(out), '--name', 'tiny', '--calibrate-batches', '0'
    ]) == 0
    ckpt = torch.load(out / 'tiny.pth', weights_only=True)
    meta = ckpt['meta']
    assert meta['arch'] == TINY_ARCH
    assert meta['ops_m'] == pytest.approx(ops[1])
    assert meta['pareto_top1'] == 60.0 and meta['calibrate_batches'] == 0
    assert load_arch(str(out / 'arch.json')).to_dict() == TINY_ARCH
    assert not (out / 'tiny_cfg.py').exists()
    # BN statistics kept: the export equals the supernet's subnet
    backbone = NASBNN(TINY_ARCH, TINY_SPACE).eval()
    backbone.load_state_dict({
        k[len('backbone.'):]: v
        for k, v in ckpt['state_dict'].items() if k.startswith('backbone.')
    })
    fc = torch.nn.Linear(32, 4)
    fc.load_state_dict({
        'weight': ckpt['state_dict']['head.fc.weight'],
        'bias': ckpt['state_dict']['head.fc.bias']
    })
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = supernet.logits(x,
                                   supernet.backbone.resolve_arch(TINY_ARCH))
        actual = fc(backbone(x)[-1].mean(dim=(2, 3)))
    assert (actual - expected).abs().max() <= 1e-4


def test_pareto_budget_too_small(checkpoint, tmp_path, supernet, capsys):
    config = _write(tmp_path, 'supernet_cfg.py', PLAIN_CFG)
    pareto, ops = _pareto(tmp_path, supernet.space)
    assert _main()([
        checkpoint, '--config', config, '--pareto', pareto, '--ops',
        str(ops[0] / 2), '--out',
        str(tmp_path / 'out'), '--calibrate-batches', '0'
    ]) == 2
    err = capsys.readouterr().err
    assert err.startswith('export_subnet.py: error: --ops ')
    assert len(err.strip().splitlines()) == 1
    assert 'no entry of' in err and f'the smallest has {ops[0]:g}' in err
    assert not (tmp_path / 'out').exists()


def test_checkpoint_of_another_space_is_refused(tmp_path, capsys):
    config = _write(tmp_path, 'supernet_cfg.py', PLAIN_CFG)
    other = SandwichSupernet(
        backbone=dict(type='nasbnn_mm.SuperBNN', search_space='nasbnn_digits'))
    path = tmp_path / 'other.pth'
    torch.save(dict(state_dict=other.state_dict()), path)
    assert _main()([
        str(path), '--config', config, '--arch',
        _write(tmp_path, 'arch.json', json.dumps(TINY_ARCH)), '--out',
        str(tmp_path / 'out'), '--calibrate-batches', '0'
    ]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert f'{path}: does not fit the supernet of the config' in err


@pytest.mark.parametrize('name', ['smallest', 'largest'])
def test_arch_names_the_sandwich_extremes(supernet, checkpoint, tmp_path,
                                          name):
    """``--arch smallest``/``largest`` export the supernet's own
    extremes, as ``test_cfg.subnets`` names them."""
    config = _write(tmp_path, 'supernet_cfg.py', PLAIN_CFG)
    out = tmp_path / 'out'
    assert _main()([
        checkpoint, '--config', config, '--arch', name, '--out',
        str(out), '--calibrate-batches', '0'
    ]) == 0
    meta = torch.load(out / 'subnet.pth', weights_only=True)['meta']
    assert meta['arch'] == getattr(supernet, name).to_dict()


@pytest.mark.parametrize('argv,message', [
    (['--arch', 'tiny'], "--arch: arch 'tiny': neither smallest nor largest"),
    (['--arch', 'A'], '--arch: stages: 5 stages given, the space has 2'),
])
def test_bad_arch_is_one_line(checkpoint, tmp_path, capsys, argv, message):
    config = _write(tmp_path, 'supernet_cfg.py', PLAIN_CFG)
    assert _main()([
        checkpoint, '--config', config, '--out',
        str(tmp_path / 'out'), '--calibrate-batches', '0'
    ] + argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f'export_subnet.py: error: {message}')
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / 'out').exists()


def test_damaged_checkpoint_is_one_line(tmp_path, capsys):
    config = _write(tmp_path, 'supernet_cfg.py', PLAIN_CFG)
    damaged = _write(tmp_path, 'damaged.pth', 'not a checkpoint')
    assert _main()([
        damaged, '--config', config, '--arch', 'smallest', '--out',
        str(tmp_path / 'out'), '--calibrate-batches', '0'
    ]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f'export_subnet.py: error: supernet checkpoint {damaged}: ')
    assert len(err.strip().splitlines()) == 1


def _image_folder(root):
    rng = np.random.default_rng(0)
    for label in range(4):
        folder = root / str(label)
        folder.mkdir(parents=True)
        for i in range(2):
            image = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
            cv2.imwrite(str(folder / f'{i}.png'), image)


def test_export_with_calibration_and_subnet_config(supernet, checkpoint,
                                                   tmp_path, capsys):
    pytest.importorskip('mmpretrain')
    _image_folder(tmp_path / 'images')
    config = _write(
        tmp_path, 'supernet_cfg.py',
        MMPRETRAIN_CFG.replace('ROOT', repr(str(tmp_path / 'images'))))
    arch = _write(tmp_path, 'arch.json', json.dumps(TINY_ARCH))
    out = tmp_path / 'export'
    argv = [
        checkpoint, '--config', config, '--arch', arch, '--out',
        str(out), '--subnet-config', SUBNET_CFG
    ]
    assert _main()(argv + ['--calibrate-batches', '2']) == 0
    calibrated = torch.load(out / 'subnet.pth', weights_only=True)
    assert calibrated['meta']['calibrate_batches'] == 2
    assert _main()(argv + ['--name', 'kept', '--calibrate-batches', '0']) \
        == 0
    kept = torch.load(out / 'kept.pth', weights_only=True)
    # without the flag: as many batches as the config validates with
    assert _main()(
        argv +
        ['--name', 'default', '--cfg-options', 'test_cfg.calibrate_batches=1']
    ) == 0
    default = torch.load(out / 'default.pth', weights_only=True)
    assert default['meta']['calibrate_batches'] == 1
    assert _main(
    )(argv +
      ['--name', 'bad', '--cfg-options', 'test_cfg.calibrate_batches=-1']) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f'export_subnet.py: error: {config}: '
                   'test_cfg.calibrate_batches: -1 must be an integer >= 0 '
                   '(or give --calibrate-batches)')
    assert not (out / 'bad.pth').exists()
    assert _main()(
        argv +
        ['--name', 'bad', '--cfg-options', 'test_cfg.calibrate_batches=True']
    ) == 2  # a bool is not a batch count
    assert 'calibrate_batches: True must be' in capsys.readouterr().err
    assert not (out / 'bad.pth').exists()
    key = 'backbone.stages.1.0.bn2.running_mean'
    assert not torch.allclose(calibrated['state_dict'][key],
                              kept['state_dict'][key])
    # the statistics are those of the supernet's subnet recalibrated on the
    # same two batches
    init_default_scope('mmpretrain')
    reference = copy.deepcopy(supernet)
    preprocess = MODELS.build(Config.fromfile(config).data_preprocessor)
    arch_spec = reference.backbone.resolve_arch(TINY_ARCH)
    recalibrate_bn(
        reference,
        Runner.build_dataloader(Config.fromfile(config).train_dataloader),
        lambda b: reference.logits(preprocess(b)['inputs'], arch_spec), 2)
    expected, _ = export_subnet(reference.backbone, reference.head, arch_spec)
    for name, value in expected.state_dict().items():
        torch.testing.assert_close(
            calibrated['state_dict'][f'backbone.{name}'], value)

    # the written config builds an ImageClassifier that loads the export
    cfg = Config.fromfile(str(out / 'kept_cfg.py'))
    assert cfg.load_from == str(out / 'kept.pth')
    assert cfg.model.head.in_channels == 32
    assert cfg.model.head.num_classes == 4
    assert cfg.model.backbone.weight_norm is True
    assert cfg.model.backbone.stem_quantize_input is True
    classifier = MODELS.build(cfg.model).eval()
    classifier.load_state_dict(kept['state_dict'])
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = supernet.logits(x,
                                   supernet.backbone.resolve_arch(TINY_ARCH))
        actual = classifier(x, mode='tensor')
    assert (actual - expected).abs().max() <= 1e-4

    # tools/test.py runs the written config (its base carries a
    # train_dataloader but no optimizer) and prints the classifier's top-1
    images = str(tmp_path / 'images')
    assert _main('test.py')([
        str(out / 'kept_cfg.py'),
        str(out / 'kept.pth'), '--work-dir',
        str(tmp_path / 'test'), '--cfg-options',
        f'test_dataloader.dataset.data_root={images}',
        'test_dataloader.dataset.data_prefix=', 'test_dataloader.batch_size=8',
        'test_evaluator.topk=[1]'
    ]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    batch = Runner.build_dataloader(
        Config.fromfile(config).train_dataloader).dataset
    labels = torch.tensor(
        [batch[i]['data_samples'].gt_label.item() for i in range(len(batch))])
    inputs = torch.stack([batch[i]['inputs'] for i in range(len(batch))])
    # the config's own normalization, as the runner uses it
    preprocess = MODELS.build(cfg.data_preprocessor)
    with torch.no_grad():
        logits = classifier(
            preprocess(dict(inputs=list(inputs)))['inputs'], mode='tensor')
    top1 = 100 * (logits.argmax(1) == labels).float().mean().item()
    assert printed['accuracy/top1'] == pytest.approx(top1)


def test_test_py_on_supernet_and_spec_equals_the_export(
        supernet, checkpoint, tmp_path):
    """tools/test.py on a supernet config + spec (SubnetTestLoop, BN on 2
    training batches) predicts what it predicts on the export calibrated on
    the same batches."""
    pytest.importorskip('mmpretrain')
    images = str(tmp_path / 'images')
    _image_folder(tmp_path / 'images')
    data = f"""
test_dataloader = dict(
    batch_size=8,
    num_workers=0,
    dataset=dict(
        type='CustomDataset',
        data_root={images!r},
        data_prefix='',
        pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')]),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_evaluator = dict(type='Accuracy', topk=(1, ))
"""
    supernet_cfg = _write(
        tmp_path, 'supernet_cfg.py',
        MMPRETRAIN_CFG.replace('ROOT', repr(images)) + data + f"""
test_cfg = dict(
    type='nasbnn_mm.SubnetTestLoop',
    subnets=[dict(name='spec', arch={TINY_ARCH!r})],
    calibrate_batches=2)
train_cfg = dict(by_epoch=True, max_epochs=1)
optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-3))
""")
    arch = _write(tmp_path, 'arch.json', json.dumps(TINY_ARCH))
    out = tmp_path / 'export'
    assert _main()([
        checkpoint, '--config', supernet_cfg, '--arch', arch, '--out',
        str(out), '--subnet-config', SUBNET_CFG, '--calibrate-batches', '2'
    ]) == 0
    # the supernet config's normalization replaces the digits base's
    written = Config.fromfile(str(out / 'subnet_cfg.py'))
    assert written.data_preprocessor == Config.fromfile(
        supernet_cfg).data_preprocessor
    with open(out / 'subnet_cfg.py', 'a') as f:
        f.write(data)
    test = _main('test.py')
    assert test([
        supernet_cfg, checkpoint, '--work-dir',
        str(tmp_path / 'w1'), '--out',
        str(tmp_path / 'supernet.pkl')
    ]) == 0
    assert test([
        str(out / 'subnet_cfg.py'),
        str(out / 'subnet.pth'), '--work-dir',
        str(tmp_path / 'w2'), '--out',
        str(tmp_path / 'export.pkl')
    ]) == 0
    scores = []
    for name in ('supernet.pkl', 'export.pkl'):
        with open(tmp_path / name, 'rb') as f:
            scores.append(
                torch.stack([r['pred_score'] for r in pickle.load(f)]))
    assert scores[0].shape == (8, 4)
    torch.testing.assert_close(scores[0], scores[1], atol=1e-5, rtol=0)
