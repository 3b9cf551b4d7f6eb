"""Whole recordings and studies: reproducibility, modes, outputs, parameter checks."""

import numpy as np
import pytest

from sfemg import SfemgInputError
from sfemg.synthesis import PRESETS, simulate_study

SMALL = dict(n_recordings=3, n_discharges=30, fs_hz=50_000.0)


def test_same_seed_same_bits_whatever_the_thread_count():
    a = simulate_study("achr-mg-moderate", seed=7, n_jobs=1, **SMALL)
    b = simulate_study("achr-mg-moderate", seed=7, n_jobs=2, **SMALL)
    for ra, rb in zip(a.recordings, b.recordings):
        assert ra.signal_v.tobytes() == rb.signal_v.tobytes()
        assert ra.ground_truth.event_times_s.tobytes() == rb.ground_truth.event_times_s.tobytes()
    c = simulate_study("achr-mg-moderate", seed=8, n_jobs=2, **SMALL)
    assert not np.array_equal(a.recordings[0].signal_v[:1000], c.recordings[0].signal_v[:1000])


def test_voluntary_recording_ground_truth():
    study = simulate_study("healthy-edc", seed=1, **SMALL)
    rec = study.recordings[0]
    gt = rec.ground_truth
    assert rec.mode == "voluntary" and rec.stimulus_times_s is None
    assert gt.event_times_s.shape == (2, 30) and gt.trigger_fibre == 0
    ipi = gt.event_times_s[1] - gt.event_times_s[0]
    assert np.all((ipi > 0.3e-3) & (ipi < 3e-3))  # potentials apart, within a sweep
    isi = np.diff(gt.discharge_times_s)
    assert 0.05 < np.std(isi) / np.mean(isi) < 0.3   # realistic firing variability
    assert 0.08 < np.mean(isi) < 0.12                # 10 Hz
    np.testing.assert_allclose(gt.safety_factor, gt.epp_amplitude_v / gt.threshold_v)
    assert rec.signal_v.size / rec.fs_hz > gt.discharge_times_s[-1]


def test_stimulated_recording_has_stimuli_and_latencies():
    study = simulate_study("healthy-edc", mode="stimulated", seed=2, **SMALL)
    rec = study.recordings[0]
    gt = rec.ground_truth
    np.testing.assert_array_equal(rec.stimulus_times_s, gt.discharge_times_s)
    assert rec.name.startswith("endplate") and gt.n_fibres == 1
    np.testing.assert_allclose(np.diff(rec.stimulus_times_s), 0.1)  # 10 Hz default
    latency = gt.event_times_s[0] - rec.stimulus_times_s
    assert np.all((latency > 2e-3) & (latency < 15e-3))
    # the artefact is visible right after each stimulus
    i = int(round(rec.stimulus_times_s[3] * rec.fs_hz))
    assert np.max(np.abs(rec.signal_v[i:i + 10])) > 1e-3


@pytest.mark.parametrize("output", ["continuous", "sweeps"])
def test_a_stimulator_on_its_own_clock(output):
    """Stimuli anywhere within a sample, marked at the first sample from each (the
    ground truth keeps the exact times); the latencies and the rest of the physiology
    as on the sampling clock; sweeps start on the markers' samples."""
    fs = SMALL["fs_hz"]
    own = simulate_study("healthy-edc", mode="stimulated", seed=2, output=output, stimulator_clock="own", **SMALL)
    sampled = simulate_study("healthy-edc", mode="stimulated", seed=2, output=output, **SMALL)
    for rec, ref in zip(own.recordings, sampled.recordings):
        gt, markers = rec.ground_truth, rec.stimulus_times_s
        lag = (markers - gt.discharge_times_s) * fs
        assert np.all((lag >= 0) & (lag < 1)) and np.std(lag) > 0.2  # spread over the sample
        np.testing.assert_allclose(markers * fs, np.round(markers * fs), atol=1e-6)
        np.testing.assert_allclose(gt.endplate_latency_s, ref.ground_truth.endplate_latency_s)
        if output == "sweeps":
            np.testing.assert_allclose(rec.sweep_start_times_s, markers - 2e-3)
    with pytest.raises(SfemgInputError, match="stimulator_clock"):
        simulate_study("healthy-edc", mode="stimulated", stimulator_clock="internal", **SMALL)
    # the ground truth alone (render=False) is the rendered study's, own clock and all
    alone = simulate_study("healthy-edc", mode="stimulated", seed=2, output=output, stimulator_clock="own",
                           render=False, **SMALL)
    for gt, rec in zip(alone.ground_truths, own.recordings):
        np.testing.assert_array_equal(gt.discharge_times_s, rec.ground_truth.discharge_times_s)
        np.testing.assert_array_equal(gt.event_times_s, rec.ground_truth.event_times_s)


