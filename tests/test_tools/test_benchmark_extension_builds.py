"""tools/benchmarks/benchmark_extension_builds.py: two builds of the kernels
timed in worker processes of their own, their order alternated."""
import json
import os.path as osp
import shutil

import pytest
import torch

from nasbnn_mm.ops import binary_conv
from nasbnn_mm.testing import load_tool


@pytest.fixture(scope='module')
def tool(benchmarks_on_path):
    return load_tool('benchmarks', 'benchmark_extension_builds.py')


def run_small(tool, builds, out, *extra):
    return tool.main([
        *map(str, builds), '--presets', 'A', '--input-size', '32', '--rounds',
        '2', '--calls', '1', '--out',
        str(out), *extra
    ])


def test_each_build_runs_its_own_code(tool, tmp_path):
    """The second build is a copy of the first at another path: each
    worker maps its own file and no other (one process holding both
    timed the first build twice), and their logits are the same bits."""
    ext = binary_conv.load_ext().__file__
    copy = tmp_path / 'copy' / 'nasbnn_mm' / osp.basename(ext)
    copy.parent.mkdir(parents=True)
    shutil.copy(ext, copy)
    out = tmp_path / 'report.json'
    assert run_small(tool, [ext, copy], out) == 0
    report = json.loads(out.read_text())
    first, second = report['workers']
    assert first['mapped'] == [ext] and first['file'] == ext
    assert second['mapped'] == [str(copy)] and second['file'] == str(copy)
    (row, ) = report['rows']
    assert row['preset'] == 'A' and row['outputs_equal'] is True
    ratio = row['first_over_second']
    assert 0 < ratio['min'] <= ratio['median'] <= ratio['max']
    assert row['first_ms']['median'] > 0 and row['second_ms']['median'] > 0


def test_builds_take_turns_in_alternating_order(tool):
    """Round 0 times the first build first, round 1 the second first."""
    seen = []

    class Worker:

        def __init__(self, name):
            self.name = name

        def round(self, preset):
            seen.append((self.name, preset))
            return 1.0

    times = tool.time_builds([Worker('a'), Worker('b')], ['A', 'B'], 2)
    assert seen == [('a', 'A'), ('b', 'A'), ('a', 'B'), ('b', 'B'), ('b', 'A'),
                    ('a', 'A'), ('b', 'B'), ('a', 'B')]
    assert times == {'A': [[1.0, 1.0]] * 2, 'B': [[1.0, 1.0]] * 2}


def test_differing_builds_are_flagged(tool):
    """Outputs compare bit for bit: -0.0 is not 0.0."""
    zero, negative_zero = torch.zeros(3), -torch.zeros(3)
    assert tool.digest(zero) == tool.digest(torch.zeros(3))
    assert tool.digest(zero) != tool.digest(negative_zero)
    times = {'A': [[2.0, 4.0], [1.0, 2.0]]}
    same = dict(digests=dict(A=tool.digest(zero)))
    other = dict(digests=dict(A=tool.digest(negative_zero)))
    (row, ) = tool.report_rows(times, [same, same])
    assert row['outputs_equal'] and row['first_over_second']['median'] == 2
    (row, ) = tool.report_rows(times, [same, other])
    assert not row['outputs_equal']


def test_a_process_holds_one_build(tool, monkeypatch):
    monkeypatch.setattr(binary_conv, '_ext', binary_conv.load_ext())
    with pytest.raises(RuntimeError, match='a process can hold one build'):
        tool.load_build(binary_conv._ext.__file__)


def test_bad_inputs_get_one_clear_line(tool, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        tool.main([str(tmp_path / 'missing.so'), str(tmp_path / 'x.so')])
    assert exit_info.value.code == 2
    assert 'missing.so: no such file' in capsys.readouterr().err
    fake = tmp_path / 'fake.so'
    fake.write_text('not a shared object')
    assert tool.main([str(fake), str(fake)]) == 2
    err = capsys.readouterr().err
    assert err.startswith('benchmark_extension_builds.py: error: ')
    assert 'fake.so: cannot be loaded as nasbnn_mm._ext' in err
    assert len(err.strip().splitlines()) == 1
    ext = binary_conv.load_ext().__file__
    assert tool.main([ext, ext, '--presets', 'Z', '--rounds', '1']) == 2
    assert "arch 'Z'" in capsys.readouterr().err
    for flag in ('--rounds', '--input-size'):
        with pytest.raises(SystemExit) as exit_info:
            tool.main([ext, ext, flag, '0'])
        assert exit_info.value.code == 2
        assert f'{flag} 0: must be >= 1' in capsys.readouterr().err


def test_between_runs_before_every_forward(tool):
    """best_of calls ``before`` ahead of the untimed and each timed
    forward (the fp32 networks' caches, as in the round-robin)."""
    calls = []
    seconds = tool.best_of(lambda x: calls.append('forward'), None, 2,
                           lambda: calls.append('before'))
    assert calls == ['before', 'forward'] * 3 and seconds >= 0


def test_between_fp32_is_reported(tool, tmp_path):
    ext = binary_conv.load_ext().__file__
    out = tmp_path / 'report.json'
    assert run_small(tool, [ext, ext], out, '--between', 'fp32') == 0
    report = json.loads(out.read_text())
    assert report['between'] == 'fp32'
    assert report['rows'][0]['outputs_equal'] is True
