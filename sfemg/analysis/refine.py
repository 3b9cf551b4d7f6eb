"""The kept potentials' time points refined together: blocks decided again with the
unit's other potentials taken out, overlapping potentials timed by one joint fit, and
discharges with another unit's potential on them re-timed (:func:`refine_time_points`);
and the time points' error covariance, for each pair's MCD uncertainty.
docs/analysis.md §1.5, §2, §3.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np

from .detect import fast_median
from .jitter import mcd_gradient
from .joint import ShiftCovariance, joint_positions
from .potentials import clearly_absent_discharges, measure_potential, time_potential
from .selection import relative_mcd
from .superimposed import (
    background_templates,
    find_superimposed,
    flag_superimposed,
    generic_background,
    lost_superimposed,
    model_residual,
    retime_superimposed,
)
from .sweeps import fit_half_window, noise_spectrum

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


def _overlapping(timed, extents, fit_half, together):
    """Which potentials share waveform with another's fit segment, one that moves
    against them.

    Potential j overlaps k when k's waveform (``extents``, :func:`~sfemg.analysis.selection._waveform_extents` of
    the joint templates) reaches into j's fit segment (median position ± ``fit_half``),
    or the other way round, unless they move ``together`` (bool, shape (K, K)): then
    neither drags the other's fit.

    Returns
    -------
    ndarray of bool, shape (K,)
    """
    centre = [fast_median(t.positions[np.isfinite(t.positions)]) for t in timed]
    out = np.zeros(len(timed), bool)
    for j in range(len(timed)):
        for k in range(len(timed)):
            if (j != k and not together[j, k] and extents[k][0] <= centre[j] + fit_half
                    and extents[k][1] >= centre[j] - fit_half):
                out[j] = out[k] = True
    return out


def _carriers(timed, fs_hz):
    """The larger potential each one moves rigidly with (:attr:`~sfemg.analysis.selection.Relative.rigid`
    on their single fits), whose template carries it: parts of one fibre's waveform
    kept apart (a split fibre, or a fibre's late component).

    Returns
    -------
    ndarray of int, shape (K,)
        Its index, or -1.
    """
    amplitude = [t.shape[0] for t in timed]
    out = np.full(len(timed), -1)
    for j, t in enumerate(timed):
        for k, u in enumerate(timed):
            if amplitude[k] > amplitude[j] or (amplitude[k] == amplitude[j] and k < j):
                relative = relative_mcd(t, u, fs_hz)
                if relative is not None and relative.rigid:
                    out[j] = k
                    break
    return out


@dataclass(frozen=True)
class TimingErrors:
    """Error covariance of the kept potentials' time points, to first order.

    Potentials timed by the joint fit (``in_joint``) take their covariance, across
    potentials and sweeps, from it (:class:`~sfemg.analysis.joint.ShiftCovariance`);
    the others, and those in sweeps the joint fit left out, are taken as independent
    from sweep to sweep with their single fit's variance (its bound inflated by its
    misfit, :func:`~sfemg.analysis.timing.misfit_ratio`).
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

    def mcd_sd_s(self, ipis_s, potential, reference, fs_hz, reference_var=0.0):
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
            whose time's error is ``reference_var``).
        fs_hz : float
            Sampling rate, Hz.
        reference_var : float or ndarray, shape (n,)
            With ``reference`` -1: variance of each stimulus time's error, samples^2
            (independent from stimulus to stimulus).

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
        if reference < 0:
            var += float(np.sum(reference_var * gradient ** 2))
        return np.sqrt(var) / fs_hz