@pytest.mark.parametrize("rate_hz, fs_hz", [(7.0, 50_000.0), (3.0, 25_000.0), (10.0, 100_000.0)])
def test_stimuli_on_the_sampling_clock_fall_on_samples(rate_hz, fs_hz):
    """Whatever the rate: a period that is no whole number of samples (7 Hz at 50 kHz)
    had put the stimuli up to 0.43 sample off the grid, where the bare-step artefact
    reads alike at every phase, and the exact markers were taken for 5.5 µs of scatter
    (MCD +3 to +17 %)."""
    study = simulate_study("healthy-edc", mode="stimulated", seed=2, rate_hz=rate_hz,
                           **dict(SMALL, fs_hz=fs_hz))
    for rec in study.recordings:
        samples = rec.stimulus_times_s * fs_hz
        np.testing.assert_allclose(samples, np.round(samples), atol=1e-6)
        np.testing.assert_array_equal(rec.stimulus_times_s, rec.ground_truth.discharge_times_s)


def test_the_sampling_clocks_artefact_is_the_bare_step():
    """The artefact on the sampling clock is the simulator's first (every simulated
    stimulated study of it is as it was); the own clock's passes the converter's
    anti-alias filter, so that a stimulus within a sample moves its samples."""
    from sfemg.synthesis.study import _stimulus_artefact
    bare = _stimulus_artefact(1e-6)
    t = np.arange(bare.waveform_v.size) * 1e-6
    np.testing.assert_array_equal(bare.waveform_v, 5e-3 * np.exp(-t / 0.1e-3) * (t > 0))
    smooth = _stimulus_artefact(1e-6, 50_000.0).waveform_v
    assert smooth[1] < 0.05 * bare.waveform_v[1] and np.abs(np.diff(smooth)).max() < 0.2 * 5e-3


def test_sweep_output_windows_each_discharge():
    study = simulate_study("healthy-edc", output="sweeps", seed=3, **SMALL)
    rec = study.recordings[0]
    assert rec.signal_v is None and rec.sweeps_v.shape == (30, 500)  # 10 ms at 50 kHz
    trigger_in_sweep = rec.ground_truth.event_times_s[0] - rec.sweep_start_times_s
    present = np.isfinite(trigger_in_sweep)
    np.testing.assert_allclose(trigger_in_sweep[present], 2e-3)  # triggered on the trigger potential


def test_concentric_electrode_is_lower_amplitude_and_lower_noise():
    sfe = simulate_study("healthy-edc", seed=4, electrode="sfe", **SMALL)
    cne = simulate_study("healthy-edc", seed=4, electrode="concentric", **SMALL)
    assert cne.params.amplifier.highpass_hz == 1000.0
    assert np.ptp(cne.recordings[0].signal_v) < np.ptp(sfe.recordings[0].signal_v)


def test_every_preset_simulates():
    for name in PRESETS:
        study = simulate_study(name, n_recordings=1, n_discharges=5, seed=0)
        assert study.recordings[0].ground_truth.event_times_s.shape == (2, 5)


