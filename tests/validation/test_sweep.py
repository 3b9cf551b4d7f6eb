"""Sweeps: the same bits serially, on processes and on Dask; resume; plug-ins; the CLI."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from sfemg.cli import main
from sfemg.errors import SfemgInputError
from sfemg.io.validation import load_validation, read_validation_config
from sfemg.validation import (
    METRICS,
    Cell,
    Grid,
    format_summary,
    load_plugin,
    method_analyser,
    register_analyser,
    register_time_point_estimator,
    repeat_seed,
    run_sweep,
    summarize_sweep,
)

#: Small and fast: 2 cells x 2 repeats x 1 recording of 40 discharges.
SMALL = dict(grid="tiny", n_repeats=2, n_recordings=1,
             methods=("timepoint:peak", "analyser:sfemg-template"), seed=7)


def scores_of(path):
    data = load_validation(path)
    return data["config"], {c: m.tobytes() for c, m in data["metrics"].items()}


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep") / "serial.h5"
    run_sweep(path, n_workers=1, **SMALL)
    return path


def test_serial_sweep_stores_every_cell_method_and_repeat(serial):
    data = load_validation(serial)
    assert sorted(data["metrics"]) == [0, 1]
    assert data["metrics"][0].shape == (2, 2, len(METRICS))
    assert data["config"]["methods"] == list(SMALL["methods"]) and data["config"]["seed"] == 7
    assert set(data["provenance"]["cells"][0]) == {"task_wall_s", "hosts", "finished_utc", "execution", "command",
                                                   "refused"}
    n_true = data["metrics"][0][:, :, METRICS.index("n_true_pairs")]
    assert np.all(n_true == 1)  # one pair per recording, whatever the method


def test_processes_give_the_same_bits(serial, tmp_path):
    run_sweep(tmp_path / "processes.h5", n_workers=2, **SMALL)
    assert scores_of(tmp_path / "processes.h5") == scores_of(serial)


def test_dask_gives_the_same_bits_from_python_and_the_cli(serial, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:  # any free port
        run_sweep(tmp_path / "dask.h5", scheduler=cluster.scheduler_address, **SMALL)
        code = main(["validate", "--grid", "tiny", "--n", "2", "--recordings", "1", "--seed", "7",
                     "--method", "peak", "--analyser", "sfemg-template", "--quiet",
                     "--scheduler", cluster.scheduler_address, "-o", str(tmp_path / "cli.h5")])
    assert code == 0
    assert scores_of(tmp_path / "dask.h5") == scores_of(serial) == scores_of(tmp_path / "cli.h5")


def test_a_cluster_that_cannot_run_the_sweep_is_refused_before_the_file_is_touched(tmp_path, monkeypatch):
    """Found in a cluster review: a worker running other sfemg code gave other scores
    silently; a scheduler with no worker hung at 0 %; a malformed address was an internal
    error; and the file (with --force, an earlier sweep) was replaced before any of it was
    tried. Each is now a one-line input error, the file as it was."""
    import sfemg.validation.sweep as sweep

    distributed = pytest.importorskip("distributed")
    kept = tmp_path / "kept.h5"
    kept.write_bytes(b"an earlier sweep")
    monkeypatch.setattr(sweep, "DASK_CONNECT_S", 1.0)
    monkeypatch.setattr(sweep, "_HANDSHAKE_S", 0.5)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # a server that is not Dask (a dashboard's port)
        silent_address = "tcp://127.0.0.1:%d" % silent.getsockname()[1]
        for address, reason in (("http://127.0.0.1:1", "unknown address scheme 'http'"),
                                ("tcp://127.0.0.1:notaport", "invalid literal"),
                                ("tls://127.0.0.1:1", "TypeError: TLS expects a `ssl_context`"),  # (no TLS set up)
                                (silent_address, r"connected, but no Dask handshake within 1.5 s")):
            with pytest.raises(SfemgInputError, match=f"cannot reach the Dask scheduler at {address}: {reason}"):
                run_sweep(kept, scheduler=address, force=True, **SMALL)
    # no half-made Client left behind: one was the default client, its event loop running, and
    # closed itself when the garbage collector found it, deadlocking the next LocalCluster
    assert distributed.client._get_global_client() is None
    assert not [t for t in threading.enumerate() if t.name == "IO loop"]
    monkeypatch.setattr(sweep, "DASK_WORKER_WAIT_S", 1.0)
    with distributed.LocalCluster(n_workers=0, dashboard_address=":0") as empty:
        with pytest.raises(SfemgInputError, match="no worker joined the Dask scheduler at .* within 1 s"):
            run_sweep(kept, scheduler=empty.scheduler_address, force=True, **SMALL)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        monkeypatch.setattr(sweep, "__version__", "0.0.0")  # (here, not in the worker's process)
        for scheduler in (cluster.scheduler_address, cluster):  # (a cluster object taken for its address)
            with pytest.raises(SfemgInputError, match=r"1 Dask worker\(s\) run other sfemg code than this client"):
                run_sweep(kept, scheduler=scheduler, force=True, **SMALL)
    assert kept.read_bytes() == b"an earlier sweep"


def test_interrupted_sweep_resumes_without_redoing_cells(serial, tmp_path):
    path = tmp_path / "resumed.h5"

    def interrupt_after_first_cell(done, total):
        if done == SMALL["n_repeats"]:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(path, n_workers=1, progress=interrupt_after_first_cell, command="sfemg validate", **SMALL)
    assert sorted(load_validation(path)["metrics"]) == [0]
    calls = []
    run = run_sweep(path, n_workers=1, progress=lambda done, total: calls.append((done, total)),
                    command="sfemg validate --jobs 1", **SMALL)
    assert run["n_cells_run"] == 1
    # each cell says which run computed it (the sweep's command is its first run's)
    provenance = load_validation(path)["provenance"]
    assert [provenance["command"], provenance["cells"][0]["command"], provenance["cells"][1]["command"]] == [
        "sfemg validate", "sfemg validate", "sfemg validate --jobs 1"]
    # from the start (0 done: a bar opened at the first task's end had its clock and rate off), then per task
    assert calls == [(done, SMALL["n_repeats"]) for done in range(SMALL["n_repeats"] + 1)]
    assert scores_of(path) == scores_of(serial)
    assert run_sweep(path, n_workers=1, **SMALL)["n_tasks_run"] == 0


def test_a_different_configuration_is_refused_unless_forced(serial, tmp_path):
    """The refusal names what differs (a developer's review: --n 3 against 5, or two
    --method flags swapped, read only "holds no sweep with this configuration"); a
    sweep that finished no cell is replaced (one that failed at once asked for --force);
    a folder, or a file of recordings, is refused whatever --force says (it was offered)."""
    path = tmp_path / "other.h5"
    run_sweep(path, n_workers=1, **SMALL)
    for changed, difference in ((dict(SMALL, seed=8), "seed 7 in the file, 8 here"),
                                (dict(SMALL, n_repeats=3), "n_repeats 2 in the file, 3 here"),
                                (dict(SMALL, methods=SMALL["methods"][::-1]), "methods .* in the file, .* here"),
                                (dict(SMALL, grid=Grid("one", (Cell(),))), "another grid")):
        with pytest.raises(SfemgInputError, match=f"holds 2 finished cell\\(s\\) of a sweep with another "
                                                  f"configuration \\({difference}\\); use --force"):
            run_sweep(path, n_workers=1, **changed)
    run_sweep(path, n_workers=1, force=True, **dict(SMALL, seed=8))
    assert load_validation(path)["config"]["seed"] == 8
    other = tmp_path / "not-a-sweep.h5"
    other.write_bytes(b"not hdf5")
    with pytest.raises(SfemgInputError, match="exists and holds no sweep sfemg can read .*; use --force"):
        run_sweep(other, n_workers=1, **SMALL)
    with pytest.raises(SfemgInputError, match="is a folder, not a file"):
        run_sweep(tmp_path, n_workers=1, force=True, **SMALL)
    study_file = tmp_path / "study.h5"
    with h5py.File(study_file, "w") as h5:
        h5.create_dataset("recordings/x/signal", data=np.zeros(100)).attrs["sampling_rate_hz"] = 50e3
    before = study_file.read_bytes()
    with pytest.raises(SfemgInputError, match="holds recordings, not a sweep: write the sweep to another file"):
        run_sweep(study_file, n_workers=1, force=True, **SMALL)
    assert study_file.read_bytes() == before
    # a sweep whose every task failed: its file holds the configuration only
    failed = tmp_path / "failed.h5"
    with pytest.raises(SfemgInputError, match="plug-in"):
        run_sweep(failed, n_workers=1, **dict(SMALL, methods=("analyser:tests.validation.plugin_example:"
                                                               "broken_analyser",)))
    assert run_sweep(failed, n_workers=1, **SMALL)["n_cells_run"] == 2
    assert scores_of(failed) == scores_of(serial)


def test_a_sweep_does_not_write_into_a_file_another_sweep_replaced(tmp_path):
    """A review: a sweep that had finished no cell yet was replaced (without --force) by
    another with other settings, and the first then filed its cells under the second's
    configuration. A cell is written only into a file that holds its own sweep."""
    from sfemg.io.validation import create_validation_file

    path = tmp_path / "v.h5"

    def replaced_after_the_first_task(done, total):
        if done == 1:
            create_validation_file(path, {"another": "sweep"}, {}, force=True)

    with pytest.raises(SfemgInputError, match="v.h5 was replaced by another sweep while this one ran: cell 0 "):
        run_sweep(path, n_workers=1, progress=replaced_after_the_first_task, **SMALL)
    assert read_validation_config(path) == {"another": "sweep"}


def test_a_sweep_is_not_resumed_on_other_plugin_code(tmp_path, monkeypatch):
    """Found by a developer's review: a sweep interrupted, its plug-in edited, then resumed
    kept the old code's scores in the finished cells and the new code's in the rest,
    under one method name. Each plug-in's module:qualname and a hash of its code are
    stored: a change of its code (or of a helper in its module) is refused, a comment is
    not (hashing the module's source, a review found, a comment in a driver script
    blocked the resume)."""
    import importlib

    source = ("import numpy as np\n\ndef est(segments_v, fs_hz, noise_power_v2):\n"
              "    return peak(segments_v)\n\ndef peak(segments_v):\n"
              "    return np.argmax(segments_v, axis=1).astype(float)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # (an edit within the second: no stale .pyc)
    small = dict(SMALL, methods=("timepoint:mine:est",))
    path = tmp_path / "v.h5"

    def edit(text):  # (as a new process would load it)
        (tmp_path / "mine.py").write_text(text)
        sys.modules.pop("mine", None)
        importlib.invalidate_caches()

    def interrupt_after_first_cell(done, total):
        if done == SMALL["n_repeats"]:
            raise KeyboardInterrupt

    edit(source)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(path, n_workers=1, progress=interrupt_after_first_cell, **small)
    recorded = load_validation(path)["provenance"]["plugins"]["timepoint:mine:est"]
    assert re.fullmatch(r"mine:est \([0-9a-f]{12}\)", recorded)
    edit("# my estimator\n" + source.replace("\ndef peak", "\n# the largest sample\ndef peak"))
    assert run_sweep(path, n_workers=1, **small)["n_cells_run"] == 1  # (resumed)
    edit(source.replace("argmax", "argmin"))  # (in the helper)
    with pytest.raises(SfemgInputError, match=f"plug-in timepoint:mine:est is other code than when this sweep "
                                              f"began \\({re.escape(recorded)}; now mine:est \\(.*resuming would mix"):
        run_sweep(path, n_workers=1, **small)
    # begun under another Python, whose parser may differ: said (an upgrade read as other plug-in code; a review)
    import platform
    monkeypatch.setattr(platform, "python_version", lambda: "3.99.0")
    monkeypatch.setattr(platform, "python_version_tuple", lambda: ("3", "99", "0"))
    with pytest.raises(SfemgInputError, match=r"or the same code parsed by another Python \(3\.\d+\.\d+ then, 3\.99\.0 "
                                              r"now\): resuming"):
        run_sweep(path, n_workers=1, **small)
    monkeypatch.undo()
    assert run_sweep(path, n_workers=1, force=True, **small)["n_cells_run"] == 2
    assert load_validation(path)["provenance"]["python"] == platform.python_version()
    sys.modules.pop("mine", None)


def test_plugin_fingerprints_follow_the_code(tmp_path):
    """Reviews of the fingerprint: a partial was fingerprinted as functools.py, a closure
    or a callable object without the values it carries, a numba function by its type; a
    closure over an object array differed from run to run; a comment blocked a resume.
    Each print here is taken in a process of its own, as a resumed sweep's would be."""
    module = tmp_path / "plug.py"
    base = ("import functools\nimport numba\nimport numpy as np\n\nWINDOW = 5\n\n"
            "def scaled(segments_v, fs_hz, noise_power_v2, k=1.0):\n"
            "    return np.array([np.argmax(row) * k for row in segments_v])\n\n"
            "class Threshold:\n    def __init__(self, level):\n        self.level = level\n\n"
            "    def __call__(self, segments_v, fs_hz, noise_power_v2):\n"
            "        return np.argmax(segments_v > self.level, axis=1).astype(float)\n\n"
            "def closing_over(values):\n"
            "    return lambda segments_v, fs_hz, noise_power_v2: np.argmax(segments_v, axis=1) + len(values)\n\n"
            "half = functools.partial(scaled, k=0.5)\nthreshold = Threshold(1e-4)\n"
            "objects = closing_over(np.array(['a', 1], dtype=object))\n"
            "jitted = numba.njit(lambda segments_v, fs_hz, noise_power_v2: segments_v.argmax())\n")

    def prints(source):
        module.write_text(source)
        code = ("import sys; sys.path.insert(0, sys.argv[1]); from sfemg.validation.plugins import plugin_fingerprint; "
                "print(*(plugin_fingerprint('timepoint:plug:' + n) for n in "
                "('scaled', 'half', 'threshold', 'objects', 'jitted')), sep='\\n')")
        out = subprocess.run([sys.executable, "-B", "-c", code, str(tmp_path)], capture_output=True, text=True,
                             check=True).stdout.split("\n")[:5]
        return dict(zip(("scaled", "half", "threshold", "objects", "jitted"), out))

    first = prints(base)
    assert first["half"].startswith("plug:scaled (") and first["threshold"].startswith("plug:Threshold (")
    assert first["jitted"].startswith("plug:<lambda> (")
    assert prints(base) == first  # (the object array too)
    assert prints('"""Plug-ins."""\n# plug-ins\n' + base.replace("\nclass", "\n# a threshold\nclass").replace(
        "        self.level = level", '        """A threshold, V."""\n        self.level = level')) == first  # (words)
    for edit in (("k=0.5", "k=0.25"), ("Threshold(1e-4)", "Threshold(2e-4)"), ("['a', 1]", "['a', 2]"),
                 ("WINDOW = 5", "WINDOW = 50"), ("segments_v.argmax()", "segments_v.argmin()")):
        changed = prints(base.replace(*edit))
        assert changed != first, edit
    # the values carried, where the plug-in's module is unchanged: made in a driver script
    driver = ("import functools\nimport plug\nhalf = functools.partial(plug.scaled, k=0.5)\n"
              "threshold = plug.Threshold(1e-4)\nobjects = plug.closing_over([1, 2])\n")
    module.write_text(base)

    def driven(text):
        (tmp_path / "drv.py").write_text(text)
        code = ("import sys; sys.path.insert(0, sys.argv[1]); from sfemg.validation.plugins import plugin_fingerprint; "
                "print(*(plugin_fingerprint('timepoint:drv:' + n) for n in ('half', 'threshold', 'objects')))")
        return subprocess.run([sys.executable, "-B", "-c", code, str(tmp_path)], capture_output=True, text=True,
                              check=True).stdout.split()
    before = driven(driver)
    for k, edit in enumerate((("k=0.5", "k=0.25"), ("Threshold(1e-4)", "Threshold(2e-4)"), ("[1, 2]", "[1, 2, 3]"))):
        after = driven(driver.replace(*edit))
        assert after[2 * k + 1] != before[2 * k + 1] and after[:2 * k] + after[2 * k + 2:] == \
            before[:2 * k] + before[2 * k + 2:], edit


