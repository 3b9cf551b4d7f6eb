"""Jitter statistics of an interval series: MCD, MSD, the reporting rule and flip-flop.

Intervals are interpotential intervals (voluntary) or stimulus-to-response latencies
(stimulated), one per discharge, NaN where the potential was blocked.
"""

from __future__ import annotations

import numpy as np

from ..errors import SfemgInputError
from .detect import MAD_TO_SD, fast_median

__all__ = ["compute_mcd", "mcd_gradient", "compute_msd", "reported_jitter", "flip_flop_separation", "robust_mcd"]

#: Percentiles one SD either side of a Gaussian's mean.
_GAUSS_1SD_PERCENTILES = (15.87, 84.13)
#: MCD of i.i.d. Gaussian values / their standard deviation (2/sqrt(pi), Ekstedt 1974).
MCD_PER_SD = 2.0 / np.sqrt(np.pi)
#: MCD / median |consecutive difference| for i.i.d. Gaussian values: a difference is
#: Gaussian of SD sqrt(2) sigma, its mean |.| 2 sigma / sqrt(pi) and its median |.|
#: sqrt(2) sigma / MAD_TO_SD.
_MCD_PER_MEDIAN_DIFFERENCE = MCD_PER_SD * MAD_TO_SD / np.sqrt(2.0)


def _intervals(name, values):
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise SfemgInputError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    if np.any(np.isinf(arr)):
        raise SfemgInputError(f"{name}: contains infinite values")
    return arr


def compute_mcd(intervals_s) -> float:
    """Mean consecutive difference of an interval series.

    Parameters
    ----------
    intervals_s : array_like, shape (n_discharges,)
        IPI or latency per discharge, s; NaN marks a blocked discharge.

    Returns
    -------
    float
        Mean of ``|x[i] - x[i-1]|`` over consecutive discharges that are both present
        (pairs straddling a block are skipped), s; NaN when no such pair exists.
    """
    x = _intervals("intervals_s", intervals_s)
    diffs = np.abs(np.diff(x))
    diffs = diffs[np.isfinite(diffs)]
    return float(diffs.mean()) if diffs.size else float("nan")


def mcd_gradient(intervals_s) -> np.ndarray:
    """Derivative of :func:`compute_mcd` with respect to each interval.

    The MCD is ``(1/m) sum |x[i] - x[i-1]|`` over the ``m`` consecutive pairs that are
    both present, so ``d MCD / d x[i] = (sign(x[i] - x[i-1]) - sign(x[i+1] - x[i])) / m``
    (terms of pairs straddling a block left out). It sums to zero: a shift of every
    interval leaves the MCD unchanged. With the intervals' error covariance ``C`` the
    MCD's error variance is ``g C g`` to first order (the delta method).

    Parameters
    ----------
    intervals_s : array_like, shape (n_discharges,)
        As for :func:`compute_mcd`.

    Returns
    -------
    ndarray, shape (n_discharges,)
        Per second of interval, dimensionless; 0 where blocked or in no pair, all 0 when
        no pair exists.
    """
    x = _intervals("intervals_s", intervals_s)
    d = np.diff(x)
    present = np.isfinite(d)
    sign = np.where(present, np.sign(np.where(present, d, 0.0)), 0.0)
    gradient = np.zeros(x.size)
    gradient[1:] += sign
    gradient[:-1] -= sign
    return gradient / max(int(present.sum()), 1)


def robust_mcd(intervals_s) -> float:
    """MCD estimated from the median consecutive difference, for series with gross errors.

    ``median |x[i] - x[i-1]|`` (pairs straddling a block skipped) scaled so that it
    estimates the MCD of Gaussian values: a few wild values (a discharge timed on
    another unit's potential) move it little, where each adds two large terms to the
    mean. Not the reported jitter — a tool for asking whether two series move together.

    Parameters
    ----------
    intervals_s : array_like, shape (n_discharges,)
        Values per discharge, s; NaN marks a blocked discharge.

    Returns
    -------
    float
        s; NaN when no pair of consecutive present discharges exists.
    """
    x = _intervals("intervals_s", intervals_s)
    diffs = np.abs(np.diff(x))
    diffs = diffs[np.isfinite(diffs)]
    return float(fast_median(diffs) * _MCD_PER_MEDIAN_DIFFERENCE) if diffs.size else float("nan")


def compute_msd(intervals_s, idis_s) -> float:
    """Mean sorted-interval difference: the MCD after sorting by the preceding IDI.

    Parameters
    ----------
    intervals_s : array_like, shape (n_discharges,)
        IPI or latency per discharge, s; NaN where blocked.
    idis_s : array_like, shape (n_discharges,)
        Inter-discharge interval preceding each discharge, s; NaN where unknown.

    Returns
    -------
    float
        MCD of the present intervals ordered by increasing preceding IDI, s; NaN when
        fewer than two discharges have both values.
    """
    x = _intervals("intervals_s", intervals_s)
    idi = _intervals("idis_s", idis_s)
    if idi.shape != x.shape:
        raise SfemgInputError(f"idis_s: shape {idi.shape} does not match intervals_s {x.shape}")
    keep = np.isfinite(x) & np.isfinite(idi)
    order = np.argsort(idi[keep], kind="stable")
    return compute_mcd(x[keep][order])


