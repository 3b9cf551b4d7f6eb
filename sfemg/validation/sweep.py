"""Monte Carlo validation sweeps: every grid cell, n seeded repeats, every method scored.

One *task* is one repeat of one cell: simulate ``n_recordings`` pairs from
``SeedSequence([seed, cell, repeat])``, run every method on them and score it
(:func:`~sfemg.validation.scoring.score_repeat`). Tasks run serially, on local worker
processes, or on a Dask distributed cluster; as they depend on nothing but their
arguments, the scores are the same bits however they ran. A cell is written to the
HDF5 file (atomically) as soon as its last repeat finishes, and a sweep started again
on the same file with the same configuration skips the finished cells.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import multiprocessing
import os
import platform
import signal
import socket
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from .. import __version__
from .._blas import one_blas_thread
from .._validation import worker_count
from ..errors import SfemgInputError
from ..io import schema as S
from ..io._h5 import holds
from .grid import Cell, Grid, get_grid, repeat_seed, simulate_repeat
from .plugins import BUILTIN_METHODS, method_analyser, plugin_fingerprint
from .scoring import MATCH_TOLERANCE_US, METRICS, check_tolerance, score_repeat, summarize_metrics, true_pairs

__all__ = ["run_sweep", "run_task", "summarize_sweep", "format_summary", "DEFAULT_METHODS",
           "SWEEP_FORMAT_VERSION"]

#: Methods scored when none are given: the whole analysis (two time-point methods) and
#: the three built-in time-point estimators on their own.
DEFAULT_METHODS = ("analyser:sfemg-template", "analyser:sfemg-peak", "timepoint:template",
                   "timepoint:peak", "timepoint:level")
#: Version of the sweep configuration and scores (bump when a metric's meaning changes).
SWEEP_FORMAT_VERSION = "1.0.0"


def run_task(cell: Cell, cell_index: int, repeat: int, seed: int, n_recordings: int, methods,
             tolerance_us: float):
    """Simulate and score one repeat of one cell (the unit of parallel work).

    Returns
    -------
    cell_index, repeat : int
    scores : ndarray, shape (len(methods), len(METRICS))
    elapsed_s : float
        Wall time of the task, s (provenance only).
    host : str
    refused : dict
        Per user plug-in that raised :class:`SfemgInputError` (nothing to analyse: the
        recording's pairs count as missed), ``[recordings, first message]``.

    Notes
    -----
    BLAS runs on one thread throughout, user plug-ins included: the tasks are the
    parallelism, and between the joint fit's single-thread sections OpenBLAS's own threads
    took CPU from the other worker (a study's analysis on two forked workers: 26-36 against
    20-24 ms a recording). The limit is process-wide: on a Dask worker with several threads
    it holds for all of them while any task runs.
    """
    with one_blas_thread:
        return _run_task(cell, cell_index, repeat, seed, n_recordings, methods, tolerance_us)


def _run_task(cell, cell_index, repeat, seed, n_recordings, methods, tolerance_us):
    t0 = time.perf_counter()
    study = simulate_repeat(cell, n_recordings, repeat_seed(seed, cell_index, repeat))
    truths = [true_pairs(gt) for gt in study.ground_truths]
    scores = np.empty((len(methods), len(METRICS)))
    refused = {}
    for k, method in enumerate(methods):
        analyser = method_analyser(method)
        external = method not in BUILTIN_METHODS  # the user's code: its failures are its own
        where = f"(cell {cell_index}, repeat {repeat})"
        measured = []
        for rec in study.recordings:
            try:
                pairs = analyser(rec)
                if external and not isinstance(pairs, (list, tuple)):
                    raise TypeError(f"returned {type(pairs).__name__}, not a list of pairs")
                measured.append(pairs)
            except SfemgInputError as exc:  # nothing found: every pair of the recording is missed
                measured.append([])
                if external:  # (also what sfemg raises when a plug-in misuses it: said, not hidden)
                    refused.setdefault(method, [0, f"{rec.name}: {exc}"])[0] += 1
            except Exception as exc:
                if not external:
                    raise
                raise SfemgInputError(f"plug-in {method} failed on recording {rec.name} {where}: "
                                      f"{exc.__class__.__name__}: {exc}") from None
        try:
            scores[k] = score_repeat(truths, measured, tolerance_us)
        except SfemgInputError as exc:  # a pair of the wrong form
            raise SfemgInputError(f"{method} {where}: {exc}") from None
    return cell_index, repeat, scores, time.perf_counter() - t0, socket.gethostname(), refused


def _run_serial(tasks):
    for task in tasks:
        yield run_task(*task)


def _end_with_parent():
    """Worker initialiser: the worker ends once the sweep's process is gone (a killed sweep
    cannot shut its pool down; its workers stayed, idle, as orphans). Its sentinel, not
    the parent id: under the forkserver start method a worker's parent is the server.

    Signals are the sweep's to handle: Ctrl-C (sent to the whole process group) is
    ignored here, and SIGTERM ends the worker (a forked worker inherited the ``sfemg``
    program's handler, which turned the sweep's own terminate into an exception that
    the worker caught and outlived)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    sweep = multiprocessing.parent_process()
    if sweep is None:
        return

    def watch():
        sweep.join()
        os._exit(1)

    threading.Thread(target=watch, name="sfemg-sweep-watch", daemon=True).start()


