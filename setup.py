"""Install nasbnn_mm.

The pinned stack cannot be resolved by pip alone (mmcv 2.1.0 must be compiled
against the installed torch with its C++ standard raised): use
``bash tools/install.sh``, which installs the stack in the order that works and
then this package in editable mode.
"""
import glob
import os.path as osp

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_requirements(name: str) -> list:
    """Return the requirement lines of ``requirements/<name>.txt``."""
    with open(osp.join(HERE, 'requirements', f'{name}.txt')) as f:
        lines = (line.split('#')[0].strip() for line in f)
        return [line for line in lines if line]


def read_version() -> str:
    """Return ``__version__`` from ``nasbnn_mm/version.py``."""
    scope: dict = {}
    with open(osp.join(HERE, 'nasbnn_mm', 'version.py')) as f:
        exec(compile(f.read(), 'version.py', 'exec'), scope)
    return scope['__version__']


def binary_extension() -> dict:
    """Build arguments of the C++ kernels ``nasbnn_mm._ext``.

    Compiled for the baseline ISA: the AVX2 and AVX-512 kernels carry
    per-function target attributes and are picked at run time, so the
    module loads on any x86-64 (or non-x86) CPU. ``-ffp-contract=off``
    keeps every kernel path's float epilogue rounding alike; OpenMP lets
    the kernels' ``at::parallel_for`` use the threads torch is given.
    """
    from torch.utils.cpp_extension import BuildExtension, CppExtension
    sources = sorted(glob.glob('nasbnn_mm/ops/csrc/*.cpp'))
    ext = CppExtension(
        'nasbnn_mm._ext',
        sources,
        extra_compile_args=[
            '-O3', '-std=c++20', '-ffp-contract=off', '-fopenmp'
        ],
        extra_link_args=['-fopenmp'])
    return dict(ext_modules=[ext], cmdclass={'build_ext': BuildExtension})


setup(
    name='nasbnn_mm',
    version=read_version(),
    description='NAS-BNN (neural architecture search for binary neural '
    'networks) for MMPretrain and MMDetection',
    long_description=open(osp.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    license='Apache License 2.0',
    python_requires='>=3.8',
    packages=find_packages(exclude=('configs', 'tools', 'tests', 'docs')),
    include_package_data=True,
    package_data={'nasbnn_mm': ['nas/presets/*.json', 'nas/presets/*.yaml']},
    install_requires=read_requirements('runtime'),
    extras_require={'tests': read_requirements('tests')},
    zip_safe=False,
    **binary_extension(),
)
