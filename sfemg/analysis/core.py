"""Analysis of one recording: discharges → potentials → time points → jitter per pair.

Continuous and windowed input are both reduced to *sweeps*: one row of samples per
discharge (voluntary, around the trigger potential) or per stimulus, with the reference's
position in each row. Everything after that is the same for all inputs.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..errors import SfemgInputError
from ..recording import Recording
from ._detect_numba import measure_kernel, waveform_run_kernel
from .detect import (
    detect_both_polarities,
    detect_peaks,
    estimate_noise_sd,
    estimate_noise_spectrum,
    fast_median,
    find_locked_potentials,
    find_trigger,
    median_and_robust_sd,
    peak_values,
    running_median,
)
from .jitter import (
    MCD_PER_SD,
    compute_mcd,
    compute_msd,
    flip_flop_separation,
    mcd_gradient,
    reported_jitter,
    robust_mcd,
    two_group_split,
)
from .joint import ShiftCovariance, joint_positions, joint_templates
from .params import MIN_FS_HZ, AnalysisParams
from .results import PairResult, RecordingResult
from .superimposed import (
    background_templates,
    find_superimposed,
    flag_superimposed,
    model_residual,
    retime_superimposed,
    window_energy,
)
from .timing import fit_taper, fit_template, level_positions, match_template, peak_positions

__all__ = ["analyze_signal", "analyze_recording"]

#: The trigger potential must recur at least this often to be recognised.
_MIN_TRIGGER_COUNT = 8
#: Consistent potentials of a continuous voluntary recording tried as the trigger,
#: biggest first, while their analysis fails (no time-locked potential found, ...).
_TRIGGER_CHOICES = 3
#: A notch: a second maximum in the main phase rising this fraction of the peak above the dip.
_NOTCH_DEPTH = 0.05
#: A present potential's segment must correlate at least this well with the template
#: (a same-size potential of another unit in the search window does not).
_MIN_SHAPE_CORRELATION = 0.5
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
#: Peak and level methods seek the peak within this distance of the coarse peak, µs.
_PEAK_SEARCH_US = 50.0
#: A potential's extent: where its template exceeds this fraction of its peak.
_SUPPORT_LEVEL = 0.1
#: The main phase is where the template exceeds this fraction of its peak.
_MAIN_PHASE_LEVEL = 0.3
#: A time-locked group is a potential of its own when the residual of the current model
#: (every potential found so far, at its fitted times) keeps more than this many times
#: the noise energy in the group's window (median over discharges). A phase of a
#: potential already found leaves noise only (ratio ~1); another fibre, whose template
#: the model can only hold blurred by the relative jitter, leaves ~(jitter x slope)^2.
_RESIDUAL_ENERGY_RATIO = 2.0
#: ... or of this fraction of the signal energy there: at high SNR the rigid model's own
#: imprecision (aliasing at 25 kHz, sub-sample timing error) exceeds the noise; another
#: fibre's residual is ~(2 pi f x jitter)^2 of its energy, > 4 % at 10 µs and 3 kHz.
_MODEL_PRECISION = 0.005
#: ... unless the group, given its own time points, explains most of that residual and
#: is fast enough to be accepted (rise time below max_rise_time_us): a fibre with broad
#: phases whose waveform the kept potentials' templates hold blurred by its jitter leaves
#: only ~1.5 noise energies there, but with the group as a potential of its own (the
#: joint templates of the kept potentials and the group at its positions) at most
#: _OWN_SHARE of it is left, and at least _OWN_EXPLAINED noise energies less; a phase,
#: whose positions follow a kept potential's, explains nothing new. Simulated (default
#: scenarios, seeds 1-6; every group the residual test dropped): fibres left 0.11-0.46
#: of the residual, 0.29-1.4 noise energies less; of 316 groups matching a kept fibre,
#: 2 passed both. A fibre's slow phases explain what it leaves too, and slow groups so
#: kept timed the fibre on its slow phase or were pseudo-pairs of their own.
_OWN_SHARE = 0.5
_OWN_EXPLAINED = 0.3
#: A time-locked group is a phase of a potential already kept when its time points,
#: relative to that potential's, have an MCD of at most this many times the MCD that
#: their timing errors alone produce, or of at most _PHASE_MCD_MIN_US: a rigid
#: waveform's phases move together (noise only), another fibre jitters against it by
#: >= ~10 µs. The MCD is the robust one (median consecutive difference): a small phase
#: timed tens of µs off in a few discharges under other units' potentials is still
#: rigid (simulated: a phase with median |step| ~5 µs and six steps of 40-90 µs had an
#: MCD of 14 µs against a floor of 2.2 µs, and was reported as a fibre of its own).
_PHASE_MCD_FACTOR = 3.0
_PHASE_MCD_MIN_US = 4.0
#: A potential is clearly absent from a discharge when its peak in its search window is
#: below this fraction of its median peak: at >= 20 dB SNR (peak >= 10 noise RMS) noise
#: alone stays below ~0.4 of the peak only rarely, while a phase of a present fibre is
#: at full size; a fibre that blocks leaves noise only.
_CLEAR_ABSENCE = 0.25
#: ... in more than this fraction of the discharges (and more than one) where a kept
#: potential is present: a potential of its own (a superimposed potential of another
#: unit can cancel a phase once in a while).
_ABSENCE_SLACK = 0.02
#: Absence is judged only for groups whose peak is at least this many noise SDs (20 dB):
#: a smaller one (a slow phase, a sum of two fibres' tails) falls below _CLEAR_ABSENCE
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
#: of another shape well below 0.9.
_EXCURSION_SCALE = 0.2
_EXCURSION_MIN_CORRELATION = 0.9
_EXCURSION_MISFIT_RATIO = 4.0
#: ... and at most this many robust SDs of its latency from its median latency: only a
#: fibre that jitters much fires hundreds of µs off (simulated MG and LEMS, seeds 1-6,
#: 174 pairs: the farthest discharge of 13 % of the pairs lies beyond 8 SDs, none beyond
#: 11.4); a healthy fibre's discharge "found" far outside its window is another
#: potential, most often in a discharge whose reference was another unit's potential.
_EXCURSION_SDS = 12.0
#: ... and sought only with at least this many discharges present (a robust SD of fewer
#: is not one).
_EXCURSION_MIN_DISCHARGES = 10
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
#: A group is a fibre of its own, whatever the model's residual says, when its relative
#: MCD to every kept potential is at least _OWN_JITTER_US and _OWN_JITTER_FACTOR times
#: the MCD of their timing errors, and its peak is at least _OWN_AMPLITUDE of the
#: trigger's: the residual test cannot tell a fibre of low jitter (10-20 µs) under the
#: trigger's slow after-phases from one of those phases (both leave ~1 % of their energy),
#: but a large, precisely timed group that jitters is a fibre. Measured on simulated
#: studies: missed fibres at 10-35 x their timing floor, phases of a fibre mostly < 10 x
#: (slow phases are timed imprecisely, which the misfit-inflated floor only partly
#: reflects), and those above it small.
_OWN_JITTER_US = 8.0
_OWN_JITTER_FACTOR = 10.0
_OWN_AMPLITUDE = 0.4
#: A group's fit that puts its reference on a peak this many times the group's own
#: (median) peak has timed a neighbouring, bigger waveform: the group is dropped. On
#: simulated studies such fits (a 0.2 mV group beside a 2.2 mV fibre, reference peak
#: 1.7 mV) were accepted as pairs of their own in 4 of 90 recordings (seeds 4-6) and 5 of
#: 180 (seeds 7-12), 0 and 2 with this test; no real fibre was lost.
_OTHER_PEAK_RATIO = 1.5
#: A potential's waveform extends as far as its template's envelope (maximum magnitude
#: within ±_ENVELOPE_US, bridging zero crossings between phases) stays above
#: _EXTENT_LEVEL of its peak: the phases and slow after-phases of one fibre, not a
#: separate potential beyond a quiet gap.
_ENVELOPE_US = 100.0
_EXTENT_LEVEL = 0.05
#: Ridge on the joint template equations, per discharge: per DFT bin, templates that the
#: discharges cannot tell apart (their relative shifts vary too little at that frequency)
#: are split evenly instead of by noise; such components do not move between
#: discharges and so carry no relative timing information.
_JOINT_RIDGE = 1e-3
#: Stimulated recordings: half-width of the stretch around each response's candidate peak
#: that the artefact baseline is interpolated across (a potential's phases lie within
#: ~±0.5 ms of its largest peak).
_RESPONSE_HALF_US = 500.0
#: Joint timing (docs/analysis.md §2) times only potentials whose peak-to-peak
#: amplitude is at least this many noise SDs: it removes the single fit's drag but
#: identifies the relative scale from second-order terms, which noise swamps. Measured
#: on the default validation grid (5 repeats): with it at 40-80 µV noise the MCD RMSE
#: was 5.3-6.8 µs against 3.4-3.8 µs for the single fits, and no cell got worse with
#: this gate (median RMSE 4.4 -> 3.5 µs). Until the eleventh session one small potential
#: (mostly a slow after-phase, rejected) turned it off for the whole recording: on the
#: simulated default scenarios, seeds 1-6, timing the larger ones jointly took MCDs
#: within max(0.5 µs, 3 %) 132 -> 135 of 168.
_JOINT_MIN_SNR = 30.0


@dataclass(frozen=True)
class _Sweeps:
    """Rows of samples around each discharge: the common input of the analysis."""

    data_v: np.ndarray        # (n, n_cols)
    start_s: np.ndarray       # (n,) time of each row's first sample
    ref_pos: np.ndarray       # (n,) reference (trigger / stimulus) position in the row, samples
    ref_times_s: np.ndarray   # (n,) stimulus times; for voluntary the coarse trigger times
    noise_v: np.ndarray       # (n_rows, n) data the noise is measured on
    busy_rows: np.ndarray     # positions in noise_v near potentials or artefacts
    busy_cols: np.ndarray
    noise_sd: float           # robust noise standard deviation, V


def _check_signal(signal_v, fs_hz, mode, stimulus_times_s):
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
        raise SfemgInputError("signal_v: contains NaN or infinite values")
    _check_fs(fs_hz)
    if mode not in ("voluntary", "stimulated"):
        raise SfemgInputError(f"mode must be 'voluntary' or 'stimulated', not {mode!r}")
    if mode == "stimulated" and stimulus_times_s is None:
        raise SfemgInputError("stimulus_times_s: required for a stimulated recording")
    return np.ascontiguousarray(arr, dtype=np.float64)


def _check_fs(fs_hz):
    if not isinstance(fs_hz, (int, float, np.integer, np.floating)) or not np.isfinite(fs_hz) or fs_hz <= 0:
        raise SfemgInputError(f"fs_hz must be a positive number, got {fs_hz!r}")
    if fs_hz < MIN_FS_HZ:
        raise SfemgInputError(f"fs_hz = {fs_hz:g} Hz is too low for jitter measurement "
                              f"(need >= {MIN_FS_HZ:g} Hz)")


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


def _fit_half(params, fs_hz):
    """Half-length of the time-point fit segments, samples (``fit_half_window_us``, at least 2).

    Not widened to a fast DFT length: the segment's extent sets how much of a neighbouring
    fibre's tail enters the fit, and 61 -> 63 samples at 50 kHz moved MCDs by up to 4 %.
    """
    return max(2, int(round(params.fit_half_window_us * 1e-6 * fs_hz)))


def _windows(x, starts, n_cols):
    """Rows ``x[start:start + n_cols]`` (all inside ``x``)."""
    return x[starts[:, None] + np.arange(n_cols)[None, :]]


def _candidates(x, noise_sd, fs_hz, params):
    """Candidate peaks of both polarities (rows, columns) above the detection threshold."""
    half_width = max(1, int(round(params.peak_window_us * 1e-6 * fs_hz)))
    return detect_both_polarities(x, params.detect_threshold_sd * noise_sd, half_width)


def _bridge(x, rows, cols, half):
    """``x`` with ``[col - half, col + half]`` of each (row, col) replaced by the straight
    line between the samples either side (per row; the first and last samples are kept)."""
    n_rows, n_cols = x.shape
    covered = np.zeros(x.shape, dtype=bool)
    spans = np.clip(cols[:, None] + np.arange(-half, half + 1)[None, :], 1, n_cols - 2)
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
    later than one median width after the blank (candidate peaks ±
    :data:`_RESPONSE_HALF_US`) bridged by straight lines.

    Returns
    -------
    clean : ndarray, shape like ``data``
    blank_rows, blank_cols : ndarray of int
        The zeroed samples (kept away from by the noise estimate).
    """
    width = int(round(params.artefact_baseline_ms * 1e-3 * fs_hz)) | 1
    blank = int(np.ceil(params.artefact_blank_ms * 1e-3 * fs_hz))
    cols = np.arange(data.shape[1])[None, :]
    start = np.floor(ref_pos).astype(np.int64)[:, None]
    mask = (cols >= start - 1) & (cols <= start + blank)
    baseline = running_median(data, width)
    rows, peaks = _candidates(data - baseline, noise_sd, fs_hz, params)
    # within a median's width after the blank the artefact's tail changes fastest: there
    # the median must follow everything
    late = peaks > start[rows, 0] + blank + width
    rows, peaks = rows[late], peaks[late]
    if rows.size:
        half = max(1, int(round(_RESPONSE_HALF_US * 1e-6 * fs_hz)))
        baseline = running_median(_bridge(data, rows, peaks, half), width)
    clean = data - baseline
    clean[mask] = 0.0
    rows, cols_ = np.nonzero(mask)
    return clean, rows, cols_


