"""Time points of potentials with sub-sample precision, and the Cramér–Rao bound.

All functions work on *segments*: one row per discharge, the potential near the centre,
multiplied by the potential's polarity so that its main phase is positive. Positions are
returned in samples from the segment's first sample.

The template method is the maximum-likelihood shift of a known waveform in Gaussian noise
of power ``Q_k`` per DFT bin: it maximises ``Re sum_k X_k S_k^* e^{i w_k tau} / Q_k`` by
Newton iterations, with the shift applied exactly in the Fourier domain (sinc
interpolation). The bound on its variance is ``1 / sum_k 2 w_k^2 |S_k|^2 / Q_k``
(bins 1..L/2-1; for white noise this is ``sigma^2 / sum_n s'(n)^2``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.signal

from ._timing_numba import (
    aligned_mean_kernel,
    fit_quality_kernel,
    newton_shift_kernel,
    peak_positions_kernel,
    refine_shifts_kernel,
)
from .detect import fast_median

__all__ = ["peak_positions", "level_positions", "fit_template", "match_template", "fit_taper", "refine_shifts",
           "TemplateFit", "misfit_ratio", "residual_ratios"]

#: A bin enters the fit only if the template's power there exceeds this many times the
#: power of the template's own noise (Q_k / N): bins below it carry (almost) no timing
#: information but would add the template's noise to the estimate.
_BIN_SNR_MIN = 4.0
#: Newton iterations of the shift (quadratic convergence from a sub-sample start).
_NEWTON_STEPS = 3
#: Noise power per bin is floored at this fraction of its maximum: beyond the amplifier's
#: low-pass the measured noise vanishes, and 1/Q weighting would then trust the
#: potential's finest details (which real recordings blur: ADC and amplifier noise floor,
#: shape changes between discharges) as precise timing information.
_NOISE_FLOOR = 1e-4
#: The aliasing-aware refit is used when the folded image carries at least this fraction
#: of the timing information (noise-weighted w^2 |.|^2) of the base band: measured
#: 1e-3 to 5e-3 for ~70 µs phases at 25 kHz (where it matters: a systematic error per
#: sampling phase), 1e-5 to 5e-4 (noise) at 50-100 kHz.
_ALIAS_MIN_FRACTION = 1e-3
#: ... and only when the base band itself carries >= 1 % of its timing information above
#: 0.8 x Nyquist (6-14 % for 70 µs phases at 25 kHz; < 1e-5 at 50-100 kHz).
_NEAR_NYQUIST = 0.8
_ALIAS_MIN_NEAR_NYQUIST = 0.01
#: Fraction of the fit segment tapered (Tukey window): the slow tails of a high-passed
#: potential would otherwise wrap round the segment as a step that the circular (Fourier)
#: shift model reads as timing information.
_TAPER_FRACTION = 0.5
#: Template re-estimation rounds (template <- mean of segments aligned by the last fit).
_TEMPLATE_ROUNDS = 2
#: The aliasing-aware refit alternates image estimation and shifts until no shift moves
#: by more than this, samples (0.02 µs at 25 kHz, a tenth of the bound at 40 dB): the
#: alternation converges linearly (each round about halves a sampling-phase-dependent
#: error); two rounds left ±0.18 µs of it on a triphasic potential at 25 kHz, 1.2 x the
#: bound's MCD at 40 dB.
_ALIAS_TOLERANCE = 5e-4
_ALIAS_MAX_ROUNDS = 20
#: ... and is tried only where the discharges' sampling phases spread: ``1 - |mean
#: e^{i 2 pi tau}|^2`` above this (a phase SD of ~0.016 sample). Judged on the plain fit's
#: shifts, which the image compresses to 0.45-0.65 of the truth at some phases: with
#: stimuli on the sampling clock and 5 µs SD at 25 kHz (~0.12 sample) a limit of 0.25
#: refused the refit and the MCD read -35 to -57 % (docs/analysis-history.md §1).
_ALIAS_MIN_PHASE_SPREAD = 0.01


def peak_positions(segments, search_half=None):
    """Interpolated position of each segment's maximum.

    Parameters
    ----------
    segments : ndarray, shape (n, L)
        Polarity-corrected segments (main phase positive).
    search_half : int, optional
        Seek the maximum only within ± this many samples of the segment's centre (the
        coarse peak), so that noise or another phase elsewhere in the segment cannot win.

    Returns
    -------
    positions : ndarray, shape (n,)
        Parabolic-interpolated position of the maximum, samples.
    peaks : ndarray, shape (n,)
        Value at the largest sample, V.
    """
    seg = np.ascontiguousarray(np.atleast_2d(segments), dtype=np.float64)
    n, length = seg.shape
    lo = 0 if search_half is None else max(0, length // 2 - search_half)
    hi = length if search_half is None else min(length, length // 2 + search_half + 1)
    positions, peaks = np.empty(n), np.empty(n)
    peak_positions_kernel(seg, lo, hi, positions, peaks)
    return positions, peaks


def level_positions(segments, fraction: float, search_half=None):
    """Where the rising phase before the maximum crosses ``fraction`` of the peak.

    Parameters
    ----------
    segments : ndarray, shape (n, L)
        Polarity-corrected segments.
    fraction : float
        Level as a fraction of the peak value (0 < fraction < 1).
    search_half : int, optional
        The peak is sought within ± this many samples of the centre (see
        :func:`peak_positions`).

    Returns
    -------
    ndarray, shape (n,)
        Linearly interpolated crossing position, samples. Where a segment never falls
        below the level before its maximum (another potential on its rising phase), the
        crossing is placed the median rise of the other segments before its interpolated
        peak (the peak itself if none has one): the potential is there, only its level is hidden,
        and a NaN would count as a block.
    """
    seg = np.atleast_2d(segments)
    n, length = seg.shape
    rows = np.arange(n)
    peak = peak_positions(seg, search_half)[0]  # (interpolated)
    peak_i = np.round(peak).astype(np.int64)
    level = fraction * seg[rows, peak_i]
    below = (seg < level[:, None]) & (np.arange(length)[None, :] < peak_i[:, None])
    has = below.any(axis=1)
    last = length - 1 - np.argmax(below[:, ::-1], axis=1)
    last = np.where(has, last, 0)
    y0 = seg[rows, last]
    y1 = seg[rows, np.minimum(last + 1, length - 1)]
    with np.errstate(divide="ignore", invalid="ignore"):
        pos = last + (level - y0) / (y1 - y0)
    rise = fast_median(peak[has] - pos[has]) if has.any() else 0.0
    return np.where(has, pos, peak - rise)


@dataclass(frozen=True)
class TemplateFit:
    """Result of :func:`fit_template`.

    Attributes
    ----------
    positions : ndarray, shape (n,)
        Position of the template's reference point (its peak) in each segment, samples.
    template : ndarray, shape (L,)
        Mean of the aligned segments, its peak at ``reference`` samples, V.
    reference : float
        Position of the template's peak, samples.
    crb_var : float
        Cramér–Rao bound on the variance of a position, samples^2.
    amplitudes : ndarray, shape (n,)
        Least-squares scale of the shifted template in each segment (1 = template size).
    correlations : ndarray, shape (n,)
        Correlation coefficient between each (tapered) segment and the shifted template.
    weights : ndarray, shape (L // 2 + 1,)
        Weight of each DFT bin in the shift search (1 / noise power in the bins where the
        template stands above the noise, 0 elsewhere), 1/V^2.
    """

    positions: np.ndarray
    template: np.ndarray
    reference: float
    crb_var: float
    amplitudes: np.ndarray
    correlations: np.ndarray
    weights: np.ndarray


@functools.lru_cache(maxsize=64)
def fit_taper(length: int, fraction: float = _TAPER_FRACTION):
    """Tukey taper applied to fit segments (and to noise segments for their spectrum).

    Parameters
    ----------
    length : int
        Samples.
    fraction : float
        Tapered fraction of the length (both ends together).

    Returns
    -------
    ndarray, shape (length,)
        Read-only (cached: a recording asks for the same few lengths many times).
    """
    taper = scipy.signal.windows.tukey(length, fraction)
    taper.flags.writeable = False
    return taper


def _omega(length):
    return 2.0 * np.pi * np.arange(length // 2 + 1) / length


def refine_shifts(spectra, template_spec, weight, max_lag, length):
    """Each row's shift against a template: the maximum of the weighted cross-correlation.

    Per row, the cross-spectrum ``X_k S_k^* weight_k`` is evaluated at the integer lags
    ``-max_lag .. max_lag``; the best one, refined by a parabola through its neighbours,
    starts :data:`_NEWTON_STEPS` Newton steps on ``Re sum_k X_k S_k^* weight_k e^{i w_k tau}``.

    Parameters
    ----------
    spectra : ndarray of complex, shape (n, L // 2 + 1)
        DFT of each row.
    template_spec : ndarray of complex, shape (L // 2 + 1,)
        DFT of the template.
    weight : ndarray, shape (L // 2 + 1,)
        Weight per bin (1 / noise power in the bins used, 0 elsewhere).
    max_lag : int
        Integer lags searched either side, samples.
    length : int
        Row length L, samples.

    Returns
    -------
    ndarray, shape (n,)
        Shift ``tau`` of each row that moves it onto the template, samples.
    """
    cross = spectra * (template_spec.conj() * weight)[None, :]
    corr = np.fft.irfft(cross, n=length, axis=1)
    tau = np.empty(spectra.shape[0])
    refine_shifts_kernel(cross, corr, 2.0 * np.pi / length, max_lag, _NEWTON_STEPS, tau)
    return tau


def _fourier_peak(template):
    """Sub-sample position of a waveform's maximum by Newton steps on its Fourier derivative."""
    length = template.size
    spec = np.fft.rfft(template)
    spec[0] = 0.0
    if length % 2 == 0:
        spec[-1] = 0.0
    pos = float(peak_positions(template[None, :])[0][0])
    return newton_shift_kernel(spec, 2.0 * np.pi / length, pos, _NEWTON_STEPS,
                               np.empty(spec.size, dtype=np.complex128))


def _aliasing_refit(spectra, w, inner, q, q_tapered, tau):
    """Refine shifts with an aliasing-aware model, or return None when the image is negligible.

    A potential with content above Nyquist (below fs) puts, in DFT bin k, both its
    base-band component ``a_k`` (frequency w_k) and the folded image of its component at
    ``2 pi - w_k``: ``X_k = e^{-i w_k tau} (a_k + b_k e^{i 2 pi tau})``; the second term
    depends on the sampling phase, so sampled potentials are no longer shifted copies of
    one waveform. ``a`` and ``b`` are estimated per bin by linear least squares over the
    discharges (their sampling phases differ), then scale and shift of each discharge by
    Gauss-Newton with the 1/Q_k weights; the two steps alternate until no shift moves by
    more than :data:`_ALIAS_TOLERANCE` (at most :data:`_ALIAS_MAX_ROUNDS` rounds). Whether
    the image is worth modelling is decided in the first round; a later round that finds
    it negligible ends the refinement with the shifts reached so far.
    """
    n = spectra.shape[0]
    for round_ in range(_ALIAS_MAX_ROUNDS):
        previous = tau
        aligned = spectra * np.exp(1j * w[None, :] * tau[:, None])
        z = np.exp(2j * np.pi * tau)
        sz = z.sum()
        det = n * n - abs(sz) ** 2
        if det <= _ALIAS_MIN_PHASE_SPREAD * n * n:  # sampling phases too alike to separate the image
            return None if round_ == 0 else tau  # later rounds: keep what was refined
        s_y = aligned.sum(axis=0)
        s_zy = (np.conj(z)[:, None] * aligned).sum(axis=0)
        a = (n * s_y - sz * s_zy) / det
        b = (n * s_zy - np.conj(sz) * s_y) / det
        var_b = q_tapered * n / det
        selected = inner & (np.abs(a) ** 2 + np.abs(b) ** 2 > _BIN_SNR_MIN * q_tapered / n)
        weight = np.where(selected, 1.0 / q, 0.0)
        info = weight * w ** 2 * np.abs(a) ** 2
        image = np.sum(weight * w ** 2 * np.maximum(np.abs(b) ** 2 - var_b, 0.0))
        if image < _ALIAS_MIN_FRACTION * info.sum():
            return None if round_ == 0 else tau
        scale = np.ones(n)
        for _ in range(_NEWTON_STEPS + 1):
            rot = np.exp(-1j * w[None, :] * tau[:, None])
            zz = np.exp(2j * np.pi * tau)[:, None]
            model = rot * (a + b * zz)
            d_model = scale[:, None] * rot * (-1j * w * a + 1j * (2 * np.pi - w) * b * zz)
            resid = spectra - scale[:, None] * model
            h11 = np.sum(weight * np.abs(model) ** 2, axis=1)
            h22 = np.sum(weight * np.abs(d_model) ** 2, axis=1)
            h12 = np.sum(weight * (np.conj(model) * d_model).real, axis=1)
            g1 = np.sum(weight * (np.conj(model) * resid).real, axis=1)
            g2 = np.sum(weight * (np.conj(d_model) * resid).real, axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                det_h = h11 * h22 - h12 ** 2
                d_tau = np.where(det_h > 0, (h11 * g2 - h12 * g1) / det_h, 0.0)
                d_scale = np.where(det_h > 0, (h22 * g1 - h12 * g2) / det_h, 0.0)
            scale = scale + d_scale
            tau = tau + np.clip(d_tau, -0.5, 0.5)
        if np.max(np.abs(tau - previous)) < _ALIAS_TOLERANCE:
            break
    return tau


def fit_template(segments, noise_power):
    """Least-squares template time points with sub-sample (Fourier) shift.

    The template is the mean of the segments aligned by the previous round's shifts
    (first round: interpolated peaks); each segment's shift is then the maximum of its
    noise-weighted cross-correlation with the template, started at the best integer lag
    and refined by Newton iterations. When the potential is aliased (content above
    Nyquist, e.g. 70 µs phases at 25 kHz) the shifts are refined with a model that
    includes the folded image (:func:`_aliasing_refit`).

    Parameters
    ----------
    segments : ndarray, shape (n, L)
        Polarity-corrected segments of the present discharges, V.
    noise_power : ndarray, shape (L // 2 + 1,)
        Noise power per DFT bin of an untapered length-L segment, V^2 (as returned by
        :func:`~sfemg.analysis.detect.estimate_noise_spectrum`). The segments are tapered
        by :func:`fit_taper` for the fit; the bound refers to the untapered data, valid
        when the potential lies in the taper's flat middle.

    Returns
    -------
    TemplateFit
    """
    seg = np.atleast_2d(segments)
    n, length = seg.shape
    w = _omega(length)
    k = np.arange(w.size)
    inner = (k >= 1) & (k < length / 2)
    taper = fit_taper(length)
    data = seg * taper[None, :]
    spectra = np.fft.rfft(data, axis=1)
    q = np.maximum(noise_power, _NOISE_FLOOR * noise_power.max())
    q = np.where(q > 0, q, np.inf)
    q_tapered = q * np.sum(taper ** 2) / length  # noise power of a tapered segment
    pos0, _ = peak_positions(seg)
    tau = pos0 - fast_median(pos0)
    w1 = 2.0 * np.pi / length
    template_spec = np.empty(w.size, dtype=np.complex128)
    for _ in range(_TEMPLATE_ROUNDS):
        aligned_mean_kernel(spectra, tau, w1, template_spec)
        power = np.abs(template_spec) ** 2
        selected = inner & (power > _BIN_SNR_MIN * q_tapered / n)
        tau = refine_shifts(spectra, template_spec, np.where(selected, 1.0 / q, 0.0), length // 4, length)
    info = np.where(selected, w ** 2 * power / q, 0.0)
    if np.sum(info[w > _NEAR_NYQUIST * np.pi]) >= _ALIAS_MIN_NEAR_NYQUIST * info.sum():
        refined = _aliasing_refit(spectra, w, inner, q, q_tapered, tau)
        if refined is not None:
            tau = refined
    aligned_mean_kernel(spectra, tau, w1, template_spec)
    template = np.fft.irfft(template_spec, n=length)
    reference = _fourier_peak(template)
    info = np.sum(np.where(selected, 2.0 * w ** 2 * np.maximum(power - q_tapered / n, 0.0) / q, 0.0))
    crb_var = 1.0 / info if info > 0 else float("inf")
    amplitudes, correlations = np.empty(n), np.empty(n)
    fit_quality_kernel(spectra, template_spec, tau, w1, length, amplitudes, correlations)
    return TemplateFit(tau + reference, template, reference, float(crb_var), amplitudes, correlations,
                       np.where(selected, 1.0 / q, 0.0))


def match_template(segments, fit):
    """How well segments hold a fitted potential: scale and correlation of each with the
    fit's template (held fixed), at its best shift.

    Parameters
    ----------
    segments : ndarray, shape (n, L)
        Polarity-corrected segments, V, cut like the fitted ones (around a peak).
    fit : TemplateFit
        From :func:`fit_template` on segments of the same length.

    Returns
    -------
    amplitudes, correlations : ndarray, shape (n,)
        As ``fit.amplitudes`` and ``fit.correlations`` are for the fitted segments (the
        same taper, shift search and bin weights; an aliased potential's segments are
        shifted without the image-aware refit).
    """
    seg = np.atleast_2d(segments)
    n, length = seg.shape
    spectra = np.fft.rfft(seg * fit_taper(length)[None, :], axis=1)
    template_spec = np.fft.rfft(fit.template)
    tau = refine_shifts(spectra, template_spec, fit.weights, length // 4, length)
    amplitudes, correlations = np.empty(n), np.empty(n)
    fit_quality_kernel(spectra, template_spec, tau, 2.0 * np.pi / length, length, amplitudes, correlations)
    return amplitudes, correlations


def _residual_energies(segments, fit):
    """Residual energy of the fit in each segment (tapered segment minus the scaled,
    shifted template), V^2, and the taper's energy (its squares summed)."""
    taper = fit_taper(segments.shape[1])
    data = segments * taper[None, :]
    data = data - data.mean(axis=1, keepdims=True)
    return np.sum(data ** 2, axis=1) * (1.0 - np.clip(fit.correlations, -1.0, 1.0) ** 2), np.sum(taper ** 2)


def residual_ratios(segments, fit, noise_rms_v):
    """Residual energy of the fit in each segment over the energy of noise alone in a
    tapered segment.

    Parameters
    ----------
    segments : ndarray, shape (n, L)
        Polarity-corrected segments, V.
    fit : TemplateFit
    noise_rms_v : float
        Noise RMS, V.

    Returns
    -------
    ndarray, shape (n,)
    """
    residual, taper_energy = _residual_energies(segments, fit)
    return residual / (noise_rms_v ** 2 * taper_energy)


def misfit_ratio(segments, fit, noise_rms_v):
    """How much more than noise the template leaves in a potential's segments: the
    median of :func:`residual_ratios`, at least 1.

    The bound assumes the potential in stationary noise; where other fibres' jittering
    waveforms overlap it (a slow after-phase under another fibre's tail, a peak made of
    two fibres' phases), the time points scatter by about the bound times the square
    root of this ratio.

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
    residual, taper_energy = _residual_energies(segments, fit)
    return max(1.0, fast_median(residual) / (noise_rms_v ** 2 * taper_energy))
