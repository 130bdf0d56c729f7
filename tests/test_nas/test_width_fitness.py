import pytest

from nasbnn_mm.nas.width_fitness import width_fitness


def test_eq4_values():
    # Acc - 4 * FLOPs / FLOPs_ref, lambda = 4 by default (sec. 3.1)
    assert width_fitness(90.24, 13.2e6, 13.2e6) == pytest.approx(86.24)
    assert width_fitness(92.56, 166e6,
                         13.2e6) == pytest.approx(92.56 - 4 * 166 / 13.2)
    assert width_fitness(
        92.17, 11.3e6, 13.2e6, trade_off=1) == (
            pytest.approx(92.17 - 11.3 / 13.2))
    assert width_fitness(50., 0., 1.) == 50.
    assert width_fitness(50., 10., 1., trade_off=0) == 50.


def test_clamped_at_zero():
    assert width_fitness(60., 20., 1.) == 0.
    assert width_fitness(0., 1., 1.) == 0.


def test_prefers_cheaper_at_equal_accuracy():
    assert width_fitness(91., 20., 10.) > width_fitness(91., 30., 10.)


@pytest.mark.parametrize('kwargs, message', [
    (dict(accuracy=101.), r'accuracy: 101.0 not in \[0, 100\]'),
    (dict(accuracy=-1.), r'accuracy: -1.0 not in \[0, 100\]'),
    (dict(flops=-1.), r'flops: -1.0 must be >= 0'),
    (dict(flops_ref=0.), r'flops_ref: 0.0 must be > 0'),
    (dict(trade_off=-4.), r'trade_off: -4.0 must be >= 0'),
])
def test_errors(kwargs, message):
    args = dict(accuracy=90., flops=1., flops_ref=1.)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        width_fitness(**args)
