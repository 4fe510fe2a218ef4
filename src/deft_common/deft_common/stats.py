"""Success rates with their 95 % intervals, as the benchmarks report them."""

import math
from typing import Dict, Optional, Sequence, Tuple

Z95 = 1.959963984540054  # two-sided 95 % normal quantile


def wilson_interval(successes: int, trials: int, z: float = Z95) -> Tuple[float, float]:
    """
    Return the Wilson score interval (low, high) of a success rate.

    Unlike the normal approximation it stays within [0, 1] and is not empty at 0 or n successes
    (0 of 10: about 0 .. 0.28), which is where a benchmark of a few trials often is.
    ValueError unless 0 <= successes <= trials and trials > 0.
    """
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(f'need 0 <= successes <= trials and trials > 0, got {successes} of '
                         f'{trials}')
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) \
        / (1 + z * z / trials)
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact at the ends
    return low, 1.0 if successes == trials else min(1.0, centre + half)


def rate(outcomes: Sequence[bool]) -> Dict[str, object]:
    """Return {'rate', 'ci95': [low, high], 'n'} of a list of successes (n = 0: rate None)."""
    n = len(outcomes)
    if n == 0:
        return {'rate': None, 'ci95': None, 'n': 0}
    k = sum(bool(o) for o in outcomes)
    low, high = wilson_interval(k, n)
    return {'rate': round(k / n, 4), 'ci95': [round(low, 4), round(high, 4)], 'n': n}


def mean_interval(values: Sequence[float], level: float = 0.95
                  ) -> Tuple[float, Optional[Tuple[float, float]]]:
    """
    Return (mean, (low, high)): the mean of values and its Student-t interval over them.

    The values are per-seed figures (a success rate, a reward); the interval is the t interval
    of their mean with n - 1 degrees of freedom (None for a single value: no spread is known).
    ValueError for no values or a non-finite one.
    """
    v = [float(x) for x in values]
    if not v or not all(math.isfinite(x) for x in v):
        raise ValueError(f'need one or more finite values, got {values!r}')
    n = len(v)
    mean = sum(v) / n
    if n == 1:
        return mean, None
    from scipy.stats import t  # scipy: a base requirement, imported only here

    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1))
    half = float(t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return mean, (mean - half, mean + half)
