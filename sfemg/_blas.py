"""BLAS on one thread while the analysis needs it, safe across worker threads.

The joint fit's dense products and solves (:mod:`sfemg.analysis.joint`) must run on one
BLAS thread: OpenBLAS splits these sizes over threads and rounds differently for each
thread count, and a study must give the same bits however it is run. threadpoolctl's
limit is process-wide, and setting and restoring it is not thread-safe: two analyses on
worker threads, each limiting and then restoring, would let one of them run on the
other's restored thread count. Here the first to enter sets the limit and the last to
leave restores it.

Setting and restoring it for every fit of a study is slow on worker threads (an analysis
on one worker thread took 2.6x as long as with the limit held throughout, measured
2026-11-27), so the analysis of a study (:mod:`sfemg.analysis.study`) holds it throughout as well.
"""

from __future__ import annotations

import threading

from threadpoolctl import ThreadpoolController

__all__ = ["one_blas_thread"]


class _OneBlasThread:
    """Context manager (re-entrant, thread-safe): BLAS on one thread while any thread of
    the process is inside. The BLAS libraries are found once, on first use (each search
    costs ~3 ms)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._inside = 0
        self._controller = None
        self._limiter = None

    def __enter__(self):
        with self._lock:
            if self._inside == 0:
                if self._controller is None:
                    self._controller = ThreadpoolController()
                self._limiter = self._controller.limit(limits=1, user_api="blas")
            self._inside += 1

    def __exit__(self, *exc_info):
        with self._lock:
            self._inside -= 1
            if self._inside == 0:
                self._limiter.restore_original_limits()
                self._limiter = None


#: The process's one instance.
one_blas_thread = _OneBlasThread()
