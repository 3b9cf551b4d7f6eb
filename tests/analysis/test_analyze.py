"""analyze_signal / analyze_recording on analytic recordings with planted jitter and blocks."""

import dataclasses
import re

import numpy as np
import pytest
import scipy.signal
import scipy.stats

from sfemg.analysis import AnalysisParams, analyze_recording, analyze_signal, compute_mcd
from sfemg.analysis.core import _FAILURES_MIN
from sfemg.analysis.detect import LockedPotential
from sfemg.analysis.jitter import mcd_gradient
from sfemg.analysis.joint import joint_positions as _joint_positions
from sfemg.analysis.potentials import Timed, waveform_shape
from sfemg.analysis.references import _FALSE_REFERENCE_PRIOR, _SPLIT_ODDS, _splits_an_interval, _unit_elsewhere
from sfemg.analysis.refine import TimingErrors
from sfemg.analysis.selection import _is_phase
from sfemg.analysis.sweeps import Sweeps, _bridge, preceding_intervals, subset_sweeps
from sfemg.errors import SfemgInputError
from sfemg.recording import Recording
from sfemg.synthesis import simulate_study

from . import synth
from .tolerances import CRB_REL, MCD_ABS_US_20DB, MCD_ABS_US_30DB, MCD_REL_20DB, MCD_REL_30DB, sd_ratio_tolerance


def matched(result, truth):
    """Index of the true discharge behind each analysed one (nearest trigger / response time)."""
    return np.abs(truth.times_s[0][:, None] - result.reference_times_s[None, :]).argmin(axis=0)


def true_fibre(pair, result, truth):
    """The planted fibre whose mean latency matches the pair's mean IPI."""
    k = matched(result, truth)
    ref = truth.times_s[0][k] if result.mode == "voluntary" else truth.reference_s[k]
    mean_ipi = np.nanmean(truth.times_s[:, k] - ref, axis=1)
    start = 1 if result.mode == "voluntary" else 0
    return start + int(np.argmin(np.abs(mean_ipi[start:] - pair.mean_ipi_us * 1e-6)))


def true_mcd_us(pair, result, truth):
    k = matched(result, truth)
    f = true_fibre(pair, result, truth)
    base = truth.times_s[0][k] if result.mode == "voluntary" else truth.reference_s[k]
    d = np.abs(np.diff(truth.times_s[f][k] - base))
    return float(np.nanmean(d)) * 1e6


@pytest.mark.parametrize("fs_hz", [25e3, 50e3, 100e3])
@pytest.mark.parametrize("snr_db,abs_us,rel", [(30, MCD_ABS_US_30DB, MCD_REL_30DB),
                                               (20, MCD_ABS_US_20DB, MCD_REL_20DB)])
def test_voluntary_mcd_recovers_planted_jitter(fs_hz, snr_db, abs_us, rel):
    for seed, jitter_us in enumerate((20.0, 60.0)):
        sig, truth = synth.voluntary(fs_hz=fs_hz, n_discharges=150, snr_db=snr_db,
                                     jitter_us=(jitter_us,), seed=seed)
        r = analyze_signal(sig, fs_hz)
        assert r.n_discharges == 150 and len(r.pairs) == 1
        p = r.pairs[0]
        want = true_mcd_us(p, r, truth)
        assert abs(p.mcd_us - want) <= max(abs_us, rel * want), (p.mcd_us, want)
        assert p.n_blocked == 0 and p.accepted and p.flags == ()
        assert p.mean_ipi_us == pytest.approx(1000, abs=60)  # peak of a biphasic phase: ±35 µs


@pytest.mark.parametrize("snr_db", [30, 40])
@pytest.mark.parametrize("fs_hz", [25e3, 50e3, 100e3])
def test_technical_jitter_reaches_cramer_rao_bound(fs_hz, snr_db):
    """At 25 kHz and 40 dB the potentials are aliased and the bound is 0.01 sample: the
    image-aware refit must converge, not stop after a fixed two rounds (ratio 1.2 then)."""
    sig, truth = synth.voluntary(fs_hz=fs_hz, n_discharges=1000, rate_hz=40, snr_db=snr_db,
                                 jitter_us=(0.0,), seed=7)
    p = analyze_signal(sig, fs_hz).pairs[0]
    assert abs(p.mcd_us / p.technical_jitter_us - 1) <= CRB_REL, (p.mcd_us, p.technical_jitter_us)
    assert "low-mcd" in p.flags and not p.accepted and "MCD below 5 µs (a split fibre)" in p.reject_reasons


@pytest.mark.parametrize("snr_db", [30, 40])
def test_split_fibre_at_25_khz_is_not_pulled_apart(snr_db):
    """Two potentials that always move together (a split fibre) at 25 kHz through a
    4th-order amplifier: the joint fit cannot tell their templates apart; it once put both
    waveforms in one and let the other's shifts fit the noise (MCD 3-28 µs against 0.3-1
    µs, most accepted). The smaller one is left out of the joint model now
    (refine._carriers), which then has nothing to fit jointly."""
    sig, _ = synth.voluntary(fs_hz=25e3, n_discharges=1000, rate_hz=40, snr_db=snr_db, jitter_us=(0.0,),
                             amplifier_order=4, seed=7)
    p = analyze_signal(sig, 25e3).pairs[0]
    assert abs(p.mcd_us / p.technical_jitter_us - 1) <= CRB_REL, (p.mcd_us, p.technical_jitter_us)
    assert "low-mcd" in p.flags and not p.accepted


@pytest.mark.parametrize("fs_hz,amplifier_order", [(25e3, 4), (50e3, 2)])
def test_a_fibre_beside_a_split_one_is_timed_jointly_with_its_carrier(fs_hz, amplifier_order):
    """A split fibre (P1, P2: no relative jitter) and a fibre P3 whose waveform reaches
    P2's but not P1's. P2 stays out of the joint model, but its overlap with P3 still
    counts: P3 is timed jointly with P1, whose template carries P2. A review found P3
    timed alone once P2 was left out of the overlap test too, 18-21 % low (25 kHz) and
    4-5 % low (50 kHz); before P2 was left out, the split pair read 15-23 µs, accepted,
    at 25 kHz and 4-5 µs at 50 kHz."""
    sig, truth = synth.voluntary(fs_hz=fs_hz, n_discharges=200, jitter_us=(0.0, 20.0), ipis_s=(1e-3, 1.5e-3),
                                 amplitudes_v=(1e-3, 0.6e-3, 0.5e-3), shapes=("triphasic", "biphasic", "biphasic"),
                                 block_prob=(0.0, 0.0), amplifier_order=amplifier_order, seed=1)
    r = analyze_signal(sig, fs_hz)
    split, beside = r.pairs
    assert "low-mcd" in split.flags and not split.accepted
    want = true_mcd_us(beside, r, truth)
    assert beside.accepted and abs(beside.mcd_us - want) <= max(MCD_ABS_US_30DB, MCD_REL_30DB * want), \
        (beside.mcd_us, want)


@pytest.mark.parametrize("fs_hz", [25e3, 50e3])
def test_stimulated_technical_jitter_reaches_cramer_rao_bound(fs_hz):
    """Stimulated: the noise is measured away from the responses (once it was not, and
    the bound read 2x the measured technical jitter), and the artefact baseline does not
    follow the responses (a 1 ms running median did, scattering the time points)."""
    sig, stim, _ = synth.stimulated(fs_hz=fs_hz, n_stimuli=1000, jitter_us=(0.0,), snr_db=30, seed=3)
    p = analyze_signal(sig, fs_hz, mode="stimulated", stimulus_times_s=stim).pairs[0]
    assert abs(p.mcd_us / p.technical_jitter_us - 1) <= CRB_REL, (p.mcd_us, p.technical_jitter_us)
    # (no split fibre in a stimulated recording: a reviewing clinician)
    assert "MCD below 5 µs (direct stimulation of the muscle fibre)" in p.reject_reasons


def test_bridge_replaces_spans_by_straight_lines():
    x = np.vstack([np.arange(20.0), 100 + np.arange(20.0)])
    bumped = x.copy()
    bumped[0, 8:13] += 5.0
    bumped[1, 2:5] -= 7.0
    np.testing.assert_allclose(_bridge(bumped, np.array([0, 1]), np.array([10, 3]), 2), x)


def test_template_beats_peak_and_level():
    sig, _ = synth.voluntary(fs_hz=50e3, n_discharges=600, rate_hz=40, snr_db=30, jitter_us=(0.0,), seed=8)
    mcd = {m: analyze_signal(sig, 50e3, params=AnalysisParams(method=m)).pairs[0].mcd_us
           for m in ("template", "peak", "level")}
    assert mcd["template"] < mcd["peak"] and mcd["template"] < mcd["level"]


def test_blocking_counted_exactly_at_20_db():
    sig, truth = synth.voluntary(fs_hz=50e3, n_discharges=200, snr_db=20, jitter_us=(40.0,),
                                 block_prob=(0.15,), seed=11)
    r = analyze_signal(sig, 50e3)
    p = r.pairs[0]
    want = np.isnan(truth.times_s[1][matched(r, truth)])
    assert want.sum() > 10
    np.testing.assert_array_equal(p.blocked, want)
    assert p.n_blocked == want.sum()
    assert p.blocking_percent == pytest.approx(100 * want.mean())
    assert np.all(np.isnan(p.ipis_s[want])) and np.all(np.isfinite(p.ipis_s[~want]))


def test_three_fibre_unit_with_foreign_unit():
    sig, truth = synth.voluntary(
        fs_hz=50e3, n_discharges=200, snr_db=20, jitter_us=(30.0, 60.0), ipis_s=(0.8e-3, -1.5e-3),
        amplitudes_v=(1e-3, 0.6e-3, 0.5e-3), shapes=("triphasic", "biphasic", "triphasic"),
        block_prob=(0.1, 0.0), foreign=True, seed=3)
    r = analyze_signal(sig, 50e3)
    assert len(r.pairs) == 2  # the foreign unit is not time-locked
    assert r.potential_latencies_s[r.trigger_fibre] == 0
    k = matched(r, truth)
    for p in r.pairs:
        f = true_fibre(p, r, truth)
        want = true_mcd_us(p, r, truth)
        assert abs(p.mcd_us - want) <= max(MCD_ABS_US_20DB, MCD_REL_20DB * want)
        np.testing.assert_array_equal(p.blocked, np.isnan(truth.times_s[f][k]))


@pytest.mark.parametrize("apart_s", [0.35e-3, 0.45e-3])
def test_a_fibre_beside_a_bigger_one_of_the_other_polarity_is_timed_on_its_own_phase(apart_s):
    """A 0.5 mV fibre 0.35-0.45 ms after a -1 mV one (found in review): its main phase's
    fit segment holds the bigger fibre's phases, the template's largest peak lies on
    them, and the group was dropped as timed on another; its small side lobe stood in
    for it, timed on other dips in its window (0.45 ms: MCD 40-45 against 20-22 µs,
    accepted), or the fibre was not reported (0.35 ms). Such a group outside every kept
    waveform is timed again in a segment that stops short of its neighbour's peak."""
    sig, truth = synth.voluntary(fs_hz=50e3, n_discharges=200, snr_db=32, jitter_us=(35.0, 20.0),
                                 ipis_s=(0.9e-3, 0.9e-3 + apart_s), amplitudes_v=(1.5e-3, -1.0e-3, 0.5e-3),
                                 shapes=("triphasic", "triphasic", "triphasic"), block_prob=(0.0, 0.0), seed=1)
    r = analyze_signal(sig, 50e3)
    assert sorted(true_fibre(p, r, truth) for p in r.pairs) == [1, 2]
    for p in r.pairs:
        want = true_mcd_us(p, r, truth)
        assert p.accepted and p.n_blocked == 0
        assert abs(p.mcd_us - want) <= max(MCD_ABS_US_30DB, MCD_REL_30DB * want), (p.label, p.mcd_us, want)


def test_msd_reported_when_firing_rate_dependence_planted():
    sig, truth = synth.voluntary(fs_hz=50e3, n_discharges=300, snr_db=30, jitter_us=(10.0,),
                                 idi_slope=2e-3, seed=5)
    p = analyze_signal(sig, 50e3).pairs[0]
    assert p.mcd_msd_ratio > 1.25 and p.jitter_us == p.msd_us
    assert p.msd_us == pytest.approx(10.0, rel=0.25)  # the planted jitter without the trend


def test_few_discharges_flagged():
    """Flagged when recorded over fewer than 50 discharges; not for the discharges it
    blocked in (it flagged every endplate of 50 stimuli that blocked once: review)."""
    sig, _ = synth.voluntary(fs_hz=50e3, n_discharges=30, jitter_us=(20.0,), seed=2)
    p = analyze_signal(sig, 50e3).pairs[0]
    assert "few-discharges" in p.flags and p.accepted
    sig, _ = synth.voluntary(fs_hz=50e3, n_discharges=60, jitter_us=(20.0,), block_prob=(0.3,), seed=2)
    p = analyze_signal(sig, 50e3).pairs[0]
    assert p.n_discharges >= 50 and p.n_blocked >= 10 and "few-discharges" not in p.flags
    # ... but an MCD from ~10 intervals of a pair blocking in two thirds of 100 is (review)
    sig, _ = synth.voluntary(fs_hz=50e3, n_discharges=100, jitter_us=(20.0,), block_prob=(0.6,), seed=2)
    p = analyze_signal(sig, 50e3).pairs[0]
    assert p.n_discharges >= 90 and np.isfinite(np.diff(p.ipis_s)).sum() < 25 and "few-discharges" in p.flags


def test_stimulated_with_artefact():
    sig, stim, truth = synth.stimulated(fs_hz=50e3, jitter_us=(15.0, 25.0), latencies_s=(3e-3, 4.2e-3),
                                        amplitudes_v=(0.6e-3, 0.8e-3), block_prob=(0.05, 0.0), seed=2)
    r = analyze_signal(sig, 50e3, mode="stimulated", stimulus_times_s=stim)
    assert r.mode == "stimulated" and len(r.pairs) == 2  # the artefact is not a response
    for p, f in zip(r.pairs, (0, 1)):
        want = truth.mcd_s(f, None) * 1e6
        assert abs(p.mcd_us - want) <= max(MCD_ABS_US_30DB, MCD_REL_30DB * want)
        assert np.isnan(p.msd_us) and p.jitter_us == p.mcd_us
        np.testing.assert_array_equal(p.blocked, np.isnan(truth.times_s[f]))
    assert r.pairs[0].mean_ipi_us == pytest.approx(3000, abs=30)


def test_stimuli_that_miss_the_axon_are_no_blocks():
    """Both responses absent after every sixth stimulus (below the axon's threshold): a
    clinician's review found such stimuli counted as blocks of each endplate, which made
    a healthy study abnormal. They are left out as no stimulus, each response flagged and
    the recording noted; the responses' own blocks stay blocks."""
    failed = np.arange(5, 150, 6)
    kept = np.ones(150, dtype=bool)
    kept[failed] = False
    sig, stim, truth = synth.stimulated(fs_hz=50e3, jitter_us=(15.0, 25.0), latencies_s=(3e-3, 4.2e-3),
                                        amplitudes_v=(0.6e-3, 0.8e-3), block_prob=(0.05, 0.0), failed=failed,
                                        seed=2)
    r = analyze_signal(sig, 50e3, mode="stimulated", stimulus_times_s=stim)
    assert len(r.pairs) == 2
    assert [n for n in r.notes if "stimuli" in n] == [
        "R1, R2: all absent after 25 of 150 stimuli, far more often than their blocks would be by chance: stimuli "
        "that did not excite the axon (raise the intensity), or a block in the axon; those stimuli left out"]
    for p, f in zip(r.pairs, (0, 1)):
        assert p.accepted and "stimulus-failures" in p.flags and p.n_discharges == 125
        np.testing.assert_array_equal(p.blocked, np.isnan(truth.times_s[f][kept]))
        want = compute_mcd(truth.times_s[f][kept] - stim[kept]) * 1e6
        assert abs(p.mcd_us - want) <= max(MCD_ABS_US_30DB, MCD_REL_30DB * want)
    # endplates blocking on their own, often, are absent together only by chance: blocks
    sig, stim, truth = synth.stimulated(fs_hz=50e3, jitter_us=(15.0, 25.0), latencies_s=(3e-3, 4.2e-3),
                                        amplitudes_v=(0.6e-3, 0.8e-3), block_prob=(0.3, 0.3), seed=2)
    r = analyze_signal(sig, 50e3, mode="stimulated", stimulus_times_s=stim)
    assert np.sum(np.isnan(truth.times_s).all(axis=0)) >= _FAILURES_MIN  # (as many as the flag would need)
    for p, f in zip(r.pairs, (0, 1)):
        assert "stimulus-failures" not in p.flags and p.n_discharges == 150
        np.testing.assert_array_equal(p.blocked, np.isnan(truth.times_s[f]))


