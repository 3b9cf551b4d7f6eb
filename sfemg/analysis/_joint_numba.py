"""Numba kernels behind :mod:`sfemg.analysis.joint`: the per-bin parts of its Gauss-Newton
system in one pass, the same-sweep blocks added to the dense system, and the damped solve
(LAPACK's Cholesky called from compiled code, which runs without the GIL; the dense
product stays with BLAS).

Called only through ``sfemg.analysis.joint._bin_parts`` (the Gauss-Newton steps, and the
templates of :func:`sfemg.analysis.joint.joint_templates`),
``sfemg.analysis.joint._normal_equations`` and ``sfemg.analysis.joint._projected_step``.
"""

from __future__ import annotations

import math

import numpy as np

from .._numba import jit

#: The design's phasors are recomputed with sin and cos at least every this many bins.
_RESTART = 64


@jit
def _cholesky(gram, lower):  # pragma: no cover - compiled
    """``gram = lower lower^H`` for a small Hermitian positive definite matrix, written into
    ``lower`` (upper triangle zeroed): inline, as LAPACK's call and allocation cost more
    than the arithmetic at K <= 4, and it runs once per DFT bin."""
    k = gram.shape[0]
    for p in range(k):
        pivot = gram[p, p].real
        for j in range(p):
            pivot -= lower[p, j].real ** 2 + lower[p, j].imag ** 2
        if not pivot > 0.0:
            raise np.linalg.LinAlgError("joint model: Gram matrix not positive definite")
        root = math.sqrt(pivot)
        lower[p, p] = root
        for q in range(p):
            lower[q, p] = 0.0
        for q in range(p + 1, k):
            acc = gram[q, p]
            for j in range(p):
                acc -= lower[q, j] * lower[p, j].conjugate()
            lower[q, p] = acc / root


