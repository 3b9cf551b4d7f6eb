"""Analysis results in HDF5 (``/analysis``) and the JSON summary, both written atomically.

Layout (names in :mod:`sfemg.io.schema`, SI units)::

    /analysis                       attrs: encoding-type/-version, method, parameters_json,
                                           sfemg_version, source_file, problems_json
        recordings/<name>/          attrs: mode, fs_hz, method, noise_rms_v, trigger_fibre, ...
            pairs: compound table, one row per pair  (n_pairs,)
                   mcd_s, msd_s, jitter_s, technical_jitter_s, ..., label, flags_json
                   (version 1.0.0, still read: one dataset per column)
            time_points_s, ipis_s, blocked                    (n_pairs, n_discharges)
            reference_times_s, idis_s, templates_v, aligned_sweeps_v, ...
        study                       attrs: json (the study dict), verdict
"""

from __future__ import annotations

import contextlib
import json
import os

import h5py
import numpy as np

from ..analysis.limits import STUDY_STATISTICS
from ..analysis.params import AnalysisParams
from ..analysis.results import PairResult, RecordingResult, StudyResult, json_value
from ..errors import SfemgInputError
from . import _json
from . import schema as S
from ._atomic import atomic_h5, atomic_path, writable_target
from ._h5 import mark
from ._h5 import open_hdf5 as _open
from ._h5 import text as _text

__all__ = ["save_results", "load_results", "save_json", "staged_json"]

#: Analysis parameters of rules added after files were written, with the values that turn
#: the rule off: a file without them was analysed without the rule, and says so when read.
_RULES_ADDED_SINCE = {"irregular_fraction": 1.0, "excursion_window_us": 0.0, "superimposed_ratio": 0.0,
                      "stimulus_timing": "markers"}


def _mark(group, encoding_type):
    mark(group, encoding_type, S.ANALYSIS_VERSION)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _dumps(value):
    return json.dumps(value, sort_keys=True, default=_json_default)


def _column_type(field):
    if field in S.ANALYSIS_PAIR_INTEGERS:
        return np.int64
    return np.bool_ if field in S.ANALYSIS_PAIR_BOOLEANS else np.float64


#: One compound row per pair (one dataset instead of one per field).
_PAIRS_DTYPE = np.dtype([(name, _column_type(field)) for field, (name, _) in S.ANALYSIS_PAIR_SCALARS.items()]
                        + [(name, h5py.string_dtype()) for name in S.ANALYSIS_PAIR_TEXT.values()])


def _pair_columns(g):
    """The per-pair columns of a recording group: the table (2.0.0 and later) or the 1.0.0
    datasets."""
    if S.ANALYSIS_PAIRS_TABLE in g:
        obj = g[S.ANALYSIS_PAIRS_TABLE]
        if not isinstance(obj, h5py.Dataset) or obj.dtype.names is None:
            raise KeyError(f"'{S.ANALYSIS_PAIRS_TABLE}' is not a table")
        table = obj[()]
        return lambda name: table[name]
    return lambda name: g[name][()]


def _version(text):
    return tuple(int(part) for part in text.split("."))


def _added_column(column, name, n_pairs, version):
    """A per-pair column; one added after the file's encoding ``version`` reads as NaN."""
    try:
        return column(name)
    except (KeyError, ValueError):
        added = S.ANALYSIS_PAIR_ADDED_SINCE.get(name)
        if added is None or _version(version) >= _version(added):
            raise
        return np.full(n_pairs, np.nan)


def _write_recording(parent, rec: RecordingResult):
    g = parent.create_group(rec.name)
    _mark(g, S.ANALYSIS_RECORDING_TYPE)
    g.attrs["mode"] = rec.mode
    g.attrs["fs_hz"] = rec.fs_hz
    g.attrs["method"] = rec.method
    g.attrs["noise_rms_v"] = rec.noise_rms_v
    g.attrs["trigger_fibre"] = rec.trigger_fibre
    g.attrs["muscle"] = rec.muscle if rec.muscle is not None else ""
    g.attrs["electrode"] = rec.electrode if rec.electrode is not None else ""
    for field, (name, factor, _) in S.ANALYSIS_STIMULUS_ATTRS.items():
        value = getattr(rec, field)
        g.attrs[name] = (value or "") if factor is None else value * factor  # (text, count, SI float)
    g.attrs[S.ANALYSIS_NOTES_ATTR] = _dumps(list(rec.notes))
    table = np.empty(len(rec.pairs), dtype=_PAIRS_DTYPE)
    for field, (name, factor) in S.ANALYSIS_PAIR_SCALARS.items():
        values = np.array([getattr(p, field) for p in rec.pairs])
        table[name] = values * factor if factor != 1 else values
    for field, name in S.ANALYSIS_PAIR_TEXT.items():
        table[name] = [getattr(p, field) if field == "label" else _dumps(list(getattr(p, field)))
                       for p in rec.pairs]
    g.create_dataset(S.ANALYSIS_PAIRS_TABLE, data=table)
    for field, name in S.ANALYSIS_PAIR_SERIES.items():
        g.create_dataset(name, data=np.vstack([getattr(p, field) for p in rec.pairs]))
    for name in S.ANALYSIS_RECORDING_ARRAYS:
        g.create_dataset(name, data=getattr(rec, name))


