"""Numba kernels behind :mod:`sfemg.analysis.detect`: candidate peaks (see
:func:`~sfemg.analysis.detect.detect_peaks`), the extremes of a recording and how often
each occurs, the median of small arrays, the running median, the latency-histogram
peaks of time-locked potentials, the refractory choice of trigger discharges, the
measurement of a potential in every sweep and the extent of its waveform."""

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
        row = x[r]
        i = 0
        while i < n_cols:
            v = _value(row[i], polarity)
            if v > threshold and _is_first_largest(row, i, v, half_width, polarity):
                if n_found < out_rows.shape[0]:
                    out_rows[n_found] = r
                    out_cols[n_found] = i
                n_found += 1
                i += half_width + 1  # nothing within the window can be a maximum
                continue
            i += 1
    return n_found


@jit
def _is_first_largest(row, i, v, half_width, polarity):  # pragma: no cover - compiled
    """Whether ``v`` (the value of sample ``i``, polarity-corrected) is the first largest
    within ``half_width`` samples either side in ``row``."""
    lo = max(0, i - half_width)
    hi = min(row.shape[0], i + half_width + 1)
    for j in range(lo, hi):
        a = _value(row[j], polarity)
        if a > v or (a == v and j < i):
            return False
    return True


@jit
def detect_both_kernel(x, threshold, half_width, out_rows, out_cols):  # pragma: no cover - compiled
    """:func:`detect_peaks_kernel` for polarities 1 and -1 in one pass: the maxima of
    ``x`` and of ``-x`` above ``threshold``, each the first largest within
    ``half_width`` samples either side, in row-major order (a sample exceeds the
    threshold in one polarity at most). Each polarity skips the samples after its own
    maximum, as its own scan would. Fills ``out_rows``/``out_cols`` up to their length
    and returns the total count."""
    n_found = 0
    n_cols = x.shape[1]
    for r in range(x.shape[0]):
        row = x[r]
        next_up = 0
        next_down = 0
        for i in range(n_cols):
            v = row[i]
            found = False
            if v > threshold and i >= next_up:
                found = _is_first_largest(row, i, v, half_width, 1)
                if found:
                    next_up = i + half_width + 1
            elif -v > threshold and i >= next_down:
                found = _is_first_largest(row, i, -v, half_width, -1)
                if found:
                    next_down = i + half_width + 1
            if found:
                if n_found < out_rows.shape[0]:
                    out_rows[n_found] = r
                    out_cols[n_found] = i
                n_found += 1
    return n_found


@jit
def extremes_kernel(x):  # pragma: no cover - compiled
    """Smallest and largest value of a 2-D float64 array without NaN, and how many
    samples equal each, in one pass (``x.min()``, ``x.max()`` and the two
    ``np.count_nonzero(x == value)``: four passes and two boolean arrays, 1.2 ms per
    million samples, for the clipping levels of every recording)."""
    low = x[0, 0]
    high = x[0, 0]
    n_low = 0
    n_high = 0
    for r in range(x.shape[0]):
        for c in range(x.shape[1]):
            v = x[r, c]
            if v < low:
                low = v
                n_low = 1
            elif v == low:
                n_low += 1
            if v > high:
                high = v
                n_high = 1
            elif v == high:
                n_high += 1
    return low, high, n_low, n_high


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
def _vertex_value(row, col):  # pragma: no cover - compiled
    """Value at the vertex of the parabola through ``row[col]`` and its neighbours (edges
    repeated), when it curves away from zero there (a peak of either sign); else
    ``row[col]``."""
    last = row.size - 1
    y0 = row[col]
    ym = row[max(col - 1, 0)]
    yp = row[min(col + 1, last)]
    den = ym - 2.0 * y0 + yp
    # for a positive peak den < 0, so y0 - corr >= y0; the vertex is at most 1/2 sample away
    corr = (ym - yp) ** 2 / (8.0 * den) if den * y0 < 0 else 0.0
    return y0 - corr


