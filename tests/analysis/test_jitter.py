"""MCD, MSD, the reporting rule and flip-flop detection against slow references."""

import numpy as np
import pytest

from sfemg.analysis import compute_mcd, compute_msd, reported_jitter
from sfemg.analysis.jitter import flip_flop_separation, mcd_gradient, robust_mcd, two_group_split
from sfemg.errors import SfemgInputError

from .tolerances import MCD_SD_FACTOR, N_SD, ROBUST_MCD_SD_FACTOR


def slow_mcd(x):
    """Obviously-correct MCD: loop over consecutive pairs, skip any pair with a block."""
    diffs = [abs(x[i] - x[i - 1]) for i in range(1, len(x))
             if not (np.isnan(x[i]) or np.isnan(x[i - 1]))]
    return sum(diffs) / len(diffs) if diffs else float("nan")


def slow_msd(x, idi):
    kept = [(idi[i], i, x[i]) for i in range(len(x)) if not (np.isnan(x[i]) or np.isnan(idi[i]))]
    kept.sort()
    return slow_mcd([v for _, _, v in kept])


@pytest.mark.parametrize("seed", range(5))
def test_mcd_and_msd_match_slow_reference(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(1e-3, 20e-6, 60)
    x[rng.random(60) < 0.2] = np.nan
    idi = rng.uniform(0.05, 0.15, 60)
    idi[0] = np.nan
    assert compute_mcd(x) == pytest.approx(slow_mcd(x), rel=1e-12)
    assert compute_msd(x, idi) == pytest.approx(slow_msd(x, idi), rel=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_mcd_gradient_matches_finite_differences(seed):
    """The delta method's gradient: central differences of the slow MCD, blocks
    included (a step far smaller than any consecutive difference keeps every sign)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(1e-3, 20e-6, 40)
    x[rng.random(40) < 0.2] = np.nan
    step = 1e-12
    want = np.zeros(x.size)
    for i in np.flatnonzero(np.isfinite(x)):
        up, down = x.copy(), x.copy()
        up[i] += step
        down[i] -= step
        want[i] = (slow_mcd(up) - slow_mcd(down)) / (2 * step)
    got = mcd_gradient(x)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert abs(got.sum()) < 1e-12  # a common shift leaves the MCD as it is
    assert np.all(got[np.isnan(x)] == 0)
    assert np.all(mcd_gradient([1.0, np.nan, 2.0]) == 0)  # no pair: no dependence


def test_mcd_edge_cases():
    assert np.isnan(compute_mcd([]))
    assert np.isnan(compute_mcd([1.0]))
    assert np.isnan(compute_mcd([1.0, np.nan, 2.0]))  # every pair straddles the block
    assert compute_mcd([1.0, 2.0, np.nan, 5.0, 5.5]) == pytest.approx(0.75)
    with pytest.raises(SfemgInputError):
        compute_mcd(np.ones((2, 2)))
    with pytest.raises(SfemgInputError):
        compute_msd([1.0, 2.0], [1.0])


def test_mcd_is_1_13_sd_for_gaussian_intervals():
    n, sd = 20_000, 25e-6
    x = np.random.default_rng(1).normal(1e-3, sd, n)
    expected = 2 / np.sqrt(np.pi) * sd
    assert abs(compute_mcd(x) - expected) < N_SD * MCD_SD_FACTOR * sd / np.sqrt(n)


def test_msd_removes_planted_idi_dependence():
    rng = np.random.default_rng(2)
    n, sd = 400, 10e-6
    idi = rng.uniform(0.04, 0.2, n)  # irregular firing
    ipi = 1e-3 + 1e-3 * (idi - 0.1) + rng.normal(0, sd, n)  # 1 µs per ms of IDI
    mcd, msd = compute_mcd(ipi), compute_msd(ipi, idi)
    true_mcd = 2 / np.sqrt(np.pi) * sd
    # after sorting, neighbours differ in IDI by ~ (0.2 - 0.04) / n, adding at most this:
    trend_step = 1e-3 * (0.2 - 0.04) / n
    assert mcd > 2 * true_mcd
    assert abs(msd - true_mcd) < N_SD * MCD_SD_FACTOR * sd / np.sqrt(n) + trend_step
    jitter, ratio = reported_jitter(mcd, msd)
    assert ratio > 1.25 and jitter == msd


def test_reported_jitter_rule():
    assert reported_jitter(30e-6, 25e-6) == (30e-6, pytest.approx(1.2))
    assert reported_jitter(40e-6, 25e-6)[0] == 25e-6
    assert reported_jitter(40e-6, float("nan"))[0] == 40e-6  # stimulated: MCD
    assert reported_jitter(40e-6, 30e-6, ratio_threshold=1.5)[0] == 40e-6


def test_flip_flop_separation():
    rng = np.random.default_rng(3)
    gauss = rng.normal(0, 1, 200)
    assert flip_flop_separation(gauss) < 4
    two = np.where(rng.random(200) < 0.5, 0.0, 10.0) + rng.normal(0, 1, 200)
    assert flip_flop_separation(two) > 6
    assert flip_flop_separation([1.0, 2.0]) == 0.0


def test_two_group_split_threshold_separates_the_groups():
    """The threshold lies between two well separated groups, against a brute-force Otsu split."""
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.normal(0.0, 0.05, 90), rng.normal(-0.4, 0.05, 12), [np.nan]])
    d, threshold = two_group_split(x, 0.05)
    assert d > 6 and np.all(x[:90] > threshold) and np.all(x[90:102] < threshold)
    v = np.sort(x[np.isfinite(x)])
    costs = [(k * v[:k].var() + (v.size - k) * v[k:].var(), k) for k in range(6, v.size - 5)]
    k = min(costs)[1]
    assert v[k - 1] < threshold < v[k]
    assert two_group_split([1.0, 2.0, 3.0])[0] == 0.0 and np.isnan(two_group_split([1.0])[1])


def test_robust_two_group_split_is_not_hidden_by_an_outlier():
    """One stray value far below two tight groups inflates the SD-based D below the
    threshold used for the trigger (6); the percentile-based spreads are not moved by it.
    On single Gaussian samples the robust D stays near the SD-based one (~2.5-3.5)."""
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(-0.06, 0.01, 90), rng.normal(0.05, 0.01, 100), [-0.5]])
    assert two_group_split(x, 0.05)[0] < 6 < two_group_split(x, 0.05, robust=True)[0]
    gaussian = [two_group_split(rng.normal(size=100), 0.05, robust=True)[0] for _ in range(200)]
    assert 2.0 < np.mean(gaussian) < 3.0 and max(gaussian) < 6


def slow_robust_mcd(x):
    """Median of the consecutive |differences| (pairs with a block skipped), times mean /
    median of a half-normal |d|: E|d| = sqrt(2 / pi) s, median |d| = 0.6745 s (d ~ N(0, s^2))."""
    diffs = sorted(abs(x[i] - x[i - 1]) for i in range(1, len(x)) if not (np.isnan(x[i]) or np.isnan(x[i - 1])))
    m = len(diffs)
    median = diffs[m // 2] if m % 2 else 0.5 * (diffs[m // 2 - 1] + diffs[m // 2])
    return median * np.sqrt(2 / np.pi) / 0.6744897501960817


@pytest.mark.parametrize("seed", range(5))
def test_robust_mcd_matches_slow_reference(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(1e-3, 20e-6, 61)
    x[rng.random(61) < 0.2] = np.nan
    assert robust_mcd(x) == pytest.approx(slow_robust_mcd(list(x)), rel=1e-12)
    assert np.isnan(robust_mcd([1.0, np.nan, 2.0]))
    with pytest.raises(SfemgInputError):
        robust_mcd(np.ones((2, 2)))


def test_robust_mcd_is_the_mcd_for_gaussian_values_and_ignores_a_few_wild_ones():
    """For Gaussian values it estimates the MCD (within N_SD of its sampling SD); six
    values 40-90 µs off in a series of 2 µs error dominate the mean, not the median."""
    n, sd = 20_000, 25e-6
    rng = np.random.default_rng(3)
    x = rng.normal(1e-3, sd, n)
    expected = 2 / np.sqrt(np.pi) * sd
    assert abs(robust_mcd(x) - expected) < N_SD * ROBUST_MCD_SD_FACTOR * sd / np.sqrt(n)
    y = rng.normal(0.0, 2e-6, 100)  # a phase timed with 2 µs error ...
    clean = robust_mcd(y)
    y[[5, 21, 40, 55, 70, 88]] += np.array([60, -45, 80, -90, 40, 70]) * 1e-6  # ... six times under another unit
    assert compute_mcd(y) > 4 * clean   # the mean is dominated by them
    assert robust_mcd(y) < 1.3 * clean  # the median is not
