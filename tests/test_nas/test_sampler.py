import random

import numpy as np
import pytest

from nasbnn_mm.nas import (ArchSpec, LayerSpec, SearchSpace, count_arch_ops,
                           crossover, load_arch, mutate, ops_bounds,
                           sample_in_ops_range, sample_largest, sample_random,
                           sample_smallest, validate_arch)


def _ops(arch, space):
    return count_arch_ops(arch, space).ops_m


def _is_non_decreasing(arch):
    widths = [arch.stem.channels
              ] + [layer.channels for stage in arch.stages for layer in stage]
    return widths == sorted(widths)


@pytest.mark.parametrize('non_decreasing', [True, False])
def test_smallest_largest_of_paper_space(space, non_decreasing):
    smallest = sample_smallest(space, non_decreasing)
    largest = sample_largest(space, non_decreasing)
    # The paper's smallest subnet is ~21M OPs, its largest ~332M.
    assert _ops(smallest, space) == pytest.approx(20.77276, abs=1e-9)
    assert _ops(largest, space) == pytest.approx(331.814248, abs=1e-9)
    assert ops_bounds(space, non_decreasing) == pytest.approx(
        (20.77276, 331.814248), abs=1e-9)
    # Fewest OPs: least depth, width and kernel, most groups everywhere,
    # which is also NAS-BNN-A; most OPs: the opposite.
    assert smallest == load_arch('A')
    assert largest.stem == LayerSpec(48, 3, 1)
    for stage, choices in zip(largest.stages, space.stages):
        assert len(stage) == max(choices.depth)
        assert set(stage) == {
            LayerSpec(
                max(choices.channels), max(choices.kernel_size),
                min(choices.groups))
        }


@pytest.mark.parametrize('non_decreasing', [True, False])
def test_extremes_match_brute_force(toy_space, enumerate_archs,
                                    non_decreasing):
    all_ops = [
        _ops(a, toy_space) for a in enumerate_archs(toy_space, non_decreasing)
    ]
    low, high = ops_bounds(toy_space, non_decreasing)
    assert (low, high) == pytest.approx((min(all_ops), max(all_ops)))
    for arch, ops in ((sample_smallest(toy_space, non_decreasing), low),
                      (sample_largest(toy_space, non_decreasing), high)):
        validate_arch(arch, toy_space, non_decreasing)
        assert _ops(arch, toy_space) == pytest.approx(ops)


def test_space_without_subnets(toy_space):
    cfg = toy_space.to_dict()
    cfg['stages'][1]['channels'] = [2]
    space = SearchSpace.from_dict(cfg)
    assert space.size(non_decreasing=True) == 0
    with pytest.raises(
            ValueError,
            match=r'^search space: no subnet '
            r'\(non_decreasing=True\); every stage needs'):
        sample_random(space, random.Random(0))
    validate_arch(sample_random(space, random.Random(0), False), space, False)


@pytest.mark.parametrize('make_rng', [random.Random, np.random.default_rng])
def test_random_is_seeded(space, make_rng):

    def draw(seed):
        rng = make_rng(seed)
        return [sample_random(space, rng) for _ in range(5)]

    assert draw(0) == draw(0)
    assert draw(0) != draw(1)
    for arch in draw(2):
        validate_arch(arch, space, non_decreasing=True)


def test_random_without_non_decreasing(space, toy_space, enumerate_archs):
    rng = random.Random(0)
    archs = [
        sample_random(space, rng, non_decreasing=False) for _ in range(20)
    ]
    for arch in archs:
        validate_arch(arch, space, non_decreasing=False)
    assert not all(_is_non_decreasing(a) for a in archs)
    # Every subnet of the toy space can be drawn, and only those.
    drawn = {sample_random(toy_space, rng) for _ in range(2000)}
    assert drawn == set(enumerate_archs(toy_space, True))


def test_rng_type_error(space):
    with pytest.raises(
            TypeError,
            match='rng: expected random.Random or '
            'numpy.random.Generator, got int'):
        sample_random(space, 0)


@pytest.mark.parametrize('ops_min, ops_max', [(50, 60), (100, 120),
                                              (20.77, 20.78), (300, 340)])
