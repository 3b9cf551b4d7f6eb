"""analyze_file on foreign and sfemg-layout HDF5 files: results, JSON, partial failures."""

import json

import h5py
import numpy as np
import pytest

from sfemg.analysis import analyze_file
from sfemg.errors import SfemgInputError
from sfemg.io.results import load_results

from . import synth


@pytest.fixture(scope="module")
def signals():
    vol, _ = synth.voluntary(fs_hz=50e3, n_discharges=60, jitter_us=(30.0,), seed=21)
    stim, times, _ = synth.stimulated(fs_hz=50e3, n_stimuli=60, jitter_us=(20.0,), seed=22)
    return vol, stim, times


def foreign_file(path, signals, extra=None):
    """A file with nothing but /recordings/<name>/signal + sampling_rate_hz (docs/hdf5.md)."""
    vol, stim, times = signals
    with h5py.File(path, "w") as h5:
        h5.create_dataset("recordings/x/signal", data=vol).attrs["sampling_rate_hz"] = 50e3
        g = h5.create_group("recordings/s")
        g.create_dataset("signal", data=stim).attrs["sampling_rate_hz"] = 50e3
        g.create_dataset("stimulus_times_s", data=times)
        for name, data in (extra or {}).items():
            h5.create_dataset(f"recordings/{name}/signal", data=data).attrs["sampling_rate_hz"] = 50e3
    return path


def test_foreign_file_analysed_in_place(tmp_path, signals):
    path = foreign_file(tmp_path / "f.h5", signals,
                        extra={"noise": synth.band_noise(50_000, 50e3, 1e-5, np.random.default_rng(0))})
    before = h5py.File(path, "r")["recordings/x/signal"][()]
    calls = []
    study = analyze_file(path, json_path=tmp_path / "s.json", muscle="edc", electrode="concentric",
                         progress=lambda i, n, name: calls.append((i, n, name)))
    assert [r.name for r in study.recordings] == ["s", "x"]
    assert "noise" in study.problems and "no potentials" in study.problems["noise"]
    assert calls == [(1, 3, "noise"), (2, 3, "s"), (3, 3, "x")]
    # mixed activation: no verdict
    assert study.study["verdict"].startswith("unknown")
    with h5py.File(path, "r") as h5:
        np.testing.assert_array_equal(h5["recordings/x/signal"][()], before)
        assert h5["analysis"].attrs["encoding-type"] == "sfemg-analysis"
        assert "mcd_s" in h5["analysis/recordings/x/pairs"].dtype.names
    summary = json.loads((tmp_path / "s.json").read_text())
    pair = summary["recordings"]["x"]["pairs"][0]
    assert set(pair) == {"mcd_us", "msd_us", "mcd_msd_ratio", "jitter_us", "mean_ipi_us",
                        "technical_jitter_us", "blocking_percent", "n_discharges", "n_blocked",
                        "accepted", "reject_reasons", "flags", "mcd_uncertainty_us", "label", "amplitude_uv",
                        "rise_time_us"}
    assert summary["recordings"]["s"]["pairs"][0]["msd_us"] is None
    loaded = load_results(path)
    assert loaded.problems == study.problems and loaded.params == study.params


def test_the_summary_and_the_results_are_replaced_together(tmp_path, signals, monkeypatch):
    """The JSON summary was written after the HDF5 results: a write that failed (or was
    killed) between the two left the summary a step behind the file. It is now written
    first, to a temporary file, and put in place right after the results."""
    from sfemg.io import results as results_io

    path = foreign_file(tmp_path / "f.h5", signals)
    summary = tmp_path / "s.json"
    summary.write_text('{"an earlier": "summary"}')
    before = path.read_bytes()

    def killed(*args, **kwargs):
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".s.json."))  # the summary staged
        raise KeyboardInterrupt

    monkeypatch.setattr(results_io, "save_results", killed)
    with pytest.raises(KeyboardInterrupt):
        analyze_file(path, json_path=summary)
    assert summary.read_text() == '{"an earlier": "summary"}' and path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.h5", "s.json"]
    monkeypatch.undo()
    study = analyze_file(path, json_path=summary)
    written = json.loads(summary.read_text())
    assert written == json.loads(json.dumps(study.to_json_dict()))
    assert json.loads(json.dumps(load_results(path).to_json_dict()))["study"] == written["study"]


