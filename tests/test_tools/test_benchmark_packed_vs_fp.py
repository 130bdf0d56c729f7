"""tools/benchmarks/benchmark_packed_vs_fp.py: repetitions and their
summary on tiny inputs."""
import json

import pytest
import torch

from nasbnn_mm.testing import load_tool


@pytest.fixture(scope='module')
def benchmark(benchmarks_on_path):
    return load_tool('benchmarks', 'benchmark_packed_vs_fp.py').main


def test_repetitions_are_summarized(benchmark, tmp_path):
    out = tmp_path / 'report.json'
    assert benchmark([
        '--presets', 'A', '--threads', '1', '2', '--input-size', '32',
        '--warmup', '1', '--runs', '10', '--repeat', '2', '--out',
        str(out)
    ]) == 0
    report = json.loads(out.read_text())
    # 2 repetitions x 2 thread counts
    assert [(p['repeat'], p['threads']) for p in report['passes']] == [(0, 1),
                                                                       (0, 2),
                                                                       (1, 1),
                                                                       (1, 2)]
    rows = {(r['arm'], r['threads']): r for r in report['summary']}
    assert len(rows) == 8  # 4 arms x 2 thread counts
    ref = rows[('MobileNetV3-Large fp32', 1)]['vs_reference']
    assert ref['min'] == ref['max'] == 1.0
    # the range of the two 1-thread passes' medians
    ms = sorted(r['ms']['median'] for p in report['passes']
                if p['threads'] == 1 for r in p['rows']
                if r['arm'] == 'NAS-BNN-A packed')
    got = rows[('NAS-BNN-A packed', 1)]['ms']
    assert (got['min'], got['max']) == (ms[0], ms[-1])
    speedups = [r for r in report['scaling'] if r['threads'] == 2]
    assert len(speedups) == 4
    for r in speedups:
        sp = r['speedup']
        assert 0 < sp['min'] <= sp['median'] <= sp['max']


@pytest.mark.parametrize('flag', ['--repeat', '--input-size', '--batch'])
def test_bad_counts_are_argument_errors(benchmark, capsys, flag):
    with pytest.raises(SystemExit) as exit_info:
        benchmark([flag, '0'])
    assert exit_info.value.code == 2
    assert f'{flag} 0: must be >= 1' in capsys.readouterr().err


def test_unknown_preset_is_one_line(benchmark, capsys):
    assert benchmark(['--presets', 'Z']) == 2
    err = capsys.readouterr().err
    assert err.startswith("benchmark_packed_vs_fp.py: error: arch 'Z'")
    assert len(err.strip().splitlines()) == 1


def test_presets_are_drawn_from_the_seed(benchmark):
    import bench_utils  # on the path while the tool's fixture is active
    x = torch.randn(1, 3, 32, 32)
    a, b, c = (
        bench_utils.packed_classifier('A', size=32, seed=s).logits(x)
        for s in (0, 0, 1))
    assert torch.equal(a, b) and not torch.equal(a, c)