def _stimulus_sweeps(x, fs_hz, stimulus_times_s, params, noise_sd):
    """Cut a continuous stimulated signal into rows around each stimulus, artefact removed."""
    search = int(round(params.search_window_ms * 1e-3 * fs_hz))
    fit_half = _fit_half(params, fs_hz)
    stim = np.asarray(stimulus_times_s, dtype=np.float64)
    if stim.ndim != 1 or not np.all(np.isfinite(stim)):
        raise SfemgInputError("stimulus_times_s: expected a 1-D array of finite times")
    n_cols = _fast_length(search + 2 * fit_half + 1)
    starts = np.floor(stim * fs_hz).astype(np.int64) - fit_half
    ok = (starts >= 0) & (starts + n_cols <= x.size)
    if ok.sum() < 2:
        raise SfemgInputError(f"only {ok.sum()} complete stimulus window(s) in the recording")
    every_start = starts  # incomplete windows (at the ends) hold artefacts too
    stim, starts = stim[ok], starts[ok]
    ref_pos = stim * fs_hz - starts
    clean, _, _ = _remove_artefact(_windows(x, starts, n_cols), ref_pos, fs_hz, params, noise_sd)
    # the noise is measured on the whole signal, away from every candidate peak and
    # from every stimulus's window (artefact and responses): the windows alone, once
    # their responses are left out, are too short for it
    rows, cols = _candidates(x, noise_sd, fs_hz, params)
    window = np.arange(0, n_cols, max(1, fit_half))
    busy_cols = np.concatenate([cols, (every_start[:, None] + window[None, :]).ravel()])
    return _Sweeps(clean, starts / fs_hz, ref_pos, stim, x[None, :], np.zeros_like(busy_cols),
                   busy_cols, noise_sd)


def _discharge_sweeps(x, trig, rows, cols, fs_hz, params, noise_sd):
    """Cut a continuous voluntary signal into rows around each trigger discharge (sample
    indices ``trig``); ``rows, cols`` are every candidate peak (kept out of the noise)."""
    search = int(round(params.search_window_ms * 1e-3 * fs_hz))
    n_cols = _fast_length(2 * (search + _fit_half(params, fs_hz)) + 1)
    pre = n_cols // 2
    trig = trig[(trig - pre >= 0) & (trig - pre + n_cols <= x.size)]
    if trig.size < 2:
        raise SfemgInputError(f"only {trig.size} complete discharge window(s) in the recording")
    starts = trig - pre
    return _Sweeps(_windows(x, starts, n_cols), starts / fs_hz, np.full(trig.size, float(pre)),
                   trig / fs_hz, x[None, :], rows, cols, noise_sd)


def _first_accepted(attempts):
    """What the first of ``attempts`` (callables returning a RecordingResult) returns; if
    it raises an SfemgInputError, the first later result that has an accepted pair (a
    later choice's pseudo-pairs are not worth more than the error), else that error."""
    attempts = iter(attempts)
    try:
        return next(attempts)()
    except SfemgInputError as error:
        first_error = error
    for attempt in attempts:
        try:
            result = attempt()
        except SfemgInputError:
            continue
        if any(p.accepted for p in result.pairs):
            return result
    raise first_error


def _analyze_continuous(name, x, fs_hz, mode, stimulus_times_s, params, recording=None):
    """Analysis of a continuous signal (checked: 1-D, finite float64).

    Voluntary: the trigger is the biggest consistent potential
    (:func:`~sfemg.analysis.detect.find_trigger`); if its analysis fails (mostly: no
    time-locked potential), the next ones not locked to it (up to
    :data:`_TRIGGER_CHOICES` in all) are tried, and the first that gives an accepted
    pair is reported (else the biggest's error). A background unit's
    potential can be the biggest: a broad potential passes the amplifier's band better
    than a narrow one of a higher raw peak.
    """
    noise_sd = estimate_noise_sd(x)
    if mode == "stimulated":
        return _analyze_sweeps(name, _stimulus_sweeps(x, fs_hz, stimulus_times_s, params, noise_sd),
                               fs_hz, mode, params, recording)
    rows, cols = _candidates(x, noise_sd, fs_hz, params)
    if cols.size == 0:
        raise SfemgInputError("no potentials found above the detection threshold")
    choices = find_trigger(peak_values(x, rows, cols), cols, fs_hz, _MIN_TRIGGER_COUNT, params.min_idi_ms,
                           _TRIGGER_CHOICES)

    def with_trigger(member):
        sw = _discharge_sweeps(x, cols[member], rows, cols, fs_hz, params, noise_sd)
        return _analyze_sweeps(name, sw, fs_hz, mode, params, recording)

    return _first_accepted(functools.partial(with_trigger, m) for m in choices)


def _sweep_input(rec: Recording, params, noise_sd):
    """Rows of a windowed recording, with the stimulus or the trigger found in each."""
    fs_hz = rec.fs_hz
    data = rec.sweeps_v
    starts_s = rec.sweep_start_times_s
    if rec.mode == "stimulated":
        stim = rec.stimulus_times_s if rec.stimulus_times_s is not None else starts_s
        if stim.size != starts_s.size:
            raise SfemgInputError(f"recording {rec.name!r}: {stim.size} stimulus times for "
                                  f"{starts_s.size} sweeps")
        ref_pos = (stim - starts_s) * fs_hz
        clean, blank_r, blank_c = _remove_artefact(data, ref_pos, fs_hz, params, noise_sd)
        # the noise is measured away from the blanked artefact and from the responses
        rows, cols = _candidates(clean, noise_sd, fs_hz, params)
        return _Sweeps(clean, starts_s, ref_pos, stim, clean, np.concatenate([blank_r, rows]),
                       np.concatenate([blank_c, cols]), noise_sd)
    rows, cols = _candidates(data, noise_sd, fs_hz, params)
    # the sweeps laid out one after another with a sweep's length of gap between them,
    # and a refractory time of one sweep: a group fires once per sweep it is in, and the
    # trigger is its first member in the sweep, as in a continuous recording (the
    # largest let two fibres of one unit of similar size alternate as the reference:
    # validation grid, §6)
    stride = data.shape[1] + 1
    member = find_trigger(peak_values(data, rows, cols), rows * 2 * stride + cols, fs_hz, _MIN_TRIGGER_COUNT,
                          stride / fs_hz * 1e3)[0]
    keep = rows[member]
    if keep.size < 2:
        raise SfemgInputError(f"recording {rec.name!r}: trigger potential found in fewer than 2 sweeps")
    trig_cols = cols[member].astype(np.float64)
    return _Sweeps(data[keep], starts_s[keep], trig_cols, starts_s[keep] + trig_cols / fs_hz,
                   data, rows, cols, noise_sd)