def test_the_electrode_from_an_alias_refused_when_unknown_and_said_when_assumed(tmp_path, signals):
    """Found by a new user's review: "Concentric" or "CNE" in a file was read as SFE (the
    SFE limits used), silently; and an electrode nobody stated was assumed silently."""
    vol, _, _ = signals
    path = tmp_path / "e.h5"
    with h5py.File(path, "w") as h5:
        for name, electrode in (("a", "Concentric"), ("b", " CNE "), ("c", "needle")):
            h5.create_dataset(f"recordings/{name}/signal", data=vol).attrs["sampling_rate_hz"] = 50e3
            h5[f"recordings/{name}"].attrs["electrode"] = electrode
    study = analyze_file(path, output_path=tmp_path / "r.h5")
    assert [r.electrode for r in study.recordings] == ["concentric", "concentric"]
    assert study.problems == {"c": "electrode 'needle' is neither 'sfe' (single-fibre) nor 'concentric' "
                                   "(concentric needle); give the electrode (--electrode)"}
    assert (study.study["electrode"], study.study["electrode_source"]) == ("concentric", "recordings")
    given = analyze_file(path, output_path=tmp_path / "r.h5", electrode="single fibre")
    assert given.problems == {} and given.study["electrode_source"] == "given"
    assert {r.electrode for r in given.recordings} == {"sfe"}
    unstated = analyze_file(foreign_file(tmp_path / "f.h5", signals), output_path=tmp_path / "r.h5")
    assert (unstated.study["electrode"], unstated.study["electrode_source"]) == ("sfe", "parameters")
    assert load_results(tmp_path / "r.h5").study["electrode_source"] == "parameters"
    with h5py.File(path, "a") as h5:  # one states it, one leaves it blank (as some tools write "not stated")
        del h5["recordings/c"]
        h5["recordings/b"].attrs["electrode"] = " "
    mixed = analyze_file(path, output_path=tmp_path / "r.h5")
    assert [r.electrode for r in mixed.recordings] == ["concentric", "sfe"]
    assert mixed.study["electrode_source"] == "mixed"


def test_one_recording_is_analysed_for_its_own_electrode(signals):
    """Found in review: analyze_recording took only params.electrode (a "CNE" recording
    was analysed with the SFE acceptance amplitude)."""
    from sfemg.analysis import AnalysisParams, analyze_recording
    from sfemg.recording import Recording

    rec = Recording(name="r", fs_hz=50e3, signal_v=signals[0], electrode="CNE")
    assert analyze_recording(rec).electrode == "concentric"
    assert analyze_recording(rec, AnalysisParams(electrode="sfe")).electrode == "concentric"
    assert analyze_recording(rec, electrode="single fibre").electrode == "sfe"
    with pytest.raises(SfemgInputError, match="electrode 'needle' is neither"):
        analyze_recording(Recording(name="r", fs_hz=50e3, signal_v=signals[0], electrode="needle"))


def test_second_run_replaces_analysis_and_output_elsewhere(tmp_path, signals):
    path = foreign_file(tmp_path / "f.h5", signals)
    analyze_file(path)
    study = analyze_file(path, params=None, muscle="edc")
    assert len(load_results(path).recordings) == len(study.recordings)
    out = tmp_path / "results.h5"
    analyze_file(path, output_path=out)
    with h5py.File(out, "r") as h5:
        assert "recordings" not in h5 and h5["analysis"].attrs["source_file"] == str(path)


def test_nothing_analysable_raises(tmp_path):
    path = tmp_path / "quiet.h5"
    with h5py.File(path, "w") as h5:
        noise = synth.band_noise(50_000, 50e3, 1e-5, np.random.default_rng(0))
        h5.create_dataset("recordings/q/signal", data=noise).attrs["sampling_rate_hz"] = 50e3
        h5.create_dataset("recordings/slow/signal", data=noise).attrs["sampling_rate_hz"] = 5e3
    with pytest.raises(SfemgInputError, match="no recording could be analysed"):
        analyze_file(path)
    with h5py.File(path, "r") as h5:
        assert "analysis" not in h5


@pytest.mark.parametrize("content", ["not hdf5", None])
def test_bad_files(tmp_path, content):
    path = tmp_path / "bad.h5"
    if content is None:
        with h5py.File(path, "w") as h5:
            h5.create_group("something_else")
    else:
        path.write_text(content)
    with pytest.raises(SfemgInputError) as info:
        analyze_file(path)
    assert "\n" not in str(info.value)
    with pytest.raises(SfemgInputError):
        analyze_file(tmp_path / "missing.h5")
    with pytest.raises(SfemgInputError, match="analysis"):
        load_results(foreign_file(tmp_path / "plain.h5", (np.zeros(10), np.zeros(10), np.arange(2.0))))