def joint_timing(data, sw, timed, extents, spectra, fs_hz, params):
    """Time points of overlapping potentials from the joint fit of all kept potentials
    (:func:`~sfemg.analysis.joint.joint_positions`); the others keep their own fits.

    The single-template fit of a potential with another fibre's waveform in its segment
    is dragged towards that fibre (docs/analysis-history.md §1). Potentials clear of each other
    keep their own fits, which already reach the Cramér–Rao bound (and, at 25 kHz, model
    the aliased image, which the joint fit does not), and so do potentials smaller than
    :data:`_JOINT_MIN_SNR` noise SDs (the joint fit runs where two larger ones overlap).
    Every kept potential enters the joint model, also those that will fail acceptance:
    leaving them out (mostly slow phases) made the simulated studies worse (within
    max(0.5 µs, 3 %) 65 -> 53 %). Except a potential that moves rigidly with a larger
    one (:func:`_carriers`), which keeps its own fit: the model cannot tell two templates
    apart that always move together, the larger one's absorbs both waveforms, and the
    other's shifts are then free to fit the noise (a split fibre at 25 kHz, relative
    MCD 0.3-1 µs on the single fits, read 3-29 µs and passed the low-MCD test). It
    still counts where it overlaps a third potential, which is then timed jointly with
    its carrier (a review: with it left out of the overlap test too, a fibre beside
    the split one was timed alone, 18-21 % low).

    Parameters
    ----------
    data : ndarray, shape (n, L)
        Sweeps, V.
    sw : Sweeps
    timed : list of Timed
        The kept potentials' single fits.
    extents : list of (float, float)
        Their waveforms' extents (from :func:`~sfemg.analysis.selection.select_potentials`).
    spectra : dict
        Noise-spectrum cache (:func:`~sfemg.analysis.sweeps.noise_spectrum`).
    fs_hz : float
    params : AnalysisParams

    Returns
    -------
    timed : list of Timed
        ``timed`` with the time points and positions of the overlapping potentials replaced.
    errors : TimingErrors
        Their error covariance (the joint fit's for those it timed).
    """
    single = TimingErrors.single(timed)
    carrier = _carriers(timed, fs_hz)
    in_model = carrier < 0
    large = np.array([t.shape[0] >= _JOINT_MIN_SNR * sw.noise_sd for t in timed])
    if np.count_nonzero(large & in_model) < 2:
        return timed, single
    fit_half = fit_half_window(params, fs_hz)
    big = np.flatnonzero(large)
    # (a carried potential and its carrier do not drag each other; a third one it reaches does count)
    together = (carrier[big][:, None] == big[None, :]) | (carrier[big][None, :] == big[:, None])
    update = np.zeros(len(timed), bool)  # large potentials of the model overlapping another large one
    update[big] = _overlapping([timed[j] for j in big], [extents[j] for j in big], fit_half, together)
    update &= in_model
    if not update.any():
        return timed, single
    noise_power = noise_spectrum(sw, 2 * fit_half + 1, spectra)[0]
    joint = np.full((len(timed), data.shape[0]), np.nan)
    joint[in_model], covariance = joint_positions(data, np.array([t.positions for t in timed])[in_model],
                                                  noise_power, fs_hz, fit_half)
    timed = [dataclasses.replace(t, positions=p, times_s=sw.start_s + p / fs_hz) if u else t
             for t, p, u in zip(timed, joint, update)]
    if covariance is not None:  # its rows by kept potential: none for those carried
        index = np.full((len(timed), covariance.index.shape[1]), -1)
        index[in_model] = covariance.index
        covariance = dataclasses.replace(covariance, index=index)
    return timed, dataclasses.replace(single, joint=covariance, in_joint=update & (covariance is not None))