def _measure_potential(sweeps, ref_pos, pot, fit_half, force_present, block_fraction):
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


def _shape(template, reference, fs_hz):
    """Peak-to-peak amplitude (V), rise time (µs) and notch test of a polarity-corrected template."""
    peak_i = int(np.clip(round(reference), 0, template.size - 1))
    amplitude = float(template.max() - template.min())
    # the rising phase starts at the nearest minimum before the peak: searched from the
    # sample at or before it (from the rounded one, a peak just past a half sample with
    # the higher sample before it stopped at once and gave a rise time of -1/2 sample)
    trough_i = int(np.clip(np.floor(reference), 0, template.size - 1))
    while trough_i > 0 and template[trough_i - 1] < template[trough_i]:
        trough_i -= 1
    rise_us = (reference - trough_i) / fs_hz * 1e6
    peak = template[peak_i]
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


def _acceptance(amplitude_v, rise_us, notched, params, who):
    reasons = []
    min_amp = params.acceptance_min_amplitude_v
    too_small = amplitude_v < min_amp if params.electrode == "concentric" else amplitude_v <= min_amp
    if too_small:
        reasons.append(f"{who}amplitude {amplitude_v * 1e6:.0f} µV below {min_amp * 1e6:.0f} µV")
    if not rise_us < params.max_rise_time_us:
        reasons.append(f"{who}rise time {rise_us:.0f} µs not below {params.max_rise_time_us:.0f} µs")
    if notched:
        reasons.append(f"{who}notched/compound shape")
    return reasons


@dataclass(frozen=True)
class _Timed:
    """One potential's time points, bound, shape and template."""

    times_s: np.ndarray       # (n,) time points by the chosen method, NaN where blocked
    positions: np.ndarray     # (n,) template-fit reference position in the sweep, samples; NaN where blocked
    crb_var: float            # samples^2
    shape: tuple              # (amplitude V, rise time µs, notched)
    template: tuple           # (polarity-as-recorded template V, reference position samples)
    support: tuple            # (first, last) sample offsets from the reference where |template| >= 10 %
    clearly_absent: np.ndarray  # (n,) peak in the search window below _CLEAR_ABSENCE of the median peak
    timing_var: float         # samples^2: crb_var inflated by the fit's misfit (see _misfit)
    excursions: np.ndarray    # (n,) bool: found outside its search window (_excursions)


def _misfit(segments, fit, noise_rms_v):
    """How much more than noise the template leaves in a potential's segments.

    Median over discharges of the residual energy of the fit (tapered segment minus the
    scaled, shifted template) over the energy of noise alone in a tapered segment; at
    least 1. The bound assumes the potential in stationary noise; where other fibres'
    jittering waveforms overlap it (a slow after-phase under another fibre's tail, a
    peak made of two fibres' phases), the time points scatter by about the bound times
    the square root of this ratio.

    Parameters
    ----------
    segments : ndarray, shape (n, L)
        Polarity-corrected segments of the present discharges, V.
    fit : TemplateFit
    noise_rms_v : float
        Noise RMS, V.

    Returns
    -------
    float
    """
    taper = fit_taper(segments.shape[1])
    data = segments * taper[None, :]
    data = data - data.mean(axis=1, keepdims=True)
    residual = np.sum(data ** 2, axis=1) * (1.0 - np.clip(fit.correlations, -1.0, 1.0) ** 2)
    noise = noise_rms_v ** 2 * np.sum(taper ** 2)
    return max(1.0, fast_median(residual) / noise)


def _clearly_absent(relative_peak, pot, noise_sd):
    """Discharges where a potential is clearly absent: its peak below :data:`_CLEAR_ABSENCE`
    of its median peak, judged only where noise cannot fake it (peak >= _ABSENCE_MIN_SNR
    noise SDs).

    Parameters
    ----------
    relative_peak : ndarray, shape (n,)
        From :func:`_measure_potential`.
    pot : LockedPotential
    noise_sd : float
        V.

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    return (relative_peak < _CLEAR_ABSENCE) & (pot.amplitude_v >= _ABSENCE_MIN_SNR * noise_sd)


def _excursions(data, recorded, ref_pos, pot, fit, present, seg_start, avoid, fit_half, params, fs_hz):
    """Discharges judged blocked in which the potential fired outside its search window.

    A fibre near block fires late (or its reference early) by hundreds of µs in some
    discharges (±250-600 µs in simulated MG), beyond the window that its other
    discharges set. Its waveform is sought within ``params.excursion_window_us`` of its
    latency, but at most :data:`_EXCURSION_SDS` robust SDs of its latency (no search
    with fewer than :data:`_EXCURSION_MIN_DISCHARGES` discharges present), in every
    discharge without it: each peak of its polarity there of at least ``block_fraction`` of its
    size, outside its own window, is a candidate. Another potential of that polarity
    (``avoid``) makes a candidate ambiguous, left a block: if the candidate lies in that
    potential's window, or if that potential, within reach, is missing from its window
    in that discharge (the peak may be its own excursion; the fibre's own phases move
    with it). The best-correlated candidate
    (:func:`~sfemg.analysis.timing.match_template`) is taken if its scale and correlation
    are like those of the potential's own discharges (:data:`_EXCURSION_SCALE`,
    :data:`_EXCURSION_MIN_CORRELATION`, :data:`_EXCURSION_MISFIT_RATIO`).

    Parameters
    ----------
    data : ndarray, shape (n, L)
        Sweeps, V, where the potential is sought.
    recorded : ndarray, shape (n, L)
        The sweeps as recorded, V, where another potential's presence in its window is
        judged (``data`` may have the unit's other potentials taken out,
        :func:`_found_without_the_others`, where every one of them looks missing).
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
    wide = int(min(reach, _EXCURSION_SDS * spread)) if np.isfinite(spread) else 0
    if wide <= pot.half_window:
        return none
    peak_half = max(1, int(round(params.peak_window_us * 1e-6 * fs_hz)))
    rows, cols = detect_peaks(data[absent], params.block_fraction * pot.amplitude_v, peak_half, int(pot.polarity))
    ref = ref_pos[absent[rows]]
    offset = np.abs(cols - (ref + pot.latency))
    ok = (offset > pot.half_window) & (offset <= wide) & (cols >= fit_half) & (cols + fit_half < data.shape[1])
    for other in avoid:
        if other.polarity != pot.polarity:
            continue
        centre = np.round(ref + other.latency).astype(np.int64)
        ok &= np.abs(cols - centre) > other.half_window
        for k in np.flatnonzero(ok & (np.abs(cols - centre) <= other.half_window + reach)):
            # (a window outside the sweep, where the reference sits late in a windowed
            # recording, holds nothing: the other potential is missing there)
            window = recorded[absent[rows[k]], max(centre[k] - other.half_window, 0):
                              max(centre[k] + other.half_window + 1, 0)]
            ok[k] = window.size > 0 and (other.polarity * window).max() >= params.block_fraction * other.amplitude_v
    rows, cols = absent[rows[ok]], cols[ok]
    if rows.size == 0:
        return none
    segments = pot.polarity * data[rows[:, None], cols[:, None] + np.arange(-fit_half, fit_half + 1)[None, :]]
    amplitudes, correlations = match_template(segments, fit)
    own_misfit = 1.0 - np.percentile(fit.correlations, 5.0)
    good = (np.abs(amplitudes - fast_median(fit.amplitudes)) <= _EXCURSION_SCALE) \
        & (correlations >= max(_EXCURSION_MIN_CORRELATION, 1.0 - _EXCURSION_MISFIT_RATIO * own_misfit))
    best = {}  # per discharge, the best-correlated match
    for k in np.flatnonzero(good):
        if rows[k] not in best or correlations[k] > correlations[best[rows[k]]]:
            best[rows[k]] = k
    take = np.array(sorted(best.values()), dtype=np.int64)
    return rows[take], cols[take] - fit_half, segments[take]


def _time_potential(data, sw, pot, is_trigger, spectra, fs_hz, params, trigger_fit=None, measured=None,
                    avoid=None):
    """Find, block-check and time one potential in every sweep.

    The fit segment spans ±``fit_half_window_us`` whatever the neighbouring phases: they
    are the potential's own (it is rigid) or another fibre's tail, which a shorter,
    more tapered segment would weigh more, not less.

    ``trigger_fit``, for the trigger, is its fit over all these sweeps already made by
    :func:`_trigger_discharges` (the same segments: the trigger is present in every
    sweep), used instead of fitting again; ``measured`` is :func:`_measure_potential`'s
    result for ``pot`` (``force_present=is_trigger``) when already made. Given ``avoid``
    (the other potentials), a potential that is not
    the trigger is also sought outside its window in the discharges it seems to block
    (:func:`_excursions`).
    """
    n = data.shape[0]
    fit_half = _fit_half(params, fs_hz)
    if measured is None:
        measured = _measure_potential(data, sw.ref_pos, pot, fit_half, is_trigger, params.block_fraction)
    present, seg_start, segs, relative_peak = measured
    present = present.copy()  # marked absent below where the template does not fit
    clearly_absent = _clearly_absent(relative_peak, pot, sw.noise_sd)
    excursions = np.zeros(n, dtype=bool)
    length = 2 * fit_half + 1
    noise_power, noise_rms, _ = _noise_power(sw, length, spectra)
    if trigger_fit is not None:
        fit = trigger_fit
    else:
        fit = fit_template(segs[present], noise_power) if present.sum() >= 2 else None
    if fit is not None and not is_trigger:
        # a discharge is present only if the template fits it: not another unit's potential
        fits = (fit.amplitudes >= params.block_fraction) & (fit.correlations >= _MIN_SHAPE_CORRELATION)
        if not fits.all():
            present[np.flatnonzero(present)[~fits]] = False
            fit = fit_template(segs[present], noise_power) if present.sum() >= 2 else None
    if fit is not None and not is_trigger and avoid is not None:
        rows, starts, found = _excursions(data, sw.data_v, sw.ref_pos, pot, fit, present, seg_start, avoid, fit_half,
                                          params, fs_hz)
        if rows.size:
            present[rows] = excursions[rows] = True
            clearly_absent[rows] = False
            seg_start, segs = seg_start.copy(), segs.copy()
            seg_start[rows], segs[rows] = starts, found
            fit = fit_template(segs[present], noise_power)
    times = np.full(n, np.nan)
    if fit is None:
        return _Timed(times, times, np.inf, (np.nan, np.nan, False),
                      (np.zeros(length), float(fit_half)), (0, 0), clearly_absent, np.inf, excursions)
    near = max(1, int(round(_PEAK_SEARCH_US * 1e-6 * fs_hz)))
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
    return _Timed(times, positions, fit.crb_var, _shape(fit.template, fit.reference, fs_hz),
                  (pot.polarity * fit.template, fit.reference), support, clearly_absent,
                  fit.crb_var * _misfit(segs[present], fit, noise_rms), excursions)


