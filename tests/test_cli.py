"""The command line: what a user types, what they get back (exit codes, one-line errors)."""

import json
import os
import re
import subprocess
import sys

import h5py
import pytest

from sfemg.cli import main
from sfemg.io import list_recordings, load_parameters, load_provenance


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_presets_lists_every_required_state(capsys):
    code, out, _ = run(capsys, "presets")
    assert code == 0
    for name in ("healthy-edc", "healthy-frontalis", "healthy-orbicularis-oculi", "achr-mg-mild",
                 "achr-mg-moderate", "achr-mg-severe", "musk-mg", "lems"):
        assert name in out


def test_python_dash_m_runs_the_command_line():
    """``python -m sfemg`` is the ``sfemg`` script (where the script is not on the PATH)."""
    done = subprocess.run([sys.executable, "-m", "sfemg", "presets"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "achr-mg-moderate" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "sfemg", "analyze", "no-such-file.h5"], capture_output=True,
                         text=True, check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("sfemg: error:") and "Traceback" not in bad.stderr


def test_simulate_writes_a_complete_file(tmp_path, capsys):
    path = tmp_path / "study.h5"
    code, out, err = run(capsys, "simulate", "--preset", "achr-mg-mild", "--pairs", "2",
                         "--discharges", "20", "--seed", "1", "--quiet", "-o", str(path))
    assert code == 0 and out == ""
    assert list_recordings(path) == ["pair001", "pair002"]
    params = load_parameters(path)
    assert params["preset"] == "achr-mg-mild" and params["n_discharges"] == 20
    prov = load_provenance(path)
    assert prov["seed"] == 1 and "simulate" in prov["command"]


def test_simulate_stimulated_with_all_options(tmp_path, capsys):
    path = tmp_path / "stim.h5"
    code, out, _ = run(capsys, "simulate", "--preset", "healthy-edc", "--muscle", "frontalis",
                       "--mode", "stimulated", "--endplates", "2", "--discharges", "10",
                       "--rate", "5", "--fs", "40000", "--electrode", "concentric",
                       "--output-kind", "sweeps", "--seed", "3", "--jobs", "1", "--fibres", "2",
                       "--no-artefact", "--stimulator-clock", "own", "-o", str(path))
    assert code == 0 and "2 endplates" in out
    params = load_parameters(path)
    assert (params["muscle"], params["rate_hz"], params["electrode"]) == ("frontalis", 5.0, "concentric")
    assert params["fibres_per_recording"] == 2 and params["stimulus_artefact"] is False
    assert params["stimulator_clock"] == "own"
    code, _, err = run(capsys, "simulate", "--pairs", "1", "--stimulator-clock", "own", "-o", str(tmp_path / "v.h5"))
    assert code == 2 and "--stimulator-clock is for stimulated studies" in err


def test_existing_file_needs_force(tmp_path, capsys):
    path = tmp_path / "s.h5"
    path.write_bytes(b"precious")
    code, _, err = run(capsys, "simulate", "--pairs", "1", "--discharges", "5", "-o", str(path))
    assert code == 2 and "--force" in err and path.read_bytes() == b"precious"
    code, _, _ = run(capsys, "simulate", "--pairs", "1", "--discharges", "5", "--quiet", "--force",
                     "-o", str(path))
    assert code == 0 and list_recordings(path) == ["pair001"]


@pytest.mark.parametrize("argv,needle", [
    (["simulate", "--rate", "-3", "-o", "x.h5"], "--rate must be"),
    (["simulate", "--preset", "nope", "-o", "x.h5"], "unknown preset"),
    (["simulate", "--fs", "10000", "-o", "x.h5"], "too low"),
    (["simulate", "--pairs", "0", "-o", "x.h5"], "--pairs"),
    (["simulate", "--pairs", "two", "-o", "x.h5"], "--pairs"),
    (["simulate", "--mode", "stimulated", "--pairs", "3", "-o", "x.h5"], "--endplates"),
    (["simulate", "--muscle", "heart", "-o", "x.h5"], "unknown muscle"),
    (["simulate", "--fibres", "1", "-o", "x.h5"], "--fibres must be >= 2 in voluntary mode"),
    (["simulate"], "--output"),
    # found in review: internal errors (an overflow, an array too large) or hours of work
    (["simulate", "--pairs", "1" + "0" * 29, "-o", "x.h5"], "--pairs must be at most 100000"),
    (["simulate", "--discharges", "1" + "0" * 23, "-o", "x.h5"], "--discharges must be at most 24 hours"),
    (["simulate", "--rate", "1e-300", "-o", "x.h5"], "--discharges must be at most 24 hours of firing at --rate"),
    (["simulate", "--pairs", "100000", "--discharges", "100000", "-o", "x.h5"], "GB free"),
    (["frobnicate"], "invalid choice"),
    (["analyze", "missing.h5"], "no such file"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, argv, needle):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *argv)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err
    assert not (tmp_path / "x.h5").exists()


def test_analyze_writes_json_summary(tmp_path, capsys):
    path = tmp_path / "s.h5"
    run(capsys, "simulate", "--pairs", "2", "--discharges", "60", "--seed", "2", "--quiet", "-o", str(path))
    summary = tmp_path / "summary.json"
    code, out, err = run(capsys, "analyze", str(path), "--json", str(summary), "--quiet")
    assert code == 0, err
    data = json.loads(summary.read_text())
    assert set(data) == {"recordings", "study", "problems"}  # docs/hdf5.md: with the recordings not analysed
    assert data["problems"] == {}
    pair = data["recordings"]["pair001"]["pairs"][0]
    assert set(pair) == {"mcd_us", "msd_us", "mcd_msd_ratio", "jitter_us", "mean_ipi_us",
                         "technical_jitter_us", "blocking_percent", "n_discharges", "n_blocked",
                         "accepted", "reject_reasons", "flags",
                         "mcd_uncertainty_us", "label", "amplitude_uv", "rise_time_us"}  # docs/hdf5.md
    assert isinstance(pair["flags"], list)
    assert re.fullmatch(r"P\d+-P\d+", pair["label"])  # as the report names the pair
    assert list_recordings(path) == ["pair001", "pair002"]  # recordings untouched


def test_analyze_results_are_not_written_beside_another_files_recordings(tmp_path, capsys):
    """``-o`` (with ``--force``) naming another recording file stored the results beside
    its recordings, where a report read them as theirs (found in review: "site1" of one
    study analysed as "site1" of another). Refused, the file untouched; ``-o`` naming the
    input itself, or a results file, is as before."""
    one, other = tmp_path / "one.h5", tmp_path / "other.h5"
    for path, seed in ((one, "2"), (other, "3")):
        run(capsys, "simulate", "--pairs", "1", "--discharges", "60", "--seed", seed, "--quiet", "-o", str(path))
    before = other.read_bytes()
    code, _, err = run(capsys, "analyze", str(one), "-o", str(other), "--force", "--quiet")
    assert code == 2 and "holds recordings of its own" in err and err.count("\n") == 1, err
    assert other.read_bytes() == before
    assert run(capsys, "analyze", str(one), "-o", str(one), "--force", "--quiet")[0] == 0
    results = tmp_path / "results.h5"
    for _ in range(2):
        assert run(capsys, "analyze", str(one), "-o", str(results), "--force", "--quiet")[0] == 0


@pytest.mark.parametrize("given", ["CNE", "Concentric", "concentric needle"])
def test_analyze_electrode_takes_the_aliases_the_recordings_may_carry(tmp_path, capsys, given):
    """A recording's electrode attribute "CNE" was understood, ``--electrode cne`` refused."""
    path, summary = tmp_path / "s.h5", tmp_path / "s.json"
    run(capsys, "simulate", "--pairs", "1", "--discharges", "60", "--seed", "2", "--quiet", "-o", str(path))
    code, _, err = run(capsys, "analyze", str(path), "--electrode", given, "--json", str(summary), "--quiet")
    assert code == 0, err
    assert json.loads(summary.read_text())["study"]["electrode"] == "concentric"
    code, _, err = run(capsys, "analyze", str(path), "--electrode", "needle", "--quiet")
    assert code == 2 and "--electrode: must be 'sfe' (single-fibre) or 'concentric'" in err


def test_analyze_summary_says_why_and_notes_pairs_of_few_discharges(tmp_path, capsys):
    """The summary line gave the verdict without its reason, and nothing said that an
    accepted pair's MCD rested on few discharges (found in review: a verdict that could
    rest on 12-discharge pairs). Here 60 discharges each, one pair blocking in most."""
    path = tmp_path / "s.h5"
    run(capsys, "simulate", "--preset", "achr-mg-moderate", "--pairs", "20", "--discharges", "60", "--seed", "1",
        "--quiet", "-o", str(path))
    code, out, err = run(capsys, "analyze", str(path), "--age", "45")
    assert code == 0, err
    assert re.search(r"verdict: abnormal \(mean jitter 65.6 µs > 35.4 µs .*8 of 17 pairs above 51.3 µs", out), out
    assert "note: 1 accepted pair recorded over fewer than 50 discharges, or with an MCD from under 25 " \
           "(flagged few-discharges)" in err


def test_analyze_a_recording_with_mains_hum(tmp_path, capsys):
    """A foreign file whose signal carries 0.5 mV of 50 Hz hum and an offset (not high-pass
    filtered): one line saying so and how to proceed, exit 2; analysed with --highpass,
    the parameter is stored with the results."""
    import h5py
    import numpy as np

    from sfemg.io.results import load_results

    from .analysis import synth

    sig, truth = synth.voluntary(50e3, 120, jitter_us=(30.0,), seed=1)
    path = tmp_path / "hum.h5"
    with h5py.File(path, "w") as f:
        f["recordings/r1/signal"] = sig + 5e-4 * np.sin(2 * np.pi * 50 * np.arange(sig.size) / 50e3) + 0.01
        f["recordings/r1/signal"].attrs["sampling_rate_hz"] = 50e3
    code, _, err = run(capsys, "analyze", str(path), "-o", str(tmp_path / "r.h5"), "--quiet")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "not high-pass filtered" in lines[0] and "--highpass" in lines[0]
    assert not (tmp_path / "r.h5").exists()
    code, _, err = run(capsys, "analyze", str(path), "-o", str(tmp_path / "r.h5"), "--highpass", "500", "--quiet")
    assert code == 0, err
    assert "note: the recordings do not state their electrode: sfe assumed (--electrode to give it)" in err
    result = load_results(tmp_path / "r.h5")
    assert result.params.highpass_hz == 500.0
    (pair,) = result.recordings[0].pairs
    assert pair.mcd_us == pytest.approx(truth.mcd_s(1) * 1e6, rel=0.03)
    code, _, err = run(capsys, "analyze", str(path), "-o", str(tmp_path / "x.h5"), "--highpass", "-5")
    assert code == 2 and "--highpass must be" in err


def test_analyze_stimulated_with_coarse_markers(tmp_path, capsys):
    """A foreign stimulated file whose stimulus markers were taken at the nearest sample:
    latencies from the artefact by default, from the markers with --stimulus-timing
    markers (stored with the results and in the JSON summary); asking for the artefact
    where there is none is one line, exit 2."""
    import json

    import h5py
    import numpy as np

    from sfemg.io.results import load_results

    from .analysis import synth

    fs = 50e3
    sig, stim, _ = synth.stimulated(fs, jitter_us=(15.0,), asynchronous=True, seed=2)
    quiet, _, _ = synth.stimulated(fs, artefact_v=0.0, seed=2)
    path = tmp_path / "stim.h5"
    with h5py.File(path, "w") as f:
        for name, x in (("r1", sig), ("quiet", quiet)):
            f[f"recordings/{name}/signal"] = x
            f[f"recordings/{name}/signal"].attrs["sampling_rate_hz"] = fs
            f[f"recordings/{name}/stimulus_times_s"] = np.ceil(stim * fs) / fs
            f[f"recordings/{name}"].attrs["mode"] = "stimulated"
    for choice in ("auto", "markers"):
        out, summary = tmp_path / f"{choice}.h5", tmp_path / f"{choice}.json"
        code, stdout, err = run(capsys, "analyze", str(path), "-o", str(out), "--json", str(summary),
                                "--stimulus-timing", choice)
        assert code == 0, err
        assert f"stimulus times: from the artefact in {int(choice == 'auto')} of 2 recording(s); markers " \
               "scatter about it by up to 5." in stdout
        result = load_results(out)
        assert result.params.stimulus_timing == choice
        timing = {r.name: r.stimulus_timing for r in result.recordings}
        assert timing == {"r1": "artefact" if choice == "auto" else "markers", "quiet": "markers"}
        reported = json.loads(summary.read_text())["recordings"]["r1"]["stimulus_timing"]
        assert reported["source"] == timing["r1"] and reported["marker_scatter_us"] > 4.0
    code, _, err = run(capsys, "analyze", str(path), "-o", str(tmp_path / "a.h5"), "--stimulus-timing", "artefact",
                       "--electrode", "sfe", "--quiet")  # (the file states none: no note that SFE is assumed)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 0 and len(lines) == 1 and "quiet" in lines[0] and "artefact" in lines[0]
    assert [r.name for r in load_results(tmp_path / "a.h5").recordings] == ["r1"]


def test_output_closed_early_is_no_internal_error():
    """``sfemg rns | head -1`` ended with "internal error: BrokenPipeError" (exit 1; found
    in review). The reader gone, the command ends quietly, as of SIGPIPE (141)."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader gone before the program starts (closed after, it raced the output)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "sfemg", "presets"], stdout=write_end,
                                stderr=subprocess.PIPE)
    finally:
        os.close(write_end)
    with proc.stderr:
        err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and err == "", err


@pytest.mark.parametrize("error", [RuntimeError("kaboom"), BrokenPipeError(32, "a worker's pipe")])
def test_internal_errors_exit_1_without_traceback(monkeypatch, capsys, error):
    """... a broken pipe too, unless it is standard output's (review: any was silent)."""
    import sfemg.cli as cli

    def boom(args):
        raise error

    monkeypatch.setattr(cli, "_cmd_presets", boom)
    code, _, err = run(capsys, "presets")
    assert code == 1 and "internal error" in err and "Traceback" not in err


def test_report_from_a_results_only_file_finds_the_recordings(tmp_path, capsys):
    study, results, report = tmp_path / "s.h5", tmp_path / "r.h5", tmp_path / "report.html"
    run(capsys, "simulate", "--pairs", "1", "--discharges", "60", "--seed", "4", "--quiet", "-o", str(study))
    code, _, err = run(capsys, "analyze", str(study), "-o", str(results), "--quiet")
    assert code == 0, err
    code, out, err = run(capsys, "report", str(results), "-o", str(report), "--quiet")
    assert code == 0, err
    html = report.read_text()
    assert "ground truth" in html.lower()  # recordings found through the results' source
    code, _, err = run(capsys, "report", str(study), "-o", str(tmp_path / "x.svg"))
    assert code == 2 and len(err.strip().splitlines()) == 1
    with h5py.File(results, "a") as h5:  # damaged: JSON nested past Python's recursion limit
        h5["analysis/recordings/pair001"].attrs["notes_json"] = "[" * 100_000 + "]" * 100_000
    code, _, err = run(capsys, "report", str(results), "-o", str(report), "--force", "--quiet")
    assert code == 2 and "malformed" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv,needle", [
    (["analyze", "{study}", "--json", "{tmp}/nodir/a.json"], "does not exist"),
    (["analyze", "{study}", "--json", "{tmp}/exists.json"], "--force"),
    (["analyze", "{study}", "-o", "{tmp}"], "is a folder"),
    (["simulate", "--pairs", "1", "-o", "{tmp}"], "is a folder"),
    (["demo", "--out", "{tmp}/exists.json"], "is a file"),
    (["rns", "--seed", "-1"], "seed"),
    (["simulate", "--seed", str(2 ** 70), "-o", "{tmp}/s.h5"], "seed"),
    (["simulate", "--fs", "1e12", "-o", "{tmp}/s.h5"], "--fs must be"),
    (["analyze", "{study}", "--json", "{study}", "--force"], "would replace"),  # found in review: the
    (["analyze", "{study}", "-o", "{tmp}/r.h5", "--json", "{tmp}/r.h5"], "would replace"),  # file was lost
    (["analyze", "{study}", "--json", "{study}"], "would replace"),  # (said "use --force", which would not do)
    (["analyze", "{study}", "-o", ""], "empty"),
    (["analyze", "{study}", "--highpass", "1e-5"], "at least 1 Hz"),
    (["analyze", "{study}", "--search-window-ms", "0"], "--search-window-ms must be"),
    (["analyze", "{study}", "--artefact-blank-ms", "-1"], "--artefact-blank-ms must be"),
])
def test_outputs_and_numbers_checked_before_work(tmp_path, capsys, argv, needle):
    study = tmp_path / "study.h5"
    run(capsys, "simulate", "--pairs", "1", "--discharges", "60", "--seed", "2", "--quiet", "-o", str(study))
    (tmp_path / "exists.json").write_text("{}")
    before = study.read_bytes()
    code, _, err = run(capsys, *[a.format(study=study, tmp=tmp_path) for a in argv])
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "exists.json").read_text() == "{}" and study.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.json", "study.h5"]


