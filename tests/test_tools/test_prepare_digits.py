"""tools/dataset_converters/prepare_digits.py as a user runs it."""
import json
import os
import os.path as osp
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_cli_holds_out_the_asked_search_split(tmp_path):
    out = tmp_path / 'digits'
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (REPO, env.get('PYTHONPATH')) if p)
    result = subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools/dataset_converters/prepare_digits.py'), '--out',
        str(out), '--search-val-per-class', '12', '--train-canvases', '2',
        '--val-canvases', '2'
    ],
                            env=env,
                            capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    meta = json.loads(result.stdout.splitlines()[0])
    assert meta['cls']['search_val'] == 120
    assert sum(meta['cls'].values()) == 1797
    assert len(os.listdir(out / 'cls' / 'search_val' / '3')) == 12