@pytest.mark.parametrize("decay_s", [0.3e-3, 0.4e-3])
def test_an_artefact_tail_past_the_blank_is_noted_and_a_wider_blank_clears_it(decay_s):
    """A 20 mV artefact decaying over 0.3-0.4 ms outlasts the 1 ms blank, the running
    median does not follow it, and it is kept as a slow pseudo-response that fakes blocks
    of the endplate behind it (31 against 7, MCD -22 %) or hides it. The recording says
    so and names the option (a review: no option could widen the blank); with the tail
    left as a stimulus-locked pseudo-response (1.5 ms) it still says so; with a 2 ms
    blank the endplate is exact and nothing is noted."""
    sig, stim, truth = synth.stimulated(fs_hz=50e3, jitter_us=(15.0,), latencies_s=(2.5e-3,), amplitudes_v=(0.5e-3,),
                                        artefact_v=20e-3, artefact_decay_s=decay_s, block_prob=(0.03,), seed=1)
    for blank_ms in (1.0, 1.5):
        r = analyze_signal(sig, 50e3, mode="stimulated", stimulus_times_s=stim,
                           params=AnalysisParams(artefact_blank_ms=blank_ms))
        (note,) = [n for n in r.notes if "artefact blank" in n]
        assert note.startswith("responses at 1.") and f"(artefact_blank_ms {blank_ms:g} ms)" in note
        assert note.endswith("widen the blank (--artefact-blank-ms)")
    r = analyze_signal(sig, 50e3, mode="stimulated", stimulus_times_s=stim,
                       params=AnalysisParams(artefact_blank_ms=2.0))
    (p,) = r.pairs
    assert r.notes == () and p.accepted
    np.testing.assert_array_equal(p.blocked, np.isnan(truth.times_s[0]))
    want = truth.mcd_s(0, None) * 1e6
    assert abs(p.mcd_us - want) <= max(MCD_ABS_US_30DB, MCD_REL_30DB * want)


@pytest.mark.parametrize("latency_s", [1.2e-3, 1.5e-3, 1.7e-3])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_response_soon_after_the_blank_is_one_response(latency_s, seed):
    """A response 0.2-0.7 ms after the 1 ms artefact blank: the artefact's baseline (a
    1 ms running median) is taken with it bridged, from the blank's end. It was bridged
    only beyond one median width after the blank; the median followed it, its phases
    were timed 6-11 µs off and reported as two accepted responses (1.5 ms: every seed;
    MCD up to +45 %). One response now, its MCD within the issue's 30 dB target
    (measured -1.3 to +0.5 % here; -4.5 % at 1.35 ms seed 1, -14 % at 1.1 ms, where
    the response's lead-in lies on the blank's edge)."""
    sig, stim, truth = synth.stimulated(fs_hz=50e3, amplitudes_v=(0.6e-3,), latencies_s=(latency_s,), seed=seed)
    (pair,) = analyze_signal(sig, 50e3, mode="stimulated", stimulus_times_s=stim).pairs
    want = truth.mcd_s(0, None) * 1e6
    assert pair.accepted and abs(pair.mcd_us - want) <= max(MCD_ABS_US_30DB, MCD_REL_30DB * want)


@pytest.mark.parametrize("latency_s", [5.45e-3, 5.55e-3])
def test_a_response_past_the_search_window_is_not_timed_on_the_sweeps_end(latency_s):
    """A response beyond ``search_window_ms`` (5 ms) but within the sweep cut for it
    (the window plus the fit half-window) was timed on segments padded with the
    sweep's last sample: reported twice, both copies accepted, MCD -18 to -50 % with up
    to 43 false blocks (found in review). It is outside the search window and not
    reported, but the recording's notes say where it is; with the window widened it is
    timed like any other."""
    fs = 50e3
    sig, stim, truth = synth.stimulated(fs_hz=fs, jitter_us=(20.0, 40.0), latencies_s=(2.5e-3, latency_s),
                                        amplitudes_v=(0.6e-3, 0.8e-3), block_prob=(0.0, 0.1), seed=1)
    r = analyze_signal(sig, fs, mode="stimulated", stimulus_times_s=stim)
    assert len(r.pairs) == 1 and r.pairs[0].mean_ipi_us == pytest.approx(2500, abs=60)
    (note,) = r.notes
    assert re.search(r"responses .* at 5\.[456].* past search_window_ms \(5 ms\).*--search-window-ms", note), note
    r = analyze_signal(sig, fs, mode="stimulated", stimulus_times_s=stim, params=AnalysisParams(search_window_ms=7.0))
    assert len(r.pairs) == 2 and r.notes == ()
    for p, f in zip(r.pairs, (0, 1)):
        want = truth.mcd_s(f, None) * 1e6
        assert p.accepted and abs(p.mcd_us - want) <= max(MCD_ABS_US_30DB, MCD_REL_30DB * want)
        np.testing.assert_array_equal(p.blocked, np.isnan(truth.times_s[f]))


def test_times_past_the_search_window_read_past_it():
    """Found by a new user's review: a response at 4.32 ms past a 4.3 ms window was
    noted "at 4.3 ms" (rounded to 0.1 ms)."""
    fs = 50e3
    sig, stim, _ = synth.stimulated(fs, jitter_us=(20.0, 40.0), latencies_s=(2.5e-3, 4.3e-3),
                                    amplitudes_v=(0.6e-3, 0.8e-3), block_prob=(0.0, 0.0), seed=1)
    (note,) = analyze_signal(sig, fs, mode="stimulated", stimulus_times_s=stim,
                             params=AnalysisParams(search_window_ms=4.3)).notes
    times = re.search(r"at ([\d., ]+) ms lie past search_window_ms \(4\.3 ms\)", note).group(1)
    assert all(float(t) > 4.3 for t in times.split(", ")), note


def test_responses_only_past_the_search_window_say_so():
    """Where every time-locked response lies past the window, the one-line error says
    where they are and how to reach them, rather than that there are none."""
    fs = 50e3
    sig, stim, _ = synth.stimulated(fs_hz=fs, latencies_s=(5.5e-3,), amplitudes_v=(0.8e-3,), seed=1)
    with pytest.raises(SfemgInputError, match=r"at 5\.[456].* past search_window_ms \(5 ms\).*--search-window-ms"):
        analyze_signal(sig, fs, mode="stimulated", stimulus_times_s=stim)


@pytest.mark.parametrize("latency_s", [6.5e-3, 9e-3])
def test_a_response_far_past_the_search_window_is_noted(latency_s):
    """Found in review: the sweeps reach only a fit half-window past the window, and a
    response at 6.5 or 9 ms (default window 5 ms) was not mentioned, or, alone, gave "no
    response time-locked to the stimuli". The signal is searched up to three windows
    after the stimulus; widened, the window takes it in."""
    fs = 50e3
    sig, stim, truth = synth.stimulated(fs, jitter_us=(20.0, 40.0), latencies_s=(2.5e-3, latency_s),
                                        amplitudes_v=(0.6e-3, 0.8e-3), block_prob=(0.0, 0.0), seed=1)
    (note,) = analyze_signal(sig, fs, mode="stimulated", stimulus_times_s=stim).notes
    times = re.search(r"responses time-locked to the stimuli at ([\d., ]+) ms lie past search_window_ms \(5 ms\)",
                      note).group(1)
    assert [float(t) for t in times.split(", ")] == pytest.approx([latency_s * 1e3], abs=0.05), note
    r = analyze_signal(sig, fs, mode="stimulated", stimulus_times_s=stim,
                       params=AnalysisParams(search_window_ms=latency_s * 1e3 + 1.0))
    assert len(r.pairs) == 2 and r.notes == ()
    want = truth.mcd_s(1, None) * 1e6
    assert r.pairs[1].accepted and abs(r.pairs[1].mcd_us - want) <= max(MCD_ABS_US_30DB, MCD_REL_30DB * want)
    alone, stim, _ = synth.stimulated(fs, latencies_s=(latency_s,), amplitudes_v=(0.8e-3,), seed=1)
    with pytest.raises(SfemgInputError, match=rf"at {latency_s * 1e3:.1f}.* past search_window_ms \(5 ms\)"):
        analyze_signal(alone, fs, mode="stimulated", stimulus_times_s=stim)


@pytest.mark.parametrize("latency_s", [5.4e-3, 7e-3])
def test_a_slow_wave_past_the_search_window_is_not_noted(latency_s):
    """A time-locked slow wave past the window (rise time ~360 µs) is no response the
    widened window would accept, and raises no note: simulated stimulated recordings
    noted a fibre's own slow after-phase, 1.25 ms after it, in 13 of 360 (the one at
    5.4 ms, within the sweeps, was noted so before the twenty-seventh session)."""
    fs = 50e3
    sig, stim, _ = synth.stimulated(fs, jitter_us=(20.0,), latencies_s=(3e-3,), amplitudes_v=(0.6e-3,), seed=2)
    rng = np.random.default_rng(5)
    slow = np.zeros_like(sig)
    synth.add_potentials(slow, fs, stim + latency_s + 20e-6 * rng.standard_normal(stim.size), "triphasic", 1e-3,
                         width_s=250e-6)
    sig = sig + scipy.signal.sosfilt(synth.amplifier(fs), slow)
    r = analyze_signal(sig, fs, mode="stimulated", stimulus_times_s=stim)
    assert [p.mean_ipi_us for p in r.pairs] == [pytest.approx(3000, abs=60)] and r.notes == ()
    wide = analyze_signal(sig, fs, mode="stimulated", stimulus_times_s=stim, params=AnalysisParams(search_window_ms=10))
    assert len(wide.pairs) == 2 and not wide.pairs[1].accepted
    assert wide.pairs[1].reject_reasons[0].startswith("rise time")


@pytest.mark.parametrize("block", [0.0, 1.0])
def test_an_amplifier_recovery_tail_past_the_window_is_no_response(block):
    """Found in review of the search past the sweeps: a 1 mV tail decaying over 5 ms
    after each stimulus lifted noise peaks over the threshold, and the signal, searched
    as recorded, named "responses" at 5.66-12.50 ms (each aligned on its own peak, the
    noise's mean rose fast); with the response always blocked, the error sent the user
    to widen the window. The rows are cleaned as the sweeps are, and a group must show
    in their mean."""
    fs = 50e3
    sig, stim, _ = synth.stimulated(fs, latencies_s=(3e-3,), amplitudes_v=(0.6e-3,), block_prob=(block,), seed=7)
    tail = 1e-3 * np.exp(-np.arange(int(30e-3 * fs)) / fs / 5e-3)
    for i in np.ceil(stim * fs).astype(int):
        sig[i:i + tail.size] += tail[:sig.size - i]
    if block:
        with pytest.raises(SfemgInputError, match="^no potentials found: no response time-locked to the stimuli$"):
            analyze_signal(sig, fs, mode="stimulated", stimulus_times_s=stim)
    else:
        r = analyze_signal(sig, fs, mode="stimulated", stimulus_times_s=stim)
        assert [p.mean_ipi_us for p in r.pairs] == [pytest.approx(3000, abs=60)] and r.notes == ()


@pytest.mark.parametrize("ipi_s", [-5.3e-3, 5.45e-3])
def test_a_fibre_just_past_the_voluntary_window_is_noted(ipi_s):
    """Found in review: a potential 5.3 ms before the trigger (or 5.45 ms after), within
    the sweep but too near its end for its rise time to be measured, was dropped from
    the note; it is named, and the widened window accepts it."""
    fs = 50e3
    sig, _ = synth.voluntary(fs, ipis_s=(1e-3, ipi_s), amplitudes_v=(1e-3, 0.6e-3, 0.6e-3), jitter_us=(20.0, 20.0),
                             shapes=("triphasic",) * 3, block_prob=(0.0, 0.0), seed=3)
    (note,) = analyze_signal(sig, fs, mode="voluntary").notes
    times = re.search(r"potentials time-locked to the trigger at ([-\d., ]+) ms lie past", note).group(1)
    assert [float(t) for t in times.split(", ")] == pytest.approx([ipi_s * 1e3], abs=0.05)
    wide = analyze_signal(sig, fs, mode="voluntary", params=AnalysisParams(search_window_ms=6.5))
    assert sorted(p.mean_ipi_us for p in wide.pairs if p.accepted) == pytest.approx(
        sorted([1000.0, ipi_s * 1e6]), abs=60)


def test_stimuli_left_out_at_the_recordings_end_are_noted():
    """A stimulus too near the end for a whole sweep is left out, and the notes say so
    (found in review: a simulated study of 50 stimuli, widened to an 8 ms window, read
    49 discharges and "few-discharges" without a word why)."""
    fs = 50e3
    sig, stim, _ = synth.stimulated(fs, n_stimuli=60, seed=3)  # (20 ms recorded after the last stimulus)
    r = analyze_signal(sig, fs, mode="stimulated", stimulus_times_s=stim)
    assert r.pairs[0].n_discharges == 60 and r.notes == ()
    r = analyze_signal(sig, fs, mode="stimulated", stimulus_times_s=stim, params=AnalysisParams(search_window_ms=20))
    assert r.pairs[0].n_discharges == 59
    assert r.notes[0].startswith("1 of 60 stimuli left out: outside the recording or too near its start or end for a "
                                 "whole sweep")


def test_no_candidate_peak_at_a_rows_first_or_last_sample():
    """A row that begins (or ends) within a potential has its largest value at the edge,
    no peak: a windowed sweep that began at -0.97 mV took it for its trigger (an
    interval 1.3 ms off, its pair's MCD 39 -> 71 µs, on the validation grid)."""
    from sfemg.analysis.sweeps import find_candidates

    x = np.zeros((2, 200))
    x[0, :20] = -np.linspace(1e-3, 0.0, 20)
    x[1, 100], x[1, -1] = 5e-4, 7e-4
    rows, cols = find_candidates(x, 1e-5, 50e3, AnalysisParams())
    assert list(zip(rows.tolist(), cols.tolist())) == [(1, 100)]


def test_a_single_stimulated_sweep_is_an_input_error():
    """Found in review: one sweep of windowed input was taken for a continuous signal
    (one row of samples) and searched past its end; a traceback."""
    fs = 50e3
    sig, stim, _ = synth.stimulated(fs_hz=fs, seed=4)
    start = int(np.floor(stim[0] * fs)) - int(1e-3 * fs)
    rec = Recording(name="one", fs_hz=fs, sweeps_v=sig[None, start:start + int(8e-3 * fs)],
                    sweep_start_times_s=np.array([start / fs]), stimulus_times_s=stim[:1], mode="stimulated")
    with pytest.raises(SfemgInputError, match="no response time-locked to the stimuli"):
        analyze_recording(rec)


def test_two_stimulated_sweeps_are_analysed():
    """Found in review: the noise spectrum measured on the differences between
    consecutive sweeps had one row, mostly busy, for the simulator's first two
    stimulated sweeps ("too little signal free of potentials"); with fewer than 3 sweeps
    it is measured on the sweeps."""
    rec = simulate_study("healthy-edc", output="sweeps", mode="stimulated", n_recordings=1, n_discharges=40,
                         seed=3).recordings[0]
    two = dataclasses.replace(rec, sweeps_v=rec.sweeps_v[:2], sweep_start_times_s=rec.sweep_start_times_s[:2],
                              stimulus_times_s=rec.stimulus_times_s[:2], ground_truth=None)
    assert any(p.accepted and p.n_discharges == 2 for p in analyze_recording(two).pairs)