def test_recordings_that_cannot_be_read_are_skipped_with_a_warning(tmp_path, capsys):
    """Found in review: each of these stopped the whole study with an internal error and
    wrote nothing. Now each is a one-line warning, the good recording is analysed and
    written, exit 0; and a recording name is quoted (a newline in it stays inside the
    line)."""
    import h5py
    import numpy as np

    path = tmp_path / "s.h5"
    run(capsys, "simulate", "--pairs", "1", "--discharges", "60", "--seed", "2", "--quiet", "-o", str(path))
    with h5py.File(path, "a") as h5:
        rec = h5["recordings"]
        good = rec["pair001"]
        scaled = rec.create_group("text scale")
        scaled.create_dataset("signal", data=np.round(good["signal"][()] / 1e-7).astype(np.int16))
        scaled["signal"].attrs["sampling_rate_hz"] = 50e3
        scaled["signal"].attrs["scale_v_per_count"] = "1e-7 V"
        rec["dangling"] = h5py.SoftLink("/nowhere")
        stim = rec.create_group("stimulus times a group")
        stim.create_dataset("signal", data=good["signal"][()])
        stim.attrs["sampling_rate_hz"] = 50e3
        stim.attrs["mode"] = "stimulated"
        stim.create_group("stimulus_times_s")
        none = rec.create_group("no stimuli\nat all")
        none.create_dataset("signal", data=good["signal"][()])
        none.attrs["sampling_rate_hz"] = 50e3
        none.attrs["mode"] = "stimulated"
        none.create_dataset("stimulus_times_s", data=np.empty(0))
    code, _, err = run(capsys, "analyze", str(path), "-o", str(tmp_path / "r.h5"), "--quiet")
    assert code == 0, err
    lines = err.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("warning: '") for line in lines), err
    assert "Traceback" not in err and "internal error" not in err
    for needle in ("not a number", "cannot be read", "not a dataset", "0 stimulus time"):
        assert any(needle in line for line in lines), (needle, err)
    from sfemg.io.results import load_results

    assert [r.name for r in load_results(tmp_path / "r.h5").recordings] == ["pair001"]


