"""Joint time points of overlapping potentials: all shifts of all sweeps fitted at once.

Timing each potential on its own segment (:func:`~sfemg.analysis.timing.fit_template`)
is biased where another fibre's waveform lies in the segment: the template, the mean of
segments aligned on this potential, holds the other waveform blurred by their relative
jitter, and each sweep's fit is dragged towards the other potential by a fixed fraction
of their relative shift (measured on simulated recordings: the later spike moved by up
to -0.18 x the relative jitter, so the MCD came out up to 12-18 % low; docs/analysis-history.md §1).

The model here is every sweep as the sum of all kept potentials' templates, each at its
own shift: ``X_ik = sum_j a_ij S_jk e^{-i w_k tau_ij} + noise`` per DFT bin ``k``
(``a_ij`` 1 where potential j is present). Given the shifts, the templates are the
per-bin least-squares solution; they are *profiled out* (variable projection) and the
shifts of all sweeps and potentials are fitted together by Gauss-Newton on the
noise-weighted residual, the template's dependence on the shifts included through the
projection (Kaufman's approximation). Alternating template and shift updates instead
(peel-off, or a per-sweep joint fit with templates held fixed) barely moves along the
direction that matters: to first order in the jitter, "part of one potential's waveform
in the other's template, and the relative shifts scaled by 1 + kappa" explains the data
as well as the truth, and only the second-order (curvature) terms pin kappa. The
projected Gauss-Newton step sees that direction and reaches the joint least-squares
optimum in a few steps.

Sweeps that the model fits much worse than the median (a background unit's potential
superimposed) are left out of the template estimate and then timed with the templates
held fixed; they are judged at the starting positions already, so that they do not
drag the first step, and again after every step.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.fft import next_fast_len
from scipy.linalg import solve_triangular

from .._blas import one_blas_thread
from ._joint_numba import (
    add_sweep_blocks_kernel,
    damped_solve_kernel,
    fixed_template_shifts_kernel,
    normal_parts_kernel,
)
from .detect import fast_median
from .timing import _BIN_SNR_MIN, _NOISE_FLOOR

__all__ = ["ShiftCovariance", "fit_window", "joint_positions", "joint_templates"]

#: Gauss-Newton steps on all shifts (converged to < 0.03 sample in 2-3 on simulated studies
#: of two potentials; with a slow after-phase as a third, often not in 6, nor in 40).
_STEPS = 6
#: ... or until no shift changes by more than this, samples, and the sweeps left out stay
#: the same: 0.03 sample is 0.6 µs at 50 kHz, against per-discharge timing errors of 1-3 µs
#: (on 60 simulated pairs the MCDs moved by <= 0.02 µs against 0.01; 0.001 took 23 % more
#: steps for the same results; 0.05 moved one pair by 0.14 µs).
_CONVERGED = 3e-2
#: Gauss-Newton steps of the sweeps left out, with the templates held fixed.
_FIXED_STEPS = 3
#: Largest shift change per step, samples.
_MAX_STEP = 0.5
#: Bins below this frequency are not fitted, Hz: below the amplifier's high-pass the
#: measured noise power vanishes and 1/Q would trust the sweeps' slow drifts.
_MIN_FREQ_HZ = 300.0
# A bin is fitted only if the templates' power there exceeds _BIN_SNR_MIN times the power
# of their own noise, and the noise power per bin is floored at _NOISE_FLOOR of its
# maximum: the template fit's own rules (sfemg.analysis.timing), imported from there.
#: A sweep whose residual energy (noise-weighted, fitted bins) exceeds this many times
#: the median is left out of the template estimate (another unit's potential on it).
_OUTLIER_RATIO = 3.0
#: Relative Levenberg damping of the shift equations; the common shift of each
#: potential (a shift of its template) is undetermined and set by keeping the mean
#: shift change zero.
_DAMPING = 1e-6
#: Ridge on the per-bin template equations, per sweep (numerical only: a ridge the size
#: of the one used for potential selection, 1e-3, shrinks the part of the templates
#: that tells them apart and biases the relative shifts by several per cent).
_TEMPLATE_RIDGE = 1e-9


def _less_common_shift(values, free):
    """``values`` (shape (K, n)) less each potential's mean over its free entries there
    (``free``, bool): a common shift of a potential is a shift of its template."""
    return values - free * (np.sum(np.where(free, values, 0.0), axis=1, keepdims=True)
                            / np.maximum(free.sum(axis=1, keepdims=True), 1))


@dataclasses.dataclass(frozen=True)
class ShiftCovariance:
    """Error covariance of the jointly fitted shifts, to first order.

    The template-profiled least-squares objective of :func:`joint_positions` is, up to
    a constant, minus the log-likelihood of the sweeps in complex Gaussian noise of power
    ``Q_k`` per bin (``1 / Q_k`` its weights), so the shifts' covariance is half the
    inverse of its Gauss-Newton normal matrix ``N``. That matrix holds the templates'
    dependence on the shifts (variable projection), and with it the weakly identified
    direction along which one potential's relative shifts scale while part of its
    waveform moves into the other's template (docs/analysis.md §2): the variance of a
    relative jitter along it is what makes an overlapping pair's MCD uncertain by a few
    per cent at 100 discharges. The noise power is measured per sweep, as the sweep's
    residual energy per fitted bin over its noise-only expectation (``scale``: ~1 where
    the noise spectrum holds, more where a background unit's potential lies on the
    sweep), and enters as ``N^-1 (D N D) N^-1 / 2`` with ``D`` the square root of each
    shift's sweep scale (``scale / 2 * N^-1`` for equal scales).

    Each potential's common shift is not identified (it is a shift of its template):
    only functionals that ignore it have a variance here, and :meth:`variance` removes
    it (per potential, the mean weight over its free shifts).

    Attributes
    ----------
    lower : ndarray, shape (F, F)
        Lower Cholesky factor of the (slightly damped) normal matrix ``N`` of the F free
        shifts of the last Gauss-Newton step.
    index : ndarray of int, shape (K, n_fit)
        Row of each potential's shift in each sweep of the fit in ``lower``; -1 where it
        was not free (absent, or the sweep left out of the template estimate).
    scale : ndarray, shape (n_fit,)
        Noise scale of each sweep of the fit (dimensionless), see above.
    sweeps : ndarray of int, shape (n,)
        The sweep of the fit that each sweep (column of the weights) is.
    """

    lower: np.ndarray
    index: np.ndarray
    scale: np.ndarray
    sweeps: np.ndarray

    def variance(self, weights):
        """Variance of ``sum(weights * shifts)`` over the free shifts, samples².

        Parameters
        ----------
        weights : ndarray, shape (K, n)
            Weight of each shift (entries of shifts that were not free are ignored).

        Returns
        -------
        float
        """
        free = self.index >= 0
        w = np.zeros(free.shape)
        w[:, self.sweeps] = weights
        w = _less_common_shift(np.where(free, w, 0.0), free)
        rhs = np.zeros(self.lower.shape[0])
        rhs[self.index[free]] = w[free]
        x = solve_triangular(self.lower, solve_triangular(self.lower, rhs, lower=True, check_finite=False),
                             lower=True, trans="T", check_finite=False)
        root = np.zeros(rhs.size)
        root[self.index[free]] = np.sqrt(np.broadcast_to(self.scale, free.shape)[free])
        y = self.lower.T @ (root * x)
        return 0.5 * float(y @ y)

    def free(self):
        """Whether each shift (shape (K, n)) was free in the fit."""
        return self.index[:, self.sweeps] >= 0

    def subset(self, keep):
        """The covariance of the sweeps ``keep`` (bool, shape (n,)) only."""
        return dataclasses.replace(self, sweeps=self.sweeps[keep])


def fit_window(length, positions, ramp):
    """Weight over the sweep: 1 from the earliest to the latest position of any potential
    (±``ramp``), falling to 0 over ``ramp`` more samples by a raised cosine.

    Parameters
    ----------
    length : int
        Sweep length L, samples.
    positions : ndarray, shape (K, n)
        Reference positions, samples; NaN where absent.
    ramp : float
        Samples (the fit half-window).

    Returns
    -------
    ndarray, shape (L,)
    """
    lo = np.nanmin(positions) - ramp
    hi = np.nanmax(positions) + ramp
    x = np.arange(length)
    d = np.maximum(lo - x, x - hi)  # distance outside the flat part
    return np.where(d <= 0, 1.0, np.where(d < ramp, 0.5 + 0.5 * np.cos(np.pi * d / ramp), 0.0))


def _bin_parts(spectra, w, weight, tau, present, rows, free, ridge=_TEMPLATE_RIDGE):
    """Allocate the outputs and run :func:`~sfemg.analysis._joint_numba.normal_parts_kernel`.

    Arguments as for :func:`_normal_equations`; with ``free`` None only the templates
    and residuals are computed (``weight`` is then not used). ``ridge`` is added to the
    Gram matrices' diagonal per sweep (times n).

    Returns
    -------
    diag : ndarray, shape (K, K, n)
    gradient : ndarray, shape (K * n,)
    factor : ndarray, shape (2 * K * B, F)
        Real, then imaginary parts of the projection factor; columns of the F free shifts
        (in the order ``j * n + i``); empty when ``free`` is None.
    templates : ndarray of complex, shape (B, K)
    residual : ndarray of complex, shape (n, B)
    """
    k, n = tau.shape
    n_bins = w.size
    step_parts = free is not None
    size = (k, n) if step_parts else (0, 0)
    factor_rows = np.full(k * n, -1, dtype=np.int64)
    if step_parts:
        factor_rows[free.reshape(-1)] = np.arange(np.count_nonzero(free))
    diag = np.zeros((size[0], size[0], size[1]))
    gradient = np.zeros(size[0] * size[1])
    factor = np.empty((2 * k * n_bins, np.count_nonzero(factor_rows >= 0)))
    templates = np.empty((n_bins, k), dtype=np.complex128)
    residual = np.empty((n, n_bins), dtype=np.complex128)
    normal_parts_kernel(np.ascontiguousarray(spectra), np.ascontiguousarray(w, dtype=np.float64),
                        np.ascontiguousarray(weight, dtype=np.float64), np.ascontiguousarray(tau, dtype=np.float64),
                        np.ascontiguousarray(present), np.ascontiguousarray(rows, dtype=np.float64),
                        ridge * n, step_parts, factor_rows, diag, gradient, factor, templates, residual)
    return diag, gradient, factor, templates, residual


def joint_templates(spectra, positions, length, ridge):
    """Templates of all potentials by joint least squares per DFT bin, and what they leave.

    Model of sweep i: ``x_i(t) = sum_j a_ij s_j(t - tau_ij)`` with ``a_ij`` 1 where
    potential j is present, 0 where blocked; per bin the templates solve
    ``sum_j' G_jj' S_j' = sum_i a_ij e^{i w tau_ij} X_i`` with ``G_jj' = sum_i a_ij a_ij'
    e^{i w (tau_ij - tau_ij')}`` (+ ``ridge * n`` on the diagonal): each template is
    estimated with the others' contributions at their own times accounted for, rather
    than as a mean that also holds the other potentials blurred by their relative jitter.

    Parameters
    ----------
    spectra : ndarray of complex, shape (n, L // 2 + 1)
        DFT of each sweep (``numpy.fft.rfft``), V.
    positions : ndarray, shape (K, n)
        Reference positions of the potentials, samples; NaN where absent.
    length : int
        Sweep length L, samples.
    ridge : float
        Ridge per sweep (relative to a potential present in every sweep, Gram diagonal n).

    Returns
    -------
    templates : ndarray of complex, shape (K, L // 2 + 1)
        DFT of each template, its reference point at sample 0, V.
    residual : ndarray of complex, shape (n, L // 2 + 1)
        DFT of each sweep minus the templates placed at its positions, V.
    """
    positions = np.asarray(positions, dtype=np.float64)
    present = np.isfinite(positions)
    w = 2.0 * np.pi * np.arange(length // 2 + 1) / length
    parts = _bin_parts(spectra, w, np.zeros(w.size), np.where(present, positions, 0.0), present,
                       np.ones(spectra.shape[0]), None, ridge)
    return parts[3].T, parts[4]


def _templates(spectra, w, tau, present, rows):
    """Per-bin least-squares templates of the joint model given the shifts, shape (B, K)
    (arguments as for :func:`_normal_equations`)."""
    return _bin_parts(spectra, w, np.zeros(w.size), tau, present, rows, free=None)[3]


def _normal_equations(spectra, w, weight, tau, present, rows, free):
    """Gauss-Newton normal equations of the free shifts on the template-profiled residual.

    The residual of bin k over the sweeps (row weights ``v``) is ``r = P x`` with
    ``P = I - m G^-1 m^H V`` the weighted projection off the potentials' columns
    ``m_j``; with Kaufman's approximation its derivative by ``tau_ij`` is
    ``-P e_i c_ijk``, ``c_ijk = -i w_k m_ijk S_jk``, so that (as ``P^H V P = V - V m G^-1
    m^H V``) the normal matrix is
    ``sum_k W_k conj(c_ijk) c_i'j'k (delta_ii' v_i - v_i v_i' (m G^-1 m^H)_ii')`` and the
    gradient ``sum_k W_k v_i conj(c_ijk) r_ik``.

    Parameters
    ----------
    spectra : ndarray, shape (n, B)
        Fitted bins of the (windowed) sweeps.
    w : ndarray, shape (B,)
        Angular frequency of each bin, radians per sample.
    weight : ndarray, shape (B,)
        Noise weight 1/Q of each bin, 1/V^2.
    tau : ndarray, shape (K, n)
        Shifts, samples.
    present : ndarray of bool, shape (K, n)
    rows : ndarray, shape (n,)
        Row weights ``v``: 1 for sweeps in the fit, 0 for sweeps left out.
    free : ndarray of bool, shape (K, n)
        The shifts fitted (present, in a sweep in the fit); the others are held and their
        rows and columns left out, so the system has only F = ``free.sum()`` unknowns.

    Returns
    -------
    normal : ndarray, shape (F, F)
        Indexed by the free shifts in the order ``j * n + i``.
    gradient : ndarray, shape (F,)
    templates : ndarray, shape (B, K)
    residual : ndarray, shape (n, B)
    index : ndarray of int, shape (K, n)
        Row of each free shift in ``normal``, -1 where not free.
    """
    k, n = tau.shape
    diag, gradient, factor, templates, residual = _bin_parts(spectra, w, weight, tau, present, rows, free)
    # the projection's part, Re sum_b A_b G_b^-1 A_b^H = Re F F^H: one symmetric product
    normal = -(factor.T @ factor)
    index = np.full((k, n), -1)
    index[free] = np.arange(np.count_nonzero(free))
    add_sweep_blocks_kernel(normal, diag, index)
    return normal, gradient[free.reshape(-1)], templates, residual, index


def _projected_step(spectra, w, weight, tau, present, rows):
    """One Gauss-Newton step of all shifts (:func:`_normal_equations`).

    Returns
    -------
    step : ndarray, shape (K, n)
        Shift change, samples: 0 where absent or left out, each potential's mean change
        0 (its common shift is a shift of its template), at most :data:`_MAX_STEP`.
    residual : ndarray, shape (n, B)
        Every sweep's residual before the step.
    lower : ndarray, shape (F, F), or None
        Lower Cholesky factor of the damped normal matrix (None where it was singular).
    index : ndarray of int, shape (K, n)
        Row of each free shift in ``lower``, -1 where not free.
    """
    free = present & (rows[None, :] > 0)
    a, g, _, residual, index = _normal_equations(spectra, w, weight, tau, present, rows, free)
    try:  # the damped Gauss-Newton matrix is symmetric positive definite: Cholesky
        solution, lower = damped_solve_kernel(a, g, _DAMPING)
    except np.linalg.LinAlgError:  # a degenerate sweep set: the least-squares step instead
        solution, lower = np.linalg.lstsq(a, g, rcond=None)[0], None
    step = np.zeros(tau.shape)
    step[free] = solution
    step = _less_common_shift(step, free)
    return np.where(free, np.clip(step, -_MAX_STEP, _MAX_STEP), 0.0), residual, lower, index


def _fixed_template_shifts(spectra, w, weight, templates, tau, present):
    """Each sweep's shifts (all potentials at once) with the templates held fixed:
    Gauss-Newton on ``sum_k W_k |x_ik - sum_j m_ijk S_jk|^2``, sweep by sweep,
    :data:`_FIXED_STEPS` steps. A potential whose template vanished (present only in
    sweeps left out of the template estimate) keeps its shifts.

    Parameters
    ----------
    spectra : ndarray, shape (n, B)
        Fitted bins of the sweeps left out, V.
    w, weight : ndarray, shape (B,)
        Angular frequency (radians per sample) and noise weight (1/V^2) of each bin.
    templates : ndarray, shape (B, K)
        Per-bin templates from the other sweeps.
    tau : ndarray, shape (K, n)
        Starting shifts, samples.
    present : ndarray of bool, shape (K, n)

    Returns
    -------
    ndarray, shape (K, n)
        Shifts, samples (the starting ones where absent or not moved).
    """
    start = tau
    present = np.ascontiguousarray(present & (np.abs(templates).max(axis=0) > 0)[:, None])
    tau = np.where(present, tau, 0.0)
    fixed_template_shifts_kernel(np.ascontiguousarray(spectra), w, weight, np.ascontiguousarray(templates), tau,
                                 present, _FIXED_STEPS, _MAX_STEP)
    return np.where(present, tau, start)


def joint_positions(data_v, positions, noise_power, fs_hz, fit_half):
    """Time points of all potentials from a joint fit of every sweep.

    Parameters
    ----------
    data_v : ndarray, shape (n, L)
        Sweeps, V.
    positions : ndarray, shape (K, n)
        Starting reference positions of the K potentials in the sweeps (their single
        template fits), samples; NaN where absent.
    noise_power : ndarray, shape (fit_half + 1,)
        Noise power per DFT bin of an untapered fit segment of ``2 * fit_half + 1``
        samples, V^2 (:func:`~sfemg.analysis.detect.estimate_noise_spectrum`); it is
        interpolated to the sweep's bins and scaled to its length.
    fs_hz : float
        Sampling rate, Hz.
    fit_half : int
        Fit half-window, samples: the fit covers every potential's positions ±
        ``fit_half``, tapered over ``fit_half`` more (:func:`fit_window`).

    Returns
    -------
    positions : ndarray, shape (K, n)
        Reference positions, samples (the mean over the sweeps in the template estimate of
        each potential's position is kept; sweeps left out are timed afterwards), NaN
        where absent.
    covariance : ShiftCovariance or None
        Their error covariance from the last Gauss-Newton step (the sweeps in the
        template estimate; None where its system was singular).

    Notes
    -----
    The dense products and solves run on one BLAS thread: OpenBLAS splits these sizes
    over threads and rounds differently for each thread count, and a study must give
    the same bits analysed serially, on worker threads or processes or on a Dask cluster.
    """
    with one_blas_thread:
        return _joint_positions(data_v, positions, noise_power, fs_hz, fit_half)


def _joint_positions(data_v, positions, noise_power, fs_hz, fit_half):
    positions = np.asarray(positions, dtype=np.float64)
    present = np.isfinite(positions)
    window = fit_window(data_v.shape[1], positions, fit_half)
    # the fit sees only the window's support: cropped (plus room for the shifts to move
    # the templates circularly without wrapping), its DFT holds the same data in about
    # half the bins, and every bin costs a column of the dense system (the coarser bin
    # grid changes which bins pass the strength test below, so results move within the
    # fit's noise: a reference pair's MCD by 0.2 of 35.7 µs)
    support = np.flatnonzero(window)
    margin = int(np.ceil(np.nanmax(np.abs(positions - np.nanmean(positions, axis=1, keepdims=True))))) + 1
    lo = max(0, support[0] - margin)
    hi = min(data_v.shape[1], support[-1] + 1 + margin)
    n, length = data_v.shape[0], next_fast_len(hi - lo, real=True)
    spectra = np.fft.rfft(data_v[:, lo:hi] * window[None, lo:hi], n=length, axis=1)
    positions = positions - lo
    bins = np.arange(length // 2 + 1)
    seg_len = 2 * fit_half + 1
    q = np.interp(bins / length, np.arange(noise_power.size) / seg_len, noise_power) * length / seg_len
    q = np.maximum(q, _NOISE_FLOOR * q.max())
    selected = (bins >= 1) & (bins < length / 2) & (bins / length * fs_hz >= _MIN_FREQ_HZ) & (q > 0)
    w = 2.0 * np.pi * bins[selected] / length
    weight = 1.0 / q[selected]
    x = spectra[:, selected]
    tau = np.where(present, positions, 0.0)
    rows = np.ones(n)
    # bins where the templates stand above their own noise (as in the single fit), and
    # the sweeps the model at the starting positions leaves far more in (other units)
    templates, residual = _bin_parts(x, w, np.zeros(w.size), tau, present, rows, None)[3:]
    power = np.sum(np.abs(templates) ** 2, axis=1)
    window_power = np.sum(window ** 2) / length  # the windowed noise's power per bin, in units of q
    strong = power > _BIN_SNR_MIN * q[selected] * window_power / n
    x, w, weight = x[:, strong], w[strong], weight[strong]
    energy = np.sum(weight[None, :] * np.abs(residual[:, strong]) ** 2, axis=1)
    rows = (energy <= _OUTLIER_RATIO * fast_median(energy)).astype(np.float64)
    for _ in range(_STEPS):
        step, residual, lower, index = _projected_step(x, w, weight, tau, present, rows)
        tau = tau + step
        energy = np.sum(weight[None, :] * np.abs(residual) ** 2, axis=1)
        # each sweep's noise scale: its residual energy per fitted bin over the windowed
        # noise's expectation, the K templates of each bin taking K of its n_fit degrees
        # of freedom (ShiftCovariance)
        dof_share = 1.0 - tau.shape[0] / max(np.sum(rows), tau.shape[0] + 1.0)
        scale = energy / (dof_share * max(w.size, 1) * window_power)
        previous, rows = rows, (energy <= _OUTLIER_RATIO * fast_median(energy)).astype(np.float64)
        if np.abs(step).max() < _CONVERGED and np.array_equal(rows, previous):
            break
    if lower is not None:  # sweeps left out in the last step are timed below, not by this factor
        index[:, rows == 0] = -1
    covariance = None if lower is None else ShiftCovariance(lower, index, scale, np.arange(n))
    left_out = rows == 0
    if left_out.any():
        templates = _templates(x, w, tau, present, rows)
        tau[:, left_out] = _fixed_template_shifts(x[left_out], w, weight, templates,
                                                  tau[:, left_out], present[:, left_out])
    return np.where(present, tau + lo, np.nan), covariance