def test_plugin_mistakes_caught_before_the_sweep_runs(tmp_path, monkeypatch):
    """A developer's review: a built-in name re-registered silently filed the user's
    scores under sfemg's method; a name registered in the client was "unknown" on each
    Dask worker; a preset misspelt in a grid failed in the workers, after the file was
    made; an infinite MCD was left out of the means, silently."""
    from sfemg.validation.plugins import TIME_POINT_ESTIMATORS
    from sfemg.validation.scoring import pair_fields

    from .plugin_example import centroid_time_points

    monkeypatch.setitem(TIME_POINT_ESTIMATORS, "centroid", centroid_time_points)  # (registered, removed after)
    with pytest.raises(SfemgInputError, match="'template' is sfemg's own timepoint: register yours under another"):
        register_time_point_estimator("template", lambda segments_v, fs_hz, noise_power_v2: None)
    with pytest.raises(SfemgInputError, match="'sfemg-peak' is sfemg's own analyser"):
        register_analyser("sfemg-peak", lambda recording: [])
    with pytest.raises(SfemgInputError, match="timepoint:centroid is registered in this process only"):
        run_sweep(tmp_path / "d.h5", **dict(SMALL, methods=("timepoint:centroid",)), scheduler="tcp://127.0.0.1:1")
    import multiprocessing
    monkeypatch.setattr(multiprocessing, "get_start_method", lambda allow_none=False: "forkserver")
    with pytest.raises(SfemgInputError, match="registered in this process only: a worker process started by "
                                              "forkserver knows sfemg's own"):
        run_sweep(tmp_path / "d.h5", **dict(SMALL, methods=("timepoint:centroid",)), n_workers=2)
    with pytest.raises(SfemgInputError, match="Cell.preset must be one of .*, got 'achr-mg-moderat'"):
        Grid.from_dict({"name": "typo", "cells": [{"preset": "achr-mg-moderat"}]})
    with pytest.raises(SfemgInputError, match="'mcd_us' is infinite"):
        pair_fields({"mean_ipi_us": 1000.0, "mcd_us": float("inf")})
    assert not (tmp_path / "d.h5").exists()