def _waveform_extents(tpl_spectra, positions, length, fs_hz):
    """Where each potential's waveform lies in the sweeps.

    Parameters
    ----------
    tpl_spectra : ndarray, shape (K, L // 2 + 1)
        :func:`~sfemg.analysis.joint.joint_templates`.
    positions : ndarray, shape (K, n)
        Reference positions, samples; NaN where absent.
    length : int
        Sweep length L, samples.
    fs_hz : float

    Returns
    -------
    list of (float, float)
        Per potential, the first and last sweep position (median over discharges) of its
        waveform: the run around its reference where the template's envelope (maximum of
        its magnitude over ±:data:`_ENVELOPE_US`) stays above :data:`_EXTENT_LEVEL` of its
        peak, samples.
    """
    half = max(1, int(round(_ENVELOPE_US * 1e-6 * fs_hz)))
    runs = np.empty((tpl_spectra.shape[0], 2), dtype=np.int64)
    waveform_run_kernel(np.fft.irfft(tpl_spectra, n=length, axis=1), half, _EXTENT_LEVEL, runs)
    extents = []
    for (lo, hi), p in zip(runs, positions):
        centre = fast_median(p[np.isfinite(p)])
        extents.append((centre + lo, centre + hi))
    return extents


def _residual_energy_ratio(data, residual, ref_pos, pot, noise_sd):
    """Median over sweeps of the residual energy in a group's window, relative to the larger
    of the noise energy and :data:`_MODEL_PRECISION` of the signal energy there."""
    centre = (ref_pos + pot.latency)[None, :]
    energy = fast_median(window_energy(residual, centre, pot.half_window)[0])
    signal = fast_median(window_energy(data, centre, pot.half_window)[0])
    return energy / max((2 * pot.half_window + 1) * noise_sd ** 2, _MODEL_PRECISION * signal)


class _Relative(NamedTuple):
    """How a group's template-fit positions move against a kept potential's, µs."""

    mcd_us: float         # MCD of (group - kept)
    robust_mcd_us: float  # the same from the median consecutive difference (robust_mcd)
    floor_us: float       # MCD their timing errors alone produce (from timing_var)

    @property
    def rigid(self) -> bool:
        """They move together (:func:`_rigid`, on the robust MCD): one waveform, or one
        fibre's phases."""
        return _rigid(self.robust_mcd_us, self.floor_us)


def _rigid(mcd_us, floor_us):
    """Time points that move together: their relative MCD at most
    :data:`_PHASE_MCD_FACTOR` × the MCD their timing errors alone produce, or at most
    :data:`_PHASE_MCD_MIN_US` (µs)."""
    return mcd_us <= max(_PHASE_MCD_FACTOR * floor_us, _PHASE_MCD_MIN_US)


class _Model(NamedTuple):
    """The sweeps' DFT and the joint templates of the potentials at some positions."""

    spectra: np.ndarray           # (n, L // 2 + 1) the sweeps' DFT
    positions: np.ndarray         # (K, n) samples, NaN where absent
    template_spectra: np.ndarray  # (K, L // 2 + 1) each template's DFT, reference at sample 0
    residual_spectra: np.ndarray  # (n, L // 2 + 1) the sweeps less the templates at the positions


def _relative_mcd(cand, kept, fs_hz):
    """How a group's template-fit positions move against a kept potential's (the floor is
    the template fits' own: the ``peak`` and ``level`` methods' time points scatter
    more, and phases compared on them seemed to jitter); None when the group is
    clearly absent (:data:`_CLEAR_ABSENCE`) in more than :data:`_ABSENCE_SLACK` of the
    discharges where the kept potential is present — a fibre that blocks on its own, no
    phase of it.

    Parameters
    ----------
    cand, kept : _Timed
    fs_hz : float

    Returns
    -------
    _Relative or None
    """
    kept_present = np.isfinite(kept.positions)
    both = np.isfinite(cand.positions) & kept_present
    if np.sum(cand.clearly_absent & kept_present) > max(1, _ABSENCE_SLACK * both.size) or both.sum() < 3:
        return None
    relative_s = (cand.positions[both] - kept.positions[both]) / fs_hz
    return _Relative(compute_mcd(relative_s) * 1e6, robust_mcd(relative_s) * 1e6,
                     MCD_PER_SD * np.sqrt(cand.timing_var + kept.timing_var) / fs_hz * 1e6)


def _follows_mixture(cand, kept, fs_hz):
    """Whether a group's positions (template fits, whatever the time-point method) are a
    weighted mix of the kept potentials' (plus noise).

    A peak made of two fibres' overlapping phases (the trigger's slow after-phase and the
    next fibre's lead-in) moves with both: its time is ``c + sum_j b_j t_j``. Least
    squares over the discharges where all are present; the residual's MCD is compared
    with the timing-error MCD as in the pairwise test.

    Parameters
    ----------
    cand : _Timed
    kept : list of _Timed
    fs_hz : float

    Returns
    -------
    bool
    """
    if len(kept) < 2:
        return False
    both = np.isfinite(cand.positions) & np.all([np.isfinite(k.positions) for k in kept], axis=0)
    if both.sum() < 3 * (len(kept) + 1):
        return False
    x = np.column_stack([np.ones(both.sum())] + [k.positions[both] - k.positions[both][0] for k in kept])
    y = cand.positions[both] - cand.positions[both][0]
    residual = y - x @ np.linalg.lstsq(x, y, rcond=None)[0]
    mcd_us = compute_mcd(residual) / fs_hz * 1e6
    floor_us = MCD_PER_SD * np.sqrt(cand.timing_var + sum(k.timing_var for k in kept)) / fs_hz * 1e6
    return _rigid(mcd_us, floor_us)


def _peak_positions(measured, fs_hz):
    """A group's interpolated peak positions in the sweeps (samples; NaN where it is not
    present), from :func:`_measure_potential`."""
    present, seg_start, segs, _ = measured
    near = max(1, int(round(_PEAK_SEARCH_US * 1e-6 * fs_hz)))
    return np.where(present, seg_start + peak_positions(segs, near)[0], np.nan)


def _rigid_by_peaks(measured, group, kept, inside, noise_sd, fs_hz):
    """Whether a group's interpolated peaks alone show it to be a phase: the MCD of (peak
    position - a kept potential's time point) at most :data:`_PHASE_MCD_MIN_US` for a kept
    potential whose waveform it lies within.

    The peak is a noisier time point than the template fit's, so a group this rigid on
    its peaks is a phase by :func:`_is_phase`'s first test too; the template fit it would
    need for that test (most of the groups a recording's selection considers are such
    phases) is saved. Groups with noisier peaks (slow phases, low SNR) are left to the
    full tests. As in that test, a group clearly absent where the kept potential is
    present (a fibre that blocks on its own) is no phase of it.

    Parameters
    ----------
    measured : tuple
        :func:`_measure_potential` of the group.
    group : LockedPotential
    kept : list of _Timed
    inside : list of bool
        Whether the group lies within each kept potential's waveform.
    noise_sd : float
        V.
    fs_hz : float

    Returns
    -------
    bool
    """
    present = measured[0]
    clearly_absent = _clearly_absent(measured[3], group, noise_sd)
    peak_pos = _peak_positions(measured, fs_hz)
    for k, within in zip(kept, inside):
        kept_present = np.isfinite(k.positions)
        both = present & kept_present
        if not within or both.sum() < 3 \
                or np.sum(clearly_absent & kept_present) > max(1, _ABSENCE_SLACK * both.size):
            continue
        if compute_mcd(peak_pos[both] - k.positions[both]) / fs_hz * 1e6 <= _PHASE_MCD_MIN_US:
            return True
    return False


def _timed_on_another(timed_group, group):
    """Whether a group's fit has timed a bigger waveform than the group's own peak.

    The fit segment (±``fit_half_window_us``) of a small group beside a big potential
    holds mostly the big one; the template's reference (its largest peak) then lies on
    that potential, and the time points follow a blend of both. Such a fit is no
    potential of its own: its reference peak exceeds :data:`_OTHER_PEAK_RATIO` × the
    group's median peak (a potential timed on its own peak: ≈ 1).

    Parameters
    ----------
    timed_group : _Timed
    group : LockedPotential

    Returns
    -------
    bool
    """
    template, reference = timed_group.template
    peak_v = group.polarity * np.interp(reference, np.arange(template.size), template)
    return peak_v > _OTHER_PEAK_RATIO * group.amplitude_v


def _blocks_alone(clearly_absent, kept):
    """Whether a group is clearly absent in more than :data:`_ABSENCE_SLACK` (and more than
    one) of the discharges where every kept potential (list of _Timed) is present."""
    all_present = np.all([np.isfinite(k.positions) for k in kept], axis=0)
    return np.sum(clearly_absent & all_present) > max(1, _ABSENCE_SLACK * all_present.sum())