def test_a_signal_of_two_samples_is_one_line(tmp_path, capsys):
    """No NumPy warnings before the error line (found in review: empty medians)."""
    import h5py
    import numpy as np

    path = tmp_path / "tiny.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("recordings/r/signal", data=np.array([1e-5, -1e-5]))
        h5["recordings/r"].attrs["sampling_rate_hz"] = 50e3
    code, _, err = run(capsys, "analyze", str(path), "-o", str(tmp_path / "out.h5"), "--quiet")
    assert code == 2 and len(err.strip().splitlines()) == 1, err


def test_analyze_progress_counts_recordings_done(tmp_path, capsys, monkeypatch):
    """The bar's updates run from 0 to the number of recordings, not beyond."""
    import sfemg.cli as cli

    calls = []
    monkeypatch.setattr(cli._Progress, "__call__", lambda self, done, total, *_: calls.append((done, total)))
    path = tmp_path / "s.h5"
    run(capsys, "simulate", "--pairs", "3", "--discharges", "60", "--seed", "2", "--quiet", "-o", str(path))
    calls.clear()
    code, _, err = run(capsys, "analyze", str(path), "-o", str(tmp_path / "r.h5"), "--jobs", "2")
    assert code == 0, err
    assert [done for done, _ in calls][-3:] == [1, 2, 3]
    assert all(0 <= done <= total == 3 for done, total in calls)


