"""Check that the pinned OpenMMLab stack is installed and works.

Prints one line per package with its version (or what is wrong and how to
fix it), whether ``mmcv.ops`` loads, and exits non-zero if anything is
missing. Run it with the project's environment::

    .venv/bin/python tools/misc/env_check.py
"""
import importlib
import sys
from typing import List, Optional, Tuple

EXPECTED = {
    'torch': '2.14.1',
    'torchvision': '0.29.1',
    'mmengine': '0.10.7',
    'mmcv': '2.1.0',
    'mmdet': '3.3.0',
    'mmpretrain': '1.2.0',
    'pycocotools': None,
    'sklearn': None,
    'matplotlib': None,
    'pkg_resources': None,  # mmengine imports it: setuptools>=77,<81
    'nasbnn_mm': None,
}
FIX = 'run `bash tools/install.sh` from the repository root'


def check_package(name: str, expected: Optional[str]) -> Tuple[bool, str]:
    """Import ``name`` and compare its version with ``expected``."""
    try:
        module = importlib.import_module(name)
    except Exception as e:  # noqa: B902 (any import failure is reported)
        return False, f'MISSING ({type(e).__name__}: {e}); {FIX}'
    version = getattr(module, '__version__', 'unknown')
    if expected is not None and not version.startswith(expected):
        return False, (f'{version}, expected {expected}; {FIX}')
    return True, version


def check_mmcv_ops() -> Tuple[bool, str]:
    """Run mmcv's compiled ``nms`` once to prove its ops load."""
    try:
        import torch
        from mmcv.ops import nms
        boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]])
        keep = nms(boxes, torch.tensor([0.9, 0.8]), 0.5)[1]
        assert keep.tolist() == [0], keep
    except Exception as e:  # noqa: B902
        return False, (f'NOT LOADED ({type(e).__name__}: {e}); mmcv must be '
                       f'compiled with its ops against this torch: {FIX}')
    return True, 'loaded (nms ran)'


def main() -> int:
    rows: List[Tuple[str, bool, str]] = []
    for name, expected in EXPECTED.items():
        rows.append((name, *check_package(name, expected)))
    rows.append(('mmcv.ops', *check_mmcv_ops()))
    try:
        import torch
        rows.append(('cuda', True, str(torch.cuda.is_available())))
    except Exception:  # noqa: B902
        pass
    rows.insert(0, ('python', True, sys.version.split()[0]))
    width = max(len(name) for name, _, _ in rows)
    for name, ok, text in rows:
        print(f'{name:<{width}}  {"ok " if ok else "ERR"}  {text}')
    failed = [name for name, ok, _ in rows if not ok]
    if failed:
        print(f'environment check FAILED: {", ".join(failed)}')
        return 1
    print('environment check passed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
