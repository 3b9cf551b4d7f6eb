"""One way to check a numeric parameter and say, in one line, what is wrong with it."""

from __future__ import annotations

import os

import numpy as np

from .errors import SfemgInputError

__all__ = ["check_number", "worker_count"]


def check_number(obj, name, low=None, high=None, *, low_open=False, high_open=False):
    """Raise :class:`SfemgInputError` unless ``obj.name`` is a finite number in range.

    Parameters
    ----------
    obj : object
        The dataclass holding the parameter; its class name prefixes the message, except
        for :class:`~sfemg.synthesis.StudyParams` whose fields are the user-facing names.
    name : str
        Attribute to check.
    low, high : float, optional
        Bounds; inclusive unless ``low_open`` / ``high_open``.
    """
    value = getattr(obj, name)
    ok = (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
          and np.isfinite(value))
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        rule = " and ".join(
            s for s in ("" if low is None else f"{'>' if low_open else '>='} {low:g}",
                        "" if high is None else f"{'<' if high_open else '<='} {high:g}") if s)
        owner = type(obj).__name__
        label = name if owner == "StudyParams" else f"{owner}.{name}"
        kind = "a number " if isinstance(value, (str, bytes)) else ""  # ('5e-6' read as a range error)
        raise SfemgInputError(f"{label} must be {kind}{rule or 'a finite number'}, got {value!r}")


def worker_count(value, name):
    """How many workers (threads or processes) to run: ``value``, checked to be a whole
    number >= 1, or by default one per CPU this process may use.

    Raises
    ------
    SfemgInputError
        ``value`` is not None and not such a number (``name`` says which parameter).
    """
    if value is None:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise SfemgInputError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)