@jit
def normal_parts_kernel(spectra, w, weight, tau, present, rows, ridge, step_parts, factor_rows, diag,
                        gradient, factor, templates, residual):  # pragma: no cover - compiled
    """Per DFT bin b of the joint model (see ``joint._normal_equations``): design
    ``m_pi = a_pi e^{-i w_b tau_pi}``, the weighted Gram matrix ``G = L L^H`` (Cholesky),
    templates ``S``, residuals ``r``, and the Gauss-Newton pieces ``c_ji = -i w_b m_ji S_j``,
    ``cw_ji = conj(c_ji) W_b v_i``; accumulates the same-sweep blocks ``diag[j, m, i] =
    Re sum_b cw_ji c_mi`` and the gradient ``Re sum_b cw_ji r_ib``, and fills the factor
    of the projection term ``Re sum_b A G^-1 A^H = Re F F^H``:
    ``A[(j, i), p] = sqrt(W_b) conj(c_ji) v_i m_pi`` and ``F_b = A L^-H``, stored
    transposed, real parts at ``[q * B + b, factor_rows[j * n + i]]`` and imaginary parts
    ``K * B`` rows further (each bin's writes contiguous; ``Re F F^H`` is then one
    symmetric product of this real matrix), for the shifts that are fitted only.

    Parameters
    ----------
    spectra : (n, B) complex128
    w, weight : (B,) float64
    tau : (K, n) float64
    present : (K, n) bool
    rows : (n,) float64
    ridge : float
        Added to the Gram matrix's diagonal.
    step_parts : bool
        Fill ``diag``, ``gradient`` and the factor; when False only ``templates`` and
        ``residual`` (the others may then be empty).
    factor_rows : (K * n,) int64
        Row of each shift ``j * n + i`` in the factor, -1 for shifts not fitted.
    diag : (K, K, n) float64, zeroed
    gradient : (K * n,) float64, zeroed
    factor : (2 * K * B, F) float64, F the number of shifts fitted
    templates : (B, K) complex128
    residual : (n, B) complex128
    """
    n_pot, n = tau.shape
    n_bins = w.shape[0]
    m = np.zeros((n_pot, n), dtype=np.complex128)
    step = np.zeros((n_pot, n), dtype=np.complex128)
    gram = np.empty((n_pot, n_pot), dtype=np.complex128)
    lower = np.empty((n_pot, n_pot), dtype=np.complex128)
    lower_inv = np.zeros((n_pot, n_pot), dtype=np.complex128)
    rhs = np.empty(n_pot, dtype=np.complex128)
    y = np.empty(n_pot, dtype=np.complex128)
    c = np.empty((n_pot, n), dtype=np.complex128)
    weighted = np.empty((n_pot, n), dtype=np.complex128)  # conj(m_pi v_i), the Gram's and rhs' left factor
    spacing = 0.0
    have_step = False  # step holds e^{-i spacing tau}
    for b in range(n_bins):
        wb = w[b]
        # e^{-i w_b tau}: from the previous bin's by one complex product where the bins are
        # evenly spaced (the fitted bins are mostly consecutive DFT bins), else afresh;
        # the products drift by ~1 ulp each, recomputed at least every _RESTART bins
        gap = wb - w[b - 1] if b > 0 else 0.0
        if have_step and b % _RESTART != 0 and abs(gap - spacing) <= 1e-12 * abs(gap):
            for p in range(n_pot):
                for i in range(n):
                    m[p, i] *= step[p, i]
        else:
            for p in range(n_pot):
                for i in range(n):
                    if present[p, i]:
                        m[p, i] = complex(math.cos(wb * tau[p, i]), -math.sin(wb * tau[p, i]))
                        step[p, i] = complex(math.cos(gap * tau[p, i]), -math.sin(gap * tau[p, i]))
            have_step = b > 0
            spacing = gap
        for p in range(n_pot):
            for i in range(n):
                weighted[p, i] = (m[p, i] * rows[i]).conjugate()
            acc = 0.0 + 0.0j
            for i in range(n):
                acc += weighted[p, i] * spectra[i, b]
            rhs[p] = acc
            for q in range(p + 1):  # the lower triangle: all _cholesky reads
                acc = 0.0 + 0.0j
                for i in range(n):
                    acc += weighted[p, i] * m[q, i]
                gram[p, q] = acc + (ridge if p == q else 0.0)
        # templates: G S = rhs with G = L L^H, by forward and back substitution
        _cholesky(gram, lower)
        for p in range(n_pot):
            acc = rhs[p]
            for q in range(p):
                acc -= lower[p, q] * y[q]
            y[p] = acc / lower[p, p].real
        for p in range(n_pot - 1, -1, -1):
            acc = y[p]
            for q in range(p + 1, n_pot):
                acc -= lower[q, p].conjugate() * templates[b, q]
            templates[b, p] = acc / lower[p, p].real
        for i in range(n):
            acc = spectra[i, b]
            for p in range(n_pot):
                acc -= m[p, i] * templates[b, p]
            residual[i, b] = acc
        if not step_parts:
            continue
        # G^-1 = L^-H L^-1 with G = L L^H, so A G^-1 A^H = (A L^-H)(A L^-H)^H; L^-1 by
        # forward substitution (lower triangular, its upper part stays 0)
        for p in range(n_pot):
            lower_inv[p, p] = 1.0 / lower[p, p].real
            for q in range(p + 1, n_pot):
                acc = 0.0 + 0.0j
                for k in range(p, q):
                    acc += lower[q, k] * lower_inv[k, p]
                lower_inv[q, p] = -acc / lower[q, q].real
        root_w = math.sqrt(weight[b])
        for j in range(n_pot):
            for i in range(n):
                c[j, i] = -1j * wb * m[j, i] * templates[b, j]
        for j in range(n_pot):
            for i in range(n):
                cw = c[j, i].conjugate() * weight[b] * rows[i]
                gradient[j * n + i] += (cw * residual[i, b]).real
                for mm in range(n_pot):
                    diag[j, mm, i] += (cw * c[mm, i]).real
                row = factor_rows[j * n + i]
                if row < 0:
                    continue
                a_row = c[j, i].conjugate() * (root_w * rows[i])
                for q in range(n_pot):
                    f = 0.0 + 0.0j  # (A L^-H)[(j, i), q] = sum_p A[(j, i), p] conj(L^-1[q, p])
                    for p in range(q + 1):
                        f += a_row * m[p, i] * lower_inv[q, p].conjugate()
                    factor[q * n_bins + b, row] = f.real
                    factor[(n_pot + q) * n_bins + b, row] = f.imag


@jit
def add_sweep_blocks_kernel(normal, diag, index):  # pragma: no cover - compiled
    """Add the same-sweep blocks to the normal matrix: ``normal[index[j, i], index[m, i]]
    += diag[j, m, i]`` wherever both shifts are free (``index`` >= 0)."""
    n_pot, n = index.shape
    for i in range(n):
        for j in range(n_pot):
            row = index[j, i]
            if row < 0:
                continue
            for m in range(n_pot):
                col = index[m, i]
                if col >= 0:
                    normal[row, col] += diag[j, m, i]