def test_analyze_notes_responses_past_the_search_window(tmp_path, capsys):
    """A response past ``--search-window-ms`` is not analysed, and the user is told where it
    is: a ``note:`` line on stderr, the recording's notes in the JSON summary and in
    the results file; with the window widened it is analysed and nothing is noted."""
    import h5py

    from sfemg.io.results import load_results

    from .analysis import synth

    fs = 50e3
    sig, stim, _ = synth.stimulated(fs, jitter_us=(20.0, 40.0), latencies_s=(2.5e-3, 5.5e-3),
                                    amplitudes_v=(0.6e-3, 0.8e-3), block_prob=(0.0, 0.1), seed=1)
    path = tmp_path / "stim.h5"
    with h5py.File(path, "w") as f:
        f["recordings/late/signal"] = sig
        f["recordings/late/signal"].attrs["sampling_rate_hz"] = fs
        f["recordings/late/stimulus_times_s"] = stim
        f["recordings/late"].attrs["mode"] = "stimulated"
        f["recordings/late"].attrs["electrode"] = "sfe"  # (stated: no note that it is assumed)
    summary = tmp_path / "s.json"
    code, _, err = run(capsys, "analyze", str(path), "-o", str(tmp_path / "r.h5"), "--json", str(summary), "--quiet")
    assert code == 0, err
    (line,) = err.strip().splitlines()
    assert line.startswith("note: 'late': responses time-locked to the stimuli at 5.") and "--search-window-ms" in line
    (note,) = json.loads(summary.read_text())["recordings"]["late"]["notes"]
    assert load_results(tmp_path / "r.h5").recordings[0].notes == (note,)
    assert line.endswith(note.replace("past search_window_ms", "past --search-window-ms"))  # (the option typed)
    code, _, err = run(capsys, "analyze", str(path), "-o", str(tmp_path / "w.h5"), "--search-window-ms", "7",
                       "--quiet")
    assert code == 0 and err == "", err
    assert len(load_results(tmp_path / "w.h5").recordings[0].pairs) == 2


