"""tools/deploy/pack_subnet.py on a small exported subnet, in-process."""
import json
import os.path as osp
import re

import pytest
import torch
# NOTE: pytest puts this folder on sys.path (no __init__.py in tests/).
from test_packed_nasbnn import ARCH, SPACE, float_pair

from nasbnn_mm.deploy import load_packed, pack_nasbnn
from nasbnn_mm.models import NASBNN, subnet_checkpoint
from nasbnn_mm.testing import load_tool, trained_like

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = 'pack_subnet.py'


def _main():
    return load_tool('deploy', TOOL).main


@pytest.fixture
def exported(tmp_path):
    backbone, fc = float_pair(ARCH, 0)
    path = tmp_path / 'subnet.pth'
    torch.save(subnet_checkpoint(backbone, fc, dict(name='tiny')), path)
    return str(path), backbone, fc


def test_packs_and_verifies(exported, tmp_path, capsys):
    path, backbone, fc = exported
    out = tmp_path / 'packed' / 'subnet_packed.pth'
    assert _main()([path, '--out', str(out), '--verify']) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report['arch'] == ARCH and report['ratio'] > 31
    assert report['logits_max_abs_diff'] < 1e-4
    # the file is the packed form of the checkpoint's float subnet
    packed = load_packed(str(out))
    expected = pack_nasbnn(backbone, fc)
    for key, value in expected.state_dict().items():
        assert torch.equal(packed.state_dict()[key], value), key
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(9))
    assert torch.equal(packed.logits(x), expected.logits(x))


def _damaged(tmp_path, exported):
    path = tmp_path / 'damaged.pth'
    path.write_text('not a checkpoint')
    return str(path)


def _no_arch(tmp_path, exported):
    path = tmp_path / 'no_arch.pth'
    torch.save(
        dict(
            state_dict=torch.load(exported[0], weights_only=True)
            ['state_dict']), path)
    return str(path)


def _other_weights(tmp_path, exported):
    ckpt = torch.load(exported[0], weights_only=True)
    ckpt['state_dict'].pop('backbone.stages.2.1.bn2.running_var')
    path = tmp_path / 'other.pth'
    torch.save(ckpt, path)
    return str(path)


@pytest.mark.parametrize(
    'make,message',
    [(lambda tmp_path, exported: str(tmp_path / 'missing.pth'),
      'subnet checkpoint {}: no such file'),
     (_damaged, 'subnet checkpoint {}: it is not a PyTorch checkpoint'),
     (_no_arch, '{}: no meta.arch'),
     (_other_weights, '{}: does not fit the NASBNN of meta.arch .*: 1 '
      r'missing keys \(stages\.2\.1\.bn2\.running_var\)')])
def test_bad_checkpoints_are_one_line(exported, tmp_path, capsys, make,
                                      message):
    path = make(tmp_path, exported)
    out = tmp_path / 'packed.pth'
    assert _main()([path, '--out', str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    prefix = f'{TOOL}: error: '
    assert err.startswith(prefix)
    assert re.match(message.format(re.escape(path)), err[len(prefix):])
    assert not out.exists()


def test_weight_norm_false_export_packs_its_own_network(tmp_path, capsys):
    """Issue 18.3: an export without weight normalization packs into the
    network it is (it packed under eq. 6 and scored chance before)."""
    torch.manual_seed(0)
    backbone = trained_like(
        NASBNN(ARCH, SPACE, out_indices=(0, 1, 2), weight_norm=False), 0)
    fc = torch.nn.Linear(128, 10)
    path = tmp_path / 'subnet.pth'
    torch.save(subnet_checkpoint(backbone, fc), path)
    out = tmp_path / 'packed.pth'
    assert _main()([str(path), '--out', str(out), '--verify']) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report['logits_max_abs_diff'] < 1e-4
    packed = load_packed(str(out))
    assert packed.weight_norm is False
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        logits = fc(backbone(x)[-1].mean((2, 3)))
        torch.testing.assert_close(
            packed.logits(x), logits, rtol=1e-4, atol=1e-4)
        # the same tensors under eq. (6) are another network
        normalized = NASBNN(
            ARCH, SPACE, out_indices=(0, 1, 2), weight_norm=True).eval()
        normalized.load_state_dict(backbone.state_dict())
        other = fc(normalized(x)[-1].mean((2, 3)))
    assert (other - logits).abs().max() > 0.1


@pytest.mark.parametrize('flag',
                         [['--no-weight-norm'], ['--no-stem-quantize-input'],
                          ['--search-space', 'nasbnn_in1k']])
def test_no_flag_overrides_the_checkpoints_conventions(exported, tmp_path,
                                                       capsys, flag):
    with pytest.raises(SystemExit) as info:
        _main()([exported[0], '--out', str(tmp_path / 'p.pth')] + flag)
    assert info.value.code == 2
    assert not (tmp_path / 'p.pth').exists()


def test_export_without_conventions_is_refused(exported, tmp_path, capsys):
    ckpt = torch.load(exported[0], weights_only=True)
    for key in ('nasbnn_conventions', 'weight_norm'):
        ckpt['meta'].pop(key)
    path = tmp_path / 'old.pth'
    torch.save(ckpt, path)
    assert _main()([str(path), '--out', str(tmp_path / 'p.pth')]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f'{TOOL}: error: {path}: meta records no '
                          'weight_norm; export the subnet again')


def test_sign_flips_count_disagreeing_binary_activations():
    module = load_tool('deploy', TOOL)
    backbone, fc = float_pair(ARCH, 0)
    backbone.eval()
    packed = pack_nasbnn(backbone, fc)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    agree = module.sign_flips(backbone, packed, x)
    assert agree['sign_flips'] == 0 and agree['first_flip_block'] is None
    assert agree['signs'] > 0
    with torch.no_grad():
        packed.stages[0][1].sign1.bias += 100.0
    flips = module.sign_flips(backbone, packed, x)
    assert flips['first_flip_block'] == 1
    assert flips['sign_flips'] > 0
    assert flips['sign_flip_max_abs_preactivation'] > 0
