"""Durations in samples: the one rounding rule for every window the package cuts."""

from __future__ import annotations


def to_samples(duration_s, fs_hz, minimum: int = 0) -> int:
    """``duration_s`` as a whole number of samples at ``fs_hz``, rounded, at least ``minimum``.

    Parameters
    ----------
    duration_s : float
        Duration, s (a window in µs is given as ``window_us * 1e-6``).
    fs_hz : float
        Sampling rate, Hz.
    minimum : int
        The fewest samples to return (a window of at least one or two samples).
    """
    return max(minimum, int(round(duration_s * fs_hz)))