def test_force_starts_a_finished_sweep_again(serial, tmp_path):
    """The way to score changed code on the same settings: --force runs every cell."""
    path = tmp_path / "again.h5"
    path.write_bytes(serial.read_bytes())
    assert run_sweep(path, n_workers=1, **SMALL)["n_tasks_run"] == 0
    assert run_sweep(path, n_workers=1, force=True, **SMALL)["n_cells_run"] == 2
    assert scores_of(path) == scores_of(serial)


def test_a_sweep_begun_by_another_version_is_not_resumed(serial, tmp_path, monkeypatch):
    """Resuming would mix two versions' scores in one file: refused unless --force."""
    import sfemg.validation.sweep as sweep
    path = tmp_path / "old.h5"
    path.write_bytes(serial.read_bytes())
    monkeypatch.setattr(sweep, "__version__", "999.0")
    with pytest.raises(SfemgInputError, match="begun by sfemg .* this is 999.0"):
        run_sweep(path, n_workers=1, **SMALL)
    assert run_sweep(path, n_workers=1, force=True, **SMALL)["n_cells_run"] == 2
    assert load_validation(path)["provenance"]["sfemg_version"] == "999.0"


@pytest.mark.parametrize("where", ["validation", "provenance/cells/cell0000"])
@pytest.mark.parametrize("text", [pytest.param("[" * 100_000 + "]" * 100_000, id="nested"),
                                  pytest.param("{not json", id="not-json")])