def test_stimulated_sweeps():
    fs = 50e3
    sig, stim, truth = synth.stimulated(fs_hz=fs, jitter_us=(20.0,), seed=4)
    pre, n_cols = int(1e-3 * fs), int(8e-3 * fs)
    starts = np.floor(stim * fs).astype(int) - pre
    sweeps = sig[starts[:, None] + np.arange(n_cols)]
    rec = Recording(name="sw", fs_hz=fs, sweeps_v=sweeps, sweep_start_times_s=starts / fs,
                    stimulus_times_s=stim, mode="stimulated")
    p = analyze_recording(rec).pairs[0]
    want = truth.mcd_s(0, None) * 1e6
    assert abs(p.mcd_us - want) <= max(MCD_ABS_US_30DB, MCD_REL_30DB * want)
    # without stimulus times the stimulus is at each sweep's start
    starts = np.round(stim * fs).astype(int)
    rec = Recording(name="sw0", fs_hz=fs, sweeps_v=sig[starts[:, None] + np.arange(n_cols)],
                    sweep_start_times_s=starts / fs, mode="stimulated")
    p = analyze_recording(rec).pairs[0]
    assert p.mean_ipi_us == pytest.approx(3000, abs=30)


def test_stimulated_sweeps_with_stimuli_outside_them_are_refused():
    """Stimulus times in ms, or on another clock, used to read "no response time-locked
    to the stimuli"; a sweep that starts after its stimulus (within the search window,
    the artefact not recorded) is analysed."""
    fs = 50e3
    sig, stim, truth = synth.stimulated(fs_hz=fs, jitter_us=(20.0,), seed=4)
    n_cols = int(8e-3 * fs)
    starts = np.floor(stim * fs).astype(int) - int(1e-3 * fs)
    sweeps = sig[starts[:, None] + np.arange(n_cols)]
    for bad in (stim * 1e3, stim + 7.5e-3, stim - 6.5e-3, np.r_[stim[:-1], stim[-1] + 1.0]):
        rec = Recording(name="sw", fs_hz=fs, sweeps_v=sweeps, sweep_start_times_s=starts / fs,
                        stimulus_times_s=bad, mode="stimulated")
        with pytest.raises(SfemgInputError, match=r"stimulus_times_s: \d+ of 150 lie outside their sweeps \(sweep "):
            analyze_recording(rec)
    late = np.floor(stim * fs).astype(int) + int(1e-3 * fs)
    rec = Recording(name="late", fs_hz=fs, sweeps_v=sig[late[:, None] + np.arange(n_cols)],
                    sweep_start_times_s=late / fs, stimulus_times_s=stim, mode="stimulated")
    p, = analyze_recording(rec).pairs
    want = truth.mcd_s(0, None) * 1e6
    assert p.accepted and abs(p.mcd_us - want) <= max(MCD_ABS_US_30DB, MCD_REL_30DB * want)


def test_voluntary_sweeps():
    fs = 50e3
    sig, truth = synth.voluntary(fs_hz=fs, n_discharges=150, jitter_us=(25.0,), seed=4)
    offsets = np.random.default_rng(0).integers(-20, 20, truth.reference_s.size)
    starts = np.floor(truth.reference_s * fs).astype(int) - int(3e-3 * fs) + offsets
    rec = Recording(name="vs", fs_hz=fs, sweeps_v=sig[starts[:, None] + np.arange(int(8e-3 * fs))],
                    sweep_start_times_s=starts / fs, mode="voluntary")
    r = analyze_recording(rec)
    p = r.pairs[0]
    want = truth.mcd_s(1) * 1e6
    assert r.n_discharges == 150
    assert abs(p.mcd_us - want) <= max(MCD_ABS_US_30DB, MCD_REL_30DB * want)


def test_voluntary_sweeps_of_two_fibres_of_one_size():
    """Two fibres of the same waveform and size, 1 ms apart, in one amplitude group: the
    largest candidate of a sweep was its reference, the one fibre or the other as the
    noise fell, and each pair had about half its discharges "blocked". The first is the
    same fibre in every sweep."""
    fs = 50e3
    sig, truth = synth.voluntary(fs_hz=fs, n_discharges=150, jitter_us=(25.0,), amplitudes_v=(1e-3, 1e-3),
                                 shapes=("triphasic", "triphasic"), seed=4)
    starts = np.floor(truth.reference_s * fs).astype(int) - int(3e-3 * fs)
    rec = Recording(name="vs2", fs_hz=fs, sweeps_v=sig[starts[:, None] + np.arange(int(8e-3 * fs))],
                    sweep_start_times_s=starts / fs, mode="voluntary")
    r = analyze_recording(rec)
    (p,) = r.pairs
    want = truth.mcd_s(1) * 1e6
    assert r.n_discharges == 150 and p.n_blocked == 0
    assert abs(p.mcd_us - want) <= max(MCD_ABS_US_30DB, MCD_REL_30DB * want)


def test_result_arrays_for_display():
    sig, _ = synth.voluntary(fs_hz=50e3, n_discharges=60, jitter_us=(20.0,), seed=1)
    r = analyze_signal(sig, 50e3)
    assert r.aligned_sweeps_v.shape == (60, r.sweep_time_s.size)
    assert r.sweep_time_s[np.argmin(np.abs(r.sweep_time_s))] == 0
    assert r.templates_v.shape == (2, r.template_time_s.size)
    assert r.firing_rate_hz == pytest.approx(10, rel=0.1)
    assert r.noise_rms_v > 0 and np.all(r.timing_sd_s > 0)
    d = r.pairs[0].to_json_dict()
    assert list(d) == ["mcd_us", "msd_us", "mcd_msd_ratio", "jitter_us", "mean_ipi_us",
                       "technical_jitter_us", "blocking_percent", "n_discharges", "n_blocked",
                       "accepted", "reject_reasons", "flags", "mcd_uncertainty_us", "label", "amplitude_uv",
                       "rise_time_us"]
    assert d["amplitude_uv"] == pytest.approx(r.pairs[0].amplitude_v * 1e6) and d["rise_time_us"] > 0
    assert 0 < d["mcd_uncertainty_us"] < d["technical_jitter_us"]


def test_a_potential_without_a_bound_leaves_the_other_pairs_uncertainty():
    """Single fits, independent from discharge to discharge: the MCD's variance is
    sum g_i^2 (var_potential + var_reference); a third potential with no finite bound
    does not enter it (found in review: it made every pair's uncertainty NaN)."""
    ipis = 1e-3 + 20e-6 * np.random.default_rng(0).standard_normal(50)
    errors = TimingErrors(None, np.zeros(3, bool), np.array([0.04, 0.09, np.inf]))
    want = np.sqrt(np.sum(mcd_gradient(ipis) ** 2) * 0.13) / 50e3
    assert errors.mcd_sd_s(ipis, 1, 0, 50e3) == pytest.approx(want, rel=1e-12)
    assert errors.mcd_sd_s(ipis, 2, 0, 50e3) == np.inf


def test_the_mcd_uncertainty_is_the_scatter_of_the_mcd_error():
    """The reported MCD uncertainty against (measured - true MCD) on 200 analytic
    recordings at 30 dB: 100 with potentials clear of each other (single fits) and 100
    overlapping (IPI 0.7 ms: the joint fit, whose uncertainty holds the scale of the
    relative shifts). The errors over their uncertainties have SD 1 (measured: 0.95 and
    1.01, pooled 1.00). Not known for the interpolated peak: NaN."""
    from sfemg.analysis import compute_mcd

    z = []
    for ipi_s in (1.0e-3, 0.7e-3):
        for seed in range(100):
            sig, truth = synth.voluntary(fs_hz=50e3, n_discharges=100, ipis_s=(ipi_s,), seed=seed)
            (p,) = analyze_signal(sig, 50e3).pairs
            assert 0 < p.mcd_uncertainty_us < 0.5 * p.technical_jitter_us
            z.append((p.mcd_us - compute_mcd(truth.times_s[1] - truth.times_s[0]) * 1e6) / p.mcd_uncertainty_us)
    assert abs(np.std(z, ddof=1) - 1.0) <= sd_ratio_tolerance(len(z)), np.std(z, ddof=1)
    (p,) = analyze_signal(sig, 50e3, params=AnalysisParams(method="peak")).pairs
    assert np.isnan(p.mcd_uncertainty_us) and np.isfinite(p.mcd_us)


def test_rejections_have_reasons():
    sig, _ = synth.voluntary(fs_hz=50e3, n_discharges=60, amplitudes_v=(1e-3, 0.08e-3),
                             snr_db=25, jitter_us=(20.0,), seed=1)
    p = analyze_signal(sig, 50e3).pairs[0]
    assert not p.accepted and any("amplitude" in r for r in p.reject_reasons)
    p = analyze_signal(sig, 50e3, params=AnalysisParams(electrode="concentric")).pairs[0]
    assert p.accepted


