"""Stimulus times checked against the stimulus artefact, and taken from it where the
markers are the coarser clock.

A stimulated latency is measured from the stimulus, so an error in the stimulus times
adds to every latency: markers from a channel of their own, or a free-running
stimulator's pulses taken at the nearest sample (an error spread evenly over one sample,
SD 5.8 µs at 50 kHz), raise the MCD of a 15 µs endplate by 6-40 %. The artefact begins
at the stimulus itself. Its time in each sweep is fitted as a template
(:func:`~sfemg.analysis.timing.fit_template`, sub-sample shift, Cramér–Rao bound
inflated by the fit's misfit); the markers' scatter about it tells how precise they are,
and where they scatter clearly more than the artefact's own timing error, the artefact
times (moved by their median offset into the markers' frame) are the stimulus times.
Stimuli whose artefact cannot be timed (clipped, missing, cut off by the sweep's start,
badly fitted) keep their marker, with the markers' error. docs/analysis.md §1.3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SfemgInputError
from .detect import estimate_noise_spectrum, fast_median, median_and_robust_sd
from .timing import fit_taper, fit_template, residual_ratios

__all__ = ["StimulusTiming", "time_stimuli", "SEARCH_BEFORE_US"]

#: Half-length of the artefact's fit segment, µs, centred on the artefact's typical peak:
#: its onset and first decay lie in the taper's flat middle (±125 µs), and each sweep's
#: artefact is found within ±125 µs of where the markers put it (the shift search).
_ARTEFACT_HALF_US = 250.0
#: The artefact's typical peak is sought from this long before each marker to this long
#: after it (the blank, where no response is sought), µs: markers early or late by a
#: constant delay (a trigger's delay to the pulse) up to about this are followed. Sweeps
#: with less signal before the marker are searched from their start.
SEARCH_BEFORE_US = 500.0
_SEARCH_AFTER_US = 1000.0
#: The artefact begins where its typical waveform first exceeds this fraction of its
#: peak on the way to it. Where that is more than _DELAY_MIN_US after the markers (a
#: trigger's delay to the pulse), the blank (``artefact_blank_ms``) starts there, not at
#: the markers: markers 0.5 ms early left the artefact's tail past the blank, read as
#: responses (MCD -17 to -35 %, rejected); shorter delays the blank covers.
_ONSET_FRACTION = 0.1
_DELAY_MIN_US = 100.0
#: The artefact is timed only if its typical waveform's peak-to-peak is at least this
#: many noise SDs (a stimulus artefact is of millivolts; simulated ones read 240-330 SDs)
#: and at least this many stimuli have a usable segment.
_MIN_ARTEFACT_SDS = 20.0
_MIN_STIMULI = 8
#: A sweep holds the artefact when its segment's peak-to-peak is at least this fraction
#: of the typical segment's (the amplifier blanked it, or it was removed, in the others).
_PRESENT_FRACTION = 0.5
#: With ``stimulus_timing="auto"`` the artefact times are used when the markers scatter
#: about them by more than this many times the artefact's own timing SD (their error
#: variance then exceeds the artefact's threefold). Exact markers read 1.06-1.52 on
#: simulated recordings (one sweep with another potential on the artefact).
_MARKERS_WORSE = 2.0
#: Offsets of markers from the artefact farther than this many robust SDs (of the
#: offsets, or the artefact's timing SD if larger) and more than one sample from their
#: median are markers off their stimulus (timed from the artefact unless the markers are
#: asked for) and left out of the markers' scatter. (Without the sample: on simulated
#: recordings with exact markers, 1-3 stimuli a recording whose artefact fit another
#: unit's potential dragged by ~0.3 µs.)
_OUTLIER_SDS = 5.0
#: A sweep's artefact fit is used only if its correlation with the template is at least this.
_MIN_CORRELATION = 0.9
#: A marker is taken to be off its stimulus only where its artefact's fit leaves at
#: most this many times the typical residual: a fit dragged by a sample or more (by a
#: potential of near the artefact's size on it) is not trusted over the marker. Clean
#: fits of analytic artefacts 50 dB above the noise, whose residual is mostly the
#: template's own error, read up to 4.5.
_CLEAN_FIT = 10.0


@dataclass(frozen=True)
class StimulusTiming:
    """Where the stimulus times come from and how precise they are."""

    source: str               # "markers" or "artefact"
    shifts: np.ndarray        # (n,) stimulus time less its marker's, samples (0 where the marker is kept)
    error_var: np.ndarray     # (n,) samples^2: variance of each stimulus time's error (0 when not checked)
    marker_scatter: float     # samples: SD of the markers about the artefact; NaN if no artefact was timed
    artefact_sd: float        # samples: timing SD of the artefact; NaN if none was timed
    markers_off: int = 0      # markers farther off their artefact than the others' scatter allows
    delay: float = 0.0        # samples: how long after the stimulus times the artefact begins (0: at them)


def _unchecked(n, choice, why, delay=0.0):
    """The markers as given (taken as exact): no artefact to check them against."""
    if choice == "artefact":
        raise SfemgInputError(f"stimulus times cannot be taken from the artefact: {why}")
    return StimulusTiming("markers", np.zeros(n), np.zeros(n), float("nan"), float("nan"), delay=delay)


def _typical_artefact(x_v, rows, first, fs_hz):
    """The artefact's typical waveform around the markers (median over the stimuli whose
    search span lies in their row), its largest-magnitude sample's offset from the
    marker and where it begins (the first sample of the rise to that peak above
    :data:`_ONSET_FRACTION` of it), samples; None when fewer than :data:`_MIN_STIMULI`
    stimuli have the span."""
    n_cols = x_v.shape[1]
    before = min(int(round(SEARCH_BEFORE_US * 1e-6 * fs_hz)), int(fast_median(first.astype(np.float64))))
    span = np.arange(-max(before, 0), int(round(_SEARCH_AFTER_US * 1e-6 * fs_hz)) + 1)
    inside = (first + span[0] >= 0) & (first + span[-1] < n_cols)
    if inside.sum() < _MIN_STIMULI:
        return None, 0, 0
    typical = np.median(x_v[rows[inside, None], first[inside, None] + span[None, :]], axis=0)
    peak = int(np.argmax(np.abs(typical)))
    quiet = np.flatnonzero(np.abs(typical[:peak + 1]) <= _ONSET_FRACTION * np.abs(typical[peak]))
    onset = quiet[-1] + 1 if quiet.size else 0
    return typical, int(span[peak]), int(span[onset])


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
        it keeps away from (as in :class:`~sfemg.analysis.sweeps.Sweeps`), the artefacts
        among them.
    fs_hz : float
    noise_sd : float
        Noise SD, V.
    choice : {"auto", "markers", "artefact"}
        ``AnalysisParams.stimulus_timing``: the artefact times where the markers scatter
        about them by more than :data:`_MARKERS_WORSE` times the artefact's timing SD,
        always the markers, or always the artefact.
    clip_times_s : ndarray, increasing
        Times of the samples at the clipping levels (:class:`~sfemg.analysis.sweeps.Saturation`),
        s: a clipped artefact is no time reference (its flattened top reads differently at
        every sampling phase).

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
    n = positions.size
    first = np.floor(positions).astype(np.int64)
    typical, peak, onset = _typical_artefact(x_v, rows, first, fs_hz)
    if typical is None:
        return _unchecked(n, choice, f"fewer than {_MIN_STIMULI} stimuli have the signal around them")
    if np.ptp(typical) < _MIN_ARTEFACT_SDS * noise_sd:
        return _unchecked(n, choice, f"its peak-to-peak is {np.ptp(typical) / noise_sd:.0f} noise SDs (at least "
                                     f"{_MIN_ARTEFACT_SDS:g} needed; sought from {SEARCH_BEFORE_US:g} µs before "
                                     f"each marker to {_SEARCH_AFTER_US:g} µs after it)")
    delay = float(onset) if onset > _DELAY_MIN_US * 1e-6 * fs_hz else 0.0
    half = max(2, int(round(_ARTEFACT_HALF_US * 1e-6 * fs_hz)))
    length = 2 * half + 1
    n_cols = x_v.shape[1]
    start = first + peak - half
    usable = (start >= 0) & (start + length <= n_cols)
    span_s = row_start_s[rows] + start / fs_hz
    usable &= np.searchsorted(clip_times_s, span_s) == np.searchsorted(clip_times_s, span_s + (length - 1) / fs_hz)
    cols = np.arange(length)[None, :]
    segments = np.zeros((n, length))
    segments[usable] = x_v[rows[usable, None], start[usable, None] + cols]
    size = np.ptp(segments, axis=1)
    if usable.any():
        usable &= size >= _PRESENT_FRACTION * fast_median(size[usable])
    if usable.sum() < _MIN_STIMULI:
        return _unchecked(n, choice, f"only {usable.sum()} of {n} stimuli have a whole, unclipped artefact", delay)
    sign = np.sign(typical[np.argmax(np.abs(typical))])
    power, rms, _ = estimate_noise_spectrum(*noise, length, length // 2, fit_taper(length))
    # twice: the segments cut where the markers put the artefact, then centred on each
    # one's peak (in the taper's flat middle, which then moves with it: where the markers
    # scatter, a fixed frame would read as misfit)
    fit = fit_template(sign * segments[usable], power)
    recentred = start[usable] + np.round(fit.positions - half).astype(np.int64)
    inside = (recentred >= 0) & (recentred + length <= n_cols)
    start[np.flatnonzero(usable)[inside]] = recentred[inside]
    segments = sign * x_v[rows[usable, None], start[usable, None] + cols]
    fit = fit_template(segments, power)
    ratios = residual_ratios(segments, fit, rms)
    misfit = max(1.0, fast_median(ratios))
    artefact_var = fit.crb_var * misfit
    good = fit.correlations >= _MIN_CORRELATION
    if good.sum() < _MIN_STIMULI:
        return _unchecked(n, choice, f"its fit correlates >= {_MIN_CORRELATION:g} with its template in only "
                                     f"{good.sum()} stimuli", delay)
    timed, ratios = np.flatnonzero(usable)[good], ratios[good]
    offsets = (start[usable] + fit.positions - positions[usable])[good]
    row_var = fit.crb_var * np.maximum(ratios, 1.0)  # each sweep's artefact time: its own misfit
    middle, spread = median_and_robust_sd(offsets)
    far = np.abs(offsets - middle) > max(_OUTLIER_SDS * max(spread, np.sqrt(artefact_var)), 1.0)
    off = far & (ratios <= _CLEAN_FIT * misfit)  # (far with a poor fit: the artefact's time is the suspect)
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