def test_a_damaged_sweep_file_is_an_input_error(serial, tmp_path, where, text):
    """A JSON attribute that does not decode (even one nested past the recursion limit)
    is a one-line input error, never a crash, on resuming or reading the scores."""
    path = tmp_path / "damaged.h5"
    path.write_bytes(serial.read_bytes())
    with h5py.File(path, "a") as h5:
        attr = "config_json" if where == "validation" else "json"
        assert attr in h5[where].attrs
        h5[where].attrs[attr] = text
    with pytest.raises(SfemgInputError, match="malformed") as info:
        load_validation(path)
    assert "\n" not in str(info.value)
    # While the error is still held, another thread can use h5py (its global lock was freed;
    # only the cells' attribute is read while iterating a group, where it was not)
    other = threading.Thread(target=lambda: h5py.File(tmp_path / "other.h5", "w").close(), daemon=True)
    other.start()
    other.join(timeout=30)
    assert not other.is_alive(), "h5py's global lock was left held"
    if where == "validation":
        with pytest.raises(SfemgInputError, match="malformed"):
            read_validation_config(path)
        with pytest.raises(SfemgInputError, match="holds no sweep sfemg can read .*malformed"):
            run_sweep(path, n_workers=1, **SMALL)


def test_seeds_depend_on_seed_cell_and_repeat_only():
    seeds = {repeat_seed(s, c, r) for s in (0, 1) for c in (0, 1) for r in (0, 1)}
    assert len(seeds) == 8 and repeat_seed(0, 1, 1) == repeat_seed(0, 1, 1)