def _is_phase(timed_group, group, kept, inside, trigger_group, fs_hz, residual_ratio, explains_residual):
    """Whether a group lying within a kept potential's waveform is a phase (see
    :func:`_select_potentials`).

    Parameters
    ----------
    timed_group : _Timed
    group, trigger_group : LockedPotential
    kept : list of _Timed
    inside : list of bool
        Whether the group lies within each kept potential's waveform.
    fs_hz : float
    residual_ratio : callable
        Returns the model's residual energy ratio in the group's window (computed only
        when needed).
    explains_residual : callable
        Returns whether the group is a fibre by what it explains of that residual
        (:func:`_explains_its_residual`, and fast enough to be accepted; called only
        when needed).

    Returns
    -------
    bool
    """
    rel = [_relative_mcd(timed_group, k, fs_hz) for k in kept]
    if any(r is not None and within and r.rigid for r, within in zip(rel, inside)):
        return True
    if _follows_mixture(timed_group, kept, fs_hz):
        return True
    blocks_alone = _blocks_alone(timed_group.clearly_absent, kept)
    jitters = group.amplitude_v >= _OWN_AMPLITUDE * trigger_group.amplitude_v and all(
        r is None or (r.mcd_us >= _OWN_JITTER_US and r.mcd_us >= _OWN_JITTER_FACTOR * r.floor_us) for r in rel)
    return (not blocks_alone and not jitters and residual_ratio() <= _RESIDUAL_ENERGY_RATIO
            and not explains_residual())


def _explains_its_residual(data, spectra, sw, kept, positions, group, residual_ratio):
    """Whether a group at its own positions explains most of what the kept potentials'
    model leaves in its window (:data:`_OWN_SHARE`, :data:`_OWN_EXPLAINED`).

    Parameters
    ----------
    data : ndarray, shape (n, L)
        Sweeps, V.
    spectra : ndarray of complex, shape (n, L // 2 + 1)
        Their DFT (``numpy.fft.rfft``), V.
    sw : _Sweeps
        The sweeps' reference positions and noise SD.
    kept : list of _Timed
    positions : ndarray, shape (n,)
        The group's positions in the sweeps, samples; NaN where absent.
    group : LockedPotential
    residual_ratio : float
        What the kept potentials' model leaves in the group's window, in units of the
        larger of the noise energy there and :data:`_MODEL_PRECISION` of the signal
        energy (:func:`_residual_energy_ratio`).

    Returns
    -------
    bool
    """
    if residual_ratio < _OWN_EXPLAINED:  # (it cannot explain that much)
        return False
    length = data.shape[1]
    both = np.vstack([k.positions for k in kept] + [positions])
    left = np.fft.irfft(joint_templates(spectra, both, length, _JOINT_RIDGE)[1], n=length, axis=1)
    with_it = _residual_energy_ratio(data, left, sw.ref_pos, group, sw.noise_sd)
    return with_it <= _OWN_SHARE * residual_ratio and residual_ratio - with_it >= _OWN_EXPLAINED


def _select_potentials(data, sw, groups, trigger, noise_spectra, fs_hz, params, trigger_fit=None):
    """The potentials among the time-locked groups, and their time points.

    Groups are taken in order of size (the trigger's first), so that each fibre is timed
    on its largest phase. A group is a phase of the potentials already kept, and
    dropped, when

    * it lies within one's waveform and its time points follow that potential's
      (:func:`_relative_mcd`'s robust MCD at most :data:`_PHASE_MCD_FACTOR` × the
      timing-error MCD, or :data:`_PHASE_MCD_MIN_US`): a fibre's waveform is rigid,
      another fibre jitters against it by >= ~10 µs; or
    * it lies within a kept waveform and its time points follow a weighted mix of the
      kept potentials' (:func:`_follows_mixture`: a peak made of two fibres' phases); or
    * it lies within one's waveform, the current model (all potentials so far,
      templates fitted jointly) leaves only noise in its window
      (:data:`_RESIDUAL_ENERGY_RATIO`: a rigid waveform's phases all move together, so
      its template, which spans them, leaves nothing time-locked there), it is not
      clearly absent where they are all present (a fibre that blocks on its own, which
      the model may explain as well where it is present), it does not clearly
      jitter against all of them (:data:`_OWN_JITTER_FACTOR`) and, given its own time
      points, it does not explain most of that residual with a rise time that could
      be accepted (:func:`_explains_its_residual`: a broad fibre the kept templates
      hold blurred by its jitter). This test catches slow
      after-phases, whose own time points scatter too much for the first (other
      fibres' tails and background activity under them). A second fibre with no
      jitter at all is a phase by these tests.

    ``trigger_fit`` is the trigger's fit over these sweeps when already made (see
    :func:`_time_potential`).

    Returns
    -------
    kept : list of int
        Indices into ``groups`` of the potentials, increasing.
    timed : list of _Timed
        Their fits, in the same order.
    extents : list of (float, float)
        Their waveforms' extents (:func:`_waveform_extents` of their joint templates),
        in the same order (NaN for a potential kept alone).
    model : _Model or None
        The sweeps' DFT and the kept potentials' joint templates at the positions of
        their single fits (None when only one potential is kept).
    """
    first = trigger if trigger >= 0 else int(np.argmax([g.amplitude_v for g in groups]))
    order = [first] + sorted((j for j in range(len(groups)) if j != first),
                             key=lambda j: -groups[j].amplitude_v)
    spectra = np.fft.rfft(data, axis=1)
    length = data.shape[1]
    kept, timed, extents = [], [], None
    ref = float(np.median(sw.ref_pos))
    fit_half = _fit_half(params, fs_hz)
    for g in order:
        measured = _measure_potential(data, sw.ref_pos, groups[g], fit_half, g == trigger, params.block_fraction)
        if g != first:
            if extents is None:  # the joint templates of the potentials kept so far
                positions = np.array([k.positions for k in timed])
                tpl_spectra, left_spectra = joint_templates(spectra, positions, length, _JOINT_RIDGE)
                model = (positions, tpl_spectra, left_spectra)
                extents = _waveform_extents(tpl_spectra, positions, length, fs_hz)
                # what they leave in the sweeps, computed only when a residual is needed
                left = functools.cache(functools.partial(np.fft.irfft, left_spectra, n=length, axis=1))
            where = ref + groups[g].latency
            inside = [lo <= where <= hi for lo, hi in extents]
            # the model's residual in the group's window, computed at most once
            residual = functools.cache(lambda: _residual_energy_ratio(data, left(), sw.ref_pos,
                                                                      groups[g], sw.noise_sd))
            if any(inside) and groups[g].amplitude_v < _OWN_AMPLITUDE * groups[first].amplitude_v:
                # too small to be kept by the jitter override: the residual test decides
                # unless the group blocks on its own or, at its peaks' positions, explains
                # the residual (then judged again below, at its fitted positions and with
                # its rise time); no template fit is needed
                if not _blocks_alone(_clearly_absent(measured[3], groups[g], sw.noise_sd), timed) \
                        and residual() <= _RESIDUAL_ENERGY_RATIO \
                        and not _explains_its_residual(data, spectra, sw, timed, _peak_positions(measured, fs_hz),
                                                       groups[g], residual()):
                    continue
            if any(inside) and _rigid_by_peaks(measured, groups[g], timed, inside, sw.noise_sd, fs_hz):
                continue  # a phase, known without a template fit
        t = _time_potential(data, sw, groups[g], g == trigger, noise_spectra, fs_hz, params,
                            trigger_fit if g == trigger else None, measured,
                            avoid=[p for j, p in enumerate(groups) if j != g])
        if g != first:
            if np.isfinite(t.positions).sum() < 2:
                continue
            if _timed_on_another(t, groups[g]):
                continue
            if any(inside) and _is_phase(
                    t, groups[g], timed, inside, groups[first], fs_hz, residual,
                    lambda: t.shape[1] < params.max_rise_time_us  # (a fibre's slow phases explain it too)
                    and _explains_its_residual(data, spectra, sw, timed, t.positions, groups[g], residual())):
                continue
        kept.append(g)
        timed.append(t)
        extents = None
    if extents is None and len(timed) > 1:  # the last group considered was kept
        positions = np.array([k.positions for k in timed])
        model = (positions, *joint_templates(spectra, positions, length, _JOINT_RIDGE))
        extents = _waveform_extents(model[1], positions, length, fs_hz)
    elif extents is None:  # no group followed the first
        model, extents = None, [(np.nan, np.nan)]
    order = np.argsort(kept)
    if model is not None:
        model = _Model(spectra, model[0][order], model[1][order], model[2])
    return [kept[i] for i in order], [timed[i] for i in order], [extents[i] for i in order], model


def _slow_phases(timed, fs_hz, max_rise_time_us):
    """Which kept potentials are slow phases of a larger one, and not reported as pairs.

    A potential whose rise time is not below ``max_rise_time_us`` and whose time points
    move rigidly with a larger kept potential's (:attr:`_Relative.rigid`) is that
    potential's phase. The selection's phase tests (:func:`_select_potentials`) could
    not judge it: it lies beyond every kept waveform (a fibre's slow tail ~1.4 ms after
    its spike, below 5 % of its peak), or the potential it follows was kept after it.
    It stays in the model — the joint fit, the other units' re-timing and the false
    references see its waveform — but is no pair (simulated: such pairs were rejected
    by their rise time, and ~1 recording in 20 reported one). A fast potential is
    never hidden so: one that does not jitter against the trigger at all is a
    measurement of its own (technical jitter, a split fibre).

    Parameters
    ----------
    timed : list of _Timed
    fs_hz : float
    max_rise_time_us : float

    Returns
    -------
    list of bool
    """
    return [not t.shape[1] < max_rise_time_us and any(
        r is not None and r.rigid for r in (_relative_mcd(t, u, fs_hz) for u in timed if u.shape[0] > t.shape[0]))
        for t in timed]