@pytest.mark.parametrize("kwargs,match", [
    ({"preset": "no-such"}, "unknown preset"),
    ({"muscle": "biceps-of-doom"}, "unknown muscle"),
    ({"rate_hz": -5.0}, "rate_hz"),
    ({"fs_hz": 15_000.0}, "too low"),
    ({"n_recordings": 0}, "n_recordings"),
    ({"n_discharges": 1}, "n_discharges"),
    ({"mode": "telepathic"}, "mode"),
    ({"electrode": "spoon"}, "electrode"),
    ({"fibres_per_recording": 1}, "fibres_per_recording"),
    ({"seed": -1}, "seed"),
    ({"warp_factor": 9}, "unknown parameter"),
    ({"output": "sweeps", "sweep_window_s": 0.2}, "sweep_window_s"),
    # a researcher's review: an AttributeError or TypeError from deep inside, each
    ({"disease": {"complement_lysis": 0.3}}, "disease must be a Disease"),
    ({"nmj": None}, "nmj must be a NMJParams"),
    ({"fs_hz": "50000"}, "fs_hz must be a number > 0"),
    ({"preset": ["healthy-edc"]}, "unknown preset"),
    ({"muscle": 5}, "muscle must be a name"),
])
def test_impossible_parameters_are_refused(kwargs, match):
    with pytest.raises(SfemgInputError, match=match):
        simulate_study(**{**SMALL, **kwargs})


def test_streamed_file_holds_the_same_bits_as_the_in_memory_study(tmp_path):
    from sfemg.io import load_recordings, save_recordings
    from sfemg.synthesis import study_params, write_study

    kwargs = dict(n_recordings=2, n_discharges=40, fs_hz=25_000.0)
    study = simulate_study("achr-mg-moderate", seed=3, **kwargs)
    save_recordings(tmp_path / "memory.h5", study.recordings)
    streamed = write_study(tmp_path / "stream.h5", study_params("achr-mg-moderate", **kwargs), seed=3,
                           chunk_s=0.7, n_jobs=2)
    assert streamed.seed == study.seed
    for a, b in zip(load_recordings(tmp_path / "memory.h5"), load_recordings(tmp_path / "stream.h5")):
        assert a.name == b.name and a.signal_v.tobytes() == b.signal_v.tobytes()
        assert a.ground_truth.event_times_s.tobytes() == b.ground_truth.event_times_s.tobytes()


def test_streamed_sweeps_and_refusals(tmp_path):
    from sfemg.io import load_recordings
    from sfemg.synthesis import study_params, write_study

    params = study_params("healthy-edc", mode="stimulated", output="sweeps", **SMALL)
    write_study(tmp_path / "s.h5", params, seed=1)
    assert load_recordings(tmp_path / "s.h5")[0].sweeps_v.shape == (30, 500)
    with pytest.raises(SfemgInputError, match="exists"):
        write_study(tmp_path / "s.h5", params, seed=1)
    with pytest.raises(SfemgInputError, match="chunk_s"):
        write_study(tmp_path / "t.h5", params, seed=1, chunk_s=0.0)
    with pytest.raises(SfemgInputError, match="n_jobs"):
        write_study(tmp_path / "t.h5", params, seed=1, n_jobs=0)
    assert not (tmp_path / "t.h5").exists()


def test_latencies_are_physical():
    for preset in ("healthy-edc", "achr-mg-severe"):
        gt = simulate_study(preset, seed=5, render=False, fibres_per_recording=3, **SMALL).ground_truths[0]
        assert np.all(gt.fibres["axonal_delay_s"] >= 1e-3 - 1e-12)
        assert np.all(gt.endplate_latency_s[~gt.blocked] > 1e-3)
        assert np.all(np.nan_to_num(gt.event_times_s - gt.discharge_times_s, nan=1.0) > 1e-3)


def test_an_error_stops_the_recordings_running_beside_it():
    """A failed recording or Ctrl-C waited for the recordings already running: SIGTERM on
    two hour-long recordings took 7-8 s to end ``sfemg simulate`` (found in review). The
    stop event tells long tasks to end at their next chunk."""
    import threading

    from sfemg.synthesis import study_params
    from sfemg.synthesis.study import _run

    stop, started, seen = threading.Event(), threading.Event(), []

    def task(i, seq):
        if i == 1:
            started.set()
            seen.append(stop.wait(10.0))  # the long recording, still running
            return None
        started.wait(10.0)
        raise SfemgInputError("recording 1 failed")  # (as Ctrl-C in the waiting thread would)

    params = study_params("healthy-edc", n_recordings=2)
    with pytest.raises(SfemgInputError, match="recording 1 failed"):
        _run(params, 1, 2, None, task, stop)
    assert seen == [True]