def test_plugins_by_module_function(tmp_path):
    grid = Grid("one", (Cell(n_discharges=30),))
    methods = ("timepoint:tests.validation.plugin_example:centroid_time_points",
               "analyser:tests.validation.plugin_example:truth_analyser")
    run_sweep(tmp_path / "p.h5", grid, n_repeats=1, n_recordings=2, methods=methods, n_workers=1)
    metrics = load_validation(tmp_path / "p.h5")["metrics"][0]
    centroid, truth = (dict(zip(METRICS, m[0])) for m in metrics)
    assert truth["mcd_rmse_us"] == 0.0 and truth["false_pairs"] == 0 and truth["missed_pairs"] == 0
    assert centroid["n_matched_pairs"] == 2 and np.isfinite(centroid["mcd_rmse_us"])


def test_an_estimator_that_finds_nothing_blocks_every_discharge_of_the_true_pairs(tmp_path):
    """"A NaN position counts as a blocked discharge" (docs/validation.md); all of them
    used to leave the pair without a mean IPI: a false and a missed pair (a developer's
    review)."""
    run_sweep(tmp_path / "n.h5", Grid("one", (Cell(n_discharges=30),)), n_repeats=1, n_recordings=2,
              methods=("timepoint:tests.validation.plugin_example:nan_time_points",), n_workers=1)
    scores = dict(zip(METRICS, load_validation(tmp_path / "n.h5")["metrics"][0][0, 0]))
    assert (scores["n_matched_pairs"], scores["false_pairs"], scores["missed_pairs"]) == (2, 0, 0)
    assert scores["blocking_bias_percent"] > 95  # (every discharge said blocked; the truth blocks in few)


