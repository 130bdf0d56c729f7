"""Fixtures of the nasbnn_mm.nas tests.

The paper's space, and a toy space small enough to enumerate by brute force.
"""
import itertools
from typing import Callable, List

import pytest

from nasbnn_mm.nas import (DEFAULT_SPACE, ArchSpec, LayerSpec, SearchSpace,
                           validate_arch)

# Widths overlap across stages and the last stage is narrower than the
# widest earlier choice, so the Non-Decreasing constraint prunes whole
# branches; groups 4 does not divide width 6.
TOY_SPACE = dict(
    input_size=9,
    in_channels=1,
    num_classes=3,
    stem=dict(channels=[4, 8], kernel_size=[3], groups=[1], stride=2),
    stages=[
        dict(
            depth=[1, 2],
            channels=[4, 6, 8],
            kernel_size=[1, 3],
            groups=[1, 4],
            stride=2),
        dict(depth=[1], channels=[6], kernel_size=[3], groups=[2], stride=1),
    ])


@pytest.fixture(scope='session')
def space() -> SearchSpace:
    return SearchSpace.from_config(DEFAULT_SPACE)


@pytest.fixture
def toy_space() -> SearchSpace:
    return SearchSpace.from_dict(TOY_SPACE)


def _enumerate(space: SearchSpace, non_decreasing: bool) -> List[ArchSpec]:
    """Every valid subnet, by brute force over all combinations."""

    def layers(choices):
        return [
            LayerSpec(*c) for c in itertools.product(
                choices.channels, choices.kernel_size, choices.groups)
        ]

    stage_options = [[
        tuple(p) for d in stage.depth
        for p in itertools.product(layers(stage), repeat=d)
    ] for stage in space.stages]
    archs = []
    for stem in layers(space.stem):
        for stages in itertools.product(*stage_options):
            arch = ArchSpec(stem, stages)
            try:
                validate_arch(arch, space, non_decreasing)
            except ValueError:
                continue
            archs.append(arch)
    return archs


@pytest.fixture
def enumerate_archs() -> Callable[[SearchSpace, bool], List[ArchSpec]]:
    return _enumerate