def test_analyze_artefact_blank_is_an_option(tmp_path, capsys):
    """``--artefact-blank-ms`` reaches the analysis (a review: a stimulated recording with
    a long artefact tail could not be analysed right from the command line) and is stored
    with the results."""
    from sfemg.io.results import load_results

    path = tmp_path / "stim.h5"
    run(capsys, "simulate", "--mode", "stimulated", "--endplates", "1", "--discharges", "60", "--seed", "4",
        "--quiet", "-o", str(path))
    code, _, err = run(capsys, "analyze", str(path), "-o", str(tmp_path / "r.h5"), "--artefact-blank-ms", "1.5",
                       "--quiet")
    assert code == 0, err
    assert load_results(tmp_path / "r.h5").params.artefact_blank_ms == 1.5


def test_analyze_summary_counts_endplates_and_judges_no_study_on_two(tmp_path, capsys):
    """Found by a new user's review: a stimulated study's summary counted "pairs", a single
    one as "1 pairs", and two were judged like twenty."""
    path = tmp_path / "stim.h5"
    run(capsys, "simulate", "--mode", "stimulated", "--endplates", "2", "--discharges", "60", "--seed", "4",
        "--electrode", "concentric", "--quiet", "-o", str(path))
    code, out, err = run(capsys, "analyze", str(path), "-o", str(tmp_path / "r.h5"))
    assert code == 0, err
    assert "accepted endplates (of 2); verdict: unknown (2 endplates accepted: a normal study needs 20)" in out