@pytest.mark.parametrize("method, message", [
    ("analyser:tests.validation.plugin_example:broken_analyser",
     "plug-in {method} failed on recording pair001 \\(cell 0, repeat 0\\): ValueError: oops"),
    ("timepoint:tests.validation.plugin_example:wrong_shape_time_points",
     "plug-in {method} failed on recording pair001 .*returned shape"),
    # found by a developer's review: these were a bare TypeError (exit 1) and a message
    # without the plug-in, the cell or the repeat
    ("analyser:tests.validation.plugin_example:dict_analyser",
     "plug-in {method} failed on recording pair001 .*TypeError: returned dict, not a list of pairs"),
    ("analyser:tests.validation.plugin_example:ipi_less_analyser",
     "^{method} \\(cell 0, repeat 0\\): a measured pair lacks 'mean_ipi_us'"),
    ("timepoint:mine", "plug-in {method} failed on recording pair001 .*RuntimeError: boom"),  # registered here
    # found by a developer's review: counted as a recording with nothing to analyse (the
    # IPIs' statistics refused the infinite values), every pair missed, without a word
    ("timepoint:tests.validation.plugin_example:infinite_time_points",
     "plug-in {method} failed on recording pair001 .*returned 1 infinite position"),
])
def test_a_failing_plugin_is_named_in_a_one_line_error(tmp_path, monkeypatch, method, message):
    from sfemg.validation.plugins import TIME_POINT_ESTIMATORS

    def boom(segments_v, fs_hz, noise_power_v2):
        raise RuntimeError("boom")

    monkeypatch.setitem(TIME_POINT_ESTIMATORS, "mine", None)  # (registered below, removed after the test)
    register_time_point_estimator("mine", boom)
    with pytest.raises(SfemgInputError, match=message.format(method=re.escape(method))):
        run_sweep(tmp_path / "b.h5", Grid("one", (Cell(n_discharges=30),)), n_repeats=1, n_recordings=1,
                  methods=(method,), n_workers=1)


@pytest.mark.parametrize("where", ["processes", "dask"])
def test_a_plugin_that_ends_its_worker_is_named_in_a_one_line_error(tmp_path, where):
    """A worker process that ended (here a plug-in's os._exit; a crash in compiled code, the
    OOM killer) was an internal error: BrokenProcessPool, or Dask's KilledWorker, without
    the cell (a cluster review)."""
    method = "analyser:tests.validation.plugin_example:process_ending_analyser"
    grid = Grid("one", (Cell(n_discharges=30),))
    cell = r" cell 0, repeat [01] \(killed, out of memory, or a plug-in that ends its process\)"
    if where == "processes":
        with pytest.raises(SfemgInputError, match="^a worker process ended with unfinished tasks, among them" + cell):
            run_sweep(tmp_path / "k.h5", grid, n_repeats=2, n_recordings=1, methods=(method,), n_workers=2)
        return
    distributed = pytest.importorskip("distributed")
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            distributed.LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster:
        with pytest.raises(SfemgInputError, match=r"^Dask workers ended repeatedly \(KilledWorker\) running" + cell):
            run_sweep(tmp_path / "k.h5", grid, n_repeats=1, n_recordings=1, methods=(method,),
                      scheduler=cluster.scheduler_address)


def test_a_plugin_that_finds_nothing_is_said_so(tmp_path, capsys):
    """A developer's review: SfemgInputError from a plug-in means "nothing to analyse"
    (its pairs count as missed), but sfemg raises it too when a plug-in misuses it (a
    misspelt method): the sweep scored every pair missed, exit 0, without a word. The
    recordings refused are counted, stored per cell and said, with the first message."""
    method = "analyser:tests.validation.plugin_example:misusing_analyser"
    code = main(["validate", "--grid", "tiny", "--n", "2", "--recordings", "1", "--analyser", method.split(":", 1)[1],
                 "--analyser", "sfemg-peak", "--quiet", "-o", str(tmp_path / "m.h5")])
    err = capsys.readouterr().err
    assert code == 0
    assert re.fullmatch(f"warning: {re.escape(method)} raised SfemgInputError \\(nothing to analyse\\) on 4 of 4 "
                        "recordings, whose pairs count as missed; first: cell [01], repeat [01], pair001: .*method.*"
                        "tempalte.*\n", err), err
    cells = load_validation(tmp_path / "m.h5")["provenance"]["cells"]
    assert all(cells[c]["refused"][f"repeat {r}"][method][0] == 1 for c in (0, 1) for r in (0, 1))
    # mean IPIs in seconds: no pair matches (said by score, not by validate; a developer's review)
    method = "analyser:tests.validation.plugin_example:seconds_analyser"
    assert main(["validate", "--grid", "tiny", "--n", "1", "--recordings", "1", "--analyser", method.split(":", 1)[1],
                 "--quiet", "-o", str(tmp_path / "s.h5")]) == 0
    assert capsys.readouterr().err == (f"warning: {method}: no measured pair matched a true one: are mean_ipi_us "
                                       "in µs, from the trigger (voluntary) or the stimulus (stimulated)?\n")


