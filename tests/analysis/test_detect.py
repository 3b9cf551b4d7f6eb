"""Candidate-peak kernel against a slow reference, and the detection helpers."""

import threading

import numpy as np
import pytest
import scipy.ndimage

from sfemg.analysis._detect_numba import (
    _arange,
    _valley_above,
    amplitude_groups_kernel,
    extremes_kernel,
    first_of_close_kernel,
    locked_groups_kernel,
    median_kernel,
    waveform_run_kernel,
)
from sfemg.analysis.detect import (
    MAD_TO_SD,
    amplitude_groups,
    detect_both_polarities,
    detect_peaks,
    estimate_noise_sd,
    estimate_sweeps_noise_sd,
    find_locked_potentials,
    find_trigger,
    peak_values,
    running_median,
)
from sfemg.errors import SfemgInputError


def slow_detect(x, threshold, half_width, polarity):
    """Every sample above threshold that is the first largest value within ±half_width."""
    x = np.atleast_2d(x)
    y = np.abs(x) if polarity == 0 else polarity * x
    out = []
    for r in range(y.shape[0]):
        for i in range(y.shape[1]):
            lo, hi = max(0, i - half_width), min(y.shape[1], i + half_width + 1)
            win = y[r, lo:hi]
            if y[r, i] > threshold and y[r, i] == win.max() and lo + int(np.argmax(win)) == i:
                out.append((r, i))
    return out


@pytest.mark.parametrize("polarity", [0, 1, -1])
@pytest.mark.parametrize("seed", range(4))
def test_kernel_matches_slow_reference(seed, polarity):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3, 300))
    x[1, 50:53] = 4.0  # a plateau: the first sample wins
    x[2, :2] = -5.0  # maxima at the edges
    x[2, -1] = 6.0
    for half_width in (1, 3, 10):
        rows, cols = detect_peaks(x, 1.5, half_width, polarity)
        assert list(zip(rows.tolist(), cols.tolist())) == slow_detect(x, 1.5, half_width, polarity)


