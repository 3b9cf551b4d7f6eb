"""Analysis of a study: every recording of a file, the verdict, results stored beside them."""

from __future__ import annotations

from pathlib import Path

from ..errors import SfemgInputError
from ..io import recordings as recordings_io
from ..io import results as results_io
from .core import analyze_recording
from .limits import canonical_muscle, study_verdict
from .params import AnalysisParams
from .results import StudyResult

__all__ = ["analyze_recordings", "analyze_file"]


def _one(values, what):
    """The single distinct non-None value, None if there is none; raise-free for mixtures."""
    distinct = {v for v in values if v is not None}
    if len(distinct) == 1:
        return distinct.pop(), ""
    return None, (f"recordings mix {what}s ({', '.join(sorted(map(str, distinct)))})" if distinct else "")


def analyze_recordings(recordings, *, muscle=None, electrode=None, params=None, progress=None,
                       problems=None, source=None) -> StudyResult:
    """Analyse recordings one by one and judge the study.

    Parameters
    ----------
    recordings : sequence of Recording
    muscle : str, optional
        Overrides the recordings' muscle for the reference limits.
    electrode : {"sfe", "concentric"}, optional
        Overrides the recordings' electrode (acceptance thresholds and limits).
    params : AnalysisParams, optional
    progress : callable(i, n, name), optional
        Called before each recording (i from 0, its name) and once more as
        ``progress(n, n, "")`` when all are done.
    problems : dict, optional
        Problems met before analysis (e.g. unreadable recordings), carried into the result.
    source : str, optional
        File the recordings came from.

    Returns
    -------
    StudyResult
        Recordings that raise :class:`SfemgInputError` are skipped and listed in
        ``problems`` with the one-line reason.
    """
    params = params or AnalysisParams()
    problems = dict(problems or {})
    results = []
    n = len(recordings)
    for i, rec in enumerate(recordings):
        if progress is not None:
            progress(i, n, rec.name)
        rec_electrode = electrode or (rec.electrode if rec.electrode in ("sfe", "concentric") else None)
        rec_params = params.replace(electrode=rec_electrode or params.electrode,
                                    muscle=muscle or rec.muscle or params.muscle)
        try:
            results.append(analyze_recording(rec, rec_params))
        except SfemgInputError as exc:
            problems[rec.name] = str(exc)
    if progress is not None:
        progress(n, n, "")
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
    return StudyResult(recordings=tuple(results), study=study, problems=problems, params=params,
                       source=source)


def analyze_file(input_path, *, output_path=None, json_path=None, muscle=None, electrode=None,
                 params=None, progress=None) -> StudyResult:
    """Analyse every recording of an HDF5 file (DESIGN.md §5) and store the results.

    Parameters
    ----------
    input_path : str or os.PathLike
        File with ``/recordings/<name>/signal`` (or ``sweeps``) and ``sampling_rate_hz``.
    output_path : str or os.PathLike, optional
        Where to write ``/analysis``. None: into the input file (atomically, replacing a
        previous ``/analysis``, never touching ``/recordings``). Otherwise that file is
        created (or its ``/analysis`` replaced) holding only results and the source's name.
    json_path : str or os.PathLike, optional
        Also write the ``--json`` summary (DESIGN.md §5) there, atomically.
    muscle, electrode : str, optional
        Override what the recordings say (reference limits, acceptance thresholds).
    params : AnalysisParams, optional
    progress : callable(i, n, name), optional
        Progress callback, see :func:`analyze_recordings`.

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
    recs, problems = recordings_io.load_recordings(input_path, errors="collect",
                                                  with_ground_truth=False)
    study = analyze_recordings(recs, muscle=muscle, electrode=electrode, params=params,
                               progress=progress, problems=problems, source=str(input_path))
    if not study.recordings:
        first = next(iter(study.problems.items()), ("", "no recordings"))
        raise SfemgInputError(f"{input_path}: no recording could be analysed "
                              f"({len(study.problems)} failed; {first[0]}: {first[1]})")
    results_io.save_results(output_path if output_path is not None else input_path, study,
                            source=str(input_path))
    if json_path is not None:
        results_io.save_json(json_path, study)
    return study
