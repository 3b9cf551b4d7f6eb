"""From a recording to sweeps: one row of samples per discharge, the common input of the analysis.

Continuous and windowed input are both reduced to sweeps: one row per discharge
(voluntary, around the trigger potential) or per stimulus (the stimulus artefact
removed), with the reference's position in each row and what the noise is measured
on. Also the input checks every entry point shares, and the sweeps' noise spectrum for
fit segments of a given length. docs/analysis.md §1.1-1.3.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy import signal as sps

from .._units import to_samples
from ..errors import SfemgInputError
from ..recording import Recording
from ._detect_numba import extremes_kernel
from .detect import (
    detect_both_polarities,
    estimate_noise_spectrum,
    find_trigger,
    median_and_robust_sd,
    peak_values,
    running_median,
)
from .params import MAX_FS_HZ, MIN_FS_HZ
from .stimulus import StimulusTiming, search_span, time_stimuli
from .timing import fit_taper

#: The trigger potential must recur at least this often to be recognised.
MIN_TRIGGER_COUNT = 8

#: A recording is taken for not high-pass filtered when the median magnitude of its
#: blocks' medians exceeds _UNFILTERED_SDS noise SDs (:func:`band_limited`): blocks of
#: _BLOCK_MS in a continuous signal, each sweep whole in windowed input (a triggered
#: sweep holds the unit's potentials at the same place; over a whole sweep they are a
#: minority of the samples). The noise SD is from differences of samples _STEP_US
#: apart (band-limited noise decorrelates within it, a slow component hardly moves).
#: Filtered input reads 0.037-0.078 (analytic and simulated continuous recordings,
#: 25-100 kHz, 20-40 dB), 0.23 at a concentric needle with 60 background units, up to
#: 0.41 in the validation grid's sweeps (2.5 µV noise); 50 Hz hum at 20 µV noise reads
#: 1.8 at 0.05 mV, 3.7 at 0.1 mV (3-4 at 25-100 kHz, every phase, 0.5-20 s) and 7.6 at
#: 0.2 mV, where the analysis found no potentials (at 0.1 mV it was unchanged).
_BLOCK_MS = 4.3
_UNFILTERED_SDS = 3.0
_STEP_US = 50.0
#: ... over _STRETCHES stretches of _STRETCH_BLOCKS consecutive blocks, evenly spread,
#: and the noise SD from at most _MAX_STEPS differences (the MAD of 4000 has a relative
#: SD of ~2 %). The block is no divisor of a 50 or 60 Hz period, and the blocks of a
#: stretch are consecutive: their medians sample mains hum at every phase. (5 ms blocks,
#: a quarter of 20 ms, evenly spread over the recording: at some phases of 50 Hz hum
#: every other block mean was near zero and the median with them, and at some
#: recording lengths every block chosen fell on one phase; found in review.)
_STRETCHES = 4
_STRETCH_BLOCKS = 50
_MAX_STEPS = 4000

#: Exactly constant stretches of at least _FLAT_MS over more than _FLAT_FRACTION of the
#: samples are refused (:func:`check_flat`): a recording with 20 % of zeros in one gap
#: reported a technical jitter 14 % low (its noise measured partly on the gap), with
#: 50 % the band check took it for unfiltered. A clipped potential's flat top lasts
#: well under 1 ms.
_FLAT_MS = 1.0
_FLAT_FRACTION = 0.01

#: Stimulus times more than this many recording lengths from its middle are refused (in
#: other units; one of 1e300 s overflowed a sample index); those just outside it have no
#: complete window and are left out.
_FAR_OUTSIDE = 10.0

#: The samples clip at their largest (smallest) value when at least this many separate
#: runs of two or more consecutive samples hold exactly it (:func:`find_saturation`).
_CLIP_MIN_RUNS = 5

#: Stimulated recordings: half-width of the stretch around each response's candidate peak
#: that the artefact baseline is interpolated across (a potential's phases lie within
#: ~±0.5 ms of its largest peak).
_RESPONSE_HALF_US = 500.0


@dataclass(frozen=True)
class Saturation:
    """Where the samples as recorded clip (the amplifier or its converter saturated)."""

    levels_v: tuple           # (low, high), V; NaN where the samples do not clip there
    times_s: np.ndarray       # (m,) increasing: the times of the samples at those levels


@dataclass(frozen=True)
class Sweeps:
    """Rows of samples around each discharge: the common input of the analysis."""

    data_v: np.ndarray        # (n, n_cols)
    start_s: np.ndarray       # (n,) time of each row's first sample
    ref_pos: np.ndarray       # (n,) reference (trigger / stimulus) position in the row, samples
    ref_times_s: np.ndarray   # (n,) stimulus times; for voluntary the coarse trigger times
    noise_v: np.ndarray       # (n_rows, n) data the noise is measured on
    busy_rows: np.ndarray     # positions in noise_v near potentials or artefacts
    busy_cols: np.ndarray
    noise_sd: float           # robust noise standard deviation, V
    saturation: Saturation | None = None  # where the samples as recorded clip
    # the continuous signal the rows were cut from (voluntary: its candidate peaks are
    # busy_cols); None: windowed input, no signal between the sweeps
    signal_v: np.ndarray | None = None
    stimulus: StimulusTiming | None = None  # stimulated: where the stimulus times come from
    ref_var: np.ndarray | None = None  # (n,) samples^2: each stimulus time's error variance; None: 0
    artefact_delay: float = 0.0  # samples: stimulated, where the artefact (and the blank) begins after the stimulus
    # (n,) bool: the row before is the previous discharge (stimulus), none left out between
    # them; None: every row but the first (see preceding_intervals)
    after_previous: np.ndarray | None = None
    displaced: int = 0  # discharges of the unit lost with references left out in their place


def preceding_intervals(sw, ref_times_s):
    """The interval from each discharge's reference to the previous one's, s; NaN for
    the first and where a row left out between them was not passed over
    (:func:`subset_sweeps`; e.g. a reference dropped as another unit's potential that
    may have taken the place of the unit's own discharge, kept the first within
    ``min_idi_ms``: the interval across it would be two of the unit's, and misplace the
    discharge in the MSD's ordering).

    Parameters
    ----------
    sw : Sweeps
    ref_times_s : ndarray, shape (n,)
        The rows' reference times, s.

    Returns
    -------
    ndarray, shape (n,)
    """
    idis = np.r_[np.nan, np.diff(ref_times_s)]
    if sw.after_previous is None:
        return idis
    return np.where(sw.after_previous, idis, np.nan)


def check_signal(signal_v, fs_hz, mode, stimulus_times_s):
    arr = np.asarray(signal_v)
    if arr.ndim != 1:
        raise SfemgInputError(f"signal_v: expected a 1-D signal, got shape {arr.shape} "
                              "(give sweeps through a Recording)")
    if arr.dtype.kind in "iub":
        raise SfemgInputError("signal_v: integer ADC data; convert to volts (multiply by the scale) first")
    if arr.dtype.kind != "f":
        raise SfemgInputError(f"signal_v: expected real numbers, got dtype {arr.dtype}")
    if arr.size < 2:
        raise SfemgInputError(f"signal_v: {arr.size} sample(s); need a recording")
    if not np.all(np.isfinite(arr)):
        raise SfemgInputError("signal_v: contains NaN or infinite values (gaps? cut them out, or analyse the "
                              "parts between them separately)")
    check_fs(fs_hz)
    if mode not in ("voluntary", "stimulated"):
        raise SfemgInputError(f"mode must be 'voluntary' or 'stimulated', not {mode!r}")
    if mode == "stimulated" and stimulus_times_s is None:
        raise SfemgInputError("stimulus_times_s: required for a stimulated recording")
    return np.ascontiguousarray(arr, dtype=np.float64)


def band_limited(x_v, fs_hz, params):
    """The samples to analyse: high-pass filtered if ``params.highpass_hz`` is set, else
    checked to be so already.

    With ``highpass_hz`` > 0 each row is filtered by a 2nd-order Butterworth high-pass at
    that corner (:func:`scipy.signal.sosfilt`, causal as an SFEMG amplifier's filter),
    started from the row's first sample as a steady level (no step response to an
    offset). Otherwise the median magnitude of the medians of the rows' :data:`_BLOCK_MS`
    blocks (a sweep shorter than that: its median; at most :data:`_STRETCHES` stretches
    of :data:`_STRETCH_BLOCKS` consecutive blocks) is compared with the noise SD (from at
    most :data:`_MAX_STEPS` sample-to-sample differences, which a slow component does
    not reach): above :data:`_UNFILTERED_SDS` the recording carries a DC offset, mains
    hum or drift, which passes for potentials or hides them. Medians, not means: a
    triggered sweep holds the unit's potentials in the same block every time, and
    their slow phases moved its mean (a simulated validation sweep recording at 10 µV
    read 4 with means).

    Parameters
    ----------
    x_v : ndarray, shape (n_samples,) or (n_rows, n_samples)
        Signal or sweeps, V (finite float64).
    fs_hz : float
    params : AnalysisParams

    Returns
    -------
    ndarray
        ``x_v`` itself, or filtered (same shape).

    Raises
    ------
    SfemgInputError
        Not high-pass filtered and no ``highpass_hz``; a corner at or above 0.45 ×
        ``fs_hz``.
    """
    if params.highpass_hz > 0:
        if params.highpass_hz >= 0.45 * fs_hz:
            raise SfemgInputError(f"highpass_hz = {params.highpass_hz:g} Hz must lie below 0.45 x the "
                                  f"sampling rate ({fs_hz:g} Hz)")
        sos = sps.butter(2, params.highpass_hz, "highpass", fs=fs_hz, output="sos")
        rows = np.atleast_2d(x_v)
        zi = sps.sosfilt_zi(sos)[:, None, :] * rows[None, :, :1]
        return sps.sosfilt(sos, rows, axis=1, zi=zi)[0].reshape(np.shape(x_v))
    rows = np.atleast_2d(x_v)
    block = min(to_samples(_BLOCK_MS * 1e-3, fs_hz, minimum=1), rows.shape[1]) if rows.shape[0] == 1 else rows.shape[1]
    n_blocks = rows.shape[1] // block
    blocks = rows[:, :n_blocks * block].reshape(rows.shape[0] * n_blocks, block)
    if blocks.shape[0] > _STRETCHES * _STRETCH_BLOCKS:
        first = np.linspace(0, blocks.shape[0] - _STRETCH_BLOCKS, _STRETCHES).astype(np.int64)
        blocks = blocks[(first[:, None] + np.arange(_STRETCH_BLOCKS)).ravel()]
    middles = np.partition(blocks, block // 2, axis=1)[:, block // 2]  # (medians, as partitions: 7x faster)
    lag = to_samples(_STEP_US * 1e-6, fs_hz, minimum=1)
    at = np.arange(0, rows.size - lag, max(1, rows.size // _MAX_STEPS))  # (steps across rows: a few)
    steps = rows.ravel()[at + lag] - rows.ravel()[at]
    if steps.size == 0:  # a signal of a few samples: nothing to judge it by (it is refused later)
        return x_v
    noise_sd = median_and_robust_sd(steps)[1] / np.sqrt(2.0)
    offset = float(np.median(np.abs(middles)))
    if noise_sd > 0 and offset > _UNFILTERED_SDS * noise_sd:  # (0: coarse steps, judged by the noise estimate)
        corner = 1000 if params.electrode == "concentric" else 500
        raise SfemgInputError(
            f"the signal is not high-pass filtered: its {block / fs_hz * 1e3:.3g} ms medians lie "
            f"{offset / noise_sd:.0f} noise SDs from zero (DC offset, mains hum or drift); SFEMG is recorded "
            f"through a 500 Hz (SFE) or 1 kHz (concentric) high-pass: filter it, or analyse with --highpass "
            f"{corner} (AnalysisParams(highpass_hz={corner}))")
    return x_v


def prepared_input(x_v, start_s, fs_hz, params):
    """The samples to analyse, and where those as recorded clip.

    In turn: refused if flat stretches (:func:`check_flat`) would pass for quiet noise;
    the clipping levels found (:func:`find_saturation`), before any filter; high-pass
    filtered or checked to be so (:func:`band_limited`).

    Parameters
    ----------
    x_v : ndarray, shape (n_samples,) or (n_rows, n_samples)
        Signal or sweeps as recorded, V (finite float64).
    start_s : ndarray, shape (n_rows,)
        Time of each row's first sample, s.
    fs_hz : float
    params : AnalysisParams

    Returns
    -------
    x : ndarray
        Like ``x_v``.
    saturation : Saturation
    """
    rows = np.atleast_2d(x_v)
    check_flat(rows, fs_hz)
    return band_limited(x_v, fs_hz, params), find_saturation(rows, start_s, fs_hz)


def check_flat(rows_v, fs_hz):
    """Refuse samples that hold exactly constant stretches of :data:`_FLAT_MS` or more
    over more than :data:`_FLAT_FRACTION` of their length (gaps filled with zeros, a
    blocked amplifier): the noise and its spectrum would be measured on them.

    Probed at up to :data:`_MAX_STEPS` places (a sample equal to the next and to the
    one ``_FLAT_MS`` later), then counted exactly when the probes find any.

    Parameters
    ----------
    rows_v : ndarray, shape (n_rows, n_samples)
    fs_hz : float

    Raises
    ------
    SfemgInputError
    """
    span = to_samples(_FLAT_MS * 1e-3, fs_hz, minimum=2)
    if rows_v.shape[1] <= span:
        return
    at = np.arange(0, rows_v.shape[1] - span, max(1, rows_v.size // _MAX_STEPS))
    probe = rows_v[:, at]
    if not np.any((probe == rows_v[:, at + 1]) & (probe == rows_v[:, at + span])):
        return
    same = np.diff(rows_v, axis=1) == 0  # (n_rows, n - 1): sample k equals sample k + 1
    flat = 0
    for row in same:
        edges = np.flatnonzero(np.diff(np.r_[0, row.view(np.int8), 0]))
        runs = edges[1::2] - edges[::2] + 1  # samples in each constant run
        flat += int(runs[runs > span].sum())
    if flat > _FLAT_FRACTION * rows_v.size:
        raise SfemgInputError(
            f"{100 * flat / rows_v.size:.0f} % of the samples are exactly constant in stretches of "
            f"{_FLAT_MS:g} ms or more (gaps filled with zeros, or a blocked amplifier): cut them out, or analyse "
            "the parts on either side as separate recordings")


def find_saturation(rows_v, start_s, fs_hz) -> Saturation:
    """The levels at which the samples as recorded clip, and the times of the samples there.

    A level is the data's largest (smallest) value when at least :data:`_CLIP_MIN_RUNS`
    separate runs of two or more consecutive samples hold exactly it: a potential
    flattened at the rail. Unclipped samples reach their extreme once.

    Parameters
    ----------
    rows_v : ndarray, shape (n_rows, n_samples)
        The signal (one row) or the sweeps as recorded, V.
    start_s : ndarray, shape (n_rows,)
        Time of each row's first sample, s.
    fs_hz : float

    Returns
    -------
    Saturation
    """
    levels, times = [float("nan"), float("nan")], [np.empty(0)]
    if rows_v.size == 0:
        return Saturation(tuple(levels), times[0])
    low, high, n_low, n_high = extremes_kernel(np.ascontiguousarray(rows_v, dtype=np.float64))
    for side, (value, count) in enumerate(((low, n_low), (high, n_high))):
        if count < 2 * _CLIP_MIN_RUNS:  # (as a rule: one sample)
            continue
        at = rows_v == value
        run_starts = at[:, 1:] & at[:, :-1] & ~np.pad(at[:, :-2], ((0, 0), (1, 0)))
        if np.count_nonzero(run_starts) >= _CLIP_MIN_RUNS:
            levels[side] = float(value)
            r, c = np.nonzero(at)
            times.append(np.asarray(start_s)[r] + c / fs_hz)
    return Saturation(tuple(levels), np.sort(np.concatenate(times)))


def check_fs(fs_hz):
    try:
        rate = float(fs_hz)
    except (OverflowError, TypeError, ValueError):
        rate = float("nan")
    if not isinstance(fs_hz, (int, float, np.integer, np.floating)) or not np.isfinite(rate) or rate <= 0:
        raise SfemgInputError(f"fs_hz must be a positive number, got {repr(fs_hz)[:40]}")
    if rate < MIN_FS_HZ:
        raise SfemgInputError(f"sampling rate {rate:g} Hz is too low for jitter measurement "
                              f"(need >= {MIN_FS_HZ:g} Hz{'; given in kHz?' if rate < 1e3 else ''})")
    if rate > MAX_FS_HZ:
        raise SfemgInputError(f"fs_hz = {rate:g} Hz is above {MAX_FS_HZ:g} Hz, no EMG sampling rate "
                              "(not in Hz?)")


def _fast_length(n):
    """Smallest odd length >= ``n`` made of the factors 3, 5, 7 and 11 only.

    Sweep lengths are chosen so: their DFTs (joint templates, model of the sweeps) are
    2.5x faster than at a nearby length with large prime factors (measured for 100 rows:
    1121 -> 1125 samples 830 -> 340 µs), and odd lengths keep the reference centred.
    """
    m = n | 1
    while True:
        k = m
        for f in (3, 5, 7, 11):
            while k % f == 0:
                k //= f
        if k == 1:
            return m
        m += 2


def _sweep_length(n, n_samples, fs_hz, params):
    """:func:`_fast_length` of ``n``, refused where a sweep of ``n`` samples (the search
    window and the fit's either side) would not fit in a recording of ``n_samples``."""
    if n > n_samples:
        raise SfemgInputError(f"search_window_ms ({params.search_window_ms:g}) and fit_half_window_us "
                              f"({params.fit_half_window_us:g}) make sweeps longer than the recording "
                              f"({n_samples / fs_hz * 1e3:.6g} ms)")
    return _fast_length(n)


def fit_half_window(params, fs_hz):
    """Half-length of the time-point fit segments, samples (``fit_half_window_us``, at least 2).

    Not widened to a fast DFT length: the segment's extent sets how much of a neighbouring
    fibre's tail enters the fit, and 61 -> 63 samples at 50 kHz moved MCDs by up to 4 %.
    """
    return to_samples(params.fit_half_window_us * 1e-6, fs_hz, minimum=2)


def _windows(x, starts, n_cols):
    """Rows ``x[start:start + n_cols]`` (all inside ``x``)."""
    return x[starts[:, None] + np.arange(n_cols)[None, :]]


def find_candidates(x, noise_sd, fs_hz, params):
    """Candidate peaks of both polarities (rows, columns) above the detection threshold;
    not a row's first or last sample, where the largest value is no peak but a
    potential cut by the row's end (a windowed sweep that began within a potential, at
    -0.97 mV, took that edge for its trigger: an interval 1.3 ms off, its pair's MCD
    39 -> 71 µs, on the validation grid)."""
    half_width = to_samples(params.peak_window_us * 1e-6, fs_hz, minimum=1)
    rows, cols = detect_both_polarities(x, params.detect_threshold_sd * noise_sd, half_width)
    inside = (cols > 0) & (cols < np.shape(x)[-1] - 1)
    return rows[inside], cols[inside]


def _bridge(x, rows, cols, half, first=1):
    """``x`` with ``[max(col - half, first), col + half]`` of each (row, col) replaced by
    the straight line between the samples either side (per row; ``first``: per item or
    one for all, at least 1; the first and last samples are kept)."""
    n_rows, n_cols = x.shape
    covered = np.zeros(x.shape, dtype=bool)
    spans = np.clip(cols[:, None] + np.arange(-half, half + 1)[None, :],
                    np.maximum(np.reshape(first, (-1, 1)), 1), n_cols - 2)
    covered[np.repeat(rows, spans.shape[1]), spans.ravel()] = True
    # one interpolation over all rows, each on its own stretch of the axis
    axis = (np.arange(n_rows)[:, None] * (2 * n_cols) + np.arange(n_cols)[None, :]).ravel()
    flat, keep = x.ravel().copy(), ~covered.ravel()
    flat[~keep] = np.interp(axis[~keep], axis[keep], flat[keep])
    return flat.reshape(x.shape)


def _remove_artefact(data, ref_pos, fs_hz, params, noise_sd):
    """Stimulated sweeps without the stimulus artefact: running-median tail removed, blank zeroed.

    A median of ``artefact_baseline_ms`` follows the artefact's fast tail, but also part of each
    response, differently in every sweep's noise (time points scattered by 3-10 µs on
    simulated recordings, MCD +9 % median): it is taken again with the responses it found
    after the blank (candidate peaks ± :data:`_RESPONSE_HALF_US`, from the blank's end at
    the earliest) bridged by straight lines. (Until the fifteenth session only those later
    than one median width after the blank were: a response 1.1-1.7 ms after the
    stimulus was then followed by the median, timed 6-11 µs off in every sweep, and
    could be reported as two accepted responses, its phases.)

    Returns
    -------
    clean : ndarray, shape like ``data``
    blank_rows, blank_cols : ndarray of int
        The zeroed samples (kept away from by the noise estimate).
    """
    width = to_samples(params.artefact_baseline_ms * 1e-3, fs_hz) | 1
    blank = int(np.ceil(params.artefact_blank_ms * 1e-3 * fs_hz))
    cols = np.arange(data.shape[1])[None, :]
    start = np.floor(ref_pos).astype(np.int64)[:, None]
    mask = (cols >= start - 1) & (cols <= start + blank)
    baseline = running_median(data, width)
    rows, peaks = find_candidates(data - baseline, noise_sd, fs_hz, params)
    late = peaks > start[rows, 0] + blank
    rows, peaks = rows[late], peaks[late]
    if rows.size:
        half = to_samples(_RESPONSE_HALF_US * 1e-6, fs_hz, minimum=1)
        baseline = running_median(_bridge(data, rows, peaks, half, start[rows, 0] + blank + 1), width)
    clean = data - baseline
    clean[mask] = 0.0
    rows, cols_ = np.nonzero(mask)
    return clean, rows, cols_


def rows_after_stimuli(x, stimuli, first, n_cols, fs_hz, params, noise_sd):
    """Rows of the signal from ``first`` samples after each stimulus, their slow baseline
    taken out as the sweeps' is (:func:`_remove_artefact`: a running median over
    ``artefact_baseline_ms``, the responses bridged; no blank, the rows start after it),
    for the search for responses past the sweeps (a recovery tail of the amplifier,
    decaying over milliseconds, formed time-locked groups of noise peaks there).

    Parameters
    ----------
    x : ndarray, shape (n_samples,)
        The signal, V.
    stimuli : ndarray of int, shape (n,)
        Stimulus samples, each with its whole row inside ``x``.
    first, n_cols : int
        Where each row starts after its stimulus, and its length, samples.
    fs_hz, params, noise_sd
        As for :func:`stimulus_sweeps`.

    Returns
    -------
    ndarray, shape (n, n_cols)
        V.
    """
    return _remove_artefact(_windows(x, stimuli + first, n_cols), np.full(stimuli.size, float(-first)), fs_hz,
                            params, noise_sd)[0]


def _complete_windows(stim_s, fs_hz, fit_half, n_cols, n_samples):
    """First sample of each stimulus's window, and whether it lies whole in the signal;
    refused with fewer than two."""
    starts = np.floor(stim_s * fs_hz).astype(np.int64) - fit_half
    ok = (starts >= 0) & (starts + n_cols <= n_samples)
    if ok.sum() < 2:
        raise SfemgInputError(
            f"only {ok.sum()} complete stimulus window(s) in the recording: the stimulus times span "
            f"{stim_s.min():.6g}-{stim_s.max():.6g} s, the recording 0-{n_samples / fs_hz:.6g} s "
            "(times in seconds?)")
    return starts, ok


def stimulus_sweeps(x, fs_hz, stimulus_times_s, params, noise_sd, saturation):
    """Cut a continuous stimulated signal into rows around each stimulus, artefact removed
    (the stimulus times checked against the artefact, or taken from it: :mod:`.stimulus`)."""
    search = to_samples(params.search_window_ms * 1e-3, fs_hz)  # (at most 1 s: no overflow)
    fit_half = fit_half_window(params, fs_hz)
    try:
        stim = np.asarray(stimulus_times_s, dtype=np.float64)
    except (TypeError, ValueError):
        stim = np.full(1, np.nan)  # refused below
    if stim.ndim != 1 or not np.all(np.isfinite(stim)):
        raise SfemgInputError("stimulus_times_s: expected a 1-D array of finite times")
    if stim.size < 2:
        raise SfemgInputError(f"stimulus_times_s: {stim.size} stimulus time(s); the latencies' MCD needs at least 2")
    if np.any(np.diff(stim) <= 0):  # (as a Recording requires: the MCD takes consecutive stimuli)
        raise SfemgInputError("stimulus_times_s must be strictly increasing")
    # (stimuli just outside the recording, a stimulator log longer than the saved EMG, are
    # left out below: _FAR_OUTSIDE)
    duration_s = x.size / fs_hz
    far = np.abs(stim - duration_s / 2) > _FAR_OUTSIDE * duration_s
    if far.any():
        raise SfemgInputError(f"stimulus_times_s: {far.sum()} of {stim.size} lie far outside the recording: the "
                              f"stimulus times span {stim.min():.6g}-{stim.max():.6g} s, the recording "
                              f"0-{duration_s:.6g} s (times in seconds?)")
    shortest_s = np.diff(stim).min()
    if params.search_window_ms * 1e-3 >= shortest_s:  # the next stimulus's responses would pass for more endplates
        raise SfemgInputError(f"search_window_ms ({params.search_window_ms:g}) reaches the next stimulus "
                              f"({shortest_s * 1e3:.6g} ms later at the shortest): give a shorter search_window_ms")
    n_cols = _sweep_length(search + 2 * fit_half + 1, x.size, fs_hz, params)
    every_start = np.floor(stim * fs_hz).astype(np.int64) - fit_half  # incomplete windows hold artefacts too
    # the noise is measured on the whole signal, away from every candidate peak and
    # from every stimulus's window (artefact and responses): the windows alone, once
    # their responses are left out, are too short for it
    rows, cols = find_candidates(x, noise_sd, fs_hz, params)
    window = np.arange(0, n_cols, max(1, fit_half))
    busy_cols = np.concatenate([cols, (every_start[:, None] + window[None, :]).ravel()])
    busy_rows = np.zeros_like(busy_cols)
    _complete_windows(stim, fs_hz, fit_half, n_cols, x.size)  # (times outside the signal refused as given)
    before, after = search_span(fs_hz)  # (the artefact's noise kept away from where it is sought, too)
    sought = (np.floor(stim * fs_hz).astype(np.int64)[:, None] + np.arange(-before, after + 1, fit_half)).ravel()
    artefact_busy = np.concatenate([busy_cols, sought])
    timing = time_stimuli(x[None, :], np.zeros(1), np.zeros(stim.size, np.int64), stim * fs_hz,
                          (x[None, :], np.zeros_like(artefact_busy), artefact_busy), fs_hz, noise_sd,
                          params.stimulus_timing, saturation.times_s)
    stim = stim + timing.shifts / fs_hz
    starts, ok = _complete_windows(stim, fs_hz, fit_half, n_cols, x.size)
    stim, starts = stim[ok], starts[ok]
    ref_pos = stim * fs_hz - starts
    clean, _, _ = _remove_artefact(_windows(x, starts, n_cols), ref_pos + timing.delay, fs_hz, params, noise_sd)
    return Sweeps(clean, starts / fs_hz, ref_pos, stim, x[None, :], busy_rows, busy_cols, noise_sd, saturation,
                  x, timing, timing.error_var[ok], timing.delay)


def discharge_sweeps(x, trig, rows, cols, fs_hz, params, noise_sd):
    """Cut a continuous voluntary signal into rows around each trigger discharge (sample
    indices ``trig``); ``rows, cols`` are every candidate peak (kept out of the noise)."""
    search = to_samples(params.search_window_ms * 1e-3, fs_hz)  # (at most 1 s: no overflow)
    n_cols = _sweep_length(2 * (search + fit_half_window(params, fs_hz)) + 1, x.size, fs_hz, params)
    median_idi_ms = float(np.median(np.diff(trig))) / fs_hz * 1e3 if trig.size > 1 else np.inf
    if params.search_window_ms >= median_idi_ms:  # every sweep would hold the unit's neighbouring discharges
        raise SfemgInputError(f"search_window_ms ({params.search_window_ms:g}) reaches the unit's neighbouring "
                              f"discharges ({median_idi_ms:.4g} ms apart, median): give a shorter search_window_ms")
    pre = n_cols // 2
    trig = trig[(trig - pre >= 0) & (trig - pre + n_cols <= x.size)]
    if trig.size < 2:
        raise SfemgInputError(f"only {trig.size} complete discharge window(s) in the recording")
    starts = trig - pre
    return Sweeps(_windows(x, starts, n_cols), starts / fs_hz, np.full(trig.size, float(pre)),
                   trig / fs_hz, x[None, :], rows, cols, noise_sd, signal_v=x)


def _check_in_sweeps(markers, n_cols, stim_s, starts_s, fs_hz, params):
    """Refuse stimuli whose responses cannot lie in their sweeps: after the sweep's end,
    or more than ``search_window_ms`` before its start (a sweep may begin after its
    stimulus, the artefact then not recorded)."""
    before = params.search_window_ms * 1e-3 * fs_hz
    outside = (markers < -before) | (markers >= n_cols)
    if outside.any():
        i = int(np.argmax(outside))
        raise SfemgInputError(
            f"stimulus_times_s: {outside.sum()} of {outside.size} lie outside their sweeps (sweep {i}: "
            f"{starts_s[i]:.6g}-{starts_s[i] + n_cols / fs_hz:.6g} s, its stimulus at {stim_s[i]:.6g} s); "
            "stimulus times are in seconds on the sweeps' clock (sweep_start_times_s)")


def sweep_input(rec: Recording, data, params, noise_sd, from_differences, saturation):
    """Rows of a windowed recording (its sweeps ``data``, V, as :func:`prepared_input`
    gives them, and where they clip), with the stimulus or the trigger found in each;
    ``noise_sd, from_differences`` from
    :func:`~sfemg.analysis.detect.estimate_sweeps_noise_sd`."""
    fs_hz = rec.fs_hz
    starts_s = rec.sweep_start_times_s
    if rec.mode == "stimulated":
        stim = rec.stimulus_times_s if rec.stimulus_times_s is not None else starts_s
        if stim.size != starts_s.size:
            raise SfemgInputError(f"recording {rec.name!r}: {stim.size} stimulus times for "
                                  f"{starts_s.size} sweeps")
        markers = (stim - starts_s) * fs_hz
        _check_in_sweeps(markers, data.shape[1], stim, starts_s, fs_hz, params)
        # the artefact timed on the sweeps as recorded, away from candidate peaks and
        # from where it is sought
        rows, cols = find_candidates(data, noise_sd, fs_hz, params)
        before, after = search_span(fs_hz)
        at = np.floor(markers).astype(np.int64)[:, None]
        offsets = np.arange(data.shape[1])[None, :] - at
        blank_r, blank_c = np.nonzero((offsets >= -before) & (offsets <= after))
        timing = time_stimuli(data, starts_s, np.arange(stim.size), markers,
                              (data, np.concatenate([blank_r, rows]), np.concatenate([blank_c, cols])), fs_hz,
                              noise_sd, params.stimulus_timing, saturation.times_s)
        ref_pos = markers + timing.shifts
        clean, blank_r, blank_c = _remove_artefact(data, ref_pos + timing.delay, fs_hz, params, noise_sd)
        # the noise is measured away from the blanked artefact and from the responses
        rows, cols = find_candidates(clean, noise_sd, fs_hz, params)
        return Sweeps(clean, starts_s, ref_pos, stim + timing.shifts / fs_hz,
                      *_differences(clean, np.concatenate([blank_r, rows]), np.concatenate([blank_c, cols]),
                                    from_differences),
                      noise_sd, saturation, None, timing, timing.error_var, timing.delay)
    rows, cols = find_candidates(data, noise_sd, fs_hz, params)
    # the sweeps laid out one after another with a sweep's length of gap between them,
    # and a refractory time of one sweep: a group fires once per sweep it is in, and the
    # trigger is its first member in the sweep, as in a continuous recording (the
    # largest let two fibres of one unit of similar size alternate as the reference:
    # validation grid, §6)
    stride = data.shape[1] + 1
    member = find_trigger(peak_values(data, rows, cols), rows * 2 * stride + cols, fs_hz, MIN_TRIGGER_COUNT,
                          stride / fs_hz * 1e3)[0]
    keep = rows[member]
    if keep.size < 2:
        raise SfemgInputError(f"recording {rec.name!r}: trigger potential found in fewer than 2 sweeps")
    trig_cols = cols[member].astype(np.float64)
    return Sweeps(data[keep], starts_s[keep], trig_cols, starts_s[keep] + trig_cols / fs_hz,
                  *_differences(data, rows, cols, from_differences), noise_sd, saturation)


#: Fewer sweeps than this leave too few differences for the noise spectrum: two
#: stimulated sweeps left one, mostly busy (a review); with 3-7 the spectrum and the
#: technical jitter read as near those of the same recording's 50 sweeps from the
#: differences as from the sweeps (technical jitter within 23 and 31 %, mean |error|).
_MIN_DIFFERENCE_SWEEPS = 3


def _differences(data, busy_rows, busy_cols, from_differences):
    """Where the noise of windowed input is measured: the differences between
    consecutive sweeps, over √2, each busy where either sweep is. The time-locked
    potentials cancel there; in the sweeps themselves their slow phases, which no
    candidate peak keeps the noise segments away from, made the technical jitter 14 %
    high (median over the simulator's voluntary sweeps, against the same recordings
    made continuous; 0.3 % with the differences). The sweeps themselves where the noise
    SD did not come from the differences (``from_differences``, from
    :func:`~sfemg.analysis.detect.estimate_sweeps_noise_sd`: sweeps not aligned on
    their event) or there are fewer than :data:`_MIN_DIFFERENCE_SWEEPS`.

    Parameters
    ----------
    data : ndarray, shape (n, L)
        The sweeps, V.
    busy_rows, busy_cols : ndarray of int
        Positions in ``data`` to keep the noise segments away from.
    from_differences : bool

    Returns
    -------
    noise_v : ndarray, shape (n - 1, L) or (n, L)
    busy_rows, busy_cols : ndarray of int
        In ``noise_v``.
    """
    if data.shape[0] < _MIN_DIFFERENCE_SWEEPS or not from_differences:
        return data, busy_rows, busy_cols
    rows = np.concatenate([busy_rows - 1, busy_rows])
    cols = np.concatenate([busy_cols, busy_cols])
    inside = (rows >= 0) & (rows < data.shape[0] - 1)
    return np.diff(data, axis=0) / np.sqrt(2.0), rows[inside], cols[inside]


def noise_spectrum(sw, length, spectra):
    """Noise spectrum for fit segments of ``length`` samples, cached in ``spectra``.

    Parameters
    ----------
    sw : Sweeps
    length : int
        Segment length, samples.
    spectra : dict of int to tuple
        Cache, keyed by length.

    Returns
    -------
    tuple
        ``(power per DFT bin V^2, noise RMS V, segments used)`` as returned by
        :func:`~sfemg.analysis.detect.estimate_noise_spectrum`.
    """
    if length not in spectra:
        spectra[length] = estimate_noise_spectrum(sw.noise_v, sw.busy_rows, sw.busy_cols,
                                                  length, length // 2, fit_taper(length))
    return spectra[length]


def subset_sweeps(sw, rows, passed=None):
    """The sweeps ``rows`` of ``sw``; a kept row follows the previous kept one
    (:func:`preceding_intervals`) across rows left out only where those are ``passed``.

    Parameters
    ----------
    sw : Sweeps
    rows : ndarray of bool, shape (n,)
        The rows kept.
    passed : ndarray of bool, shape (n,), optional
        Rows left out that were no discharge of the unit and stood in for none; any other
        row left out breaks the chain of intervals across it (default: every one).

    Returns
    -------
    Sweeps
    """
    after = sw.after_previous if sw.after_previous is not None else np.arange(sw.start_s.size) > 0
    rows = np.asarray(rows, dtype=bool)
    through = rows if passed is None else rows | np.asarray(passed, dtype=bool)
    # a kept row follows the previous kept one when no link between breaks: every row
    # after that one up to it follows its own predecessor, and those between are passed
    # over; a link breaks at the last row up to each that does not
    broken = np.maximum.accumulate(np.where(after & through, -1, np.arange(rows.size)))
    kept = np.flatnonzero(rows)
    previous = np.r_[-1, kept[:-1]]
    follows = (previous >= 0) & (broken[kept] <= previous)
    return dataclasses.replace(sw, data_v=sw.data_v[rows], start_s=sw.start_s[rows], ref_pos=sw.ref_pos[rows],
                               ref_times_s=sw.ref_times_s[rows],
                               ref_var=sw.ref_var[rows] if sw.ref_var is not None else None,
                               after_previous=follows)