def check_results_target(path, source=None):
    """The file ``/analysis`` will be written to, refused before any analysis if it cannot
    take it: not writable (:func:`~sfemg.io._atomic.writable_target`; a symbolic link is
    followed), an existing file that is not HDF5, one whose ``/analysis`` sfemg did
    not write (it would be replaced), or one holding recordings of its own other than
    ``source`` (the results would be read as theirs).

    Parameters
    ----------
    path : str or os.PathLike
        The results file: the input file itself, or the ``-o`` file.
    source : str or os.PathLike, optional
        The recording file analysed.

    Returns
    -------
    pathlib.Path
        Where to write (a link resolved).

    Raises
    ------
    SfemgInputError
    """
    path = writable_target(path)
    if not path.exists():
        return path
    if not h5py.is_hdf5(path):
        raise SfemgInputError(f"{path}: exists and is not an HDF5 file; refusing to overwrite it")
    try:
        with h5py.File(path, "r") as h5:
            link = h5.get(S.ANALYSIS, getlink=True)  # (a link, even a dangling one, is not sfemg's)
            foreign = link is not None and (not isinstance(link, h5py.HardLink) or _text(
                h5[S.ANALYSIS].attrs.get(S.ENCODING_TYPE, "")) != S.ANALYSIS_TYPE)
            recordings = h5.get(S.RECORDINGS, getlink=True) is not None
    except (OSError, KeyError) as exc:
        raise SfemgInputError(f"{path}: cannot be read as HDF5 ({exc.__class__.__name__})") from None
    if foreign:
        raise SfemgInputError(f"{path}: its /{S.ANALYSIS} was not written by sfemg and would be replaced; "
                              "write the results elsewhere (-o)")
    if recordings and source is not None and not os.path.samefile(path, source):
        raise SfemgInputError(f"{path}: holds recordings of its own, and the results of {source} would be "
                              "read as theirs; write them to another file (-o), or analyse this one")
    return path


def check_summary_target(path, files, *, force=True):
    """The file the ``--json`` summary will be written to, refused before any analysis if
    it is one of ``files`` (the recordings, the results) or cannot be written
    (:func:`~sfemg.io._atomic.writable_target`; an existing one only with ``force``).

    Returns
    -------
    pathlib.Path
    """
    for other in files:
        if other is not None and os.path.realpath(path) == os.path.realpath(other):
            raise SfemgInputError(f"the JSON summary would replace {other}; give --json another file")
    return writable_target(path, force=force)


def save_results(path, study: StudyResult, *, source=None):
    """Write a study's results to ``path``'s ``/analysis`` group, atomically.

    An existing file keeps everything else (``/recordings`` untouched) and a previous
    ``/analysis`` is replaced; a missing file is created.

    Parameters
    ----------
    path : str or os.PathLike
    study : StudyResult
    source : str, optional
        The recording file analysed (stored as an attribute; defaults to ``study.source``).
    """
    from .. import __version__

    path = check_results_target(path)
    mode = "a" if path.exists() else "w"
    with atomic_h5(path, mode=mode) as h5:
        if mode == "w":
            h5.attrs[S.ROOT_SCHEMA_VERSION_ATTR] = S.SCHEMA_VERSION
            h5.attrs[S.ENCODING_TYPE] = S.FILE_TYPE
            h5.attrs[S.ENCODING_VERSION] = S.GROUP_VERSION
        if S.ANALYSIS in h5:
            del h5[S.ANALYSIS]
        a = h5.create_group(S.ANALYSIS)
        _mark(a, S.ANALYSIS_TYPE)
        a.attrs[S.ANALYSIS_METHOD_ATTR] = study.params.method
        a.attrs[S.ANALYSIS_PARAMS_ATTR] = _dumps(study.params.to_dict())
        a.attrs[S.ANALYSIS_SFEMG_VERSION_ATTR] = __version__
        a.attrs[S.ANALYSIS_SOURCE_ATTR] = str(source if source is not None else (study.source or ""))
        a.attrs[S.ANALYSIS_PROBLEMS_ATTR] = _dumps(study.problems)
        recs = a.create_group(S.ANALYSIS_RECORDINGS)
        for rec in study.recordings:
            _write_recording(recs, rec)
        st = a.create_group(S.ANALYSIS_STUDY)
        _mark(st, S.ANALYSIS_STUDY_TYPE)
        st.attrs[S.ANALYSIS_STUDY_JSON_ATTR] = _dumps(json_value(study.study))  # (strict JSON: NaN as null)
        st.attrs["verdict"] = str(study.study.get("verdict", ""))


