"""Stimulus times checked against the stimulus artefact (sfemg.analysis.stimulus), on
analytic stimulated recordings whose stimuli fall anywhere within a sample."""

import numpy as np
import pytest

from sfemg.analysis import AnalysisParams, analyze_recording, analyze_signal
from sfemg.analysis.jitter import MCD_PER_SD
from sfemg.analysis.stimulus import time_stimuli
from sfemg.errors import SfemgInputError
from sfemg.recording import Recording

from . import synth
from .tolerances import MCD_ABS_US_30DB, MCD_REL_30DB, N_SD, sd_ratio_tolerance


def _within_target(mcd_us, want_us):
    return abs(mcd_us - want_us) <= max(MCD_ABS_US_30DB, MCD_REL_30DB * want_us)


def _analyse(sig, fs_hz, markers, choice="auto"):
    return analyze_signal(sig, fs_hz, mode="stimulated", stimulus_times_s=markers,
                          params=AnalysisParams(stimulus_timing=choice))


def _uniform_sd_tolerance(n):
    """Allowed |sample SD / true SD - 1| for n values spread evenly over an interval: the
    sample variance has relative SD sqrt((kurtosis - 1) / n), kurtosis 1.8, and the SD half
    of that; N_SD of those (n = 150: 0.15)."""
    return N_SD * 0.5 * np.sqrt(0.8 / n)


@pytest.mark.parametrize("fs_hz", [25e3, 50e3, 100e3])
@pytest.mark.parametrize("seed", [0, 1])
def test_markers_taken_at_the_nearest_sample_give_way_to_the_artefact(fs_hz, seed):
    """A free-running stimulator's pulses taken at the sample that follows them: the
    markers lag the stimuli by anything within one sample (SD 1 / (sqrt(12) fs): 11.5,
    5.8, 2.9 µs). Measured from the markers the MCD of a 15 µs endplate came out +6 to
    +40 %; from the artefact it meets the issue's 30 dB target, and the markers' scatter
    is reported."""
    sig, stim, truth = synth.stimulated(fs_hz=fs_hz, jitter_us=(15.0,), asynchronous=True, seed=seed)
    markers = np.ceil(stim * fs_hz) / fs_hz
    want = truth.mcd_s(0, None) * 1e6
    result = _analyse(sig, fs_hz, markers)
    (pair,) = result.pairs
    assert result.stimulus_timing == "artefact"
    assert _within_target(pair.mcd_us, want)
    scatter = 1e6 / (np.sqrt(12.0) * fs_hz)
    assert abs(result.marker_scatter_us / scatter - 1) <= _uniform_sd_tolerance(stim.size)
    assert result.stimulus_error_us < 0.05 * scatter
    # latencies are from the markers' frame: the artefact times moved by their median offset
    np.testing.assert_allclose(np.median(result.reference_times_s - markers), 0.0, atol=1e-9)
    # the markers as given, by choice: the MCD misses the target at 25-50 kHz (the test
    # above can fail; +2.7 % at 100 kHz seed 1, where the scatter is 2.9 µs), and the
    # technical jitter and the MCD's uncertainty count their scatter
    marked = _analyse(sig, fs_hz, markers, "markers")
    (marked_pair,) = marked.pairs
    assert marked.stimulus_timing == "markers"
    assert marked.marker_scatter_us == pytest.approx(result.marker_scatter_us)
    assert fs_hz > 50e3 or not _within_target(marked_pair.mcd_us, want)
    assert marked_pair.technical_jitter_us >= MCD_PER_SD * result.marker_scatter_us
    assert marked_pair.mcd_uncertainty_us > 3 * pair.mcd_uncertainty_us


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_markers_are_kept(seed):
    """Markers at the true stimulus times: they scatter about the artefact by its own
    timing error only, and are kept, so every latency is what it was without the check
    (bit for bit: the shift added is 0)."""
    fs = 50e3
    sig, stim, truth = synth.stimulated(fs_hz=fs, jitter_us=(15.0,), asynchronous=True, seed=seed)
    result = _analyse(sig, fs, stim)
    marked = _analyse(sig, fs, stim, "markers")
    assert result.stimulus_timing == "markers"
    np.testing.assert_array_equal(result.pairs[0].ipis_s, marked.pairs[0].ipis_s)
    np.testing.assert_array_equal(result.reference_times_s, stim)
    assert result.marker_scatter_us < 0.2
    assert _within_target(result.pairs[0].mcd_us, truth.mcd_s(0, None) * 1e6)
    forced = _analyse(sig, fs, stim, "artefact")
    assert forced.stimulus_timing == "artefact"
    assert _within_target(forced.pairs[0].mcd_us, truth.mcd_s(0, None) * 1e6)


