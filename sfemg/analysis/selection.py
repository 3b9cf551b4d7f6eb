"""Which time-locked groups are potentials of their own, and which are phases of one.

Every phase of every potential forms a time-locked group of candidate peaks. Taken
biggest first, a group is kept as a potential unless its time points move rigidly with
a kept one's, or with a mix of them, or unless the kept potentials' joint templates
already explain its window (:func:`select_potentials`); kept potentials that are slow
phases of a larger one are not reported as pairs (:func:`slow_phases`).
docs/analysis.md §1.4.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from .._units import to_samples
from ._detect_numba import waveform_run_kernel
from .detect import fast_median
from .jitter import MCD_PER_SD, compute_mcd, robust_mcd, two_group_split
from .joint import joint_templates
from .potentials import (
    PEAK_SEARCH_US,
    clearly_absent_discharges,
    measure_potential,
    time_potential,
)
from .superimposed import window_energy
from .sweeps import fit_half_window
from .timing import peak_positions

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

#: ... unless the group, given its own time points, explains most of that residual: a
#: fibre with broad phases whose waveform the kept potentials' templates hold blurred by
#: its jitter leaves only ~1.5 noise energies there, but with the group as a potential
#: of its own (the joint templates of the kept potentials and the group at its
#: positions) at most _OWN_SHARE of it is left, and at least _OWN_EXPLAINED noise
#: energies less; a phase, whose positions follow a kept potential's, explains nothing
#: new. Simulated (default scenarios, seeds 1-6; every group the residual test dropped):
#: fibres left 0.11-0.46 of the residual, 0.29-1.4 noise energies less; of 316 groups
#: matching a kept fibre, 2 passed both. A fibre's slow phases explain what it leaves
#: too: slow groups so kept that follow a fast fibre's latency are hidden after the
#: selection (:func:`slow_phases`). Until the thirteenth session the test was applied to
#: groups with an acceptable rise time only, and the slow fibres, distant from the
#: electrode, that only it finds were missed.
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
#: A slow potential follows a larger one (:func:`_follows`) when the slope of its
#: consecutive latency differences on the larger one's is at least _FOLLOWS_MIN_SLOPE,
#: within _FOLLOWS_Z_ONE standard errors of 1 and at least _FOLLOWS_Z_ZERO standard
#: errors from 0, over
#: at least _FOLLOWS_MIN_PAIRS consecutive discharges. A phase of the larger potential
#: has slope 1; a fibre of its own, whose latency shares only the reference's jitter
#: (variance v_T) with the larger potential's (v_T + v_U), has v_T / (v_T + v_U) < 1:
#: 0.5 where the two endplates jitter alike. Simulated (default scenarios, seeds 1-12):
#: a fibre's slow tail gave slopes of 0.63-1.26 on it (standard errors 0.05-0.28).
_FOLLOWS_MIN_SLOPE = 0.75
_FOLLOWS_Z_ONE = 2.0
_FOLLOWS_Z_ZERO = 2.5
_FOLLOWS_MIN_PAIRS = 10

#: A group clearly absent (:data:`~sfemg.analysis.potentials.CLEAR_ABSENCE`), where a
#: kept potential is present, in more than this fraction of the discharges (and more than
#: one) is a potential of its own (a superimposed potential of another unit can cancel a
#: phase once in a while). The fraction is of all discharges in the pairwise tests and of
#: those where every kept potential is present in :func:`_blocks_alone`; the pairwise
#: tests taken over the kept potential's present discharges instead (as first documented)
#: gave a severe-MG endplate a rejected pseudo-response and a wrong block (seeds 1-3,
#: stimulated, 180 endplates; nothing else changed): not kept.
_ABSENCE_SLACK = 0.02

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
#: Relative positions are judged to alternate between two offsets (Ashman's D above
#: AnalysisParams.flip_flop_separation) over at least this many discharges: Gaussian
#: samples exceed D = 4 by chance in 33 % of draws of 10, 10 % of 20, 2 % of 30 and
#: almost never from 50 on (the fewest discharges a pair is accepted with).
_FLIP_FLOP_MIN_COUNT = 50
_OWN_AMPLITUDE = 0.4

#: A group's fit that puts its reference on a peak this many times the group's own
#: (median) peak has timed a neighbouring, bigger waveform: the group is dropped. On
#: simulated studies such fits (a 0.2 mV group beside a 2.2 mV fibre, reference peak
#: 1.7 mV) were accepted as pairs of their own in 4 of 90 recordings (seeds 4-6) and 5 of
#: 180 (seeds 7-12), 0 and 2 with this test; no real fibre was lost.
_OTHER_PEAK_RATIO = 1.5
#: ... or when the reference lies farther from the group's own peak than its search
#: window and than this, µs (a search window can be a few samples wide between close
#: phases; a fibre's reference lay within 26 µs of its peak on the simulated studies).
_OFF_PEAK_MIN_US = 100.0
#: A group timed on another that lies outside every kept waveform is timed again in a
#: segment of ± this share of the distance to the nearest kept potential (:func:`_timed_short`),
#: if that distance is at least _SHORT_FIT_MIN_GAP_US, µs, and kept only if it is then a sharp
#: potential: rise time below _SHORT_FIT_MAX_RISE_SHARE of ``max_rise_time_us`` (a slow
#: lead-in of the kept fibre, timed so, stood as a second pair of it on the validation grid).
_SHORT_FIT_SHARE = 0.8
_SHORT_FIT_MIN_GAP_US = 300.0
_SHORT_FIT_MAX_RISE_SHARE = 0.5

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
    half = to_samples(_ENVELOPE_US * 1e-6, fs_hz, minimum=1)
    runs = np.empty((tpl_spectra.shape[0], 2), dtype=np.int64)
    waveform_run_kernel(np.fft.irfft(tpl_spectra, n=length, axis=1), half, _EXTENT_LEVEL, runs)
    extents = []
    for (lo, hi), p in zip(runs, positions):
        centre = fast_median(p[np.isfinite(p)])
        extents.append((centre + lo, centre + hi))
    return extents


def outside_waveforms(groups, data, sw, timed, extents, fs_hz):
    """Which of ``groups`` (time-locked potentials the selection did not consider) lie
    outside every kept potential's waveform.

    Parameters
    ----------
    groups : list of LockedPotential
    data : ndarray, shape (n, L)
        Sweeps, V.
    sw : Sweeps
    timed : list of Timed
        The kept potentials' fits.
    extents : list of (float, float)
        Their waveforms' extents from :func:`select_potentials` (NaN where one potential
        was kept alone: its template's extent is then measured here).
    fs_hz : float

    Returns
    -------
    list of bool
    """
    if not groups:
        return []
    if len(timed) == 1:
        positions = timed[0].positions[None, :]
        templates = joint_templates(np.fft.rfft(data, axis=1), positions, data.shape[1], _JOINT_RIDGE)[0]
        extents = _waveform_extents(templates, positions, data.shape[1], fs_hz)
    ref = float(np.median(sw.ref_pos))
    return [not any(lo <= ref + g.latency <= hi for lo, hi in extents) for g in groups]


def _residual_energy_ratio(data, residual, ref_pos, pot, noise_sd):
    """Median over sweeps of the residual energy in a group's window, relative to the larger
    of the noise energy and :data:`_MODEL_PRECISION` of the signal energy there."""
    centre = (ref_pos + pot.latency)[None, :]
    energy = fast_median(window_energy(residual, centre, pot.half_window)[0])
    signal = fast_median(window_energy(data, centre, pot.half_window)[0])
    return energy / max((2 * pot.half_window + 1) * noise_sd ** 2, _MODEL_PRECISION * signal)


class Relative(NamedTuple):
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


class TemplateModel(NamedTuple):
    """The sweeps' DFT and the joint templates of the potentials at some positions."""

    spectra: np.ndarray           # (n, L // 2 + 1) the sweeps' DFT
    positions: np.ndarray         # (K, n) samples, NaN where absent
    template_spectra: np.ndarray  # (K, L // 2 + 1) each template's DFT, reference at sample 0
    residual_spectra: np.ndarray  # (n, L // 2 + 1) the sweeps less the templates at the positions