@jit
def peak_values_kernel(x, rows, cols, out):  # pragma: no cover - compiled
    """``out[k]`` = the parabola-vertex value at candidate ``(rows[k], cols[k])`` of ``x``
    (see :func:`~sfemg.analysis.detect.peak_values`)."""
    for k in range(rows.size):
        out[k] = _vertex_value(x[rows[k]], cols[k])


@jit
def measure_kernel(sweeps, centre, half_window, polarity, fit_half, peak_v, seg_start,
                   segments):  # pragma: no cover - compiled
    """Per sweep: the first largest ``polarity * x`` within ``centre ± half_window``
    (columns clipped to the sweep), its parabola-interpolated value (as
    :func:`~sfemg.analysis.detect.peak_values`, times ``polarity``), and the
    polarity-corrected segment of ``2 * fit_half + 1`` samples starting ``fit_half``
    before it (columns clipped). See ``sfemg.analysis.potentials.measure_potential``.

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
        peak_v[i] = polarity * _vertex_value(sweeps[i], coarse)
        seg_start[i] = coarse - fit_half
        for k in range(2 * fit_half + 1):
            segments[i, k] = polarity * sweeps[i, min(max(coarse - fit_half + k, 0), last)]


@jit
def _box_sums(counts, half, out):  # pragma: no cover - compiled
    """``out[i]`` = sum of ``counts`` over ``[i - half, i + half]`` (clipped to the array)."""
    n = counts.size
    csum = np.zeros(n + 1, np.int64)
    for i in range(n):
        csum[i + 1] = csum[i] + counts[i]
    for i in range(n):
        out[i] = csum[min(i + half + 1, n)] - csum[max(i - half, 0)]


@jit
def _selected(values, mask, sign):  # pragma: no cover - compiled
    """``sign * values[mask]`` for the entries where ``sign * values > 0`` (sign +1 or -1),
    or all of ``values[mask]`` when ``sign`` is 0; in index order."""
    out = np.empty(values.size)
    k = 0
    for i in range(values.size):
        if mask[i] and (sign == 0 or sign * values[i] > 0):
            out[k] = values[i] if sign == 0 else sign * values[i]
            k += 1
    return out[:k]


@jit
def locked_groups_kernel(lat, amp, min_count, lock_half, mad_to_sd, found):  # pragma: no cover - compiled
    """The histogram peaks of :func:`~sfemg.analysis.detect.find_locked_potentials`, in
    the order they are found (see there; its NumPy form is the tests' reference).

    Parameters
    ----------
    lat, amp : (N,) float64
        Candidate latencies (samples) and signed peak values (V).
    min_count, lock_half : int
    mad_to_sd : float
    found : (N, 5) float64, out
        Per group: centre (samples), search half-width (samples), polarity, median
        amplitude of the main phase (V), candidates within ``lock_half`` of the centre.

    Returns
    -------
    int
        Number of groups written to ``found``.
    """
    n = lat.size
    alive = np.ones(n, np.bool_)
    n_alive = n
    n_found = 0
    narrow_half = max(1, lock_half // 2)
    near = np.empty(n, np.bool_)
    members = np.empty(n, np.bool_)
    while n_alive >= min_count:
        lat_min = np.inf
        lat_max = -np.inf
        for i in range(n):
            if alive[i]:
                lat_min = min(lat_min, lat[i])
                lat_max = max(lat_max, lat[i])
        lo = np.floor(lat_min) - lock_half
        n_bins = int(np.ceil(lat_max + lock_half + 2 - lo)) - 1  # one-sample bins from lo
        counts = np.zeros(n_bins, np.int64)
        for i in range(n):
            if alive[i]:
                counts[int(np.floor(lat[i] - lo))] += 1
        smooth = np.empty(n_bins, np.int64)
        _box_sums(counts, lock_half, smooth)
        if smooth.max() < min_count:
            break
        narrow = np.empty(n_bins, np.int64)
        _box_sums(counts, narrow_half, narrow)
        peak = 0
        best = -2
        for b in range(n_bins):
            v = narrow[b] if smooth[b] >= min_count else -1
            if v > best:
                best = v
                peak = b
        centre = lo + peak + 0.5
        n_near = 0
        for i in range(n):
            near[i] = alive[i] and abs(lat[i] - centre) <= lock_half
            n_near += near[i]
        if n_near == 0:
            # the box's candidates all lie at its edges (two tight groups 2 lock_half
            # apart): centre on its fullest bin, which holds some (an empty set has no
            # median, and this loop never ended)
            first = max(peak - lock_half, 0)
            centre = lo + first + np.argmax(counts[first:peak + lock_half + 1]) + 0.5
            for i in range(n):
                near[i] = alive[i] and abs(lat[i] - centre) <= lock_half
        centre = np.median(_selected(lat, near, 0))
        n_near = 0
        for i in range(n):
            near[i] = alive[i] and abs(lat[i] - centre) <= lock_half
            n_near += near[i]
        spread = np.median(np.abs(_selected(lat, near, 0) - centre)) * mad_to_sd
        wide = 4.0 * spread
        half = int(np.ceil(wide)) if wide > lock_half else lock_half
        for i in range(n):
            members[i] = alive[i] and abs(lat[i] - centre) <= half
        pos = _selected(amp, members, 1.0)
        neg = _selected(amp, members, -1.0)
        polarity = 1.0 if (np.median(pos) if pos.size else 0.0) >= (np.median(neg) if neg.size else 0.0) else -1.0
        if n_found == found.shape[0]:  # (each pass takes a candidate: only non-finite input)
            break
        found[n_found, 0] = centre
        found[n_found, 1] = half
        found[n_found, 2] = polarity
        found[n_found, 3] = np.median(_selected(amp, members, polarity))
        found[n_found, 4] = n_near
        n_found += 1
        for i in range(n):
            if members[i]:
                alive[i] = False
                n_alive -= 1
    return n_found


@jit
def first_of_close_kernel(times, min_gap):  # pragma: no cover - compiled
    """Refractory selection: of increasing ``times`` closer than ``min_gap`` to the last
    one kept, only the first is kept. Returns the mask of the kept ones."""
    keep = np.zeros(times.size, np.bool_)
    last = 0
    for i in range(times.size):
        if i > 0 and times[i] - last < min_gap:
            continue
        keep[i] = True
        last = times[i]
    return keep


@jit
def waveform_run_kernel(templates, half, level, runs):  # pragma: no cover - compiled
    """Per template (row, its reference at sample 0, circular): the run of samples around
    the reference where the envelope (maximum of ``|template|`` over ±``half`` samples,
    wrapping) is at least ``level`` of its peak, as ``runs[k] = (lo, hi)``, offsets from
    the reference in samples (see ``sfemg.analysis.selection._waveform_extents``)."""
    n_pot, length = templates.shape
    mid = length // 2  # the run is sought in [-mid, length - 1 - mid] around the reference
    for k in range(n_pot):
        peak = 0.0
        for j in range(length):
            peak = max(peak, abs(templates[k, j]))
        threshold = level * peak
        lo = 0
        while lo > -mid and _near_level(templates[k], lo - 1, half, threshold):
            lo -= 1
        hi = 0
        while hi < length - 1 - mid and _near_level(templates[k], hi + 1, half, threshold):
            hi += 1
        runs[k, 0] = lo
        runs[k, 1] = hi


@jit
def _near_level(row, offset, half, threshold):  # pragma: no cover - compiled
    """Whether some ``|row|`` within ±``half`` samples of ``offset`` (circular) reaches
    ``threshold``."""
    length = row.size
    for d in range(-half, half + 1):
        if abs(row[(offset + d) % length]) >= threshold:
            return True
    return False


@jit
def _arange(start, stop, step):  # pragma: no cover - compiled
    """``np.arange(start, stop, step)`` for floats, to the bit: NumPy stores ``start`` and
    ``start + step``, then fills ``start + i * ((start + step) - start)``."""
    length = max(int(np.ceil((stop - start) / step)), 0)
    out = np.empty(length)
    if length > 0:
        out[0] = start
    if length > 1:
        out[1] = start + step
        delta = out[1] - out[0]
        for i in range(2, length):
            out[i] = start + i * delta
    return out


@jit
def _valley_above(sums, edges, mode, valley_z):  # pragma: no cover - compiled
    """Where the group whose mode is bin ``mode`` ends towards larger amplitudes.

    The histogram's 3-bin sums are walked upwards from the mode, keeping the lowest so
    far (the valley; never the mode's own three bins); where a sum ``p`` exceeds the
    valley ``m`` by ``valley_z`` Poisson SDs (``p > m`` and ``p - m >= valley_z *
    sqrt(p + m)``; two empty stretches are no rise) a larger potential's mode begins,
    and the group ends below the valley bin (the nearest of equally low ones).

    Parameters
    ----------
    sums : (B,) int64
        Candidates per 3 bins (``counts[b - 1] + counts[b] + counts[b + 1]``).
    edges : (B + 1,) float64
        Bin edges, decades.
    mode : int
    valley_z : float

    Returns
    -------
    float
        The (exclusive) highest log-amplitude of the group, decades; inf without a
        valley.
    """
    valley = mode + 2
    for b in range(mode + 3, sums.size):
        if sums[b] < sums[valley]:
            valley = b
        elif sums[b] > sums[valley] and sums[b] - sums[valley] >= valley_z * np.sqrt(sums[b] + sums[valley]):
            return edges[valley]
    return np.inf


@jit
def amplitude_groups_kernel(logs_all, alive, min_count, bin_width, core_half, width_sd, min_width, mad_to_sd,
                            valley_z, labels, centres):  # pragma: no cover - compiled
    """The amplitude groups of one polarity in :func:`~sfemg.analysis.detect.find_trigger`,
    in the order they are found (see there; its NumPy loop is the tests' reference).

    Parameters
    ----------
    logs_all : (N,) float64
        log10 of each candidate's magnitude (for this polarity).
    alive : (M,) int64
        The candidates of this polarity, increasing.
    min_count : int
    bin_width : float
        Histogram bin, decades.
    core_half : float
        Half-width of the box whose count finds a group, and of the core around its mode
        whose median is its centre, decades (a whole number of bins).
    width_sd : float
        A group reaches this many robust SDs from its centre ...
    min_width : float
        ... and at least this far, decades.
    mad_to_sd : float
    valley_z : float
        A group ends below a valley of the histogram (3-bin sums) past which the sums
        rise again by this many Poisson SDs (see :func:`_valley_above`).
    labels : (N,) int64, out
        Group number of each candidate taken into a group (others untouched).
    centres : (N,) float64, out
        Median log10 magnitude of each group.

    Returns
    -------
    int
        Number of groups.
    """
    n_groups = 0
    while alive.size >= min_count:
        logs = logs_all[alive]
        edges = _arange(logs.min() - bin_width, logs.max() + 2 * bin_width, bin_width)
        counts = np.zeros(edges.size - 1, np.int64)
        for v in logs:
            counts[np.searchsorted(edges, v, side="right") - 1] += 1
        box = int(round(core_half / bin_width))  # bins either side
        smooth = np.empty(counts.size, np.int64)
        _box_sums(counts, box, smooth)
        best = smooth.max()
        if best < min_count:
            break
        top = np.flatnonzero(smooth == best)
        peak = top[top.size // 2]
        # the group's mode: the fullest 3 bins in the box (its centre can lie between two
        # groups, even with no candidate near it: two tight groups ~0.2 decade apart)
        sums = np.empty(counts.size, np.int64)
        _box_sums(counts, 1, sums)
        first = max(peak - box, 0)
        mode = first + np.argmax(sums[first:peak + box + 1])
        below = _valley_above(sums, edges, mode, valley_z)
        core = logs[(logs < below) & (np.abs(logs - (edges[mode] + 0.5 * bin_width)) <= core_half)]
        centre = np.median(core)
        width = width_sd * (np.median(np.abs(core - centre)) * mad_to_sd)
        near = (logs < below) & (np.abs(logs - centre) <= (width if width > min_width else min_width))
        if n_groups == centres.size:  # (each pass takes a candidate: only non-finite input)
            break
        labels[alive[near]] = n_groups
        centres[n_groups] = centre
        n_groups += 1
        alive = alive[~near]
    return n_groups
