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
    """A file with nothing but /recordings/<name>/signal + sampling_rate_hz (DESIGN §5)."""
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
    assert calls[0] == (0, 3, "noise") and calls[-1] == (3, 3, "")
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
                        "accepted", "reject_reasons", "flags"}
    assert summary["recordings"]["s"]["pairs"][0]["msd_us"] is None
    loaded = load_results(path)
    assert loaded.problems == study.problems and loaded.params == study.params


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
