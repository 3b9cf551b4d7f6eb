"""Fixtures for the display tests: hand-made results with known content, and one small
simulated-and-analysed study with ground truth."""

import numpy as np
import pytest

from sfemg.analysis import PairResult, RecordingResult, StudyResult, study_verdict

FS_HZ = 50_000.0
#: Discharges per hand-made recording, and the ones in which the timed potential is blocked.
N_DISCHARGES = 40
BLOCKED = (5, 12, 30)
#: Hand-made pairs per study: the clinical study size, where labels must not overlap.
N_STUDY_PAIRS = 20


def _potential(t_s, centre_s, amplitude_v):
    """A biphasic single-fibre-like potential (derivative of a Gaussian), V."""
    z = (t_s - centre_s) / 60e-6
    return amplitude_v * -z * np.exp(0.5 - 0.5 * z * z)


def make_recording_result(name="rec01", *, jitter_us=30.0, blocked=BLOCKED, accepted=True,
                          mode="voluntary", seed=0):
    """A RecordingResult with one pair: trigger at 0 ms, timed potential near 1 ms."""
    rng = np.random.default_rng(seed)
    t = np.arange(-100, 300) / FS_HZ
    ref = np.cumsum(rng.normal(0.1, 0.01, N_DISCHARGES))
    ipi = 1e-3 + rng.normal(0, jitter_us * 1e-6 / 1.13, N_DISCHARGES)
    block = np.zeros(N_DISCHARGES, bool)
    block[list(blocked)] = True
    ipi[block] = np.nan
    sweeps = np.array([_potential(t, 0.0, 1e-3) + (0 if b else _potential(t, i, 0.6e-3))
                       + rng.normal(0, 10e-6, t.size) for i, b in zip(ipi, block)])
    mcd = float(np.nanmean(np.abs(np.diff(ipi)))) * 1e6
    pair = PairResult(
        fibre=1, label="P1-P2", mcd_us=mcd, msd_us=mcd * 0.97, mcd_msd_ratio=1 / 0.97,
        jitter_us=mcd, mean_ipi_us=float(np.nanmean(ipi)) * 1e6, technical_jitter_us=1.2, mcd_uncertainty_us=0.37,
        blocking_percent=100.0 * block.mean(), n_discharges=N_DISCHARGES,
        n_blocked=int(block.sum()), accepted=accepted,
        reject_reasons=() if accepted else ("rise time 341 µs not below 300 µs",),
        flags=("flip-flop",) if not accepted else (), amplitude_v=1.2e-3, rise_time_us=110.0,
        ipis_s=ipi, idis_s=np.r_[np.nan, np.diff(ref)], blocked=block, reference_times_s=ref,
        time_points_s=ref + ipi)
    return RecordingResult(
        name=name, mode=mode, fs_hz=FS_HZ, method="template", pairs=(pair,),
        reference_times_s=ref, idis_s=np.r_[np.nan, np.diff(ref)], noise_rms_v=10e-6,
        potential_latencies_s=np.array([0.0, 1e-3]), timing_sd_s=np.array([1e-6, 1e-6]),
        templates_v=np.zeros((2, 10)), template_time_s=np.arange(10) / FS_HZ,
        aligned_sweeps_v=sweeps, sweep_time_s=t, trigger_fibre=0, muscle="edc",
        electrode="concentric")


@pytest.fixture(scope="session")
def recording_result():
    return make_recording_result()


@pytest.fixture(scope="session")
def study_result():
    """20 pairs: jitter 10-140 µs; every 4th blocks; pairs 7 and 15 rejected."""
    recs = tuple(make_recording_result(f"pair{i + 1:03d}", jitter_us=10 + 7 * i,
                                       blocked=BLOCKED if i % 4 == 3 else (),
                                       accepted=i not in (6, 14), seed=i)
                 for i in range(N_STUDY_PAIRS))
    study = study_verdict([p for r in recs for p in r.pairs], muscle="edc",
                          electrode="concentric", activation="voluntary")
    return StudyResult(recordings=recs, study=study, source="made-up.h5")


@pytest.fixture(scope="session")
def simulated():
    """A small simulated myasthenic study (with ground truth) and its analysis."""
    from sfemg.analysis import analyze_recordings
    from sfemg.synthesis import simulate_study

    study = simulate_study("achr-mg-moderate", n_recordings=4, n_discharges=60,
                           electrode="concentric", seed=3)
    return study, analyze_recordings(study.recordings)
