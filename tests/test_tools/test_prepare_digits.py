"""tools/dataset_converters/prepare_digits.py as a user runs it."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _run(*args):
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (REPO, env.get('PYTHONPATH')) if p)
    command = [
        sys.executable,
        osp.join(REPO, 'tools/dataset_converters/prepare_digits.py'), *args,
        '--train-canvases', '2', '--val-canvases', '2'
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True)


def test_cli_holds_out_the_asked_search_split(tmp_path):
    out = tmp_path / 'digits'
    result = _run('--out', str(out), '--search-val-per-class', '12')
    assert result.returncode == 0, result.stderr
    meta = json.loads(result.stdout.splitlines()[0])
    assert meta['cls']['search_val'] == 120
    assert sum(meta['cls'].values()) == 1797
    assert len(os.listdir(out / 'cls' / 'search_val' / '3')) == 12


@pytest.mark.parametrize('count, message', [
    (0, 'search_val_per_class: 0 must be >= 1'),
    (150, 'search_val_per_class: 150 leaves no training image of class 0'),
])
def test_cli_refuses_a_bad_search_split(tmp_path, count, message):
    result = _run('--out', str(tmp_path / 'digits'), '--search-val-per-class',
                  str(count))
    assert result.returncode == 2
    assert result.stderr.startswith(f'prepare_digits.py: error: {message}')