def test_analyze_warns_at_once_of_a_muscle_without_limits(tmp_path, capsys):
    """Found by a new user's review: a typo ("edcc") was analysed in full and then gave
    "unknown (no reference limits for edcc ...)" without the names that have limits."""
    path = tmp_path / "s.h5"
    run(capsys, "simulate", "--pairs", "1", "--discharges", "60", "--seed", "2", "--quiet", "-o", str(path))
    code, _, err = run(capsys, "analyze", str(path), "--muscle", "edcc", "--json", str(tmp_path / "s.json"),
                       "--quiet")
    assert code == 0 and err.splitlines()[0] == (
        "warning: no reference limits for muscle 'edcc' (the tables cover edc, frontalis, orbicularis-oculi): "
        "the verdict will be unknown")
    study = json.loads((tmp_path / "s.json").read_text())["study"]
    assert study["verdict_reason"] == "no reference limits for edcc: the tables cover edc, frontalis, orbicularis-oculi"
    code, _, err = run(capsys, "analyze", str(path), "--muscle", "Extensor digitorum", "--quiet")
    assert code == 0 and "warning" not in err


@pytest.mark.parametrize("argv, message", [
    (("analyze", "{study}", "--age", "300"), "argument --age: a subject's age in years, above 0 and at most 130; "
                                             "got 300"),
    (("analyze", "{study}", "--age", "-5"), "argument --age: a subject's age in years, above 0 and at most 130; "
                                            "got -5"),
    (("analyze", "{study}", "--highpass", "-5"), "--highpass must be >= 0, got -5.0"),
    (("analyze", "{study}", "--search-window-ms", "2000"), "--search-window-ms must be at most 1000 (1 s), got 2000.0"),
    (("simulate", "--rate", "-1", "-o", "{new}"), "--rate must be > 0 and <= 100, got -1.0"),
    (("simulate", "--discharges", "1", "-o", "{new}"), "--discharges must be an integer >= 2, got 1"),
    (("simulate", "--no-artefact", "-o", "{new}"), "--no-artefact is for stimulated studies (--mode stimulated)"),
    (("rns", "--rate", "-2"), "--rate must be in (0, 100] Hz, got -2.0"),
    (("score", "{out}", "{missing}"), "nobench does not exist"),
])
def test_errors_name_the_options_the_user_typed(tmp_path, capsys, argv, message):
    """Found by a new user's review: errors named AnalysisParams.age_years for --age (and
    such); an age of 300 and --no-artefact on a voluntary study were taken; score said the
    default output existed before saying the benchmark set did not."""
    study = tmp_path / "s.h5"
    study.write_bytes(b"")  # (refused by the option before it is read)
    out = tmp_path / "o.json"
    out.write_text("{}")
    (tmp_path / "o.scores.json").write_text("{}")  # (score's default output: it used to be checked first)
    names = {"study": study, "out": out, "new": tmp_path / "new.h5", "missing": tmp_path / "nobench"}
    code, _, err = run(capsys, *(a.format(**names) for a in argv))
    assert code == 2 and err.strip().endswith(message) and len(err.strip().splitlines()) == 1


