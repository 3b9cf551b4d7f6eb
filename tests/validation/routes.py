"""Shared by the benchmark-set tests: an analyser's §5 JSON over a set, and the two routes
to score sfemg's own analysis (files -> ``analyze --json`` -> score, and in memory)."""

import numpy as np

from sfemg.analysis import analyze_file
from sfemg.io import load_recordings
from sfemg.validation import METRICS, method_analyser
from sfemg.validation.benchmark_set import score_results


def json_of(folder, analyser):
    """§5 JSON of an analyser run over every file of a set."""
    recs = [r for f in sorted(folder.glob("cell*.h5")) for r in load_recordings(f)]
    return {"recordings": {r.name: {"pairs": analyser(r)} for r in recs}}


def _table(scores):
    return np.array([[c["metrics"][m][k] for m in METRICS for k in ("mean", "ci_low", "ci_high", "n")]
                     for c in scores["cells"]])


def scores_from_files(folder, tmp_path):
    """Scores of ``sfemg analyze --json`` run on every file of a set, checked equal (NaN
    included) to the scores of the same analysis in memory: the foreign-pipeline route
    loses nothing."""
    paths = []
    for f in sorted(folder.glob("cell*.h5")):
        paths.append(tmp_path / f"{f.stem}.json")
        analyze_file(f, output_path=tmp_path / f"{f.stem}.analysis.h5", json_path=paths[-1])
    from_files = score_results(paths, folder)
    analyser = method_analyser("analyser:sfemg-template")
    in_memory = score_results(json_of(folder, lambda r: [p.to_json_dict() for p in analyser(r)]), folder)
    np.testing.assert_array_equal(_table(from_files), _table(in_memory))
    return from_files
