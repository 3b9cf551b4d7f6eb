"""Numba kernels behind :mod:`sfemg.analysis.timing` (see :func:`~sfemg.analysis.timing.peak_positions`,
:func:`~sfemg.analysis.timing.refine_shifts` and :func:`~sfemg.analysis.timing.fit_template`).

They work on DFT bins ``k = 0 .. K-1`` of length-L rows, frequency ``w_k = k * w1`` with
``w1 = 2 pi / L``, so ``e^{i w_k tau}`` is the k-th power of ``e^{i w1 tau}``: one sine
and cosine per row instead of one per bin (the powers drift by ~k ulp, 1e-13 rad at
k = 300).
"""

from __future__ import annotations

import math

import numpy as np

from .._numba import jit


@jit
def peak_offset(y_m, y_0, y_p):  # pragma: no cover - compiled
    """Offset from the middle sample of the vertex of the parabola through three evenly
    spaced values, when it is a maximum (clipped to ±1/2 sample); else 0."""
    den = y_m - 2.0 * y_0 + y_p
    off = 0.5 * (y_m - y_p) / den if den < 0.0 else 0.0
    return min(max(off, -0.5), 0.5)


@jit
def _powers(z, out_row):  # pragma: no cover - compiled
    """``out_row[k] = z**k`` by repeated multiplication."""
    p = 1.0 + 0.0j
    for k in range(out_row.shape[0]):
        out_row[k] = p
        p *= z


@jit
def newton_shift_kernel(cross, w1, tau, n_steps, ph):  # pragma: no cover - compiled
    """Newton steps on ``tau`` maximising ``Re sum_k cross_k e^{i w_k tau}`` (steps clipped to ±½)."""
    for _ in range(n_steps):
        _powers(complex(math.cos(w1 * tau), math.sin(w1 * tau)), ph)
        d1 = 0.0
        d2 = 0.0
        for k in range(cross.shape[0]):
            v = cross[k] * ph[k]
            wk = k * w1
            d1 -= wk * v.imag
            d2 -= wk * wk * v.real
        step = d1 / d2 if d2 < 0.0 else 0.0
        tau -= min(max(step, -0.5), 0.5)
    return tau


@jit
def refine_shifts_kernel(cross, corr, w1, max_lag, n_steps, tau):  # pragma: no cover - compiled
    """Per row: best lag of ``corr`` (the inverse DFT of ``cross``) in ``[-max_lag, max_lag]``
    (first of equals), vertex of the parabola through it and its neighbours, then Newton
    steps on ``Re sum_k cross_k e^{i w_k tau}``; writes ``tau``."""
    n, length = corr.shape
    n_lags = 2 * max_lag + 1
    ph = np.empty(cross.shape[1], dtype=np.complex128)
    for i in range(n):
        best = 0
        for m in range(1, n_lags):
            if corr[i, (m - max_lag) % length] > corr[i, (best - max_lag) % length]:
                best = m
        best = min(max(best, 1), n_lags - 2)
        start = (best - max_lag) + peak_offset(corr[i, (best - 1 - max_lag) % length],
                                               corr[i, (best - max_lag) % length],
                                               corr[i, (best + 1 - max_lag) % length])
        tau[i] = newton_shift_kernel(cross[i], w1, start, n_steps, ph)


@jit
def aligned_mean_kernel(spectra, tau, w1, out):  # pragma: no cover - compiled
    """``out[k] = mean_i spectra[i, k] e^{i k w1 tau[i]}``: the rows' mean, each moved by its shift."""
    n, n_bins = spectra.shape
    out[:] = 0.0
    ph = np.empty(n_bins, dtype=np.complex128)
    for i in range(n):
        _powers(complex(math.cos(w1 * tau[i]), math.sin(w1 * tau[i])), ph)
        for k in range(n_bins):
            out[k] += spectra[i, k] * ph[k]
    for k in range(n_bins):
        out[k] /= n


@jit
def fit_quality_kernel(spectra, template_spec, tau, w1, length, amplitudes,
                       correlations):  # pragma: no cover - compiled
    """Least-squares scale and correlation of each row with the template moved to its shift.

    By Parseval over the real DFT (bins 1 .. L/2 counted twice, a Nyquist bin once and by
    its real part, as an inverse real FFT reads it; bin 0 left out, i.e. both means
    removed): ``dot_i = sum_t d_i(t) s_i(t)`` with ``s_i`` the template read ``tau_i``
    later, ``amplitudes = dot / |s|^2``, ``correlations = dot / (|d| |s|)``.
    """
    n, n_bins = spectra.shape
    nyquist = n_bins - 1 if length % 2 == 0 else -1
    ph = np.empty(n_bins, dtype=np.complex128)
    for i in range(n):
        _powers(complex(math.cos(w1 * tau[i]), -math.sin(w1 * tau[i])), ph)
        dot = 0.0
        energy = 0.0
        data_energy = 0.0
        for k in range(1, n_bins):
            s = template_spec[k] * ph[k]
            d = spectra[i, k]
            if k == nyquist:
                dot += d.real * s.real
                energy += s.real * s.real
                data_energy += d.real * d.real
            else:
                dot += 2.0 * (d.real * s.real + d.imag * s.imag)
                energy += 2.0 * (s.real * s.real + s.imag * s.imag)
                data_energy += 2.0 * (d.real * d.real + d.imag * d.imag)
        amplitudes[i] = dot / energy if energy > 0.0 else np.nan
        correlations[i] = dot / math.sqrt(energy * data_energy) if energy * data_energy > 0.0 else np.nan


@jit
def peak_positions_kernel(segments, lo, hi, positions, peaks):  # pragma: no cover - compiled
    """Per row: the first largest sample within columns ``[lo, hi)``, moved to ``[1, L-2]``,
    and the vertex of the parabola through it and its neighbours (offset 0 unless the
    parabola opens downwards, clipped to ±½ sample): ``positions`` (samples) and the
    sample's value ``peaks``."""
    n, length = segments.shape
    for r in range(n):
        best = lo
        for j in range(lo + 1, hi):
            if segments[r, j] > segments[r, best]:
                best = j
        i = min(max(best, 1), length - 2)
        positions[r] = i + peak_offset(segments[r, i - 1], segments[r, i], segments[r, i + 1])
        peaks[r] = segments[r, i]