@pytest.mark.parametrize("signal,fs,match", [
    (np.array([0.0, np.nan, 1.0]), 50e3, "NaN or infinite values .gaps. cut them out"),
    (np.array([0.0, np.inf, 1.0]), 50e3, "NaN"),
    (np.array([]), 50e3, "sample"),
    (np.array([1.0]), 50e3, "sample"),
    (np.zeros((3, 100)), 50e3, "1-D"),
    (np.zeros(100, dtype=np.int16), 50e3, "integer"),
    (np.random.default_rng(0).normal(size=1000), 10e3, r"too low for jitter measurement \(need >= 20000 Hz\)$"),
    (np.random.default_rng(0).normal(size=1000), 50, "sampling rate 50 Hz is too low .* given in kHz"),
    (np.random.default_rng(0).normal(size=1000), -1.0, "positive"),
    (20e-3 * np.random.default_rng(0).normal(size=100_000), 50e3, "not in volts"),  # mV: 20 µV noise
    (1e-310 * np.random.default_rng(0).normal(size=100_000), 50e3, "not in volts"),  # subnormal: crashed
    (np.random.default_rng(0).normal(size=1000), 1e25, "no EMG sampling rate"),  # crashed (helper's run)
    (np.random.default_rng(0).normal(size=1000), 10 ** 400, "positive number"),  # (the same)
])
def test_bad_input_one_line_errors(signal, fs, match):
    with pytest.raises(SfemgInputError, match=match) as info:
        analyze_signal(signal, fs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("mode,params", [("voluntary", dict(search_window_ms=1000.0)),
                                         ("voluntary", dict(fit_half_window_us=1e6)),
                                         ("stimulated", dict(fit_half_window_us=1e6))])
def test_windows_longer_than_the_recording_are_refused(mode, params):
    """Windows of 1e300 hung the analysis (a fast DFT length sought up to a huge number)
    or overflowed; they are refused as parameters now (above 1 s), and a window within
    that but longer than a short recording is a one-line input error too. (A stimulated
    search window that long reaches the next stimulus first: the test below.)"""
    fs = 50e3
    if mode == "voluntary":
        sig, _ = synth.voluntary(fs_hz=fs, n_discharges=60, jitter_us=(30.0,), seed=21)
        kw = {}
    else:
        sig, times, _ = synth.stimulated(fs_hz=fs, n_stimuli=60, jitter_us=(20.0,), seed=22)
        kw = dict(mode="stimulated", stimulus_times_s=times[times < 1.4])
    with pytest.raises(SfemgInputError, match="make sweeps longer than the recording") as info:
        analyze_signal(sig[:int(1.5 * fs)], fs, params=AnalysisParams(**params), **kw)
    assert "\n" not in str(info.value)


def test_a_stimulated_window_reaching_the_next_stimulus_is_refused():
    """Found by a helper's adversarial run: a search window as long as the interval
    between stimuli took the next stimuli's responses for further endplates (one
    endplate reported at 3.8, 103.8, 203.8 ... ms, all accepted)."""
    sig, times, _ = synth.stimulated(fs_hz=50e3, n_stimuli=60, jitter_us=(20.0,), seed=22)
    interval_ms = np.diff(times).min() * 1e3
    analyze_signal(sig, 50e3, mode="stimulated", stimulus_times_s=times,
                   params=AnalysisParams(search_window_ms=0.9 * interval_ms))
    with pytest.raises(SfemgInputError, match="reaches the next stimulus") as info:
        analyze_signal(sig, 50e3, mode="stimulated", stimulus_times_s=times,
                       params=AnalysisParams(search_window_ms=interval_ms))
    assert "\n" not in str(info.value)


def test_a_voluntary_window_reaching_the_neighbouring_discharges_is_refused():
    """Found by a new user's review: a 1000 ms window at 10 Hz firing was analysed (its
    sweeps each holding ten of the unit's discharges), with other pairs and jitters."""
    sig, _ = synth.voluntary(50e3, 120, jitter_us=(30.0,), rate_hz=25.0, seed=1)  # ~40 ms intervals
    analyze_signal(sig, 50e3, params=AnalysisParams(search_window_ms=30.0))
    with pytest.raises(SfemgInputError, match=r"^search_window_ms \(45\) reaches the unit's neighbouring "
                                              r"discharges \(\d\d\.?\d* ms apart, median\)"):
        analyze_signal(sig, 50e3, params=AnalysisParams(search_window_ms=45.0))


def test_params_and_stimulus_times_of_the_wrong_kind_are_input_errors():
    """A dict for params, text for stimulus times: an AttributeError and a ValueError
    from deep inside before (a helper's adversarial run)."""
    sig, times, _ = synth.stimulated(fs_hz=50e3, n_stimuli=60, jitter_us=(20.0,), seed=22)
    with pytest.raises(SfemgInputError, match=r"params must be an AnalysisParams \(sfemg.analysis.AnalysisParams"):
        analyze_signal(sig, 50e3, params={"method": "peak"})
    import sfemg.analysis
    assert sfemg.analysis.AnalysisParams  # (the message named sfemg.AnalysisParams, which is not there)
    from sfemg.analysis import analyze_recordings
    from sfemg.recording import Recording
    with pytest.raises(SfemgInputError, match="params must be an AnalysisParams"):  # (the study API too)
        analyze_recordings([Recording(name="r", fs_hz=50e3, signal_v=sig)], params={"method": "peak"})
    with pytest.raises(SfemgInputError, match="stimulus_times_s: expected a 1-D array of finite times"):
        analyze_signal(sig, 50e3, mode="stimulated", stimulus_times_s="abc")


def test_stimulus_times_far_outside_the_recording_are_refused():
    """Found by a helper's adversarial run: one stimulus time of 1e300 s among good ones
    overflowed a sample index (IndexError, the whole study aborted). Times just outside
    the recording are left out, as before."""
    sig, times, _ = synth.stimulated(fs_hz=50e3, n_stimuli=60, jitter_us=(20.0,), seed=22)
    for bad in (np.r_[times, 1e300], np.r_[-1e6, times]):
        with pytest.raises(SfemgInputError, match="1 of 61 lie far outside the recording") as info:
            analyze_signal(sig, 50e3, mode="stimulated", stimulus_times_s=bad)
        assert "\n" not in str(info.value)
    # just outside (a stimulator log longer than the saved EMG): those stimuli left out
    # (the noise is measured away from every stimulus's window, so the MCD moves a little)
    full = analyze_signal(sig, 50e3, mode="stimulated", stimulus_times_s=times)
    for extra in (np.r_[-1e-3, times], np.r_[times, sig.size / 50e3 + 0.05]):
        r = analyze_signal(sig, 50e3, mode="stimulated", stimulus_times_s=extra)
        assert [p.n_discharges for p in r.pairs] == [p.n_discharges for p in full.pairs]
        assert [p.mcd_us for p in r.pairs] == pytest.approx([p.mcd_us for p in full.pairs], rel=1e-3)


def _slow_components(n, fs_hz):
    """What a raw, not high-pass filtered recording carries (V): a DC offset, 50 Hz hum
    with its third harmonic, and drift."""
    t = np.arange(n) / fs_hz
    return {"DC offset": np.full(n, 0.05),
            "hum": 2e-4 * np.sin(2 * np.pi * 50 * t + 0.3) + 5e-5 * np.sin(2 * np.pi * 150 * t),
            "drift": 5e-3 * np.sin(2 * np.pi * 0.3 * t)}


@pytest.mark.parametrize("component", ["DC offset", "hum", "drift"])
@pytest.mark.parametrize("highpass_hz", [500.0, 1000.0])
def test_a_recording_not_high_pass_filtered(component, highpass_hz):
    """A DC offset, 0.2 mV of mains hum (10 noise SDs: detection fails in it) or drift on
    a filtered analytic recording: refused with a one-line error that names the cause and
    the remedy; analysed with ``highpass_hz`` (an SFEMG amplifier's high-pass), the MCD is
    the clean recording's within the issue's 30 dB target."""
    fs = 50e3
    sig, truth = synth.voluntary(fs, 200, jitter_us=(30.0,), seed=1)
    raw = sig + _slow_components(sig.size, fs)[component]
    with pytest.raises(SfemgInputError, match="not high-pass filtered.*--highpass 500") as info:
        analyze_signal(raw, fs)
    assert "\n" not in str(info.value)
    (pair,) = analyze_signal(raw, fs, params=AnalysisParams(highpass_hz=highpass_hz)).pairs
    want = truth.mcd_s(1) * 1e6
    assert pair.accepted and pair.n_blocked == 0
    assert abs(pair.mcd_us - want) <= max(MCD_ABS_US_30DB, MCD_REL_30DB * want)


def test_sweeps_not_high_pass_filtered():
    """Sweeps each with an offset of its own (a DC-coupled amplifier's baseline moving
    between sweeps): refused; with ``highpass_hz`` each sweep is filtered from its first
    sample as a steady level, and the MCD is recovered."""
    fs = 50e3
    sig, truth = synth.voluntary(fs_hz=fs, n_discharges=150, jitter_us=(25.0,), seed=4)
    starts = np.floor(truth.reference_s * fs).astype(int) - int(3e-3 * fs)
    sweeps = sig[starts[:, None] + np.arange(int(8e-3 * fs))]
    sweeps = sweeps + np.random.default_rng(0).uniform(-5e-3, 5e-3, (sweeps.shape[0], 1))
    rec = Recording(name="dc", fs_hz=fs, sweeps_v=sweeps, sweep_start_times_s=starts / fs, mode="voluntary")
    with pytest.raises(SfemgInputError, match="not high-pass filtered"):
        analyze_recording(rec)
    (pair,) = analyze_recording(rec, AnalysisParams(highpass_hz=500.0)).pairs
    want = truth.mcd_s(1) * 1e6
    assert abs(pair.mcd_us - want) <= max(MCD_ABS_US_30DB, MCD_REL_30DB * want)


def test_filtered_recordings_pass_the_high_pass_check():
    """The check's statistic on filtered input (analytic at 25-100 kHz, 20-40 dB; a
    concentric simulated recording with 60 background units: the densest tried) stays
    far below the refusal level; a constant level gives exactly zero once filtered."""
    from sfemg.analysis.sweeps import band_limited
    from sfemg.synthesis import simulate_study

    for fs in (25e3, 100e3):
        for snr_db in (20.0, 40.0):
            sig, _ = synth.voluntary(fs, 60, snr_db=snr_db, seed=2)
            assert band_limited(sig, fs, AnalysisParams()) is sig
    rec = simulate_study("healthy-edc", n_recordings=1, n_discharges=60, seed=1, electrode="concentric",
                         n_background_units=60).recordings[0]
    assert band_limited(rec.signal_v, rec.fs_hz, AnalysisParams()) is rec.signal_v
    flat = band_limited(np.full((2, 500), 0.3), 50e3, AnalysisParams(highpass_hz=500.0))
    np.testing.assert_allclose(flat, 0.0, atol=1e-12)
    with pytest.raises(SfemgInputError, match="0.45"):
        band_limited(np.zeros(500), 50e3, AnalysisParams(highpass_hz=0.45 * 50e3))
    band_limited(np.zeros(500), 50e3, AnalysisParams(highpass_hz=0.449 * 50e3))
    # a corner too low for the filter's steady state (found in review: a LinAlgError at
    # 1e-5 Hz); 1 Hz is still stable at 10 MHz
    with pytest.raises(SfemgInputError, match="at least 1 Hz"):
        AnalysisParams(highpass_hz=1e-5)
    np.testing.assert_allclose(band_limited(np.full(500, 0.3), 1e7, AnalysisParams(highpass_hz=1.0)), 0.0,
                               atol=1e-6)


def test_the_high_pass_is_an_amplifiers():
    """``highpass_hz``: SciPy's 2nd-order Butterworth high-pass, causal, each row started
    as if its first sample had been there for ever (a row at an offset has no step
    response)."""
    from scipy import signal as sps

    from sfemg.analysis.sweeps import band_limited

    rows = np.random.default_rng(3).standard_normal((3, 400)) + np.array([[5.0], [-2.0], [0.0]])
    sos = sps.butter(2, 700.0, "highpass", fs=40e3, output="sos")
    want = np.array([sps.sosfilt(sos, r, zi=sps.sosfilt_zi(sos) * r[0])[0] for r in rows])
    np.testing.assert_allclose(band_limited(rows, 40e3, AnalysisParams(highpass_hz=700.0)), want, atol=1e-12)
    np.testing.assert_allclose(band_limited(rows[0], 40e3, AnalysisParams(highpass_hz=700.0)), want[0], atol=1e-12)


@pytest.mark.parametrize("offset_sds, refused", [(2.7, False), (3.3, True)])
def test_the_high_pass_check_counts_in_noise_sds(offset_sds, refused):
    """White noise (its sample-to-sample differences have SD √2 σ) at an offset of
    ``offset_sds`` σ: refused above 3 σ, not below."""
    from sfemg.analysis.sweeps import band_limited

    x = 1e-5 * (offset_sds + np.random.default_rng(4).standard_normal(200_000))
    if refused:
        with pytest.raises(SfemgInputError, match="not high-pass filtered"):
            band_limited(x, 50e3, AnalysisParams())
    else:
        assert band_limited(x, 50e3, AnalysisParams()) is x


@pytest.mark.parametrize("low_v, high_v, shown", [
    (None, None, ""), (-0.9e-3, 0.9e-3, ""), (-0.7e-3, 0.7e-3, "+0.7 mV"),
    (-0.4e-3, 0.4e-3, "-0.4 / +0.4 mV"), (-0.5e-3, None, "-0.5 mV")])
@pytest.mark.parametrize("highpass_hz", [0.0, 500.0])
def test_clipped_potentials_are_rejected(low_v, high_v, shown, highpass_hz):
    """The analytic recording (1 mV triphasic trigger peaking at +0.89 / -0.69 mV once
    filtered, 0.6 mV fibre, true MCD 29.4 µs) clipped to [``low_v``, ``high_v``]:
    beyond its peaks nothing changes; at ±0.7 mV the trigger saturates (its positive
    peak) and every pair reported (two accepted before, MCD 39.1 µs with 79 false
    blocks and 31.9 µs) is rejected as clipped, with the count and the level; at ±0.4 mV
    the fibre too; at -0.5 mV only the trigger's negative phase, off its main peak. The
    same with ``highpass_hz`` (the clipping is seen on the samples as recorded: filtered,
    they have no flat tops; found in review, the ±0.7 mV pair was accepted then)."""
    sig, truth = synth.voluntary(50e3, 200, jitter_us=(30.0,), seed=1)
    x = sig if low_v is None else np.clip(sig, low_v, high_v)
    pairs = analyze_signal(x, 50e3, params=AnalysisParams(highpass_hz=highpass_hz)).pairs
    clipped = [p for p in pairs if "clipped" in p.flags]
    assert pairs and len(clipped) == (len(pairs) if shown else 0)
    for p in clipped:
        assert not p.accepted
        assert any(r.startswith("trigger: clipped in") and r.endswith(f"saturate at {shown}")
                   for r in p.reject_reasons)
    if not shown:
        (pair,) = pairs
        assert pair.accepted and abs(pair.mcd_us - truth.mcd_s(1) * 1e6) < 0.1


def test_saturation_levels_and_times():
    """A level is the extreme value held by two or more consecutive samples in at least
    five places; unclipped data, or data whose maximum is held by single samples or by
    fewer runs, have none. The times are those of every sample at a level."""
    from sfemg.analysis.sweeps import find_saturation

    def levels(rows):
        return find_saturation(rows, np.arange(rows.shape[0]) * 10.0, 1000.0).levels_v

    x = np.random.default_rng(0).standard_normal((4, 1000))
    assert np.isnan(levels(x)).all()
    q = np.round(x * 2) / 2  # coarse steps: the maximum held by single samples or one pair
    q[0, 10:12] = q.max() + 0.5
    assert np.isnan(levels(q)[1])
    assert levels(np.clip(x, -1.0, 1.5)) == (-1.0, 1.5)
    low, high = levels(np.clip(x, -9.0, 1.0))
    assert np.isnan(low) and high == 1.0
    single = x.copy()
    single[0, 100:700:100] = 9.0  # the maximum at six single samples: no run
    assert np.isnan(levels(single)[1])
    runs = x.copy()
    for row, start in ((1, 100), (1, 300), (1, 500), (1, 700)):  # four runs of six samples: runs, not pairs
        runs[row, start:start + 6] = 9.0
    assert np.isnan(levels(runs)[1])
    runs[2, 50:56] = 9.0  # a fifth
    sat = find_saturation(runs, np.arange(4) * 10.0, 1000.0)
    assert sat.levels_v[1] == 9.0
    want = np.sort(np.r_[[10.0 + (s + k) / 1000.0 for s in (100, 300, 500, 700) for k in range(6)],
                         [20.0 + (50 + k) / 1000.0 for k in range(6)]])
    np.testing.assert_allclose(sat.times_s, want)


@pytest.mark.parametrize("gap", [0.005, 0.05, 0.5])
def test_a_recording_with_a_gap_of_zeros(gap):
    """A gap filled with zeros over ``gap`` of the analytic recording: refused with a
    one-line error above 1 % (at 20 % its noise, measured partly on the gap, made the
    reported technical jitter 14 % low; at 50 % the band check took it for unfiltered);
    0.5 % is analysed as before."""
    sig, truth = synth.voluntary(50e3, 200, jitter_us=(30.0,), seed=1)
    x = sig.copy()
    x[x.size // 3:x.size // 3 + int(gap * x.size)] = 0.0
    if gap > 0.01:
        with pytest.raises(SfemgInputError, match="exactly constant") as info:
            analyze_signal(x, 50e3)
        assert "\n" not in str(info.value)
    else:
        (pair,) = analyze_signal(x, 50e3).pairs
        assert pair.accepted and pair.technical_jitter_us == pytest.approx(
            analyze_signal(sig, 50e3).pairs[0].technical_jitter_us, rel=0.01)


def test_quantised_samples_are_not_flat():
    """Samples of an ADC with steps of half the noise SD (equal neighbours are common, a
    millisecond of them is not) pass the flat check."""
    from sfemg.analysis.sweeps import check_flat

    sig, _ = synth.voluntary(50e3, 60, seed=2)
    check_flat((np.round(sig / 10e-6) * 10e-6)[None, :], 50e3)


def test_stimulus_times_out_of_order_or_not_in_seconds():
    """Shuffled stimulus times were analysed in the given order (MCD 14.28 against 13.42
    µs: consecutive differences of stimuli that were not consecutive); now refused, as a
    Recording refuses them, and so are sweep start times out of order. Times in ms or
    in samples: the error gives both spans."""
    sig, stim, _ = synth.stimulated(fs_hz=50e3, n_stimuli=60, seed=1)
    shuffled = stim.copy()
    np.random.default_rng(0).shuffle(shuffled)
    for bad, match in ((shuffled, "strictly increasing"), (np.r_[stim[:5], stim[4:]], "strictly increasing"),
                       (stim * 1e3, r"the stimulus times span .* s, the recording 0-.* s \(times in seconds\?\)")):
        with pytest.raises(SfemgInputError, match=match):
            analyze_signal(sig, 50e3, mode="stimulated", stimulus_times_s=bad)
    starts = np.floor(stim * 50e3).astype(int) - 50
    with pytest.raises(SfemgInputError, match="sweep_start_times_s must be strictly increasing"):
        Recording(name="sw", fs_hz=50e3, sweeps_v=sig[starts[:, None] + np.arange(400)],
                  sweep_start_times_s=(starts / 50e3)[::-1], stimulus_times_s=stim, mode="stimulated")


def test_noise_only_has_no_potentials():
    sig = synth.band_noise(200_000, 50e3, 20e-6, np.random.default_rng(0))
    with pytest.raises(SfemgInputError, match="no potentials"):
        analyze_signal(sig, 50e3)


def test_stimulated_without_responses_and_without_stimuli():
    sig, stim, _ = synth.stimulated(fs_hz=50e3, amplitudes_v=(0.6e-3,), latencies_s=(3e-3,), seed=1)
    quiet = synth.band_noise(sig.size, 50e3, 20e-6, np.random.default_rng(1))
    with pytest.raises(SfemgInputError, match="no potentials"):
        analyze_signal(quiet, 50e3, mode="stimulated", stimulus_times_s=stim)
    with pytest.raises(SfemgInputError, match="stimulus_times_s"):
        analyze_signal(sig, 50e3, mode="stimulated")


def test_params_validated():
    for bad in (dict(method="spline"), dict(electrode="monopolar"), dict(level_fraction=1.5),
                dict(min_discharges=1), dict(fit_half_window_us=-1.0), dict(min_amplitude_v=0.0),
                dict(irregular_fraction=0.0), dict(irregular_fraction=1.5), dict(irregular_fraction=float("nan")),
                dict(irregular_interval_ratio=1.0), dict(irregular_interval_ratio=-0.5),
                dict(excursion_window_us=-1.0), dict(excursion_window_us=float("inf")),
                dict(excursion_window_us="1"), dict(superimposed_ratio=-1.0),
                dict(superimposed_ratio=float("nan")), dict(superimposed_ratio=1.0), dict(superimposed_ratio=True),
                dict(excursion_window_us=True), dict(highpass_hz=-500.0), dict(highpass_hz=float("nan")),
                # windows past a second: 1e300 overflowed or exhausted memory (a helper's run)
                dict(peak_window_us=1e300), dict(artefact_blank_ms=1e300), dict(artefact_baseline_ms=1001.0),
                dict(search_window_ms=1e300), dict(excursion_window_us=2e6)):
        with pytest.raises(SfemgInputError):
            AnalysisParams(**bad)
    AnalysisParams(irregular_fraction=1.0)  # the irregular-firing rule off
    AnalysisParams(excursion_window_us=0)  # the excursion search off
    AnalysisParams(superimposed_ratio=0)  # no re-timing of superimposed discharges


@pytest.mark.parametrize("method", ["peak", "level"])
def test_clinical_methods_at_20_db(method):
    sig, truth = synth.voluntary(fs_hz=50e3, n_discharges=150, snr_db=20, jitter_us=(30.0,), seed=6)
    r = analyze_signal(sig, 50e3, params=AnalysisParams(method=method))
    assert len(r.pairs) == 1 and r.method == method
    p = r.pairs[0]
    want = true_mcd_us(p, r, truth)
    assert abs(p.mcd_us - want) <= max(MCD_ABS_US_20DB, MCD_REL_20DB * want)


@pytest.mark.parametrize("foreign_amplitude_v", [1.0e-3, 3.0e-3])
def test_trigger_is_the_biggest_potential_with_a_time_locked_partner(foreign_amplitude_v):
    """Another unit's broad potential, bigger than the unit's trigger after the amplifier
    and firing independently, is not taken as the trigger: it has no time-locked
    potential. At 1.2 x the trigger's filtered peak it falls in the trigger's amplitude
    group (the trigger check splits the sweeps; the ones it drops are analysed next);
    at 3 mV it is a group of its own, and a side phase of it, locked to it, is skipped
    for the next candidate."""
    fs_hz = 50e3
    sig, truth = synth.voluntary(fs_hz=fs_hz, n_discharges=150, snr_db=30, jitter_us=(25.0,), seed=5)
    rng = np.random.default_rng(1)
    t_foreign = 0.011 + np.cumsum(rng.uniform(0.09, 0.13, 200))
    foreign = np.zeros(sig.size)
    synth.add_potentials(foreign, fs_hz, t_foreign[t_foreign < sig.size / fs_hz - 0.01], "triphasic",
                         foreign_amplitude_v, width_s=2 * synth.PHASE_S)
    foreign = scipy.signal.sosfilt(synth.amplifier(fs_hz), foreign)
    assert np.abs(foreign).max() > 1.15 * synth.filtered_peak_v("triphasic", 1e-3, fs_hz)
    r = analyze_signal(sig + foreign, fs_hz)
    assert len(r.pairs) == 1
    # the discharges of the unit's trigger (those with the other unit's potential in their
    # window may be dropped), not the other unit's
    off_s = np.abs(truth.times_s[0][:, None] - r.reference_times_s[None, :]).min(axis=0)
    assert r.reference_times_s.size >= 0.85 * truth.times_s.shape[1] and np.sum(off_s > 50e-6) <= 1
    want = true_mcd_us(r.pairs[0], r, truth)
    assert abs(r.pairs[0].mcd_us - want) <= max(MCD_ABS_US_30DB, MCD_REL_30DB * want)


def test_trigger_discharges_of_two_identical_units_are_flagged_not_counted():
    """Another unit with the trigger's very waveform and size, firing on its own: no check
    of shape or size can part their discharges, and the other unit's count as blocks of
    the pair (~45 %). The merged train's many short intervals (~20 % below half the
    median; a unit firing with an interval CV of 0.3: < 10 %) flag every pair
    "irregular-firing" and keep it out of the study; a unit firing fast is not flagged."""
    fs_hz = 50e3
    sig, truth = synth.voluntary(fs_hz=fs_hz, n_discharges=150, snr_db=30, jitter_us=(25.0,), seed=6)
    rng = np.random.default_rng(2)
    t_other = 0.037 + np.cumsum(rng.uniform(0.09, 0.13, 200))
    other = np.zeros(sig.size)
    synth.add_potentials(other, fs_hz, t_other[t_other < sig.size / fs_hz - 0.01], "triphasic", 1e-3)
    r = analyze_signal(sig + scipy.signal.sosfilt(synth.amplifier(fs_hz), other), fs_hz)
    assert r.reference_times_s.size > 1.5 * truth.times_s.shape[1]  # the two units' discharges
    assert r.pairs and all("irregular-firing" in p.flags and not p.accepted for p in r.pairs)
    assert any("intervals < 0.5 x median" in reason for p in r.pairs for reason in p.reject_reasons)
    for rate_hz in (10.0, 40.0):
        clean_sig, _ = synth.voluntary(fs_hz=fs_hz, n_discharges=150, snr_db=30, jitter_us=(25.0,),
                                       rate_hz=rate_hz, seed=6)
        clean = analyze_signal(clean_sig, fs_hz)
        assert clean.pairs and all("irregular-firing" not in p.flags for p in clean.pairs)


def _add_filtered(sig, fs_hz, times_s, amplitude_v):
    """``sig`` plus triphasic potentials at ``times_s`` through the amplifier."""
    extra = np.zeros(sig.size)
    synth.add_potentials(extra, fs_hz, times_s, "triphasic", amplitude_v)
    return sig + scipy.signal.sosfilt(synth.amplifier(fs_hz), extra)


def test_another_units_potential_between_two_discharges_is_no_block():
    """Six potentials of the trigger's waveform and size, each 25 ms after one of the
    unit's discharges (a quarter of its median interval; interval CV 0.15): in each the
    pair would be blocked. Each splits one of the unit's intervals in two (5 SDs short,
    and with the next interval adding up to one), far likelier another unit's potential
    than the unit firing with the pair blocked (6 of 150): they are left out."""
    fs_hz = 50e3
    sig, truth = synth.voluntary(fs_hz=fs_hz, n_discharges=150, snr_db=30, jitter_us=(25.0,), seed=8)
    extra_s = truth.reference_s[10:130:20] + 0.025
    r = analyze_signal(_add_filtered(sig, fs_hz, extra_s, 1e-3), fs_hz)
    (pair,) = r.pairs
    assert pair.n_blocked == 0 and pair.n_discharges == truth.reference_s.size
    assert np.abs(r.reference_times_s - truth.reference_s).max() < 50e-6


def test_intervals_across_left_out_references_are_the_units():
    """Potentials of the trigger's waveform and size 1.5 ms before every tenth discharge
    of a unit whose latency follows the preceding interval: each is the first of the
    trigger group within ``min_idi_ms`` and takes that discharge's place, then is left
    out as a false reference (the unit's waveform lies shifted in its sweep), and the
    discharge is lost. The interval to the next discharge would be two of the unit's
    (and misplace it in the MSD's ordering): it is NaN, and the pair is flagged
    ``discharges-displaced``. Seven more, 25 ms after other discharges, stand in for none:
    the intervals across them stay, and are the unit's (alone, no flag)."""
    fs_hz = 50e3
    sig, truth = synth.voluntary(fs_hz=fs_hz, n_discharges=150, snr_db=30, jitter_us=(10.0,), idi_slope=1e-3,
                                 seed=8)
    t0 = truth.reference_s
    before_s, after_s = t0[5:145:10] - 1.5e-3, t0[10:140:20] + 0.025
    r = analyze_signal(_add_filtered(sig, fs_hz, np.r_[before_s, after_s], 1e-3), fs_hz)
    (pair,) = r.pairs
    k = np.abs(t0[:, None] - r.reference_times_s[None, :]).argmin(axis=0)
    assert np.abs(r.reference_times_s - t0[k]).max() < 50e-6
    lost = np.setdiff1d(np.arange(t0.size), k)
    assert lost.tolist() == list(range(5, 145, 10))
    unknown = np.r_[True, np.diff(k) > 1]  # the first, and every one after a lost discharge
    assert np.array_equal(np.isnan(pair.idis_s), unknown)
    known = ~unknown
    assert np.abs(pair.idis_s[known] - np.diff(t0)[k[known] - 1]).max() < 50e-6
    assert "discharges-displaced" in pair.flags and pair.accepted  # told, not rejected
    only_after = analyze_signal(_add_filtered(sig, fs_hz, after_s, 1e-3), fs_hz).pairs[0]
    assert "discharges-displaced" not in only_after.flags and np.isnan(only_after.idis_s).sum() == 1


def test_left_out_sweeps_break_the_chain_of_intervals_unless_passed_over():
    """``subset_sweeps``' ``after_previous`` against a loop: a kept row follows the
    previous kept one when every row after that one up to it followed its own
    predecessor and those between were passed over (no discharge of the unit)."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 12))
        after = rng.random(n) < 0.8
        after[0] = False
        sw = Sweeps(np.zeros((n, 3)), np.arange(n) * 0.1, np.zeros(n), np.arange(n) * 0.1, np.zeros((1, 3)),
                    np.zeros(0, np.int64), np.zeros(0, np.int64), 1.0, after_previous=after)
        keep, passed = rng.random(n) < 0.6, rng.random(n) < 0.5
        want = []
        for j, row in enumerate(np.flatnonzero(keep)):
            prev = np.flatnonzero(keep)[j - 1] if j else -1
            want.append(prev >= 0 and all(after[m] for m in range(prev + 1, row + 1))
                        and all(passed[m] for m in range(prev + 1, row)))
        sub = subset_sweeps(sw, keep, passed)
        assert sub.after_previous.tolist() == want
        idis = preceding_intervals(sub, sub.ref_times_s)
        assert np.array_equal(np.isnan(idis), ~np.array(want, dtype=bool))


def test_a_left_out_reference_stood_in_only_for_a_peak_within_the_refractory_time():
    """``keep_references`` on a built signal: a dropped reference followed by a peak of the
    trigger's size 1 sample before ``min_idi_ms`` (the refractory pick passed it over:
    displaced), exactly at it (a reference of its own) or at the reference itself (its own
    peak)."""
    from sfemg.analysis.references import keep_references

    fs_hz, gap = 50e3, 500  # min_idi_ms 10 ms
    pot = LockedPotential(latency=0.0, half_window=5, polarity=1.0, amplitude_v=1e-3, count=3)
    for offset, displaced in ((gap - 1, True), (gap, False), (0, False)):
        x = np.zeros(4000)
        refs = np.array([500, 1500, 3000])
        x[refs] = 1e-3
        x[1500 + offset] = 1e-3
        busy = np.unique(np.r_[refs, 1500 + offset])
        sw = Sweeps(np.zeros((3, 10)), (refs - 5) / fs_hz, np.full(3, 5.0), refs / fs_hz, x[None, :],
                    np.zeros(busy.size, np.int64), busy, 1e-5, signal_v=x)
        kept = keep_references(sw, np.array([True, False, True]), pot, fs_hz, AnalysisParams())
        assert kept.displaced == int(displaced), offset
        assert np.isnan(preceding_intervals(kept, kept.ref_times_s)[1]) == displaced, offset


def _with_slow_potential(sig, fs_hz, reference_s, seed):
    """``sig`` plus, through the amplifier, a slow biphasic potential (0.5 mV, phases six
    times the tests' width: rise time ~360 µs) 2.5 ms after each reference time, with
    10 µs of jitter."""
    slow_s = reference_s + 2.5e-3 + 10e-6 * np.random.default_rng(seed).standard_normal(reference_s.size)
    extra = np.zeros(sig.size)
    synth.add_potentials(extra, fs_hz, slow_s, "biphasic", 0.5e-3, width_s=6 * synth.PHASE_S)
    return sig + scipy.signal.sosfilt(synth.amplifier(fs_hz), extra)


def test_another_units_potential_with_the_triggers_slow_phase_is_no_block():
    """As above, but the unit has a slow potential 2.5 ms after the trigger (rise time
    ~360 µs: a pseudo-pair, rejected), and so do the six look-alikes: it is present in
    their discharges too (it follows whatever potential is the reference), so not every
    other potential is missing there. Slow potentials do not count for that: the six
    are still left out, and the fibre is blocked nowhere."""
    fs_hz = 50e3
    sig, truth = synth.voluntary(fs_hz=fs_hz, n_discharges=150, snr_db=30, jitter_us=(25.0,), seed=8)
    extra_s = truth.reference_s[10:130:20] + 0.025
    sig = _add_filtered(sig, fs_hz, extra_s, 1e-3)
    r = analyze_signal(_with_slow_potential(sig, fs_hz, np.r_[truth.reference_s, extra_s], seed=8), fs_hz)
    fibre, slow = r.pairs
    assert slow.rise_time_us >= 300 and not slow.accepted
    assert fibre.accepted and fibre.n_blocked == 0 and fibre.n_discharges == truth.reference_s.size
    assert np.abs(r.reference_times_s - truth.reference_s).max() < 50e-6


@pytest.mark.parametrize("peak", [30.504, 30.3, 30.0, 29.7])
def test_rise_time_from_the_trough_before_the_peak(peak):
    """A slow rise from a trough at sample 10 to a peak at ``peak`` and a steep fall after
    it: the rise time is the trough-to-peak time (~410 µs at 50 kHz), also where the
    peak lies just past a half sample and the sample before it is the higher one (a
    search from the rounded sample gave -10 µs there, and such a slow potential passed
    for a fibre)."""
    fs_hz = 50e3
    x = np.arange(60.0)
    template = np.where(x <= peak, -np.cos(np.pi * (x - 10) / (peak - 10)), np.cos(np.pi * (x - peak) / 8))
    template = np.where(x < 10, -1.0, np.where(x > peak + 8, -1.0, template))
    _, rise_us, notched = waveform_shape(template, peak, fs_hz, 0.0)
    assert rise_us == pytest.approx((peak - 10) / fs_hz * 1e6)
    assert not notched


@pytest.mark.parametrize("dip_at, dip_sds, noise_sd, trough", [
    (55, 1.5, 0.02, 0),    # a ripple of the template's noise on the flat top: the rise is the wave's
    (55, 15.0, 0.02, 55),  # a shoulder far above the noise: the rise starts there
    (55, 1.5, 0.0, 55),    # without a noise level every minimum counts
    (30, 1.5, 0.02, 30),   # below the main phase every minimum counts, however small
])
def test_rise_time_passes_noise_ripples_on_the_main_phase(dip_at, dip_sds, noise_sd, trough):
    """A slow wave (Gaussian, SD 20 samples = 400 µs at 50 kHz, peak 0.8 at sample 60)
    with a dip. A dip of 1.5 of the template's noise SDs 5 samples before the peak is a
    ripple: the rise time is the whole wave's (1200 µs; it read 100 µs, and a 1 ms wide
    high-pass after-wave passed for a fast potential); a 15-SD shoulder is real; so is
    any minimum below 0.3 of the peak (at sample 30 the wave is at 0.12), where the
    rising phase starts."""
    x = np.arange(120.0)
    template = np.exp(-0.5 * ((x - 60) / 20) ** 2) - 0.2
    template[dip_at] -= dip_sds * max(noise_sd, 0.02)
    _, rise_us, _ = waveform_shape(template, 60.0, 50e3, noise_sd)
    assert rise_us == pytest.approx((60 - trough) / 50e3 * 1e6)


@pytest.mark.parametrize("seed", [1, 5, 7])
def test_a_high_pass_after_wave_is_slow(seed):
    """The broad fibre of ``test_a_broad_fibre_under_the_triggers_slow_phase_is_no_phase``,
    broader (biphasic, 150 µs phases, 0.5 mV, 40 dB), leaves
    a ~25 µV after-wave of the amplifier's high-pass ~1.4 ms later, ~1 ms wide, which
    jitters with the fibre. On these seeds it is reported as a pair (on about half of
    seeds 0-9 it is not), and its rise time is a slow wave's (~460 µs): it read
    37-45 µs (the first noise ripple on its flat top)."""
    fs_hz, n = 50e3, 100
    rng, t0, clean = _discharges(seed)
    synth.add_potentials(clean, fs_hz, t0, "triphasic", 2e-3)
    synth.add_potentials(clean, fs_hz, t0 + 0.45e-3, "triphasic", 0.6e-3, width_s=150e-6)
    t1 = t0 + 0.9e-3 + 12e-6 / 1.128 * rng.standard_normal(n)
    synth.add_potentials(clean, fs_hz, t1, "biphasic", 0.5e-3, width_s=150e-6)
    noise_v = synth.filtered_peak_v("biphasic", 0.5e-3, fs_hz) / 100.0
    pairs = analyze_signal(synth._finish(clean, fs_hz, noise_v, rng), fs_hz).pairs
    (fibre,) = [p for p in pairs if abs(p.mean_ipi_us - 990.0) < 50.0]
    assert fibre.accepted
    (after_wave,) = [p for p in pairs if p is not fibre]
    assert after_wave.rise_time_us >= 300.0 and not after_wave.accepted


def _splits_reference(ref_times_s, rows, block_rates):
    """Slow reference of _splits_an_interval: the posterior odds written out with scipy."""
    intervals = np.diff(ref_times_s)
    intervals = intervals[np.isfinite(intervals)]
    mean = np.median(intervals)
    sd = max(1.4826 * np.median(np.abs(intervals - mean)), 0.01 * mean)
    out = []
    for j in rows:
        if j == 0 or j == len(ref_times_s) - 1:
            out.append(False)
            continue
        a, b = ref_times_s[j] - ref_times_s[j - 1], ref_times_s[j + 1] - ref_times_s[j]
        unit = np.prod(block_rates) * scipy.stats.norm.pdf(a, mean, sd) * scipy.stats.norm.pdf(b, mean, sd)
        other = _FALSE_REFERENCE_PRIOR * scipy.stats.norm.pdf(a + b, mean, sd) / (a + b)
        out.append(bool(other > _SPLIT_ODDS * unit))  # NaN neighbours: False
    return np.array(out)


@pytest.mark.parametrize("cv", [0.1, 0.2, 0.3])
def test_splits_an_interval_against_its_reference(cv):
    """The decision matches the written-out posterior odds on random units and
    discharges (some split intervals, some blocks at ordinary intervals, NaN neighbours),
    and depends on the pairs' blocking rates (fewer split the more often they block)
    and the unit's spread (at CV 0.1 most of the 20 inserted potentials split an
    interval, at CV 0.3 almost none)."""
    rng = np.random.default_rng(int(cv * 10))
    intervals = 0.1 * (1 + cv * rng.standard_normal(200)).clip(0.3)
    t = np.cumsum(intervals)
    extra = np.sort(rng.choice(np.arange(1, 199), 20, replace=False))
    t = np.insert(t, extra, t[extra - 1] + rng.uniform(0.1, 0.9, extra.size) * intervals[extra])
    t[rng.choice(t.size, 3, replace=False)] = np.nan
    rows = np.arange(t.size)
    inserted = extra + np.arange(extra.size)
    n_split = []
    for rates in ([0.3], [0.05], [0.02, 0.5], [0.01]):
        got = _splits_an_interval(t, rows, rates)
        np.testing.assert_array_equal(got, _splits_reference(t, rows, rates))
        assert not got[[0, -1]].any()
        n_split.append(got.sum())
    assert n_split == sorted(n_split)  # rarer blocks: more taken for another unit
    inserted_split = _splits_an_interval(t, inserted, [0.01]).sum()
    if cv == 0.1:
        assert inserted_split >= 15
    if cv == 0.3:
        assert inserted_split <= 2


def test_a_block_between_two_short_intervals_of_an_irregular_unit_stays():
    """Pinned near the line: a unit firing with interval CV 0.3, one pair blocking in
    1 % of its discharges, one of them between intervals of 0.47 and 0.37 x the median
    (as on the validation grid's CV 0.3 cell: posterior odds ~7 for another unit's
    potential, below the 10 that leave it out; a prior of 0.01 would drop it). A unit
    firing perfectly regularly (robust SD 0, taken as 1 % of the median) with one
    potential halfway through an interval: left out."""
    rng = np.random.default_rng(0)
    intervals = 0.1 * (1 + 0.3 * rng.standard_normal(100))
    median, sd = np.median(intervals), 1.4826 * np.median(np.abs(intervals - np.median(intervals)))
    intervals = median + (intervals - median) * 0.3 * median / sd  # robust SD exactly 0.3 x the median
    intervals[50:52] = 0.47 * median, 0.37 * median
    t = np.cumsum(intervals)
    assert not _splits_an_interval(t, np.array([50]), [0.01])[0]
    regular = np.cumsum(np.full(100, 0.1))
    regular = np.insert(regular, 50, regular[49] + 0.05)
    assert _splits_an_interval(regular, np.array([50]), [0.01])[0]


def test_blocks_of_an_irregularly_firing_unit_stay_blocks():
    """A unit firing irregularly (interval CV 0.3) whose second fibre blocks in 15 % of
    its discharges: its blocks fall at intervals as short as half the median, like
    another unit's potential between two discharges, but the unit's spread of intervals
    and the pair's blocking rate make them the likelier: every block is counted."""
    fs_hz = 50e3
    sig, truth = synth.voluntary(fs_hz=fs_hz, n_discharges=300, snr_db=30, jitter_us=(25.0,), block_prob=(0.15,),
                                 rate_cv=0.3, seed=3)
    r = analyze_signal(sig, fs_hz)
    (pair,) = r.pairs
    true_blocked = ~np.isfinite(truth.times_s[1])
    assert pair.n_discharges == truth.reference_s.size
    np.testing.assert_array_equal(pair.blocked, true_blocked)
    idis_s = np.diff(truth.reference_s)
    around = np.minimum(idis_s[np.flatnonzero(true_blocked[1:-1])], idis_s[np.flatnonzero(true_blocked[1:-1]) + 1])
    assert around.min() < 0.5 * np.median(idis_s)  # blocks at short intervals are in the test


