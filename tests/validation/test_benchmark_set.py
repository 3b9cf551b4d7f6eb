"""Benchmark sets: written once with checksums; foreign results scored; damage refused."""

import json
import shutil

import numpy as np
import pytest

from sfemg.analysis import analyze_file
from sfemg.cli import main
from sfemg.errors import SfemgInputError
from sfemg.io import load_recordings
from sfemg.validation.benchmark_set import MANIFEST_NAME, score_results, verify_benchmark_set, write_benchmark_set

from .plugin_example import truth_analyser
from .routes import json_of, scores_from_files

SET = dict(grid="tiny", n_repeats=2, n_recordings=1, seed=5)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench") / "set"
    write_benchmark_set(folder, **SET)
    return folder


def damage(path):
    """Invert one byte near the end of a file (whatever it held, it changes)."""
    with open(path, "r+b") as fh:
        fh.seek(-100, 2)
        byte = fh.read(1)
        fh.seek(-100, 2)
        fh.write(bytes([byte[0] ^ 0xFF]))


def test_manifest_names_every_file_with_its_checksum(bench):
    manifest = verify_benchmark_set(bench)
    assert manifest["version"] == "1.0.0" and manifest["seed"] == 5
    assert sorted(manifest["files"]) == ["cell000.h5", "cell001.h5"]
    assert manifest["files"]["cell001.h5"]["recordings"] == {"c001r000_pair001": 0, "c001r001_pair001": 1}
    assert len(manifest["grid"]["cells"]) == 2


def test_rewriting_with_the_same_seed_gives_the_same_recordings(bench, tmp_path):
    write_benchmark_set(tmp_path / "again", **SET)
    a, b = (load_recordings(f / "cell000.h5") for f in (bench, tmp_path / "again"))
    assert [r.name for r in a] == [r.name for r in b]
    assert all(x.signal_v is not None and np.array_equal(x.signal_v, y.signal_v) for x, y in zip(a, b))


def test_perfect_results_score_zero_error(bench):
    scores = score_results(json_of(bench, truth_analyser), bench)
    overall = scores["overall"]
    assert overall["mcd_rmse_us"]["mean"] == 0.0 and overall["false_pairs"]["mean"] == 0.0
    assert overall["missed_pairs"]["mean"] == 0.0 and scores["missing_recordings"] == []
    assert [c["cell_index"] for c in scores["cells"]] == [0, 1]


def test_missing_and_unknown_recordings_are_reported(bench):
    results = json_of(bench, truth_analyser)
    del results["recordings"]["c000r000_pair001"]
    results["recordings"]["elsewhere"] = {"pairs": []}
    scores = score_results(results, bench)
    assert scores["missing_recordings"] == ["c000r000_pair001"] and scores["unknown_recordings"] == ["elsewhere"]
    assert scores["cells"][0]["metrics"]["missed_pairs"]["mean"] == 0.5


def test_sfemg_analyze_json_scores_as_the_analysis_in_memory(bench, tmp_path):
    """The foreign-pipeline route (files -> `analyze --json` -> score) loses nothing."""
    from_files = scores_from_files(bench, tmp_path)
    assert from_files["overall"]["n_matched_pairs"]["mean"] > 0