def _overlapping(timed, extents, fit_half):
    """Which potentials share waveform with another's fit segment.

    Potential j overlaps k when k's waveform (``extents``, :func:`_waveform_extents` of
    the joint templates) reaches into j's fit segment (median position ± ``fit_half``),
    or the other way round.

    Returns
    -------
    ndarray of bool, shape (K,)
    """
    centre = [fast_median(t.positions[np.isfinite(t.positions)]) for t in timed]
    out = np.zeros(len(timed), bool)
    for j in range(len(timed)):
        for k in range(len(timed)):
            if j != k and extents[k][0] <= centre[j] + fit_half and extents[k][1] >= centre[j] - fit_half:
                out[j] = out[k] = True
    return out


@dataclass(frozen=True)
class _TimingErrors:
    """Error covariance of the kept potentials' time points, to first order.

    Potentials timed by the joint fit (``in_joint``) take their covariance, across
    potentials and sweeps, from it (:class:`~sfemg.analysis.joint.ShiftCovariance`);
    the others, and those in sweeps the joint fit left out, are taken as independent
    from sweep to sweep with their single fit's variance (its bound inflated by its
    misfit, :func:`_misfit`).
    """

    joint: ShiftCovariance | None
    in_joint: np.ndarray      # (K,) bool
    timing_var: np.ndarray    # (K,) samples^2

    @classmethod
    def single(cls, timed):
        """Every potential on its own fit (no joint fit)."""
        return cls(None, np.zeros(len(timed), bool), np.array([t.timing_var for t in timed]))

    def subset(self, keep):
        """The same for the discharges ``keep`` (bool, shape (n,)) only."""
        return self if self.joint is None else dataclasses.replace(self, joint=self.joint.subset(keep))

    def mcd_sd_s(self, ipis_s, potential, reference, fs_hz):
        """SD of the MCD of ``ipis_s`` that timing error alone produces (delta method:
        :func:`~sfemg.analysis.jitter.mcd_gradient` through the time points' covariance).

        Parameters
        ----------
        ipis_s : ndarray, shape (n,)
            Intervals (time point of ``potential`` less the reference), s; NaN if blocked.
        potential : int
            Index of the timed potential.
        reference : int
            Index of the potential the intervals are measured from, or -1 (a stimulus,
            exact).
        fs_hz : float
            Sampling rate, Hz.

        Returns
        -------
        float
            s; inf where a potential it depends on has no finite timing variance.
        """
        gradient = mcd_gradient(ipis_s)
        weights = np.zeros((self.timing_var.size, gradient.size))
        weights[potential] += gradient
        if reference >= 0:
            weights[reference] -= gradient
        var = 0.0
        independent = np.broadcast_to(~self.in_joint[:, None], weights.shape)
        if self.joint is not None:
            var += self.joint.variance(np.where(self.in_joint[:, None], weights, 0.0))
            independent = independent | ~self.joint.free()
        used = independent & (weights != 0)  # (a potential with no bound adds nothing where unused)
        var += float(np.sum(weights[used] ** 2 * np.broadcast_to(self.timing_var[:, None], weights.shape)[used]))
        return np.sqrt(var) / fs_hz


def _joint_timing(data, sw, timed, extents, spectra, fs_hz, params):
    """Time points of overlapping potentials from the joint fit of all kept potentials
    (:func:`~sfemg.analysis.joint.joint_positions`); the others keep their own fits.

    The single-template fit of a potential with another fibre's waveform in its segment
    is dragged towards that fibre (docs/analysis.md §6). Potentials clear of each other
    keep their own fits, which already reach the Cramér–Rao bound (and, at 25 kHz, model
    the aliased image, which the joint fit does not), and so do potentials smaller than
    :data:`_JOINT_MIN_SNR` noise SDs (the joint fit runs where two larger ones overlap).
    Every kept potential enters the joint model, also those that will fail acceptance:
    leaving them out (mostly slow phases) made the simulated studies worse (within
    max(0.5 µs, 3 %) 65 -> 53 %).

    Parameters
    ----------
    data : ndarray, shape (n, L)
        Sweeps, V.
    sw : _Sweeps
    timed : list of _Timed
        The kept potentials' single fits.
    extents : list of (float, float)
        Their waveforms' extents (from :func:`_select_potentials`).
    spectra : dict
        Noise-spectrum cache (:func:`_noise_power`).
    fs_hz : float
    params : AnalysisParams

    Returns
    -------
    timed : list of _Timed
        ``timed`` with the time points and positions of the overlapping potentials replaced.
    errors : _TimingErrors
        Their error covariance (the joint fit's for those it timed).
    """
    single = _TimingErrors.single(timed)
    large = np.array([t.shape[0] >= _JOINT_MIN_SNR * sw.noise_sd for t in timed])
    if large.sum() < 2:
        return timed, single
    fit_half = _fit_half(params, fs_hz)
    update = np.zeros(len(timed), bool)  # large potentials overlapping another large one
    update[large] = _overlapping([t for t, big in zip(timed, large) if big],
                                 [e for e, big in zip(extents, large) if big], fit_half)
    if not update.any():
        return timed, single
    positions = np.array([t.positions for t in timed])
    noise_power = _noise_power(sw, 2 * fit_half + 1, spectra)[0]
    joint, covariance = joint_positions(data, positions, noise_power, fs_hz, fit_half)
    timed = [dataclasses.replace(t, positions=p, times_s=sw.start_s + p / fs_hz) if u else t
             for t, p, u in zip(timed, joint, update)]
    return timed, dataclasses.replace(single, joint=covariance, in_joint=update & (covariance is not None))


def _sweeps_less(model, positions, potentials, n_cols):
    """The sweeps less some potentials' joint templates placed at their positions.

    Parameters
    ----------
    model : _Model
    positions : ndarray, shape (K, n)
        Every kept potential's positions, samples; NaN where absent.
    potentials : list of int
        Which potentials to subtract.
    n_cols : int
        Sweep length, samples.

    Returns
    -------
    ndarray, shape (n, n_cols)
        V.
    """
    if len(potentials) == len(positions) and np.array_equal(positions, model.positions, equal_nan=True):
        left = model.residual_spectra  # all of them, where the model placed them
    else:
        left = model_residual(model.spectra, model.template_spectra[potentials], positions[potentials], n_cols)
    return np.fft.irfft(left, n=n_cols, axis=1)


def _found_without_the_others(model, sw, pots, timed, trigger, spectra, fs_hz, params):
    """Blocks decided again with the unit's other potentials taken out of the sweeps.

    Another fibre's waveform can hide a potential that is present: its opposite phase
    cancels the potential's peak in its window, or, where the potential fires off its
    latency (an excursion, :func:`_excursions`), the overlap changes its scale and shape
    beyond those of its own discharges. And it can stand in for one that is blocked:
    another fibre's slow phase in a jittery potential's wide window passes for it. For
    each potential other than the trigger:

    * **present where it is clearly absent** from its search window
      (:func:`_clearly_absent`) once the potentials that move against it (not
      :attr:`_Relative.rigid`) are subtracted, at their positions, as joint templates:
      those discharges become blocks. Not

      - with the rigid ones subtracted too: one fibre's potentials kept apart hold each
        other's waveform in their joint templates (on stimulated concentric recordings
        that dropped true responses: false blocks 7 -> 20);
      - for its excursions, found outside that window (:func:`_excursions`), which is
        empty in them by definition (found in review: a LEMS excursion 612 µs off was
        dropped so);
      - where that would leave it in fewer than half of its discharges: then it is
        made of the others' waveforms, which the selection decided otherwise.

    * **blocked where it is found** once every other potential is subtracted
      (:func:`_time_potential`, the excursion search included, other potentials'
      presence judged on the recorded sweeps): those discharges take the fresh time
      point, moved onto the first fit's reference point by the median difference
      between the two fits over the discharges both hold (the fresh template's peak
      need not be the first one's: the others' joint templates carry part of its
      waveform). This search only takes blocks back: deciding presence afresh on those
      sweeps dropped discharges that are there (simulated seeds 1-6: false blocks
      29 -> 38, against 29 -> 23 taking back only).

    Positions changed for one potential count in the sweeps the next ones are sought
    in (whether another potential moves against it is judged on the first fits);
    joint timing (:func:`_joint_timing`) then refines them with the rest.

    Parameters
    ----------
    model : _Model or None
        From :func:`_select_potentials` (None with a single potential: nothing to do).
    sw : _Sweeps
        The sweeps (``sw.data_v`` as recorded).
    pots : list of LockedPotential
        The kept potentials.
    timed : list of _Timed
        Their fits (positions as in ``model``).
    trigger : int
        Index of the trigger in ``pots`` (-1 for stimulated recordings); it is left as it is.
    spectra : dict
        Noise-spectrum cache (:func:`_noise_power`).
    fs_hz : float
        Sampling rate, Hz.
    params : AnalysisParams

    Returns
    -------
    list of _Timed
        ``timed`` with the blocks decided again.
    """
    if model is None:
        return timed
    n_cols = sw.data_v.shape[1]
    positions = np.array([t.positions for t in timed])
    out = list(timed)
    for j, t in enumerate(timed):
        if j == trigger:
            continue
        others = [k for k in range(len(timed)) if k != j]
        relative = [_relative_mcd(timed[k], t, fs_hz) for k in others]
        movers = [k for k, r in zip(others, relative) if r is None or not r.rigid]
        # (the movers are most often all the others: computed once)
        rest = functools.cache(functools.partial(_sweeps_less, model, positions, others, n_cols))
        if movers:
            less_movers = rest() if movers == others else _sweeps_less(model, positions, movers, n_cols)
            peaks = _measure_potential(less_movers, sw.ref_pos, pots[j], _fit_half(params, fs_hz), False,
                                       params.block_fraction)[3]
            lost = np.isfinite(t.positions) & ~t.excursions & _clearly_absent(peaks, pots[j], sw.noise_sd)
            if lost.any() and 2 * lost.sum() < np.isfinite(t.positions).sum():
                positions[j, lost] = np.nan
                t = out[j] = dataclasses.replace(t, positions=positions[j].copy(),
                                                 times_s=np.where(lost, np.nan, t.times_s))
        blocked = ~np.isfinite(t.positions)
        if not blocked.any():
            continue
        again = _time_potential(rest(), sw, pots[j], False, spectra, fs_hz, params,
                                avoid=[pots[k] for k in others])
        found = blocked & np.isfinite(again.positions)
        both = ~blocked & np.isfinite(again.positions)
        if not (found.any() and both.any()):
            continue
        offset = fast_median(again.positions[both] - t.positions[both])
        positions[j] = np.where(found, again.positions - offset, t.positions)
        out[j] = dataclasses.replace(t, positions=positions[j].copy(), times_s=sw.start_s + positions[j] / fs_hz,
                                     excursions=np.where(found, again.excursions, t.excursions))
    return out


