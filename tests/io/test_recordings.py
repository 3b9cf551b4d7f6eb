"""HDF5 storage of recordings: a round trip per element, foreign files, damage, atomicity."""

import json

import h5py
import numpy as np
import pytest

from sfemg import Recording, SfemgInputError
from sfemg.io import list_recordings, load_parameters, load_provenance, load_recordings, save_recordings
from sfemg.io import schema as S
from sfemg.synthesis import simulate_study


@pytest.fixture(scope="module")
def study():
    return simulate_study("achr-mg-moderate", n_recordings=2, n_discharges=20, seed=5)


def test_round_trip_signal_ground_truth_parameters_provenance(tmp_path, study):
    path = tmp_path / "s.h5"
    save_recordings(path, study.recordings, parameters=study.params.to_dict(),
                    provenance=study.provenance())
    back = load_recordings(path)
    assert [r.name for r in back] == [r.name for r in study.recordings]
    for a, b in zip(study.recordings, back):
        # signals are stored as float32 (quantisation ~1e-7 relative, far below any noise)
        np.testing.assert_array_equal(b.signal_v, a.signal_v.astype(np.float32))
        assert (b.fs_hz, b.mode, b.electrode, b.muscle) == (a.fs_hz, a.mode, a.electrode, a.muscle)
        ga, gb = a.ground_truth, b.ground_truth
        for name in ("discharge_times_s", "event_times_s", "endplate_latency_s", "blocked",
                     "epp_amplitude_v", "threshold_v", "safety_factor", "quantal_content"):
            np.testing.assert_array_equal(getattr(gb, name), getattr(ga, name))
        assert gb.trigger_fibre == ga.trigger_fibre
        assert set(gb.fibres) == set(ga.fibres)
        for key in ga.fibres:
            np.testing.assert_array_equal(gb.fibres[key], ga.fibres[key])
    assert load_parameters(path) == json.loads(json.dumps(study.params.to_dict()))
    prov = load_provenance(path)
    assert prov["seed"] == study.seed and prov["sfemg_version"]


def test_round_trip_sweeps_and_stimuli(tmp_path):
    study = simulate_study("healthy-edc", mode="stimulated", output="sweeps", n_recordings=1,
                           n_discharges=10, seed=2)
    path = tmp_path / "sw.h5"
    save_recordings(path, study.recordings)
    a, b = study.recordings[0], load_recordings(path)[0]
    np.testing.assert_array_equal(b.sweeps_v, a.sweeps_v.astype(np.float32))
    np.testing.assert_array_equal(b.sweep_start_times_s, a.sweep_start_times_s)
    np.testing.assert_array_equal(b.stimulus_times_s, a.stimulus_times_s)


def test_every_group_carries_encoding_attributes(tmp_path, study):
    path = tmp_path / "s.h5"
    save_recordings(path, study.recordings, parameters={}, provenance={"seed": 1})
    with h5py.File(path) as h5:
        assert h5.attrs[S.ROOT_SCHEMA_VERSION_ATTR] == S.SCHEMA_VERSION
        groups = []
        h5.visititems(lambda name, obj: groups.append(obj) if isinstance(obj, h5py.Group) else None)
        for g in [h5] + groups:
            assert S.ENCODING_TYPE in g.attrs and S.ENCODING_VERSION in g.attrs, g.name


def test_foreign_file_with_only_a_signal(tmp_path):
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as h5:
        d = h5.create_dataset("recordings/site1/signal", data=np.sin(np.arange(1000.0)) * 1e-4)
        d.attrs["sampling_rate_hz"] = 25_000
        g = h5.create_group("recordings/site2")
        d = g.create_dataset("signal", data=(np.arange(500) % 7).astype(np.int16))
        d.attrs["sampling_rate_hz"] = 25_000
        d.attrs["scale_v_per_count"] = 1e-6
        g.create_dataset("stimulus_times_s", data=[0.001, 0.011])
    recs = load_recordings(path)
    assert recs[0].mode == "voluntary" and recs[0].ground_truth is None
    assert recs[1].mode == "stimulated" and recs[1].signal_v[3] == pytest.approx(3e-6)