def _lost_worker(what, task):
    """The one-line error for a worker process that ended: ``what`` happened, and ``task``."""
    cell_index, repeat = task[1:3]
    return SfemgInputError(f"{what} cell {cell_index}, repeat {repeat} (killed, out of memory, "
                           "or a plug-in that ends its process); the finished cells are kept")


def _run_processes(tasks, n_workers):
    pool = ProcessPoolExecutor(n_workers, initializer=_end_with_parent)
    finished = False
    task = tasks[0] if tasks else None
    try:
        futures = {}
        for task in tasks:
            futures[pool.submit(run_task, *task)] = task
        for future in as_completed(futures):
            task = futures[future]
            yield future.result()
        finished = True
    except BrokenProcessPool:  # (every unfinished task then fails so, not only the one that ran)
        raise _lost_worker("a worker process ended with unfinished tasks, among them", task) from None
    finally:
        if not finished:  # interrupted or failed: end the workers now
            _kill_workers(pool)
        pool.shutdown(wait=True, cancel_futures=True)


def _kill_workers(pool):
    """End ``pool``'s worker processes at once (SIGKILL: a plug-in may ignore SIGTERM).
    Their running tasks are lost either way (a cell is written only whole); waiting for
    them to end, a second Ctrl-C (or ``timeout -s INT``, which signals the process group
    too) broke off the shutdown and left the program waiting for ever on idle workers."""
    kill = getattr(pool, "kill_workers", None)  # (Python 3.14)
    if kill is not None:
        kill()
        return
    for process in list((pool._processes or {}).values()):
        process.kill()


#: How long a sweep waits for a Dask scheduler's answer, s.
DASK_CONNECT_S = 10.0
#: How long a connected scheduler has to answer the handshake, s.
_HANDSHAKE_S = 5.0
#: How long a sweep waits for a Dask scheduler's first worker, s.
DASK_WORKER_WAIT_S = 30.0