@jit
def damped_solve_kernel(normal, gradient, damping):  # pragma: no cover - compiled
    """Solve ``(normal + damping * trace(normal) / F * I) x = gradient`` by Cholesky;
    returns ``x`` and the lower Cholesky factor (the shifts' covariance is read from it).

    ``normal`` (F, F), symmetric positive semi-definite, gets the damping added to its
    diagonal in place; LAPACK's ``potrf`` factors it from its upper triangle, as SciPy's
    ``cho_factor`` does (the same factor, to the bit: the products that fill the two
    triangles round differently, and the damped system can be ill-conditioned), then
    forward and back substitution (which round differently from SciPy's ``potrs``).
    SciPy's ``cho_factor`` / ``cho_solve`` hold the GIL for the whole factorisation;
    numba's ``np.linalg.cholesky`` does not.

    Raises
    ------
    numpy.linalg.LinAlgError
        If the damped matrix is not positive definite.
    """
    n = gradient.size
    shift = 0.0
    for p in range(n):
        shift += normal[p, p]
    shift *= damping / max(n, 1)
    for p in range(n):
        normal[p, p] += shift
    # numba's cholesky reads the lower triangle of its (C-ordered) argument: the transpose's
    lower = np.linalg.cholesky(np.ascontiguousarray(normal.T))
    y = np.empty(n)
    for p in range(n):
        acc = gradient[p]
        for q in range(p):
            acc -= lower[p, q] * y[q]
        y[p] = acc / lower[p, p]
    x = np.empty(n)
    for p in range(n - 1, -1, -1):
        acc = y[p]
        for q in range(p + 1, n):
            acc -= lower[q, p] * x[q]
        x[p] = acc / lower[p, p]
    return x, lower


@jit
def fixed_template_shifts_kernel(spectra, w, weight, templates, tau, present, n_steps,
                                 max_step):  # pragma: no cover - compiled
    """Gauss-Newton steps of each sweep's shifts with the templates held fixed (see
    ``joint._fixed_template_shifts``): per sweep i, ``n_steps`` steps on
    ``sum_b W_b |x_ib - sum_j e^{-i w_b tau_ji} S_bj|^2`` over the present potentials'
    shifts (each step clipped to ±``max_step``), the K x K system solved by LAPACK's least
    squares with NumPy's default rcond (the batched NumPy form it replaced solved every
    sweep's system and fell back to least squares for all when one was singular; a
    system singular in one rounding can be barely regular in another, where a plain
    solve's step is noise). ``tau`` (K, n) is updated in place where ``present``."""
    n_pot, n = tau.shape
    n_bins = w.size
    c = np.empty((n_pot, n_bins), dtype=np.complex128)
    resid = np.empty(n_bins, dtype=np.complex128)
    h = np.empty((n_pot, n_pot))
    g = np.empty(n_pot)
    for i in range(n):
        for _ in range(n_steps):
            for b in range(n_bins):
                resid[b] = spectra[i, b]
            for j in range(n_pot):
                for b in range(n_bins):
                    if present[j, i]:
                        placed = complex(math.cos(w[b] * tau[j, i]), -math.sin(w[b] * tau[j, i])) * templates[b, j]
                        resid[b] -= placed
                        c[j, b] = -1j * w[b] * placed
                    else:
                        c[j, b] = 0.0
            for j in range(n_pot):
                acc = 0.0
                for b in range(n_bins):
                    acc += (c[j, b].conjugate() * resid[b] * weight[b]).real
                g[j] = acc if present[j, i] else 0.0
                for m in range(n_pot):
                    acc = 0.0
                    for b in range(n_bins):
                        acc += (c[j, b].conjugate() * c[m, b] * weight[b]).real
                    h[j, m] = acc if present[j, i] and present[m, i] else (1.0 if j == m else 0.0)
            if not (np.all(np.isfinite(h)) and np.all(np.isfinite(g))):
                step = np.full(n_pot, np.nan)
            else:  # least squares (NumPy's rcond): a degenerate sweep's system is singular, or
                # only nearly so after rounding, where a plain solve's step is noise
                step = np.linalg.lstsq(h, g, rcond=np.finfo(np.float64).eps * n_pot)[0]
            for j in range(n_pot):
                if present[j, i]:
                    tau[j, i] += min(max(step[j], -max_step), max_step)