def test_text_attributes_written_as_one_element_arrays_are_their_text(tmp_path):
    """R's rhdf5 and MATLAB write a text attribute as a one-element array: mode and
    electrode were refused as "[b'stimulated']", the muscle taken as "[b'edc']" and no
    limits found for it (a foreign-data review)."""
    path = tmp_path / "r.h5"
    with h5py.File(path, "w") as h5:
        g = h5.create_group("recordings/a")
        g.create_dataset("signal", data=np.sin(np.arange(1000.0)) * 1e-4)
        g.create_dataset("stimulus_times_s", data=[0.001, 0.011])
        g.attrs["sampling_rate_hz"] = 25_000
        g.attrs["mode"] = np.array([b"stimulated"])
        g.attrs["electrode"] = np.array(["concentric"], dtype=h5py.string_dtype())
        g.attrs["muscle"] = np.array([b"edc"], dtype="S3")
    (rec,) = load_recordings(path)
    assert (rec.mode, rec.electrode, rec.muscle) == ("stimulated", "concentric", "edc")


def test_the_adc_scale_may_sit_on_the_recording_like_the_sampling_rate(tmp_path):
    """Found by a new user's review: ``sampling_rate_hz`` was read from the recording's
    group too, ``scale_v_per_count`` only from the dataset."""
    path = tmp_path / "adc.h5"
    with h5py.File(path, "w") as h5:
        g = h5.create_group("recordings/a")
        g.create_dataset("signal", data=np.arange(100, dtype=np.int16))
        g.attrs["sampling_rate_hz"] = 25_000
        g.attrs["scale_v_per_count"] = 1e-6
    assert load_recordings(path)[0].signal_v[3] == pytest.approx(3e-6)


def test_integer_adc_data_without_scale_is_refused(tmp_path):
    path = tmp_path / "adc.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("recordings/a/signal", data=np.arange(100, dtype=np.int16)).attrs[
            "sampling_rate_hz"] = 25_000
    with pytest.raises(SfemgInputError, match="integer ADC data"):
        load_recordings(path)


def _rates_on_signal_and_group(signal_hz, group_hz):
    def build(h5):
        h5.create_dataset("recordings/a/signal", data=np.zeros(10)).attrs["sampling_rate_hz"] = signal_hz
        h5["recordings/a"].attrs["sampling_rate_hz"] = group_hz
    return build


@pytest.mark.parametrize("signal_hz,group_hz", [(25_000, 25_000.0), (np.float32(1e5 / 3), 1e5 / 3)])
def test_the_same_sampling_rate_may_be_stated_twice(tmp_path, signal_hz, group_hz):
    """... as an integer and a float, or in float32 and float64 (not equal to the bit)."""
    path = tmp_path / "twice.h5"
    with h5py.File(path, "w") as h5:
        _rates_on_signal_and_group(signal_hz, group_hz)(h5)
    assert load_recordings(path)[0].fs_hz == pytest.approx(group_hz, rel=1e-6)