def _retime_superimposed(model, sw, timed, trigger, fs_hz, params):
    """Re-time the discharges with another unit's potential on a potential of the unit,
    and seek it where such a potential made it look blocked
    (:mod:`~sfemg.analysis.superimposed`): continuous recordings (voluntary or
    stimulated), whose signal between the sweeps shows the other units' potentials.

    The model is every kept potential's joint template (estimated at the selection's
    positions) at its final positions (joint timing moves them by µs); the other units'
    templates come from the candidate peaks (``sw.busy_cols``) farther than a template's
    half length from every sweep. A potential present in at least two discharges (the
    trigger too) is re-timed from its median position relative to the reference as well
    (its fitted one may be on the other unit's potential); one other than the trigger is
    sought in a discharge it is missing from
    (:func:`~sfemg.analysis.superimposed.find_superimposed`) when the model's residual
    there, around its median position relative to the reference, is flagged as in a
    discharge it is present in (:func:`~sfemg.analysis.superimposed.flag_superimposed`):
    something else lies where it would be.

    Parameters
    ----------
    model : _Model or None
        From :func:`_select_potentials` (None with a single potential: nothing to do).
    sw : _Sweeps
    timed : list of _Timed
        The kept potentials, with their final time points.
    trigger : int
        Index of the trigger in ``timed`` (-1 for stimulated recordings): never sought.
    fs_hz : float
    params : AnalysisParams

    Returns
    -------
    list of _Timed
        ``timed`` with the re-timed and the found discharges' time points and positions
        changed.
    """
    if model is None or sw.noise_v.shape[0] != 1 or params.superimposed_ratio <= 0:
        return timed
    n_cols = sw.data_v.shape[1]
    background = background_templates(sw.noise_v[0], sw.busy_cols,
                                      np.sort(np.round(sw.start_s * fs_hz).astype(np.int64)), n_cols, fs_hz,
                                      params.detect_threshold_sd * sw.noise_sd)
    if background.shape[0] == 0:
        return timed
    positions = np.array([t.positions for t in timed])
    fit_half = _fit_half(params, fs_hz)
    # (joint timing moves them by µs, blocks decided again add or drop some: the
    # templates stay)
    residual = _sweeps_less(model, positions, list(range(len(timed))), n_cols)
    flagged = flag_superimposed(residual, positions, sw.noise_sd, fs_hz, params.superimposed_ratio)
    present = np.isfinite(positions)
    typical = np.full(positions.shape, np.nan)  # the median position relative to the reference
    for k, p in enumerate(positions):
        if present[k].sum() >= 2:
            typical[k] = sw.ref_pos + fast_median(p[present[k]] - sw.ref_pos[present[k]])
    new = retime_superimposed(residual, positions, typical, model.template_spectra, flagged, background, fs_hz,
                              fit_half)
    expected = np.where(present, np.nan, typical)
    if trigger >= 0:  # (present in every discharge as a rule: never sought)
        expected[trigger] = np.nan
    hidden = flag_superimposed(residual, positions, sw.noise_sd, fs_hz, params.superimposed_ratio, at=expected)
    found = find_superimposed(residual, expected, model.template_spectra, hidden, background, fs_hz, fit_half,
                              params.block_fraction)
    new = np.where(np.isfinite(found), found, new)
    changed = np.isfinite(new) & (new != positions)
    return [dataclasses.replace(t, positions=p, times_s=np.where(c, sw.start_s + p / fs_hz, t.times_s),
                                clearly_absent=t.clearly_absent & ~np.isfinite(f))
            if c.any() else t for t, p, c, f in zip(timed, new, changed, found)]