def test_blocks_of_an_irregular_unit_with_a_slow_potential_stay_blocks():
    """The irregular unit above with a slow potential 2.5 ms after its trigger in every
    discharge (rise time > 300 µs, a rejected pseudo-pair). It no longer vouches for the
    reference, so the fibre's blocks are judged as possible false references: every
    block is still counted, and nothing else."""
    fs_hz = 50e3
    sig, truth = synth.voluntary(fs_hz=fs_hz, n_discharges=300, snr_db=30, jitter_us=(25.0,), block_prob=(0.15,),
                                 rate_cv=0.3, seed=3)
    r = analyze_signal(_with_slow_potential(sig, fs_hz, truth.reference_s, seed=3), fs_hz)
    fibre, slow = r.pairs
    assert not slow.accepted and slow.n_blocked == 0
    assert fibre.n_discharges == truth.reference_s.size
    np.testing.assert_array_equal(fibre.blocked, ~np.isfinite(truth.times_s[1]))


@pytest.mark.parametrize("seed, block_prob", [(1, 0.3), (3, 0.5), (6, 0.5)])
def test_no_trigger_discharge_is_lost_to_the_slow_potentials_group(seed, block_prob):
    """At 20 dB with the slow potential: the group of the fibre's and the slow
    potential's positive peaks (centre ~0.39 mV, broad) reached into the trigger's and
    took its lower discharges (here 48, 49 and 45 of 300 references lost). It stops at
    the amplitude histogram's valley: every reference is found and the blocks are exact."""
    fs_hz = 50e3
    sig, truth = synth.voluntary(fs_hz=fs_hz, n_discharges=300, snr_db=20, jitter_us=(25.0,),
                                 block_prob=(block_prob,), rate_cv=0.3, seed=seed)
    r = analyze_signal(_with_slow_potential(sig, fs_hz, truth.reference_s, seed=seed), fs_hz)
    assert r.reference_times_s.size == truth.reference_s.size
    assert np.abs(r.reference_times_s - truth.reference_s).max() < 50e-6
    np.testing.assert_array_equal(r.pairs[0].blocked, ~np.isfinite(truth.times_s[1]))