@pytest.mark.parametrize("spec, message", [
    ("timepoint:nosuch", "unknown timepoint"),
    ("analyser:no_such_module_xyz:f", "cannot import"),
    ("analyser:tests.validation.plugin_example:missing", "no attribute"),
    ("analyser:tests.validation.plugin_example:not_callable", "not callable"),
    ("peak", "timepoint:<spec>"),
])
def test_bad_plugin_specs_are_input_errors(spec, message):
    with pytest.raises(SfemgInputError, match=message):
        method_analyser(spec)


def test_builtins_go_through_the_same_loader():
    from sfemg.validation.plugins import peak_time_points
    assert load_plugin("peak", "timepoint") is peak_time_points
    assert load_plugin("sfemg.validation.plugins:peak_time_points", "timepoint") is peak_time_points


def test_summary_table_has_a_row_per_cell_and_method(serial):
    rows = summarize_sweep(serial)
    assert [(r["cell_index"], r["method"]) for r in rows] == [
        (c, m) for c in (0, 1) for m in SMALL["methods"]]
    text = format_summary(rows)
    assert "MCD bias µs" in text and "analyser:sfemg-template" in text
    assert "tech. jitter µs" in text  # (the measurement floor: a developer's review missed it)


def test_cli_validate(tmp_path, capsys):
    path = tmp_path / "v.h5"
    code = main(["validate", "--grid", "tiny", "--n", "1", "--recordings", "1", "--method", "peak",
                 "--jobs", "1", "--quiet", "-o", str(path)])
    assert code == 0 and capsys.readouterr().out == ""
    assert load_validation(path)["config"]["methods"] == ["timepoint:peak"]
    code = main(["validate", "--grid", "tiny", "--n", "1", "--recordings", "1", "--method", "peak",
                 "--jobs", "1", "-o", str(path)])
    out = capsys.readouterr().out
    assert code == 0 and "2 already done" in out and "timepoint:peak" in out


