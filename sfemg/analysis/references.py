"""Which voluntary sweeps are discharges of the trigger potential.

The trigger's amplitude group can hold another unit's (or another fibre's) potentials
of similar size (:func:`trigger_discharges`), and a reference can be another potential
near the unit's discharge: the unit's waveform then lies shifted in its sweep, or the
discharge splits one of the unit's intervals in two (:func:`false_references`). Such
discharges would count as blocks of every pair. docs/analysis.md §1.3.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .._units import to_samples
from .detect import fast_median, median_and_robust_sd
from .jitter import two_group_split
from .potentials import MIN_SHAPE_CORRELATION, measure_potential
from .sweeps import MIN_TRIGGER_COUNT, fit_half_window, noise_spectrum, subset_sweeps
from .timing import fit_template

#: The trigger's own scale, against which other units' discharges in its amplitude group
#: are told apart: this percentile of the template scales over all sweeps.
_TRIGGER_SCALE_PERCENTILE = 90.0

#: Two groups of trigger scales are two potentials when Ashman's D of the best split
#: exceeds this (a Gaussian sample: 2.5-3; "flip-flop" is flagged above 4), each
#: holding at least _TRIGGER_SPLIT_FRACTION of the sweeps: D from the groups' SDs or
#: from their 16th-84th percentile spreads, whichever is larger (one half-cancelled
#: discharge inflates an SD and hides a clear split, D 20 -> 3; a side that holds two
#: groups itself has a wider percentile spread than SD, D 6.6 -> 5.8, in simulated recordings)
#: and when their median scales differ by more than _TRIGGER_SPLIT_LOG_SCALE (natural log):
#: one potential's scales can be so tight (SD 0.3 % in a healthy simulated recording)
#: that a tail of discharges 1 % smaller, under other units' potentials, makes a "group".
_TRIGGER_SPLIT_LOG_SCALE = 0.05
_TRIGGER_SPLIT_D = 6.0
_TRIGGER_SPLIT_FRACTION = 0.05

#: A reference discharge is another potential near the unit's discharge when the sweep
#: holds the unit's mean waveform shifted (:func:`_unit_elsewhere`): a correlation of at
#: least _ELSEWHERE_CORRELATION at a lag of _ELSEWHERE_MIN_LAG_US to _ELSEWHERE_LAG_US,
#: _ELSEWHERE_MARGIN above that at lag 0 (simulated: 0.89-0.99 at 620-1320 µs, against
#: -0.1-0.66 at lag 0; the unit's own discharges 0.98-1.0 at lag 0).
_ELSEWHERE_CORRELATION = 0.85
_ELSEWHERE_MARGIN = 0.2
_ELSEWHERE_MIN_LAG_US = 200.0
_ELSEWHERE_LAG_US = 2000.0

#: A voluntary reference discharge in which every pair is blocked, between two others,
#: is left out as another unit's potential when that is at least this many times likelier
#: than a discharge of the unit (:func:`_splits_an_interval`) ...
_SPLIT_ODDS = 10.0

#: ... taking this as the prior probability that a reference is another unit's potential
#: (simulated studies, seeds 1-12: 17 of ~36 000 references, but in clusters of 1-6 %
#: of a recording's). The validation grid's CV 0.3 cell has two true blocks near the
#: line (odds 7.4 and 6.6 at this prior, both short intervals in a row): a prior of
#: 0.0041 drops the first, 0.01 both; with 0.001 two false references of the simulated
#: seeds 7-12 stayed.
_FALSE_REFERENCE_PRIOR = 0.003


def trigger_discharges(sw, pot, spectra, fs_hz, params):
    """The voluntary sweeps that hold a discharge of the trigger potential.

    The trigger's amplitude group can take in discharges of another unit (or of another
    fibre of the same unit) whose peaks are of similar height; those sweeps hold no
    time-locked potential and would count as blocks of every pair. A sweep is a trigger
    discharge if the trigger's template fits it at least ``block_fraction`` of the
    :data:`_TRIGGER_SCALE_PERCENTILE` th percentile of the scales (the trigger's own
    size even when other units' discharges are the majority) with a correlation of at
    least :data:`~sfemg.analysis.potentials.MIN_SHAPE_CORRELATION` (on the simulated studies: true discharges at
    1.0-1.8 times a template fitted to all sweeps, another unit's at 0.35-0.5). When
    the scales fall in two clearly separate groups (:data:`_TRIGGER_SPLIT_D`) another
    unit of similar size and shape has joined (at 0.7 of the trigger's scale in a
    simulated recording, correlation 0.98): only the larger group is kept. The sweeps
    dropped are the second choice, analysed (with a trigger check of their own) if the
    kept ones fail (no time-locked potential): that bigger potential may be a
    background unit's (a simulated recording: scales 1.05 against 0.94, peaks 1.01
    against 0.92 of the median), and the trigger's discharges may even all have been
    dropped, their template scales far below the blend's.

    Returns
    -------
    Sweeps
        The trigger discharges: ``sw`` itself if none is dropped (or fewer than two pass).
    Sweeps or None
        The sweeps dropped (None when they are fewer than :data:`~sfemg.analysis.sweeps.MIN_TRIGGER_COUNT`,
        or when none is dropped).
    TemplateFit
        The trigger's fit over all of ``sw``'s sweeps (its time points when none is dropped).
    """
    fit_half = fit_half_window(params, fs_hz)
    _, _, segs, _ = measure_potential(sw.data_v, sw.ref_pos, pot, fit_half, True, params.block_fraction)
    fit = fit_template(segs, noise_spectrum(sw, segs.shape[1], spectra)[0])
    ok = (fit.amplitudes >= params.block_fraction * np.percentile(fit.amplitudes, _TRIGGER_SCALE_PERCENTILE)) \
        & (fit.correlations >= MIN_SHAPE_CORRELATION)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_scale = np.log(np.where(ok, fit.amplitudes, np.nan))
    d, threshold = two_group_split(log_scale, _TRIGGER_SPLIT_FRACTION)
    d_robust = two_group_split(log_scale, _TRIGGER_SPLIT_FRACTION, robust=True)[0]
    upper, lower = log_scale > threshold, log_scale <= threshold
    if max(d, d_robust) > _TRIGGER_SPLIT_D and upper.sum() >= MIN_TRIGGER_COUNT \
            and fast_median(log_scale[upper]) - fast_median(log_scale[lower]) > _TRIGGER_SPLIT_LOG_SCALE:
        ok = upper
    if ok.all() or ok.sum() < 2:
        return sw, None, fit
    rest = keep_references(sw, ~ok, pot, fs_hz, params) if np.sum(~ok) >= MIN_TRIGGER_COUNT else None
    return keep_references(sw, ok, pot, fs_hz, params), rest, fit


def keep_references(sw, keep, pot, fs_hz, params):
    """The sweeps ``keep`` (boolean mask) of ``sw``, the others left out as no discharge of
    the unit whose trigger potential is ``pot``.

    The intervals between the discharges kept run across those left out
    (:func:`~sfemg.analysis.sweeps.preceding_intervals`), except where one may have taken
    the place of a discharge of the unit: the refractory pick keeps the first of the
    trigger group's peaks within ``params.min_idi_ms`` (:func:`~sfemg.analysis.detect.find_trigger`),
    so a peak of the trigger's polarity and size (within ``block_fraction`` of it, either
    way) in that time after a reference left out may have been the unit's own discharge,
    lost with it; the interval across would then be two of the unit's. Judged on the
    continuous signal; in a windowed recording, whose sweeps hold no signal between
    them, none is taken to have (the interval runs across every sweep left out: on the
    validation grid's windowed MG recordings, breaking it at each made the reported
    jitter's RMSE 4.5 → 5.4 µs where the trigger fibre blocks most, the MSD then taken
    over half the discharges).

    Parameters
    ----------
    sw : Sweeps
        From :func:`~sfemg.analysis.sweeps.discharge_sweeps` (continuous: ``busy_cols``
        are the candidate peaks of ``signal_v``) or a windowed recording's.
    keep : ndarray of bool, shape (n,)
        The sweeps kept.
    pot : LockedPotential
        The trigger potential.
    fs_hz : float
        Sampling rate, Hz.
    params : AnalysisParams
        ``block_fraction``, ``min_idi_ms``.

    Returns
    -------
    Sweeps
        With ``displaced`` counting the discharges so lost.
    """
    keep = np.asarray(keep, dtype=bool)
    dropped = np.flatnonzero(~keep)
    stood_in = np.zeros(dropped.size, dtype=bool)
    if sw.signal_v is not None and dropped.size:
        x = sw.signal_v
        cols = np.sort(sw.busy_cols)
        size = pot.polarity * x[cols]
        fraction = params.block_fraction
        like = cols[(size >= fraction * pot.amplitude_v) & (size <= pot.amplitude_v / fraction)]
        ref = np.round(sw.start_s[dropped] * fs_hz + sw.ref_pos[dropped]).astype(np.int64)
        gap = params.min_idi_ms * 1e-3 * fs_hz
        # peaks in (ref, ref + gap): one at ref + gap or later was a reference of its own
        stood_in = np.searchsorted(like, ref + gap, side="left") > np.searchsorted(like, ref, side="right")
    passed = np.zeros(keep.size, dtype=bool)
    passed[dropped[~stood_in]] = True
    return dataclasses.replace(subset_sweeps(sw, keep, passed), displaced=sw.displaced + int(stood_in.sum()))


def false_references(data, sw, pots, trigger, times, rise_times_us, fs_hz, params):
    """Voluntary reference discharges that are another fibre's potential, not the trigger's.

    A discharge with a potential missing is a false reference if its sweep holds the
    unit's waveform shifted (:func:`_unit_elsewhere`): another potential near the unit's
    discharge was taken as the reference.

    Otherwise only discharges in which every other potential is missing are judged
    (elsewhere the reference is right: the unit's fibres are there); such a discharge
    would count as a block of every pair. Slow potentials (rise time not below
    ``max_rise_time_us``) do not count, unless every other potential is slow: one can be
    a slow phase of the reference's own waveform, present wherever a potential like the
    trigger's is taken as the reference. It is a false reference if the trigger
    potential is present where it would be if the reference were another of the
    potentials, at minus that potential's latency: that fibre's potential was taken for
    the trigger's (in the trigger's amplitude group, the trigger's own missing from it
    or later within the refractory period). Not where another potential lies at that
    latency.

    It is also a false reference if it splits one of the unit's intervals in two
    (:func:`_splits_an_interval`): another unit's potential between two discharges. A
    short interval alone does not tell: a unit firing irregularly (interval CV 0.3) has
    true blocks at such intervals (dropping every reference < 0.35 x the median interval
    from a neighbour lost ~11 % of a severe MG study's blocks).

    Parameters
    ----------
    data : ndarray, shape (n, L)
        The sweeps, V.
    sw : Sweeps
    pots : list of LockedPotential
    trigger : int
        Index of the trigger in ``pots``.
    times : list of ndarray, shape (n,)
        Each potential's time points, s; NaN where missing.
    rise_times_us : list of float
        Each potential's rise time, µs.
    fs_hz : float
    params : AnalysisParams

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    others = [j for j in range(len(pots)) if j != trigger]
    false = _unit_elsewhere(data, sw.ref_pos, pots, [times[j] for j in others], fs_hz)
    fast = [j for j in others if rise_times_us[j] < params.max_rise_time_us]
    others = fast or others
    rows = np.flatnonzero(np.all([~np.isfinite(times[j]) for j in others], axis=0) & ~false)
    if rows.size == 0:
        return false
    n_cols = data.shape[1]
    fit_half = fit_half_window(params, fs_hz)
    for j in others:
        moved = dataclasses.replace(pots[trigger], latency=2.0 * pots[trigger].latency - pots[j].latency)
        if any(abs(moved.latency - p.latency) <= p.half_window + moved.half_window for p in pots):
            continue  # another potential's place: its presence there says nothing
        centre = np.round(sw.ref_pos[rows] + moved.latency)
        inside = (centre - moved.half_window - fit_half >= 0) & (centre + moved.half_window + fit_half < n_cols)
        present = measure_potential(data[rows], sw.ref_pos[rows], moved, fit_half, False, params.block_fraction)[0]
        false[rows[present & inside]] = True
    rows = rows[~false[rows]]
    block_rates = [np.mean(~np.isfinite(times[j])) for j in others]
    false[rows[_splits_an_interval(sw.ref_times_s, rows, block_rates)]] = True
    return false


def _unit_elsewhere(data, ref_pos, pots, other_times, fs_hz):
    """Discharges whose sweep holds the unit's waveform away from the reference.

    Where another potential near a discharge of the unit (within ``min_idi_ms``, and
    first; or with the trigger's own missing from its amplitude group) was taken as the
    reference, the unit's potentials lie shifted by that distance and some or all of
    them seem missing. Judged in the discharges with a potential missing (in every
    discharge, it took the large latency excursions of jittery MG fibres for a shifted
    unit: the validation grid's MCD biased low by up to 5 µs): the sweep's correlation
    with the unit's mean waveform (the mean of the discharges holding every
    potential, from 0.5 ms before the first potential to 0.5 ms after the last) at lags
    up to ±:data:`_ELSEWHERE_LAG_US`; the reference is false when the best correlation
    at a lag of at least :data:`_ELSEWHERE_MIN_LAG_US` is at least
    :data:`_ELSEWHERE_CORRELATION`, and :data:`_ELSEWHERE_MARGIN` above that at lag 0.
    The lags are those every sweep holds (fewer near the sweeps' edges; none below
    :data:`_ELSEWHERE_MIN_LAG_US`: not judged), and at least :data:`~sfemg.analysis.sweeps.MIN_TRIGGER_COUNT`
    discharges must hold every potential.

    Parameters
    ----------
    data : ndarray, shape (n, L)
        Sweeps, V.
    ref_pos : ndarray, shape (n,)
        The reference's position in each, samples.
    pots : list of LockedPotential
    other_times : list of ndarray, shape (n,)
        Time points of the potentials other than the trigger (NaN where missing).
    fs_hz : float

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    n, n_cols = data.shape
    false = np.zeros(n, dtype=bool)
    missing = np.any([~np.isfinite(t) for t in other_times], axis=0)
    if not missing.any() or (~missing).sum() < MIN_TRIGGER_COUNT:
        return false
    ref = np.round(ref_pos).astype(np.int64)
    margin = to_samples(0.5e-3, fs_hz)
    lo = int(np.floor(min(p.latency for p in pots))) - margin
    hi = int(np.ceil(max(p.latency for p in pots))) + margin + 1
    lag = min(to_samples(_ELSEWHERE_LAG_US * 1e-6, fs_hz), int((ref + lo).min()), int(n_cols - (ref + hi).max()))
    min_lag = to_samples(_ELSEWHERE_MIN_LAG_US * 1e-6, fs_hz)
    if lag <= min_lag:
        return false
    width = hi - lo
    mean = data[np.flatnonzero(~missing)[:, None], ref[~missing, None] + np.arange(lo, hi)].mean(axis=0)
    mean -= mean.mean()
    for i in np.flatnonzero(missing):
        x = data[i, ref[i] + lo - lag:ref[i] + hi + lag]
        cross = np.correlate(x, mean, mode="valid")  # lags -lag..lag
        energy = np.convolve(x * x, np.ones(width), mode="valid")
        sums = np.convolve(x, np.ones(width), mode="valid")
        with np.errstate(divide="ignore", invalid="ignore"):
            r = cross / np.sqrt((energy - sums * sums / width) * (mean @ mean))
        r = np.nan_to_num(r, nan=-1.0, posinf=-1.0, neginf=-1.0)  # flat windows: no match
        away = np.abs(np.arange(-lag, lag + 1)) >= min_lag
        best = r[away].max()
        false[i] = best >= _ELSEWHERE_CORRELATION and best - r[lag] >= _ELSEWHERE_MARGIN
    return false


def _splits_an_interval(ref_times_s, rows, block_rates):
    """Which reference discharges ``rows`` split one of the unit's intervals in two.

    A discharge with every pair blocked, at intervals ``a`` after the previous reference
    and ``b`` before the next, is either

    * the unit's, every pair blocked: prior the product of the pairs' blocking rates
      (as if they blocked independently), likelihood ``f(a) f(b)``;
    * another unit's potential anywhere within one interval of the unit: prior
      :data:`_FALSE_REFERENCE_PRIOR`, likelihood ``f(a + b) / (a + b)`` (the interval's
      density times the uniform density of a place within it);

    with ``f`` the normal density of the unit's intervals: their median, and their
    robust SD but at least 1 % of the median (a unit firing perfectly regularly). It
    splits an interval when the second is at least :data:`_SPLIT_ODDS` times likelier.
    The first and last discharges are not judged (nor, given NaN times, those next to
    one; the caller passes the sweeps' reference times, which have none).

    Parameters
    ----------
    ref_times_s : ndarray, shape (n,)
        Reference times, s (NaN where not measured).
    rows : ndarray of int, shape (m,)
        The discharges to judge.
    block_rates : sequence of float, shape (n_pairs,)
        Each pair's fraction of blocked discharges (> 0: the judged ones are blocked),
        of the pairs that count for "every pair blocked" (:func:`false_references`:
        not the slow ones, unless all are).

    Returns
    -------
    ndarray of bool, shape (m,)
        True where the discharge is another unit's potential.
    """
    t = np.asarray(ref_times_s, dtype=float)
    intervals_s = np.diff(t)
    intervals_s = intervals_s[np.isfinite(intervals_s)]
    split = np.zeros(rows.shape, dtype=bool)
    inner = (rows > 0) & (rows < t.size - 1)
    if intervals_s.size < MIN_TRIGGER_COUNT or not inner.any():
        return split
    median_s, sd_s = median_and_robust_sd(intervals_s)
    sd_s = max(sd_s, 0.01 * median_s)

    def log_f(x):
        return -0.5 * ((x - median_s) / sd_s) ** 2 - np.log(sd_s * np.sqrt(2.0 * np.pi))

    j = rows[inner]
    a, b = t[j] - t[j - 1], t[j + 1] - t[j]
    log_unit = np.sum(np.log(block_rates)) + log_f(a) + log_f(b)
    log_other = np.log(_FALSE_REFERENCE_PRIOR) + log_f(a + b) - np.log(a + b)
    split[inner] = log_other - log_unit >= np.log(_SPLIT_ODDS)
    return split
