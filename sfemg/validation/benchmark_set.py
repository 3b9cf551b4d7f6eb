"""Versioned synthetic benchmark sets for foreign pipelines, and their scorer.

A benchmark set is a folder, written once::

    manifest.json        format, set version, sfemg version, seed, grid, and per file
                         its sha256, grid cell and recordings (name -> repeat)
    cell000.h5 ...       one HDF5 file per grid cell (docs/hdf5.md layout) holding the
                         recordings of every repeat, with their ground truth

The recordings are exactly those a validation sweep with the same grid (signal form
included), seed and counts simulates (repeat r of cell c from ``SeedSequence([seed, c, r])``), named
``c<cell>r<repeat>_pair<k>`` so that names are unique across the set. The manifest is
written last: a folder with a manifest is a complete set.

Another lab runs its pipeline on the files and writes the ``--json`` summary's JSON (docs/hdf5.md)
(``{"recordings": {name: {"pairs": [...]}}}``, one or several files);
:func:`score_results` verifies every checksum, matches the pairs to the ground truth and
scores each cell with confidence intervals over its repeats. :func:`score_study` scores
the same JSON against a study that ``sfemg simulate`` wrote, its recordings taken as one
sample (no cells, no repeats).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import SfemgInputError
from ..io import _json
from ..io import schema as S
from ..io._atomic import atomic_path
from ..io._h5 import holds
from .grid import Grid, get_grid, repeat_seed, simulate_repeat
from .scoring import MATCH_TOLERANCE_US, METRICS, check_tolerance, score_repeat, summarize_metrics, true_pairs

__all__ = ["write_benchmark_set", "verify_benchmark_set", "manifest_path", "score_results", "score_study",
           "BENCHMARK_SET_VERSION", "MANIFEST_NAME", "write_scores"]

#: Version of the benchmark-set layout and naming.
BENCHMARK_SET_VERSION = "1.0.0"
#: The manifest's file name inside a set's folder.
MANIFEST_NAME = "manifest.json"
_FORMAT = "sfemg-benchmark-set"


def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_json_atomic(path, data, *, force=True):
    """Write JSON through a temporary file in the same folder, then rename it into place
    (:func:`~sfemg.io._atomic.atomic_path`: the target's checks, a link followed)."""
    with atomic_path(path, force=force) as tmp:
        with open(tmp, "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=True, allow_nan=False)
            fh.write("\n")


def write_benchmark_set(folder, grid="default", *, n_repeats: int = 1, n_recordings: int = 4, seed: int = 0,
                        output: str | None = "continuous", force: bool = False, progress=None) -> dict:
    """Simulate and write a benchmark set.

    Parameters
    ----------
    folder : str or os.PathLike
        Created if missing; must be empty (or hold a set, replaced with ``force``).
    grid : Grid or str
    n_repeats : int
        Repeats per cell (the scorer's confidence intervals are over these).
    n_recordings : int
        Recordings (fibre pairs; endplates in stimulated cells) per repeat.
    seed : int
    output : {"continuous", "sweeps"} or None
        Signal form of every recording (default continuous: the ``signal`` dataset
        any pipeline reads); None keeps each cell's own.
    force : bool
        Write into a non-empty folder, replacing a previous set.
    progress : callable, optional
        ``progress(n_done, n_total)`` after each cell.

    Returns
    -------
    dict
        The manifest.
    """
    from ..io import save_recordings
    grid = get_grid(grid)
    if output is not None:
        grid = Grid(grid.name, tuple(dataclasses.replace(c, output=output) for c in grid.cells))
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise SfemgInputError(f"{folder} exists and is not a folder")
    if folder.exists() and any(folder.iterdir()) and not force:
        raise SfemgInputError(f"{folder} is not empty; use --force (force=True) to write the set there")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST_NAME).unlink(missing_ok=True)  # the set is incomplete until rewritten
    files = {}
    for c, cell in enumerate(grid.cells):
        recordings, names = [], {}
        for r in range(n_repeats):
            study = simulate_repeat(cell, n_recordings, repeat_seed(seed, c, r))
            for rec in study.recordings:
                rec = dataclasses.replace(rec, name=f"c{c:03d}r{r:03d}_{rec.name}")
                recordings.append(rec)
                names[rec.name] = r
        name = f"cell{c:03d}.h5"
        save_recordings(folder / name, recordings, parameters={"cell": cell.to_dict(), "cell_index": c},
                        provenance={"sfemg_version": __version__, "seed": seed,
                                    "benchmark_set_version": BENCHMARK_SET_VERSION}, force=True)
        files[name] = {"cell": c, "sha256": _sha256(folder / name), "recordings": names}
        if progress is not None:
            progress(c + 1, len(grid.cells))
    manifest = {"format": _FORMAT, "version": BENCHMARK_SET_VERSION, "sfemg_version": __version__,
                "seed": int(seed), "n_repeats": int(n_repeats), "n_recordings": int(n_recordings),
                "grid": grid.to_dict(), "files": files}
    _write_json_atomic(folder / MANIFEST_NAME, manifest)
    return manifest


def manifest_path(folder) -> Path:
    """The manifest of the benchmark set in ``folder``; SfemgInputError if it has none."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        raise SfemgInputError(f"{folder}: not a benchmark set (no {MANIFEST_NAME})")
    return path


def verify_benchmark_set(folder) -> dict:
    """Read a set's manifest and check every file against its checksum.

    Returns
    -------
    dict
        The manifest.

    Raises
    ------
    SfemgInputError
        No manifest, not an sfemg benchmark set, an unknown version, a missing file or
        a checksum mismatch.
    """
    folder = Path(folder)
    path = manifest_path(folder)
    try:
        manifest = _json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SfemgInputError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        raise SfemgInputError(f"{path}: not an sfemg benchmark-set manifest")
    if str(manifest.get("version", "")).split(".")[0] != BENCHMARK_SET_VERSION.split(".")[0]:
        raise SfemgInputError(f"{path}: benchmark-set version {manifest.get('version')!r} is not "
                              f"supported (this sfemg reads {BENCHMARK_SET_VERSION})")
    _check_manifest(path, manifest)
    for name, entry in manifest["files"].items():
        if not (folder / name).is_file():
            raise SfemgInputError(f"{folder}: {name} is missing")
        if _sha256(folder / name) != entry["sha256"]:
            why = ("it holds an /analysis group: analysed in place (analyse a set's files with -o; restore the "
                   "file or write the set again)" if holds(folder / name, S.ANALYSIS) else "damaged or changed")
            raise SfemgInputError(f"{folder}: {name} does not match its checksum ({why})")
    return manifest


def _check_manifest(path, manifest):
    """Refuse a manifest whose entries are not what :func:`write_benchmark_set` writes (a
    cell outside the grid, say: an IndexError while scoring before)."""
    try:
        n_cells = len(Grid.from_dict(manifest["grid"]).cells)
        files, n_repeats = manifest["files"], manifest["n_repeats"]
        well_formed = isinstance(manifest["seed"], int) and isinstance(n_repeats, int) and isinstance(files, dict) \
            and all(_file_entry_ok(e, n_cells, n_repeats) for e in files.values())
    except (KeyError, TypeError, AttributeError, SfemgInputError):
        well_formed = False
    if not well_formed:
        raise SfemgInputError(f"{path}: malformed manifest (its grid, files, cells, repeats or seed)")


def _file_entry_ok(entry, n_cells, n_repeats):
    """Whether a manifest's file entry is ``{"sha256": str, "cell": cell index,
    "recordings": {name: repeat index}}`` (a missing key raises KeyError)."""
    return isinstance(entry, dict) and isinstance(entry["sha256"], str) \
        and isinstance(entry["cell"], int) and 0 <= entry["cell"] < n_cells \
        and isinstance(entry["recordings"], dict) \
        and all(isinstance(r, int) and 0 <= r < n_repeats for r in entry["recordings"].values())


def _read_results(results) -> dict:
    """``{recording name: [pairs]}`` from ``--json``-form dicts or paths (several are merged)."""
    items = results if isinstance(results, (list, tuple)) else [results]
    merged = {}
    for item in items:
        data = item
        if not isinstance(item, dict):
            try:
                data = _json.loads(Path(item).read_text())
            except (OSError, ValueError) as exc:
                raise SfemgInputError(f"{item}: not a readable JSON file ({exc})") from None
        recs = data.get("recordings") if isinstance(data, dict) else None
        if not isinstance(recs, dict):
            raise SfemgInputError(f"{item if not isinstance(item, dict) else 'results'}: expected "
                                  '{"recordings": {name: {"pairs": [...]}}} (docs/hdf5.md)')
        for name, entry in recs.items():
            pairs = entry.get("pairs") if isinstance(entry, dict) else None
            if not isinstance(pairs, list):
                raise SfemgInputError(f"recording {name!r}: expected a 'pairs' list")
            if name in merged:
                raise SfemgInputError(f"recording {name!r} appears in more than one result")
            merged[name] = pairs
    return merged


def score_results(results, folder, *, tolerance_us: float = MATCH_TOLERANCE_US) -> dict:
    """Score a pipeline's JSON output (the ``--json`` form, docs/hdf5.md) against a benchmark
    set's ground truth.

    Parameters
    ----------
    results : dict, path, or a list of them
        JSON of the ``--json`` summary's form (``{"recordings": {name: {"pairs": [...]}}}``); several are merged.
    folder : str or os.PathLike
        The benchmark set (verified first).
    tolerance_us : float
        Pair matching tolerance on the mean IPI, µs.

    Returns
    -------
    dict
        ``benchmark_set`` (version, seed), ``metrics`` (names), ``cells`` (per cell: its
        description and per metric mean / CI / n over repeats), ``overall`` (the same
        over every repeat of every cell), ``missing_recordings`` (in the set, not in the
        results: their pairs count as missed) and ``unknown_recordings`` (ignored).

    Raises
    ------
    SfemgInputError
        Damaged or foreign set; results that name none of its recordings.
    """
    from ..io import load_recordings
    tolerance_us = check_tolerance(tolerance_us)
    manifest = verify_benchmark_set(folder)
    measured = _read_results(results)
    known = {n for entry in manifest["files"].values() for n in entry["recordings"]}
    if known.isdisjoint(measured):
        raise SfemgInputError(f"the results name none of the recordings of the benchmark set in {folder}")
    grid = Grid.from_dict(manifest["grid"])
    cells, all_repeats = [], []
    for name, entry in sorted(manifest["files"].items(), key=lambda kv: kv[1]["cell"]):
        by_repeat = {}
        for rec in load_recordings(Path(folder) / name):
            if rec.name not in entry["recordings"]:
                raise SfemgInputError(f"{folder}: {name} holds {rec.name!r}, which its manifest does not list")
            truth_and_measured = (true_pairs(rec.ground_truth), measured.get(rec.name, []))
            by_repeat.setdefault(entry["recordings"][rec.name], []).append(truth_and_measured)
        per_repeat = np.array([score_repeat([t for t, _ in rows], [m for _, m in rows], tolerance_us)
                               for _, rows in sorted(by_repeat.items())])
        all_repeats.append(per_repeat)
        cell = grid.cells[entry["cell"]]
        cells.append({"cell_index": entry["cell"], "cell": cell.to_dict(), "label": cell.label(),
                      "metrics": summarize_metrics(per_repeat)})
    return {"benchmark_set": {"version": manifest["version"], "seed": manifest["seed"],
                              "grid": manifest["grid"]["name"]},
            "metrics": list(METRICS), "match_tolerance_us": tolerance_us, "cells": cells,
            "overall": summarize_metrics(np.concatenate(all_repeats)),
            "missing_recordings": sorted(known - set(measured)),
            "unknown_recordings": sorted(set(measured) - known)}


def score_study(results, path, *, tolerance_us: float = MATCH_TOLERANCE_US) -> dict:
    """Score a pipeline's JSON output against the ground truth of a simulated study file.

    Parameters
    ----------
    results : dict, path, or a list of them
        As for :func:`score_results`.
    path : str or os.PathLike
        An HDF5 file that ``sfemg simulate`` (or :func:`~sfemg.io.save_recordings`) wrote,
        its recordings with their ground truth.
    tolerance_us : float
        Pair matching tolerance on the mean IPI, µs.

    Returns
    -------
    dict
        ``study`` (the file), ``metrics`` (names), ``overall`` (per metric its value over
        every recording at once, as ``{"mean", "ci_low", "ci_high", "n"}`` with no
        interval: one sample), ``missing_recordings`` and ``unknown_recordings``.

    Raises
    ------
    SfemgInputError
        The file holds no recording with ground truth; results that name none of them.
    """
    from ..io import load_recordings
    tolerance_us = check_tolerance(tolerance_us)
    measured = _read_results(results)
    recs = [rec for rec in load_recordings(path) if rec.ground_truth is not None]
    if not recs:
        raise SfemgInputError(f"{path}: no recording with ground truth (a study that sfemg simulate wrote has it)")
    known = {rec.name for rec in recs}
    if known.isdisjoint(measured):
        raise SfemgInputError(f"the results name none of the recordings of {path}")
    scores = score_repeat([true_pairs(rec.ground_truth) for rec in recs], [measured.get(rec.name, []) for rec in recs],
                          tolerance_us)
    return {"study": str(path), "metrics": list(METRICS), "match_tolerance_us": tolerance_us,
            "overall": summarize_metrics(scores), "missing_recordings": sorted(known - set(measured)),
            "unknown_recordings": sorted(set(measured) - known)}


def write_scores(path, scores: dict, *, force: bool = False) -> None:
    """Write :func:`score_results` or :func:`score_study` output as JSON (NaN as null), atomically.

    Raises
    ------
    SfemgInputError
        ``path`` exists and not ``force``.
    """
    from ..analysis.results import json_value
    _write_json_atomic(path, json_value(scores), force=force)
