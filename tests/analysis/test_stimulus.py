"""Stimulus times checked against the stimulus artefact (sfemg.analysis.stimulus), on
analytic stimulated recordings whose stimuli fall anywhere within a sample."""

import numpy as np
import pytest
import scipy.signal

from sfemg.analysis import AnalysisParams, analyze_recording, analyze_signal, compute_mcd
from sfemg.analysis.jitter import MCD_PER_SD
from sfemg.analysis.stimulus import time_stimuli
from sfemg.errors import SfemgInputError
from sfemg.recording import Recording
from sfemg.synthesis import simulate_study

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


def _time_artefacts(sig, stim, fs_hz, markers, choice="artefact"):
    """time_stimuli on a continuous analytic recording, the noise measured away from the
    stimuli; the stimulus times' error against the true ones, samples, mean removed."""
    x = sig[None, :]
    busy = (np.floor(stim * fs_hz).astype(np.int64)[:, None] + np.arange(-100, 400, 10)[None, :]).ravel()
    noise_sd = float(np.std(sig[: int(9e-3 * fs_hz)]))
    timing = time_stimuli(x, np.zeros(1), np.zeros(stim.size, np.int64), markers * fs_hz,
                          (x, np.zeros_like(busy), busy), fs_hz, noise_sd, choice, np.empty(0))
    errors = markers * fs_hz + timing.shifts - stim * fs_hz
    return timing, errors - errors.mean()


def test_artefact_timing_error_matches_its_reported_sd():
    """The artefact's timing SD that decides between markers and artefact is its
    Cramér–Rao bound inflated by each fit's misfit: checked against the scatter of the
    artefact times about the true stimuli (400 stimuli, an artefact of 0.2 mV so that the
    error is well above rounding). With another potential on each artefact (0.05 mV,
    within ±150 µs) the inflation raises it, though not all the way: the scatter was
    1.5-1.7 x the reported SD on seeds 0-3 (docs/analysis.md §1.3)."""
    fs = 50e3
    sig, stim, _ = synth.stimulated(fs_hz=fs, n_stimuli=400, artefact_v=0.2e-3, asynchronous=True, seed=5)
    markers = np.ceil(stim * fs) / fs
    timing, errors = _time_artefacts(sig, stim, fs, markers)
    assert timing.source == "artefact"
    reported = np.sqrt(np.mean(timing.error_var))
    assert abs(np.std(errors) / reported - 1) <= sd_ratio_tolerance(stim.size)
    assert abs(timing.marker_scatter * 1e6 / fs / (1e6 / (np.sqrt(12.0) * fs)) - 1) <= _uniform_sd_tolerance(stim.size)
    overlapped = np.zeros_like(sig)
    rng = np.random.default_rng(0)
    synth.add_potentials(overlapped, fs, stim + 120e-6 + rng.uniform(-150e-6, 150e-6, stim.size), "triphasic",
                         0.05e-3)
    timing, errors = _time_artefacts(sig + scipy.signal.sosfilt(synth.amplifier(fs), overlapped), stim, fs, markers)
    inflated = np.sqrt(np.mean(timing.error_var))
    assert 1.1 * reported < inflated < np.std(errors)


def test_markers_scattering_a_little_more_than_the_artefact_give_way():
    """The switch sits at markers scattering twice the artefact's timing SD: markers
    with 4 x its SD of Gaussian scatter are replaced, markers with 1 x are kept (their
    offsets' variance 17 and 2 times the artefact's; the estimate's relative SD ~0.12 at
    150 stimuli)."""
    fs = 50e3
    sig, stim, _ = synth.stimulated(fs_hz=fs, jitter_us=(15.0,), asynchronous=True, seed=6)
    exact, _ = _time_artefacts(sig, stim, fs, stim, "auto")
    assert exact.source == "markers"
    rng = np.random.default_rng(1)
    for times_sd, source in ((4.0, "artefact"), (1.0, "markers")):
        markers = stim + times_sd * exact.artefact_sd / fs * rng.standard_normal(stim.size)
        assert _time_artefacts(sig, stim, fs, markers, "auto")[0].source == source


def test_a_clipped_artefact_is_no_time_reference():
    """An artefact clipped by the amplifier reads differently at every sampling phase
    (its times were off by 4.7-8.6 µs SD and passed for a precise reference, taken over
    exact markers: MCD +9 to +32 %, found in review): the markers stay, unchecked, and
    asking for the artefact says why."""
    fs = 50e3
    sig, stim, truth = synth.stimulated(fs_hz=fs, jitter_us=(15.0,), asynchronous=True, seed=0)
    clipped = np.clip(sig, -1.5e-3, 1.5e-3)
    result = _analyse(clipped, fs, stim)
    assert result.stimulus_timing == "markers" and np.isnan(result.marker_scatter_us)
    assert _within_target(result.pairs[0].mcd_us, truth.mcd_s(0, None) * 1e6)
    with pytest.raises(SfemgInputError, match="unclipped artefact"):
        _analyse(clipped, fs, stim, "artefact")


