"""Other units' potentials on the unit's: found, modelled, and the potential re-timed.

A background unit's potential that falls on a fibre's in some discharge drags that
discharge's least-squares time point by tens to hundreds of µs: the fit follows
whatever in its window resembles the template. The model of the unit's potentials
(their joint templates at their fitted positions) leaves that other potential in the
residual, so such discharges are found without knowing what the other unit looks
like (:func:`flag_superimposed`). To re-time them the other unit's potential is
modelled too, with a template taken from the recording itself: the recurring
potentials away from the unit's discharges (:func:`background_templates`); in windowed
input, which holds no signal between the unit's discharges, broad generic shapes stand
in for them (:func:`generic_background`). In each
flagged discharge the best-fitting background template and the potential's shift
are fitted in turn (:func:`retime_superimposed`). Such a potential can also make a
fibre look blocked: where something lies in the place of a missing potential, it is
sought the same way, at its least-squares scale (:func:`find_superimposed`). Or it can
pass for a fibre that blocked: where a background potential alone explains a present
potential's window, it is lost (:func:`lost_superimposed`). Method:
docs/analysis.md §2; measured on the simulated studies in §6.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from .._units import to_samples
from ._superimposed_numba import (
    find_kernel,
    group_template_kernel,
    lost_kernel,
    model_residual_kernel,
    retime_kernel,
    window_energy_kernel,
)
from .detect import MIN_GROUP_DECADES, amplitude_groups, fast_median, peak_values
from .timing import fit_taper

__all__ = ["Background", "background_templates", "generic_background", "model_residual", "window_energy",
           "flag_superimposed", "retime_superimposed", "find_superimposed", "lost_superimposed"]

#: Half-length of a background template, µs: a distant unit's potential, high-passed,
#: lasts 1-2 ms.
_BACKGROUND_HALF_US = 1000.0
#: A background potential recurs: an amplitude group of at least this many candidate
#: peaks (a unit firing at 7-14 Hz gives ~70-140 in 10 s).
_MIN_COUNT = 20
#: ... centred at least this many times the detection threshold (0.12 decade, a group's
#: least half-width): the members of a group at the threshold are picked by it, partly
#: noise peaks, and a template of them fitted where none is (a simulated 25 kHz study:
#: a 0.055 mV template, 4.8 noise SDs, kept a discharge 400 µs off from being re-timed).
_ABOVE_THRESHOLD = 10 ** MIN_GROUP_DECADES
#: ... and is consistent: the median correlation of its members with their mean.
_MIN_CORRELATION = 0.85
#: A template's outer eighths are tapered (Tukey window of this fraction) to zero: a
#: unit's potential can reach beyond ±_BACKGROUND_HALF_US (its edge samples were up to
#: 0.76 of its peak on a simulated study), and the sub-sample shifts are circular.
#: (Tapered, or learnt over ±1.5 ms: the simulated studies' figures unchanged.)
_TEMPLATE_TAPER = 0.25
#: Members are aligned on their mean within ± this many samples.
_ALIGN_LAGS = 3
#: At most this many members (evenly spread over the recording) make a template: its
#: noise is then ~16 % of the recording's, and a group of noise peaks has thousands.
_MAX_MEMBERS = 40
#: The background is sought first on a grid of this step (every that many samples of
#: the template, too), then at every sample near the best: a distant unit's potential
#: is broad, its phases hundreds of µs long.
_COARSE_STEP_US = 40.0
#: Scale of a background template in a fit: a unit's potential keeps its size.
_MIN_SCALE, _MAX_SCALE = 0.6, 1.6
#: Generic background shapes (:func:`generic_background`): a Gaussian and its first and
#: second derivatives of these SDs, µs (main phases ~200-800 µs wide: a distant unit's
#: potential, high-passed, is broad; the narrowest is still three times a near fibre's
#: 70 µs phase, so none fits the unit's own potentials).
_GENERIC_SD_US = (100.0, 200.0, 400.0)
#: Half-width of the stretch around a potential whose residual energy flags it, µs: its
#: main phases (±150-600 µs flagged the same discharges within a few on the simulated
#: studies).
_FLAG_HALF_US = 300.0
#: Re-timing: the potential's shift is searched within ± this of its fitted one, µs, at
#: whole samples, then in steps of _GRID_STEP_SAMPLES within one sample of the best,
#: refined by a parabola; background and shift are fitted in turn _ROUNDS times
#: (simulated seeds 1-6, while tuning: 1 round left the median MCD error at 1.6 %, 2
#: and 3 rounds at 1.4 %, within-target the same, 0.68-0.69).
_SHIFT_RANGE_US = 100.0
_GRID_STEP_SAMPLES = 0.25
_ROUNDS = 2
#: A re-timing is kept when it leaves at most this fraction of the residual energy
#: the fit window had: the other unit's potential is then explained, not one of its
#: look-alikes fitted to noise.
_ACCEPT_FRACTION = 0.3
#: ... and a re-timing from where the potential typically lies is taken instead when its
#: misfit is below this fraction of the one from the fitted position (or of the
#: residual energy there, if smaller): a margin, as the two misfits are over windows
#: centred apart. (Default simulated scenarios, SFE, seeds 1-5: the 830 flagged
#: discharges of matched non-trigger potentials, > 20 µs off: 83 -> 49 at 0.8, 46 at
#: 1.0, 52 at 0.5; moved > 5 µs the wrong way: 9, 14 and 6; the other way 71, 81, 57.)
_BETTER_FRACTION = 0.8
#: ... and, where no background fits at all beside the potential at its fitted position
#: (the first fit's misfit inf), only when it moves the potential by more than this
#: from there, µs: the fit from the typical place then fits a background to the
#: potential's own misplaced waveform (the data less it there) and moves it by 10-40 µs
#: (simulated, the default scenarios' seeds 1-5 and healthy and MG concentric seeds
#: 1-3, matched non-trigger potentials: 9 of the 12 such moves under 50 µs went away
#: from the truth; the 11 over it took potentials 53-470 µs off to 1-29 µs).
_LONE_MOVE_US = 50.0
#: A potential sought in a discharge it seemed blocked in is found there when it and a
#: background potential leave at most this fraction of its fitted energy in its fit
#: window unexplained: on an analytic recording (30 dB) 0.5-1.6 % where it was there
#: under another unit's potential, 28 % where it was blocked and another unit's
#: potential lay in its place (its scale there 0.62-0.65: the size alone does not
#: tell); noise alone at 20 dB leaves ~3 %.
_FOUND_MISFIT = 0.1
#: A potential present in a flagged discharge that the re-timing left where it was is
#: lost there (another unit's potential stands in for it) when a background potential
#: alone leaves at most _LOST_MISFIT of the potential's own energy in its fit window
#: unexplained (the rule of _FOUND_MISFIT with the two roles swapped) and at most
#: _LOST_BETTER of what the potential, at its least-squares scale, leaves there.
#: Simulated (default scenarios, seeds 1-12, every such discharge of a potential matched
#: to a fibre): the one where the fibre had blocked left 0.087 of the potential's
#: misfit, those where it fired 0.39 or more. The potential at unit scale instead, a
#: fibre ~0.7 of its size in one discharge (achr-mg-severe) was lost at 0.098; judged
#: also where the re-timing moved the potential, 13 discharges that fired were (a
#: background template of the fibre's shape fits the fibre the re-timing moved off).
_LOST_MISFIT = 0.1
_LOST_BETTER = 0.1


#: Sub-sample phases the potentials' and the background templates are prepared at: a
#: shift on the _GRID_STEP_SAMPLES grid is then an integer shift of one of them (no DFT
#: per discharge); the background's place is rounded to them (±1/8 sample).
_PHASES = int(round(1.0 / _GRID_STEP_SAMPLES))


@functools.lru_cache(maxsize=16)
def _phase_factors(length):
    """``e^{-i w_k f}`` for the DFT bins of ``length`` and f = 0, 1/_PHASES, ...: shape
    (_PHASES, length // 2 + 1), read-only (a recording asks for the same few lengths)."""
    w = 2.0 * np.pi * np.arange(length // 2 + 1) / length
    factors = np.exp(-1j * w[None, :] * (np.arange(_PHASES) / _PHASES)[:, None])
    factors.flags.writeable = False
    return factors


def _phases(waveform_spectra, length):
    """Waveforms (DFT, reference at sample 0) shifted by 0, 1/_PHASES, ... samples.

    Parameters
    ----------
    waveform_spectra : ndarray of complex, shape (m, length // 2 + 1)
        DFT of each waveform (V), its reference at sample 0.
    length : int
        Samples of the waveforms.

    Returns
    -------
    ndarray, shape (m, _PHASES, length)
        V; circular shifts.
    """
    return np.fft.irfft(waveform_spectra[:, None, :] * _phase_factors(length)[None], n=length, axis=2)


class Background(NamedTuple):
    """What stands in for other units' potentials in the re-timing's fits."""

    templates: np.ndarray  # (m, _PHASES, 2 * half + 1): each centred on sample half, at sub-sample shifts
    min_scale: float       # the range of a template's least-squares scale in a fit
    max_scale: float


def generic_background(fs_hz):
    """Broad generic shapes for other units' potentials, where the recording holds no
    signal between the unit's discharges to learn them from (windowed input): a
    Gaussian and its first and second derivatives of each SD in :data:`_GENERIC_SD_US`,
    each polarity, peak 1, tapered as :func:`background_templates`' are; their scale
    is free (>= 0). On the simulator's voluntary sweeps (default scenarios, seeds 1-3)
    the MCDs of the pairs matched to fibres came within max(0.5 µs, 3 %) of the truth
    in 69 of 86 against 62 without them (the same recordings made continuous, with
    their own templates: 70 of 88), and the blocks wrong went 3 -> 0.

    Returns
    -------
    Background
    """
    half = to_samples(_BACKGROUND_HALF_US * 1e-6, fs_hz)
    t_s = np.arange(-half, half + 1) / fs_hz
    shapes = []
    for sd_us in _GENERIC_SD_US:
        u = t_s / (sd_us * 1e-6)
        gauss = np.exp(-0.5 * u * u)
        for shape in (gauss, -u * gauss, (1.0 - u * u) * gauss):
            shapes += [shape / np.abs(shape).max(), -shape / np.abs(shape).max()]
    size = 2 * half + 1
    return Background(_phases(np.fft.rfft(np.array(shapes) * fit_taper(size, _TEMPLATE_TAPER), axis=1), size),
                      0.0, np.inf)


def background_templates(signal_v, cols, sweep_starts, sweep_length, fs_hz, threshold_v):
    """Templates of the recurring potentials of other units.

    Parameters
    ----------
    signal_v : ndarray, shape (n_samples,)
        The continuous recording, V.
    cols : ndarray of int, shape (n_candidates,)
        Candidate peaks of the recording (samples); those farther than a template's half
        length from every sweep of the unit are used.
    sweep_starts : ndarray of int, shape (n_sweeps,)
        First sample of each of the unit's sweeps, increasing.
    sweep_length : int
        Samples per sweep.
    fs_hz : float
    threshold_v : float
        The candidates' detection threshold, V: groups centred less than
        :data:`_ABOVE_THRESHOLD` times it are not templates.

    Returns
    -------
    Background
        Its templates, shape (n_templates, _PHASES, 2 * half + 1), each centred on its
        group's peak (sample ``half``), V, its ends tapered
        (:data:`_TEMPLATE_TAPER`), shifted by 0, 1/_PHASES, ... samples (:func:`_phases`,
        circular); ``half`` is :data:`_BACKGROUND_HALF_US` in samples. A template is the
        mean of (at most :data:`_MAX_MEMBERS` of) a group's members, each aligned on
        their unaligned mean within ±:data:`_ALIGN_LAGS` samples
        (:func:`~sfemg.analysis._superimposed_numba.group_template_kernel`). Groups are
        those of :func:`~sfemg.analysis.detect.amplitude_groups` with at least
        :data:`_MIN_COUNT` members, kept when their median correlation with the template
        is at least :data:`_MIN_CORRELATION`; a unit with several large phases gives one
        template per phase; their scale within [:data:`_MIN_SCALE`, :data:`_MAX_SCALE`].
    """
    half = to_samples(_BACKGROUND_HALF_US * 1e-6, fs_hz)
    before = np.searchsorted(sweep_starts, cols + half, side="right") - 1  # the last sweep starting before
    away = (before < 0) | (cols - half >= sweep_starts[np.maximum(before, 0)] + sweep_length)
    inside = away & (cols >= half + _ALIGN_LAGS) & (cols < signal_v.size - half - _ALIGN_LAGS)
    cols = cols[inside]
    amplitudes_v = peak_values(signal_v, np.zeros(cols.size, dtype=np.int64), cols)
    signal = np.ascontiguousarray(signal_v, dtype=np.float64)
    size = 2 * half + 1
    templates = []
    for centre, _, members in amplitude_groups(amplitudes_v, _MIN_COUNT):
        if 10 ** centre < _ABOVE_THRESHOLD * threshold_v:
            continue
        chosen = members[np.linspace(0, members.size - 1, min(members.size, _MAX_MEMBERS)).astype(np.int64)]
        template = np.empty(size)
        if group_template_kernel(signal, cols[chosen], half, _ALIGN_LAGS, template) >= _MIN_CORRELATION:
            templates.append(template)
    if not templates:
        return Background(np.empty((0, _PHASES, size)), _MIN_SCALE, _MAX_SCALE)
    return Background(_phases(np.fft.rfft(np.array(templates) * fit_taper(size, _TEMPLATE_TAPER), axis=1), size),
                      _MIN_SCALE, _MAX_SCALE)


def model_residual(spectra, template_spectra, positions, length):
    """The sweeps less the potentials' templates placed at their positions (DFT).

    Parameters
    ----------
    spectra : ndarray of complex, shape (n, L // 2 + 1)
        DFT of the sweeps (length L), V.
    template_spectra : ndarray of complex, shape (K, L // 2 + 1)
        DFT of each potential's template, its reference at sample 0.
    positions : ndarray, shape (K, n)
        Samples; NaN where a potential is absent.
    length : int
        L, samples.

    Returns
    -------
    ndarray of complex, shape (n, L // 2 + 1)
        (:func:`~sfemg.analysis._superimposed_numba.model_residual_kernel`)
    """
    return model_residual_kernel(np.ascontiguousarray(spectra), np.ascontiguousarray(template_spectra),
                                 np.ascontiguousarray(positions, dtype=np.float64), 2.0 * np.pi / length,
                                 np.empty_like(spectra))


def window_energy(rows_v, positions, half):
    """Energy of each row within ± ``half`` samples of each position (columns clipped to
    the row; :func:`~sfemg.analysis._superimposed_numba.window_energy_kernel`).

    Parameters
    ----------
    rows_v : ndarray, shape (n, L)
        V.
    positions : ndarray, shape (K, n)
        Samples; NaN where absent.
    half : int

    Returns
    -------
    ndarray, shape (K, n)
        V^2 (sum of squares); NaN where the position is NaN (absent).
    """
    return window_energy_kernel(np.ascontiguousarray(rows_v, dtype=np.float64),
                                np.ascontiguousarray(positions, dtype=np.float64), int(half),
                                np.empty(np.shape(positions)))


def flag_superimposed(residual_v, positions, noise_sd_v, fs_hz, ratio, at=None):
    """Discharges in which another potential lies on a potential of the unit.

    Where potential k is present in sweep i, the residual energy within
    ±:data:`_FLAG_HALF_US` of it is compared with its median over the sweeps (at least
    the noise energy there): another unit's potential leaves its own energy there.
    Noise alone, band-limited (500 Hz-10 kHz over 600 µs: ~12 degrees of freedom),
    exceeds 8× its median with probability < 10^-12 (4×: ~10^-5).

    Parameters
    ----------
    residual_v : ndarray, shape (n, L)
        Sweeps minus the model of all the unit's potentials, V.
    positions : ndarray, shape (K, n)
        The potentials' reference positions, samples; NaN where absent.
    noise_sd_v : float
        Robust noise SD of the recording, V.
    fs_hz : float
    ratio : float
        Flag above this many times the median window energy (``superimposed_ratio``).
    at : ndarray, shape (K, n), optional
        Judge these positions instead (samples, NaN where not judged; e.g. where a
        potential would be in the discharges it is missing from), against the same
        median at ``positions``.

    Returns
    -------
    ndarray of bool, shape (K, n)
        False where the position judged is NaN.
    """
    half = to_samples(_FLAG_HALF_US * 1e-6, fs_hz, minimum=1)
    energy = window_energy(residual_v, positions, half)
    judged = energy if at is None else window_energy(residual_v, at, half)
    out = np.zeros(positions.shape, dtype=bool)
    for k, (e, j) in enumerate(zip(energy, judged)):
        present, there = np.isfinite(e), np.isfinite(j)
        if present.any():
            out[k, there] = j[there] > ratio * max(fast_median(e[present]), (2 * half + 1) * noise_sd_v ** 2)
    return out


def retime_superimposed(residual_v, positions, typical, template_spectra, flagged, background, fs_hz, fit_half):
    """Re-time flagged discharges with the other unit's potential modelled.

    In sweep i, potential k's data are the sweep less the other potentials' model
    (``residual + model_k``). From its fitted position, and again from where it
    typically lies (``typical``: the fitted position may be on the other unit's
    potential, farther from the fibre than the shifts tried), in turn,
    :data:`_ROUNDS` times:

    * the background template, place and scale that take most energy out of what the
      potential at its current shift leaves in its fit window ``[lo, hi)`` (places
      overlapping the window, every :data:`_COARSE_STEP_US` and then every sample near
      the best; scale by least squares over the whole template, within the
      background's range; the place refined by a parabola to the
      nearest of :data:`_PHASES` sub-sample shifts);
    * the shift (±:data:`_SHIFT_RANGE_US`: every whole sample, then every
      :data:`_GRID_STEP_SAMPLES` within one sample of the best, and a parabola) that fits
      the data less that background best in ± ``fit_half`` around the fitted position.

    A new shift is kept when the misfit there falls below :data:`_ACCEPT_FRACTION` of
    the residual energy the window had (less the potential where the fit started); the
    second when its misfit is also below :data:`_BETTER_FRACTION` of the first's (or of
    the first window's residual energy, if smaller) and, where no background fitted at
    all beside the first (misfit inf), it moves the potential by more than
    :data:`_LONE_MOVE_US` from its fitted position
    (:func:`~sfemg.analysis._superimposed_numba.retime_kernel`).

    Parameters
    ----------
    residual_v : ndarray, shape (n, L)
        Sweeps minus the model of all the unit's potentials, V.
    positions : ndarray, shape (K, n)
        Their positions, samples (NaN where absent).
    typical : ndarray, shape (K, n)
        Where each potential typically lies in each discharge, samples (NaN: the second
        fit is not tried).
    template_spectra : ndarray of complex, shape (K, L // 2 + 1)
        DFT of each potential's joint template, its reference at sample 0.
    flagged : ndarray of bool, shape (K, n)
        From :func:`flag_superimposed`.
    background : Background
        The other units' templates (:func:`background_templates`) or generic shapes
        (:func:`generic_background`).
    fs_hz : float
    fit_half : int
        Half-length of the fit window, samples.

    Returns
    -------
    ndarray, shape (K, n)
        ``positions`` with the re-timed discharges' changed.
    """
    out = positions.copy()
    if background.templates.shape[0] == 0 or not flagged.any():
        return out
    length = residual_v.shape[1]
    potential, row = np.nonzero(flagged)
    starts = positions[potential, row]
    residual = np.ascontiguousarray(residual_v[row])
    new = retime_kernel(_with_own(residual, template_spectra[potential], starts), residual, starts,
                        np.ascontiguousarray(typical[potential, row]),
                        potential.astype(np.int64),
                        *_search_arguments(template_spectra, potential, background, fs_hz, fit_half, length),
                        _ACCEPT_FRACTION, _BETTER_FRACTION, _LONE_MOVE_US * 1e-6 * fs_hz, np.empty(starts.size))
    kept = np.isfinite(new)
    out[potential[kept], row[kept]] = new[kept]
    return out


def find_superimposed(residual_v, expected, template_spectra, flagged, background, fs_hz, fit_half, present_scale):
    """Seek potentials in discharges judged blocked where another unit's potential lies.

    Another unit's potential on a fibre's can make it look absent: its opposite phase
    cancels the fibre's peak, or its own peak in the search window takes the fit off the
    fibre. In each flagged discharge a background template and the fibre's (at its
    least-squares scale) are fitted in turn as in :func:`retime_superimposed`, the
    fibre's shift within ±:data:`_SHIFT_RANGE_US` of where it is expected; it is present
    when its scale is within [``present_scale``, 1 / ``present_scale``] (a potential
    keeps its size) and what the two leave unexplained in
    its fit window is at most :data:`_FOUND_MISFIT` of its fitted energy
    (:func:`~sfemg.analysis._superimposed_numba.find_kernel`).

    Parameters
    ----------
    residual_v : ndarray, shape (n, L)
        Sweeps minus the model of the unit's potentials (those present), V.
    expected : ndarray, shape (K, n)
        Where each potential would be in the discharges it is missing from, samples.
    template_spectra : ndarray of complex, shape (K, L // 2 + 1)
        DFT of each potential's joint template, its reference at sample 0.
    flagged : ndarray of bool, shape (K, n)
        The discharges to seek it in (:func:`flag_superimposed` at ``expected``; where
        ``expected`` is NaN it is not sought).
    background : Background
        The other units' templates (:func:`background_templates`) or generic shapes
        (:func:`generic_background`).
    fs_hz : float
    fit_half : int
        Half-length of the fit window, samples.
    present_scale : float
        The least scale of a present potential (``block_fraction``); its reciprocal the
        largest.

    Returns
    -------
    ndarray, shape (K, n)
        The positions found, samples; NaN elsewhere.
    """
    out = np.full(expected.shape, np.nan)
    flagged = flagged & np.isfinite(expected)
    if background.templates.shape[0] == 0 or not flagged.any():
        return out
    length = residual_v.shape[1]
    potential, row = np.nonzero(flagged)
    out[potential, row] = find_kernel(np.ascontiguousarray(residual_v[row]), expected[potential, row],
                                      potential.astype(np.int64),
                                      *_search_arguments(template_spectra, potential, background, fs_hz, fit_half,
                                                         length),
                                      float(present_scale), _FOUND_MISFIT, np.empty(row.size))
    return out


def lost_superimposed(residual_v, positions, template_spectra, flagged, background, fs_hz, fit_half, present_scale):
    """Discharges in which another unit's potential stands in for a blocked one.

    In a jittery fibre's wide search window another unit's potential can pass for it
    where it blocked: its template fit settles there, and the model's residual is
    flagged. In each discharge judged, the background template, place and scale that
    take most energy out of the potential's fit window of the sweep less the other
    potentials are fitted with the potential left out; it is lost there when what that
    background leaves is at most :data:`_LOST_MISFIT` of the potential's own energy in
    the window and at most :data:`_LOST_BETTER` of what the potential itself, at its
    least-squares scale within [``present_scale``, 1 / ``present_scale``], leaves
    there (:func:`~sfemg.analysis._superimposed_numba.lost_kernel`): the other unit's
    potential explains the window alone, far better than the potential. Where the
    potential is there beside it, the background leaves the potential's own energy.

    Parameters
    ----------
    residual_v : ndarray, shape (n, L)
        Sweeps minus the model of all the unit's potentials at ``positions``, V.
    positions : ndarray, shape (K, n)
        Their positions, samples (NaN where absent).
    template_spectra : ndarray of complex, shape (K, L // 2 + 1)
        DFT of each potential's joint template, its reference at sample 0.
    flagged : ndarray of bool, shape (K, n)
        The discharges to judge (:func:`flag_superimposed`; not where the position is
        NaN).
    background, fs_hz, fit_half, present_scale
        As in :func:`find_superimposed`.

    Returns
    -------
    ndarray of bool, shape (K, n)
        True where the potential is lost.
    """
    out = np.zeros(positions.shape, dtype=bool)
    flagged = flagged & np.isfinite(positions)
    if background.templates.shape[0] == 0 or not flagged.any():
        return out
    length = residual_v.shape[1]
    potential, row = np.nonzero(flagged)
    starts = positions[potential, row]
    data = _with_own(np.ascontiguousarray(residual_v[row]), template_spectra[potential], starts)
    phases, templates, energy, coarse_energy, stride, fit_half, _, _, min_scale, max_scale = _search_arguments(
        template_spectra, potential, background, fs_hz, fit_half, length)
    out[potential, row] = lost_kernel(data, starts, potential.astype(np.int64), phases, templates, energy,
                                      coarse_energy, stride, fit_half, min_scale, max_scale, float(present_scale),
                                      _LOST_MISFIT, _LOST_BETTER, np.empty(row.size, dtype=np.bool_))
    return out


def _with_own(residual, template_spectra, starts):
    """Rows of the residual with each one's potential added back at its position (the
    sweep less the other potentials' model), V: shape (n_items, L)."""
    length = residual.shape[1]
    w = 2.0 * np.pi * np.arange(template_spectra.shape[1]) / length
    return residual + np.fft.irfft(template_spectra * np.exp(-1j * w[None, :] * starts[:, None]), n=length, axis=1)


def _search_arguments(template_spectra, potential, background, fs_hz, fit_half, length):
    """The kernels' arguments from ``phases`` to ``max_scale``
    (:func:`~sfemg.analysis._superimposed_numba.retime_kernel`): the potentials'
    templates at sub-sample shifts (those of ``potential`` only), the background's
    energies and coarse stride, the shift grid, the background's scale range."""
    reach = np.ceil(_SHIFT_RANGE_US * 1e-6 * fs_hz * _PHASES)
    stride = to_samples(_COARSE_STEP_US * 1e-6, fs_hz, minimum=1)
    phase0 = np.ascontiguousarray(background.templates[:, 0, :])
    used = np.unique(potential)
    phases = np.zeros((template_spectra.shape[0], _PHASES, length))
    phases[used] = _phases(template_spectra[used], length)
    return (phases, background.templates, np.sum(phase0 ** 2, axis=1), np.sum(phase0[:, ::stride] ** 2, axis=1),
            stride, int(fit_half), np.arange(-reach, reach + 1) / _PHASES, _ROUNDS, background.min_scale,
            background.max_scale)
