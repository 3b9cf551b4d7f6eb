"""The one place that decides how sfemg's numba kernels are compiled.

Every kernel module (``_*_numba.py``) imports :func:`jit` from here, so the flags are
fixed once: ``nopython`` (no silent object-mode fallback), ``nogil`` (kernels run in
worker threads without the GIL), ``cache=True`` (compiled code is reused between runs)
and ``fastmath=False`` (bit-reproducible IEEE arithmetic, so the same seed gives the
same bits everywhere).
"""

from __future__ import annotations

import numba

__all__ = ["jit"]


def jit(func=None, **overrides):
    """Compile ``func`` with sfemg's fixed numba flags.

    Parameters
    ----------
    func : callable, optional
        The Python function to compile. When omitted, a decorator is returned.
    **overrides
        Flags that differ from the defaults for one kernel (rarely needed).

    Returns
    -------
    callable
        The compiled dispatcher, or a decorator when ``func`` is None.
    """
    flags = {"nopython": True, "nogil": True, "cache": True, "fastmath": False}
    flags.update(overrides)
    if func is None:
        return lambda f: numba.jit(**flags)(f)
    return numba.jit(**flags)(func)