def test_cli_grid_from_a_json_file(tmp_path, capsys):
    grid = Grid.factorial("mine", base=Cell(n_discharges=30), noise_rms_v=(5e-6,))
    (tmp_path / "grid.json").write_text(json.dumps(grid.to_dict()))
    code = main(["validate", "--grid", str(tmp_path / "grid.json"), "--n", "1", "--recordings", "1",
                 "--method", "peak", "--jobs", "1", "--quiet", "-o", str(tmp_path / "v.h5")])
    assert code == 0 and Grid.from_dict(load_validation(tmp_path / "v.h5")["config"]["grid"]) == grid
    (tmp_path / "bad.json").write_text(json.dumps({"name": "x", "cells": [{"fs_hz": 1.0}]}))
    code = main(["validate", "--grid", str(tmp_path / "bad.json"), "--quiet", "-o", str(tmp_path / "w.h5")])
    assert code == 2 and "Cell.fs_hz" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--grid", "huge"], "unknown grid"),
    (["--grid", "missing.json"], "not a readable JSON grid"),
    (["--grid", "{tmp}/nested.json"], "not a readable JSON grid"),
    (["--grid", "{tmp}/nameless.json"], 'expected {"name": ..., "cells"'),  # was a bare "'name'"
    (["--method", "nosuch"], "unknown timepoint"),
    (["--n", "0"], "must be >= 1"),
])
def test_cli_validate_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, message):
    (tmp_path / "nested.json").write_text("[" * 100_000 + "]" * 100_000)  # past the recursion limit
    (tmp_path / "nameless.json").write_text('{"cells": []}')
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code = main(["validate", *argv, "--quiet", "-o", str(tmp_path / "v.h5")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1


def test_validate_draws_its_plot(tmp_path, capsys):
    """A developer's review: the validation plot was Python-only. --plot draws it after
    the sweep; a file it cannot write is refused before the sweep."""
    argv = ["validate", "--grid", "tiny", "--n", "2", "--recordings", "1", "--method", "peak",
            "-o", str(tmp_path / "v.h5")]
    assert main(argv + ["--plot", str(tmp_path / "v.txt")]) == 2
    assert "--plot" in capsys.readouterr().err and not (tmp_path / "v.h5").exists()
    assert main(argv + ["--plot", str(tmp_path / "v.png")]) == 0
    assert (tmp_path / "v.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"plot: {tmp_path / 'v.png'}" in capsys.readouterr().out


def test_plot_error_vs_noise_draws_a_line_per_method(serial):
    from sfemg.validation.plot import plot_error_vs_noise
    ax = plot_error_vs_noise(serial)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(SMALL["methods"])
    assert ax.get_xlabel() == "noise RMS (µV)"
    import matplotlib.pyplot as plt
    plt.close(ax.figure)
    # found by a developer's review: a bare KeyError, and an empty plot
    with pytest.raises(SfemgInputError, match="metric 'mcd_rmse' is not one of .*mcd_rmse_us"):
        plot_error_vs_noise(serial, "mcd_rmse")
    with pytest.raises(SfemgInputError, match="no finished voluntary cell has receptor_blockade=0.33; the sweep's: "):
        plot_error_vs_noise(serial, receptor_blockade=0.33)
    # the grid's level reached by arithmetic is the grid's; a near miss is said with its digits (it read
    # "receptor_blockade=0.5; the sweep's: 0.5"; a developer's review)
    plt.close(plot_error_vs_noise(serial, receptor_blockade=0.7 - 0.2).figure)  # (0.49999999999999994)
    with pytest.raises(SfemgInputError, match=r"receptor_blockade=0\.5000001; the sweep's: 0\.5$"):
        plot_error_vs_noise(serial, receptor_blockade=0.5000001)


def _descendants(pid):
    """Process ids descended from ``pid`` (Linux /proc)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    found, frontier = [], [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _started(pid):
    """When process ``pid`` started (clock ticks since boot), or None if it is gone or a
    zombie: a process is the one seen before only if this has not changed (pids are reused)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[19])


def _signal_a_sweep(command, signals, **popen):
    """Start ``command`` (a sweep on worker processes), let its workers work, send it
    ``signals`` (a callable of the process, or several, 0.3 s apart) and return its exit
    code and its worker processes still alive 15 s after it ended (killed then, as is the
    sweep if it has not ended within 120 s: a failing test leaves nothing running)."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **popen)
    workers, code = {}, None
    try:
        deadline = time.monotonic() + 120  # (compiling first, on a cold cache and a busy machine)
        while len(_descendants(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3.0)  # (all started, working)
        workers = {p: _started(p) for p in _descendants(proc.pid)}
        assert len(workers) >= 2, "the sweep started no worker processes"
        for send in signals:
            send(proc)
            time.sleep(0.3)
        code = proc.wait(timeout=120)
        deadline = time.monotonic() + 15
        while any(_started(p) == t for p, t in workers.items()) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        left = [p for p, t in workers.items() if t is not None and _started(p) == t]
        for p in left:
            os.kill(p, signal.SIGKILL)
    return code, left


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc (Linux)")
def test_a_second_ctrl_c_ends_the_sweep(tmp_path):
    """Found by a developer's review: Ctrl-C twice (or `timeout -s INT`, which signals the
    process group too) broke off the pool's shutdown, and the program then waited for
    ever at exit on idle workers; the workers had also inherited the program's SIGTERM
    handler, and outlived their own terminate."""
    def ctrl_c(proc):  # (a terminal's: to the whole process group)
        os.killpg(proc.pid, signal.SIGINT)

    code, left = _signal_a_sweep(
        [sys.executable, "-m", "sfemg", "validate", "--grid", "default", "--n", "50", "--jobs", "2",
         "--method", "tests.validation.plugin_example:slow_time_points", "--quiet", "-o", str(tmp_path / "v.h5")],
        [ctrl_c, ctrl_c], start_new_session=True, cwd=Path(__file__).parents[2],
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # (pytest run in the background ignores it)
    assert code in (130, -signal.SIGINT) and not left


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc (Linux)")
@pytest.mark.parametrize("sig, start_method", [(signal.SIGKILL, "fork"), (signal.SIGKILL, "forkserver"),
                                               (signal.SIGKILL, "spawn"), (signal.SIGTERM, "fork")])
def test_a_killed_sweep_leaves_no_worker_processes(tmp_path, sig, start_method):
    """Found by a developer's review: after kill -TERM or -KILL of `sfemg validate --jobs 2`
    both workers stayed alive, idle, as orphans. SIGTERM now ends the command as Ctrl-C
    does, then the process dies of it; after SIGKILL the workers notice the sweep is gone
    — under every start method (Python 3.14 starts them from a fork server on Linux)."""
    launch = (f"import multiprocessing, sys; multiprocessing.set_start_method({start_method!r}); "
              f"sys.argv = ['sfemg', 'validate', '--grid', 'default', '--n', '50', '--jobs', '2', '--quiet', "
              f"'-o', {str(tmp_path / 'v.h5')!r}]; from sfemg.cli import run; run()")
    code, left = _signal_a_sweep([sys.executable, "-c", launch], [lambda proc: proc.send_signal(sig)])
    assert code == -sig and not left  # (SIGTERM: after the clean-up, as a shell reports a kill)