def _text_list(value, what):
    """A JSON attribute that must be a list of text, as a tuple."""
    items = _json.loads(_text(value))
    if not (isinstance(items, list) and all(isinstance(item, str) for item in items)):
        raise ValueError(f"{what} is not a list of text")
    return tuple(items)


def _numbers(value, what):
    """A stored array (not a scalar) that must hold numbers (or booleans)."""
    value = np.asarray(value)
    if value.dtype.kind not in "biuf" or value.ndim == 0:
        raise ValueError(f"{what} is not an array of numbers")
    return value


def _read_recording(path, group, name, version):
    """Recording ``name`` of ``/analysis/recordings`` (``group``), or why it cannot be read."""
    try:
        pairs, fields = _decoded(name, group[name], version)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, OSError, RuntimeError) as exc:
        # ValueError: a column missing, or not JSON; the others: datasets or attributes of
        # the wrong kind or shape, a dangling link
        raise SfemgInputError(f"{path}: /{S.ANALYSIS}/{S.ANALYSIS_RECORDINGS}/{name} is "
                              f"malformed ({exc.args[0] if exc.args else exc.__class__.__name__})") from None
    return RecordingResult(pairs=tuple(PairResult(**kw) for kw in pairs), **fields)


def _decoded(name, g, version):
    """What group ``g`` stores, decoded (errors: see :func:`_read_recording`).

    Returns
    -------
    pairs : list of dict
        Each pair's :class:`PairResult` fields.
    fields : dict
        The :class:`RecordingResult` fields but its pairs.
    """
    column = _pair_columns(g)
    n_pairs = column(S.ANALYSIS_PAIR_SCALARS["fibre"][0]).shape[0]
    scalars = {f: _added_column(column, n, n_pairs, version) for f, (n, _) in S.ANALYSIS_PAIR_SCALARS.items()}
    text = {f: [_text(v) for v in column(n)] for f, n in S.ANALYSIS_PAIR_TEXT.items()}
    lists = {f: [_text_list(v, S.ANALYSIS_PAIR_TEXT[f]) for v in text[f]] for f in ("reject_reasons", "flags")}
    series = {f: _numbers(g[n][()], n) for f, n in S.ANALYSIS_PAIR_SERIES.items()}
    if any(v.ndim != 2 or v.shape[0] != n_pairs for v in series.values()):
        raise ValueError(f"{', '.join(S.ANALYSIS_PAIR_SERIES.values())} are not (pairs, discharges) tables")
    arrays = {n: _numbers(g[n][()], n) for n in S.ANALYSIS_RECORDING_ARRAYS}
    attrs = {k: g.attrs[k] for k in ("mode", "fs_hz", "method", "noise_rms_v", "trigger_fibre",
                                     "muscle", "electrode")}
    stimulus = {}
    if _text(attrs["mode"]) == "stimulated":
        for field, (attr, factor, absent) in S.ANALYSIS_STIMULUS_ATTRS.items():
            value = g.attrs[attr] if _version(version) >= _version("2.2.0") else absent
            if isinstance(absent, str):
                stimulus[field] = _text(value) or None
            elif isinstance(absent, int):
                stimulus[field] = int(value)
            else:
                stimulus[field] = float(value) / factor
    notes = (_text_list(g.attrs[S.ANALYSIS_NOTES_ATTR], S.ANALYSIS_NOTES_ATTR)
             if _version(version) >= _version("2.3.0") else ())
    pairs = []
    for i in range(n_pairs):
        kw = {}
        for f, (_, factor) in S.ANALYSIS_PAIR_SCALARS.items():
            v = scalars[f][i]
            kw[f] = v / factor if factor != 1 else v.item()
        kw["fibre"] = int(kw["fibre"])
        kw["n_discharges"] = int(kw["n_discharges"])
        kw["n_blocked"] = int(kw["n_blocked"])
        kw["accepted"] = bool(kw["accepted"])
        kw["label"] = text["label"][i]
        kw["reject_reasons"] = lists["reject_reasons"][i]
        kw["flags"] = lists["flags"][i]
        for f in S.ANALYSIS_PAIR_SERIES:
            kw[f] = series[f][i]
        pairs.append(dict(kw, idis_s=arrays["idis_s"], reference_times_s=arrays["reference_times_s"]))
    return pairs, dict(
        name=name, mode=_text(attrs["mode"]), fs_hz=float(attrs["fs_hz"]),
        method=_text(attrs["method"]), noise_rms_v=float(attrs["noise_rms_v"]),
        trigger_fibre=int(attrs["trigger_fibre"]), muscle=_text(attrs["muscle"]) or None,
        electrode=_text(attrs["electrode"]) or None, notes=notes, **stimulus, **arrays)