def test_every_option_says_what_it_does():
    """Found by a new user's review: --quiet, --seed, simulate's --mode and --electrode had
    no help text."""
    import argparse

    from sfemg.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    silent = [f"{name} {'/'.join(action.option_strings) or action.dest}"
              for name, sub in commands.choices.items() for action in sub._actions
              if not isinstance(action, argparse._HelpAction) and not action.help]
    assert silent == []


def test_errors_found_while_analysing_name_the_options_too(tmp_path, capsys):
    """Found in review: a window refused per recording, during the analysis, still said
    search_window_ms (and a high-pass above the band highpass_hz)."""
    path = tmp_path / "s.h5"
    run(capsys, "simulate", "--pairs", "1", "--discharges", "60", "--seed", "2", "--quiet", "-o", str(path))
    code, _, err = run(capsys, "analyze", str(path), "--search-window-ms", "150", "--quiet")
    assert code == 2 and "'pair001': --search-window-ms (150) reaches the unit's neighbouring discharges" in err
    code, _, err = run(capsys, "analyze", str(path), "--highpass", "1e9", "--quiet")
    assert code == 2 and "--highpass = 1e+09 Hz must lie below 0.45 x the sampling rate" in err


@pytest.mark.parametrize("message, named", [
    ("AnalysisParams.age_years must be a positive number, got -5", "--age must be a positive number, got -5"),
    ("highpass_hz = 1e+09 Hz must lie below", "--highpass = 1e+09 Hz must lie below"),
    ("search_window_ms (150) reaches ...: give a shorter search_window_ms",
     "--search-window-ms (150) reaches ...: give a shorter --search-window-ms"),
    # found in review: a path and a Python example were renamed too
    ("data/method/nothere.h5: no such file", "data/method/nothere.h5: no such file"),
    ("analyse with --highpass 500 (AnalysisParams(highpass_hz=500))",
     "analyse with --highpass 500 (AnalysisParams(highpass_hz=500))"),
    ("recording method.h5 cannot be read", "recording method.h5 cannot be read"),
])
def test_messages_name_options_only_where_a_parameter_is_spoken_of(message, named):
    from sfemg.cli import _named
    options = {"method": "--method", "highpass_hz": "--highpass", "search_window_ms": "--search-window-ms",
               "age_years": "--age"}
    assert _named(message, options) == named


