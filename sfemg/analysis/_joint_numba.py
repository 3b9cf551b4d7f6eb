"""Numba kernels behind :mod:`sfemg.analysis.joint`: the dense products and the solve of its
Gauss-Newton system, in a fixed order of operations.

BLAS and LAPACK (``@``, ``numpy.linalg.solve``) split these sizes over threads and round
differently for each thread count, so a study analysed serially, in worker processes
(single-threaded BLAS) or on a dask cluster would differ in the last bits; these loops
give the same bits everywhere (each output element accumulates in one order; the inner
loops run over independent elements, so SIMD does not reorder them).
"""

from __future__ import annotations

import numpy as np

from .._numba import jit


@jit
def real_product_kernel(left_re, left_im, right_re_t, right_im_t):  # pragma: no cover - compiled
    """``Re(L @ R.T)`` for complex ``L`` (a, k) and ``R`` (c, k) given as real parts.

    Parameters
    ----------
    left_re, left_im : (a, k) float64
        Real and imaginary parts of ``L``.
    right_re_t, right_im_t : (k, c) float64
        Real and imaginary parts of ``R``, transposed (C-contiguous).

    Returns
    -------
    (a, c) float64
    """
    n_a, n_k = left_re.shape
    n_c = right_re_t.shape[1]
    out = np.zeros((n_a, n_c))
    for a in range(n_a):
        row = out[a]
        for q in range(n_k):
            x = left_re[a, q]
            y = left_im[a, q]
            for c in range(n_c):
                row[c] += x * right_re_t[q, c] - y * right_im_t[q, c]
    return out


@jit
def solve_kernel(matrix, rhs):  # pragma: no cover - compiled
    """Solve ``matrix @ x = rhs`` by Gaussian elimination with partial pivoting (an
    unknown whose column is singular is set to 0 rather than dividing by zero).

    Parameters
    ----------
    matrix : (p, p) float64
        Not modified.
    rhs : (p,) float64
        Not modified.

    Returns
    -------
    (p,) float64
    """
    a = matrix.copy()
    b = rhs.copy()
    p = a.shape[0]
    for col in range(p):
        pivot = col
        best = abs(a[col, col])
        for r in range(col + 1, p):
            if abs(a[r, col]) > best:
                best = abs(a[r, col])
                pivot = r
        if pivot != col:
            for c in range(p):
                t = a[col, c]
                a[col, c] = a[pivot, c]
                a[pivot, c] = t
            t = b[col]
            b[col] = b[pivot]
            b[pivot] = t
        d = a[col, col]
        if d == 0.0:  # singular column: its unknown is left at 0 below
            continue
        for r in range(col + 1, p):
            f = a[r, col] / d
            if f != 0.0:
                for c in range(col, p):
                    a[r, c] -= f * a[col, c]
                b[r] -= f * b[col]
    x = np.zeros(p)
    for r in range(p - 1, -1, -1):
        s = b[r]
        for c in range(r + 1, p):
            s -= a[r, c] * x[c]
        x[r] = s / a[r, r] if a[r, r] != 0.0 else 0.0
    return x