def test_damaged_or_foreign_sets_are_refused(bench, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(bench, copy)
    damage(copy / "cell001.h5")
    with pytest.raises(SfemgInputError, match=r"cell001.h5 does not match its checksum \(damaged or changed\)"):
        verify_benchmark_set(copy)
    # analysed in place, as "sfemg analyze --json" read (a developer's review): said so
    shutil.copyfile(bench / "cell001.h5", copy / "cell001.h5")
    analyze_file(copy / "cell001.h5")
    with pytest.raises(SfemgInputError, match=r"checksum \(it holds an /analysis group: analysed in place \(analyse "
                                              r"a set's files with -o"):
        verify_benchmark_set(copy)
    (copy / "cell001.h5").unlink()
    with pytest.raises(SfemgInputError, match="missing"):
        verify_benchmark_set(copy)
    with pytest.raises(SfemgInputError, match="not a benchmark set"):
        verify_benchmark_set(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"format": "someone-else"}))
    with pytest.raises(SfemgInputError, match="not an sfemg benchmark-set manifest"):
        verify_benchmark_set(tmp_path)
    bad = tmp_path / "bad"
    shutil.copytree(bench, bad)
    manifest = json.loads((bad / MANIFEST_NAME).read_text())
    next(iter(manifest["files"].values()))["cell"] = 99  # an IndexError while scoring before
    (bad / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(SfemgInputError, match="malformed manifest"):
        verify_benchmark_set(bad)
    entry = next(iter(manifest["files"].values()))
    entry["cell"] = 0
    entry["recordings"][next(iter(entry["recordings"]))] = "x"  # a repeat that is no index: TypeError before
    (bad / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(SfemgInputError, match="malformed manifest"):
        verify_benchmark_set(bad)
    results = json_of(bench, truth_analyser)
    del entry["recordings"][next(iter(entry["recordings"]))]  # a recording it does not list: KeyError before
    (bad / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(SfemgInputError, match="which its manifest does not list"):
        score_results(results, bad)


def test_a_non_empty_folder_is_not_overwritten(bench):
    with pytest.raises(SfemgInputError, match="not empty"):
        write_benchmark_set(bench, **SET)


def test_cli_benchmark_set_and_score(bench, tmp_path, capsys):
    results = tmp_path / "results.json"
    results.write_text(json.dumps(json_of(bench, truth_analyser)))
    assert main(["score", str(results), str(bench)]) == 0
    out, err = capsys.readouterr()
    assert "MCD bias µs" in out and (tmp_path / "results.scores.json").exists() and "warning" not in err
    saved = json.loads((tmp_path / "results.scores.json").read_text())
    assert saved["overall"]["mcd_bias_us"]["mean"] == 0.0
    assert main(["score", str(results), str(bench)]) == 2  # exists, no --force
    assert "exists" in capsys.readouterr().err
    # mean IPIs in seconds, not µs: nothing matches, and the scorer says so (a developer's review)
    in_s = json_of(bench, truth_analyser)
    for entry in in_s["recordings"].values():
        for pair in entry["pairs"]:
            pair["mean_ipi_us"] *= 1e-6
    results.write_text(json.dumps(in_s))
    assert main(["score", str(results), str(bench), "--force", "--quiet"]) == 0
    assert capsys.readouterr().err.startswith("warning: no measured pair matched a true one: are mean_ipi_us in µs")
    assert main(["benchmark-set", "--grid", "tiny", "--n", "1", "--recordings", "1", "--output-kind", "sweeps",
                 "--quiet", "-o", str(tmp_path / "new")]) == 0
    manifest = verify_benchmark_set(tmp_path / "new")
    assert manifest["n_repeats"] == 1 and {c["output"] for c in manifest["grid"]["cells"]} == {"sweeps"}


def test_cli_score_output_is_checked_like_every_other_writer(bench, tmp_path, capsys):
    """Found by a helper's adversarial run: ``score -o`` wrote straight over its target,
    replacing the results it scored, a FIFO (as root, /dev/null), a read-only file or a
    symbolic link, and failed with a traceback on a folder. Now each is a one-line error
    and the target is left as it was; a link is followed."""
    import os
    import stat
    results = tmp_path / "results.json"
    results.write_text(json.dumps(json_of(bench, truth_analyser)))
    before = results.read_bytes()
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "ro.json").write_text("{}")
    os.chmod(tmp_path / "ro.json", 0o444)
    (tmp_path / "folder").mkdir()
    for target, message in ((results, "would replace"), (tmp_path / "fifo", "not a regular file"),
                            (tmp_path / "ro.json", "read-only"), (tmp_path / "folder", "is a folder"),
                            (tmp_path / "missing" / "s.json", "does not exist")):
        assert main(["score", str(results), str(bench), "-o", str(target), "--force"]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert main(["score", str(results), str(bench), "-o", str(results)]) == 2  # without --force: the same
    assert "would replace" in capsys.readouterr().err
    assert results.read_bytes() == before and stat.S_ISFIFO(os.lstat(tmp_path / "fifo").st_mode)
    assert (tmp_path / "ro.json").read_text() == "{}"
    (tmp_path / "scores.json").write_text("{}")
    os.symlink(tmp_path / "scores.json", tmp_path / "link.json")
    assert main(["score", str(results), str(bench), "-o", str(tmp_path / "link.json"), "--force", "--quiet"]) == 0
    assert os.path.islink(tmp_path / "link.json") and "overall" in json.loads((tmp_path / "scores.json").read_text())


def test_cli_score_exit_2_on_foreign_or_corrupt_input(bench, tmp_path, capsys):
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"recordings": {"pair001": {"pairs": []}}}))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    nested = tmp_path / "nested.json"
    nested.write_text("[" * 100_000 + "]" * 100_000)  # past Python's recursion limit
    copy = tmp_path / "copy"
    shutil.copytree(bench, copy)
    damage(copy / "cell000.h5")
    for argv in ([str(foreign), str(bench)], [str(broken), str(bench)], [str(nested), str(bench)],
                 [str(foreign), str(tmp_path)],
                 [str(foreign), str(copy)], [str(foreign), str(bench), "--tolerance", "-5"]):
        assert main(["score", *argv, "--force"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("sfemg: error:") and err.count("\n") == 1


def test_a_simulated_study_scores_its_own_analysis(tmp_path, capsys):
    """A developer's review: nothing scored `sfemg simulate`'s study against its own ground
    truth (score wanted a benchmark set). `score` takes the study file too, its recordings
    as one sample: the analysis's pairs match the truth's, one by one."""
    import h5py

    study = tmp_path / "study.h5"
    assert main(["simulate", "--pairs", "4", "--discharges", "60", "--seed", "2", "--quiet", "-o", str(study)]) == 0
    assert main(["analyze", str(study), "--json", str(tmp_path / "a.json"), "--quiet"]) == 0
    assert main(["score", str(tmp_path / "a.json"), str(study), "-o", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "study.h5  results" in out and f"wrote {tmp_path / 's.json'}" in out
    scores = json.loads((tmp_path / "s.json").read_text())
    overall = {name: m["mean"] for name, m in scores["overall"].items()}
    assert overall["n_true_pairs"] == 4 and overall["n_matched_pairs"] == 4 and overall["false_pairs"] == 0
    assert abs(overall["mcd_bias_us"]) < 3 and scores["study"] == str(study)
    # the same scores as the study's truth and the JSON's pairs give in memory, metric for metric
    from sfemg.validation import METRICS, score_repeat
    from sfemg.validation.scoring import true_pairs
    recs, pairs = load_recordings(study), json.loads((tmp_path / "a.json").read_text())["recordings"]
    expected = score_repeat([true_pairs(r.ground_truth) for r in recs], [pairs[r.name]["pairs"] for r in recs])
    np.testing.assert_array_equal(np.array([overall[m] for m in METRICS], dtype=float), expected)  # (null: NaN)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as h5:
        h5.create_dataset("recordings/pair001/signal", data=np.zeros(1000)).attrs["sampling_rate_hz"] = 50e3
    for truth, message in ((foreign, "no recording with ground truth"), (tmp_path / "none.h5", "does not exist")):
        assert main(["score", str(tmp_path / "a.json"), str(truth), "-o", str(tmp_path / "x.json")]) == 2
        assert message in capsys.readouterr().err