def load_results(path) -> StudyResult:
    """Read the ``/analysis`` group written by :func:`save_results`.

    Returns
    -------
    StudyResult
        With ``params`` rebuilt from the stored parameters and ``source`` the analysed file.

    Raises
    ------
    SfemgInputError
        Missing file, not HDF5, no ``/analysis`` group, or a malformed one.
    """
    with _open(path) as h5:
        link = h5.get(S.ANALYSIS, getlink=True)
        if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):  # (it may dangle or loop)
            raise SfemgInputError(f"{path}: '/{S.ANALYSIS}' is a link, not the group 'sfemg analyze' writes")
        if link is None or not isinstance(h5[S.ANALYSIS], h5py.Group):
            raise SfemgInputError(f"{path}: no '/{S.ANALYSIS}' group (run 'sfemg analyze' first)")
        a = h5[S.ANALYSIS]
        version = _text(a.attrs.get(S.ENCODING_VERSION, ""))
        if version not in S.ANALYSIS_READ_VERSIONS:
            raise SfemgInputError(f"{path}: '/{S.ANALYSIS}' has encoding version {version or '(none)'}; "
                                  f"this sfemg reads {', '.join(S.ANALYSIS_READ_VERSIONS)}")
        try:
            params = AnalysisParams(**{**_RULES_ADDED_SINCE, **_json.loads(a.attrs[S.ANALYSIS_PARAMS_ATTR])})
            problems = _json.loads(a.attrs[S.ANALYSIS_PROBLEMS_ATTR])
            source = _text(a.attrs[S.ANALYSIS_SOURCE_ATTR]) or None
            study = _json.loads(a[S.ANALYSIS_STUDY].attrs[S.ANALYSIS_STUDY_JSON_ATTR])
            recs_group = a[S.ANALYSIS_RECORDINGS]
            if not (isinstance(study, dict) and isinstance(problems, dict) and isinstance(recs_group, h5py.Group)):
                raise ValueError("the study, the problems or the recordings are of the wrong kind")
            study.update({key: float("nan") for key in STUDY_STATISTICS if key in study and study[key] is None})
        except (KeyError, TypeError, ValueError, OSError, RuntimeError) as exc:
            raise SfemgInputError(f"{path}: '/{S.ANALYSIS}' group is malformed ({exc})") from None
        recs = tuple(_read_recording(path, recs_group, name, version) for name in recs_group)
    return StudyResult(recordings=recs, study=study, problems=problems, params=params, source=source)


def save_json(path, study: StudyResult):
    """Write ``study.to_json_dict()`` to ``path`` atomically (temporary file + rename)."""
    with staged_json(path, study):
        pass


@contextlib.contextmanager
def staged_json(path, study: StudyResult):
    """The JSON summary of ``study``, written to a temporary file beside ``path`` and put
    in place when the block ends without an exception.

    With :func:`save_results` inside the block, the two files are replaced one right after
    the other: a write that fails, or is killed before the results are in place, leaves
    both as they were (the summary was written after the HDF5 file, and a process killed
    between the two left it a step behind; now only the moment between the two renames
    remains).
    """
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(study.to_json_dict(), indent=2, ensure_ascii=False, allow_nan=False),
                       encoding="utf-8")
        yield
