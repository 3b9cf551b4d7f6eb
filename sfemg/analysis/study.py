"""Analysis of a study: every recording of a file, the verdict, results stored beside them."""

from __future__ import annotations

import collections
import contextlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .._blas import one_blas_thread
from .._validation import worker_count
from ..errors import SfemgInputError
from ..io import recordings as recordings_io
from ..io import results as results_io
from .core import analyze_recording, recording_electrode
from .limits import canonical_electrode, canonical_muscle, study_verdict
from .params import checked_params
from .results import StudyResult

__all__ = ["analyze_recordings", "analyze_file"]


def _one(values, what):
    """``(value, "")`` for the single distinct non-None value of ``values``; ``(None, why)``
    for a mixture (``why`` naming the ``what``s mixed) and ``(None, "")`` for none."""
    distinct = {v for v in values if v is not None}
    if len(distinct) == 1:
        return distinct.pop(), ""
    return None, (f"recordings mix {what}s ({', '.join(sorted(map(str, distinct)))})" if distinct else "")


def _analysed(items, analyse, n_workers):
    """Analyse ``(name, Recording or SfemgInputError)`` items on worker threads, in order.

    Reading the next items (an HDF5 file, say) goes on in the calling thread while the
    workers analyse; at most ``2 * n_workers`` recordings are read ahead of the results
    handed back, so a long study is never all in memory. A recording's result does not
    depend on the number of workers.

    Yields
    ------
    name : str
    outcome : RecordingResult or SfemgInputError
        What ``analyse(recording)`` returned, or the error that says why there is nothing.
    """
    def outcome(rec):
        if isinstance(rec, SfemgInputError):
            return rec
        try:
            return analyse(rec)
        except SfemgInputError as exc:
            return exc

    pool = ThreadPoolExecutor(n_workers)
    pending = collections.deque()
    try:
        for name, rec in items:
            pending.append((name, pool.submit(outcome, rec)))
            if len(pending) >= 2 * n_workers:
                name, future = pending.popleft()
                yield name, future.result()
        while pending:
            name, future = pending.popleft()
            yield name, future.result()
    except BaseException:
        # an error, Ctrl-C or the caller stopping early: drop what has not started, close
        # the input (an HDF5 file) and return at once rather than after the analyses
        # running (they end on their own, their results unused)
        pool.shutdown(wait=False, cancel_futures=True)
        getattr(items, "close", lambda: None)()
        raise
    pool.shutdown()


def _analyze_study(items, n, *, muscle, electrode, params, progress, problems, source, n_workers):
    """The study of :func:`analyze_recordings` from ``n`` (name, Recording or
    SfemgInputError) items."""
    params = checked_params(params)
    problems = dict(problems or {})
    n_workers = worker_count(n_workers, "n_workers")
    electrode = canonical_electrode(electrode)
    stated = {}  # recording name: whether its electrode was given or stated (else params')

    def analyse(rec):
        stated[rec.name] = recording_electrode(rec, electrode) is not None
        return analyze_recording(rec, params.replace(muscle=muscle or rec.muscle or params.muscle),
                                 electrode=electrode)

    results = []
    with one_blas_thread:  # held for the whole study: set per fit, it is slow on worker threads
        for done, (name, outcome) in enumerate(_analysed(items, analyse, n_workers), start=1):
            if isinstance(outcome, SfemgInputError):
                problems[name] = str(outcome)
            else:
                results.append(outcome)
            if progress is not None:
                progress(done, n, name)
    activation, why_mode = _one((r.mode for r in results), "activation")
    study_muscle, why_muscle = _one((canonical_muscle(muscle or r.muscle or params.muscle)
                                     for r in results), "muscle")
    study_electrode, why_electrode = _one((r.electrode for r in results), "electrode")
    pairs = [p for r in results for p in r.pairs]
    mixed = why_mode or why_muscle or why_electrode
    if mixed:
        study = study_verdict(pairs, muscle=None, electrode=study_electrode or params.electrode,
                              activation=activation or "voluntary")
        study["verdict"] = f"unknown ({mixed})"
        study["verdict_reason"] = mixed
    else:
        study = study_verdict(pairs, muscle=study_muscle, electrode=study_electrode or params.electrode,
                              activation=activation or "voluntary", age_years=params.age_years)
    said = [stated[r.name] for r in results]
    if said:  # (nothing analysed: nothing to say)
        study["electrode_source"] = "given" if electrode else "recordings" if all(said) else \
            "mixed" if any(said) else "parameters"
    return StudyResult(recordings=tuple(results), study=study, problems=problems, params=params,
                       source=source)