def test_a_reference_taken_before_the_unit_is_left_out():
    """In 6 discharges another unit's potential of the trigger's waveform and size comes
    1.5 ms before the trigger: the first of the two, it is taken as the reference, and
    the unit's potentials lie 1.5 ms late in that sweep, the fibre beyond its window
    and its excursion search (no potential at the mirrored place and intervals as
    usual, so the other rules do not judge it): a block, but the sweep holds the unit's
    waveform shifted by 1.5 ms (correlation 0.90-0.98 there, ~0.6 at the reference),
    and it is left out, in 5 of the 6 (the sixth correlates 0.79, under the 0.85 the
    rule asks). Elsewhere the pair's blocks are the fibre's true blocks (their sweeps
    correlate ~0.4 at any shift)."""
    fs_hz = 50e3
    sig, truth = synth.voluntary(fs_hz=fs_hz, n_discharges=150, snr_db=30, jitter_us=(25.0,), block_prob=(0.03,),
                                 seed=4)
    early_s = truth.reference_s[10:130:20] - 1.5e-3
    r = analyze_signal(_add_filtered(sig, fs_hz, early_s, 1e-3), fs_hz)
    (pair,) = r.pairs
    k = np.abs(truth.reference_s[:, None] - r.reference_times_s[None, :]).argmin(axis=0)
    off_s = r.reference_times_s - truth.reference_s[k]
    false = np.abs(off_s - np.median(off_s)) > 100e-6
    assert false.sum() <= 1 and pair.n_discharges == truth.reference_s.size - 6 + false.sum()
    np.testing.assert_array_equal(pair.blocked[~false], ~np.isfinite(truth.times_s[1][k[~false]]))
    assert pair.n_blocked - false.sum() >= 3


def test_the_unit_shifted_behind_a_reference_is_no_excursion():
    """In 12 discharges another unit's potential of the trigger's waveform and size comes
    0.5 ms before the trigger and is taken as the reference; the fibre (SD 40 µs) lies
    0.5 ms (12.5 SDs) late in those sweeps, within the excursion search's reach at 30 dB.
    The trigger's own waveform lies as far before it as the fibre's latency: the unit
    shifted, not the fibre's excursion, so those discharges stay blocks (taken for
    excursions, the MCD read 114.9 µs against 40.4: found in review)."""
    fs_hz = 50e3
    sig, truth = synth.voluntary(fs_hz=fs_hz, n_discharges=150, snr_db=30, jitter_us=(40.0,), block_prob=(0.05,),
                                 seed=4)
    early_s = truth.reference_s[10:130:10] - 0.5e-3
    r = analyze_signal(_add_filtered(sig, fs_hz, early_s, 1e-3), fs_hz)
    pair = min(r.pairs, key=lambda p: abs(p.mean_ipi_us - 1000.0))
    k = np.abs(truth.reference_s[:, None] - r.reference_times_s[None, :]).argmin(axis=0)
    off_s = r.reference_times_s - truth.reference_s[k]
    false = np.abs(off_s - np.median(off_s)) > 100e-6
    assert pair.blocked[false].all() and "latency-excursions" not in pair.flags
    true_mcd_us = compute_mcd(truth.times_s[1][k] - truth.reference_s[k]) * 1e6
    assert abs(pair.mcd_us - true_mcd_us) <= MCD_REL_30DB * true_mcd_us


def test_unit_elsewhere_on_built_sweeps():
    """Sweeps of a trigger and a fibre 1 ms later (noise 2 % of the peak), the fibre
    missing in four. Shifted by 1.5 ms: left out. The unit in its place and a copy of
    it 1.5 ms later (better matched at lag 0 than shifted, which reads lag 0 right):
    kept. The trigger alone: kept. A shifted unit whose fibre is inverted (correlation
    -0.3 there): kept (the threshold)."""
    fs_hz, n, length, ref = 50e3, 30, 600, 250
    rng = np.random.default_rng(1)
    t = np.arange(length)

    def unit(at, fibre=1.0):
        return synth.triphasic((t - at) / fs_hz, 1.0) + fibre * synth.biphasic((t - at - 50) / fs_hz, 1.0)

    data = np.array([unit(ref) for _ in range(n)]) + 0.02 * rng.standard_normal((n, length))
    cases = {0: unit(ref + 75), 1: unit(ref) + unit(ref + 75), 2: unit(ref, fibre=0.0), 3: unit(ref + 75, fibre=-1.0)}
    fibre_times = np.zeros(n)
    for row, sweep in cases.items():
        data[row] = sweep + 0.02 * rng.standard_normal(length)
        fibre_times[row] = np.nan
    pots = [LockedPotential(latency=0.0, half_window=15, polarity=1.0, amplitude_v=1.0, count=n),
            LockedPotential(latency=50.0, half_window=15, polarity=1.0, amplitude_v=1.0, count=n)]
    got = _unit_elsewhere(data, np.full(n, float(ref)), pots, [fibre_times], fs_hz)
    assert got.tolist()[:4] == [True, False, False, False] and not got[4:].any()


def _timed(times_s, timing_var, fs_hz=50e3):
    """A potential timed in every discharge (the fields the phase tests read: the
    template fits' positions, here the time points in samples)."""
    n = times_s.size
    return Timed(times_s, times_s * fs_hz, timing_var, (0.0, 0.0, False), (np.zeros(3), 1.0), (0, 0),
                  np.zeros(n, bool), timing_var, np.zeros(n, bool))


def _discharges(seed, fs_hz=50e3, n=100):
    """A generator, 100 discharge times at ~10 Hz (interval CV 0.15), s, and an empty
    signal holding them, V."""
    rng = np.random.default_rng(seed)
    t0 = 0.02 + np.cumsum(0.1 * (1 + 0.15 * rng.standard_normal(n)))
    return rng, t0, np.zeros(int((t0[-1] + 0.02) * fs_hz))


@pytest.mark.parametrize("seed", range(3))
def test_a_slow_tail_moving_with_a_fibre_is_no_pair(seed):
    """A 1.5 mV fibre (the trigger here: the largest) with a slow tail 1.4 ms after it
    (60 µV, rise ~320 µs, 4 % of its peak: beyond its waveform's extent), and a 1 mV
    fibre jittering 20 µs against it. The tail moves with the trigger; it was reported
    as a pair of its own (rejected by its rise time, MCD ~6 µs). It stays a potential of
    the model, but no pair."""
    fs_hz, n = 50e3, 100
    rng, t0, clean = _discharges(seed)
    synth.add_potentials(clean, fs_hz, t0, "triphasic", 1e-3)
    t1 = t0 + 1e-3 + 20e-6 / 1.128 * rng.standard_normal(n)
    synth.add_potentials(clean, fs_hz, t1, "biphasic", 1.5e-3)
    synth.add_potentials(clean, fs_hz, t1 + 1.4e-3, "triphasic", 0.06e-3, width_s=200e-6)
    result = analyze_signal(synth._finish(clean, fs_hz, 5e-6, rng), fs_hz)
    assert result.potential_latencies_s.size == 3
    (pair,) = result.pairs
    assert abs(pair.mean_ipi_us + 1035.0) < 10.0 and pair.accepted


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("follows", [True, False])
@pytest.mark.parametrize("trigger_jitter_us", [0.0, 25.0])
def test_a_slow_tail_following_its_fibre_is_no_pair(seed, follows, trigger_jitter_us):
    """A 1.5 mV trigger, a 1 mV fibre jittering ~25 µs (MCD) against the discharge, and
    a slow potential (60 µV, rise ~320 µs) 1.4 ms after the fibre. As the fibre's tail it
    follows the fibre's latency, but with ~15 µs of scatter of its own (on simulated
    studies other fibres' tails and other units' activity scatter a tail's time points
    3-4 times its bound): not rigid with the fibre, and it was reported as a pair of its
    own. Its consecutive latency differences follow the fibre's (slope 1): no pair. A
    slow fibre jittering on its own is still reported, rejected by its rise time: with
    a trigger that jitters as much as the fibre (found in review) its latency shares
    the trigger's jitter with the fibre's, slope ~0.5, and it was hidden too."""
    fs_hz, n = 50e3, 100
    rng, t0, clean = _discharges(seed)

    def jitter(mcd_us):
        return mcd_us * 1e-6 / 1.128 * rng.standard_normal(n)

    synth.add_potentials(clean, fs_hz, t0 + jitter(trigger_jitter_us), "biphasic", 1.5e-3)
    t1 = t0 + 1e-3 + jitter(25.0)
    synth.add_potentials(clean, fs_hz, t1, "triphasic", 1e-3)
    slow = (t1 + 1.4e-3 if follows else t0 + 2.4e-3 + jitter(25.0)) + 15e-6 * rng.standard_normal(n)
    synth.add_potentials(clean, fs_hz, slow, "triphasic", 0.06e-3, width_s=200e-6)
    result = analyze_signal(synth._finish(clean, fs_hz, 5e-6, rng), fs_hz)
    assert result.potential_latencies_s.size == 3
    assert abs(result.pairs[0].mean_ipi_us - 1000.0) < 60.0 and result.pairs[0].accepted  # (peak vs waveform centre)
    if follows:
        assert len(result.pairs) == 1
    else:
        (slow_pair,) = result.pairs[1:]
        assert not slow_pair.accepted and any("rise time" in r for r in slow_pair.reject_reasons)


def test_a_trigger_with_only_its_slow_tail_has_no_pair():
    """A fibre whose only time-locked potential is its own slow tail (1.4 ms after it,
    rise ~320 µs): no pair (before, one rejected pseudo-pair), a one-line error."""
    fs_hz = 50e3
    rng, t0, clean = _discharges(0)
    synth.add_potentials(clean, fs_hz, t0, "biphasic", 1.5e-3)
    synth.add_potentials(clean, fs_hz, t0 + 1.4e-3, "triphasic", 0.06e-3, width_s=200e-6)
    with pytest.raises(SfemgInputError, match="no potentials found time-locked"):
        analyze_signal(synth._finish(clean, fs_hz, 5e-6, rng), fs_hz)


def test_a_small_potential_leaves_the_others_timed_jointly(monkeypatch):
    """A trigger and a fibre 0.5 ms after it, overlapping (joint timing), and a third,
    small fibre 2.5 ms after it (20 dB: ~20 noise SDs peak to peak). The
    small one is timed alone (the joint model holds it, its positions are not taken), the
    two large ones jointly; before, the small one turned the joint fit off for all."""
    from sfemg.analysis import refine

    calls, in_joint = [], []
    monkeypatch.setattr(refine, "joint_positions", lambda *a: calls.append(a[1].shape) or _joint_positions(*a))
    timing = refine.joint_timing

    def joint_timing(*args):
        out = timing(*args)
        in_joint.append(out[1].in_joint)
        return out

    monkeypatch.setattr(refine, "joint_timing", joint_timing)
    sig, _ = synth.voluntary(fs_hz=50e3, n_discharges=100, snr_db=20.0, ipis_s=(0.5e-3, 2.5e-3),
                             jitter_us=(20.0, 30.0), amplitudes_v=(1e-3, 0.6e-3, 0.15e-3),
                             shapes=("triphasic", "biphasic", "biphasic"), block_prob=(0.0, 0.0), seed=2)
    result = analyze_signal(sig, 50e3)
    assert sorted(round(p.mean_ipi_us, -2) for p in result.pairs) == [500.0, 2500.0]
    assert calls == [(3, 100)]
    assert in_joint[0].tolist() == [True, True, False]  # the small one keeps its single fit