@pytest.mark.parametrize("build,match", [
    (lambda h5: h5.create_group("other"), "no '/recordings' group"),
    (lambda h5: h5.create_group("recordings"), "holds no recordings"),
    (lambda h5: h5.create_group("recordings/a"), "no 'signal' or 'sweeps'"),
    (lambda h5: h5.create_dataset("recordings/a/signal", data=np.zeros(10)), "sampling_rate_hz"),
    (lambda h5: h5.create_dataset("recordings/a/signal", data=np.zeros((3, 3))).attrs.create(
        "sampling_rate_hz", 1e4), "1-D"),
    (lambda h5: h5.create_dataset("recordings/a/signal", data=np.full(10, np.nan)).attrs.create(
        "sampling_rate_hz", 1e4), "NaN"),
    (lambda h5: h5.create_dataset("recordings/a/signal", data=np.zeros(1)).attrs.create(
        "sampling_rate_hz", 1e4), "1 sample"),
    (lambda h5: h5.create_dataset("recordings/a/signal", data=np.zeros(10)).attrs.create(
        "sampling_rate_hz", -5.0), "sampling_rate_hz"),
    # found in review (a clinician's exports): each was silent, or said less
    (_rates_on_signal_and_group(25_000, 50_000), "'sampling_rate_hz' is 25000 on the signal and 50000 on its group"),
    (lambda h5: h5.create_dataset("recordings/a/sampling_rate_hz", data=5e4) and h5.create_dataset(
        "recordings/a/signal", data=np.zeros(10)), r"missing attribute 'sampling_rate_hz' \(found as a dataset"),
    (lambda h5: h5.create_dataset("recordings/a/signal", data=1.0).attrs.create("sampling_rate_hz", 1e4),
     "signal is a single number, not samples"),
    (lambda h5: h5.create_dataset("data/ch1", data=np.zeros(10)), "docs/hdf5.md"),
])
def test_malformed_files_give_one_line_errors(tmp_path, build, match):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as h5:
        build(h5)
    with pytest.raises(SfemgInputError, match=match) as info:
        load_recordings(path)
    assert "\n" not in str(info.value)


def test_damaged_links_and_text_are_input_errors(tmp_path, study):
    """Found by a helper's adversarial run: a dangling '/recordings' link (KeyError), a
    recording linked to itself (RuntimeError) and an attribute that is not UTF-8
    (UnicodeDecodeError) ended the study with a traceback; now the file, or only that
    recording, is refused with one line — and text not in UTF-8 (a muscle in Latin-1, as
    older tools write accents) is read with its odd bytes replaced, as the results reader
    does (it made the recording unreadable until a review found the two rules opposite)."""
    import h5py

    from sfemg.io import has_recordings, iter_recordings, list_recordings
    path = tmp_path / "links.h5"
    with h5py.File(path, "w") as h5:
        h5["recordings"] = h5py.SoftLink("/nowhere")
    with pytest.raises(SfemgInputError, match="'/recordings' cannot be opened"):
        list_recordings(path)
    with h5py.File(path, "a") as h5:
        del h5["recordings"]
        h5["recordings"] = h5py.SoftLink("/recordings")  # looping: sfemg report crashed on it
    assert not has_recordings(path)
    with pytest.raises(SfemgInputError, match="'/recordings' cannot be opened"):
        list_recordings(path)
    save_recordings(path, study.recordings[:1], force=True)
    good = study.recordings[0].name
    with h5py.File(path, "a") as h5:
        h5["recordings/loop"] = h5py.SoftLink("/recordings/loop")
        h5.copy(f"recordings/{good}", "recordings/latin1")
        h5["recordings/latin1"].attrs["muscle"] = np.bytes_(b"\xe9")  # Latin-1, not UTF-8
    outcomes = dict(iter_recordings(path))
    assert not isinstance(outcomes[good], SfemgInputError)
    assert "too many links" in str(outcomes["loop"]) and outcomes["latin1"].muscle == "\ufffd"


def test_not_hdf5_truncated_and_missing(tmp_path, study):
    text = tmp_path / "notes.h5"
    text.write_text("hello")
    with pytest.raises(SfemgInputError, match="not an HDF5 file"):
        load_recordings(text)
    with pytest.raises(SfemgInputError, match="no such file"):
        load_recordings(tmp_path / "absent.h5")
    good = tmp_path / "good.h5"
    save_recordings(good, study.recordings)
    cut = tmp_path / "cut.h5"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    with pytest.raises(SfemgInputError, match=r"cannot be read as HDF5 \(truncated file"):
        load_recordings(cut)


def test_existing_file_is_kept_without_force_and_on_failure(tmp_path, study):
    path = tmp_path / "s.h5"
    save_recordings(path, study.recordings[:1])
    before = path.read_bytes()
    with pytest.raises(SfemgInputError, match="exists"):
        save_recordings(path, study.recordings)
    assert path.read_bytes() == before
    with pytest.raises(SfemgInputError, match="unique"):
        save_recordings(path, study.recordings * 2, force=True)
    assert path.read_bytes() == before

    class Boom(Exception):
        pass

    from sfemg.io._atomic import atomic_h5
    with pytest.raises(Boom):
        with atomic_h5(path, mode="a") as h5:
            h5.create_group("half-written")
            raise Boom
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.h5"]  # no temporary left behind
    assert list_recordings(path) == [study.recordings[0].name]