#: MCD/MSD above which the MSD is the reported jitter (the firing rate's effect removed;
#: 1.25 by convention, Stålberg & Trontelj; docs/literature.md).
MSD_RATIO_THRESHOLD = 1.25


def reported_jitter(mcd_s: float, msd_s: float, ratio_threshold: float = MSD_RATIO_THRESHOLD):
    """The pair's jitter by the MCD/MSD rule.

    Parameters
    ----------
    mcd_s, msd_s : float
        MCD and MSD, s (MSD may be NaN, e.g. for stimulated recordings).
    ratio_threshold : float
        Report MSD when MCD/MSD exceeds this (:data:`MSD_RATIO_THRESHOLD`).

    Returns
    -------
    jitter_s : float
        MSD if ``mcd_s / msd_s > ratio_threshold``, else MCD, s.
    ratio : float
        ``mcd_s / msd_s`` (NaN when MSD is NaN or zero).
    """
    ratio = mcd_s / msd_s if np.isfinite(msd_s) and msd_s > 0 else float("nan")
    jitter = msd_s if np.isfinite(ratio) and ratio > ratio_threshold else mcd_s
    return float(jitter), float(ratio)


def two_group_split(values, min_fraction: float = 0.1, robust: bool = False):
    """Best split of values in two groups (Otsu) and its Ashman's D.

    The sorted finite values are split at the threshold minimising the within-group
    variance; ``D = sqrt(2) |m1 - m2| / sqrt(s1^2 + s2^2)``. A Gaussian sample gives
    D ≈ 2.5-3; two well separated populations give D far above that.

    Parameters
    ----------
    values : array_like, shape (n,)
        NaN entries are ignored.
    min_fraction : float
        Each group must hold at least this fraction of the finite values.
    robust : bool
        Take each group's centre as its median and its spread as half the range between
        its 15.87th and 84.13th percentiles (the SD of a Gaussian) instead of its mean and
        SD, so that a few outlying values do not hide two tight populations (one stray
        value 0.5 below a group of spread 0.01 lowers the SD-based D of a clear split
        from ~20 to ~3).

    Returns
    -------
    d : float
        Ashman's D (0 when fewer than 4 values or no admissible split; inf for two
        groups without spread).
    threshold : float
        Values above it form the upper group (NaN when there is no split).
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    x = x[np.isfinite(x)]
    n = x.size
    n_min = max(2, int(np.ceil(min_fraction * n)))
    if n < 2 * n_min:
        return 0.0, float("nan")
    csum = np.cumsum(x)
    csum2 = np.cumsum(x * x)
    k = np.arange(n_min, n - n_min + 1)  # size of the lower group
    m1 = csum[k - 1] / k
    m2 = (csum[-1] - csum[k - 1]) / (n - k)
    v1 = np.maximum(csum2[k - 1] / k - m1 ** 2, 0.0)
    v2 = np.maximum((csum2[-1] - csum2[k - 1]) / (n - k) - m2 ** 2, 0.0)
    best = np.argmin(k * v1 + (n - k) * v2)
    threshold = 0.5 * (x[k[best] - 1] + x[k[best]])
    if robust:
        lower, upper = x[:k[best]], x[k[best]:]
        m1, m2 = fast_median(lower), fast_median(upper)
        spread = 0.5 * np.hypot(*(np.diff(np.percentile(g, _GAUSS_1SD_PERCENTILES)) for g in (lower, upper)))[0]
        if spread == 0:
            return (float("inf") if m2 > m1 else 0.0), threshold
        return float(np.sqrt(2.0) * (m2 - m1) / spread), threshold
    spread = np.sqrt(v1[best] + v2[best])
    if spread == 0:
        return (float("inf") if m2[best] > m1[best] else 0.0), threshold
    return float(np.sqrt(2.0) * (m2[best] - m1[best]) / spread), threshold


def flip_flop_separation(intervals_s, min_fraction: float = 0.1) -> float:
    """Bimodality of the intervals: Ashman's D of the best two-group split
    (:func:`two_group_split`). Two latencies alternating ("flip-flop") give D far above
    the 2.5-3 of a Gaussian sample.

    Parameters
    ----------
    intervals_s : array_like, shape (n_discharges,)
        IPI or latency per discharge, s; NaN where blocked.
    min_fraction : float
        Each group must hold at least this fraction of the present intervals.

    Returns
    -------
    float
        Ashman's D (0 when fewer than 4 intervals or no admissible split).
    """
    return two_group_split(_intervals("intervals_s", intervals_s), min_fraction)[0]
