"""One potential in every sweep: present or blocked, fitted, timed.

A time-locked group (:class:`~sfemg.analysis.detect.LockedPotential`) is measured in
each sweep's search window (present where its peak reaches ``block_fraction`` of its
median peak and its template fits), sought outside that window where it seems blocked
(a latency excursion of a fibre near block), and timed by the chosen method; its
template gives its shape (amplitude, rise time, notch) and the Cramér–Rao bound of
its time points. docs/analysis.md §1.5, §2, §3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._units import to_samples
from ._detect_numba import measure_kernel
from .detect import detect_peaks, fast_median, median_and_robust_sd
from .sweeps import fit_half_window, noise_spectrum
from .timing import fit_template, level_positions, match_template, misfit_ratio, peak_positions

#: A notch: a second maximum in the main phase rising this fraction of the peak above the dip.
_NOTCH_DEPTH = 0.05

#: A present potential's segment must correlate at least this well with the template
#: (a same-size potential of another unit in the search window does not).
MIN_SHAPE_CORRELATION = 0.5

#: Peak and level methods seek the peak within this distance of the coarse peak, µs.
PEAK_SEARCH_US = 50.0

#: A potential's extent: where its template exceeds this fraction of its peak.
_SUPPORT_LEVEL = 0.1

#: The main phase is where the template exceeds this fraction of its peak.
_MAIN_PHASE_LEVEL = 0.3

#: Inside the main phase, a rise smaller than this many of the template's noise SDs is a
#: ripple of the noise. The scan compares each sample with the lowest one so far, so on a
#: slow wave's flat top a deep noise minimum can still end it early: a Gaussian wave of
#: SD 400 µs at 50 kHz with its template's peak 30 noise SDs reads a rise time under
#: 300 µs in 1 % of draws in white noise and in none of 2000 in low-pass noise (0.05 %
#: and 0 at 5 SDs). A larger threshold would take real shoulders of a few noise SDs for
#: ripples.
_RIPPLE_SDS = 4.0

#: A potential is clearly absent from a discharge when its peak in its search window is
#: below this fraction of its median peak: at >= 20 dB SNR (peak >= 10 noise RMS) noise
#: alone stays below ~0.4 of the peak only rarely, while a phase of a present fibre is
#: at full size; a fibre that blocks leaves noise only.
CLEAR_ABSENCE = 0.25

#: Absence is judged only for groups whose peak is at least this many noise SDs (20 dB):
#: a smaller one (a slow phase, a sum of two fibres' tails) falls below CLEAR_ABSENCE
#: of its size by noise or a superimposed potential now and then.
_ABSENCE_MIN_SNR = 10.0

#: A discharge judged blocked in its search window counts as fired out of it (a latency
#: excursion of a fibre near block) when the potential's waveform is found within
#: ``excursion_window_us`` of its latency, clear of other potentials, with a scale
#: within this fraction of its discharges' median scale, and a correlation with its
#: template of at least _EXCURSION_MIN_CORRELATION and a misfit (1 - correlation) at
#: most _EXCURSION_MISFIT_RATIO times that at the 5th percentile of its own
#: discharges: at 40 dB a fibre's own discharges correlate 0.98-1.0 with its template
#: and its excursions 0.99-0.996 (their surroundings differ), another unit's potential
#: of another shape well below 0.9, one of its shape with phases a little broader
#: 0.91-0.95 (the misfit test tells it; not beside potentials subtracted: see
#: :func:`_excursions`).
_EXCURSION_SCALE = 0.2
_EXCURSION_MIN_CORRELATION = 0.9
_EXCURSION_MISFIT_RATIO = 4.0

#: ... and at most this many robust SDs of its latency from its median latency: only a
#: fibre that jitters much fires hundreds of µs off; a healthy fibre's discharge "found"
#: far outside its window is another potential, most often in a discharge whose
#: reference was another unit's potential (no limit: two healthy pairs at 25 kHz lost on
#: simulated seeds 1-30) ...
_EXCURSION_SDS = 12.0

#: ... or at most this many where the potential's peak is at least _EXCURSION_FAR_SNR
#: noise SDs (30 dB). The latencies of a fibre near block have heavy tails (simulated MG,
#: MuSK MG and LEMS, seeds 1-30, 1420 pairs of 100 discharges, ground truth: the
#: farthest discharge lies beyond 12 robust SDs in 11 pairs, up to 17.6 in LEMS), but
#: below 30 dB the shape test does not tell another potential from the fibre's: on the
#: validation grid (seed 0, 40-80 µV) potentials 640-700 µs off fibres of 38-42 µs SD
#: correlated 0.965-0.986 with their templates, against their own discharges' 5th
#: percentile 0.98 (MCD 30 -> 41 and 29 -> 43 µs).
_EXCURSION_FAR_SDS = 20.0
_EXCURSION_FAR_SNR = 10 ** (30 / 20)

#: ... and sought only with at least this many discharges present (a robust SD of fewer
#: is not one).
_EXCURSION_MIN_DISCHARGES = 10


def clipped_discharges(sw, timed, fs_hz):
    """Discharges in which a potential's waveform reaches a level at which the samples
    clip (:attr:`~sfemg.analysis.sweeps.Sweeps.saturation`, found on the samples as
    recorded: a high-pass filter applied since leaves no flat top to see).

    Parameters
    ----------
    sw : Sweeps
    timed : Timed
        The potential (its positions and the extent of its template, ``support``).
    fs_hz : float

    Returns
    -------
    ndarray of bool, shape (n_rows,)
        True where a clipped sample lies within the potential's extent.
    """
    out = np.zeros(sw.start_s.size, dtype=bool)
    present = np.isfinite(timed.positions)
    if sw.saturation is None or sw.saturation.times_s.size == 0 or not present.any():
        return out
    base = sw.start_s[present] + timed.positions[present] / fs_hz
    first = np.searchsorted(sw.saturation.times_s, base + (timed.support[0] - 0.5) / fs_hz, "left")
    last = np.searchsorted(sw.saturation.times_s, base + (timed.support[1] + 0.5) / fs_hz, "right")
    out[present] = last > first
    return out


def measure_potential(sweeps, ref_pos, pot, fit_half, force_present, block_fraction):
    """Present flag, fit segments and peak (relative to the median peak) of one potential in every sweep
    (:func:`~sfemg.analysis._detect_numba.measure_kernel`: the first largest sample of the
    search window, its interpolated value, the segment around it).

    Returns
    -------
    present : ndarray of bool, shape (n,)
    seg_start : ndarray of int, shape (n,)
        First sample of each fit segment.
    segments : ndarray, shape (n, 2 * fit_half + 1)
        Polarity-corrected fit segments, V.
    relative_peak : ndarray, shape (n,)
        Interpolated peak in the search window / the potential's median peak.
    """
    n = sweeps.shape[0]
    peak_v = np.empty(n)
    seg_start = np.empty(n, dtype=np.int64)
    segments = np.empty((n, 2 * fit_half + 1))
    measure_kernel(np.ascontiguousarray(sweeps, dtype=np.float64), np.round(ref_pos + pot.latency).astype(np.int64),
                   int(pot.half_window), float(pot.polarity), int(fit_half), peak_v, seg_start, segments)
    present = np.ones(n, bool) if force_present else peak_v >= block_fraction * pot.amplitude_v
    return present, seg_start, segments, peak_v / pot.amplitude_v


def waveform_shape(template, reference, fs_hz, noise_sd_v):
    """Peak-to-peak amplitude, rise time and notch test of a polarity-corrected template.

    Parameters
    ----------
    template : ndarray, shape (n_samples,)
        Polarity-corrected (main peak positive) template, V.
    reference : float
        The peak's position, samples.
    fs_hz : float
        Sampling rate, Hz.
    noise_sd_v : float
        The template's own noise SD per sample (the recording's noise RMS over the
        square root of the discharges averaged), V. The template is the mean of the
        tapered segments, so this is its SD in the taper's flat middle, where the
        potential lies; 0 makes every minimum the rise's start.

    Returns
    -------
    tuple
        ``(amplitude V, rise time µs, notched)``. The rise time runs from the nearest
        minimum before the peak to the peak; inside the main phase (above
        ``_MAIN_PHASE_LEVEL`` of the peak) a minimum the template rises less than
        ``_RIPPLE_SDS`` noise SDs above before it is a ripple of the noise, not the
        rising phase's start (on the flat top of a slow wave such a ripple made a 1 ms
        wide wave's rise time 40 µs).
    """
    peak_i = int(np.clip(round(reference), 0, template.size - 1))
    amplitude = float(template.max() - template.min())
    peak = template[peak_i]
    # searched from the sample at or before the peak (from the rounded one, a peak just
    # past a half sample with the higher sample before it stopped at once and gave a
    # rise time of -1/2 sample)
    trough_i = k = int(np.clip(np.floor(reference), 0, template.size - 1))
    while k > 0:
        k -= 1
        if template[k] < template[trough_i]:
            trough_i = k
        elif template[k] >= template[trough_i] + (
                _RIPPLE_SDS * noise_sd_v if template[trough_i] > _MAIN_PHASE_LEVEL * peak else 0.0):
            break
    rise_us = (reference - trough_i) / fs_hz * 1e6
    lo = peak_i
    while lo > 0 and template[lo - 1] > _MAIN_PHASE_LEVEL * peak:
        lo -= 1
    hi = peak_i
    while hi < template.size - 1 and template[hi + 1] > _MAIN_PHASE_LEVEL * peak:
        hi += 1
    main = template[lo:hi + 1]
    inner = np.flatnonzero((main[1:-1] > main[:-2]) & (main[1:-1] >= main[2:])) + 1
    notched = False
    if inner.size >= 2:
        top = inner[np.argsort(main[inner])[-2:]]
        a, b = np.sort(top)
        notched = min(main[a], main[b]) - main[a:b + 1].min() > _NOTCH_DEPTH * peak
    return amplitude, rise_us, notched


@dataclass(frozen=True)
class Timed:
    """One potential's time points, bound, shape and template."""

    times_s: np.ndarray       # (n,) time points by the chosen method, NaN where blocked
    positions: np.ndarray     # (n,) template-fit reference position in the sweep, samples; NaN where blocked
    crb_var: float            # samples^2
    shape: tuple              # (amplitude V, rise time µs, notched)
    template: tuple           # (polarity-as-recorded template V, reference position samples)
    support: tuple            # (first, last) sample offsets from the reference where |template| >= 10 %
    clearly_absent: np.ndarray  # (n,) peak in the search window below CLEAR_ABSENCE of the median peak
    timing_var: float         # samples^2: crb_var inflated by the fit's misfit (see timing.misfit_ratio)
    excursions: np.ndarray    # (n,) bool: found outside its search window (_excursions)


