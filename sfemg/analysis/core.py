"""Analysis of one recording: discharges → potentials → time points → jitter per pair.

The steps, each in its own module: the recording cut into sweeps (:mod:`.sweeps`), the
trigger's true discharges (:mod:`.references`), the time-locked potentials and their
phases (:mod:`.selection`, each potential timed by :mod:`.potentials`), their time
points refined together (:mod:`.refine`), false references left out, and the pairs'
jitter, blocking and acceptance (here). Method: docs/analysis.md.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from scipy.special import betainc

from .._units import to_samples
from ..errors import SfemgInputError
from ..recording import Recording
from .detect import (
    estimate_noise_sd,
    estimate_sweeps_noise_sd,
    fast_median,
    find_locked_potentials,
    find_trigger,
    peak_values,
)
from .jitter import MCD_PER_SD, compute_mcd, compute_msd, flip_flop_separation, reported_jitter
from .limits import canonical_electrode
from .params import checked_params
from .potentials import clipped_discharges, waveform_shape
from .references import false_references, keep_references, trigger_discharges
from .refine import TimingErrors, refine_time_points
from .results import PairResult, RecordingResult
from .selection import outside_waveforms, select_potentials, slow_phases
from .sweeps import (
    MIN_TRIGGER_COUNT,
    Sweeps,
    check_fs,
    check_signal,
    discharge_sweeps,
    find_candidates,
    fit_half_window,
    noise_spectrum,
    preceding_intervals,
    prepared_input,
    rows_after_stimuli,
    stimulus_sweeps,
    subset_sweeps,
    sweep_input,
)

__all__ = ["analyze_signal", "analyze_recording"]

#: Consistent potentials of a continuous voluntary recording tried as the trigger,
#: biggest first, while their analysis fails (no time-locked potential found, ...).
_TRIGGER_CHOICES = 3
#: How to reach what lies past the search window (notes and errors).
_WIDEN = "widen the window (--search-window-ms)"
#: A blocking pair whose time points come this close to the search window's end, ms, is
#: noted (:func:`_at_the_window_edge`).
_EDGE_MS = 0.1
#: A response peaking this soon after the artefact's blank, ms, with its waveform
#: reaching back to the blank, is noted (:func:`_at_the_blank`). The artefact tails of
#: a review peaked 0.16-0.5 ms after it; a simulated LEMS response of 4.9 mV at 3.1 ms,
#: whose slow phases reach back 2.7 ms at 5 % of its peak, is no tail.
_BLANK_REACH_MS = 0.6
#: Stimulated recordings are probed for responses past their search window up to this
#: many windows after the stimulus (:func:`_probe_past_the_window`), not only as far as the
#: sweeps reach (a fit half-window further).
_PROBE_WINDOWS = 3.0


#: Stimuli after which every accepted response of a recording is absent are taken for
#: stimuli that did not excite the axon (:func:`_stimulus_failures`) when there are at least
#: this many of them ...
_FAILURES_MIN = 3
#: ... and independent blocks of the endplates would give as many this rarely (binomial tail).
_FAILURES_P = 1e-3


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


def recording_electrode(rec, electrode=None):
    """The electrode a recording is analysed for: ``electrode`` (an override) or the
    recording's own, canonical; None where neither says (the parameters' then)."""
    return canonical_electrode(electrode) or canonical_electrode(rec.electrode)


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
    x, saturation = prepared_input(x, np.zeros(1), fs_hz, params)
    noise_sd = estimate_noise_sd(x)
    if mode == "stimulated":
        sw = stimulus_sweeps(x, fs_hz, stimulus_times_s, params, noise_sd, saturation)
        result = _analyze_sweeps(name, sw, fs_hz, mode, params, recording)
        return dataclasses.replace(result, notes=_incomplete_sweeps(sw, np.size(stimulus_times_s), fs_hz)
                                   + result.notes)
    rows, cols = find_candidates(x, noise_sd, fs_hz, params)
    if cols.size == 0:
        raise SfemgInputError("no potentials found above the detection threshold")
    choices = find_trigger(peak_values(x, rows, cols), cols, fs_hz, MIN_TRIGGER_COUNT, params.min_idi_ms,
                           _TRIGGER_CHOICES)

    def with_trigger(member):
        sw = discharge_sweeps(x, cols[member], rows, cols, fs_hz, params, noise_sd)
        return _analyze_sweeps(name, dataclasses.replace(sw, saturation=saturation), fs_hz, mode, params,
                               recording)

    return _first_accepted(functools.partial(with_trigger, m) for m in choices)


def _incomplete_sweeps(sw, n_stimuli, fs_hz):
    """A note where stimuli were left out for lying outside the recording or too near its
    start or end for a whole sweep (``sw`` holds the others; ``n_stimuli`` were given): without it, a
    study of 50 stimuli whose last sweep the widened window no longer fitted in read 49
    discharges and "few-discharges" unexplained (simulated, 8.9 ms recorded after the
    last stimulus, an 8 ms window)."""
    left_out = n_stimuli - sw.ref_times_s.size
    if not left_out:
        return ()
    before_ms = float(np.median(sw.ref_pos)) / fs_hz * 1e3
    after_ms = sw.data_v.shape[1] / fs_hz * 1e3 - before_ms
    return (f"{left_out} of {n_stimuli} stimuli left out: outside the recording or too near its start or end for a "
            f"whole sweep ({before_ms:.2f} ms before the stimulus to {after_ms:.2f} ms after it)",)


def _clipping(n_clipped, levels, who):
    """Why a potential that reaches the clipping levels in ``n_clipped`` discharges is
    rejected (its waveform flattened, its time points biased), prefixed by ``who``."""
    if not n_clipped:
        return []
    at = " / ".join(f"{v * 1e3:+.3g}" for v in levels if np.isfinite(v))
    return [f"{who}clipped in {n_clipped} discharge(s): the samples saturate at {at} mV"]


def _acceptance(amplitude_v, rise_us, notched, params, who):
    """Why a potential of this shape is rejected (``params``' acceptance criteria), each
    reason prefixed by ``who``; empty when it is accepted."""
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


def _within_search_window(pots, mode, fs_hz, params):
    """The time-locked potentials within ``search_window_ms`` of the reference (after
    the stimulus, or either side of the trigger), and those past it. A sweep may hold
    more (a stimulated one is cut to the window plus the fit half-window): a response
    found there, past the window, was timed on segments padded with the sweep's last
    sample, reported twice, both copies accepted, MCD -18 to -50 % with false blocks.

    Parameters
    ----------
    pots : list of LockedPotential
    mode : {"voluntary", "stimulated"}
    fs_hz : float
    params : AnalysisParams

    Returns
    -------
    within, past : list of LockedPotential
    """
    search = params.search_window_ms * 1e-3 * fs_hz
    inside = [(p.latency if mode == "stimulated" else abs(p.latency)) <= search for p in pots]
    return [p for p, i in zip(pots, inside) if i], [p for p, i in zip(pots, inside) if not i]


def _past_the_window(past, mode, fs_hz, params):
    """What lies past the search window (``past``, LockedPotential), for a note or an
    error message."""
    what = "responses time-locked to the stimuli" if mode == "stimulated" else "potentials time-locked to the trigger"
    where = ", ".join(f"{p.latency / fs_hz * 1e3:.2f}" for p in past)
    return f"{what} at {where} ms lie past search_window_ms ({params.search_window_ms:g} ms)"


def _at_the_window_edge(pairs, mode, params):
    """Notes for the accepted blocking pairs (a rejected one's blocks count for nothing)
    whose time points reach within :data:`_EDGE_MS` of the
    search window's end: their later discharges lie past it and were taken for blocks
    (a review: an endplate blocking in 18 of 49 stimuli, its responses 4.6-5.2 ms after
    them, read 27 blocks and an MCD of 259 µs against 220 at the default 5 ms; 18 and
    219 µs at 6 ms)."""
    notes = []
    for p in pairs:
        latest_ms = np.nanmax(np.abs(p.ipis_s)) * 1e3 if p.n_blocked < p.n_discharges else np.nan
        if p.accepted and p.n_blocked and latest_ms > params.search_window_ms - _EDGE_MS:
            what = "latencies" if mode == "stimulated" else "intervals"
            notes.append(f"{p.label}: its {what} reach {latest_ms:.2f} ms, at the end of search_window_ms "
                         f"({params.search_window_ms:g} ms) or past it: later discharges may have been taken "
                         f"for blocks; {_WIDEN}")
    return tuple(notes)


def _at_the_blank(pairs, extents, sw, fs_hz, params):
    """A note for the rejected responses that peak within :data:`_BLANK_REACH_MS` of the
    end of the artefact's blank and whose waveforms (``extents``, by potential) reach
    back to it: the stimulus artefact's tail, which the running median did not follow,
    or a response the blank cuts. A review: a 20 mV artefact decaying over 0.4 ms,
    through the amplifier, left a slow pseudo-response at 1.5 ms and 31 false blocks of
    the accepted endplate behind it (MCD 28.6 µs against 16.5); with a 1.5 ms blank,
    16.1 µs and the 3 planted blocks. (An accepted response there is not noted: its
    template holds what is left of the tail, so its waveform reaches back to any blank
    that leaves some, and it is timed right.)"""
    end = sw.artefact_delay + params.artefact_blank_ms * 1e-3 * fs_hz  # samples after the stimulus
    latest_ms = end / fs_hz * 1e3 + _BLANK_REACH_MS
    stimulus = float(np.median(sw.ref_pos))
    reach = [p.mean_ipi_us * 1e-3 for p in pairs if not p.accepted
             and extents[p.fibre][0] - stimulus <= end and p.mean_ipi_us * 1e-3 <= latest_ms]
    if not reach:
        return ()
    return (f"responses at {', '.join(f'{ms:.2f}' for ms in reach)} ms reach back to the end of the artefact "
            f"blank (artefact_blank_ms {params.artefact_blank_ms:g} ms): the stimulus artefact's tail, or a "
            "response the blank cuts; a tail left in the sweeps can fake blocks of the responses after it: "
            "widen the blank (--artefact-blank-ms)",)


def _locked_groups(data, ref_pos, after, noise_sd_v, fs_hz, params):
    """The time-locked groups of candidate peaks in the rows ``data``, each polarity
    separately (:func:`~sfemg.analysis.detect.find_locked_potentials`), sorted by latency.

    Parameters
    ----------
    data : ndarray, shape (n, L)
        V.
    ref_pos : ndarray, shape (n,)
        Each row's reference (stimulus, trigger) position, samples: latencies are from it.
    after : float
        Candidates at latencies not above this are left out, samples (-inf: none).
    noise_sd_v : float
    fs_hz : float
    params : AnalysisParams

    Returns
    -------
    list of LockedPotential
    """
    rows, cols = find_candidates(data, noise_sd_v, fs_hz, params)
    lat = cols - ref_pos[rows]
    keep = lat > after
    rows, cols, lat = rows[keep], cols[keep], lat[keep]
    lock_half = _lock_half(fs_hz, params)
    amps = peak_values(data, rows, cols)
    groups = []
    for sign in (1.0, -1.0):
        keep = amps * sign > 0
        groups += find_locked_potentials(lat[keep], amps[keep], data.shape[0], lock_half=lock_half,
                                         min_fraction=params.min_locked_fraction)
    return sorted(groups, key=lambda g: g.latency)


def _lock_half(fs_hz, params):
    """Half-width of a time-locked group's latency box, samples (``lock_half_window_us``)."""
    return to_samples(params.lock_half_window_us * 1e-6, fs_hz, minimum=1)


def _probe_past_the_window(sw, fs_hz, params):
    """Responses time-locked to the stimuli past the search window, up to
    :data:`_PROBE_WINDOWS` windows after the stimulus (and a fit half-window before the
    next), sought in the continuous signal (``sw.signal_v``), its slow baseline taken out
    as the sweeps' is (:func:`~sfemg.analysis.sweeps.rows_after_stimuli`): the sweeps
    reach only a fit half-window past the window, and a response further out was missed
    without a word (a review: responses at 6.5 ms with the default 5 ms window were not
    mentioned, or, alone, gave "no response time-locked to the stimuli").

    Returns
    -------
    list of LockedPotential
        :func:`_fast_main_phases` of the groups found, latencies from the stimulus,
        samples; none where fewer than two stimuli have the signal for it.
    """
    x = sw.signal_v
    search = params.search_window_ms * 1e-3 * fs_hz
    margin = to_samples((params.max_rise_time_us + params.peak_window_us) * 1e-6, fs_hz, minimum=2)
    stimuli = np.round(sw.ref_times_s * fs_hz).astype(np.int64)
    shortest = np.diff(stimuli).min() if stimuli.size > 1 else 0
    last = min(_PROBE_WINDOWS * search, shortest - fit_half_window(params, fs_hz) - margin)
    lo, hi = int(search) - margin, int(last) + margin
    stimuli = stimuli[(stimuli + lo >= 0) & (stimuli + hi < x.size)]
    if last <= search or stimuli.size < 2:
        return []
    data = rows_after_stimuli(x, stimuli, lo, hi - lo + 1, fs_hz, params, sw.noise_sd)
    ref_pos = np.full(stimuli.size, float(-lo))
    groups = _locked_groups(data, ref_pos, -np.inf, sw.noise_sd, fs_hz, params)
    return _fast_main_phases(data, ref_pos, [g for g in groups if search < g.latency <= last], sw.noise_sd, fs_hz,
                             params)


def _fast_main_phases(data, ref_pos, groups, noise_sd_v, fs_hz, params):
    """Of time-locked ``groups`` past the search window, those that can be responses or
    fibres of their own: each potential's main phase (the largest group within
    ``max_rise_time_us``), if the rows' mean holds it (its peak in the group's window
    at least ``detect_threshold_sd`` of the mean's noise SD: noise peaks that pass for a
    group, where something lifts them over the threshold, average out) and, where that
    can be measured, it rises in less than ``max_rise_time_us`` (:func:`_rise_time_us`).
    Past the window no kept potential's waveform can be told from them by its slow
    phases (:func:`~sfemg.analysis.selection.select_potentials`): simulated stimulated
    recordings (six states, seeds 1-3, 360 recordings) noted a fibre's own slow
    after-phase, 1.25 ms after it (rise time 422 µs), as a response past the window in
    13.

    Parameters
    ----------
    data : ndarray, shape (n, L)
        Rows the groups were found in, V.
    ref_pos : ndarray, shape (n,)
        Their references, samples (the groups' latencies are from them).
    groups : list of LockedPotential
    noise_sd_v : float
    fs_hz : float
    params : AnalysisParams

    Returns
    -------
    list of LockedPotential
    """
    rise = to_samples(params.max_rise_time_us * 1e-6, fs_hz, minimum=1)
    main = [g for g in groups if not any(abs(g.latency - h.latency) <= rise and h.amplitude_v > g.amplitude_v
                                         for h in groups)]
    centre = float(np.median(ref_pos))
    mean = data.mean(axis=0)
    out = []
    for g in main:
        col = int(round(centre + g.latency))
        held = g.polarity * mean[max(col - g.half_window, 0):col + g.half_window + 1]
        if held.size and held.max() >= params.detect_threshold_sd * noise_sd_v / np.sqrt(data.shape[0]) \
                and not _rise_time_us(data, col, g, rise, noise_sd_v, fs_hz, params) >= params.max_rise_time_us:
            out.append(g)
    return out


def _rise_time_us(data, col, group, rise, noise_sd_v, fs_hz, params):
    """Rise time of the mean waveform of ``group`` in ``data`` (rows (n, L), V; the group
    about column ``col``), each row aligned on its peak within the group's half window
    where that reaches the detection threshold
    (:func:`~sfemg.analysis.potentials.waveform_shape`), µs; NaN where no row holds it
    whole (``rise``: ``max_rise_time_us`` in samples, the length before the peak it is
    sought in): near a sweep's end, past which it is not known."""
    half = group.half_window
    lo = max(col - half, 0)
    near = group.polarity * data[:, lo:col + half + 1]
    if near.shape[1] == 0:
        return np.nan
    peaks = lo + np.argmax(near, axis=1)
    found = ((near.max(axis=1) >= params.detect_threshold_sd * noise_sd_v) & (peaks - rise - half >= 0)
             & (peaks + half < data.shape[1]))
    if not found.any():
        return np.nan
    segments = data[np.flatnonzero(found)[:, None], peaks[found][:, None] + np.arange(-rise - half, half + 1)[None, :]]
    return waveform_shape(group.polarity * segments.mean(axis=0), rise + half, fs_hz,
                          noise_sd_v / np.sqrt(found.sum()))[1]


def _locked_potentials(sw: Sweeps, fs_hz, mode, params):
    """The potentials time-locked to the sweeps' references: every phase of every
    potential, each polarity separately, a group (:func:`~sfemg.analysis.detect.find_locked_potentials`),
    sorted by latency; stimulated, only those after the artefact's blank.

    Returns
    -------
    pots : list of LockedPotential
        Those within the search window (:func:`_within_search_window`).
    trigger : int
        Index of the trigger potential in ``pots`` (voluntary: the one at latency 0); -1
        stimulated.
    past : list of LockedPotential
        Those past the search window that can be potentials of their own
        (:func:`_fast_main_phases`); for a continuous stimulated recording also those
        the signal holds past the sweeps (:func:`_probe_past_the_window`).

    Raises
    ------
    SfemgInputError
        No consistent trigger potential (voluntary), no response (stimulated).
    """
    blank_end = params.artefact_blank_ms * 1e-3 * fs_hz + sw.artefact_delay if mode == "stimulated" else -np.inf
    pots, past = _within_search_window(_locked_groups(sw.data_v, sw.ref_pos, blank_end, sw.noise_sd, fs_hz, params),
                                       mode, fs_hz, params)
    past = _fast_main_phases(sw.data_v, sw.ref_pos, past, sw.noise_sd, fs_hz, params)
    if mode == "stimulated" and sw.signal_v is not None:  # continuous: sought as far as responses go
        past += [g for g in _probe_past_the_window(sw, fs_hz, params)
                 if all(abs(g.latency - p.latency) > _lock_half(fs_hz, params) for p in past)]
    trigger = -1
    if mode == "voluntary":
        if pots:
            trigger = int(np.argmin([abs(p.latency) for p in pots]))
        if trigger < 0 or abs(pots[trigger].latency) > _lock_half(fs_hz, params):
            raise SfemgInputError("no potentials found: the trigger potential is not consistent")
    elif not pots and past:
        raise SfemgInputError(f"no potentials found: {_past_the_window(past, mode, fs_hz, params)}: {_WIDEN}")
    elif not pots:
        raise SfemgInputError("no potentials found: no response time-locked to the stimuli")
    return pots, trigger, past


@dataclasses.dataclass(frozen=True)
class _Discharges:
    """What the kept potentials' time points give per discharge (the sweeps' rows, n).

    Attributes
    ----------
    times_s : list of ndarray, shape (n,) each
        Each potential's time points, s; NaN where it blocked.
    excursions, clipped : list of ndarray of bool, shape (n,) each
        Each potential's latency excursions; its discharges that reach the clipping levels.
    reference_times_s : ndarray, shape (n,)
        The trigger's time points (voluntary) or the stimulus times, s.
    reference_var : ndarray, shape (n,)
        The stimulus times' error variance, samples² (0 for a voluntary recording's).
    idis_s : ndarray, shape (n,)
        The interval before each discharge, s (:func:`~sfemg.analysis.sweeps.preceding_intervals`).
    errors : TimingErrors or None
        The time points' error model; None where the method's is not known.
    """

    times_s: list
    excursions: list
    clipped: list
    reference_times_s: np.ndarray
    reference_var: np.ndarray
    idis_s: np.ndarray
    errors: TimingErrors | None

    @classmethod
    def of(cls, sw, timed, trigger, errors, mode, fs_hz):
        """From the sweeps ``sw`` and the potentials ``timed`` on them
        (:class:`~sfemg.analysis.potentials.Timed`)."""
        times = [t.times_s for t in timed]
        ref_t = times[trigger] if mode == "voluntary" else sw.ref_times_s
        return cls(times, [t.excursions for t in timed], [clipped_discharges(sw, t, fs_hz) for t in timed],
                   ref_t, _reference_var(sw, ref_t.size), preceding_intervals(sw, ref_t), errors)

    def kept(self, keep, sw):
        """The discharges ``keep`` (boolean mask, shape (n,)) only; ``sw`` the sweeps
        without the others (:func:`~sfemg.analysis.references.keep_references`), over which
        the intervals run."""
        ref_t = self.reference_times_s[keep]
        return _Discharges([t[keep] for t in self.times_s], [e[keep] for e in self.excursions],
                           [c[keep] for c in self.clipped], ref_t, _reference_var(sw, ref_t.size),
                           preceding_intervals(sw, ref_t), self.errors.subset(keep) if self.errors is not None
                           else None)


def _reference_var(sw, n):
    """The error variance of the ``n`` sweeps' reference times, samples² (stimulated: the
    stimulus times'; else 0)."""
    return sw.ref_var if sw.ref_var is not None else np.zeros(n)


def _irregular_firing(ref_t, params):
    """Why the reference discharges (times ``ref_t``, s) look like two units' (many
    intervals shorter than ``irregular_interval_ratio`` × their median), or None. Judged
    on the spacing as it is, whether or not a discharge of the unit was lost between two:
    two units' references make many short ones."""
    intervals = np.diff(ref_t)
    intervals = intervals[np.isfinite(intervals)]  # (time points not measured: no interval)
    short = intervals < params.irregular_interval_ratio * fast_median(intervals)
    if short.size and short.mean() > params.irregular_fraction:
        return (f"trigger: {short.sum()} of {short.size} intervals < {params.irregular_interval_ratio:g}"
                " x median (two units?)")
    return None


def _pair(j, trigger, timed, d: _Discharges, sw, irregular, mode, fs_hz, params, failed_stimuli=0):
    """The pair of potential ``j`` with the reference (the trigger potential ``trigger``,
    voluntary, or the stimuli): its jitter, blocking, technical jitter, acceptance and
    flags.

    Parameters
    ----------
    j, trigger : int
        Indices in ``timed``.
    timed : list of Timed
    d : _Discharges
    sw : Sweeps
        The sweeps ``d`` was measured on (their clipping levels, displaced discharges).
    irregular : str or None
        From :func:`_irregular_firing`: the pair is then rejected for it.
    failed_stimuli : int
        Stimuli left out of ``d`` and ``sw`` as not exciting the axon (:func:`_stimulus_failures`).
    mode : {"voluntary", "stimulated"}
    fs_hz : float
    params : AnalysisParams

    Returns
    -------
    PairResult
    """
    n = d.reference_times_s.size
    ipis = d.times_s[j] - d.reference_times_s
    blocked = ~np.isfinite(ipis)
    n_blocked = int(blocked.sum())
    mcd = compute_mcd(ipis)
    if mode == "voluntary":
        msd = compute_msd(ipis, d.idis_s)
        var = timed[j].crb_var + timed[trigger].crb_var
        label = f"P{trigger + 1}-P{j + 1}"
        checked = (j, trigger)
    else:
        msd = float("nan")
        # per consecutive pair of latencies: the response's bound and the mean of the
        # two stimuli's error variances (a few markers far off raise only their pairs)
        var = timed[j].crb_var + (d.reference_var[1:] + d.reference_var[:-1]) / 2.0
        label = f"R{j + 1}"
        checked = (j,)
    jitter, ratio = reported_jitter(mcd, msd, params.msd_ratio_threshold)
    tech_us = MCD_PER_SD * np.mean(np.sqrt(var)) / fs_hz * 1e6
    mcd_sd_us = (d.errors.mcd_sd_s(ipis, j, trigger, fs_hz, d.reference_var) * 1e6
                 if d.errors is not None and np.isfinite(mcd) else float("nan"))
    levels = sw.saturation.levels_v if sw.saturation is not None else (np.nan, np.nan)
    reasons, n_clipped = [], 0
    for k in checked:
        who = "trigger: " if k == trigger else ""
        reasons += _acceptance(*timed[k].shape, params, who) + _clipping(int(d.clipped[k].sum()), levels, who)
        n_clipped += int(d.clipped[k].sum())
    flags = ["clipped"] if n_clipped else []
    if n_blocked == n:
        flags.append("all-blocked")
        reasons.append("every discharge blocked")
    # recorded over too few discharges, or its MCD resting on too few of them (blocks
    # between: the blocking is reported as such, one block in 50 stimuli is no flag)
    n_steps = int(np.sum(np.isfinite(np.diff(ipis))))
    if n < params.min_discharges or n_steps + 1 < params.min_discharges / 2:
        flags.append("few-discharges")
    if np.isfinite(mcd) and mcd * 1e6 < params.low_mcd_us:
        flags.append("low-mcd")
        cause = "direct stimulation of the muscle fibre" if mode == "stimulated" else "a split fibre"
        reasons.append(f"MCD below {params.low_mcd_us:g} µs ({cause})")
    if flip_flop_separation(ipis) > params.flip_flop_separation:
        flags.append("flip-flop")
    if irregular:
        flags.append("irregular-firing")
        reasons.append(irregular)
    if d.excursions[j].any():
        flags.append("latency-excursions")
    if sw.displaced:
        flags.append("discharges-displaced")
    if failed_stimuli:
        flags.append("stimulus-failures")
    amplitude_v, rise_us, _ = timed[j].shape
    return PairResult(
        fibre=j, label=label, mcd_us=mcd * 1e6, msd_us=msd * 1e6, mcd_msd_ratio=ratio,
        jitter_us=jitter * 1e6, mean_ipi_us=float(np.nanmean(ipis)) * 1e6 if n_blocked < n else float("nan"),
        technical_jitter_us=float(tech_us), mcd_uncertainty_us=float(mcd_sd_us),
        blocking_percent=100.0 * n_blocked / n, n_discharges=n, n_blocked=n_blocked, accepted=not reasons,
        reject_reasons=tuple(reasons), flags=tuple(flags), amplitude_v=amplitude_v, rise_time_us=rise_us,
        ipis_s=ipis, idis_s=d.idis_s, blocked=blocked, reference_times_s=d.reference_times_s,
        time_points_s=d.times_s[j])


def _stimulus_failures(pairs):
    """The stimuli that did not excite the axon, most likely: those after which every
    accepted response is absent, where there are more of them than the responses'
    blocks would give by chance. Each endplate blocks on its own, so two that block in
    a fraction ``b1`` and ``b2`` of the stimuli are absent together in about ``b1 b2`` of
    them; a stimulus below the axon's threshold (or a block in the axon) takes every
    response of the unit at once, which counts as neuromuscular blocking of each
    (a clinician's review: three recordings failing every sixth stimulus turned a
    healthy study abnormal, six endplates of 7-25 µs jitter "blocking").

    Parameters
    ----------
    pairs : list of PairResult
        One recording's responses.

    Returns
    -------
    ndarray of bool, shape (n,), or None
        The failed stimuli: at least :data:`_FAILURES_MIN`, and as many or more with a
        probability below :data:`_FAILURES_P` for independent blocks (binomial, each
        response's blocking as measured); None otherwise, or with fewer than two
        accepted responses (one response's blocks cannot tell).
    """
    accepted = [p.blocked for p in pairs if p.accepted]
    if len(accepted) < 2:
        return None
    blocked = np.array(accepted)
    together = blocked.all(axis=0)
    k, n = int(together.sum()), together.size
    chance = float(np.prod(blocked.mean(axis=1)))
    if k < _FAILURES_MIN or betainc(k, n - k + 1, chance) >= _FAILURES_P:  # P(X >= k), X ~ B(n, chance)
        return None
    return together


def _analyze_sweeps(name, sw: Sweeps, fs_hz, mode, params, recording=None, triggers_checked=False):
    """Everything after the sweeps are cut: potentials, time points, pairs.

    Voluntary sweeps that hold no discharge of the trigger potential
    (:func:`~sfemg.analysis.references.trigger_discharges`) are dropped and the rest analysed afresh (the dropped
    ones too, with their own trigger check, if the rest hold no time-locked potential).
    Discharges whose reference is another fibre's potential (:func:`~sfemg.analysis.references.false_references`)
    are left out of the pairs' discharges.
    """
    pots, trigger, past = _locked_potentials(sw, fs_hz, mode, params)
    spectra = {}
    trigger_fit = None
    if mode == "voluntary" and not triggers_checked:
        true_sw, rest, trigger_fit = trigger_discharges(sw, pots[trigger], spectra, fs_hz, params)
        if true_sw is not sw:
            attempts = [functools.partial(_analyze_sweeps, name, true_sw, fs_hz, mode, params, recording,
                                          triggers_checked=True)]
            if rest is not None:  # the other potential's sweeps, with their own trigger check
                attempts.append(functools.partial(_analyze_sweeps, name, rest, fs_hz, mode, params, recording))
            return _first_accepted(attempts)
    kept, timed, extents, model = select_potentials(sw.data_v, sw, pots, trigger, spectra, fs_hz, params,
                                                    trigger_fit)
    if mode == "voluntary" and len(kept) < 2:
        raise SfemgInputError("no potentials found time-locked to the trigger potential")
    # past the window, what no kept waveform reaches (a kept response's late phases do)
    past = [p for p, out in zip(past, outside_waveforms(past, sw.data_v, sw, timed, extents, fs_hz)) if out]
    notes = (f"{_past_the_window(past, mode, fs_hz, params)}, not analysed: {_WIDEN}",) if past else ()
    pots = [pots[j] for j in kept]
    trigger = kept.index(trigger) if trigger >= 0 else -1
    if params.method == "template" and params.joint_timing:
        timed, errors = refine_time_points(model, sw, pots, timed, extents, trigger, spectra, fs_hz, params)
    elif params.method == "template":
        errors = TimingErrors.single(timed)
    else:  # the interpolated peak and level crossing are not at the bound: not known
        errors = None
    d = _Discharges.of(sw, timed, trigger, errors, mode, fs_hz)
    slow_phase = slow_phases(timed, d.reference_times_s, fs_hz, params.max_rise_time_us)
    irregular = None  # the reference discharges of two units, most likely
    if mode == "voluntary":
        irregular = _irregular_firing(d.reference_times_s, params)
        # the templates and fits stay as they are: the trigger's own has another fibre's
        # potential in one sweep of a hundred, and the others are missing from those sweeps
        real = ~false_references(sw.data_v, sw, pots, trigger, d.times_s, [t.shape[1] for t in timed], fs_hz,
                                 params)
        if not real.all() and real.sum() >= 2:
            sw = keep_references(sw, real, pots[trigger], fs_hz, params)
            d = d.kept(real, sw)
    others = [j for j in range(len(pots)) if j != trigger and not slow_phase[j]]
    pairs = [_pair(j, trigger, timed, d, sw, irregular, mode, fs_hz, params) for j in others]
    failed = _stimulus_failures(pairs) if mode == "stimulated" else None
    if failed is not None:  # no stimulus, rather than a block of each response
        notes += (f"{', '.join(p.label for p in pairs if p.accepted)}: all absent after {failed.sum()} of "
                  f"{failed.size} stimuli, far more often than their blocks would be by chance: stimuli that "
                  "did not excite the axon (raise the intensity), or a block in the axon; those stimuli left "
                  "out",)
        sw = subset_sweeps(sw, ~failed)
        d = d.kept(~failed, sw)
        pairs = [_pair(j, trigger, timed, d, sw, irregular, mode, fs_hz, params, failed_stimuli=int(failed.sum()))
                 for j in others]
    notes += _at_the_window_edge(pairs, mode, params)
    if mode == "stimulated":
        notes += _at_the_blank(pairs, extents, sw, fs_hz, params)
    if not pairs:  # every other potential a slow phase of the trigger (the largest response never is)
        raise SfemgInputError("no potentials found time-locked to the trigger potential")
    if all("all-blocked" in p.flags for p in pairs):
        raise SfemgInputError("every discharge blocked: no potential could be timed")
    # the noise in the fits' own segments (the shortest cached length moved with _timed_short's)
    noise_rms_v = float(noise_spectrum(sw, 2 * fit_half_window(params, fs_hz) + 1, spectra)[1])
    return RecordingResult(
        name=name, mode=mode, fs_hz=float(fs_hz), method=params.method, pairs=tuple(pairs),
        reference_times_s=d.reference_times_s, idis_s=d.idis_s, noise_rms_v=noise_rms_v,
        potential_latencies_s=np.array([p.latency for p in pots]) / fs_hz,
        timing_sd_s=np.sqrt(np.asarray([t.crb_var for t in timed])) / fs_hz,
        **_display_arrays(sw, [t.template for t in timed], fs_hz), trigger_fibre=trigger,
        muscle=recording.muscle if recording is not None else params.muscle,
        electrode=params.electrode, notes=notes, **_stimulus_fields(sw.stimulus, d.reference_var, fs_hz))


def _display_arrays(sw, templates, fs_hz):
    """The RecordingResult fields for display: the potentials' templates centred on their
    peak on a common axis, and the sweeps aligned on their reference (float32, as sfemg
    stores signals: ~1e-7 of the value, far below any noise; half the results file and its
    write).

    Parameters
    ----------
    sw : Sweeps
        The sweeps analysed (``data_v`` (n, n_cols) V, ``ref_pos`` (n,) samples).
    templates : list of (ndarray, float)
        Each potential's template, V, and its peak's position in it, samples.
    fs_hz : float
    """
    half = max(int(np.ceil(max(max(r, tpl.size - 1 - r) for tpl, r in templates))), 1)
    axis = np.arange(-half, half + 1)
    n, n_cols = sw.data_v.shape
    ref_int = np.round(sw.ref_pos).astype(np.int64)
    pre = int(ref_int.min())
    post = int((n_cols - 1 - ref_int).min())
    shown = ref_int[:, None] + np.arange(-pre, post + 1)[None, :]
    return dict(templates_v=np.vstack([np.interp(axis + r, np.arange(tpl.size), tpl, left=0.0, right=0.0)
                                       for tpl, r in templates]),
                template_time_s=axis / fs_hz,
                aligned_sweeps_v=sw.data_v[np.arange(n)[:, None], shown].astype(np.float32),
                sweep_time_s=np.arange(-pre, post + 1) / fs_hz)


def _stimulus_fields(timing, ref_var, fs_hz):
    """The RecordingResult fields that say where a stimulated recording's stimulus times
    came from (none for a voluntary one); ``ref_var`` those analysed, samples^2."""
    if timing is None:
        return {}
    checked = np.isfinite(timing.artefact_sd)
    return {"stimulus_timing": timing.source,
            "marker_scatter_us": timing.marker_scatter / fs_hz * 1e6,
            "stimulus_error_us": np.sqrt(np.mean(ref_var)) / fs_hz * 1e6 if checked else float("nan"),
            "markers_off": timing.markers_off}


def analyze_signal(signal_v, fs_hz, *, mode=None, stimulus_times_s=None, params=None,
                   name="signal") -> RecordingResult:
    """Jitter analysis of one continuous recording.

    Parameters
    ----------
    signal_v : array_like of float, shape (n_samples,)
        The recording, V (high-pass filtered as usual for SFEMG).
    fs_hz : float
        Sampling rate, Hz (at least :data:`~sfemg.analysis.params.MIN_FS_HZ`).
    mode : {"voluntary", "stimulated"}, optional
        Voluntary: pairs of the trigger potential with each potential time-locked to it.
        Stimulated: each response time-locked to the stimuli (one endplate each).
        Default: stimulated where ``stimulus_times_s`` are given, as for a
        :class:`~sfemg.recording.Recording` (they were ignored and the artefact taken
        for a trigger), else voluntary.
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
    params = checked_params(params)
    if mode is None:
        mode = "voluntary" if stimulus_times_s is None else "stimulated"
    x = check_signal(signal_v, fs_hz, mode, stimulus_times_s)
    return _analyze_continuous(name, x, float(fs_hz), mode, stimulus_times_s, params)


def analyze_recording(rec: Recording, params=None, *, electrode=None) -> RecordingResult:
    """Jitter analysis of a :class:`~sfemg.recording.Recording` (continuous or sweeps).

    Parameters
    ----------
    rec : Recording
        Its ``mode`` selects voluntary or stimulated analysis; for stimulated sweeps the
        stimulus is at ``stimulus_times_s`` or, if absent, at each sweep's start; voluntary
        sweeps each hold a discharge of the trigger potential.
    params : AnalysisParams, optional
    electrode : str, optional
        Overrides the recording's electrode (acceptance thresholds). Otherwise the
        recording's own (:func:`~sfemg.analysis.limits.canonical_electrode`: any case or
        an alias; an unknown name is an input error), else ``params.electrode``.

    Returns
    -------
    RecordingResult
    """
    params = checked_params(params)
    params = params.replace(electrode=recording_electrode(rec, electrode) or params.electrode)
    check_fs(rec.fs_hz)
    if not rec.is_sweeps:  # a Recording's samples are already checked: 1-D, finite float64
        return _analyze_continuous(rec.name, rec.signal_v, rec.fs_hz, rec.mode, rec.stimulus_times_s, params, rec)
    data, saturation = prepared_input(rec.sweeps_v, rec.sweep_start_times_s, rec.fs_hz, params)
    sw = sweep_input(rec, data, params, *estimate_sweeps_noise_sd(data), saturation)
    return _analyze_sweeps(rec.name, sw, rec.fs_hz, rec.mode, params, rec)
