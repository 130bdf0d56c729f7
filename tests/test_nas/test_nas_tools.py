"""The command-line tools of tools/analysis_tools/ built on nasbnn_mm.nas.

The ``--json`` outputs are checked in a subprocess, as a user runs them;
the rest in-process, as starting Python with torch takes seconds.
"""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

from nasbnn_mm.testing import load_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(REPO, 'tools', 'analysis_tools')
DIGITS = osp.join(REPO, 'configs/_base_/search_spaces/nasbnn_digits.py')


def _run(tool, *args):
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (REPO, env.get('PYTHONPATH')) if p)
    return subprocess.run(
        [sys.executable, osp.join(TOOLS, tool), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True)


def _main(tool):
    return load_tool('analysis_tools', tool).main


def test_get_ops_json():
    result = _run('get_ops.py', 'B', '--json')
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) == {'flops_m', 'int8ops_m', 'bops_m', 'ops_m'}
    assert out['ops_m'] == pytest.approx(56.827816)
    assert out['ops_m'] == pytest.approx(out['flops_m'] +
                                         out['int8ops_m'] / 8 +
                                         out['bops_m'] / 64)


def test_space_size_json():
    result = _run('space_size.py', '--json')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == dict(
        total=3960359488725851308032, non_decreasing=332353674695147520)


def test_get_ops_table_and_options(tmp_path, capsys):
    spec = tmp_path / 'tiny.yaml'
    spec.write_text('stem: c8_k3_g1\n'
                    'stages: [[c16_k3_g1], [c32_k3_g1], [c64_k5_g2]]\n')
    _main('get_ops.py')([str(spec), '--space', DIGITS, '--input-size', '64'])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ['name', 'kind']
    assert lines[1].split()[:2] == ['stem', 'int8ops']
    assert lines[1].split()[7] == '32x32'
    assert lines[-1].startswith('total: flops ')
    _main('get_ops.py')(['F', '--input-size', '224', '224', '--json'])
    assert json.loads(
        capsys.readouterr().out)['ops_m'] == pytest.approx(179.828008)


@pytest.mark.parametrize('ratio, table1_flops_m', [(1, 13.2), (4, 166)])
def test_get_ops_config_with_cfg_options(capsys, ratio, table1_flops_m):
    """The paper's VGG-small through the model-config path: Table 1's
    uniform-1x/4x FLOPs within 2% (binary MACs / 64, plus the FC's 10
    biases that count_module_ops adds)."""
    cfg = osp.join(REPO,
                   'configs/width_search/vgg-small_4x_8xb32-200e_cifar10.py')
    _main('get_ops.py')([
        cfg, '--input-size', '32', '--json', '--cfg-options',
        f'model.backbone.expand_ratios={ratio}'
    ])
    ops_m = json.loads(capsys.readouterr().out)['ops_m']
    expected = {1: 13.058048, 4: 165.4784}[ratio] + 10e-6
    assert ops_m == pytest.approx(expected, abs=1e-6)
    assert abs(ops_m / table1_flops_m - 1) < 0.02


def test_get_ops_errors(capsys):
    with pytest.raises(SystemExit) as e:
        _main('get_ops.py')(['G', '--json'])
    assert e.value.code == 2
    assert capsys.readouterr().err == (
        "get_ops.py: error: arch 'G': neither a preset (A, B, C, D, E, F) "
        'nor an existing file\n')
    with pytest.raises(SystemExit) as e:
        _main('get_ops.py')(['A', '--input-size', '1', '2', '3'])
    assert e.value.code == 2
    assert capsys.readouterr().err.endswith(
        'error: --input-size: expected N or H W, got 3 values\n')
    with pytest.raises(SystemExit) as e:
        _main('get_ops.py')(['A', '--cfg-options', 'model.x=1'])
    assert capsys.readouterr().err.endswith(
        "error: --cfg-options: only for a model config (.py), got 'A'\n")


def test_space_size_text(capsys):
    _main('space_size.py')([DIGITS, '--json'])
    assert json.loads(capsys.readouterr().out) == dict(
        total=584064, non_decreasing=209952)
    _main('space_size.py')([])
    out = capsys.readouterr().out
    assert 'total:          3960359488725851308032 (3.96e+21)' in out
    assert 'non-decreasing: 332353674695147520 (3.32e+17, 0.0084% of' in out


def test_get_ops_detector_parts_by_hand(capsys):
    """The digits detector with the binary neck and heads, per part, against
    hand counts; 100x100 is padded to 128x128 as mmdet pads (divisor 32)."""
    cfg = osp.join(
        REPO, 'configs/nasbnn_det/'
        'faster-rcnn_nasbnn-digits-l_binary-fpn-head_6e_digits.py')
    _main('get_ops.py')([cfg, '--input-size', '100', '--json'])
    out = json.loads(capsys.readouterr().out)
    assert out['input_size'] == [128, 128]
    parts = out['parts']
    assert list(parts) == ['backbone', 'neck', 'rpn_head', 'roi_head']
    # FPN on strides 4, 8 (32x32, 16x16): 1x1 laterals 64->64 and 128->64,
    # 3x3 outputs 64->64; all binary
    neck = 64 * 64 * 32**2 + 128 * 64 * 16**2 + 9 * 64 * 64 * (32**2 + 16**2)
    assert parts['neck'] == dict(
        flops_m=0., int8ops_m=0., bops_m=neck / 1e6, ops_m=neck / 64e6)
    # RPN: binary 3x3 64->64 on 4 levels, FP 1x1 predictors for 3 anchors
    # (3 scores + 12 deltas, with bias)
    positions = 32**2 + 16**2 + 8**2 + 4**2
    rpn_b, rpn_f = 9 * 64 * 64 * positions, 15 * 65 * positions
    assert parts['rpn_head']['bops_m'] == pytest.approx(rpn_b / 1e6)
    assert parts['rpn_head']['flops_m'] == pytest.approx(rpn_f / 1e6)
    # RoI head, 300 proposals: binary FCs 64*7*7->256->256, FP predictors
    # 257 -> 11 classes and 40 deltas
    roi_b, roi_f = 300 * (64 * 49 * 256 + 256 * 256), 300 * 257 * 51
    assert parts['roi_head']['bops_m'] == pytest.approx(roi_b / 1e6)
    assert parts['roi_head']['flops_m'] == pytest.approx(roi_f / 1e6)
    assert out['ops_m'] == pytest.approx(
        sum(p['ops_m'] for p in parts.values()))
    _main('get_ops.py')([cfg, '--input-size', '128'])
    text = capsys.readouterr().out
    assert 'counted at 128x128 (input 128x128):' in text
    assert text.splitlines()[-1].startswith('all but the backbone: 10.95M OPs')