def test_the_temporary_file_of_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    """SIGKILL (or the OOM killer, a power cut) gives a writer no chance to remove its
    temporary file: a hidden copy of the file stayed beside it for ever. The next write of
    that file removes it, once its process is gone and it has been left untouched for a
    while; never a live writer's, another host's or another file's."""
    import os
    import socket
    import subprocess
    import sys
    import time

    from sfemg.io._atomic import ABANDONED_AFTER_S, atomic_path

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid, host, old = int(gone.stdout), socket.gethostname(), time.time() - 2 * ABANDONED_AFTER_S
    path = tmp_path / "s.h5"
    path.write_bytes(b"results")
    left = {name: tmp_path / name for name in (
        f".s.h5.{host}.{dead_pid}.k1ll3d.tmp",       # abandoned: removed
        f".s.h5.{host}.{dead_pid}.r3cent.tmp",       # its process gone, but touched lately
        f".s.h5.{host}.{os.getpid()}.al1ve.tmp",     # a writer that runs
        f".s.h5.other-host.{dead_pid}.h0st.tmp",     # another host's (a shared file system)
        f".t.h5.{host}.{dead_pid}.0ther.tmp",        # another file's
        ".s.h5.0ldst.tmp")}                          # not sfemg's form (an earlier version's)
    for name, tmp in left.items():
        tmp.write_bytes(b"a copy")
        if "r3cent" not in name:
            os.utime(tmp, (old, old))
    with atomic_path(path) as tmp:
        tmp.write_bytes(b"new results")
    assert path.read_bytes() == b"new results"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["s.h5"] + list(left)[1:])
    # a long name still writes (with the host and pid in the temporary name it was too long; a review)
    for long in (tmp_path / ("y" * 240 + ".h5"), tmp_path / ("漢" * 84 + ".h5")):  # (255 bytes: the limit is in bytes)
        with atomic_path(long) as tmp:
            tmp.write_bytes(b"results")
        assert long.read_bytes() == b"results"


def test_recording_validation():
    with pytest.raises(SfemgInputError, match="exactly one"):
        Recording(name="x", fs_hz=1e4)
    with pytest.raises(SfemgInputError, match="real numbers"):
        Recording(name="x", fs_hz=1e4, signal_v=np.array(["a", "b"]))
    with pytest.raises(SfemgInputError, match="sweep_start_times_s"):
        Recording(name="x", fs_hz=1e4, sweeps_v=np.zeros((2, 5)))
    with pytest.raises(SfemgInputError, match="stimulus_times_s"):
        Recording(name="x", fs_hz=1e4, signal_v=np.zeros(5), mode="stimulated")
    # the mode in any case, as the electrode (found in review: "Stimulated" was refused)
    assert Recording(name="x", fs_hz=1e4, signal_v=np.zeros(5), mode=" Voluntary").mode == "voluntary"
    with pytest.raises(SfemgInputError, match="mode must be 'voluntary' or 'stimulated', not 'stim'"):
        Recording(name="x", fs_hz=1e4, signal_v=np.zeros(5), mode="stim")


def test_damaged_ground_truth_is_a_one_line_error(tmp_path, study):
    path = tmp_path / "s.h5"
    save_recordings(path, study.recordings)
    with h5py.File(path, "a") as h5:
        del h5["recordings/pair001/ground_truth/blocked"]
    with pytest.raises(SfemgInputError, match="ground truth incomplete.*blocked"):
        load_recordings(path)
    recs, problems = load_recordings(path, errors="collect")
    assert [r.name for r in recs] == ["pair002"] and "pair001" in problems
    assert load_recordings(path, with_ground_truth=False)[0].ground_truth is None
