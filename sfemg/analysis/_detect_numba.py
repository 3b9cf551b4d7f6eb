"""Numba kernels behind :mod:`sfemg.analysis.detect`: candidate peaks (see
:func:`~sfemg.analysis.detect.detect_peaks`) and the median of small arrays."""

from __future__ import annotations

import numpy as np

from .._numba import jit


@jit
def _value(v, polarity):  # pragma: no cover - compiled
    """The quantity whose maxima are sought: ``v``, ``-v`` or ``|v|`` (polarity 1, -1, 0)."""
    if polarity == 0:
        return abs(v)
    return v * polarity


@jit
def detect_peaks_kernel(x, threshold, half_width, polarity, out_rows, out_cols):  # pragma: no cover - compiled
    """Write (row, column) of each local maximum of ``y`` above ``threshold``.

    ``y`` is ``x``, ``-x`` or ``|x|`` for ``polarity`` 1, -1 or 0. A sample is a candidate
    when ``y > threshold`` and it is the first largest ``y`` within ``half_width`` samples
    either side in its row. Fills ``out_rows``/``out_cols`` up to their length and returns
    the total count (which may exceed it).
    """
    n_found = 0
    n_cols = x.shape[1]
    for r in range(x.shape[0]):
        i = 0
        while i < n_cols:
            v = _value(x[r, i], polarity)
            if v > threshold:
                lo = max(0, i - half_width)
                hi = min(n_cols, i + half_width + 1)
                is_max = True
                for j in range(lo, hi):
                    a = _value(x[r, j], polarity)
                    if a > v or (a == v and j < i):
                        is_max = False
                        break
                if is_max:
                    if n_found < out_rows.shape[0]:
                        out_rows[n_found] = r
                        out_cols[n_found] = i
                    n_found += 1
                    i += half_width + 1  # nothing within the window can be a maximum
                    continue
            i += 1
    return n_found


@jit
def median_kernel(x):  # pragma: no cover - compiled
    """``np.median`` of a 1-D float64 array without NaN (compiled: the grouping code takes
    medians of ~10-1000 values some 60 times a recording, where ``np.median`` spends
    ~10 µs a call in Python overhead and this 0.4 µs)."""
    return np.median(x)


@jit
def running_median_kernel(x, width, out):  # pragma: no cover - compiled
    """Running median of each row over ``width`` (odd) samples, edges extended with the
    row's first and last values (``scipy.ndimage.median_filter(x, size=(1, width),
    mode="nearest")``); a sorted window updated by one removal and one insertion per
    sample, ~10x faster than SciPy's general N-D rank filter for these rows."""
    half = width // 2
    n_cols = x.shape[1]
    window = np.empty(width)
    for r in range(x.shape[0]):
        row = x[r]
        for j in range(width):
            window[j] = row[min(max(j - half, 0), n_cols - 1)]
        window.sort()
        out[r, 0] = window[half]
        for i in range(1, n_cols):
            old = row[min(max(i - 1 - half, 0), n_cols - 1)]
            new = row[min(i + half, n_cols - 1)]
            k = np.searchsorted(window, old)  # the leaving value's slot (first equal)
            # shift to close the gap and open one where ``new`` belongs
            while k > 0 and window[k - 1] > new:
                window[k] = window[k - 1]
                k -= 1
            while k < width - 1 and window[k + 1] < new:
                window[k] = window[k + 1]
                k += 1
            window[k] = new
            out[r, i] = window[half]


@jit
def measure_kernel(sweeps, centre, half_window, polarity, fit_half, peak_v, seg_start,
                   segments):  # pragma: no cover - compiled
    """Per sweep: the first largest ``polarity * x`` within ``centre ± half_window``
    (columns clipped to the sweep), its parabola-interpolated value (as
    :func:`~sfemg.analysis.detect.peak_values`, times ``polarity``), and the
    polarity-corrected segment of ``2 * fit_half + 1`` samples starting ``fit_half``
    before it (columns clipped). See ``sfemg.analysis.core._measure_potential``.

    Parameters
    ----------
    sweeps : (n, L) float64
    centre : (n,) int64
        Centre of each sweep's search window, sample.
    half_window, fit_half : int
    polarity : float
        +1 or -1.
    peak_v : (n,) float64, out
    seg_start : (n,) int64, out
        First sample of each segment (``coarse peak - fit_half``, not clipped).
    segments : (n, 2 * fit_half + 1) float64, out
    """
    n, n_cols = sweeps.shape
    last = n_cols - 1
    for i in range(n):
        best = -np.inf
        coarse = 0
        for k in range(-half_window, half_window + 1):
            col = min(max(centre[i] + k, 0), last)
            v = polarity * sweeps[i, col]
            if v > best:
                best = v
                coarse = col
        y0 = sweeps[i, coarse]
        ym = sweeps[i, max(coarse - 1, 0)]
        yp = sweeps[i, min(coarse + 1, last)]
        den = ym - 2.0 * y0 + yp
        corr = (ym - yp) ** 2 / (8.0 * den) if den * y0 < 0 else 0.0
        peak_v[i] = polarity * (y0 - corr)
        seg_start[i] = coarse - fit_half
        for k in range(2 * fit_half + 1):
            segments[i, k] = polarity * sweeps[i, min(max(coarse - fit_half + k, 0), last)]