def test_sample_in_ops_range(space, ops_min, ops_max):
    # Plain draws land in [50, 60]M about once in 700 (median ~124M), and
    # only the smallest subnet is in [20.77, 20.78]M: steering finds both.
    for seed in range(3):
        arch = sample_in_ops_range(space, random.Random(seed), ops_min,
                                   ops_max)
        validate_arch(arch, space, non_decreasing=True)
        assert ops_min <= _ops(arch, space) <= ops_max
        assert arch == sample_in_ops_range(space, random.Random(seed), ops_min,
                                           ops_max)


def test_infeasible_ops_range(space):
    rng = random.Random(0)
    with pytest.raises(ValueError) as e:
        sample_in_ops_range(space, rng, 5, 20)
    assert str(e.value) == ('OPs range [5, 20]M has no subnet: achievable '
                            '[20.7728, 331.8142]M (non_decreasing=True)')
    with pytest.raises(
            ValueError,
            match=r'^OPs range \[60, 50\]M is empty; '
            r'achievable \[20.7728, 331.8142\]M$'):
        sample_in_ops_range(space, rng, 60, 50)


def test_ops_range_in_a_gap(toy_space, enumerate_archs):
    # Inside the achievable range, but between two subnets' OPs: every
    # draw misses and the sampler gives up after max_tries.
    all_ops = sorted({
        round(_ops(a, toy_space), 9)
        for a in enumerate_archs(toy_space, True)
    })
    gap = max(zip(all_ops, all_ops[1:]), key=lambda p: p[1] - p[0])
    low, high = gap[0] + 1e-6, gap[1] - 1e-6
    with pytest.raises(
            RuntimeError,
            match=r'^no subnet in OPs range .* '
            r'after 5 draws \(achievable .*\); widen the range or '
            'raise max_tries$'):
        sample_in_ops_range(
            toy_space, random.Random(0), low, high, max_tries=5)


def test_mutate(space):
    rng = random.Random(0)
    parent = load_arch('C')
    assert mutate(parent, space, 0.0, rng) == parent
    children = [mutate(parent, space, 0.3, rng) for _ in range(50)]
    for child in children:
        validate_arch(child, space, non_decreasing=True)
    assert len(set(children)) > 40
    assert mutate(parent, space, 0.3,
                  random.Random(5)) == mutate(parent, space, 0.3,
                                              random.Random(5))
    with pytest.raises(ValueError, match=r'^prob: 1.5 not in \[0, 1\]$'):
        mutate(parent, space, 1.5, rng)


def test_mutate_repairs_non_decreasing(space):
    stages = list(load_arch('B').stages)
    stages[3] = (LayerSpec(768, 3, 8), ) + (LayerSpec(384, 3, 8), ) * 7
    broken = ArchSpec(load_arch('B').stem, tuple(stages))
    assert not _is_non_decreasing(broken)
    fixed = mutate(broken, space, 0.0, random.Random(0))
    validate_arch(fixed, space, non_decreasing=True)
    # Only the offending layers moved, each to the nearest width (768).
    assert fixed.stages[3][1:] == (LayerSpec(768, 3, 8), ) * 7
    assert fixed.stages[:3] == broken.stages[:3]
    assert mutate(
        broken, space, 0.0, random.Random(0), non_decreasing=False) == broken


def test_crossover(space):
    rng = random.Random(0)
    a, f = load_arch('A'), load_arch('F')
    assert crossover(a, a, space, rng) == a
    for _ in range(50):
        child = crossover(a, f, space, rng)
        validate_arch(child, space, non_decreasing=True)
        for i, stage in enumerate(child.stages):
            assert len(stage) in (len(a.stages[i]), len(f.stages[i]))
    assert crossover(a, f, space,
                     random.Random(1)) == crossover(a, f, space,
                                                    random.Random(1))


def test_crossover_without_non_decreasing(space):
    rng = random.Random(0)
    a = sample_random(space, rng, non_decreasing=False)
    b = sample_random(space, rng, non_decreasing=False)
    for _ in range(20):
        child = crossover(a, b, space, rng, non_decreasing=False)
        validate_arch(child, space, non_decreasing=False)
        # Without ND nothing needs repair: every layer is a parent's.
        for i, stage in enumerate(child.stages):
            for j, layer in enumerate(stage):
                assert layer in [
                    p.stages[i][j] for p in (a, b) if j < len(p.stages[i])
                ]