def _sweeps_less(model, positions, potentials, n_cols):
    """The sweeps less some potentials' joint templates placed at their positions.

    Parameters
    ----------
    model : TemplateModel
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


def found_without_the_others(model, sw, pots, timed, trigger, spectra, fs_hz, params):
    """Blocks decided again with the unit's other potentials taken out of the sweeps.

    Another fibre's waveform can hide a potential that is present: its opposite phase
    cancels the potential's peak in its window, or, where the potential fires off its
    latency (an excursion, :func:`~sfemg.analysis.potentials._excursions`), the overlap changes its scale and shape
    beyond those of its own discharges. And it can stand in for one that is blocked:
    another fibre's slow phase in a jittery potential's wide window passes for it. For
    each potential other than the trigger:

    * **present where it is clearly absent** from its search window
      (:func:`~sfemg.analysis.potentials.clearly_absent_discharges`) once the potentials that move against it (not
      :attr:`~sfemg.analysis.selection.Relative.rigid`) are subtracted, at their positions, as joint templates:
      those discharges become blocks. Not

      - with the rigid ones subtracted too: one fibre's potentials kept apart hold each
        other's waveform in their joint templates (on stimulated concentric recordings
        that dropped true responses: false blocks 7 -> 20);
      - for its excursions, found outside that window (:func:`~sfemg.analysis.potentials._excursions`), which is
        empty in them by definition (found in review: a LEMS excursion 612 µs off was
        dropped so);
      - where that would leave it in fewer than half of its discharges: then it is
        made of the others' waveforms, which the selection decided otherwise.

    * **blocked where it is found** once every other potential is subtracted
      (:func:`~sfemg.analysis.potentials.time_potential`, the excursion search included, other potentials'
      presence judged on the recorded sweeps): those discharges take the fresh time
      point, moved onto the first fit's reference point by the median difference
      between the two fits over the discharges both hold (the fresh template's peak
      need not be the first one's: the others' joint templates carry part of its
      waveform). This search only takes blocks back: deciding presence afresh on those
      sweeps dropped discharges that are there (simulated seeds 1-6: false blocks
      29 -> 38, against 29 -> 23 taking back only).

    Positions changed for one potential count in the sweeps the next ones are sought
    in (whether another potential moves against it is judged on the first fits);
    joint timing (:func:`joint_timing`) then refines them with the rest.

    Parameters
    ----------
    model : TemplateModel or None
        From :func:`~sfemg.analysis.selection.select_potentials` (None with a single potential: nothing to do).
    sw : Sweeps
        The sweeps (``sw.data_v`` as recorded).
    pots : list of LockedPotential
        The kept potentials.
    timed : list of Timed
        Their fits (positions as in ``model``).
    trigger : int
        Index of the trigger in ``pots`` (-1 for stimulated recordings); it is left as it is.
    spectra : dict
        Noise-spectrum cache (:func:`~sfemg.analysis.sweeps.noise_spectrum`).
    fs_hz : float
        Sampling rate, Hz.
    params : AnalysisParams

    Returns
    -------
    list of Timed
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
        relative = [relative_mcd(timed[k], t, fs_hz) for k in others]
        movers = [k for k, r in zip(others, relative) if r is None or not r.rigid]
        # (the movers are most often all the others: computed once)
        rest = functools.cache(functools.partial(_sweeps_less, model, positions, others, n_cols))
        if movers:
            less_movers = rest() if movers == others else _sweeps_less(model, positions, movers, n_cols)
            peaks = measure_potential(less_movers, sw.ref_pos, pots[j], fit_half_window(params, fs_hz), False,
                                       params.block_fraction)[3]
            lost = np.isfinite(t.positions) & ~t.excursions & clearly_absent_discharges(peaks, pots[j], sw.noise_sd)
            if lost.any() and 2 * lost.sum() < np.isfinite(t.positions).sum():
                positions[j, lost] = np.nan
                t = out[j] = dataclasses.replace(t, positions=positions[j].copy(),
                                                 times_s=np.where(lost, np.nan, t.times_s))
        blocked = ~np.isfinite(t.positions)
        if not blocked.any():
            continue
        again = time_potential(rest(), sw, pots[j], False, spectra, fs_hz, params,
                                avoid=[pots[k] for k in others], others_subtracted=True)
        found = blocked & np.isfinite(again.positions)
        both = ~blocked & np.isfinite(again.positions)
        if not (found.any() and both.any()):
            continue
        offset = fast_median(again.positions[both] - t.positions[both])
        positions[j] = np.where(found, again.positions - offset, t.positions)
        out[j] = dataclasses.replace(t, positions=positions[j].copy(), times_s=sw.start_s + positions[j] / fs_hz,
                                     excursions=np.where(found, again.excursions, t.excursions))
    return out


