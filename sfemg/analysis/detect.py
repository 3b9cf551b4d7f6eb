"""Finding potentials: candidate peaks, noise level, trigger discharges, time-locked potentials."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SfemgInputError
from ._detect_numba import (
    amplitude_groups_kernel,
    detect_both_kernel,
    detect_peaks_kernel,
    first_of_close_kernel,
    locked_groups_kernel,
    median_kernel,
    peak_values_kernel,
    running_median_kernel,
)

__all__ = ["detect_peaks", "detect_both_polarities", "peak_values", "running_median", "estimate_noise_sd",
           "estimate_sweeps_noise_sd",
           "amplitude_groups", "find_trigger", "find_locked_potentials", "LockedPotential",
           "estimate_noise_spectrum"]

#: Samples used for the robust noise estimate (a decimated subset of long recordings):
#: the MAD of 20 000 Gaussian samples has a relative SD of ~0.8 % (1.17 / sqrt(n)), a
#: 0.04-SD change of the 5-SD detection threshold; 100 000 took 7x longer (the medians
#: no longer fit in cache) for 0.4 %.
_NOISE_SUBSET = 20_000
#: Fewest potential-free segments accepted for the noise spectrum.
_MIN_NOISE_SEGMENTS = 4
#: Half-width of an amplitude group in robust SDs of its log-amplitudes (noise and
#: sampling phase spread a potential's peak; 5 SD keeps every discharge at >= 20 dB).
_GROUP_WIDTH_SD = 5.0
#: Bin of the trigger's amplitude histogram, decades (~5 %).
_BIN_DECADES = 0.02
#: A group is found as the ± this many decades (±26 %: the spread of one potential at
#: >= 20 dB) holding most candidates, and centred on their median.
_CORE_DECADES = 0.1
#: ... and reaches _GROUP_WIDTH_SD robust SDs of its members from it, at least this far.
MIN_GROUP_DECADES = 0.12
#: A group ends below a valley of its amplitude histogram past which the counts (3-bin
#: sums) rise again by this many Poisson SDs: a larger potential's mode, whose discharges
#: its 5-SD reach would otherwise take when its core is broad (a smaller potential's
#: candidates taken into a group are left out later; a discharge taken away is lost).
_VALLEY_Z = 4.0
#: A trigger group locked to one of similar size (within _PEER_DECADES) that fires this
#: many times as often, at more regular intervals, is passed over: it is a fibre of that
#: unit that blocks (a simulated MG recording: the biggest fibre fired in 55 of 100
#: discharges, and the analysis kept those 55).
_STEADIER = 1.2
#: Trigger groups are compared in firings with groups within this many decades of
#: amplitude (and only such a group, locked and steadier, passes one over: _STEADIER).
_PEER_DECADES = 0.5
#: Standard deviation of a Gaussian per unit of its median absolute deviation (MAD).
MAD_TO_SD = 1.0 / 0.6744897501960817

#: An SFEMG recording's noise is a few to tens of µV (simulated amplifier 10 µV; the
#: densest simulated concentric background, 60 units, ~0.1 mV in all): a robust SD
#: above this is a signal in mV or µV, whose potentials would be reported as volts or
#: kilovolts and all pass the amplitude criterion.
MAX_NOISE_SD_V = 1e-3
#: ... and one below this (a pV, six orders under any amplifier's noise) is a signal scaled
#: wrongly (or subnormal numbers, whose arithmetic fails), not one in volts.
MIN_NOISE_SD_V = 1e-12


def detect_peaks(x_v, threshold_v: float, half_width: int, polarity: int = 0):
    """Local maxima of ``x``, ``-x`` or ``|x|`` above a threshold, one per ``±half_width``.

    Parameters
    ----------
    x_v : ndarray, shape (n_samples,) or (n_rows, n_samples)
        Signal or sweeps, V.
    threshold_v : float
        Candidates satisfy ``|x| > threshold_v``, V.
    half_width : int
        A candidate is the first largest value within ± this many samples in its row.
    polarity : {1, -1, 0}
        Seek maxima of ``x`` (1), minima of ``x`` (-1) or maxima of ``|x|`` (0).

    Returns
    -------
    rows, cols : ndarray of int64, shape (n_candidates,)
        Row (0 for 1-D input) and sample index of each candidate, in row-major order.
    """
    if polarity not in (1, -1, 0):
        raise ValueError(f"polarity must be 1, -1 or 0, not {polarity!r}")
    return _candidates(detect_peaks_kernel, x_v, float(threshold_v), int(half_width), int(polarity))


def detect_both_polarities(x_v, threshold_v: float, half_width: int):
    """Positive and negative peaks (:func:`detect_peaks` with polarity 1 and -1, in one
    pass), merged in row-major order.

    Seeking each polarity separately keeps a potential's main phase a candidate even when
    an opposite phase of it is larger in some discharges.

    Returns
    -------
    rows, cols : ndarray of int64, shape (n_candidates,)
    """
    return _candidates(detect_both_kernel, x_v, float(threshold_v), int(half_width))


def _candidates(kernel, x_v, *args):
    """Run a candidate kernel (``kernel(x, *args, out_rows, out_cols)`` -> count) with
    output arrays grown until they hold every candidate (first sized for one per 100
    samples: a continuous recording has ~1.5 per 1000, its sweeps ~7 per 1000, and a
    second pass costs as much as the first)."""
    x = np.ascontiguousarray(np.atleast_2d(x_v), dtype=np.float64)
    capacity = max(1024, x.size // 100)
    while True:
        rows = np.empty(capacity, dtype=np.int64)
        cols = np.empty(capacity, dtype=np.int64)
        n = kernel(x, *args, rows, cols)
        if n <= capacity:
            return rows[:n], cols[:n]
        capacity = n


def peak_values(x_v, rows, cols):
    """Parabola-interpolated signed peak value at each candidate, V.

    The sampled maximum underestimates a ~70 µs phase by up to ~40 % at 25 kHz depending on
    the sampling phase; the vertex of the parabola through the three samples around it
    removes most of that spread, which keeps amplitude groups and block decisions sharp.

    Parameters
    ----------
    x_v : ndarray, shape (n_samples,) or (n_rows, n_samples)
    rows, cols : ndarray of int, shape (n_candidates,)

    Returns
    -------
    ndarray, shape (n_candidates,)
    """
    x = np.ascontiguousarray(np.atleast_2d(x_v), dtype=np.float64)
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    cols = np.ascontiguousarray(cols, dtype=np.int64)
    if rows.shape != cols.shape or rows.ndim != 1:
        raise ValueError(f"rows and cols must be 1-D of one length, got shapes {rows.shape} and {cols.shape}")
    if rows.size and (min(rows.min(), cols.min()) < 0 or rows.max() >= x.shape[0] or cols.max() >= x.shape[1]):
        raise IndexError(f"candidate outside the signal's {x.shape} samples")
    out = np.empty(rows.size)
    peak_values_kernel(x, rows, cols, out)
    return out


def fast_median(values) -> float:
    """Median of a 1-D array of finite values (a compiled ``np.median``)."""
    return float(median_kernel(np.ascontiguousarray(values, dtype=np.float64)))


def median_and_robust_sd(values):
    """Median and robust standard deviation (MAD × :data:`MAD_TO_SD`) of a 1-D array of
    finite values, in their unit."""
    median = fast_median(values)
    return median, fast_median(np.abs(np.asarray(values) - median)) * MAD_TO_SD


def running_median(x_v, width: int):
    """Running median of each row over ``width`` samples (odd; edges extended).

    Parameters
    ----------
    x_v : ndarray, shape (n_rows, n_samples)
        Finite values, V.
    width : int
        Window, samples (odd).

    Returns
    -------
    ndarray, shape (n_rows, n_samples)
        Equal to ``scipy.ndimage.median_filter(x_v, size=(1, width), mode="nearest")``.
    """
    if width < 1 or width % 2 == 0:
        raise ValueError(f"width must be a positive odd number of samples, not {width!r}")
    x = np.ascontiguousarray(x_v, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected rows of samples (2-D), got shape {x.shape}")
    out = np.empty_like(x)
    if x.shape[1] == 0:
        return out
    running_median_kernel(x, int(width), out)
    return out


def estimate_noise_sd(x_v) -> float:
    """Robust noise standard deviation: MAD/0.6745 of (a decimated subset of) the samples, V.

    Raises
    ------
    SfemgInputError
        Zero (a constant signal), or above :data:`MAX_NOISE_SD_V` or below :data:`MIN_NOISE_SD_V`
        (samples not in volts).
    """
    return _checked_noise_sd(_samples_sd(x_v))


def _samples_sd(x_v):
    """MAD/0.6745 of at most :data:`_NOISE_SUBSET` evenly spaced samples of ``x_v``, V."""
    x = np.ravel(x_v)
    return median_and_robust_sd(x[::max(1, x.size // _NOISE_SUBSET)])[1]


#: Windowed input's noise is taken from the differences between consecutive sweeps
#: unless they read more than this many times the samples' MAD (sweeps not aligned on
#: their event, :func:`estimate_sweeps_noise_sd`): a margin, so that the choice does
#: not flip between recordings of a study where the two read alike (a review: 2 of 12
#: did, on margins under 1 %, when the smaller of the two was taken), small enough that shifted
#: sweeps, whose differences read 2.1 x the noise and the samples 1.5 x, take the
#: samples (the test).
_UNALIGNED_RATIO = 1.2


def estimate_sweeps_noise_sd(sweeps_v):
    """Robust noise standard deviation of sweeps of one event (windowed input), V, and
    whether it came from their differences.

    At each sample of the sweep, the median magnitude of the differences between
    consecutive sweeps (over √2); the median of those over the samples, times
    :data:`MAD_TO_SD`. The time-locked potentials, and a stimulus artefact, are the same
    in every sweep but for their jitter and cancel there, where the MAD of all samples
    (:func:`estimate_noise_sd`) takes them for noise: on the simulator's sweeps it read
    2.0 × (voluntary) and 2.7 × (stimulated) the noise of the same recordings made
    continuous, the differences 0.96-1.21 × (medians 1.03-1.11; a review, 12 studies).
    Another unit's potential is an outlier in the two differences it is in; the few
    samples where a jittery potential leaves more lie in the median's tail. Sweeps not
    aligned on their event do not cancel (free-running windows: 8-10 × against the
    samples' ~2 ×, a review): the samples' MAD is taken where the differences read more
    than :data:`_UNALIGNED_RATIO` times it, or are zero (samples quantised coarsely),
    or there is one sweep. For Gaussian noise the differences read within 6 % with 3-5
    sweeps, 1.2 % with 8 or more.

    Parameters
    ----------
    sweeps_v : ndarray, shape (n, L)
        V.

    Returns
    -------
    sd_v : float
    from_differences : bool

    Raises
    ------
    SfemgInputError
        The noise so taken is zero, or outside the range :func:`estimate_noise_sd` accepts.
    """
    x = np.atleast_2d(sweeps_v)
    samples_sd = _samples_sd(x)
    differences_sd = 0.0
    if x.shape[0] >= 2:
        differences_sd = fast_median(np.median(np.abs(np.diff(x, axis=0)), axis=0)) / np.sqrt(2.0) * MAD_TO_SD
    from_differences = bool(differences_sd > 0 and differences_sd <= _UNALIGNED_RATIO * samples_sd)
    return _checked_noise_sd(differences_sd if from_differences else samples_sd), from_differences


def _checked_noise_sd(sd):
    """``sd``, V, refused where no recording's noise can be."""
    if sd <= 0:
        raise SfemgInputError("signal is constant (zero noise); nothing to analyse")
    if sd > MAX_NOISE_SD_V:
        raise SfemgInputError(f"the noise is {sd:.3g} V (robust SD): the samples are not in volts "
                              "(mV or µV?); convert them to volts")
    if sd < MIN_NOISE_SD_V:
        raise SfemgInputError(f"the noise is {sd:.3g} V (robust SD), far below any amplifier's: the samples "
                              "are not in volts; convert them to volts")
    return sd


def amplitude_groups(amplitudes_v, min_count: int):
    """Candidate peaks grouped by polarity and log-amplitude: the recurring potentials.

    Per polarity, the histogram of log10 magnitudes (0.02-decade bins) is searched for the
    ±0.1-decade box holding most candidates, and in it for the fullest three bins (the
    mode); the candidates within ±max(0.12 decade, 5 robust SD) of the median of those
    within 0.1 decade of the mode form a group — but not past a valley of the histogram
    above the mode beyond which the counts rise again by 4 Poisson SDs (a larger
    potential's mode) — and the search goes on among the rest
    (:func:`~sfemg.analysis._detect_numba.amplitude_groups_kernel`).

    Parameters
    ----------
    amplitudes_v : ndarray, shape (n_candidates,)
        Signed peak value of each candidate, V.
    min_count : int
        Groups smaller than this are not formed.

    Returns
    -------
    list of (float, float, ndarray of int)
        Per group: the median log10 magnitude (V), the polarity (+1.0 or -1.0) and the
        indices of its members, increasing.
    """
    amp = np.asarray(amplitudes_v, dtype=np.float64)
    groups = []
    labels, centres = np.empty(amp.size, dtype=np.int64), np.empty(amp.size)
    for sign in (1.0, -1.0):
        mags = amp * sign
        labels[:] = -1
        n_groups = amplitude_groups_kernel(np.log10(np.where(mags > 0, mags, 1.0)), np.flatnonzero(mags > 0),
                                           int(min_count), _BIN_DECADES, _CORE_DECADES, _GROUP_WIDTH_SD,
                                           MIN_GROUP_DECADES, MAD_TO_SD, _VALLEY_Z, labels, centres)
        groups += [(float(centres[j]), sign, np.flatnonzero(labels == j)) for j in range(n_groups)]
    return [g for g in groups if g[2].size >= min_count]


def find_trigger(amplitudes_v, times_idx, fs_hz: float, min_count: int, min_idi_ms: float, n_choices: int = 1):
    """The discharges of the consistent potentials, biggest first: trigger candidates.

    Candidate peaks are grouped by polarity and log-amplitude; a group is a consistent
    potential if it holds at least ``min_count`` candidates and fires (its candidates
    counted once within ``min_idi_ms`` of the first) at least a quarter as often as
    the most frequent group within half a decade of its amplitude. A group time-locked
    to one within half a decade of its amplitude that fires 1.2 times as often at more
    regular intervals (half or more of its discharges within ``min_idi_ms / 2`` of the
    other's; robust CV of the intervals) is a blocking fibre of that unit and no choice.
    The trigger is the biggest; the others are the next choices when the biggest has no
    time-locked potential (another unit's), except those time-locked to a bigger choice
    (another phase or fibre of the same unit, which would fail the same way).

    Parameters
    ----------
    amplitudes_v : ndarray, shape (n_candidates,)
        Signed peak value of each candidate, V.
    times_idx : ndarray of int, shape (n_candidates,)
        Sample index of each candidate (increasing).
    fs_hz : float
    min_count : int
    min_idi_ms : float
    n_choices : int
        How many of the consistent potentials to return, at most.

    Returns
    -------
    list of ndarray of int
        Per consistent potential in order of decreasing amplitude (the first
        ``n_choices``, at least one), the indices into the candidate arrays of its
        discharges, increasing.

    Raises
    ------
    SfemgInputError
        No consistent potential.
    """
    groups = amplitude_groups(amplitudes_v, min_count)
    if not groups:
        raise SfemgInputError("no potentials found: no recurring potential above the detection threshold")
    min_gap = min_idi_ms * 1e-3 * fs_hz
    times_idx = np.ascontiguousarray(times_idx, dtype=np.int64)
    # refractory: of members closer than min_gap the first is kept (keeping the larger let
    # two fibres of one unit of similar size, both in the group, alternate as the
    # reference from discharge to discharge; the first is the same fibre every time)
    fired = [m[first_of_close_kernel(times_idx[m], float(min_gap))] for _, _, m in groups]
    times = [times_idx[f].astype(np.float64) for f in fired]
    # a group qualifies if it fires >= 1/4 as often as any group of similar size (within
    # _PEER_DECADES): a rare large artefact does not, while the many small candidates of
    # background units and noise do not count against a big potential. Firings, not
    # candidates: a group holding several phases of one unit counts each discharge once
    qualified = [j for j, (centre, _, _) in enumerate(groups)
                 if fired[j].size >= 0.25 * max(fired[k].size for k, (c, _, _) in enumerate(groups)
                                                if abs(c - centre) <= _PEER_DECADES)]
    # a group locked to one of similar size that fires _STEADIER times as often, at more
    # regular intervals, is a fibre of that unit that blocks: the steadier potential is
    # the choice (the most frequent group always is one). A group that fires more often
    # because it also holds other units' potentials fires less regularly; but when the
    # trigger's group holds another unit's too both are irregular, and a 0.22 mV group
    # (238 firings) took the place of a 25 kHz recording's 1.06 mV one (179 for the
    # unit's 100): every reference was false. Hence similar size only.
    spread = [_interval_spread(t) for t in times]
    steady = [j for j in qualified
              if not any(fired[k].size >= _STEADIER * fired[j].size and spread[k] < spread[j]
                         and abs(groups[k][0] - groups[j][0]) <= _PEER_DECADES
                         and _locked(times[k], times[j], min_gap) for k in qualified)]
    choices, chosen_t = [], np.empty(0)  # discharge times of the choices so far, sorted, samples
    for j in sorted(steady, key=lambda j: -groups[j][0]):
        if len(choices) == n_choices:
            break
        if chosen_t.size and _locked(chosen_t, times[j], min_gap):
            continue
        choices.append(fired[j].astype(np.int64))
        chosen_t = np.sort(np.concatenate([chosen_t, times[j]]))
    return choices


def _interval_spread(sorted_t):
    """Robust coefficient of variation (MAD / median) of the intervals between the sorted
    times ``sorted_t``; inf for fewer than three times or a median interval of 0."""
    if sorted_t.size < 3:
        return np.inf
    intervals = np.diff(sorted_t)
    median = fast_median(intervals)
    if median <= 0:
        return np.inf
    return fast_median(np.abs(intervals - median)) / median


def _locked(sorted_t, t, min_gap):
    """Whether half or more of the times ``t`` lie within ``min_gap / 2`` of one of
    ``sorted_t`` (sorted, non-empty), samples: the same unit's discharges."""
    return bool(np.mean(_nearest_distance(sorted_t, t) <= 0.5 * min_gap) >= 0.5)


def _nearest_distance(sorted_t, t):
    """Distance from each of ``t`` to the nearest of ``sorted_t`` (sorted, non-empty)."""
    i = np.searchsorted(sorted_t, t)
    before = sorted_t[np.clip(i - 1, 0, sorted_t.size - 1)]
    after = sorted_t[np.clip(i, 0, sorted_t.size - 1)]
    return np.minimum(np.abs(t - before), np.abs(t - after))


@dataclass(frozen=True)
class LockedPotential:
    """A potential time-locked to the reference (trigger or stimulus).

    Attributes
    ----------
    latency : float
        Median latency from the reference, samples.
    half_window : int
        Half-width of its per-discharge search window, samples.
    polarity : float
        +1 or -1: sign of its main phase.
    amplitude_v : float
        Median absolute peak of its main phase, V.
    count : int
        Discharges in which it was detected as a candidate.
    """

    latency: float
    half_window: int
    polarity: float
    amplitude_v: float
    count: int


def find_locked_potentials(latencies, amplitudes_v, n_sweeps: int, *, lock_half: int,
                           min_fraction: float):
    """Potentials whose candidate latencies form a narrow peak in the latency histogram.

    Parameters
    ----------
    latencies : ndarray, shape (n_candidates,)
        Candidate time minus its sweep's reference time, samples.
    amplitudes_v : ndarray, shape (n_candidates,)
        Signed peak value of each candidate, V.
    n_sweeps : int
        Number of discharges (sweeps).
    lock_half : int
        Half-width of a histogram peak, samples.
    min_fraction : float
        A potential must be found in at least this fraction of the sweeps.

    Returns
    -------
    list of LockedPotential
        Sorted by latency, with non-overlapping search windows.
    """
    lat = np.ascontiguousarray(latencies, dtype=np.float64)
    amp = np.ascontiguousarray(amplitudes_v, dtype=np.float64)
    if lock_half < 1 or not (np.all(np.isfinite(lat)) and np.all(np.isfinite(amp))):
        raise ValueError("find_locked_potentials needs finite latencies and amplitudes and lock_half >= 1")
    min_count = max(2, int(np.ceil(min_fraction * n_sweeps)))
    # one pass per histogram peak: the mode of one-sample bins within a ±lock_half box
    # (among boxes holding min_count), taken at the half-width box's maximum (a ±lock_half
    # box can peak between two phases < 2 lock_half apart, whose bimodal spread would then
    # widen the window over both and more); the window then widened to 4 robust SDs
    groups = np.empty((lat.size, 5))  # each pass takes at least one candidate
    n_groups = locked_groups_kernel(lat, amp, min_count, int(lock_half), MAD_TO_SD, groups)
    found = [LockedPotential(float(c), int(h), float(pol), float(a), int(k)) for c, h, pol, a, k in groups[:n_groups]]
    found.sort(key=lambda p: p.latency)
    # search windows of neighbours must not overlap
    result = []
    for i, p in enumerate(found):
        half = p.half_window
        if i > 0:
            half = min(half, int((p.latency - found[i - 1].latency) / 2))
        if i + 1 < len(found):
            half = min(half, int((found[i + 1].latency - p.latency) / 2))
        result.append(LockedPotential(p.latency, max(half, 1), p.polarity, p.amplitude_v, p.count))
    return result


def estimate_noise_spectrum(x_v, busy_rows, busy_cols, seg_len: int, busy_margin: int, taper,
                            max_segments: int = 256):
    """Noise power per DFT bin, from segments free of candidate peaks.

    Parameters
    ----------
    x_v : ndarray, shape (n_rows, n_samples)
        Signal (one row) or sweeps, V.
    busy_rows, busy_cols : ndarray of int
        Positions to keep away from (candidate peaks, stimulus artefacts).
    seg_len : int
        Segment length, samples (the length of the time-point fit segments).
    busy_margin : int
        Segments keep at least this many samples from each busy position.
    taper : ndarray, shape (seg_len,)
        Window the segments are multiplied by before the DFT (as the fit segments are).
    max_segments : int
        At most this many segments, spread evenly over the data.

    Returns
    -------
    power : ndarray, shape (seg_len // 2 + 1,)
        Noise power per DFT bin of an untapered length-``seg_len`` segment, V^2, measured
        on tapered segments (no leakage) and rescaled by ``seg_len / sum(taper^2)``.
    rms_v : float
        Noise RMS over those segments, V.
    n_segments : int
    """
    x = np.atleast_2d(x_v)
    n_rows, n_cols = x.shape
    step = max(1, seg_len // 2)  # half-overlapping segments
    n_per_row = (n_cols - seg_len) // step + 1 if n_cols >= seg_len else 0
    if n_per_row <= 0:
        raise SfemgInputError(f"recording too short for noise estimation ({n_cols} samples per row)")
    starts_r = np.repeat(np.arange(n_rows), n_per_row)
    starts_c = np.tile(np.arange(n_per_row) * step, n_rows)
    # a segment is busy if any busy position lies within [start - margin, start + len + margin)
    key = busy_rows.astype(np.int64) * (n_cols + 1) + busy_cols
    order = np.sort(key)
    lo = starts_r * (n_cols + 1) + starts_c - busy_margin
    hi = starts_r * (n_cols + 1) + starts_c + seg_len + busy_margin
    first = np.searchsorted(order, lo, "left")  # the first busy key >= lo must be >= hi
    free = order[np.minimum(first, order.size - 1)] >= hi if order.size else np.ones(lo.size, bool)
    free |= first == order.size
    idx = np.flatnonzero(free)
    if idx.size < _MIN_NOISE_SEGMENTS:
        raise SfemgInputError("too little signal free of potentials to estimate the noise spectrum")
    if idx.size > max_segments:
        idx = idx[np.linspace(0, idx.size - 1, max_segments).astype(np.int64)]
    segs = x[starts_r[idx, None], starts_c[idx, None] + np.arange(seg_len)]
    segs = segs - segs.mean(axis=1, keepdims=True)
    # tapered to avoid leakage, rescaled to the power of an untapered segment (smooth PSD)
    power = np.mean(np.abs(np.fft.rfft(segs * taper[None, :], axis=1)) ** 2, axis=0) \
        * seg_len / np.sum(taper ** 2)
    rms = float(np.sqrt(np.mean(segs ** 2) * seg_len / (seg_len - 1)))
    return power, rms, int(idx.size)