def code_fingerprint():
    """sfemg's version and a hash of its source files: what a Dask worker must share with
    the client for the sweep's bits to be the client's (the same version string may be
    other code in a source checkout)."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return f"{__version__} ({digest.hexdigest()[:12]})"


def _handshake(address, security):
    """Raise :class:`SfemgInputError` unless a Dask scheduler at ``address`` answers its
    handshake within :data:`DASK_CONNECT_S`.

    Done on a connection of its own, in an event loop of its own (a thread: the caller's
    may be running one), before any ``distributed.Client`` exists: a Client that fails to
    connect is left half made, the default client, with its event loop running, and
    closes itself whenever the garbage collector finds it, which deadlocked the next
    cluster started in the process; and distributed bounds the connection but not the
    handshake, so an address of a server that is not Dask (the dashboard's port) waited
    for ever.
    """
    import asyncio

    from distributed.comm import connect

    async def answer():
        comm = await connect(address, timeout=DASK_CONNECT_S, **security.get_connection_args("client"))
        await comm.close()

    wait_s = DASK_CONNECT_S + _HANDSHAKE_S  # (connect() times out by itself first)

    def bounded():
        return asyncio.run(asyncio.wait_for(answer(), wait_s))

    cannot = f"cannot reach the Dask scheduler at {address}"
    with ThreadPoolExecutor(1, thread_name_prefix="sfemg-dask-handshake") as pool:
        try:
            pool.submit(bounded).result()
        except (TimeoutError, asyncio.TimeoutError):  # (two classes before Python 3.11)
            raise SfemgInputError(f"{cannot}: connected, but no Dask handshake within {wait_s:g} s (the "
                                  "scheduler's port, not its dashboard's?)") from None
        except MemoryError:  # (distributed read a length that was not one)
            raise SfemgInputError(f"{cannot}: what answered there is not a Dask scheduler") from None
        except (OSError, ValueError) as exc:
            raise SfemgInputError(f"{cannot}: {exc}") from None
        except Exception as exc:  # (TLS without its context, a websocket refused, ...: the peer's or the set-up's)
            raise SfemgInputError(f"{cannot}: {exc.__class__.__name__}: {exc}") from None


def _dask_client(scheduler):
    """A client of ``scheduler`` (an address or a connected client), checked before any
    file is written: reachable, with a worker, every worker running this sfemg.

    Returns
    -------
    client : distributed.Client
    own : bool
        Whether it was opened here (and is to be closed here).
    """
    try:
        import distributed
    except ImportError:
        raise SfemgInputError("a Dask scheduler needs dask[distributed]: pip install 'sfemg[dask]'") from None
    own = not isinstance(scheduler, distributed.Client)
    if own:
        # a cluster object: its address and security; an address: TLS as the dask configuration sets it
        security = getattr(scheduler, "security", None) or distributed.security.Security()
        scheduler = getattr(scheduler, "scheduler_address", scheduler)
        if not isinstance(scheduler, str):
            raise SfemgInputError(f"a Dask scheduler is an address ('tcp://host:8786'), a cluster or a "
                                  f"distributed.Client, not {type(scheduler).__name__}")
        _handshake(scheduler, security)
        try:  # (the scheduler gone since it answered)
            client = distributed.Client(scheduler, timeout=f"{DASK_CONNECT_S:g}s", security=security,
                                        set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise SfemgInputError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    else:
        client = scheduler
    try:
        client.wait_for_workers(1, timeout=DASK_WORKER_WAIT_S)
        try:
            theirs = client.run(code_fingerprint)
        except Exception as exc:  # (what a worker without sfemg raises while unpickling)
            raise SfemgInputError(f"a worker of the Dask scheduler at {scheduler} cannot run sfemg "
                                  f"({exc.__class__.__name__}: {exc}): install this sfemg on every worker") from None
    except TimeoutError:
        if own:
            client.close()
        raise SfemgInputError(f"no worker joined the Dask scheduler at {scheduler} within "
                              f"{DASK_WORKER_WAIT_S:g} s") from None
    except SfemgInputError:
        if own:
            client.close()
        raise
    mine = code_fingerprint()
    other = {worker: code for worker, code in theirs.items() if code != mine}
    if other:
        if own:
            client.close()
        worker, code = next(iter(other.items()))
        raise SfemgInputError(f"{len(other)} Dask worker(s) run other sfemg code than this client ({worker}: "
                              f"{code}; here: {mine}): the sweep's scores would mix them")
    return client, own


def _run_dask(tasks, client):
    import distributed

    futures = {}
    try:
        futures = {client.submit(run_task, *task, pure=False): task for task in tasks}
        for future in distributed.as_completed(futures, loop=client.loop):  # (not the default client)
            try:
                yield future.result()
            except distributed.KilledWorker:
                raise _lost_worker("Dask workers ended repeatedly (KilledWorker) running", futures[future]) from None
    finally:
        client.cancel(list(futures))


def _config(grid, n_repeats, n_recordings, methods, seed, tolerance_us):
    return {"format_version": SWEEP_FORMAT_VERSION, "grid": grid.to_dict(), "n_repeats": n_repeats,
            "n_recordings": n_recordings, "methods": list(methods), "metrics": list(METRICS),
            "seed": seed, "match_tolerance_us": tolerance_us}


def run_sweep(output, grid="default", *, n_repeats: int = 10, n_recordings: int = 4,
              methods=DEFAULT_METHODS, seed: int = 0, n_workers: int | None = None, scheduler=None,
              tolerance_us: float = MATCH_TOLERANCE_US, force: bool = False, progress=None,
              command: str | None = None) -> dict:
    """Run (or resume) a validation sweep into an HDF5 file.

    Parameters
    ----------
    output : str or os.PathLike
        HDF5 file. If it exists with the same configuration, begun by this version of
        sfemg, finished cells are kept and only the others are run (resume); otherwise it
        is refused unless ``force``. With ``force`` it is replaced and every cell run.
    grid : Grid or str
        A :class:`~sfemg.validation.grid.Grid`, a built-in name (``"default"``, ``"stimulated"``,
        ``"tiny"``) or a sum of them (``"default+stimulated"``).
    n_repeats : int
        Monte Carlo repeats per cell (confidence intervals are over these).
    n_recordings : int
        Recordings (fibre pairs; endplates in stimulated cells) simulated per repeat.
    methods : sequence of str
        ``"timepoint:<spec>"`` or ``"analyser:<spec>"`` (:mod:`sfemg.validation.plugins`).
    seed : int
        Global seed; repeat r of cell c uses ``SeedSequence([seed, c, r])``.
    n_workers : int, optional
        Local worker processes (default: all cores; 1 runs in this process). Ignored
        with ``scheduler``.
    scheduler : str, cluster or distributed.Client, optional
        Dask scheduler address (``"tcp://host:8786"``), a cluster object (its
        ``scheduler_address``) or a connected client.
    tolerance_us : float
        Pair matching tolerance on the mean IPI, µs.
    force : bool
        Replace an existing file and run every cell, whatever it holds.
    progress : callable, optional
        ``progress(n_done, n_total)`` as the tasks start (0 done) and after each task
        (repeat) of this run.
    command : str, optional
        Command line, stored as provenance.

    Returns
    -------
    dict
        ``{"n_cells", "n_cells_run", "n_tasks_run", "elapsed_s", "refused"}``; ``refused``:
        per user plug-in that raised :class:`~sfemg.errors.SfemgInputError` on some
        recordings of this run (their pairs counted as missed), ``(recordings, of,
        first: where and the message)``.
    """
    from ..io.validation import create_validation_file, write_validation_cell
    grid = get_grid(grid)
    for name, value in (("n_repeats", n_repeats), ("n_recordings", n_recordings)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise SfemgInputError(f"{name} must be an integer >= 1, got {value!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise SfemgInputError(f"seed must be a non-negative integer, got {seed!r}")
    methods = tuple(methods)
    if not methods:
        raise SfemgInputError("no methods to score")
    n_workers = worker_count(n_workers, "n_workers")
    elsewhere = _without_this_registry(scheduler, n_workers)
    for m in methods:
        method_analyser(m)  # fail now, not in a worker
        if elsewhere and m not in BUILTIN_METHODS and ":" not in m.partition(":")[2]:
            raise SfemgInputError(f"{m} is registered in this process only: {elsewhere} knows sfemg's own "
                                  "methods and 'module:function' plug-ins, not it (or run with n_workers=1)")
    tolerance_us = check_tolerance(tolerance_us)
    config = _config(grid, int(n_repeats), int(n_recordings), methods, int(seed), tolerance_us)
    plugins = {m: plugin_fingerprint(m) for m in methods if m not in BUILTIN_METHODS}
    where = "dask" if scheduler is not None else ("serial" if n_workers == 1 else f"{n_workers} processes")
    output = Path(output)
    done = _resumable_cells(output, config, plugins, force)
    resume = done is not None
    with contextlib.ExitStack() as stack:
        # the cluster reachable, with workers running this sfemg, before the file is replaced
        dask = _dask_client(scheduler) if scheduler is not None else None
        if dask is not None and dask[1]:  # (closed here, whatever happens: a generator never started
            stack.callback(dask[0].close)  # does not run its own clean-up)
        if not resume:
            done = set()
            create_validation_file(output, config, {"sfemg_version": __version__, "command": command or "",
                                                    "execution": where, "plugins": plugins,
                                                    "python": platform.python_version()}, force=True)
        todo = [c for c in range(len(grid.cells)) if c not in done]
        tasks = [(grid.cells[c], c, r, int(seed), int(n_recordings), methods, float(tolerance_us))
                 for c in todo for r in range(n_repeats)]
        if dask is not None:
            results = _run_dask(tasks, dask[0])
        elif n_workers == 1:
            results = _run_serial(tasks)
        else:
            results = _run_processes(tasks, n_workers)
        pending = {c: {} for c in todo}
        t_start = time.perf_counter()
        refused = {}
        with contextlib.closing(results):  # (the workers ended now, not when the collector finds it, on an error)
            if progress is not None and tasks:  # (a bar from the start: opened at the first task's end, its
                progress(0, len(tasks))         # clock and rate were off)
            for n_done, (c, r, scores, elapsed, host, task_refused) in enumerate(results, start=1):
                pending[c][r] = (scores, elapsed, host, task_refused)
                for method, (n_refused, first) in task_refused.items():
                    at = f"cell {c}, repeat {r}, {first}"
                    refused.setdefault(method, [0, n_recordings * len(tasks), at])[0] += n_refused
                if len(pending[c]) == n_repeats:
                    reps = pending.pop(c)
                    metrics = np.stack([reps[r][0] for r in range(n_repeats)], axis=1)
                    write_validation_cell(output, c, metrics, {
                        "task_wall_s": [reps[r][1] for r in range(n_repeats)],
                        "hosts": sorted({reps[r][2] for r in range(n_repeats)}), "execution": where,
                        "command": command or "",  # (the sweep's is its first run's: a resumed cell says its own)
                        "refused": {f"repeat {r}": reps[r][3] for r in range(n_repeats) if reps[r][3]},
                        "finished_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")},
                        config=config)
                if progress is not None:
                    progress(n_done, len(tasks))
    return {"n_cells": len(grid.cells), "n_cells_run": len(todo), "n_tasks_run": len(tasks),
            "elapsed_s": time.perf_counter() - t_start,
            "refused": {method: tuple(counts) for method, counts in refused.items()}}


def _without_this_registry(scheduler, n_workers):
    """Where the sweep's tasks run without the plug-ins registered in this process (on
    Dask, or on worker processes started afresh rather than forked), or None."""
    if scheduler is not None:
        return "a Dask worker"
    start = multiprocessing.get_start_method()
    return None if n_workers == 1 or start == "fork" else f"a worker process started by {start}"


def _resumable_cells(output, config, plugins, force):
    """The finished cells of the sweep in ``output`` to resume, or None to start it afresh.

    Refused (:class:`SfemgInputError`) where starting afresh would lose something
    without ``force``, or could never be right: a folder, a file of recordings, another
    sweep with finished cells; and resuming a sweep begun by another sfemg or other
    plug-in code, whose scores would mix with this run's.
    """
    from ..io.validation import finished_validation_cells, load_validation, read_validation_config

    if output.is_dir():
        raise SfemgInputError(f"{output} is a folder, not a file")
    if not output.exists():
        return None
    try:
        theirs = read_validation_config(output)
    except SfemgInputError as exc:  # not a validation file, or a damaged one
        if holds(output, S.RECORDINGS):
            raise SfemgInputError(f"{output} holds recordings, not a sweep: write the sweep to another file") from None
        if not force:
            raise SfemgInputError(f"{output} exists and holds no sweep sfemg can read "
                                  f"({str(exc).removeprefix(f'{output}: ')}); use --force (force=True) to "
                                  "replace it") from None
        return None
    done = finished_validation_cells(output)
    if force or not done:  # (a sweep stopped before its first cell: nothing to lose, or mix)
        return None
    if theirs != config:
        raise SfemgInputError(f"{output} holds {len(done)} finished cell(s) of a sweep with another configuration "
                              f"({_difference(theirs, config)}); use --force (force=True) to replace it")
    begun = load_validation(output)["provenance"]
    if begun.get("sfemg_version") != __version__:
        raise SfemgInputError(f"{output} holds this sweep begun by sfemg {begun.get('sfemg_version')}, this is "
                              f"{__version__}: resuming would mix their scores; use --force (force=True) to start "
                              "it again")
    python = begun.get("python", "not recorded")
    for method, code in plugins.items():
        before = begun.get("plugins", {}).get(method, "not recorded")
        if before != code:
            other_python = ("" if python.split(".")[:2] == platform.python_version_tuple()[:2] else
                            f", or the same code parsed by another Python ({python} then, "
                            f"{platform.python_version()} now)")
            raise SfemgInputError(f"{output}: plug-in {method} is other code than when this sweep began ({before}; "
                                  f"now {code}){other_python}: resuming would mix their scores; use --force "
                                  "(force=True) to start it again")
    return done


def _difference(theirs, ours):
    """The first setting in which two sweep configurations differ, as words."""
    for key in ours:
        if theirs.get(key) != ours[key]:
            if key == "grid":
                return "another grid"
            return f"{key} {theirs.get(key)!r} in the file, {ours[key]!r} here"
    return "another format"


def summarize_sweep(path) -> list:
    """Mean and confidence interval of every metric, per finished cell and method.

    Returns
    -------
    list of dict
        One row per (cell, method): ``cell_index``, ``cell`` (:class:`Cell`), ``method``,
        ``n_repeats`` and ``metrics`` (see :func:`~sfemg.validation.scoring.summarize_metrics`).
    """
    from ..io.validation import load_validation
    data = load_validation(path)
    grid = Grid.from_dict(data["config"]["grid"])
    rows = []
    for c in sorted(data["metrics"]):
        values = data["metrics"][c]
        for k, method in enumerate(data["config"]["methods"]):
            rows.append({"cell_index": c, "cell": grid.cells[c], "method": method,
                         "n_repeats": values.shape[1], "metrics": summarize_metrics(values[k])})
    return rows


#: Columns of :func:`format_summary`: (metric, header, format).
_TABLE = (("mcd_bias_us", "MCD bias µs", "{:+.1f}"), ("mcd_rmse_us", "MCD RMSE µs", "{:.1f}"),
          ("technical_jitter_us", "tech. jitter µs", "{:.1f}"),
          ("false_pairs", "false", "{:.1f}"), ("missed_pairs", "missed", "{:.1f}"),
          ("rejected_pairs", "rejected", "{:.1f}"), ("blocking_precision", "block P", "{:.2f}"),
          ("blocking_recall", "block R", "{:.2f}"))


def format_summary(rows) -> str:
    """A plain-text table of :func:`summarize_sweep` rows: mean [95 % CI] per metric
    (counts are per repeat); a row with a ``label`` is so named instead of by its cell."""
    def cell_text(summary, fmt):
        if not np.isfinite(summary["mean"]):
            return "-"
        text = fmt.format(summary["mean"])
        if np.isfinite(summary["ci_low"]):
            text += f" [{fmt.format(summary['ci_low'])}, {fmt.format(summary['ci_high'])}]"
        return text

    header = ["cell", "method"] + [h for _, h, _ in _TABLE]
    body = [[r["label"] if "label" in r else f"{r['cell_index']}: {r['cell'].label()}", r["method"]]
            + [cell_text(r["metrics"][m], f) for m, _, f in _TABLE] for r in rows]
    widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header))]
    return "\n".join("  ".join(x.ljust(w) for x, w in zip(line, widths)).rstrip() for line in [header] + body)
