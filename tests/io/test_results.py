"""Round trip of analysis results through HDF5, element by element, and atomic writing."""

import dataclasses
import json
import os
import shutil
import types
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.signal

from sfemg.analysis import AnalysisParams, analyze_signal
from sfemg.analysis.limits import STUDY_STATISTICS, study_verdict
from sfemg.analysis.results import StudyResult
from sfemg.errors import SfemgInputError
from sfemg.io import results as results_io
from sfemg.io.results import load_results, save_json, save_results

#: µs <-> s conversion in storage is exact to floating-point rounding.
ROUND_TRIP_RTOL = 1e-12
FS_HZ = 50e3


def _recording(seed, block_every=0):
    """Two time-locked analytic potentials (triphasic trigger, biphasic follower) in noise."""
    rng = np.random.default_rng(seed)
    t0 = 0.02 + np.cumsum(rng.uniform(0.08, 0.12, 70))
    x = np.zeros(int((t0[-1] + 0.02) * FS_HZ))
    t = np.arange(x.size) / FS_HZ
    for i, ti in enumerate(t0):
        sl = slice(int((ti - 1e-3) * FS_HZ), int((ti + 3e-3) * FS_HZ))
        u = (t[sl] - ti) / 35e-6
        x[sl] += 1e-3 * (1 - u ** 2) * np.exp(-u ** 2 / 2)
        if not (block_every and i % block_every == 0):
            v = (t[sl] - ti - 1e-3 - rng.normal(0, 20e-6)) / 35e-6
            x[sl] -= 0.6e-3 * v * np.exp(0.5 - v ** 2 / 2)
    sos = scipy.signal.butter(2, [500, 10_000], "bandpass", fs=FS_HZ, output="sos")
    return x + scipy.signal.sosfilt(sos, rng.normal(0, 40e-6, x.size))


@pytest.fixture(scope="module")
def study():
    params = AnalysisParams(electrode="concentric", muscle="edc")
    recs = (analyze_signal(_recording(1), FS_HZ, params=params, name="a"),
            analyze_signal(_recording(2, block_every=7), FS_HZ, params=params, name="b"))
    verdict = study_verdict([p for r in recs for p in r.pairs], muscle="edc", electrode="concentric")
    return StudyResult(recordings=recs, study=verdict, problems={"c": "no potentials found"},
                       params=params, source="in.h5")


def assert_same(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape and a.dtype.kind == b.dtype.kind
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=ROUND_TRIP_RTOL, equal_nan=True)
        else:
            np.testing.assert_array_equal(a, b)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    elif isinstance(a, float):
        assert b == pytest.approx(a, rel=ROUND_TRIP_RTOL)
    else:
        assert a == b


def test_round_trip_every_element(tmp_path, study):
    path = tmp_path / "r.h5"
    save_results(path, study)
    back = load_results(path)
    assert back.params == study.params and back.problems == study.problems
    assert back.source == "in.h5"
    assert set(back.study) == set(study.study)
    for key, value in study.study.items():
        assert_same(value, back.study[key])
    assert [r.name for r in back.recordings] == ["a", "b"]
    for ra, rb in zip(study.recordings, back.recordings):
        for f in dataclasses.fields(ra):
            if f.name != "pairs":
                assert_same(getattr(ra, f.name), getattr(rb, f.name))
        assert len(ra.pairs) == len(rb.pairs)
        for pa, pb in zip(ra.pairs, rb.pairs):
            for f in dataclasses.fields(pa):
                assert_same(getattr(pa, f.name), getattr(pb, f.name))
    assert study.recordings[1].pairs[0].n_blocked == 10  # blocks survive the trip


def test_study_attribute_is_strict_json_its_undefined_statistics_read_back_as_nan(tmp_path, study):
    """No accepted pair: the study's statistics are NaN. The attribute once held NaN
    tokens, which strict JSON readers (JavaScript's, jq, Julia's) refuse; --json wrote null."""
    empty = dataclasses.replace(study, study=study_verdict([], muscle="edc", electrode="concentric"))
    path = tmp_path / "r.h5"
    save_results(path, empty)
    with h5py.File(path) as h5:
        text = h5["analysis/study"].attrs["json"]

    def refuse(token):
        raise AssertionError(f"{token} in the study's JSON")

    stored = json.loads(text, parse_constant=refuse)
    assert all(stored[key] is None for key in STUDY_STATISTICS)
    back = load_results(path).study
    assert set(back) == set(empty.study)
    for key, value in empty.study.items():
        assert_same(value, back[key])