def relative_mcd(cand, kept, fs_hz):
    """How a group's template-fit positions move against a kept potential's (the floor is
    the template fits' own: the ``peak`` and ``level`` methods' time points scatter
    more, and phases compared on them seemed to jitter); None when the group is
    clearly absent (:data:`~sfemg.analysis.potentials.CLEAR_ABSENCE`) where the kept
    potential is present, in more than :data:`_ABSENCE_SLACK` of the discharges — a fibre
    that blocks on its own, no phase of it.

    Parameters
    ----------
    cand, kept : Timed
    fs_hz : float

    Returns
    -------
    Relative or None
    """
    kept_present = np.isfinite(kept.positions)
    both = np.isfinite(cand.positions) & kept_present
    if _absent_beside(cand.clearly_absent, kept_present, kept_present.size) or both.sum() < 3:
        return None
    relative_s = (cand.positions[both] - kept.positions[both]) / fs_hz
    return Relative(compute_mcd(relative_s) * 1e6, robust_mcd(relative_s) * 1e6,
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
    cand : Timed
    kept : list of Timed
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
    present), from :func:`~sfemg.analysis.potentials.measure_potential`."""
    present, seg_start, segs, _ = measured
    near = to_samples(PEAK_SEARCH_US * 1e-6, fs_hz, minimum=1)
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
        :func:`~sfemg.analysis.potentials.measure_potential` of the group.
    group : LockedPotential
    kept : list of Timed
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
    clearly_absent = clearly_absent_discharges(measured[3], group, noise_sd)
    peak_pos = _peak_positions(measured, fs_hz)
    for k, within in zip(kept, inside):
        kept_present = np.isfinite(k.positions)
        both = present & kept_present
        if not within or both.sum() < 3 or _absent_beside(clearly_absent, kept_present, kept_present.size):
            continue
        if compute_mcd(peak_pos[both] - k.positions[both]) / fs_hz * 1e6 <= _PHASE_MCD_MIN_US:
            return True
    return False


def _timed_on_another(timed_group, group, fs_hz):
    """Whether a group's fit has timed a bigger waveform than the group's own peak.

    The fit segment (±``fit_half_window_us``) of a small group beside a big potential
    holds mostly the big one; the template's reference (its largest peak) then lies on
    that potential, and the time points follow a blend of both. Such a fit is no
    potential of its own: its reference peak exceeds :data:`_OTHER_PEAK_RATIO` × the
    group's median peak (a potential timed on its own peak: ≈ 1), or the reference
    lies outside the group's search window (and more than :data:`_OFF_PEAK_MIN_US`)
    around the segment's centre (the group's own peak): the segment's taper can shrink
    the neighbour's peak in the template below the group's. On the simulated studies
    (seeds 1-12, 359 reported pairs) every fibre's reference lay within 26 µs of the
    centre; a 0.23 mV group 570 µs before a 2 mV fibre put it 500 µs off, on that
    fibre's tapered phase, and was an accepted pair.

    Parameters
    ----------
    timed_group : Timed
    group : LockedPotential
    fs_hz : float

    Returns
    -------
    bool
    """
    template, reference = timed_group.template
    peak_v = group.polarity * np.interp(reference, np.arange(template.size), template)
    reach = max(group.half_window, _OFF_PEAK_MIN_US * 1e-6 * fs_hz)
    off_peak = abs(reference - (template.size - 1) / 2) > reach
    return peak_v > _OTHER_PEAK_RATIO * group.amplitude_v or off_peak


def _timed_short(data, sw, groups, g, kept, noise_spectra, fs_hz, params):
    """A group that :func:`_timed_on_another` refused, timed again in a segment that stops
    short of the nearest kept potential's peak (:data:`_SHORT_FIT_SHARE`,
    :data:`_SHORT_FIT_MIN_GAP_US`, :data:`_SHORT_FIT_MAX_RISE_SHARE`); None if it is
    too close, still timed on the other, or not a sharp potential.

    A fibre 0.35-0.45 ms from a bigger one of the other polarity (found in review): its
    ±600 µs segment held the bigger one's phases, its template's largest peak lay on
    them and the group was dropped; its small side lobe then stood in for the fibre,
    timed on other dips in its window (MCD +48-100 %, accepted), or the fibre was not
    reported.

    Parameters
    ----------
    data : ndarray, shape (n, L)
    sw : Sweeps
    groups : list of LockedPotential
    g : int
        The group.
    kept : list of int
        The groups kept so far (never empty: the first is always kept).
    noise_spectra : dict
        Noise-spectrum cache (:func:`~sfemg.analysis.sweeps.noise_spectrum`).
    fs_hz : float
        Sampling rate, Hz.
    params : AnalysisParams
        As for the other groups, ``fit_half_window_us`` replaced by the short segment.

    Returns
    -------
    Timed or None
    """
    gap_us = min(abs(groups[g].latency - groups[k].latency) for k in kept) / fs_hz * 1e6
    short_us = _SHORT_FIT_SHARE * gap_us
    if gap_us < _SHORT_FIT_MIN_GAP_US or short_us >= params.fit_half_window_us:
        return None
    t = time_potential(data, sw, groups[g], False, noise_spectra, fs_hz, params.replace(fit_half_window_us=short_us),
                       avoid=[p for j, p in enumerate(groups) if j != g])
    if np.isfinite(t.positions).sum() < 2 or _timed_on_another(t, groups[g], fs_hz) \
            or not t.shape[1] < _SHORT_FIT_MAX_RISE_SHARE * params.max_rise_time_us:
        return None
    return t


def _absent_beside(clearly_absent, kept_present, of):
    """Whether a group is clearly absent, where a kept potential is present
    (``kept_present``, bool), in more than :data:`_ABSENCE_SLACK` of ``of`` discharges
    (and in more than one)."""
    return np.sum(clearly_absent & kept_present) > max(1, _ABSENCE_SLACK * of)


def _blocks_alone(clearly_absent, kept):
    """Whether a group is clearly absent in more than :data:`_ABSENCE_SLACK` (and more than
    one) of the discharges where every kept potential (list of Timed) is present."""
    all_present = np.all([np.isfinite(k.positions) for k in kept], axis=0)
    return _absent_beside(clearly_absent, all_present, all_present.sum())


def _is_phase(timed_group, group, kept, inside, trigger_group, fs_hz, residual_ratio, explains_residual,
              flip_flop_separation):
    """Whether a group lying within a kept potential's waveform is a phase (see
    :func:`select_potentials`).

    Parameters
    ----------
    timed_group : Timed
    group, trigger_group : LockedPotential
    kept : list of Timed
    inside : list of bool
        Whether the group lies within each kept potential's waveform.
    fs_hz : float
    residual_ratio : callable
        Returns the model's residual energy ratio in the group's window (computed only
        when needed).
    explains_residual : callable
        Returns whether the group is a fibre by what it explains of that residual
        (:func:`_explains_its_residual`; called only when needed).
    flip_flop_separation : float
        Ashman's D above which relative positions alternate between two offsets
        (``AnalysisParams.flip_flop_separation``, :func:`_within_modes_mcd_us`).

    Returns
    -------
    bool
    """
    rel = [relative_mcd(timed_group, k, fs_hz) for k in kept]
    if any(r is not None and within and r.rigid for r, within in zip(rel, inside)):
        return True
    if _follows_mixture(timed_group, kept, fs_hz):
        return True
    modes = [None if r is None else _within_modes_mcd_us(timed_group, k, fs_hz, r.mcd_us, flip_flop_separation)
             for r, k in zip(rel, kept)]
    # landing on one or the other side lobe of a kept waveform, either side of its time
    # point, rigid within each (a fibre that flip-flops lies on one side)
    if any(within and m is not None and m.either_side and _rigid(m.mcd_us, r.floor_us)
           for r, m, within in zip(rel, modes, inside)):
        return True
    blocks_alone = _blocks_alone(timed_group.clearly_absent, kept)
    jitter_us = [None if m is None else m.mcd_us for m in modes]
    jitters = group.amplitude_v >= _OWN_AMPLITUDE * trigger_group.amplitude_v and all(
        r is None or (j >= _OWN_JITTER_US and j >= _OWN_JITTER_FACTOR * r.floor_us) for r, j in zip(rel, jitter_us))
    return (not blocks_alone and not jitters and residual_ratio() <= _RESIDUAL_ENERGY_RATIO
            and not explains_residual())


class Modes(NamedTuple):
    """How much a group's positions jitter against a kept potential's (:func:`_within_modes_mcd_us`)."""

    mcd_us: float      # their relative MCD, or the larger MCD within either offset's discharges
    alternates: bool   # whether they alternate between two offsets
    either_side: bool  # ... which lie either side of the kept potential's time point


def _within_modes_mcd_us(cand, kept, fs_hz, mcd_us, separation):
    """How much a group's positions jitter against a kept potential's, µs: their relative
    MCD ``mcd_us``, or, where the relative positions alternate between two offsets
    (Ashman's D above ``separation`` over at least :data:`_FLIP_FLOP_MIN_COUNT`
    discharges), the larger MCD within either offset's discharges (in their order). A
    peak that lands on one or the other side lobe of a kept triphasic waveform from sweep
    to sweep flip-flops by ~2 phase widths but is rigid within each; a fibre of its own
    that flip-flops still jitters within each mode.

    Returns
    -------
    Modes
    """
    both = np.isfinite(cand.positions) & np.isfinite(kept.positions)
    relative_s = (cand.positions[both] - kept.positions[both]) / fs_hz
    if relative_s.size < _FLIP_FLOP_MIN_COUNT:
        return Modes(mcd_us, False, False)
    d, threshold = two_group_split(relative_s)
    if not d > separation:
        return Modes(mcd_us, False, False)
    upper = relative_s > threshold
    either_side = fast_median(relative_s[upper]) > 0 > fast_median(relative_s[~upper])
    return Modes(max(compute_mcd(relative_s[upper]), compute_mcd(relative_s[~upper])) * 1e6, True, either_side)


def _explains_its_residual(data, spectra, sw, kept, positions, group, residual_ratio):
    """Whether a group at its own positions explains most of what the kept potentials'
    model leaves in its window (:data:`_OWN_SHARE`, :data:`_OWN_EXPLAINED`).

    Parameters
    ----------
    data : ndarray, shape (n, L)
        Sweeps, V.
    spectra : ndarray of complex, shape (n, L // 2 + 1)
        Their DFT (``numpy.fft.rfft``), V.
    sw : Sweeps
        The sweeps' reference positions and noise SD.
    kept : list of Timed
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


def select_potentials(data, sw, groups, trigger, noise_spectra, fs_hz, params, trigger_fit=None):
    """The potentials among the time-locked groups, and their time points.

    Groups are taken in order of size (the trigger's first), so that each fibre is timed
    on its largest phase. A group is a phase of the potentials already kept, and
    dropped, when

    * it lies within one's waveform and its time points follow that potential's
      (:func:`relative_mcd`'s robust MCD at most :data:`_PHASE_MCD_FACTOR` × the
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
      points, it does not explain most of that residual (:func:`_explains_its_residual`:
      a broad fibre the kept templates hold blurred by its jitter). This test catches slow
      after-phases, whose own time points scatter too much for the first (other
      fibres' tails and background activity under them). A second fibre with no
      jitter at all is a phase by these tests.

    ``trigger_fit`` is the trigger's fit over these sweeps when already made (see
    :func:`~sfemg.analysis.potentials.time_potential`).

    Returns
    -------
    kept : list of int
        Indices into ``groups`` of the potentials, increasing.
    timed : list of Timed
        Their fits, in the same order.
    extents : list of (float, float)
        Their waveforms' extents (:func:`_waveform_extents` of their joint templates),
        in the same order (NaN for a potential kept alone).
    model : TemplateModel or None
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
    fit_half = fit_half_window(params, fs_hz)
    for g in order:
        measured = measure_potential(data, sw.ref_pos, groups[g], fit_half, g == trigger, params.block_fraction)
        if g != first:
            if extents is None:  # the joint templates of the potentials kept so far
                model, extents = _joint_model(spectra, timed, length, fs_hz)
                # what they leave in the sweeps, computed only when a residual is needed
                left = functools.cache(functools.partial(np.fft.irfft, model[2], n=length, axis=1))
            where = ref + groups[g].latency
            inside = [lo <= where <= hi for lo, hi in extents]
            # the model's residual in the group's window, computed at most once
            residual = functools.cache(lambda: _residual_energy_ratio(data, left(), sw.ref_pos,
                                                                      groups[g], sw.noise_sd))
            if any(inside) and groups[g].amplitude_v < _OWN_AMPLITUDE * groups[first].amplitude_v:
                # too small to be kept by the jitter override: the residual test decides
                # unless the group blocks on its own or, at its peaks' positions, explains
                # the residual (then judged again below, at its fitted positions); no
                # template fit is needed
                if not _blocks_alone(clearly_absent_discharges(measured[3], groups[g], sw.noise_sd), timed) \
                        and residual() <= _RESIDUAL_ENERGY_RATIO \
                        and not _explains_its_residual(data, spectra, sw, timed, _peak_positions(measured, fs_hz),
                                                       groups[g], residual()):
                    continue
            if any(inside) and _rigid_by_peaks(measured, groups[g], timed, inside, sw.noise_sd, fs_hz):
                continue  # a phase, known without a template fit
        t = time_potential(data, sw, groups[g], g == trigger, noise_spectra, fs_hz, params,
                            trigger_fit if g == trigger else None, measured,
                            avoid=[p for j, p in enumerate(groups) if j != g])
        if g != first:
            if np.isfinite(t.positions).sum() < 2:
                continue
            if _timed_on_another(t, groups[g], fs_hz):
                t = None if any(inside) else _timed_short(data, sw, groups, g, kept, noise_spectra, fs_hz, params)
                if t is None:
                    continue
            if any(inside) and _is_phase(
                    t, groups[g], timed, inside, groups[first], fs_hz, residual,
                    lambda: _explains_its_residual(data, spectra, sw, timed, t.positions, groups[g], residual()),
                    params.flip_flop_separation):
                continue
        kept.append(g)
        timed.append(t)
        extents = None
    if extents is None and len(timed) > 1:  # the last group considered was kept
        model, extents = _joint_model(spectra, timed, length, fs_hz)
    elif extents is None:  # no group followed the first
        model, extents = None, [(np.nan, np.nan)]
    order = np.argsort(kept)
    if model is not None:
        model = TemplateModel(spectra, model[0][order], model[1][order], model[2])
    return [kept[i] for i in order], [timed[i] for i in order], [extents[i] for i in order], model


def _joint_model(spectra, timed, length, fs_hz):
    """The joint templates of the potentials ``timed`` (list of Timed) in the sweeps'
    DFT ``spectra`` (n, length // 2 + 1): ``(positions (K, n) samples, template spectra,
    the spectra of what they leave)``, and each template's waveform extent."""
    positions = np.array([k.positions for k in timed])
    tpl_spectra, left_spectra = joint_templates(spectra, positions, length, _JOINT_RIDGE)
    return (positions, tpl_spectra, left_spectra), _waveform_extents(tpl_spectra, positions, length, fs_hz)


def _follows(cand, kept, reference_times_s):
    """Whether a potential's latency follows another's from discharge to discharge
    (:data:`_FOLLOWS_MIN_SLOPE`, :data:`_FOLLOWS_Z_ONE`, :data:`_FOLLOWS_Z_ZERO`).

    The slope of the candidate's consecutive latency differences (time point less the
    reference's) on the kept potential's, by least squares through 0 over the discharge
    pairs where both are present: 1 for a phase of the kept potential, whatever noise
    its own time points carry; below 1 for a fibre of its own, whose latency shares only
    the reference's jitter with the kept potential's (not identifiable where the kept
    potential jitters far less than the reference). Consecutive differences of
    independent errors correlate by -0.5 from one to the next; the slope's standard
    error allows for it (1.5 times the least-squares variance where the kept
    potential's differences correlate so too, less where its latency drifts). A kept
    potential that does not move against the reference (the reference itself) gives no
    slope. Both errors are possible (Monte Carlo, 100 discharges): a slow fibre of its
    own beside a trigger and a kept potential that jitter alike (slope 0.5) is hidden
    in 1-17 % of recordings, more the noisier its time points (40 µs SD of scatter:
    17 %), and a true tail with 15-40 µs of scatter is reported in 5-34 %. Either way
    only a pair that its rise time rejects changes.

    Parameters
    ----------
    cand, kept : Timed
    reference_times_s : ndarray, shape (n,)
        The reference's times (trigger potential or stimulus), s.

    Returns
    -------
    bool
    """
    a = np.diff(cand.times_s - reference_times_s)
    b = np.diff(kept.times_s - reference_times_s)
    both = np.flatnonzero(np.isfinite(a) & np.isfinite(b))
    a, b = a[both], b[both]
    energy = float(b @ b)
    if a.size < _FOLLOWS_MIN_PAIRS or not energy > 0.0:
        return False
    slope = float(a @ b) / energy
    left = a - slope * b
    # the residuals of neighbouring differences correlate by -0.5: Var(slope) =
    # s^2 (sum b_k^2 - sum over neighbours b_k b_k+1) / (sum b_k^2)^2
    neighbours = np.flatnonzero(np.diff(both) == 1)
    spread = energy - float(b[neighbours] @ b[neighbours + 1])
    se = np.sqrt(float(left @ left) / (a.size - 1) * max(spread, 0.0)) / energy
    return slope >= _FOLLOWS_MIN_SLOPE and abs(slope - 1.0) <= _FOLLOWS_Z_ONE * se and slope >= _FOLLOWS_Z_ZERO * se


def slow_phases(timed, reference_times_s, fs_hz, max_rise_time_us):
    """Which kept potentials are slow phases of a larger one, and not reported as pairs.

    A potential whose rise time is not below ``max_rise_time_us`` and whose time points
    move rigidly with a larger kept potential's (:attr:`Relative.rigid`), or follow
    those of a larger fast one, a fibre's spike (:func:`_follows`), is that potential's
    phase. (Followed by a slow one, the regression can run the wrong way: a slow
    pseudo-potential whose time points carry a small share of a jittery fibre's is
    "followed" by that fibre with a slope of 1.4-1.7 on the validation grid.) The selection's phase tests
    (:func:`select_potentials`) could not judge it: it lies beyond every kept waveform
    (a fibre's slow tail ~1.4 ms after its spike, below 5 % of its peak), or the
    potential it follows was kept after it. Such a tail is timed far less precisely
    than its bound says (other fibres' tails and other units' activity under it: a
    relative MCD of 18-33 µs to its fibre against a floor of 5-9 µs on simulated
    studies), so it is rarely rigid by that measure; but its latency follows its fibre's.
    It stays in the model — the joint fit (through the template of a larger potential
    it moves rigidly with, if any: :func:`~sfemg.analysis.refine.joint_timing`), the
    other units' re-timing and the false references see its waveform — but is no pair
    (simulated: such pairs were rejected by their rise time; seeds 1-12: 13 + 12 of 360
    recordings, rigid + following). A fast potential is never hidden so: one that does
    not jitter against the trigger at all is a measurement of its own (technical
    jitter, a split fibre).

    Parameters
    ----------
    timed : list of Timed
    reference_times_s : ndarray, shape (n,)
        The reference's times (trigger potential or stimulus), s.
    fs_hz : float
    max_rise_time_us : float

    Returns
    -------
    list of bool
    """
    def phase_of(t, u):
        r = relative_mcd(t, u, fs_hz)
        return (r is not None and r.rigid) or (u.shape[1] < max_rise_time_us and _follows(t, u, reference_times_s))

    return [not t.shape[1] < max_rise_time_us and any(phase_of(t, u) for u in timed if u.shape[0] > t.shape[0])
            for t in timed]