@pytest.mark.parametrize("off_s", [80e-6, 300e-6])
def test_markers_off_their_stimulus_are_timed_from_the_artefact(off_s):
    """Exact markers but for four, off by 80 or 300 µs: they are found (beyond the
    others' scatter; each sweep's artefact sought ±0.5 ms by cross-correlation — the
    fit's own ±125 µs search had missed 0.2-0.35 ms, +55 to +88 %, reported as precise)
    and timed from their artefact, the rest kept; asked for, the markers all stay, the
    four count in the technical jitter with their offsets, but only in their own pairs
    (it had exceeded the MCD itself)."""
    fs = 50e3
    sig, stim, truth = synth.stimulated(fs_hz=fs, jitter_us=(15.0,), asynchronous=True, seed=0)
    markers = stim.copy()
    wrong = [20, 60, 100, 140]
    markers[wrong] += off_s * np.array([1, -1, 1, -1])
    want = truth.mcd_s(0, None) * 1e6
    result = _analyse(sig, fs, markers)
    assert result.stimulus_timing == "markers" and result.markers_off == 4
    assert _within_target(result.pairs[0].mcd_us, want)
    np.testing.assert_allclose(result.reference_times_s[wrong], stim[wrong], atol=1e-6)
    assert np.array_equal(np.delete(result.reference_times_s, wrong), np.delete(markers, wrong))
    marked = _analyse(sig, fs, markers, "markers")
    (pair,) = marked.pairs
    assert marked.markers_off == 4 and not _within_target(pair.mcd_us, want)
    assert marked.stimulus_error_us == pytest.approx(off_s * 1e6 * np.sqrt(4 / stim.size), rel=0.05)
    assert 2 * result.pairs[0].technical_jitter_us < pair.technical_jitter_us < pair.mcd_us


def test_markers_scattering_by_tens_of_microseconds():
    """Markers scattering by 60 µs (Gaussian), beyond the fit's own shift search: each
    sweep's artefact is found first (the MCD was +18 %, the reported error 4.5 µs)."""
    fs = 50e3
    sig, stim, truth = synth.stimulated(fs_hz=fs, jitter_us=(15.0,), asynchronous=True, seed=0)
    markers = stim + 60e-6 * np.random.default_rng(0).standard_normal(stim.size)
    result = _analyse(sig, fs, markers)
    assert result.stimulus_timing == "artefact" and result.marker_scatter_us == pytest.approx(60.0, rel=0.2)
    assert _within_target(result.pairs[0].mcd_us, truth.mcd_s(0, None) * 1e6)


@pytest.mark.parametrize("fs_hz", [25e3, 100e3])
def test_an_early_response_after_a_two_phase_artefact(fs_hz):
    """The artefact's onset is its first sample above 10 % of its peak: taken as the
    last quiet sample before its (second, larger) peak, at 100 kHz it fell on the zero
    crossing between its phases, 0.15 ms late, the blank with it, and a response 1.15 ms
    after the stimulus was reported as two."""
    sig, stim, truth = synth.stimulated(fs_hz=fs_hz, jitter_us=(15.0,), latencies_s=(1.15e-3,), asynchronous=True,
                                        seed=1)
    (pair,) = _analyse(sig, fs_hz, stim).pairs
    assert pair.accepted and _within_target(pair.mcd_us, truth.mcd_s(0, None) * 1e6)


def test_the_reported_error_is_of_the_analysed_stimuli():
    """A stimulus whose response window runs past the signal's end is not analysed,
    nor counted in ``stimulus_error_us`` (an untimed one there had read 1.2 µs RMS for
    ~0.1 µs)."""
    fs = 50e3
    sig, stim, _ = synth.stimulated(fs_hz=fs, n_stimuli=20, jitter_us=(15.0,), asynchronous=True, seed=1)
    result = _analyse(sig[: int((stim[-1] + 0.3e-3) * fs)], fs, np.ceil(stim * fs) / fs)
    assert result.n_discharges == 19 and result.stimulus_timing == "artefact"
    assert result.stimulus_error_us < 0.2


@pytest.mark.parametrize("seed", [0, 1])
def test_stimuli_without_an_artefact_keep_their_markers(seed):
    """The artefact missing from 30 % of the stimuli (blanked): those keep their marker,
    the others are timed from it (any misassignment between them moves latencies by
    tens of µs), and the reported error is the RMS of the two: sqrt(0.3) x the markers'
    scatter."""
    fs = 50e3
    sig, stim, truth = synth.stimulated(fs_hz=fs, jitter_us=(15.0,), asynchronous=True, seed=seed)
    quiet, _, _ = synth.stimulated(fs_hz=fs, jitter_us=(15.0,), asynchronous=True, artefact_v=0.0, seed=seed)
    missing = np.random.default_rng(seed).random(stim.size) < 0.3
    x = sig.copy()
    for k in np.flatnonzero(missing):  # the artefact's samples replaced by the same signal without it
        around = slice(int((stim[k] - 0.5e-3) * fs), int((stim[k] + 0.9e-3) * fs))
        x[around] = quiet[around]
    markers = np.ceil(stim * fs) / fs
    timing, errors = _time_artefacts(x, stim, fs, markers, "auto")
    assert timing.source == "artefact"
    assert np.all(timing.shifts[missing] == 0) and np.all(timing.shifts[~missing] != 0)
    assert np.all(np.abs(errors[~missing] - np.median(errors[~missing])) < 0.5e-6 * fs)  # 0.5 µs
    scatter = 1e6 / (np.sqrt(12.0) * fs)
    reported = np.sqrt(np.mean(timing.error_var)) / fs * 1e6
    assert abs(reported / (np.sqrt(missing.mean()) * scatter) - 1) <= 2 * _uniform_sd_tolerance(missing.sum())