def clearly_absent_discharges(relative_peak, pot, noise_sd):
    """Discharges where a potential is clearly absent: its peak below :data:`CLEAR_ABSENCE`
    of its median peak, judged only where noise cannot fake it (peak >= _ABSENCE_MIN_SNR
    noise SDs).

    Parameters
    ----------
    relative_peak : ndarray, shape (n,)
        From :func:`measure_potential`.
    pot : LockedPotential
    noise_sd : float
        V.

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    return (relative_peak < CLEAR_ABSENCE) & (pot.amplitude_v >= _ABSENCE_MIN_SNR * noise_sd)


def _excursions(data, recorded, ref_pos, pot, fit, present, seg_start, avoid, fit_half, params, fs_hz, noise_sd,
                others_subtracted=False):
    """Discharges judged blocked in which the potential fired outside its search window.

    A fibre near block fires late (or its reference early) by hundreds of µs in some
    discharges (±250-600 µs in simulated MG), beyond the window that its other
    discharges set. Its waveform is sought within ``params.excursion_window_us`` of its
    latency, but at most :data:`_EXCURSION_SDS` robust SDs of its latency
    (:data:`_EXCURSION_FAR_SDS` at 30 dB and more; no search with fewer than
    :data:`_EXCURSION_MIN_DISCHARGES` discharges present), in every discharge without
    it: each peak of its polarity there of at least ``block_fraction`` of its size,
    outside its own window, is a candidate. Another potential of that polarity
    (``avoid``) makes a candidate ambiguous, left a block: if the candidate lies in that
    potential's window; or, where the candidate's peak is at most ``1 + _EXCURSION_SCALE``
    times its size (a larger peak is not its, as its own excursion test would say), if
    that potential, within reach, is missing from its window in that discharge (the
    peak may be its own excursion; the fibre's own phases move with it). The
    best-correlated candidate (:func:`~sfemg.analysis.timing.match_template`) is taken
    if its scale and correlation are like those of the potential's own discharges
    (:data:`_EXCURSION_SCALE`, :data:`_EXCURSION_MIN_CORRELATION`,
    :data:`_EXCURSION_MISFIT_RATIO`; the last not beside potentials subtracted,
    ``others_subtracted``), and the unit does not look shifted onto it
    (:func:`_unit_shifted`).

    Parameters
    ----------
    data : ndarray, shape (n, L)
        Sweeps, V, where the potential is sought.
    recorded : ndarray, shape (n, L)
        The sweeps as recorded, V, where another potential's presence in its window is
        judged (``data`` may have the unit's other potentials taken out,
        :func:`~sfemg.analysis.refine.found_without_the_others`, where every one of them looks missing).
    ref_pos : ndarray, shape (n,)
        Reference position in each sweep, samples.
    pot : LockedPotential
    fit : TemplateFit
        The potential's fit over its present discharges.
    present : ndarray of bool, shape (n,)
    seg_start : ndarray of int, shape (n,)
        First sample of each fit segment (where present, ``fit.positions`` count from it).
    avoid : list of LockedPotential
        Every other potential.
    fit_half : int
    params : AnalysisParams
    fs_hz : float
    noise_sd : float
        The recording's noise SD, V.
    others_subtracted : bool
        ``data`` has the unit's other potentials subtracted at positions fitted where this
        one was judged blocked, so without its waveform: where it overlaps them there, their
        positions took part of it and their subtraction leaves a residue that its own
        discharges (the others fitted with it) do not hold. A candidate whose fit segment
        reaches another potential's window is then not held to their misfit, only to
        :data:`_EXCURSION_MIN_CORRELATION`.

    Returns
    -------
    rows : ndarray of int, shape (m,)
        The discharges in which it was found.
    seg_start : ndarray of int, shape (m,)
        First sample of their fit segments.
    segments : ndarray, shape (m, 2 * fit_half + 1)
        Their polarity-corrected fit segments, V.
    """
    none = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty((0, 2 * fit_half + 1)))
    absent = np.flatnonzero(~present)
    if absent.size == 0 or present.sum() < _EXCURSION_MIN_DISCHARGES:
        return none
    spread = median_and_robust_sd(seg_start[present] + fit.positions - ref_pos[present])[1]
    reach = params.excursion_window_us * 1e-6 * fs_hz
    sds = _EXCURSION_FAR_SDS if pot.amplitude_v >= _EXCURSION_FAR_SNR * noise_sd else _EXCURSION_SDS
    wide = int(min(reach, sds * spread)) if np.isfinite(spread) else 0
    if wide <= pot.half_window:
        return none
    peak_half = to_samples(params.peak_window_us * 1e-6, fs_hz, minimum=1)
    rows, cols = detect_peaks(data[absent], params.block_fraction * pot.amplitude_v, peak_half, int(pot.polarity))
    ref = ref_pos[absent[rows]]
    offset = np.abs(cols - (ref + pot.latency))
    ok = (offset > pot.half_window) & (offset <= wide) & (cols >= fit_half) & (cols + fit_half < data.shape[1])
    peaks_v = pot.polarity * data[absent[rows], cols]
    for other in avoid:
        if other.polarity != pot.polarity:
            continue
        centre = np.round(ref + other.latency).astype(np.int64)
        ok &= np.abs(cols - centre) > other.half_window
        could_be_its = peaks_v <= (1.0 + _EXCURSION_SCALE) * other.amplitude_v
        for k in np.flatnonzero(ok & could_be_its & (np.abs(cols - centre) <= other.half_window + reach)):
            # (a window outside the sweep, where the reference sits late in a windowed
            # recording, holds nothing: the other potential is missing there)
            window = recorded[absent[rows[k]], max(centre[k] - other.half_window, 0):
                              max(centre[k] + other.half_window + 1, 0)]
            ok[k] = window.size > 0 and (other.polarity * window).max() >= params.block_fraction * other.amplitude_v
    kept = np.flatnonzero(ok)
    ok[kept] = ~_unit_shifted(recorded[absent[rows[kept]]], ref[kept], cols[kept], peaks_v[kept], pot, avoid,
                              params.block_fraction, peak_half)
    rows, cols = absent[rows[ok]], cols[ok]
    if rows.size == 0:
        return none
    segments = pot.polarity * data[rows[:, None], cols[:, None] + np.arange(-fit_half, fit_half + 1)[None, :]]
    amplitudes, correlations = match_template(segments, fit)
    # the misfit like its own discharges', but where the segment reaches a potential
    # subtracted at positions fitted without this one
    beside = np.zeros(rows.size, dtype=bool)
    if others_subtracted:
        for other in avoid:
            beside |= np.abs(cols - (ref_pos[rows] + other.latency)) <= fit_half + other.half_window
    least = np.where(beside, _EXCURSION_MIN_CORRELATION,
                     max(_EXCURSION_MIN_CORRELATION,
                         1.0 - _EXCURSION_MISFIT_RATIO * (1.0 - np.percentile(fit.correlations, 5.0))))
    good = (np.abs(amplitudes - fast_median(fit.amplitudes)) <= _EXCURSION_SCALE) & (correlations >= least)
    best = {}  # per discharge, the best-correlated match
    for k in np.flatnonzero(good):
        if rows[k] not in best or correlations[k] > correlations[best[rows[k]]]:
            best[rows[k]] = k
    take = np.array(sorted(best.values()), dtype=np.int64)
    return rows[take], cols[take] - fit_half, segments[take]


def _unit_shifted(rows_v, ref_pos, cols, peaks_v, pot, avoid, present_fraction, near):
    """Which excursion candidates are better explained by the whole unit shifted, the
    reference another unit's potential (before or after the unit's discharge): the
    candidate this potential, the trigger's waveform peaking as much before it as this
    potential's latency; or the candidate the trigger's own potential (of its polarity
    and at most 1.2 times its size), this potential's waveform peaking that far after
    it. Judged against the trigger (the potential nearest latency 0, within its window;
    none in a stimulated recording, whose references are the stimuli) on the sweeps as
    recorded, within ``near`` samples; not where another potential of the unit (neither
    the trigger nor this one) is present in its own window: a shifted unit would have
    moved it too, and a fibre's true excursion moves it alone (found in review: a steady
    fibre 450 µs after the fibre's latency, where its excursions put the trigger, left
    every excursion a block).

    Parameters
    ----------
    rows_v : ndarray, shape (m, L)
        The candidates' sweeps as recorded, V.
    ref_pos : ndarray, shape (m,)
        The reference's position in each, samples.
    cols : ndarray of int, shape (m,)
        The candidates' peaks, samples.
    peaks_v : ndarray, shape (m,)
        Their polarity-corrected peak values, V.
    pot : LockedPotential
    avoid : list of LockedPotential
        The other potentials.
    present_fraction : float
        A potential is there where its peak reaches this fraction of its size.
    near : int
        How far from where it would lie a peak is sought, samples.

    Returns
    -------
    ndarray of bool, shape (m,)
    """
    shifted = np.zeros(cols.size, dtype=bool)
    at_reference = [q for q in avoid if abs(q.latency) <= q.half_window]
    if not at_reference:
        return shifted
    trig = min(at_reference, key=lambda q: abs(q.latency))
    before = np.round(cols + trig.latency - pot.latency).astype(np.int64)
    shifted |= _peaks_at(rows_v, before, near, trig.polarity) >= present_fraction * trig.amplitude_v
    if trig.polarity == pot.polarity:
        after = np.round(cols + pot.latency - trig.latency).astype(np.int64)
        its_size = peaks_v <= (1.0 + _EXCURSION_SCALE) * trig.amplitude_v
        shifted |= its_size & (_peaks_at(rows_v, after, near, pot.polarity) >= present_fraction * pot.amplitude_v)
    for other in avoid:
        if other is trig or abs(other.latency - trig.latency) <= other.half_window + trig.half_window:
            continue
        at = np.round(ref_pos + other.latency).astype(np.int64)
        shifted &= ~(_peaks_at(rows_v, at, other.half_window, other.polarity)
                     >= present_fraction * other.amplitude_v)
    return shifted


def _peaks_at(rows_v, centres, half_window, polarity):
    """The peak of ``polarity * x`` in each row within ``half_window`` samples of its
    centre: the window's largest value where it is a peak, not on either edge (a slope
    of something else), V; -inf where there is none (or the window is not whole in the
    row)."""
    out = np.full(centres.size, -np.inf)
    for k, (row, centre) in enumerate(zip(rows_v, centres)):
        if centre - half_window < 0 or centre + half_window >= row.size:
            continue
        window = polarity * row[centre - half_window:centre + half_window + 1]
        top = int(np.argmax(window))
        if 0 < top < window.size - 1:
            out[k] = window[top]
    return out


def time_potential(data, sw, pot, is_trigger, spectra, fs_hz, params, trigger_fit=None, measured=None,
                    avoid=None, others_subtracted=False):
    """Find, block-check and time one potential in every sweep.

    The fit segment spans ±``fit_half_window_us`` whatever the neighbouring phases: they
    are the potential's own (it is rigid) or another fibre's tail, which a shorter,
    more tapered segment would weigh more, not less.

    ``trigger_fit``, for the trigger, is its fit over all these sweeps already made by
    :func:`~sfemg.analysis.references.trigger_discharges` (the same segments: the trigger is present in every
    sweep), used instead of fitting again; ``measured`` is :func:`measure_potential`'s
    result for ``pot`` (``force_present=is_trigger``) when already made. Given ``avoid``
    (the other potentials), a potential that is not
    the trigger is also sought outside its window in the discharges it seems to block
    (:func:`_excursions`; ``others_subtracted``: ``data`` has them taken out, as there).
    """
    n = data.shape[0]
    fit_half = fit_half_window(params, fs_hz)
    if measured is None:
        measured = measure_potential(data, sw.ref_pos, pot, fit_half, is_trigger, params.block_fraction)
    present, seg_start, segs, relative_peak = measured
    present = present.copy()  # marked absent below where the template does not fit
    clearly_absent = clearly_absent_discharges(relative_peak, pot, sw.noise_sd)
    excursions = np.zeros(n, dtype=bool)
    length = 2 * fit_half + 1
    noise_power, noise_rms, _ = noise_spectrum(sw, length, spectra)
    if trigger_fit is not None:
        fit = trigger_fit
    else:
        fit = fit_template(segs[present], noise_power) if present.sum() >= 2 else None
    if fit is not None and not is_trigger:
        # a discharge is present only if the template fits it: not another unit's potential
        fits = (fit.amplitudes >= params.block_fraction) & (fit.correlations >= MIN_SHAPE_CORRELATION)
        if not fits.all():
            present[np.flatnonzero(present)[~fits]] = False
            fit = fit_template(segs[present], noise_power) if present.sum() >= 2 else None
    if fit is not None and not is_trigger and avoid is not None:
        rows, starts, found = _excursions(data, sw.data_v, sw.ref_pos, pot, fit, present, seg_start, avoid, fit_half,
                                          params, fs_hz, sw.noise_sd, others_subtracted)
        if rows.size:
            present[rows] = excursions[rows] = True
            clearly_absent[rows] = False
            seg_start, segs = seg_start.copy(), segs.copy()
            seg_start[rows], segs[rows] = starts, found
            fit = fit_template(segs[present], noise_power)
    times = np.full(n, np.nan)
    if fit is None:
        return Timed(times, times, np.inf, (np.nan, np.nan, False),
                      (np.zeros(length), float(fit_half)), (0, 0), clearly_absent, np.inf, excursions)
    near = to_samples(PEAK_SEARCH_US * 1e-6, fs_hz, minimum=1)
    if params.method == "template":
        pos = fit.positions
    elif params.method == "peak":
        pos = peak_positions(segs[present], near)[0]
    else:
        pos = level_positions(segs[present], params.level_fraction, near)
    times[present] = sw.start_s[present] + (seg_start[present] + pos) / fs_hz
    positions = np.full(n, np.nan)
    positions[present] = seg_start[present] + fit.positions
    big = np.flatnonzero(np.abs(fit.template) >= _SUPPORT_LEVEL * np.abs(fit.template).max())
    support = (big[0] - fit.reference, big[-1] - fit.reference)
    shape = waveform_shape(fit.template, fit.reference, fs_hz, noise_rms / np.sqrt(present.sum()))
    return Timed(times, positions, fit.crb_var, shape,
                  (pot.polarity * fit.template, fit.reference), support, clearly_absent,
                  fit.crb_var * misfit_ratio(segs[present], fit, noise_rms), excursions)