def test_into_existing_file_keeps_recordings_and_replaces_analysis(tmp_path, study):
    path = tmp_path / "rec.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("recordings/x/signal", data=np.arange(5.0))
        h5.create_group("analysis/stale")
        h5["analysis"].attrs["encoding-type"] = "sfemg-analysis"  # an earlier run's
    save_results(path, study)
    with h5py.File(path, "r") as h5:
        np.testing.assert_array_equal(h5["recordings/x/signal"][()], np.arange(5.0))
        assert "stale" not in h5["analysis"]
        assert h5["analysis"].attrs["method"] == "template"
        assert h5["analysis/recordings/a/time_points_s"].shape == (1, 70)


def test_an_analysis_group_sfemg_did_not_write_is_not_replaced(tmp_path, study):
    """A user's own ``/analysis`` (say, annotations) would be lost: refused, the file
    untouched; an empty or non-HDF5 target as before."""
    path = tmp_path / "rec.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("recordings/x/signal", data=np.arange(5.0))
        h5.create_dataset("analysis/manual_annotations", data=np.arange(3))
    before = path.read_bytes()
    with pytest.raises(SfemgInputError, match="not written by sfemg"):
        save_results(path, study)
    assert path.read_bytes() == before
    with pytest.raises(SfemgInputError, match="empty"):
        save_results("", study)


@pytest.mark.parametrize("link", [h5py.SoftLink("/nowhere"), h5py.SoftLink("/analysis"),
                                  h5py.ExternalLink("elsewhere.h5", "/analysis"), h5py.SoftLink("/recordings")])
def test_an_analysis_link_is_neither_replaced_nor_read(tmp_path, study, link):
    """A link at ``/analysis`` (sfemg never writes one) was "cannot be read as HDF5
    (KeyError)" where it dangled and an internal error where it looped; reading it for a
    report, an internal error either way."""
    path = tmp_path / "rec.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("recordings/x/signal", data=np.arange(5.0))
        h5["analysis"] = link
    before = path.read_bytes()
    with pytest.raises(SfemgInputError, match="/analysis was not written by sfemg"):
        save_results(path, study)
    assert path.read_bytes() == before
    with pytest.raises(SfemgInputError, match="'/analysis' is a link, not the group 'sfemg analyze' writes"):
        load_results(path)


def test_results_follow_a_symbolic_link_and_refuse_read_only_files(tmp_path, study):
    """Written in place through a link, the file it points to takes the results and the
    link stays (DataLad and unlocked git-annex files are links); a file or folder whose
    permission bits forbid writing is refused before anything is done, for root too, and
    so is a target that is no regular file (found in review: a FIFO was replaced)."""
    real = tmp_path / "real.h5"
    with h5py.File(real, "w") as h5:
        h5.create_dataset("recordings/x/signal", data=np.arange(5.0))
    link = tmp_path / "link.h5"
    link.symlink_to(real)
    save_results(link, study)
    assert link.is_symlink()
    with h5py.File(real, "r") as h5:
        assert "analysis" in h5 and "recordings" in h5
    before = real.read_bytes()
    real.chmod(0o444)  # refused by its permission bits, for root too (a locked git-annex object)
    with pytest.raises(SfemgInputError, match="read-only"):
        save_results(link, study)
    real.chmod(0o644)
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(SfemgInputError, match="not writable"):
            save_results(folder / "r.h5", study)
    finally:
        folder.chmod(0o755)
    assert real.read_bytes() == before
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(SfemgInputError, match="not a regular file"):
        save_json(fifo, study)


def test_failed_write_leaves_file_untouched(tmp_path, study, monkeypatch):
    path = tmp_path / "rec.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("recordings/x/signal", data=np.arange(5.0))
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(results_io, "_write_recording", boom)
    with pytest.raises(RuntimeError):
        save_results(path, study)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.h5"]


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"),
                                   OSError("Can't write data (file write failed: errno = 122, "
                                           "error message = 'Disk quota exceeded')")])
