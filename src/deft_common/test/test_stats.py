import pytest

from deft_common.stats import rate, wilson_interval


def test_the_wilson_interval_of_known_cases():
    low, high = wilson_interval(0, 10)  # none of 10: not the empty interval [0, 0]
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson_interval(5, 10)
    assert (low, high) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    low, high = wilson_interval(10, 10)
    assert low == pytest.approx(0.7225, abs=1e-4) and high == 1.0
    a, b = wilson_interval(50, 100), wilson_interval(5, 10)
    assert a[1] - a[0] < b[1] - b[0]  # more trials, narrower


@pytest.mark.parametrize('k, n', [(-1, 10), (11, 10), (0, 0)])
def test_impossible_counts_are_refused(k, n):
    with pytest.raises(ValueError, match='successes'):
        wilson_interval(k, n)


def test_rate_of_outcomes():
    assert rate([True, False, True, True]) == {'rate': 0.75, 'ci95': [0.3006, 0.9544], 'n': 4}
    assert rate([]) == {'rate': None, 'ci95': None, 'n': 0}


def test_the_t_interval_of_a_mean_over_seeds():
    from deft_common.stats import mean_interval

    mean, (low, high) = mean_interval([1.0, 2.0, 3.0])   # sd 1, t(0.975, 2) = 4.303
    assert mean == 2.0 and (low, high) == pytest.approx((2 - 2.4841, 2 + 2.4841), abs=1e-4)
    mean, (low, high) = mean_interval([0.5, 0.5])
    assert mean == low == high == 0.5
    assert mean_interval([0.3]) == (0.3, None)   # one seed: no spread known
    with pytest.raises(ValueError, match='finite'):
        mean_interval([])
    with pytest.raises(ValueError, match='finite'):
        mean_interval([0.1, float('nan')])
