"""tools/benchmarks/profile_packed_nasbnn.py: its rows and the fp32
networks run between the timed forwards, on tiny inputs."""
import json

import pytest
import torch

from nasbnn_mm.testing import load_tool


@pytest.fixture(scope='module')
def tool(benchmarks_on_path):
    return load_tool('benchmarks', 'profile_packed_nasbnn.py')


def test_fp32_networks_run_before_each_timed_forward(tool):
    calls = []
    arms = {
        'plain': lambda: calls.append('plain'),
        'instrumented': lambda: calls.append('instrumented')
    }
    interleaved = tool.between_fp32(arms, torch.randn(1, 3, 32, 32), 0)
    assert list(interleaved) == [
        'fp32 before plain', 'plain', 'fp32 before instrumented',
        'instrumented'
    ]
    for fn in interleaved.values():
        fn()
    assert calls == ['plain', 'instrumented']


@pytest.mark.parametrize('between', ['nothing', 'fp32'])
def test_rows_cover_the_forward(tool, tmp_path, between):
    out = tmp_path / 'profile.json'
    assert tool.main([
        '--preset', 'A', '--input-size', '32', '--warmup', '1', '--runs', '10',
        '--top-ops', '3', '--between', between, '--out',
        str(out)
    ]) == 0
    report = json.loads(out.read_text())
    assert report['between'] == between
    rows = report['rows']
    assert rows[0]['name'] == '00 quantized_stem'
    blocks = [r for r in rows if 'bops_m' in r]
    assert len(blocks) == 16  # NAS-BNN-A's blocks, one call each
    assert all(r['ms'] > 0 and r['gbops_per_s'] > 0 for r in blocks)
    assert rows[-1]['name'] == 'outside kernels' and rows[-1]['ms'] >= 0
    # the rows' medians add up to about the instrumented forward's median
    ratio = report['rows_total_ms'] / report['instrumented_total_ms']
    assert 0.5 < ratio < 1.5