def test_sweeps_starting_at_the_stimulus_are_not_checked():
    """Sweeps need 0.4 ms before the artefact's peak (half its fit segment; here the
    peak lies ~0.1 ms after the stimulus): sweeps starting at the stimulus keep their
    markers, unchecked; from 0.3 ms before it they are timed from the artefact."""
    fs = 50e3
    sig, stim, truth = synth.stimulated(fs_hz=fs, jitter_us=(20.0,), asynchronous=True, seed=4)
    markers = np.ceil(stim * fs) / fs
    for pre_s, source in ((0.0, "markers"), (0.3e-3, "artefact")):
        starts = np.floor(markers * fs).astype(int) - int(round(pre_s * fs))
        rec = Recording(name="sw", fs_hz=fs, sweeps_v=sig[starts[:, None] + np.arange(int(8e-3 * fs))],
                        sweep_start_times_s=starts / fs, stimulus_times_s=markers, mode="stimulated")
        result = analyze_recording(rec)
        assert result.stimulus_timing == source
        assert np.isnan(result.marker_scatter_us) == (source == "markers")


@pytest.mark.parametrize("delay_s", [0.2e-3, 0.5e-3])
@pytest.mark.parametrize("nearest_sample", [False, True])
def test_markers_a_constant_delay_before_the_artefact(delay_s, nearest_sample):
    """Markers a constant delay before the stimulus (a trigger's delay to the pulse),
    exact or taken at the nearest sample: the artefact is found where it typically lies,
    the latencies stay in the markers' frame (longer by the delay, less the half sample
    by which markers at the nearest sample lag on average) and meet the target; the
    blank starts where the artefact begins (from 0.5 ms early its tail passed the blank
    and was read as responses: MCD -17 to -35 %, rejected)."""
    fs = 50e3
    sig, stim, truth = synth.stimulated(fs_hz=fs, jitter_us=(15.0,), asynchronous=True, seed=2)
    markers = np.ceil((stim - delay_s) * fs) / fs if nearest_sample else stim - delay_s
    result = _analyse(sig, fs, markers)
    assert result.stimulus_timing == ("artefact" if nearest_sample else "markers")
    (pair,) = result.pairs
    assert pair.accepted and _within_target(pair.mcd_us, truth.mcd_s(0, None) * 1e6)
    from_stimuli = _analyse(sig, fs, stim).pairs[0].mean_ipi_us
    lag_us = 1e6 / (2 * fs) if nearest_sample else 0.0
    assert pair.mean_ipi_us - from_stimuli == pytest.approx(delay_s * 1e6 - lag_us, abs=2.0)


def test_bad_choice_is_refused():
    with pytest.raises(SfemgInputError, match="stimulus_timing"):
        AnalysisParams(stimulus_timing="trigger")


def test_a_simulated_stimulator_on_its_own_clock():
    """The simulator's stimulator on its own clock (``stimulator_clock="own"``: stimuli
    anywhere within a sample, marked at the next sample; its artefact through the
    anti-alias low-pass): every recording is timed from its artefact, the markers'
    scatter reads 1/(sqrt(12) fs) within its estimator's spread, and the MCDs meet the
    30 dB target as on the sampling clock (10 of 10 here, 9 on the sampling clock);
    from the markers, 1 of 10 did."""
    fs = 50e3
    study = simulate_study("healthy-edc", n_recordings=10, n_discharges=100, seed=1, mode="stimulated",
                           stimulator_clock="own", fs_hz=fs)
    scatter = 1e6 / (np.sqrt(12.0) * fs)
    within = {"auto": 0, "markers": 0}
    for rec in study.recordings:
        gt, markers = rec.ground_truth, np.asarray(rec.stimulus_times_s)
        for choice in within:
            result = analyze_recording(rec, AnalysisParams(stimulus_timing=choice))
            k = np.abs(markers[:, None] - result.reference_times_s[None, :]).argmin(axis=0)
            latency_s = gt.event_times_s[0][k] - gt.discharge_times_s[k]
            true_us = compute_mcd(latency_s) * 1e6
            pair = min(result.pairs, key=lambda p: abs(p.mean_ipi_us * 1e-6 - np.nanmean(latency_s)))
            within[choice] += _within_target(pair.mcd_us, true_us)
            assert abs(result.marker_scatter_us / scatter - 1) <= _uniform_sd_tolerance(markers.size)
            assert result.stimulus_timing == ("artefact" if choice == "auto" else "markers")
    assert within["auto"] >= 9 and within["markers"] <= 3