def test_rns_judges_the_decrement_at_low_rates_only(capsys):
    """Found by a researcher's review: --rate 50 was judged "abnormal (> 10 %)" by the
    low-rate decrement criterion (high-rate RNS is read for an increment)."""
    code, out, _ = run(capsys, "rns", "--preset", "achr-mg-severe", "--rate", "3")
    assert code == 0 and "repetitive nerve stimulation, achr-mg-severe" in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("decrement 1st-4th: ") and last.endswith(
        ("abnormal (> 10 %, the low-rate criterion: docs/literature.md §10)",
         "normal (<= 10 %, the low-rate criterion: docs/literature.md §10)"))
    code, out, _ = run(capsys, "rns", "--preset", "achr-mg-severe", "--rate", "50")
    last = out.strip().splitlines()[-1]
    assert code == 0 and "abnormal" not in last and "normal" not in last
    assert "CMAP last/1st: " in last and "no verdict: the 10 % decrement criterion is for 5 Hz and below" in last


def test_rns_draws_the_trains_responses(tmp_path, capsys):
    """RNS had no display (teacher's review): ``--plot`` draws each response against the
    1st with the 10 % criterion; a file type matplotlib is not asked for is refused before
    the simulation."""
    plot = tmp_path / "rns.png"
    code, out, err = run(capsys, "rns", "--preset", "achr-mg-severe", "--plot", str(plot))
    assert code == 0 and f"plot: {plot}" in out and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", err
    code, _, err = run(capsys, "rns", "--plot", str(tmp_path / "rns.txt"))
    assert code == 2 and "give a .png, .pdf or .svg file" in err
    assert run(capsys, "rns", "--plot", str(plot))[0] == 2  # (exists: --force)


def test_no_progress_bar_where_stderr_is_no_terminal(tmp_path, capsys):
    """Into a log or a pipe, the bar's carriage returns began the error line ("\\ranalysing:
    0%|...\\r   \\rsfemg: error ...", so grep '^sfemg: error' failed: a foreign-data review)."""
    path = tmp_path / "s.h5"
    code, _, err = run(capsys, "simulate", "--pairs", "2", "--discharges", "60", "--seed", "2", "-o", str(path))
    assert code == 0 and "\r" not in err and "simulating" not in err
    code, _, err = run(capsys, "analyze", str(path), "--search-window-ms", "150")
    assert code == 2 and err.startswith("sfemg: ") and "\r" not in err