def test_worker_threads_give_the_same_results_in_the_same_order(tmp_path):
    """Recordings analysed on 1 or 3 worker threads, joint fits included: the stored
    results are the same bits, in file order, with the same problems."""
    from sfemg.io import save_recordings
    from sfemg.synthesis import simulate_study

    study = simulate_study("healthy-edc", n_recordings=5, n_discharges=60, seed=4, fibres_per_recording=3)
    path = tmp_path / "s.h5"
    save_recordings(path, study.recordings)
    with h5py.File(path, "a") as h5:  # a recording with nothing in it: a problem, in its place
        h5.create_dataset("recordings/pair003b/signal",
                          data=synth.band_noise(50_000, 50e3, 1e-5, np.random.default_rng(0)))
        h5["recordings/pair003b/signal"].attrs["sampling_rate_hz"] = 50e3
    results = {n: analyze_file(path, output_path=tmp_path / f"{n}.h5", n_workers=n) for n in (1, 3)}
    assert [r.name for r in results[1].recordings] == [r.name for r in results[3].recordings] \
        == [f"pair00{k}" for k in range(1, 6)]
    assert results[1].problems == results[3].problems and list(results[1].problems) == ["pair003b"]
    assert sum(len(r.pairs) for r in results[1].recordings) >= 8

    def as_bytes(values):  # the pairs table's text columns are pointers in memory
        if values.dtype.names is None:
            return values.tobytes()
        return [as_bytes(values[f]) if values.dtype[f].kind != "O" else values[f].tolist()
                for f in values.dtype.names]

    def datasets(name):
        out = {}
        with h5py.File(tmp_path / f"{name}.h5", "r") as h5:
            h5["analysis"].visititems(lambda key, obj: out.update(
                {key: as_bytes(obj[()])}) if isinstance(obj, h5py.Dataset) else None)
        return out

    assert datasets(1) == datasets(3)


def test_reading_stays_at_most_two_recordings_per_worker_ahead():
    """A long study is never read into memory all at once."""
    from sfemg.analysis.study import _analysed

    pulled = []

    def items():
        for k in range(10):
            pulled.append(k)
            yield f"r{k}", (SfemgInputError("unreadable") if k == 5 else k)

    def analyse(k):
        if k == 7:
            raise SfemgInputError("no potentials")
        return 2 * k

    source = items()  # held here: closing it must be _analysed's doing, not the garbage collector's
    outcomes = _analysed(source, analyse, n_workers=2)
    assert next(outcomes) == ("r0", 0) and len(pulled) == 4
    rest = [(name, str(o) if isinstance(o, SfemgInputError) else o) for name, o in outcomes]
    assert rest == [("r1", 2), ("r2", 4), ("r3", 6), ("r4", 8), ("r5", "unreadable"), ("r6", 12),
                    ("r7", "no potentials"), ("r8", 16), ("r9", 18)]


def test_a_bug_in_an_analysis_is_not_taken_for_a_problem():
    from sfemg.analysis.study import _analysed

    with pytest.raises(ZeroDivisionError):
        list(_analysed(((f"r{k}", k) for k in range(4)), lambda k: 1 / (k - 2), n_workers=2))


def test_stopping_early_neither_waits_for_running_analyses_nor_leaves_the_input_open():
    """Ctrl-C (or an error in the caller) while a recording is being analysed: the study
    ends at once, and the recordings' source (an open HDF5 file) is closed."""
    import threading

    from sfemg.analysis.study import _analysed

    release, closed = threading.Event(), []

    def items():
        try:
            for k in range(4):
                yield f"r{k}", k
        finally:
            closed.append(True)

    def analyse(k):
        if k == 1:
            release.wait(60)
        return k

    source = items()  # held here: closing it must be _analysed's doing, not the garbage collector's
    outcomes = _analysed(source, analyse, n_workers=2)
    assert next(outcomes) == ("r0", 0)
    closer = threading.Thread(target=outcomes.close)
    closer.start()
    closer.join(30)
    returned = not closer.is_alive()
    release.set()
    assert returned and closed == [True]


@pytest.mark.parametrize("n_workers", [0, 2.0, True])
def test_worker_count_must_be_a_whole_number(n_workers):
    from sfemg.analysis import analyze_recordings

    with pytest.raises(SfemgInputError, match="n_workers must be an integer >= 1"):
        analyze_recordings([], n_workers=n_workers)
