"""Fixtures of the kernel tests."""
import pytest

from nasbnn_mm.ops import binary_conv as ops

PATHS = ('scalar', 'avx2', 'avx512')


@pytest.fixture(params=PATHS)
def path(request):
    """Each kernel path in turn (skipped where the CPU cannot run it)."""
    if request.param not in ops.available_kernel_paths():
        pytest.skip(f'CPU cannot run the {request.param} path')
    with ops.force_kernel_path(request.param) as taken:
        yield taken