@pytest.mark.parametrize("seed", range(3))
def test_a_broad_fibre_under_the_triggers_slow_phase_is_no_phase(seed):
    """A 0.5 mV fibre with broad phases (rise ~180 µs) 0.9 ms after a 2 mV trigger, on the
    trigger's slow after-phase, jittering 12 µs (40 dB). The trigger's template holds it
    blurred by its jitter and the residual test left only ~1.5 noise energies: it was a
    phase (no pair, or a pseudo-pair at 2.3 ms). Given its own time points it explains
    most of that residual: a fibre."""
    fs_hz, n = 50e3, 100
    rng, t0, clean = _discharges(seed)
    synth.add_potentials(clean, fs_hz, t0, "triphasic", 2e-3)
    synth.add_potentials(clean, fs_hz, t0 + 0.45e-3, "triphasic", 0.6e-3, width_s=150e-6)  # its slow phase
    t1 = t0 + 0.9e-3 + 12e-6 / 1.128 * rng.standard_normal(n)
    synth.add_potentials(clean, fs_hz, t1, "biphasic", 0.5e-3, width_s=120e-6)
    noise_v = synth.filtered_peak_v("biphasic", 0.5e-3, fs_hz) / 100.0
    pairs = [p for p in analyze_signal(synth._finish(clean, fs_hz, noise_v, rng), fs_hz).pairs
             if abs(p.mean_ipi_us - 980.0) < 100.0]
    assert len(pairs) == 1
    true_us = compute_mcd(t1 - t0) * 1e6
    # (measured 0.8-5 %: its waveform lies on the trigger's, the MCD is uncertain by more)
    assert abs(pairs[0].mcd_us - true_us) <= MCD_REL_20DB * true_us


@pytest.mark.parametrize("relative_jitter_us, phase", [(0.0, True), (12.0, False)])
def test_a_phase_timed_far_off_in_a_few_discharges_is_still_a_phase(relative_jitter_us, phase):
    """A small group 220 µs before a kept fibre, timed with 2 µs error but 40-90 µs off in
    six discharges (other units' potentials under it; the demo study's pair014): the MCD
    of its time points against the fibre's is 4x its floor, and one whose model residual
    is above the limit was kept as a fibre of its own. The rigidity test reads the median
    step; a fibre jittering 12 µs against the kept one, with the same six, is no phase."""
    fs_hz, n = 50e3, 100
    rng = np.random.default_rng(4)
    kept_s = 0.1 * np.arange(n) + 2.14e-3 + 80e-6 * rng.standard_normal(n)
    error_s = 2e-6 / 1.128 * rng.standard_normal(n) + relative_jitter_us * 1e-6 / 1.128 * rng.standard_normal(n)
    error_s[[5, 21, 40, 55, 70, 88]] += np.array([60, -45, 80, -90, 40, 70]) * 1e-6
    floor_var = 0.5 * (2e-6 / 1.128 * fs_hz) ** 2  # each: their MCD alone would be 2 µs
    group = LockedPotential(latency=0.0, half_window=15, polarity=1.0, amplitude_v=0.23e-3, count=n)
    trigger = LockedPotential(latency=0.0, half_window=15, polarity=-1.0, amplitude_v=0.97e-3, count=n)
    assert _is_phase(_timed(kept_s - 220e-6 + error_s, floor_var), group, [_timed(kept_s, floor_var)], [True],
                     trigger, fs_hz, lambda: 2.1, lambda: False, AnalysisParams().flip_flop_separation) == phase


@pytest.mark.parametrize("seed", [0, 13])
def test_a_side_lobe_taken_in_turn_on_either_side_is_a_phase(seed):
    """A symmetric triphasic trigger (Mexican hat, 70 µs main phase, side lobes of 0.45
    of its peak at ±60 µs) sampled at 25 kHz with no anti-aliasing filter: a group at its
    side lobes is timed on the left one in some discharges, the right one in others. Its
    positions against the trigger's jitter by ~85 µs, and the aliased waveform leaves a
    model residual above the limit, so it was kept as a fibre: a flip-flop pair with a
    mean IPI of -6 µs and an MCD of 70 µs, accepted (found in review). Rigid within each
    of its two offsets, it is a phase."""
    fs_hz, n = 25e3, 150
    rng = np.random.default_rng(seed)
    t0 = 0.1 + np.cumsum(rng.normal(0.1, 0.01, n))
    t1 = t0 + 1e-3 + 20e-6 * rng.standard_normal(n)
    t = np.arange(int((t0[-1] + 0.2) * fs_hz)) / fs_hz
    x = 15e-6 * rng.standard_normal(t.size)
    for times_s, peak_v in ((t0, 1e-3), (t1, 0.6e-3)):
        for time_s in times_s:
            near = slice(int((time_s - 1e-3) * fs_hz), int((time_s + 1e-3) * fs_hz))
            u = (t[near] - time_s) / 35e-6
            x[near] += peak_v * (1 - u ** 2) * np.exp(-u ** 2 / 2)
    pairs = analyze_signal(x, fs_hz).pairs
    assert [round(p.mean_ipi_us / 100) for p in pairs] == [10]
    true_us = compute_mcd(t1 - t0) * 1e6
    assert abs(pairs[0].mcd_us - true_us) <= max(MCD_ABS_US_30DB, MCD_REL_30DB * true_us)


@pytest.mark.parametrize("fs_hz,seed", [(25e3, 1), (50e3, 4)])
def test_a_fibre_flip_flopping_within_the_triggers_waveform_is_no_phase(fs_hz, seed):
    """A 0.5 mV fibre 0.9 ms after a 2 mV trigger with its slow phase, its latency
    alternating between two values 120 µs apart (12 µs jitter within each): the rule for
    side lobes took it for a phase — its template blurred by the alternation inflates
    the timing floor it is judged against — and reported only its late lobe, ~300 µs off
    (found in review). Side lobes lie either side of the potential's time point, a
    flip-flopping fibre on one side: it is reported, flagged flip-flop."""
    n = 150
    rng = np.random.default_rng(seed)
    t0 = 0.02 + np.cumsum(0.1 * (1 + 0.15 * rng.standard_normal(n)))
    clean = np.zeros(int((t0[-1] + 0.02) * fs_hz))
    synth.add_potentials(clean, fs_hz, t0, "triphasic", 2e-3)
    synth.add_potentials(clean, fs_hz, t0 + 0.45e-3, "triphasic", 0.6e-3, width_s=150e-6)  # its slow phase
    t1 = t0 + 0.9e-3 + np.where(rng.random(n) < 0.5, -60e-6, 60e-6) + 12e-6 / 1.128 * rng.standard_normal(n)
    synth.add_potentials(clean, fs_hz, t1, "biphasic", 0.5e-3, width_s=120e-6)
    noise_v = synth.filtered_peak_v("biphasic", 0.5e-3, fs_hz) / 100.0
    pairs = analyze_signal(synth._finish(clean, fs_hz, noise_v, rng), fs_hz).pairs
    assert [(round(p.mean_ipi_us / 100), p.accepted, "flip-flop" in p.flags) for p in pairs] == [(10, True, True)]


@pytest.mark.parametrize("n,within_sd_us,judged_within", [(100, 1.0, True), (100, 15.0, True), (30, 1.0, False)])
def test_a_flip_flop_between_two_offsets_is_judged_within_each(n, within_sd_us, judged_within):
    """Relative positions alternating at random between two offsets 160 µs apart: how much
    they jitter is the MCD within either offset (a side lobe's ~1 µs, a flip-flopping
    fibre's own jitter), but only over 50 discharges or more (fewer Gaussian values
    split with Ashman's D > 4 too often)."""
    from sfemg.analysis.selection import _within_modes_mcd_us

    fs_hz = 50e3
    rng = np.random.default_rng(4)
    kept_s = np.arange(n) * 0.1 + 20e-6 * rng.standard_normal(n)
    offsets_s = np.where(rng.random(n) < 0.5, -80e-6, 80e-6) + within_sd_us * 1e-6 * rng.standard_normal(n)
    cand, kept = _timed(kept_s + offsets_s, 1.0), _timed(kept_s, 1.0)
    overall_us = compute_mcd(offsets_s) * 1e6
    got = _within_modes_mcd_us(cand, kept, fs_hz, overall_us, AnalysisParams().flip_flop_separation)
    assert got.alternates == got.either_side == judged_within  # (offsets either side of the kept one)
    if judged_within:
        upper = offsets_s > 0
        want_us = max(compute_mcd(offsets_s[upper]), compute_mcd(offsets_s[~upper])) * 1e6
        assert got.mcd_us == pytest.approx(want_us) and got.mcd_us < 0.5 * overall_us
    else:
        assert got.mcd_us == overall_us


def test_a_discharge_referenced_on_the_next_fibre_is_no_block():
    """Two fibres of the same size, 1 ms apart. In 6 discharges the trigger's potential is
    smaller (0.6 of its size: a potential of another unit superimposed), out of the
    trigger's amplitude group, and the next fibre's potential is taken as the reference:
    the pair would block there. The trigger's potential, found 1 ms before that reference,
    shows the discharge for what it is, and it is dropped."""
    fs_hz = 50e3
    sig, truth = synth.voluntary(fs_hz=fs_hz, n_discharges=150, snr_db=30, jitter_us=(25.0,),
                                 amplitudes_v=(1e-3, 1e-3), shapes=("triphasic", "triphasic"), seed=9)
    r = analyze_signal(_add_filtered(sig, fs_hz, truth.reference_s[10:130:20], -0.4e-3), fs_hz)
    (pair,) = r.pairs
    assert pair.n_blocked == 0
    off_s = np.abs(truth.reference_s[:, None] - r.reference_times_s[None, :]).min(axis=0)
    assert np.all(off_s < 50e-6) and r.reference_times_s.size >= truth.reference_s.size - 7


def _near_block_unit(excursion_s=0.0, other_s=None, other_jump_s=0.0, decoy_s=None, decoy=("biphasic", 0.6e-3),
                     jitter_s=100e-6, seed=5, other_amplitude_v=0.6e-3, steady=(), snr_db=30.0):
    """A trigger (1 mV triphasic) and a fibre (0.6 mV biphasic, 1 ms later; SD
    ``jitter_s``, 100 µs: MCD ~110 µs, a fibre near block; 10 % blocked) that fires
    ``excursion_s`` late in six discharges. With ``other_s``: a third, steady fibre of
    its shape (``other_amplitude_v``: negative, the other polarity) that far after it,
    which fires ``other_jump_s`` off in its blocks. ``steady``: (delay after the
    fibre's latency, s; amplitude, V) of more steady fibres of its shape. With
    ``decoy_s``: a potential of shape, size (and phase width) ``decoy`` that far from its median latency
    in each of its blocks (another unit's). 200 discharges at 50 kHz, ``snr_db`` (30 dB)."""
    fs, n = 50e3, 200
    rng = np.random.default_rng(seed)
    t0 = 0.02 + np.cumsum(0.1 * (1 + 0.15 * rng.standard_normal(n)))
    fibre = t0 + 1e-3 + jitter_s * rng.standard_normal(n)
    late = rng.choice(n, 6, replace=False)
    fibre[late] += excursion_s
    blocked = np.setdiff1d(rng.choice(n, 20, replace=False), late)
    clean = np.zeros(int((t0[-1] + 0.02) * fs))
    if decoy_s is not None:
        synth.add_potentials(clean, fs, t0[blocked] + 1e-3 + decoy_s, *decoy)
    if other_s is not None:
        other = t0 + 1e-3 + other_s + 10e-6 * rng.standard_normal(n)
        other[blocked] += other_jump_s
        synth.add_potentials(clean, fs, other, "biphasic", other_amplitude_v)
    for delay_s, amplitude_v in steady:
        synth.add_potentials(clean, fs, t0 + 1e-3 + delay_s + 10e-6 * rng.standard_normal(n), "biphasic", amplitude_v)
    fibre[blocked] = np.nan
    synth.add_potentials(clean, fs, t0, "triphasic", 1e-3)
    synth.add_potentials(clean, fs, fibre, "biphasic", 0.6e-3)
    rms = synth.filtered_peak_v("biphasic", 0.6e-3, fs) / 10 ** (snr_db / 20)
    return synth._finish(clean, fs, rms, rng), fs, t0, fibre, late


def _near_block_pair(**unit):
    """The analysed pair of :func:`_near_block_unit`'s fibre (1 ms after the trigger), and
    where that fibre truly blocked, per analysed discharge."""
    sig, fs, t0, fibre, _ = _near_block_unit(**unit)
    r = analyze_signal(sig, fs)
    k = np.abs(t0[:, None] - r.reference_times_s[None, :]).argmin(axis=0)
    return min(r.pairs, key=lambda p: abs(p.mean_ipi_us - 1000.0)), np.isnan(fibre[k])


@pytest.mark.parametrize("excursion_s, jitter_s, snr_db", [(450e-6, 100e-6, 30.0), (-400e-6, 100e-6, 30.0),
                                                           (600e-6, 60e-6, 30.0), (600e-6, 40e-6, 40.0)])
def test_latency_excursions_of_a_fibre_near_block_are_discharges_not_blocks(excursion_s, jitter_s, snr_db):
    """A fibre near block fires hundreds of µs off in some discharges: those discharges are
    found and timed, not counted as blocks (they are, with the search turned off). Also
    10 SDs off (600 µs at SD 60 µs), and 15 at 40 dB (SD 40 µs), as well fitted as its own
    discharges: simulated MG, MuSK MG and LEMS fibres fire up to 17.6 robust SDs off
    (searches limited to 8, then 12 SDs left those as blocks)."""
    sig, fs, t0, fibre, late = _near_block_unit(excursion_s, jitter_s=jitter_s, snr_db=snr_db)
    r = analyze_signal(sig, fs)
    k = np.abs(t0[:, None] - r.reference_times_s[None, :]).argmin(axis=0)
    pair = r.pairs[0]
    np.testing.assert_array_equal(pair.blocked, np.isnan(fibre[k]))
    rows = np.flatnonzero(np.isin(k, late))
    assert rows.size == late.size
    error_s = pair.ipis_s - (fibre - t0)[k]  # (the time point is a phase peak, 35 µs from t = 0)
    assert np.abs(error_s[rows] - np.nanmedian(error_s)).max() < 5e-6
    true_mcd = np.nanmean(np.abs(np.diff((fibre - t0)[k]))) * 1e6
    assert abs(pair.mcd_us - true_mcd) <= max(MCD_ABS_US_30DB, MCD_REL_30DB * true_mcd)
    assert "latency-excursions" in pair.flags and pair.accepted  # told, not rejected
    off = analyze_signal(sig, fs, params=AnalysisParams(excursion_window_us=0.0)).pairs[0]
    assert off.n_blocked > pair.n_blocked  # those beyond the search window (~400 µs)
    assert "latency-excursions" not in off.flags


