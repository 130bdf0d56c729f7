"""tools/benchmarks/benchmark_extension_builds.py: two builds of the kernels
timed in one process, their order alternated."""
import json

import pytest
import torch

from nasbnn_mm.ops import binary_conv
from nasbnn_mm.testing import load_tool


@pytest.fixture(scope='module')
def tool(benchmarks_on_path):
    return load_tool('benchmarks', 'benchmark_extension_builds.py')


def test_same_build_twice_reports_paired_ratios(tool, tmp_path):
    ext = binary_conv.load_ext()
    out = tmp_path / 'report.json'
    assert tool.main([
        ext.__file__, ext.__file__, '--presets', 'A', '--input-size', '32',
        '--rounds', '2', '--calls', '1', '--out',
        str(out)
    ]) == 0
    report = json.loads(out.read_text())
    (row, ) = report['rows']
    assert row['preset'] == 'A' and row['outputs_equal'] is True
    ratio = row['first_over_second']
    assert 0 < ratio['min'] <= ratio['median'] <= ratio['max']
    assert row['first_ms']['median'] > 0 and row['second_ms']['median'] > 0
    assert binary_conv.load_ext() is ext  # the extension is put back


def test_builds_take_turns_in_alternating_order(tool):
    """Round 0 times the first build first, round 1 the second first; each
    build is the extension of every call made while it is timed."""
    seen = []

    class Model:

        def logits(self, x):
            seen.append(binary_conv._ext)

    first, second = object(), object()
    before = binary_conv._ext
    times = tool.time_builds({'m': Model()}, [first, second], torch.zeros(1),
                             2, 2)
    # per turn: one untimed call, then two timed ones
    assert seen == [first] * 3 + [second] * 3 + [second] * 3 + [first] * 3
    assert [len(t) for t in times['m']] == [2, 2]
    assert binary_conv._ext is before


def test_differing_builds_are_flagged(tool):
    """A build that computes something else is reported as such."""
    ext = binary_conv.load_ext()

    class Model:

        def logits(self, x):
            return x + (binary_conv._ext is ext)

    x = torch.zeros(2)
    assert tool.same_outputs(Model(), [ext, ext], x)
    assert not tool.same_outputs(Model(), [ext, object()], x)
    assert binary_conv._ext is ext


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