def test_a_full_disk_is_a_one_line_error_and_leaves_nothing(tmp_path, study, monkeypatch, error):
    """A full disk mid-write was an internal error (or, after h5py's failed writes, a
    crash) and left the temporary copy behind (found in review, on a small tmpfs). Now a
    one-line input error, the file as it was, nothing beside it; and a write that will
    not fit is refused before it starts."""
    path = tmp_path / "rec.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("recordings/x/signal", data=np.arange(5.0))
    before = path.read_bytes()

    def full(*args, **kwargs):
        raise error

    with monkeypatch.context() as patch:
        patch.setattr(results_io, "_write_recording", full)
        with pytest.raises(SfemgInputError, match=r"rec.h5: cannot be written \(its disk is full\)$"):
            save_results(path, study)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["rec.h5"]
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: types.SimpleNamespace(free=100))
    with pytest.raises(SfemgInputError, match=r"rec.h5: needs about \d+\.\d kB, and its disk has 0.1 kB free$"):
        save_results(path, study)
    assert path.read_bytes() == before


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root may give a file away")
def test_written_in_place_the_file_keeps_its_owner(tmp_path, study):
    """A file analysed in place by root became root's (found in review): the replacement
    takes the owner and group of the file it replaces."""
    path = tmp_path / "rec.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("recordings/x/signal", data=np.arange(5.0))
    os.chown(path, 1234, 5678)
    save_results(path, study)
    assert (path.stat().st_uid, path.stat().st_gid) == (1234, 5678)


def test_json_written_atomically(tmp_path, study):
    out = tmp_path / "s.json"
    save_json(out, study)
    data = json.loads(out.read_text())
    assert set(data) == {"recordings", "study", "problems"} and set(data["recordings"]) == {"a", "b"}
    assert data["problems"] == study.problems
    with pytest.raises(SfemgInputError):
        save_json(tmp_path / "missing" / "s.json", study)


def test_refuses_non_hdf5_target_and_reports_malformed(tmp_path, study):
    text = tmp_path / "notes.h5"
    text.write_text("hello")
    with pytest.raises(SfemgInputError, match="not an HDF5"):
        save_results(text, study)
    path = tmp_path / "m.h5"
    save_results(path, study)
    for replacement in (lambda g: g.create_dataset("pairs", data=np.arange(3.0)),  # not a table
                        lambda g: g.create_group("pairs"),                          # not a dataset
                        lambda g: None):                                            # missing
        with h5py.File(path, "a") as h5:
            g = h5["analysis/recordings/a"]
            del g["pairs"]
            replacement(g)
        with pytest.raises(SfemgInputError, match="malformed"):
            load_results(path)
    with h5py.File(path, "a") as h5:
        h5["analysis"].attrs["encoding-version"] = "9.0.0"
    with pytest.raises(SfemgInputError, match="encoding version 9.0.0"):
        load_results(path)


#: Deeper than Python's recursion limit: ``json.loads`` raises RecursionError on it.
NESTED_JSON = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("where,attr", [("analysis", "parameters_json"), ("analysis", "problems_json"),
                                        ("analysis/study", "json"), ("analysis/recordings/a", "notes_json")])
