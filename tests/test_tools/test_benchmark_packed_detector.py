"""tools/benchmarks/benchmark_packed_detector.py: a comparison on a tiny
image, and one-line errors for inputs it cannot benchmark."""
import json

import pytest

from nasbnn_mm.testing import load_tool

BINARY_DET = ('configs/nasbnn_det/'
              'faster-rcnn_nasbnn-digits-l_binary-fpn-head_6e_digits.py')


@pytest.fixture(scope='module')
def benchmark(benchmarks_on_path):
    return load_tool('benchmarks', 'benchmark_packed_detector.py').main


def test_reports_identical_detections_and_times(benchmark, tmp_path):
    out = tmp_path / 'report.json'
    # NOTE: untrained FP box regression turns the float simulation's ~1e-4
    # feature rounding into ~1e-3 px (as in test_pack_detector_equals_float)
    assert benchmark([
        BINARY_DET, '--trained-like', '0', '--size', '96', '128', '--warmup',
        '0', '--runs', '2', '--box-tol', '1e-2', '--out',
        str(out)
    ]) == 0
    report = json.loads(out.read_text())
    assert report['packed_modules']['PackedNASBNN'] == 1
    assert report['packed_modules']['ChannelsLastRoIAlign'] == 4
    assert report['comparison']['identical'], report['comparison']
    assert report['feature_max_abs_diff'] < 1e-3
    assert report['speedup']['extract_feat']['median'] > 0


def test_non_binary_detector_is_one_line(benchmark, tmp_path, capsys):
    out = tmp_path / 'report.json'
    status = benchmark([
        'configs/nasbnn_det/faster-rcnn_r18_fpn_6e_digits.py', '--runs', '2',
        '--out',
        str(out)
    ])
    err = capsys.readouterr().err.strip()
    assert status == 2 and not out.exists()
    assert err.count('\n') == 0 and 'no binary NASBNN backbone' in err


@pytest.mark.parametrize('argv, message', [
    (['--runs', '1'], 'runs >= 2'),
    (['--size', '0', '128'], '--size'),
])
def test_bad_options_exit_2(benchmark, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        benchmark([BINARY_DET, *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