@pytest.mark.parametrize("steady", [(), ((1.3e-3, 0.6e-3),)])
def test_excursions_beside_another_fibre_are_found_with_its_waveform_taken_out(monkeypatch, steady):
    """A fibre near block fires 450 µs late in six discharges, 250 µs before a steady
    fibre of the other polarity: on the sweeps as recorded the other fibre's waveform
    changes the excursions' scale and shape beyond the fibre's own (they are blocks);
    with its joint template subtracted they are found and timed
    (``found_without_the_others``), and the true blocks stay blocks. Also with a
    steady fibre of the fibre's polarity 850 µs beyond the excursions, in the search's
    reach: it is judged present in its window on the recorded sweeps, not on those
    with it subtracted (found in review: judged there, every excursion within its
    reach was left ambiguous, a block)."""
    from sfemg.analysis import refine

    sig, fs, t0, fibre, late = _near_block_unit(450e-6, other_s=700e-6, other_amplitude_v=-0.6e-3, steady=steady)

    def analysed():
        r = analyze_signal(sig, fs)
        k = np.abs(t0[:, None] - r.reference_times_s[None, :]).argmin(axis=0)
        return min(r.pairs, key=lambda p: abs(p.mean_ipi_us - 1000.0)), k

    pair, k = analysed()
    np.testing.assert_array_equal(pair.blocked, np.isnan(fibre[k]))
    rows = np.flatnonzero(np.isin(k, late))
    error_s = pair.ipis_s - (fibre - t0)[k]
    assert np.abs(error_s[rows] - np.nanmedian(error_s)).max() < 5e-6
    monkeypatch.setattr(refine, "found_without_the_others", lambda model, sw, pots, timed, *args: timed)
    without, k_without = analysed()
    assert without.blocked[np.isin(k_without, late)].sum() >= 5
    np.testing.assert_array_equal(k, k_without)
    assert not (pair.blocked & ~without.blocked).any()  # the search only takes blocks back


@pytest.mark.parametrize("seed", [5, 6, 7, 8])
def test_excursions_on_the_triggers_waveform_are_found_at_high_snr(seed):
    """A fibre near block fires 750 µs early in six discharges, on the trigger's last
    phases, at 45 dB. With the trigger subtracted at its positions (fitted, in those
    discharges, with the fibre judged blocked: they took part of its waveform) the
    excursions correlate with its template well above 0.9, but their misfit is several
    times that of its own discharges (where the trigger was fitted with it); that test
    of its own discharges' misfit would leave them blocks (1-3 of the six on each of
    these seeds; simulated MG and LEMS: a fibre 513 µs early on the trigger's last
    phases, misfit 7.3x its own). Found and timed, the true blocks stay blocks."""
    sig, fs, t0, fibre, late = _near_block_unit(-750e-6, seed=seed, snr_db=45.0)
    r = analyze_signal(sig, fs)
    k = np.abs(t0[:, None] - r.reference_times_s[None, :]).argmin(axis=0)
    pair = min(r.pairs, key=lambda p: abs(p.mean_ipi_us - 1000.0))
    np.testing.assert_array_equal(pair.blocked, np.isnan(fibre[k]))
    rows = np.flatnonzero(np.isin(k, late))
    error_s = pair.ipis_s - (fibre - t0)[k]
    assert np.abs(error_s[rows] - np.nanmedian(error_s)).max() < 5e-6


def test_excursions_are_not_judged_by_their_own_window_again(monkeypatch):
    """A fibre near block alone with its trigger, firing 450 µs late in six discharges:
    the excursions found on the recorded sweeps lie outside its search window, which
    is empty in them by definition; deciding the blocks again with the trigger taken
    out leaves them as they were (found in review: they were made blocks, then found
    again and re-timed, and a simulated LEMS excursion 612 µs off was lost)."""
    from sfemg.analysis import refine

    sig, fs, t0, fibre, late = _near_block_unit(450e-6)
    pair = analyze_signal(sig, fs).pairs[0]
    monkeypatch.setattr(refine, "found_without_the_others", lambda model, sw, pots, timed, *args: timed)
    without = analyze_signal(sig, fs).pairs[0]
    assert "latency-excursions" in pair.flags
    np.testing.assert_array_equal(pair.ipis_s, without.ipis_s)


def test_discharges_found_without_the_others_take_the_first_fits_reference(monkeypatch):
    """The fresh fit on the sweeps with the other potentials taken out has a template
    of its own, whose peak need not be the first fit's (on simulated studies the two
    differed by up to ±16 µs): the discharges it finds are moved onto the first fit's
    reference point. Here the first fit's positions are moved 3 samples (60 µs) as if its
    template peaked there: the excursions found follow them (unmoved, they came out
    ~20 µs off even after joint timing)."""
    from sfemg.analysis import core

    select = core.select_potentials

    def moved(*args, **kwargs):
        kept, timed, extents, model = select(*args, **kwargs)
        fibre = timed[1]  # by latency: the trigger, the fibre near block, the steady fibre
        timed = [timed[0], dataclasses.replace(fibre, positions=fibre.positions + 3.0,
                                               times_s=fibre.times_s + 3.0 / 50e3), *timed[2:]]
        return kept, timed, extents, model

    monkeypatch.setattr(core, "select_potentials", moved)
    sig, fs, t0, fibre, late = _near_block_unit(450e-6, other_s=700e-6, other_amplitude_v=-0.6e-3)
    r = analyze_signal(sig, fs)
    k = np.abs(t0[:, None] - r.reference_times_s[None, :]).argmin(axis=0)
    pair = min(r.pairs, key=lambda p: abs(p.mean_ipi_us - 1000.0))
    rows = np.flatnonzero(np.isin(k, late))
    assert not pair.blocked[rows].any()
    error_s = pair.ipis_s - (fibre - t0)[k]
    assert np.abs(error_s[rows] - np.nanmedian(error_s)).max() < 5e-6


def test_a_block_is_not_filled_by_another_fibre_at_the_excursion_distance():
    """A steady fibre of the same shape 700 µs after a fibre near block is in the
    excursion search's reach in every block: it is not taken for the blocked fibre."""
    pair, blocked = _near_block_pair(other_s=700e-6)
    assert pair.n_blocked >= 15
    np.testing.assert_array_equal(pair.blocked, blocked)


def test_a_steady_fibre_is_not_sought_far_outside_its_window():
    """Only a fibre that jitters much fires hundreds of µs off: a steady fibre's blocks
    stay blocks though a potential of its shape lies 600 µs away in each of them."""
    pair, blocked = _near_block_pair(decoy_s=600e-6, jitter_s=15e-6)
    assert pair.n_blocked >= 15 and "latency-excursions" not in pair.flags
    np.testing.assert_array_equal(pair.blocked, blocked)


def test_a_block_is_not_filled_by_another_fibres_own_excursion():
    """A steady fibre 1.2 ms after a fibre near block fires 650 µs early in each of its
    blocks: out of its own window and of the blocked fibre's (±400 µs), into the
    excursion search's reach (20 SDs, 1000 µs; found in review). Its potential is not
    taken for the blocked fibre."""
    pair, blocked = _near_block_pair(other_s=1.2e-3, other_jump_s=-650e-6)
    np.testing.assert_array_equal(pair.blocked, blocked)


@pytest.mark.parametrize("decoy, snr_db", [(("biphasic", 0.6e-3, 60e-6), 30.0), (("triphasic", -0.9e-3, 35e-6), 30.0),
                                           (("biphasic", 0.3e-3), 30.0), (("biphasic", 0.6e-3, 45e-6), 45.0)])
def test_a_block_is_not_filled_by_a_potential_of_another_shape_or_size(decoy, snr_db):
    """Another unit's potential 600 µs from a fibre near block's latency (beyond its
    window, in the excursion search's reach) in each of its blocks stays another unit's:
    one of the fibre's polarity and size but broader phases (60 against 35 µs), or
    triphasic — both taken for the fibre without the correlation test — or of half
    its size (the scale test); at 45 dB also one with phases only a little broader (45
    µs, correlating 0.91-0.95), which its own discharges' misfit tells apart also where
    the unit's other potentials were subtracted, away from them (without that test
    there, all 20 were taken: found in review)."""
    pair, blocked = _near_block_pair(decoy_s=600e-6, decoy=decoy, snr_db=snr_db)
    assert pair.n_blocked >= 15
    np.testing.assert_array_equal(pair.blocked, blocked)


def test_a_block_is_not_filled_by_a_like_potential_far_off_at_low_snr():
    """At 25 dB a fibre (SD 40 µs) has in each of its blocks another potential of its own
    shape and size 600 µs (15 SDs) off: beyond 12 SDs the search goes on only at 30 dB
    and more, where its own discharges' fits tell it from another potential, so those
    stay blocks (sought to 20 SDs at any SNR they were taken: validation grid, 40-80 µV,
    MCD 29 -> 43 µs)."""
    pair, blocked = _near_block_pair(decoy_s=600e-6, jitter_s=40e-6, snr_db=25.0)
    assert blocked.sum() >= 15
    np.testing.assert_array_equal(pair.blocked, blocked)


def test_unit_shifted_onto_an_excursion_candidate():
    """Sweeps of a unit of three fibres (triphasic, peaks at 0, 1 and 2.6 ms from the
    reference) and an excursion candidate of the middle one, per case: its true
    excursion 0.6 ms late (no); the whole unit 0.6 ms late, the candidate the fibre (yes:
    the trigger's peak lies the fibre's latency before it); another unit's potential
    taken as the reference 2 ms before the unit, the candidate the trigger's own
    potential 1 ms off the fibre's latency (yes: the fibre's peak lies its latency
    after it); the fibre 2.6 ms late, where the third fibre sits as far after the
    trigger as the fibre's latency is before the candidate (no: the third is present in
    its own window, so the unit has not moved; found in review, every such excursion was
    a block). Without a potential at latency 0 (a stimulated recording) nothing is
    judged."""
    from sfemg.analysis.potentials import _unit_shifted

    fs, length, ref = 50e3, 600, 200
    t = np.arange(length)

    def unit(shift, late=0):
        return sum(synth.triphasic((t - ref - shift - at) / fs, 1e-3) for at in (0, 50 + late, 130))

    rows = np.array([unit(0, late=30), unit(30), unit(100) + synth.triphasic((t - ref) / fs, 1e-3),
                     unit(0, late=130)])
    cols = np.array([ref + 80, ref + 80, ref + 100, ref + 180])
    trigger, fibre, steady = (LockedPotential(latency=lat, half_window=15, polarity=1.0, amplitude_v=1e-3, count=50)
                              for lat in (0.0, 50.0, 130.0))
    ref_pos = np.full(cols.size, float(ref))
    peaks_v = rows[np.arange(cols.size), cols]
    got = _unit_shifted(rows, ref_pos, cols, peaks_v, fibre, [trigger, steady], 0.5, 12)
    assert got.tolist() == [False, True, True, False]
    assert not _unit_shifted(rows, ref_pos, cols, peaks_v, fibre, [steady], 0.5, 12).any()


def test_excursion_search_beside_a_potential_whose_window_is_outside_the_sweep():
    """Windowed recordings place the reference per sweep: another potential's window can
    lie beyond a sweep's end (found in review: an empty window crashed the search). A
    candidate within that potential's reach is ambiguous (it may be its excursion) and
    stays a block; out of its reach it is taken; also within reach of a potential a
    tenth of its size, whose excursion it cannot be (simulated LEMS: a 0.19 mV phase
    made a 1.8 mV fibre's excursion a block); with 9 discharges present nothing is
    sought."""
    from sfemg.analysis.potentials import _excursions, measure_potential
    from sfemg.analysis.timing import fit_template

    fs, length, n, fit_half, noise = 50e3, 240, 40, 30, 1e-5
    rng = np.random.default_rng(2)
    pos = 150.0 + rng.normal(0, 5, n)                         # ~100 µs SD: a fibre near block
    late = np.arange(5)
    pos[late] = 175.0                                         # 500 µs late: out of its ±15 window
    t = np.arange(length)
    data = np.vstack([synth.triphasic((t - p) / fs, 1e-3) for p in pos]) + rng.normal(0, noise, (n, length))
    ref_pos = np.full(n, 100.0)
    pot = LockedPotential(latency=50.0, half_window=15, polarity=1.0, amplitude_v=1e-3, count=n - late.size)
    present, seg_start, segs, _ = measure_potential(data, ref_pos, pot, fit_half, False, 0.5)
    assert not present[late].any() and present[late.size:].all()
    fit = fit_template(segs[present], np.full(fit_half + 1, (2 * fit_half + 1) * noise ** 2))
    params = AnalysisParams(excursion_window_us=2000.0)  # reach 100 samples; 12 SDs: 60
    beyond = LockedPotential(latency=150.0, half_window=10, polarity=1.0, amplitude_v=1e-3, count=n)  # 240-260
    for avoid, found in (([beyond], []), ([dataclasses.replace(beyond, latency=400.0)], late.tolist()),
                         ([dataclasses.replace(beyond, amplitude_v=0.1e-3)], late.tolist())):
        rows, _, _ = _excursions(data, data, ref_pos, pot, fit, present, seg_start, avoid, fit_half, params, fs,
                                 noise)
        assert rows.tolist() == found
    few = present & (np.cumsum(present) <= 9)  # a robust SD of 9 discharges is not one: no search
    assert _excursions(data, data, ref_pos, pot, fit, few, seg_start, [], fit_half, params, fs, noise)[0].size == 0


@pytest.mark.parametrize("snr_db", [40.0, 30.0])
def test_a_peak_alternating_between_side_lobes_is_no_second_fibre(snr_db):
    """A sharp triphasic response at 25 kHz, aliased by the front end: the peak beside its
    main phase lands on one or the other negative lobe from sweep to sweep. That group
    flip-flops by ~160 µs against the response but is rigid on either lobe: a phase of it,
    not a second fibre (it was reported as one, accepted, MCD 65-74 µs)."""
    signal, stimuli, truth = synth.front_end_stimulated(snr_db=snr_db, seed=0)
    result = analyze_signal(signal, 25e3, mode="stimulated", stimulus_times_s=stimuli)
    true_mcd_us = truth.mcd_s(0, None) * 1e6
    assert [p.label for p in result.pairs] == ["R1"]
    assert abs(result.pairs[0].mcd_us - true_mcd_us) <= max(0.5, 0.03 * true_mcd_us)


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_an_aliased_response_with_stimuli_on_the_sampling_clock(seed):
    """The same sharp response with every stimulus at one sub-sample phase (5 µs SD, so
    the responses' sampling phases spread by ~0.12 sample): the image-aware refit still
    tells the base band from the image. The plain fit's shifts come out compressed to
    0.45-0.65 of the truth at these phases; judged on them the phases once looked too
    alike to try, and the MCD read -35 to -57 %, rejected as below 5 µs."""
    signal, stimuli, truth = synth.front_end_stimulated(snr_db=30.0, asynchronous=False, artefact_v=0.0, seed=seed)
    result = analyze_signal(signal, 25e3, mode="stimulated", stimulus_times_s=stimuli)
    true_mcd_us = truth.mcd_s(0, None) * 1e6
    (pair,) = result.pairs
    assert abs(pair.mcd_us - true_mcd_us) <= max(0.5, 0.03 * true_mcd_us), (pair.mcd_us, true_mcd_us)
    assert pair.accepted


def test_stimulus_times_make_a_signal_stimulated_unless_told_otherwise():
    """``analyze_signal`` with stimulus times and no mode analysed it as voluntary, the
    artefact the trigger (a foreign-data review); a Recording took it as stimulated."""
    sig, stim, _ = synth.stimulated(fs_hz=50e3, n_stimuli=60, jitter_us=(20.0,), seed=22)
    r = analyze_signal(sig, 50e3, stimulus_times_s=stim)
    assert r.mode == "stimulated" and [p.label for p in r.pairs] == ["R1"]
    assert r.pairs[0].mcd_us == analyze_signal(sig, 50e3, mode="stimulated", stimulus_times_s=stim).pairs[0].mcd_us


def test_the_summary_gives_the_discharges_and_their_rate():
    """The issue asks for the firing rate and the number of discharges: computed, but in
    no output but the report's pair page (found in review); now in the ``--json`` summary
    per recording."""
    sig, truth = synth.voluntary(rate_hz=12.0, rate_cv=0.0, n_discharges=120, seed=5)
    r = analyze_signal(sig, 50e3)
    summary = r.to_json_dict()
    assert summary["n_discharges"] == 120
    assert summary["firing_rate_hz"] == pytest.approx(12.0, rel=1e-3)
    sig, stim, _ = synth.stimulated(rate_hz=5.0, n_stimuli=80, seed=5)
    summary = analyze_signal(sig, 50e3, mode="stimulated", stimulus_times_s=stim).to_json_dict()
    assert summary["n_discharges"] == 80 and summary["firing_rate_hz"] == pytest.approx(5.0, rel=1e-6)