@pytest.mark.parametrize("seed", range(4))
def test_both_polarities_in_one_pass_match_the_slow_reference(seed):
    """Both polarities' candidates from one pass: the slow reference's of x and of -x,
    merged in row-major order (also where a positive and a negative maximum lie within
    a half-width of each other, each polarity skipping only after its own)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3, 400))
    x[1, 50:53] = 4.0
    x[1, 54] = -4.0  # a negative maximum right after a positive plateau
    x[2, :2] = -5.0
    x[2, -1] = 6.0
    for half_width in (1, 3, 10):
        rows, cols = detect_both_polarities(x, 1.5, half_width)
        assert list(zip(rows.tolist(), cols.tolist())) == sorted(slow_detect(x, 1.5, half_width, 1)
                                                                 + slow_detect(x, 1.5, half_width, -1))
    few = np.tile([0.0, 1.0, 0.0, -1.0], 2000)  # 4000 candidates: more than the first capacity
    assert detect_both_polarities(few, 0.5, 1)[1].size == 4000


def test_kernel_grows_its_output():
    x = np.tile([0.0, 1.0], 5000)  # 5000 maxima: more than the first capacity
    rows, cols = detect_peaks(x, 0.5, 1)
    assert cols.size == 5000 and np.all(cols % 2 == 1)


def test_both_polarities_merged_in_order():
    x = np.zeros(100)
    x[10], x[40], x[70] = 1.0, -2.0, 3.0
    rows, cols = detect_both_polarities(x, 0.5, 5)
    assert cols.tolist() == [10, 40, 70]


def test_peak_values_interpolate_a_parabola():
    t = np.arange(10.0)
    x = 2.0 - (t - 4.3) ** 2
    assert peak_values(x, np.array([0]), np.array([4]))[0] == pytest.approx(2.0)
    assert peak_values(-x, np.array([0]), np.array([4]))[0] == pytest.approx(-2.0)


def reference_peak_values(x, rows, cols):
    """NumPy reference: parabola vertex through each candidate and its (edge-repeated)
    neighbours where it curves away from zero."""
    x = np.atleast_2d(x)
    last = x.shape[1] - 1
    y0, ym, yp = x[rows, cols], x[rows, np.clip(cols - 1, 0, last)], x[rows, np.clip(cols + 1, 0, last)]
    den = ym - 2.0 * y0 + yp
    with np.errstate(divide="ignore", invalid="ignore"):
        return y0 - np.where(den * y0 < 0, (ym - yp) ** 2 / (8.0 * den), 0.0)


def test_peak_values_match_numpy_reference():
    """Random candidates of both signs, at the row edges, on flat and curved rows."""
    rng = np.random.default_rng(4)
    x = rng.normal(0, 1, (5, 50))
    x[2] = 0.0
    rows = rng.integers(0, 5, 400)
    cols = np.r_[0, 49, rng.integers(0, 50, 398)]
    np.testing.assert_array_equal(peak_values(x, rows, cols), reference_peak_values(x, rows, cols))
    np.testing.assert_array_equal(peak_values(x[0], np.zeros(50, int), np.arange(50)),
                                  reference_peak_values(x[0], np.zeros(50, int), np.arange(50)))
    for bad_rows, bad_cols in (([5], [0]), ([0], [50]), ([0], [-1])):
        with pytest.raises(IndexError):
            peak_values(x, np.array(bad_rows), np.array(bad_cols))


def test_find_trigger_picks_biggest_recurring_potential():
    rng = np.random.default_rng(0)
    n = 100
    times = np.arange(n) * 5000
    big = rng.normal(1.0, 0.03, n)
    small = rng.normal(0.6, 0.03, n)
    huge_once = np.array([5.0])  # not recurring
    amps = np.concatenate([big, small, huge_once])
    t = np.concatenate([times, times + 50, [123]])
    order = np.argsort(t)
    groups = list(find_trigger(amps[order], t[order], 50_000.0, 8, 10.0, n_choices=3))
    # the big potential; not the huge one (not recurring), nor the small one, 1 ms after
    # the big one in every discharge (locked to it: no second choice)
    assert len(groups) == 1
    assert np.allclose(t[order][groups[0]], times)


def test_trigger_candidates_skip_potentials_locked_to_a_bigger_one():
    """A side phase of the biggest potential (always 30 samples after it) is no next
    choice: it would fail the same way; an independent potential is."""
    rng = np.random.default_rng(2)
    n = 100
    big_t = np.arange(n) * 5000
    other_t = np.arange(n) * 5000 + 1700 + rng.integers(-300, 300, n)
    amps = np.concatenate([rng.normal(1.0, 0.02, n), rng.normal(0.5, 0.01, n), rng.normal(0.25, 0.005, n)])
    t = np.concatenate([big_t, big_t + 30, other_t])
    order = np.argsort(t)
    groups = list(find_trigger(amps[order], t[order], 50_000.0, 8, 10.0, n_choices=3))
    assert len(groups) == 2
    assert np.allclose(t[order][groups[0]], big_t) and np.allclose(t[order][groups[1]], np.sort(other_t))


def _unit(rng, n, interval, cv=0.1):
    """Discharge times of a unit firing ``n`` times at ``interval`` samples (normal
    intervals of coefficient of variation ``cv``)."""
    return np.cumsum(rng.normal(interval, cv * interval, n)).astype(np.int64)


def _trigger_times(parts, n_choices=3):
    """find_trigger on (amplitudes, times) parts, at 50 kHz with 10 ms refractory: the
    times of each choice."""
    amps = np.concatenate([a for a, _ in parts])
    t = np.concatenate([t for _, t in parts])
    order = np.argsort(t, kind="stable")
    return [t[order][m] for m in find_trigger(amps[order], t[order], 50_000.0, 8, 10.0, n_choices=n_choices)]


def test_a_group_holding_several_phases_counts_each_discharge_once():
    """A trigger (100 discharges, negative) beside a group holding five positive phases of
    the unit per discharge, 0.3 decade below it (500 candidates): compared in candidates
    the trigger held a fifth of its peer's and was passed over for the phases; compared
    in firings it is the trigger."""
    rng = np.random.default_rng(3)
    unit = _unit(rng, 100, 5000)
    phases = np.concatenate([unit + lag for lag in (20, 45, 70, 95, 120)])
    times = _trigger_times([(-rng.normal(1.0, 0.01, 100), unit + 10),
                            (10 ** rng.normal(-0.3, 0.03, 500), phases)])
    np.testing.assert_array_equal(times[0], unit + 10)


@pytest.mark.parametrize("background", [False, True])
def test_a_blocking_fibre_is_no_trigger_beside_a_steady_one(background):
    """The biggest potential fires in 55 of the unit's 100 discharges (MG blocking), a
    fibre of 0.7 its size in all of them: the steady fibre is the trigger (a simulated MG
    recording kept the blocking fibre's 55). A group that fires more often because it
    also holds another unit's potentials (irregular intervals) does not displace the
    trigger."""
    rng = np.random.default_rng(4)
    unit = _unit(rng, 100, 5000)
    fires = np.sort(rng.choice(100, 55, replace=False))
    parts = [(-rng.normal(1.0, 0.01, 55), unit[fires] + 10), (-rng.normal(0.7, 0.01, 100), unit + 60)]
    if background:
        other = np.sort(rng.integers(0, unit[-1], 120))
        parts = [(-rng.normal(1.0, 0.01, 100), unit + 10),
                 (-rng.normal(0.7, 0.01, 220), np.concatenate([unit + 60, other]))]
    times = _trigger_times(parts)
    np.testing.assert_array_equal(times[0], unit + (10 if background else 60))


def test_only_a_potential_of_similar_size_replaces_the_trigger():
    """The trigger's group also holds another unit's potentials of its size (irregular
    intervals); a group of 0.2 its size fires more often still (the unit's small phase
    and a third unit's potentials), more regularly: it is no trigger (a simulated 25 kHz
    recording's references all became false)."""
    rng = np.random.default_rng(5)
    unit = _unit(rng, 100, 5000)
    other = _unit(rng, 70, 7000, cv=0.5)
    third = unit + 2500  # between the unit's discharges: the small group fires regularly
    times = _trigger_times([(-rng.normal(1.0, 0.01, 170), np.concatenate([unit + 10, other])),
                            (-rng.normal(0.2, 0.002, 200), np.concatenate([unit + 60, third]))])
    assert np.isin(times[0], np.concatenate([unit + 10, other])).all()


def test_a_steadier_unit_not_locked_to_the_trigger_does_not_replace_it():
    """Another unit of similar size firing 1.5 times as often, and more regularly, but
    not time-locked to the trigger: the trigger is still the first choice."""
    rng = np.random.default_rng(6)
    unit = _unit(rng, 100, 5000, cv=0.3)
    other = _unit(rng, 150, 3300, cv=0.05) + 1234
    times = _trigger_times([(-rng.normal(1.0, 0.01, 100), unit), (-rng.normal(0.8, 0.01, 150), other)])
    np.testing.assert_array_equal(times[0], unit)


def test_locked_potentials_ignore_uniform_background():
    rng = np.random.default_rng(1)
    n = 200
    lat = np.concatenate([rng.normal(0, 1, n), rng.normal(60, 2, n), rng.uniform(-250, 250, 150)])
    amp = np.concatenate([np.ones(n), -0.6 * np.ones(n), 0.5 * np.ones(150)])
    pots = find_locked_potentials(lat, amp, n, lock_half=15, min_fraction=0.3)
    assert len(pots) == 2
    assert pots[0].latency == pytest.approx(0, abs=1) and pots[0].polarity == 1
    assert pots[1].latency == pytest.approx(60, abs=1) and pots[1].polarity == -1
    assert pots[0].half_window + pots[1].half_window <= 60


@pytest.mark.parametrize("case", ["noise", "ties", "clipped", "one", "row"])
def test_extremes_kernel_matches_numpy(case):
    """Smallest and largest value and how many samples equal each, against NumPy's
    min/max and counts: Gaussian noise, integer-valued samples (many ties), samples
    clipped at both rails, a single sample, one row."""
    rng = np.random.default_rng(3)
    x = {"noise": rng.standard_normal((3, 1000)),
         "ties": rng.integers(-5, 6, (4, 500)).astype(float),
         "clipped": np.clip(rng.standard_normal((2, 2000)), -1.5, 1.2),
         "one": np.array([[0.25]]),
         "row": rng.standard_normal((1, 7))}[case]
    low, high, n_low, n_high = extremes_kernel(x)
    assert (low, high) == (x.min(), x.max())
    assert (n_low, n_high) == (np.count_nonzero(x == x.min()), np.count_nonzero(x == x.max()))


@pytest.mark.parametrize("n", [1, 2, 3, 10, 101, 1000])
def test_median_kernel_matches_numpy(n):
    x = np.random.default_rng(n).normal(size=n)
    x[: n // 3] = x[0]  # ties
    assert median_kernel(x) == np.median(x)
    assert median_kernel(x[::-1].copy()) == np.median(x)


@pytest.mark.parametrize("shape, width", [((6, 500), 51), ((3, 10), 5), ((2, 7), 9), ((4, 300), 1), ((3, 40), 41)])
def test_running_median_matches_scipy(shape, width):
    """The sorted-window kernel against SciPy's rank filter, ties and windows wider than a row included."""
    rng = np.random.default_rng(width)
    x = rng.normal(size=shape)
    x[0, : shape[1] // 2] = np.round(x[0, : shape[1] // 2])  # ties
    x[-1, :3] = 7.0  # edge values repeated
    np.testing.assert_array_equal(running_median(x, width),
                                  scipy.ndimage.median_filter(x, size=(1, width), mode="nearest"))
    with pytest.raises(ValueError):
        running_median(x, 4)
    with pytest.raises(ValueError):
        running_median(x[0], width)
    assert running_median(np.empty((3, 0)), width).shape == (3, 0)


@pytest.mark.parametrize("apart", [0.315, 0.215])
def test_two_tight_amplitude_groups_are_both_found(apart):
    """Two groups of the same count whose smoothed histogram maxima tie (0.315 decade
    apart), or whose one maximum lies between them (0.215): no candidate within 0.1 decade
    of the chosen centre, and the grouping loop never ended (a simulated severe MG
    recording). Run on a thread so that a regression fails instead of hanging the suite."""
    logs = np.r_[np.full(50, -3.0), np.full(50, -3.0 + apart)]
    result = []
    worker = threading.Thread(target=lambda: result.append(
        [m.size for m in find_trigger(10 ** logs, np.arange(100) * 5000, 50e3, 8, 10.0, 2)]), daemon=True)
    worker.start()
    worker.join(300)  # (the first call compiles the kernels: 12-19 s on a loaded machine)
    assert not worker.is_alive() and result == [[50, 50]]


@pytest.mark.parametrize("seed", range(3))
def test_a_broad_group_stops_at_the_valley_before_the_trigger(seed):
    """600 candidates of two smaller potentials 0.12 decade apart (a broad group: 5
    robust SDs reach ~0.45 decade) and 300 of the trigger 0.3 decade above them: the
    broad group, found first, reached over the trigger and took all or nearly all of it;
    it stops at the histogram's valley between them."""
    rng = np.random.default_rng(seed)
    logs = np.r_[rng.normal(-3.45, 0.04, 300), rng.normal(-3.33, 0.04, 300), rng.normal(-3.07, 0.025, 300)]
    groups = amplitude_groups(10 ** logs, 8)
    assert [np.array_equal(members, np.arange(600)) or np.array_equal(members, np.arange(600, 900))
            for _, _, members in groups] == [True, True]


def _measure_reference(sweeps, ref_pos, pot, fit_half, block_fraction):
    """Slow reference of ``potentials.measure_potential`` (its NumPy form before the kernel)."""
    n, n_cols = sweeps.shape
    rows = np.arange(n)
    centre = np.round(ref_pos + pot.latency).astype(np.int64)
    cols = np.clip(centre[:, None] + np.arange(-pot.half_window, pot.half_window + 1), 0, n_cols - 1)
    coarse = cols[rows, np.argmax(pot.polarity * sweeps[rows[:, None], cols], axis=1)]
    peak_v = pot.polarity * peak_values(sweeps, rows, coarse)
    seg_start = coarse - fit_half
    seg_cols = np.clip(seg_start[:, None] + np.arange(2 * fit_half + 1), 0, n_cols - 1)
    return (peak_v >= block_fraction * pot.amplitude_v, seg_start, pot.polarity * sweeps[rows[:, None], seg_cols],
            peak_v / pot.amplitude_v)


@pytest.mark.parametrize("polarity", [1.0, -1.0])
def test_measure_potential_matches_its_reference(polarity):
    """Windows and segments running off either end of the sweep, ties (a flat top, the
    first sample wins), both polarities: the compiled measurement equals the NumPy one."""
    from sfemg.analysis.detect import LockedPotential
    from sfemg.analysis.potentials import measure_potential

    rng = np.random.default_rng(7)
    sweeps = rng.normal(size=(60, 90))
    sweeps[5, 40:43] = 9.0 * polarity  # a tie
    ref_pos = rng.uniform(-10.0, 100.0, 60)  # some windows off the sweep
    ref_pos[5] = 38.0  # the tie inside the window
    pot = LockedPotential(latency=3.4, half_window=6, polarity=polarity, amplitude_v=1.5, count=60)
    got = measure_potential(sweeps, ref_pos, pot, 11, False, 0.5)
    want = _measure_reference(sweeps, ref_pos, pot, 11, 0.5)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def _box(counts, half):
    return np.array([counts[max(i - half, 0):i + half + 1].sum() for i in range(counts.size)])


def reference_locked_groups(lat, amp, min_count, lock_half):
    """Slow reference of the locked-groups kernel, in NumPy: per pass, the one-sample
    latency histogram of the candidates left, the half-width box's maximum among the
    ±lock_half boxes holding min_count, its median and robust spread, and the members
    within the widened window taken out."""
    found = []
    alive = np.ones(lat.size, dtype=bool)
    while alive.sum() >= min_count:
        lo = np.floor(lat[alive].min()) - lock_half
        edges = np.arange(lo, lat[alive].max() + lock_half + 2)
        counts, _ = np.histogram(lat[alive], edges)
        smooth = _box(counts, lock_half)
        if smooth.max() < min_count:
            break
        narrow = np.where(smooth >= min_count, _box(counts, max(1, lock_half // 2)), -1)
        peak = int(np.argmax(narrow))
        centre = edges[peak] + 0.5
        near = alive & (np.abs(lat - centre) <= lock_half)
        if not near.any():  # candidates only at the box's edges: its fullest bin
            first = max(peak - lock_half, 0)
            centre = edges[first + int(np.argmax(counts[first:peak + lock_half + 1]))] + 0.5
            near = alive & (np.abs(lat - centre) <= lock_half)
        centre = np.median(lat[near])
        near = alive & (np.abs(lat - centre) <= lock_half)
        spread = np.median(np.abs(lat[near] - centre)) * MAD_TO_SD
        half = int(np.ceil(max(lock_half, 4.0 * spread)))
        members = alive & (np.abs(lat - centre) <= half)
        pos, neg = amp[members][amp[members] > 0], -amp[members][amp[members] < 0]
        polarity = 1.0 if (np.median(pos) if pos.size else 0.0) >= (np.median(neg) if neg.size else 0.0) else -1.0
        mags = polarity * amp[members]
        found.append((centre, half, polarity, np.median(mags[mags > 0]), near.sum()))
        alive &= ~members
    return np.array(found).reshape(-1, 5)


@pytest.mark.parametrize("seed", range(6))
def test_locked_groups_kernel_matches_reference(seed):
    """Time-locked groups (tight, loose, close pairs of phases, both polarities) in
    uniform background, at several thresholds: the kernel finds the reference's groups."""
    rng = np.random.default_rng(seed)
    n = 100
    lat, amp = [rng.uniform(-300, 300, 400)], [rng.normal(0, 1e-4, 400)]
    for centre in rng.uniform(-250, 250, rng.integers(1, 6)):
        k = rng.integers(20, n)
        lat.append(centre + rng.normal(0, rng.uniform(0.3, 8), k))
        amp.append(rng.choice([-1, 1]) * rng.uniform(1e-4, 1e-3) * (1 + 0.1 * rng.standard_normal(k)))
    lat, amp = np.concatenate(lat), np.concatenate(amp)
    for min_count, lock_half in [(30, 15), (10, 4), (50, 30)]:
        expected = reference_locked_groups(lat, amp, min_count, lock_half)
        out = np.empty((lat.size, 5))
        got = out[:locked_groups_kernel(lat, amp, min_count, lock_half, MAD_TO_SD, out)]
        assert got.shape == expected.shape and len(got) > 0
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("min_gap", [0.5, 3.0, 7.5])
def test_first_of_close_kernel_matches_a_loop(min_gap):
    """Of increasing times closer than min_gap to the last kept one, the first is kept."""
    times = np.cumsum(np.random.default_rng(1).integers(0, 6, 300))
    kept = []
    for i, t in enumerate(times):
        if not kept or t - times[kept[-1]] >= min_gap:
            kept.append(i)
    np.testing.assert_array_equal(np.flatnonzero(first_of_close_kernel(times, min_gap)), kept)


def reference_waveform_runs(templates, half, level):
    """SciPy reference of the waveform-run kernel: the envelope by a wrapping maximum
    filter of the template rolled to put its reference in the middle, then the run of
    samples at or above ``level`` of its peak around the middle, as offsets."""
    length = templates.shape[1]
    mid = length // 2
    runs = []
    for tpl in templates:
        env = scipy.ndimage.maximum_filter1d(np.abs(np.roll(tpl, mid)), 2 * half + 1, mode="wrap")
        above = env >= level * env.max()
        lo = hi = mid
        while lo > 0 and above[lo - 1]:
            lo -= 1
        while hi < length - 1 and above[hi + 1]:
            hi += 1
        runs.append((lo - mid, hi - mid))
    return np.array(runs)


@pytest.mark.parametrize("length", [101, 1125])
def test_waveform_run_kernel_matches_scipy_envelope(length):
    """Templates with their peak at the reference, far from it, wrapping around the ends,
    with gaps narrower and wider than the envelope, and flat: the kernel's runs are the
    reference's."""
    rng = np.random.default_rng(length)
    t = np.arange(length)
    templates = [np.exp(-0.5 * (np.minimum(t, length - t) / 8.0) ** 2),     # at the reference, wrapping
                 np.exp(-0.5 * ((t - length // 3) / 5.0) ** 2),            # far from it
                 np.zeros(length), rng.normal(0, 1, length)]
    gappy = np.zeros(length)
    gappy[[0, 12, 30, length - 9, length - 40]] = 1.0                       # gaps < and > 2 * half
    templates.append(gappy)
    templates = np.array(templates)
    for half, level in [(5, 0.05), (10, 0.5), (1, 0.9)]:
        runs = np.empty((templates.shape[0], 2), dtype=np.int64)
        waveform_run_kernel(templates, half, level, runs)
        np.testing.assert_array_equal(runs, reference_waveform_runs(templates, half, level))


def reference_valley_above(sums, edges, mode, valley_z):
    """NumPy reference of the valley walk: the first bin past ``mode + 2`` whose 3-bin
    sum exceeds the lowest sum from ``mode + 2`` to it (the nearest of equals) by
    ``valley_z`` Poisson SDs ends the group below that lowest bin."""
    for b in range(mode + 3, sums.size):
        valley = mode + 2 + int(np.argmin(sums[mode + 2:b]))
        if sums[b] > sums[valley] and sums[b] - sums[valley] >= valley_z * np.sqrt(sums[b] + sums[valley]):
            return edges[valley]
    return np.inf


@pytest.mark.parametrize("seed", range(6))
def test_valley_walk_matches_reference(seed):
    """Random 3-bin sums with empty stretches, plateaus and the mode at either end: the
    kernel's end of the group is the reference's (two empty stretches are no rise)."""
    rng = np.random.default_rng(seed)
    for _ in range(200):
        counts = rng.poisson(rng.uniform(0, 30), rng.integers(3, 40))
        counts[rng.random(counts.size) < 0.3] = 0
        sums = np.convolve(counts, np.ones(3, dtype=np.int64), "same")
        edges = np.arange(counts.size + 1) * 0.02
        for mode in (0, counts.size // 2, counts.size - 3, counts.size - 1):
            assert _valley_above(sums, edges, mode, 4.0) == reference_valley_above(sums, edges, mode, 4.0)
    assert _valley_above(np.array([5, 10, 5, 0, 0, 0, 0, 0, 0]), np.arange(10.0), 1, 4.0) == np.inf
    assert _valley_above(np.array([5, 10, 5, 0, 0, 20, 40, 20]), np.arange(9.0), 1, 4.0) == 3.0


def reference_amplitude_groups(logs_all, alive, min_count):
    """NumPy reference of the amplitude-groups kernel (find_trigger's loop): per pass,
    np.histogram of the log magnitudes left in 0.02-decade bins, the ±5-bin box holding
    most (the middle of ties) and in it the fullest 3 bins (the mode); the candidates
    below the valley above the mode, of those the ones within 0.1 decade of it, their
    median, and 5 robust SDs (at least 0.12 decade) around it, below the valley, taken
    out as a group."""
    groups = []
    while alive.size >= min_count:
        logs = logs_all[alive]
        edges = np.arange(logs.min() - 0.02, logs.max() + 2 * 0.02, 0.02)
        counts, _ = np.histogram(logs, edges)
        smooth = np.array([counts[max(i - 5, 0):i + 6].sum() for i in range(counts.size)])
        if smooth.max() < min_count:
            break
        top = np.flatnonzero(smooth == smooth.max())
        peak = top[top.size // 2]
        sums = np.convolve(counts, np.ones(3, dtype=np.int64), "same")
        mode = max(peak - 5, 0) + int(np.argmax(sums[max(peak - 5, 0):peak + 6]))
        below = reference_valley_above(sums, edges, mode, 4.0)
        core = logs[(logs < below) & (np.abs(logs - (edges[mode] + 0.01)) <= 0.1)]
        centre = np.median(core)
        spread = np.median(np.abs(core - centre)) * MAD_TO_SD
        near = (logs < below) & (np.abs(logs - centre) <= max(0.12, 5.0 * spread))
        groups.append((centre, alive[near]))
        alive = alive[~near]
    return groups


@pytest.mark.parametrize("seed", range(8))
def test_amplitude_groups_kernel_matches_reference(seed):
    """Groups of candidates (tight, loose, tied, 0.2 decade apart) over a background of
    small ones: the kernel's groups, centres and members are the reference's."""
    rng = np.random.default_rng(seed)
    mags = [10 ** rng.uniform(-5, -3.5, rng.integers(50, 2000))]
    for centre in rng.uniform(-4.5, -2.5, rng.integers(1, 5)):
        mags.append(10 ** (centre + rng.normal(0, rng.uniform(0.002, 0.05), rng.integers(20, 150))))
    if seed % 2:
        mags.append(10 ** (-3.0 + rng.normal(0, 0.003, 60)))  # two tight groups 0.215 decade apart
        mags.append(10 ** (-3.215 + rng.normal(0, 0.003, 60)))
    logs_all = np.log10(np.concatenate(mags))
    alive = np.flatnonzero(rng.random(logs_all.size) < 0.9)
    labels, centres = np.full(logs_all.size, -1), np.empty(logs_all.size)
    n_groups = amplitude_groups_kernel(logs_all, alive, 20, 0.02, 0.1, 5.0, 0.12, MAD_TO_SD, 4.0, labels, centres)
    expected = reference_amplitude_groups(logs_all, alive, 20)
    assert n_groups == len(expected) > 0
    for j, (centre, members) in enumerate(expected):
        assert centres[j] == centre
        np.testing.assert_array_equal(np.flatnonzero(labels == j), members)


def test_a_group_near_a_valley_is_centred_below_it():
    """Two tight groups 0.1 decade apart (within the core's reach of the lower one's
    mode), the lower holding more: its core and reach end at the valley between them,
    so each is one group; the kernel's groups are the reference's."""
    rng = np.random.default_rng(9)
    logs_all = np.r_[rng.normal(-3.0, 0.004, 80), rng.normal(-2.9, 0.004, 60), rng.uniform(-4.5, -3.5, 300)]
    alive = np.arange(logs_all.size)
    labels, centres = np.full(logs_all.size, -1), np.empty(logs_all.size)
    n_groups = amplitude_groups_kernel(logs_all, alive, 20, 0.02, 0.1, 5.0, 0.12, MAD_TO_SD, 4.0, labels, centres)
    expected = reference_amplitude_groups(logs_all, alive, 20)
    assert n_groups == len(expected)
    for j, (centre, members) in enumerate(expected):
        assert centres[j] == centre
        np.testing.assert_array_equal(np.flatnonzero(labels == j), members)
    sizes = {round(float(centre), 1): members.size for centre, members in expected}
    assert sizes[-3.0] == 80 and sizes[-2.9] == 60


def test_compiled_arange_is_numpys_to_the_bit():
    """The histogram edges: NumPy fills start + i * ((start + step) - start)."""
    rng = np.random.default_rng(0)
    for start, span in zip(rng.uniform(-6, -2, 200), rng.uniform(0.05, 3, 200)):
        np.testing.assert_array_equal(_arange(start, start + span, 0.02), np.arange(start, start + span, 0.02))


def test_two_tight_latency_groups_at_the_box_edges_end_the_search():
    """Two tight groups 12.3 samples apart, too small alone (20 of the 30 needed), fill
    only the ±6-sample box between them, whose centre has no candidate near it (the loop
    used to run forever, and the kernel to write past its output): the search ends, on
    the fullest bin's group, and the kernel is the reference."""
    lat = np.r_[np.full(20, 100.4), np.full(20, 112.7)]
    amp = np.full(40, 1e-3)
    done = []
    worker = threading.Thread(target=lambda: done.append(
        find_locked_potentials(lat, amp, 40, lock_half=6, min_fraction=0.75)), daemon=True)
    worker.start()
    worker.join(timeout=300)  # (with the kernels to compile first)
    assert done, "find_locked_potentials did not return"
    assert [round(p.latency, 1) for p in done[0]] == [100.4]
    out = np.empty((lat.size, 5))
    got = out[:locked_groups_kernel(lat, amp, 30, 6, MAD_TO_SD, out)]
    np.testing.assert_array_equal(got, reference_locked_groups(lat, amp, 30, 6))


def test_locked_potentials_refuse_what_would_never_end():
    """Non-finite latencies or a zero-width box would make a pass take nothing."""
    for lat, half in (([1.0, np.nan, 2.0], 3), ([1.0, 2.0, 3.0], 0)):
        with pytest.raises(ValueError):
            find_locked_potentials(np.array(lat), np.ones(3), 3, lock_half=half, min_fraction=0.5)


@pytest.mark.parametrize("n_sweeps", [8, 101])
def test_sweeps_noise_sd_ignores_what_every_sweep_holds(n_sweeps):
    """Sweeps of one event: Gaussian noise (SD 10 µV), the same 1 mV potential in each
    (a stimulus response), and another unit's 0.5 mV potential in one sweep of ten.
    The MAD of all samples reads the potential as noise; the median over samples of the
    consecutive differences' median magnitude does not. Tolerance: 4 SDs of the
    estimator over its 1000 samples (relative SD ~1.2 / sqrt(2 n_sweeps) per sample,
    x 1.25 / sqrt(1000) for their median), plus its 1.2 % bias at 8 sweeps."""
    rng = np.random.default_rng(1)
    fs_hz, sd_v = 50e3, 10e-6
    t_s = np.arange(1000) / fs_hz
    u = (t_s - 5e-3) / 1e-3
    sweeps = sd_v * rng.standard_normal((n_sweeps, t_s.size)) + 1e-3 * np.exp(-0.5 * u * u) * np.cos(4e3 * t_s)
    for i in range(3, n_sweeps, 10):
        sweeps[i, rng.integers(0, t_s.size - 20):][:20] += 0.5e-3
    got, from_differences = estimate_sweeps_noise_sd(sweeps)
    tolerance = 4 * 1.2 / np.sqrt(2 * n_sweeps) * 1.25 / np.sqrt(t_s.size) + (0.012 if n_sweeps < 10 else 0.0)
    assert from_differences and got == pytest.approx(sd_v, rel=tolerance)
    assert estimate_noise_sd(sweeps) > 1.4 * sd_v  # (why it is not used for sweeps)
    # one sweep, identical sweeps (or coarse steps: most differences 0), and sweeps not
    # aligned on their event (a review: the differences read 8-10 x) take the samples' MAD
    assert estimate_sweeps_noise_sd(sweeps[:1]) == (estimate_noise_sd(sweeps[:1]), False)
    identical = np.tile(sweeps[:1], (5, 1))
    assert estimate_sweeps_noise_sd(identical) == (estimate_noise_sd(identical), False)
    rolled = np.array([np.roll(row, int(k)) for row, k in zip(sweeps, rng.integers(0, t_s.size, n_sweeps))])
    assert estimate_sweeps_noise_sd(rolled) == (estimate_noise_sd(rolled), False)
    with pytest.raises(SfemgInputError, match="zero noise"):
        estimate_sweeps_noise_sd(np.zeros((5, 100)))