def analyze_recordings(recordings, *, muscle=None, electrode=None, params=None, progress=None,
                       problems=None, source=None, n_workers=None) -> StudyResult:
    """Analyse recordings and judge the study.

    Parameters
    ----------
    recordings : sequence of Recording
    muscle : str, optional
        Overrides the recordings' muscle for the reference limits.
    electrode : {"sfe", "concentric"}, optional
        Overrides the recordings' electrode (acceptance thresholds and limits); otherwise
        each recording's own (an alias such as "SFE" or "CNE" is understood, an unknown
        name refuses that recording), else ``params.electrode`` (``study["electrode_source"]``
        says which: "given", "recordings", "parameters" or "mixed": some recordings
        state it, the others take the parameters').
    params : AnalysisParams, optional
    progress : callable(done, n, name), optional
        Called as each recording is done (``done`` from 1 to n, its name), in order.
    problems : dict, optional
        Problems met before analysis (e.g. unreadable recordings), carried into the result.
    source : str, optional
        File the recordings came from.
    n_workers : int, optional
        Recordings analysed at once, on worker threads (default: one per core this process
        may use). The results are the same bits for any number.

    Returns
    -------
    StudyResult
        Recordings that raise :class:`SfemgInputError` are skipped and listed in
        ``problems`` with the one-line reason.
    """
    recordings = list(recordings)
    return _analyze_study(((rec.name, rec) for rec in recordings), len(recordings), muscle=muscle,
                          electrode=electrode, params=params, progress=progress, problems=problems,
                          source=source, n_workers=n_workers)


def analyze_file(input_path, *, output_path=None, json_path=None, muscle=None, electrode=None,
                 params=None, progress=None, n_workers=None) -> StudyResult:
    """Analyse every recording of an HDF5 file (docs/hdf5.md) and store the results.

    Parameters
    ----------
    input_path : str or os.PathLike
        File with ``/recordings/<name>/signal`` (or ``sweeps``) and ``sampling_rate_hz``.
    output_path : str or os.PathLike, optional
        Where to write ``/analysis``. None: into the input file (atomically, replacing a
        previous ``/analysis``, never touching ``/recordings``). Otherwise that file is
        created (or its ``/analysis`` replaced) holding only results and the source's name;
        a file holding recordings of its own is refused.
    json_path : str or os.PathLike, optional
        Also write the ``--json`` summary (docs/hdf5.md) there, atomically, put in place
        right after the HDF5 results (a failed write leaves both as they were).
    muscle, electrode : str, optional
        Override what the recordings say (reference limits, acceptance thresholds).
    params : AnalysisParams, optional
    progress : callable(done, n, name), optional
        Progress callback, see :func:`analyze_recordings`.
    n_workers : int, optional
        Recordings analysed at once, on worker threads (default: one per CPU this process
        may use), while the next ones are read.

    Returns
    -------
    StudyResult

    Raises
    ------
    SfemgInputError
        The file cannot be read, or not a single recording could be analysed (partial
        results are written whenever at least one recording was analysed).
    """
    input_path = Path(input_path)
    names = recordings_io.list_recordings(input_path)
    # where the results go, checked before a long analysis rather than after it
    target = results_io.check_results_target(output_path if output_path is not None else input_path,
                                             source=input_path)
    if json_path is not None:
        results_io.check_summary_target(json_path, (input_path, target))
    study = _analyze_study(recordings_io.iter_recordings(input_path, names, with_ground_truth=False),
                           len(names), muscle=muscle, electrode=electrode, params=params,
                           progress=progress, problems=None, source=str(input_path), n_workers=n_workers)
    if not study.recordings:
        name, problem = next(iter(study.problems.items()), ("", "no recordings"))
        problem = problem.removeprefix(f"{input_path}: ").removeprefix(f"recording {name!r}: ")  # (said once)
        raise SfemgInputError(f"{input_path}: no recording could be analysed "
                              f"({len(study.problems)} failed; {name!r}: {problem})")
    with results_io.staged_json(json_path, study) if json_path is not None else contextlib.nullcontext():
        results_io.save_results(target, study, source=str(input_path))
    return study
