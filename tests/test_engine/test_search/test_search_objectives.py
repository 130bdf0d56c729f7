import pytest

from nasbnn_mm.engine.search import (Buckets, FitnessObjective,
                                     ParetoObjective, bucket_index,
                                     build_objective, num_buckets,
                                     pareto_front, rank_by_fitness)
from nasbnn_mm.nas.width_fitness import width_fitness


def test_interval_buckets():
    assert num_buckets((40, 250), 10) == 21
    assert num_buckets((0, 1), 0.3) == 4  # last bucket narrower
    assert num_buckets((1, 1), 0.5) == 1
    assert [bucket_index(c, (40, 250), 10)
            for c in (40, 49.99, 50, 245, 250)] == [0, 0, 1, 20, 20]
    # float sums landing a hair below an edge stay in the upper bucket
    assert bucket_index(0.1 + 0.2, (0.0, 1.0), 0.1) == 3


def test_nearest_buckets_are_the_official_rounding():
    # official search.py: key = round(ops / step) * step, over 20..180
    assert num_buckets((20, 180), 2, 'nearest') == 81
    buckets = Buckets((20.0, 180.0), 2.0, 'nearest')
    assert len(buckets) == 81
    for ops in (20.0, 20.7, 21.2, 99.4, 100.9, 178.6, 179.2, 180.0):
        key = int(round(ops / 2) * 2)
        assert 20 + 2 * buckets.index(ops) == key
    assert buckets.describe(0) == '[19, 21)'
    assert buckets.describe(80) == '[179, 181)'


def test_costs_outside_the_range_have_a_bucket_on_each_side():
    # only the seeded smallest/largest candidates can be outside
    assert bucket_index(39, (40, 250), 10) == -1
    assert bucket_index(251, (40, 250), 10) == 21
    assert bucket_index(331.8, (20, 180), 2, 'nearest') == 81
    buckets = Buckets((40.0, 250.0), 10.0)
    assert buckets.describe(-1) == '(below the cost range)'
    assert buckets.describe(21) == '(above the cost range)'
    assert buckets.describe(1) == '[50, 60)'
    records = [(300.0, 10.0), (45.0, 50.0), (20.0, 5.0), (320.0, 12.0)]
    # below, in range, above: the most accurate of each, sorted by bucket
    assert pareto_front(records, (40, 250), 10) == [2, 1, 3]


def test_pareto_front_keeps_the_best_of_each_bucket_sorted():
    records = [
        (2.5, 40.0),  # bucket 2
        (1.2, 50.0),  # bucket 1
        (1.8, 55.0),  # bucket 1, best
        (0.1, 30.0),  # bucket 0
        (2.9, 40.0),  # bucket 2, tie: the earlier one stays
        (1.5, 55.0),  # bucket 1, tie with the best: earlier stays
    ]
    assert pareto_front(records, (0, 3), 1) == [3, 2, 0]
    assert pareto_front([], (0, 3), 1) == []


def test_fitness_values_and_ranking():
    # eq. (4) of Shen et al.: max(Acc - lambda * FLOPs / FLOPs_ref, 0)
    assert width_fitness(92.0, 26.4e6, 13.2e6, 4.0) == pytest.approx(84.0)
    assert width_fitness(90.0, 13.2e6, 13.2e6, 4.0) == pytest.approx(86.0)
    assert width_fitness(3.0, 13.2e6, 13.2e6, 4.0) == 0.0
    assert width_fitness(50.0, 3.0, 1.0, 0.0) == 50.0
    records = [(1.0, 50.0), (2.0, 60.0), (1.0, 58.0), (0.5, 52.0), (9, 1)]
    # fitness 46, 52, 54, 50, 0 (clamped)
    assert rank_by_fitness(records, 1.0, 4.0) == [2, 1, 3, 0, 4]
    # lambda = 0: accuracy only; ties keep the evaluation order
    assert rank_by_fitness([(1, 5.0), (2, 5.0)], 1.0, 0.0) == [0, 1]


def test_objectives_choose_parents():
    records = [(1.0, 50.0), (2.0, 60.0), (1.0, 58.0), (0.5, 52.0)]
    pareto = ParetoObjective(Buckets((0.0, 2.0), 1.0))
    front = pareto.front(records)
    assert front == [3, 1]  # buckets [0, 1) and [1, 2]
    assert pareto.parents(records, front) == front
    assert pareto.ranking(records) == []
    fitness = FitnessObjective(1.0, 4.0, num_parents=2)
    assert fitness.front(records) == []
    assert fitness.ranking(records) == [(2, 54.0), (1, 52.0)]
    assert fitness.parents(records, []) == [2, 1]
    assert pareto.settings() == dict(
        objective='pareto', bucket_step=1.0, bucket_rule='interval')
    assert fitness.settings()['bucket_step'] is None


@pytest.mark.parametrize('kwargs, message', [
    (dict(objective='nsga'), 'objective: .nsga. not in'),
    (dict(bucket_step=None), "objective 'pareto': set cost_range"),
    (dict(cost_range=None), 'bucket_step: buckets need a cost_range'),
    (dict(bucket_step=0), 'bucket_step: 0.0 must be > 0'),
    (dict(bucket_rule='round'), 'bucket_rule: .round. not in'),
    (dict(objective='fitness', trade_off=-1), 'trade_off: -1'),
    (dict(objective='fitness', cost_ref=0), 'cost_ref: 0'),
])
def test_build_objective_names_the_wrong_setting(kwargs, message):
    args = dict(
        objective='pareto',
        cost_range=(0.0, 1.0),
        bucket_step=0.5,
        bucket_rule='interval',
        trade_off=4.0,
        cost_ref=None,
        num_parents=2,
        reference_cost=lambda: 3.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        build_objective(**args)


def test_build_objective_takes_the_reference_cost_by_default():
    objective = build_objective('fitness', None, None, 'interval', 4.0, None,
                                2, lambda: 3.0)
    assert isinstance(objective, FitnessObjective)
    assert objective.cost_ref == 3.0 and objective.buckets is None
