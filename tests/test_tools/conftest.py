"""Fixtures of the tool tests."""
import os.path as osp
import sys

import pytest

BENCHMARKS = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'tools',
    'benchmarks')


@pytest.fixture(scope='module')
def benchmarks_on_path():
    """``tools/benchmarks`` on ``sys.path`` (its scripts import
    ``bench_utils``)."""
    sys.path.insert(0, BENCHMARKS)
    yield
    sys.path.remove(BENCHMARKS)
