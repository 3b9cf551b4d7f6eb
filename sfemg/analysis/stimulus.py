"""Stimulus times checked against the stimulus artefact, and taken from it where the
markers are the coarser clock.

A stimulated latency is measured from the stimulus, so an error in the stimulus times
adds to every latency: markers from a channel of their own, or a free-running
stimulator's pulses taken at the nearest sample (an error spread evenly over one sample,
SD 5.8 µs at 50 kHz), raise the MCD of a 15 µs endplate by 6-40 %. The artefact begins
at the stimulus itself. It is found in each sweep near its marker (cross-correlation
with its typical waveform), then timed as a template
(:func:`~sfemg.analysis.timing.fit_template`, sub-sample shift, Cramér–Rao bound
inflated by each fit's misfit); the markers' scatter about it tells how precise they
are, and where they scatter clearly more than the artefact's own timing error, the
artefact times (moved by their median offset into the markers' frame) are the stimulus
times. Stimuli whose artefact cannot be timed (clipped, missing, cut off by the sweep's
start, badly fitted) keep their marker, with the markers' error. docs/analysis.md §1.3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._units import to_samples
from ..errors import SfemgInputError
from .detect import estimate_noise_spectrum, fast_median, median_and_robust_sd
from .timing import fit_taper, fit_template, misfit_ratio, residual_ratios

__all__ = ["StimulusTiming", "time_stimuli", "search_span"]

#: The artefact is sought from this long before each marker to this long after it, µs
#: (the blank, where no response is sought, is 1 ms): markers off it by a constant
#: delay (a trigger's delay to the pulse) or by a sweep's own error up to about this are
#: followed. Sweeps with less signal before the marker are searched from their start.
_SEARCH_BEFORE_US = 500.0
_SEARCH_AFTER_US = 1000.0
#: Half-length of the artefact's fit segment, µs, centred on its peak in each sweep: its
#: onset and first decay lie in the taper's flat middle (±200 µs). At ±250 µs the tails
#: of an analytic 40 µs-wide spike reached the taper, and its fitted time erred by up to
#: ±0.17 µs with the sampling phase (exact markers off the sample grid read 0.11-0.16 µs
#: of scatter at 50 kHz, near the switch below); at ±400 µs 0-0.02 µs.
_ARTEFACT_HALF_US = 400.0
#: The artefact begins where its typical waveform first exceeds this fraction of its
#: peak. Where that is more than _DELAY_MIN_US after the markers (a trigger's delay to
#: the pulse), the blank (``artefact_blank_ms``) starts there, not at the markers:
#: markers 0.5 ms early left the artefact's tail past the blank, read as responses (MCD
#: -17 to -35 %, rejected); shorter delays the blank covers.
_ONSET_FRACTION = 0.1
_DELAY_MIN_US = 100.0
#: The artefact is timed only if its typical waveform's peak-to-peak is at least this
#: many noise SDs (a stimulus artefact is of millivolts; simulated ones read 240-330 SDs)
#: and at least this many stimuli have a usable segment.
_MIN_ARTEFACT_SDS = 20.0
_MIN_STIMULI = 8
#: A sweep holds the artefact when its segment's peak-to-peak is at least this fraction
#: of the median segment's (the amplifier blanked it, or it was removed, in the others).
_PRESENT_FRACTION = 0.5
#: With ``stimulus_timing="auto"`` the artefact times are used when the markers scatter
#: about them by more than this many times the artefact's own timing SD (their error
#: variance then exceeds the artefact's threefold).
_MARKERS_WORSE = 2.0
#: Offsets of markers from the artefact farther than this many robust SDs (of the
#: offsets, or the artefact's timing SD if larger) and more than _OFF_MIN_SAMPLES from
#: their median are markers off their stimulus (timed from the artefact unless the
#: markers are asked for) and left out of the markers' scatter. (Without the floor: on
#: simulated recordings with exact markers, 1-3 stimuli a recording whose artefact fit
#: another unit's potential dragged by ~0.3 µs.)
_OUTLIER_SDS = 5.0
_OFF_MIN_SAMPLES = 1.0
#: A sweep's artefact fit is used only if its correlation with the template is at least this.
_MIN_CORRELATION = 0.9
#: A marker is taken to be off its stimulus only where its artefact's fit leaves at
#: most this many times the typical residual: a fit dragged by a sample or more (by a
#: potential of near the artefact's size on it) is not trusted over the marker. Clean
#: fits of analytic artefacts 50 dB above the noise, whose residual is mostly the
#: template's own error, read up to 4.5.
_CLEAN_FIT = 10.0
#: Marker positions computed by subtraction (stimulus time less sweep start, times the
#: rate) land a hair below a whole sample; this much is taken as rounding, samples.
_ROUNDING = 1e-6


@dataclass(frozen=True)
class StimulusTiming:
    """Where the stimulus times come from and how precise they are (all in samples)."""

    source: str               # "markers" or "artefact"
    shifts: np.ndarray        # (n,) stimulus time less its marker's (0 where the marker is kept)
    error_var: np.ndarray     # (n,) samples^2: variance of each stimulus time's error (0 when not checked)
    marker_scatter: float     # SD of the markers about the artefact; NaN if no artefact was timed
    artefact_sd: float        # timing SD of the artefact; NaN if none was timed
    markers_off: int = 0      # markers farther off their artefact than the others' scatter allows
    delay: float = 0.0        # how long after the stimulus times the artefact begins (0: at them)


def search_span(fs_hz):
    """Samples before and after each marker where its artefact is sought (and its fit
    segment may reach), to be kept out of the noise estimate."""
    half = to_samples(_ARTEFACT_HALF_US * 1e-6, fs_hz, minimum=2)
    return (to_samples(_SEARCH_BEFORE_US * 1e-6, fs_hz) + half,
            to_samples(_SEARCH_AFTER_US * 1e-6, fs_hz) + half)


def _unchecked(n, choice, why, delay_samples=0.0):
    """The markers as given (taken as exact): no artefact to check them against."""
    if choice == "artefact":
        raise SfemgInputError(f"stimulus times cannot be taken from the artefact: {why}")
    return StimulusTiming("markers", np.zeros(n), np.zeros(n), float("nan"), float("nan"), delay=delay_samples)


def _best_lags(wide, typical, max_lag):
    """Per row, the lag (samples, within ±``max_lag``) at which the row best matches the
    typical waveform (linear cross-correlation by FFT): where its artefact lies against
    where its marker puts it."""
    length = 2 * wide.shape[1]
    corr = np.fft.irfft(np.fft.rfft(wide, length, axis=1) * np.conj(np.fft.rfft(typical, length))[None, :],
                        length, axis=1)
    lags = np.r_[0:max_lag + 1, -max_lag:0]
    return lags[np.argmax(corr[:, lags], axis=1)]


def time_stimuli(x_v, row_start_s, rows, positions, noise, fs_hz, noise_sd, choice, clip_times_s):
    """The stimulus times to measure latencies from, with their error.

    Parameters
    ----------
    x_v : ndarray, shape (n_rows, n_cols)
        The samples (a continuous signal as one row, or the sweeps), V, artefact included.
    row_start_s : ndarray, shape (n_rows,)
        Time of each row's first sample, s.
    rows : ndarray of int, shape (n,)
        Row of each stimulus.
    positions : ndarray, shape (n,)
        Each stimulus marker's position in its row, samples.
    noise : tuple of ndarray
        ``(noise_v, busy_rows, busy_cols)``: where the noise is measured and the positions
        it keeps away from (as in :class:`~sfemg.analysis.sweeps.Sweeps`), every
        stimulus's :func:`search_span` among them.
    fs_hz : float
        Sampling rate, Hz.
    noise_sd : float
        Noise SD, V.
    choice : {"auto", "markers", "artefact"}
        ``AnalysisParams.stimulus_timing``: the artefact times where the markers scatter
        about them by more than :data:`_MARKERS_WORSE` times the artefact's timing SD
        (else the markers, but for those off their stimulus), always the markers, or
        always the artefact.
    clip_times_s : ndarray, increasing
        Times of the samples at the clipping levels (:class:`~sfemg.analysis.sweeps.Saturation`),
        s: a clipped artefact is no time reference (its flattened top reads differently at
        every sampling phase: 4.7-8.6 µs SD).

    Returns
    -------
    StimulusTiming
        Shifts of 0 where a marker is kept. A stimulus timed from its artefact has that
        fit's bound inflated by its misfit as error variance; a marker kept, the markers'
        variance about the artefact less the artefact's own (0 where nothing could be
        checked), or with ``choice="markers"`` a marker off its stimulus, its offset squared.

    Raises
    ------
    SfemgInputError
        ``choice="artefact"`` and no artefact to time.
    """
    n, n_cols = positions.size, x_v.shape[1]
    first = np.floor(positions + _ROUNDING).astype(np.int64)
    before, after = search_span(fs_hz)
    half = to_samples(_ARTEFACT_HALF_US * 1e-6, fs_hz, minimum=2)
    before = min(before - half, int(fast_median(first.astype(np.float64))))  # (sweeps: from their start)
    span = np.arange(-max(before, 0), after - half + 1)
    spanned = (first + span[0] >= 0) & (first + span[-1] < n_cols)
    if spanned.sum() < _MIN_STIMULI:
        return _unchecked(n, choice, f"fewer than {_MIN_STIMULI} stimuli have the signal around them")
    wide = x_v[rows[spanned, None], first[spanned, None] + span[None, :]]
    typical = np.median(wide, axis=0)
    peak = int(np.argmax(np.abs(typical)))
    if np.ptp(typical) < _MIN_ARTEFACT_SDS * noise_sd:
        return _unchecked(n, choice, f"its peak-to-peak is {np.ptp(typical) / noise_sd:.0f} noise SDs (at least "
                                     f"{_MIN_ARTEFACT_SDS:g} needed; sought from {_SEARCH_BEFORE_US:g} µs before "
                                     f"each marker to {_SEARCH_AFTER_US:g} µs after it)")
    onset = span[np.argmax(np.abs(typical) > _ONSET_FRACTION * np.abs(typical[peak]))]
    delay = float(onset) if onset > _DELAY_MIN_US * 1e-6 * fs_hz else 0.0
    # each sweep's artefact peak: the typical one's, moved to where the sweep matches it best
    lags = np.zeros(n, np.int64)
    lags[spanned] = _best_lags(wide, typical, max(before, 0))
    start = first + span[peak] + lags - half
    length = 2 * half + 1
    usable = (start >= 0) & (start + length <= n_cols)
    span_s = row_start_s[rows] + start / fs_hz
    usable &= np.searchsorted(clip_times_s, span_s) == np.searchsorted(clip_times_s, span_s + (length - 1) / fs_hz)
    if usable.sum() >= _MIN_STIMULI:  # ... and holding the artefact
        segments = x_v[rows[usable, None], start[usable, None] + np.arange(length)[None, :]] * np.sign(typical[peak])
        size = np.ptp(segments, axis=1)
        present = size >= _PRESENT_FRACTION * fast_median(size)
        usable[usable], segments = present, segments[present]
    if usable.sum() < _MIN_STIMULI:
        return _unchecked(n, choice, f"only {usable.sum()} of {n} stimuli have a whole, unclipped artefact", delay)
    power, rms, _ = estimate_noise_spectrum(*noise, length, length // 2, fit_taper(length))
    fit = fit_template(segments, power)
    artefact_var = fit.crb_var * misfit_ratio(segments, fit, rms)
    good = fit.correlations >= _MIN_CORRELATION
    if good.sum() < _MIN_STIMULI:
        return _unchecked(n, choice, f"its fit correlates >= {_MIN_CORRELATION:g} with its template in only "
                                     f"{good.sum()} stimuli", delay)
    timed = np.flatnonzero(usable)[good]
    offsets = start[timed] + fit.positions[good] - positions[timed]
    fit_ratios = residual_ratios(segments, fit, rms)[good]
    row_var = fit.crb_var * np.maximum(fit_ratios, 1.0)  # each sweep's artefact time: its own misfit
    middle, spread = median_and_robust_sd(offsets)
    far = np.abs(offsets - middle) > max(_OUTLIER_SDS * max(spread, np.sqrt(artefact_var)), _OFF_MIN_SAMPLES)
    off = far & (fit_ratios <= _CLEAN_FIT * fast_median(fit_ratios))  # (far, badly fitted: the fit is the suspect)
    # the markers' own variance: the offsets' less what the artefact's error explains
    # (another unit's potential on an artefact moves its fit: its misfit tells by how much)
    marker_var = max(float(np.var(offsets[~far]) - np.mean(row_var[~far])), 0.0)
    use_artefact = choice == "artefact" or (choice == "auto"
                                            and marker_var > (_MARKERS_WORSE ** 2 - 1) * artefact_var)
    shifts, error_var = np.zeros(n), np.full(n, marker_var)
    if use_artefact:
        moved = ~far | off
    elif choice == "auto":  # the markers, but not those off their stimulus
        moved = off
    else:  # the markers as asked for, those off their stimulus with their offsets as error
        moved = np.zeros(timed.size, bool)
        error_var[timed[off]] = (offsets[off] - middle) ** 2
    shifts[timed[moved]] = offsets[moved] - middle
    error_var[timed[moved]] = row_var[moved]
    return StimulusTiming("artefact" if use_artefact else "markers", shifts, error_var, np.sqrt(marker_var),
                          np.sqrt(artefact_var), int(off.sum()), delay)