def retime_superimposed_discharges(model, sw, timed, trigger, fs_hz, params):
    """Re-time the discharges with another unit's potential on a potential of the unit,
    and seek it where such a potential made it look blocked
    (:mod:`~sfemg.analysis.superimposed`).

    The model is every kept potential's joint template (estimated at the selection's
    positions) at its final positions (joint timing moves them by µs); the other units'
    templates come, in a continuous recording, from the candidate peaks
    (``sw.busy_cols``) farther than a template's half length from every sweep; windowed
    input, with no signal between the sweeps, has generic broad shapes instead
    (:func:`~sfemg.analysis.superimposed.generic_background`). A potential present in at least two discharges (the
    trigger too) is re-timed from its median position relative to the reference as well
    (its fitted one may be on the other unit's potential); one other than the trigger is
    sought in a discharge it is missing from
    (:func:`~sfemg.analysis.superimposed.find_superimposed`) when the model's residual
    there, around its median position relative to the reference, is flagged as in a
    discharge it is present in (:func:`~sfemg.analysis.superimposed.flag_superimposed`):
    something else lies where it would be. And one other than the trigger, present in a
    flagged discharge that the re-timing did not move, is taken for blocked there when a
    background potential alone explains its window
    (:func:`~sfemg.analysis.superimposed.lost_superimposed`; at most in fewer than half
    of its discharges; not with generic shapes): another unit's potential stood in for it.

    Parameters
    ----------
    model : TemplateModel or None
        From :func:`~sfemg.analysis.selection.select_potentials` (None with a single potential: nothing to do).
    sw : Sweeps
    timed : list of Timed
        The kept potentials, with their final time points.
    trigger : int
        Index of the trigger in ``timed`` (-1 for stimulated recordings): never sought.
    fs_hz : float
    params : AnalysisParams

    Returns
    -------
    list of Timed
        ``timed`` with the re-timed, the found and the lost discharges' time points and
        positions changed.
    """
    if model is None or params.superimposed_ratio <= 0:
        return timed
    n_cols = sw.data_v.shape[1]
    if sw.signal_v is None:  # windowed input: no signal between the sweeps to learn the other units from
        background = generic_background(fs_hz)
    else:
        background = background_templates(sw.signal_v, sw.busy_cols,
                                          np.sort(np.round(sw.start_s * fs_hz).astype(np.int64)), n_cols, fs_hz,
                                          params.detect_threshold_sd * sw.noise_sd)
    if background.templates.shape[0] == 0:
        return timed
    positions = np.array([t.positions for t in timed])
    fit_half = fit_half_window(params, fs_hz)
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
    judged = flagged & (new == positions)  # present, not re-timed
    if trigger >= 0:  # (the reference: never lost)
        judged[trigger] = False
    # (not judged with generic shapes: at a free scale one can stand in for a present potential)
    lost = (lost_superimposed(residual, positions, model.template_spectra, judged, background, fs_hz, fit_half,
                              params.block_fraction) if sw.signal_v is not None else np.zeros(positions.shape, bool))
    lost &= 2 * lost.sum(axis=1, keepdims=True) < present.sum(axis=1, keepdims=True)
    new = np.where(lost, np.nan, new)
    changed = (np.isfinite(new) & (new != positions)) | lost
    return [dataclasses.replace(t, positions=p, times_s=np.where(c, sw.start_s + p / fs_hz, t.times_s),
                                clearly_absent=(t.clearly_absent & ~np.isfinite(f)) | gone)
            if c.any() else t for t, p, c, f, gone in zip(timed, new, changed, found, lost)]


def refine_time_points(model, sw, pots, timed, extents, trigger, spectra, fs_hz, params):
    """The kept potentials' time points refined together (template method with joint timing).

    In turn: blocks decided again with the unit's other potentials taken out
    (:func:`found_without_the_others`), overlapping potentials timed by one joint fit
    (:func:`joint_timing`, with the waveforms' ``extents`` from the selection), and
    discharges with another unit's potential on a potential of the unit re-timed
    (:func:`retime_superimposed_discharges`); the arguments are theirs.

    Returns
    -------
    timed : list of Timed
        With the refined time points, positions and blocks.
    errors : TimingErrors
        Their error covariance.
    """
    timed = found_without_the_others(model, sw, pots, timed, trigger, spectra, fs_hz, params)
    timed, errors = joint_timing(sw.data_v, sw, timed, extents, spectra, fs_hz, params)
    return retime_superimposed_discharges(model, sw, timed, trigger, fs_hz, params), errors