def test_no_artefact_leaves_the_markers_unchecked():
    """Without an artefact (blanked by the amplifier, or removed) the markers are taken
    as exact, as before; asking for the artefact is a one-line error."""
    fs = 50e3
    sig, stim, _ = synth.stimulated(fs_hz=fs, artefact_v=0.0, asynchronous=True, seed=3)
    result = _analyse(sig, fs, stim)
    assert result.stimulus_timing == "markers"
    assert np.isnan(result.marker_scatter_us) and np.isnan(result.stimulus_error_us)
    with pytest.raises(SfemgInputError, match="artefact: its peak-to-peak is"):
        _analyse(sig, fs, stim, "artefact")


def test_sweeps_with_coarse_markers():
    """Windowed input: the artefact is timed in each sweep as recorded."""
    fs = 50e3
    sig, stim, truth = synth.stimulated(fs_hz=fs, jitter_us=(20.0,), asynchronous=True, seed=4)
    pre, n_cols = int(1e-3 * fs), int(8e-3 * fs)
    starts = np.floor(stim * fs).astype(int) - pre
    markers = np.ceil(stim * fs) / fs
    rec = Recording(name="sw", fs_hz=fs, sweeps_v=sig[starts[:, None] + np.arange(n_cols)],
                    sweep_start_times_s=starts / fs, stimulus_times_s=markers, mode="stimulated")
    result = analyze_recording(rec)
    assert result.stimulus_timing == "artefact"
    assert _within_target(result.pairs[0].mcd_us, truth.mcd_s(0, None) * 1e6)
    marked = analyze_recording(rec, AnalysisParams(stimulus_timing="markers"))
    assert not _within_target(marked.pairs[0].mcd_us, truth.mcd_s(0, None) * 1e6)


def test_artefact_timing_error_matches_its_reported_sd():
    """The artefact's timing SD that decides between markers and artefact is its
    Cramér–Rao bound inflated by its misfit: checked against the scatter of the artefact
    times about the true stimuli (400 stimuli, 10 dB less signal than the defaults so
    that the error is well above rounding)."""
    fs = 50e3
    sig, stim, _ = synth.stimulated(fs_hz=fs, n_stimuli=400, artefact_v=0.2e-3, asynchronous=True, seed=5)
    x = sig[None, :]
    busy = (np.floor(stim * fs).astype(np.int64)[:, None] + np.arange(-100, 400, 10)[None, :]).ravel()
    noise_sd = float(np.std(sig[: int(9e-3 * fs)]))
    markers = np.ceil(stim * fs)
    timing = time_stimuli(x, np.zeros(stim.size, np.int64), markers, x, np.zeros_like(busy), busy, fs,
                          noise_sd, "artefact")
    errors = markers + timing.shifts - stim * fs
    errors -= errors.mean()
    assert abs(np.std(errors) / timing.artefact_sd - 1) <= sd_ratio_tolerance(stim.size)
    assert timing.source == "artefact" and timing.error_var == pytest.approx(timing.artefact_sd ** 2)


def test_bad_choice_is_refused():
    with pytest.raises(SfemgInputError, match="stimulus_timing"):
        AnalysisParams(stimulus_timing="trigger")