@pytest.mark.parametrize("text", [pytest.param(NESTED_JSON, id="nested"), pytest.param("{not json", id="not-json")])
def test_json_attributes_that_do_not_decode_are_malformed(tmp_path, study, where, attr, text):
    """A damaged or hostile JSON attribute is a one-line input error, not a crash."""
    path = tmp_path / "j.h5"
    save_results(path, study)
    with h5py.File(path, "a") as h5:
        assert attr in h5[where].attrs
        h5[where].attrs[attr] = text
    with pytest.raises(SfemgInputError, match="malformed") as info:
        load_results(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("damage", [
    lambda a: _replace(a["recordings/a"], "time_points_s", np.array([b"x", b"y"])),
    lambda a: _replace(a["recordings/a"], "blocked", np.array(b"text")),
    lambda a: _replace(a["recordings/a"], "aligned_sweeps_v", np.float64(1.0)),
    lambda a: _replace(a["recordings/a"], "ipis_s", np.float64(1.0)),
    lambda a: a["recordings/a"].attrs.__setitem__("fs_hz", np.arange(3.0)),
    lambda a: a["study"].attrs.__setitem__("json", "[1, 2]"),
    lambda a: a.attrs.__setitem__("problems_json", np.arange(3.0)),  # not text: a TypeError escaped
    lambda a: (a.__delitem__("recordings"), a.create_dataset("recordings", data=np.arange(3))),
    lambda a: (a["recordings"].__delitem__("a"), a["recordings"].__setitem__("a", h5py.SoftLink("/nowhere"))),
], ids=["series-text", "series-scalar-text", "array-scalar", "series-scalar", "attr-array", "study-a-list",
        "json-not-text", "recordings-a-dataset", "dangling-link"])
def test_damaged_results_are_malformed_not_a_crash(tmp_path, study, damage):
    """Found by a helper's adversarial run (105 mutations of a results file, 25 of which
    made ``sfemg report`` fail with a traceback): each is a one-line 'malformed' error."""
    path = tmp_path / "d.h5"
    save_results(path, study)
    with h5py.File(path, "a") as h5:
        damage(h5["analysis"])
    with pytest.raises(SfemgInputError, match="malformed") as info:
        load_results(path)
    assert "\n" not in str(info.value)


def _replace(group, name, value):
    del group[name]
    group.create_dataset(name, data=value)


def test_pairs_stored_as_one_table(tmp_path, study):
    path = tmp_path / "r.h5"
    save_results(path, study)
    with h5py.File(path, "r") as h5:
        table = h5["analysis/recordings/b/pairs"][()]
    pair = study.recordings[1].pairs[0]
    assert table["mcd_s"][0] == pytest.approx(pair.mcd_us * 1e-6, rel=ROUND_TRIP_RTOL)
    assert table["n_blocked"][0] == pair.n_blocked and table.dtype["n_blocked"].kind == "i"
    assert table["accepted"].dtype.kind == "b"
    assert json.loads(table["flags_json"][0]) == list(pair.flags)


def test_reads_version_1_0_0(tmp_path):
    """A file written by sfemg 0.1 (analysis 1.0.0: one dataset per pair column) still loads."""
    old = Path(__file__).parent / "data" / "analysis-1.0.0.h5"
    back = load_results(old)
    with h5py.File(old, "r") as h5:
        assert h5["analysis"].attrs["encoding-version"] == "1.0.0"
        for rec in back.recordings:
            g = h5[f"analysis/recordings/{rec.name}"]
            np.testing.assert_allclose([p.mcd_us for p in rec.pairs], g["mcd_s"][()] * 1e6, rtol=ROUND_TRIP_RTOL)
            assert [p.label for p in rec.pairs] == [v.decode() for v in g["label"][()]]
            assert [p.n_blocked for p in rec.pairs] == g["n_blocked"][()].tolist()
            assert [list(p.flags) for p in rec.pairs] == [json.loads(v) for v in g["flags_json"][()]]
    assert [r.name for r in back.recordings] == ["a", "b"] and back.params.electrode == "concentric"
    assert back.params.irregular_fraction == 1.0  # written before that rule: read as off
    assert back.params.excursion_window_us == 0.0  # written before the excursion search
    assert back.params.superimposed_ratio == 0.0  # ... and before superimposed potentials were re-timed
    assert all(np.isnan(p.mcd_uncertainty_us) for r in back.recordings for p in r.pairs)  # not stored then


def _drop_column(path, recording, column):
    """Rewrite a recording's pair table without one column."""
    with h5py.File(path, "a") as h5:
        g = h5[f"analysis/recordings/{recording}"]
        table = g["pairs"][()]
        kept = [n for n in table.dtype.names if n != column]
        del g["pairs"]
        g.create_dataset("pairs", data=table[kept].astype(np.dtype([(n, table.dtype[n]) for n in kept])))


def test_reads_version_2_0_0_without_the_mcd_uncertainty(tmp_path, study):
    """A 2.0.0 table has no ``mcd_uncertainty_s`` column: read as NaN. Missing from a
    2.1.0 file, or any other column missing, the file is malformed."""
    path = tmp_path / "r.h5"
    save_results(path, study)
    for name in ("a", "b"):
        _drop_column(path, name, "mcd_uncertainty_s")
    with pytest.raises(SfemgInputError, match="malformed"):
        load_results(path)  # written as a later version: the column belongs there
    with h5py.File(path, "a") as h5:
        h5["analysis"].attrs["encoding-version"] = "2.0.0"
    back = load_results(path)
    assert all(np.isnan(p.mcd_uncertainty_us) for r in back.recordings for p in r.pairs)
    assert [p.mcd_us for p in back.recordings[0].pairs] == [p.mcd_us for p in study.recordings[0].pairs]
    assert all(np.isfinite(p.mcd_uncertainty_us) for r in study.recordings for p in r.pairs)
    _drop_column(path, "a", "msd_s")
    with pytest.raises(SfemgInputError, match="malformed"):
        load_results(path)


def test_stimulus_timing_round_trip_and_older_versions(tmp_path):
    """Where a stimulated recording's stimulus times came from (2.2.0): stored with its
    recording; a 2.1.0 group, written before the artefact was timed, reads as markers
    taken as exact, and its parameters as ``stimulus_timing="markers"``."""
    from ..analysis import synth
    sig, stim, _ = synth.stimulated(fs_hz=FS_HZ, asynchronous=True, seed=1)
    rec = analyze_signal(sig, FS_HZ, mode="stimulated", stimulus_times_s=np.ceil(stim * FS_HZ) / FS_HZ, name="s")
    assert rec.stimulus_timing == "artefact" and rec.marker_scatter_us > 1.0
    study = StudyResult(recordings=(rec,), study=study_verdict(rec.pairs), params=AnalysisParams())
    path = tmp_path / "s.h5"
    save_results(path, study)
    back = load_results(path).recordings[0]
    for name in ("stimulus_timing", "marker_scatter_us", "stimulus_error_us", "markers_off"):
        assert_same(getattr(rec, name), getattr(back, name))
    with h5py.File(path, "r") as h5:  # SI in storage
        attrs = h5["analysis/recordings/s"].attrs
        assert attrs["marker_scatter_s"] == pytest.approx(rec.marker_scatter_us * 1e-6, rel=ROUND_TRIP_RTOL)
        assert attrs["stimulus_timing"] == "artefact" and attrs["markers_off"] == 0
    assert json.loads(json.dumps(study.to_json_dict()))["recordings"]["s"]["stimulus_timing"] == {
        "source": "artefact", "marker_scatter_us": rec.marker_scatter_us, "stimulus_error_us": rec.stimulus_error_us,
        "markers_off": 0}
    with h5py.File(path, "a") as h5:
        del h5["analysis/recordings/s"].attrs["marker_scatter_s"]
    with pytest.raises(SfemgInputError, match="malformed"):
        load_results(path)  # written as a later version: the attribute belongs there
    with h5py.File(path, "a") as h5:
        h5["analysis"].attrs["encoding-version"] = "2.1.0"
        params = json.loads(h5["analysis"].attrs["parameters_json"])
        del params["stimulus_timing"]
        h5["analysis"].attrs["parameters_json"] = json.dumps(params)
    old = load_results(path)
    assert old.params.stimulus_timing == "markers"
    (back,) = old.recordings
    assert back.stimulus_timing == "markers" and np.isnan(back.marker_scatter_us)
    assert np.isnan(back.stimulus_error_us) and back.markers_off == 0


def test_notes_round_trip_and_older_versions(tmp_path, study):
    """Each recording's notes (2.3.0: what was found but not analysed) are stored with it
    and in the JSON summary; a 2.2.0 group has none; a notes attribute that is not a
    JSON list of text makes the file malformed."""
    noted = dataclasses.replace(study.recordings[0], notes=("responses time-locked to the stimuli at 5.5 ms lie "
                                                            "past search_window_ms (5 ms), not analysed",))
    study = dataclasses.replace(study, recordings=(noted,) + study.recordings[1:])
    path = tmp_path / "r.h5"
    save_results(path, study)
    back = load_results(path)
    assert [r.notes for r in back.recordings] == [r.notes for r in study.recordings]
    summary = json.loads(json.dumps(study.to_json_dict()))["recordings"]
    assert summary[noted.name]["notes"] == list(noted.notes)
    assert all(summary[r.name]["notes"] == [] for r in study.recordings[1:])
    with h5py.File(path, "a") as h5:
        h5["analysis"].attrs["encoding-version"] = "2.2.0"
    assert all(r.notes == () for r in load_results(path).recordings)
    with h5py.File(path, "a") as h5:
        h5["analysis"].attrs["encoding-version"] = "2.3.0"
        h5[f"analysis/recordings/{noted.name}"].attrs["notes_json"] = "{}"
    with pytest.raises(SfemgInputError, match="malformed"):
        load_results(path)
    with pytest.raises(TypeError, match="notes"):
        dataclasses.replace(noted, notes="one note, not a list of them")