def _noise_power(sw, length, spectra):
    """Noise spectrum for fit segments of ``length`` samples, cached in ``spectra``.

    Parameters
    ----------
    sw : _Sweeps
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


def _trigger_discharges(sw, pot, spectra, fs_hz, params):
    """The voluntary sweeps that hold a discharge of the trigger potential.

    The trigger's amplitude group can take in discharges of another unit (or of another
    fibre of the same unit) whose peaks are of similar height; those sweeps hold no
    time-locked potential and would count as blocks of every pair. A sweep is a trigger
    discharge if the trigger's template fits it at least ``block_fraction`` of the
    :data:`_TRIGGER_SCALE_PERCENTILE` th percentile of the scales (the trigger's own
    size even when other units' discharges are the majority) with a correlation of at
    least :data:`_MIN_SHAPE_CORRELATION` (on the simulated studies: true discharges at
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
    _Sweeps
        The trigger discharges: ``sw`` itself if none is dropped (or fewer than two pass).
    _Sweeps or None
        The sweeps dropped (None when they are fewer than :data:`_MIN_TRIGGER_COUNT`,
        or when none is dropped).
    TemplateFit
        The trigger's fit over all of ``sw``'s sweeps (its time points when none is dropped).
    """
    fit_half = _fit_half(params, fs_hz)
    _, _, segs, _ = _measure_potential(sw.data_v, sw.ref_pos, pot, fit_half, True, params.block_fraction)
    fit = fit_template(segs, _noise_power(sw, segs.shape[1], spectra)[0])
    ok = (fit.amplitudes >= params.block_fraction * np.percentile(fit.amplitudes, _TRIGGER_SCALE_PERCENTILE)) \
        & (fit.correlations >= _MIN_SHAPE_CORRELATION)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_scale = np.log(np.where(ok, fit.amplitudes, np.nan))
    d, threshold = two_group_split(log_scale, _TRIGGER_SPLIT_FRACTION)
    d_robust = two_group_split(log_scale, _TRIGGER_SPLIT_FRACTION, robust=True)[0]
    upper, lower = log_scale > threshold, log_scale <= threshold
    if max(d, d_robust) > _TRIGGER_SPLIT_D and upper.sum() >= _MIN_TRIGGER_COUNT \
            and np.median(log_scale[upper]) - np.median(log_scale[lower]) > _TRIGGER_SPLIT_LOG_SCALE:
        ok = upper
    if ok.all() or ok.sum() < 2:
        return sw, None, fit
    return _subset(sw, ok), _subset(sw, ~ok) if np.sum(~ok) >= _MIN_TRIGGER_COUNT else None, fit


def _subset(sw, rows):
    """The sweeps ``rows`` (boolean mask) of ``sw``."""
    return _Sweeps(sw.data_v[rows], sw.start_s[rows], sw.ref_pos[rows], sw.ref_times_s[rows], sw.noise_v,
                   sw.busy_rows, sw.busy_cols, sw.noise_sd)


def _false_references(data, sw, pots, trigger, times, rise_times_us, fs_hz, params):
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
    sw : _Sweeps
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
    fit_half = _fit_half(params, fs_hz)
    for j in others:
        moved = dataclasses.replace(pots[trigger], latency=2.0 * pots[trigger].latency - pots[j].latency)
        if any(abs(moved.latency - p.latency) <= p.half_window + moved.half_window for p in pots):
            continue  # another potential's place: its presence there says nothing
        centre = np.round(sw.ref_pos[rows] + moved.latency)
        inside = (centre - moved.half_window - fit_half >= 0) & (centre + moved.half_window + fit_half < n_cols)
        present = _measure_potential(data[rows], sw.ref_pos[rows], moved, fit_half, False, params.block_fraction)[0]
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
    :data:`_ELSEWHERE_MIN_LAG_US`: not judged), and at least :data:`_MIN_TRIGGER_COUNT`
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
    if not missing.any() or (~missing).sum() < _MIN_TRIGGER_COUNT:
        return false
    ref = np.round(ref_pos).astype(np.int64)
    margin = int(round(0.5e-3 * fs_hz))
    lo = int(np.floor(min(p.latency for p in pots))) - margin
    hi = int(np.ceil(max(p.latency for p in pots))) + margin + 1
    lag = min(int(round(_ELSEWHERE_LAG_US * 1e-6 * fs_hz)), int((ref + lo).min()), int(n_cols - (ref + hi).max()))
    min_lag = int(round(_ELSEWHERE_MIN_LAG_US * 1e-6 * fs_hz))
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
        of the pairs that count for "every pair blocked" (:func:`_false_references`:
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
    if intervals_s.size < _MIN_TRIGGER_COUNT or not inner.any():
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


def _analyze_sweeps(name, sw: _Sweeps, fs_hz, mode, params, recording=None, triggers_checked=False):
    """Everything after the sweeps are cut: potentials, time points, pairs.

    Voluntary sweeps that hold no discharge of the trigger potential
    (:func:`_trigger_discharges`) are dropped and the rest analysed afresh (the dropped
    ones too, with their own trigger check, if the rest hold no time-locked potential).
    Discharges whose reference is another fibre's potential (:func:`_false_references`)
    are left out of the pairs' discharges.
    """
    data = sw.data_v
    n, n_cols = data.shape
    noise_sd = sw.noise_sd
    rows, cols = _candidates(data, noise_sd, fs_hz, params)
    lat = cols - sw.ref_pos[rows]
    if mode == "stimulated":
        keep = lat > params.artefact_blank_ms * 1e-3 * fs_hz
        rows, cols, lat = rows[keep], cols[keep], lat[keep]
    lock_half = max(1, int(round(params.lock_half_window_us * 1e-6 * fs_hz)))
    amps = peak_values(data, rows, cols)
    pots = []  # each polarity separately: every phase of every potential is a group
    for sign in (1.0, -1.0):
        keep = amps * sign > 0
        pots += find_locked_potentials(lat[keep], amps[keep], n, lock_half=lock_half,
                                       min_fraction=params.min_locked_fraction)
    pots.sort(key=lambda p: p.latency)
    trigger = -1
    if mode == "voluntary":
        if pots:
            trigger = int(np.argmin([abs(p.latency) for p in pots]))
        if trigger < 0 or abs(pots[trigger].latency) > lock_half:
            raise SfemgInputError("no potentials found: the trigger potential is not consistent")
    elif not pots:
        raise SfemgInputError("no potentials found: no response time-locked to the stimuli")
    spectra = {}
    trigger_fit = None
    if mode == "voluntary" and not triggers_checked:
        true_sw, rest, trigger_fit = _trigger_discharges(sw, pots[trigger], spectra, fs_hz, params)
        if true_sw is not sw:
            attempts = [functools.partial(_analyze_sweeps, name, true_sw, fs_hz, mode, params, recording,
                                          triggers_checked=True)]
            if rest is not None:  # the other potential's sweeps, with their own trigger check
                attempts.append(functools.partial(_analyze_sweeps, name, rest, fs_hz, mode, params, recording))
            return _first_accepted(attempts)
    kept, timed, extents, model = _select_potentials(data, sw, pots, trigger, spectra, fs_hz, params, trigger_fit)
    if mode == "voluntary" and len(kept) < 2:
        raise SfemgInputError("no potentials found time-locked to the trigger potential")
    pots = [pots[j] for j in kept]
    trigger = kept.index(trigger) if trigger >= 0 else -1
    if params.method == "template" and params.joint_timing:
        timed = _found_without_the_others(model, sw, pots, timed, trigger, spectra, fs_hz, params)
        timed, errors = _joint_timing(data, sw, timed, extents, spectra, fs_hz, params)
        timed = _retime_superimposed(model, sw, timed, trigger, fs_hz, params)
    elif params.method == "template":
        errors = _TimingErrors.single(timed)
    else:  # the interpolated peak and level crossing are not at the bound: not known
        errors = None
    times = [t.times_s for t in timed]
    slow_phase = _slow_phases(timed, fs_hz, params.max_rise_time_us)
    excursions = [t.excursions for t in timed]
    crb = [t.crb_var for t in timed]
    shapes = [t.shape for t in timed]
    templates = [t.template for t in timed]
    lats = np.array([p.latency for p in pots])
    ref_t = times[trigger] if mode == "voluntary" else sw.ref_times_s
    idis = np.r_[np.nan, np.diff(ref_t)]
    irregular = None  # the reference discharges of two units, most likely
    if mode == "voluntary":
        intervals = idis[np.isfinite(idis)]  # (level-method time points can be NaN)
        short = intervals < params.irregular_interval_ratio * fast_median(intervals)
        if short.size and short.mean() > params.irregular_fraction:
            irregular = (f"trigger: {short.sum()} of {short.size} intervals < {params.irregular_interval_ratio:g}"
                         " x median (two units?)")
        # the templates and fits stay as they are: the trigger's own has another fibre's
        # potential in one sweep of a hundred, and the others are missing from those sweeps
        real = ~_false_references(data, sw, pots, trigger, times, [shape[1] for shape in shapes], fs_hz, params)
        if not real.all() and real.sum() >= 2:
            sw, times, ref_t = _subset(sw, real), [t[real] for t in times], ref_t[real]
            errors = errors.subset(real) if errors is not None else None
            excursions = [e[real] for e in excursions]
            data, n = sw.data_v, int(real.sum())
            idis = np.r_[np.nan, np.diff(ref_t)]
    pairs = []
    for j, pot in enumerate(pots):
        if j == trigger or slow_phase[j]:
            continue
        ipis = times[j] - ref_t
        blocked = ~np.isfinite(ipis)
        mcd = compute_mcd(ipis)
        if mode == "voluntary":
            msd = compute_msd(ipis, idis)
            var = crb[j] + crb[trigger]
            label = f"P{trigger + 1}-P{j + 1}"
        else:
            msd = float("nan")
            var = crb[j]
            label = f"R{j + 1}"
        jitter, ratio = reported_jitter(mcd, msd, params.msd_ratio_threshold)
        tech_us = MCD_PER_SD * np.sqrt(var) / fs_hz * 1e6
        mcd_sd_us = (errors.mcd_sd_s(ipis, j, trigger if mode == "voluntary" else -1, fs_hz) * 1e6
                     if errors is not None and np.isfinite(mcd) else float("nan"))
        reasons = _acceptance(*shapes[j], params, "")
        if mode == "voluntary":
            reasons += _acceptance(*shapes[trigger], params, "trigger: ")
        flags = []
        n_blocked = int(blocked.sum())
        n_pairs_ok = int(np.sum(np.isfinite(np.diff(ipis))))
        if n_blocked == n:
            flags.append("all-blocked")
            reasons.append("every discharge blocked")
        if n_pairs_ok + 1 < params.min_discharges:
            flags.append("few-discharges")
        if np.isfinite(mcd) and mcd * 1e6 < params.low_mcd_us:
            flags.append("low-mcd")
            reasons.append(f"MCD below {params.low_mcd_us:g} µs (split fibre or direct muscle stimulation)")
        if flip_flop_separation(ipis) > params.flip_flop_separation:
            flags.append("flip-flop")
        if irregular:
            flags.append("irregular-firing")
            reasons.append(irregular)
        if excursions[j].any():
            flags.append("latency-excursions")
        pairs.append(PairResult(
            fibre=j, label=label, mcd_us=mcd * 1e6, msd_us=msd * 1e6, mcd_msd_ratio=ratio,
            jitter_us=jitter * 1e6, mean_ipi_us=float(np.nanmean(ipis)) * 1e6 if n_blocked < n else float("nan"),
            technical_jitter_us=float(tech_us), mcd_uncertainty_us=float(mcd_sd_us),
            blocking_percent=100.0 * n_blocked / n,
            n_discharges=n, n_blocked=n_blocked, accepted=not reasons,
            reject_reasons=tuple(reasons), flags=tuple(flags), amplitude_v=shapes[j][0],
            rise_time_us=shapes[j][1], ipis_s=ipis, idis_s=idis, blocked=blocked,
            reference_times_s=ref_t, time_points_s=times[j]))
    if not pairs:  # every other potential a slow phase of the trigger (the largest response never is)
        raise SfemgInputError("no potentials found time-locked to the trigger potential")
    if all("all-blocked" in p.flags for p in pairs):
        raise SfemgInputError("every discharge blocked: no potential could be timed")
    # templates centred on their peak, on a common axis
    half = max(int(np.ceil(max(max(r, tpl.size - 1 - r) for tpl, r in templates))), 1)
    axis = np.arange(-half, half + 1)
    tpl_out = np.vstack([np.interp(axis + r, np.arange(tpl.size), tpl, left=0.0, right=0.0)
                         for tpl, r in templates])
    ref_int = np.round(sw.ref_pos).astype(np.int64)
    pre = int(ref_int.min())
    post = int((n_cols - 1 - ref_int).min())
    aligned = data[np.arange(n)[:, None], ref_int[:, None] + np.arange(-pre, post + 1)[None, :]]
    return RecordingResult(
        name=name, mode=mode, fs_hz=float(fs_hz), method=params.method, pairs=tuple(pairs),
        reference_times_s=ref_t, idis_s=idis, noise_rms_v=float(spectra[min(spectra)][1]),
        potential_latencies_s=lats / fs_hz, timing_sd_s=np.sqrt(np.asarray(crb)) / fs_hz,
        templates_v=tpl_out, template_time_s=axis / fs_hz,
        aligned_sweeps_v=aligned, sweep_time_s=np.arange(-pre, post + 1) / fs_hz,
        trigger_fibre=trigger,
        muscle=recording.muscle if recording is not None else params.muscle,
        electrode=params.electrode)


def analyze_signal(signal_v, fs_hz, *, mode="voluntary", stimulus_times_s=None, params=None,
                   name="signal") -> RecordingResult:
    """Jitter analysis of one continuous recording.

    Parameters
    ----------
    signal_v : array_like of float, shape (n_samples,)
        The recording, V (high-pass filtered as usual for SFEMG).
    fs_hz : float
        Sampling rate, Hz (at least :data:`~sfemg.analysis.params.MIN_FS_HZ`).
    mode : {"voluntary", "stimulated"}
        Voluntary: pairs of the trigger potential with each potential time-locked to it.
        Stimulated: each response time-locked to the stimuli (one endplate each).
    stimulus_times_s : array_like, shape (n_stimuli,), optional
        Stimulus times, s (required for ``mode="stimulated"``).
    params : AnalysisParams, optional
    name : str
        Name given to the result.

    Returns
    -------
    RecordingResult

    Raises
    ------
    SfemgInputError
        Bad samples or sampling rate, no potentials found, every discharge blocked.
    """
    params = params or AnalysisParams()
    x = _check_signal(signal_v, fs_hz, mode, stimulus_times_s)
    return _analyze_continuous(name, x, float(fs_hz), mode, stimulus_times_s, params)


def analyze_recording(rec: Recording, params=None) -> RecordingResult:
    """Jitter analysis of a :class:`~sfemg.recording.Recording` (continuous or sweeps).

    Parameters
    ----------
    rec : Recording
        Its ``mode`` selects voluntary or stimulated analysis; for stimulated sweeps the
        stimulus is at ``stimulus_times_s`` or, if absent, at each sweep's start; voluntary
        sweeps each hold a discharge of the trigger potential.
    params : AnalysisParams, optional

    Returns
    -------
    RecordingResult
    """
    params = params or AnalysisParams()
    _check_fs(rec.fs_hz)
    if not rec.is_sweeps:  # a Recording's samples are already checked: 1-D, finite float64
        return _analyze_continuous(rec.name, rec.signal_v, rec.fs_hz, rec.mode, rec.stimulus_times_s, params, rec)
    sw = _sweep_input(rec, params, estimate_noise_sd(rec.sweeps_v))
    return _analyze_sweeps(rec.name, sw, rec.fs_hz, rec.mode, params, rec)
