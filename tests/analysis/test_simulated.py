"""Analysis of the toolkit's own simulated studies against their ground truth.

Each measured potential is matched to the simulated fibre whose true event times it
follows (constant offset up to timing error); a recording's pairs are right when every
fibre other than the trigger's that fires with it in two consecutive discharges at least
appears exactly once and nothing else is reported (one that never does — MG, near
block — has no measurable pair to find).
What is asserted is what the analysis achieves (docs/analysis.md §6), with the
tolerances of ``tolerances.py``; the issue's targets that are not met yet are listed
there and in §10.
"""

import numpy as np
import pytest

from sfemg.analysis import analyze_recording
from sfemg.analysis.jitter import compute_mcd
from sfemg.errors import SfemgInputError
from sfemg.synthesis import simulate_study

from .tolerances import (
    MCD_ABS_US_30DB,
    MCD_REL_30DB,
    SIM_ACCEPTED_REAL_FRACTION,
    SIM_BLOCKING_EXACT_FRACTION,
    SIM_BLOCKING_WRONG_DISCHARGES,
    SIM_FALSE_TRIGGER_FRACTION,
    SIM_MCD_MAX_REL,
    SIM_MCD_MEDIAN_REL,
    SIM_MCD_TARGET_FRACTION,
    SIM_PAIRS_EXACT_FRACTION,
)

#: A time point follows a fibre when the median absolute deviation of (time point - true
#: event time) is below this, s: timing error is a few µs, another fibre adds its jitter.
MATCH_MAD_S = 5e-6
#: ... with a constant offset (potential peak vs the fibre's event time) below this, s.
MATCH_OFFSET_S = 1e-3

SEEDS = (1, 2, 3)
SCENARIOS = {
    "healthy-edc": dict(preset="healthy-edc"),
    "achr-mg-moderate": dict(preset="achr-mg-moderate"),
    "healthy-edc-25khz": dict(preset="healthy-edc", fs_hz=25_000.0),
}


def match_fibre(times_s, gt):
    """The fibre whose true event times ``times_s`` follow (NaN = not measured), or None."""
    t = times_s[np.isfinite(times_s)]
    best, best_mad = None, np.inf
    for f in range(gt.n_fibres):
        ev = np.sort(gt.event_times_s[f][np.isfinite(gt.event_times_s[f])])
        if ev.size < 2 or t.size < 3:
            continue
        i = np.clip(np.searchsorted(ev, t), 1, ev.size - 1)
        d = t - np.where(np.abs(t - ev[i - 1]) < np.abs(t - ev[i]), ev[i - 1], ev[i])
        mad = np.median(np.abs(d - np.median(d)))
        if abs(np.median(d)) < MATCH_OFFSET_S and mad < best_mad:
            best, best_mad = f, mad
    return best if best_mad < MATCH_MAD_S else None


def reference_discharges(reference_times_s, gt):
    """Index of the unit's discharge that each reference follows: the last one before it,
    as the validation scoring maps them (``sfemg.validation.scoring``; references before
    the first discharge are mapped to it, not dropped: they count as false triggers). A
    reference on
    another fibre's potential in a discharge where the reference's own fibre blocked
    then counts as a false trigger (its fibre's event is NaN there) and every pair as
    blocked in it; mapped to the nearest event of its fibre instead, it was taken for a
    neighbouring discharge ~100 ms away and its blocks for wrong ones."""
    return np.clip(np.searchsorted(gt.discharge_times_s, reference_times_s, side="right") - 1, 0, None)


def wanted_fibres(gt, ref_fibre, discharges=None):
    """The fibres other than ``ref_fibre`` that a pair can be measured for: firing together
    with it in at least two consecutive ``discharges`` (indices into the unit's
    discharges; default all), so that their intervals have an MCD. A fibre that never
    fires, or never twice in a row (MG near block: 0-3 % of the discharges), has no pair
    to find; one that fires rarely but measurably is still required (flagged
    few-discharges by the analysis)."""
    rows = np.arange(gt.discharge_times_s.size) if discharges is None else discharges
    ref = gt.event_times_s[ref_fibre][rows]
    return [f for f in range(gt.n_fibres) if f != ref_fibre
            and np.isfinite(np.diff(gt.event_times_s[f][rows] - ref)).any()]


def score(rec, result):
    """Compare one analysed recording with its ground truth.

    Returns
    -------
    dict
        ``pairs_exact`` (bool), ``accepted_real`` (bool: every accepted pair is a simulated
        fibre other than the trigger's, each once — the pairs a clinician counts),
        ``false_triggers`` (reference times that are no discharge of the trigger's fibre),
        and ``pairs``: per matched pair (measured MCD µs, true MCD µs over the same
        discharges, blocked discharges wrong, discharges, accepted).
    """
    gt = rec.ground_truth
    ref_fibre = match_fibre(np.asarray(result.reference_times_s), gt)
    any_accepted = any(p.accepted for p in result.pairs)
    if ref_fibre is None:
        return dict(pairs_exact=False, accepted_real=not any_accepted,
                    false_triggers=len(result.reference_times_s), pairs=[])
    k = reference_discharges(result.reference_times_s, gt)
    ev_ref = gt.event_times_s[ref_fibre][k]  # NaN where the reference's fibre blocked
    offset = np.nanmedian(result.reference_times_s - ev_ref)
    false_triggers = int(np.sum(~(np.abs(result.reference_times_s - ev_ref - offset) <= 50e-6))
                         + (np.unique(k).size < k.size))
    fibres, pairs = [], []
    for p in result.pairs:
        f = match_fibre(np.asarray(p.time_points_s), gt)
        fibres.append(f)
        if f is None or f == ref_fibre:
            continue
        ipi = gt.event_times_s[f][k] - ev_ref
        pairs.append((p.mcd_us, compute_mcd(ipi) * 1e6,
                      int(np.sum(np.isnan(ipi) != p.blocked)), ipi.size, p.accepted))
    wanted = wanted_fibres(gt, ref_fibre, k)
    found = sorted(f for f in fibres if f is not None)
    accepted = [f for f, p in zip(fibres, result.pairs) if p.accepted]
    accepted_real = None not in accepted and ref_fibre not in accepted and len(set(accepted)) == len(accepted)
    exact = (None not in fibres and ref_fibre not in found and len(set(found)) == len(found)
             and set(wanted) <= set(found))
    return dict(pairs_exact=exact, accepted_real=accepted_real, false_triggers=false_triggers, pairs=pairs)


def score_error(rec):
    """:func:`score` of a voluntary recording whose analysis found no pair (an
    SfemgInputError): right when the trigger's fibre has no fibre to pair with
    (:func:`wanted_fibres`)."""
    gt = rec.ground_truth
    assert gt.trigger_fibre >= 0, "voluntary recordings only"
    return dict(pairs_exact=not wanted_fibres(gt, gt.trigger_fibre), accepted_real=True, false_triggers=0,
                pairs=[])


@pytest.fixture(scope="module", params=[(name, seed) for seed in SEEDS for name in SCENARIOS],
                ids=lambda p: f"{p[0]}-seed{p[1]}")
def scored(request):
    name, seed = request.param
    kw = dict(SCENARIOS[name])
    study = simulate_study(kw.pop("preset"), n_recordings=10, n_discharges=100, seed=seed, **kw)
    out = []
    for rec in study.recordings:
        try:
            result = analyze_recording(rec)
            out.append(dict(score(rec, result), n_discharges=len(result.reference_times_s)))
        except SfemgInputError:
            out.append(dict(score_error(rec), n_discharges=0))
    return request.param, out


def test_pairs_found(scored):
    _, scored = scored
    exact = np.mean([s["pairs_exact"] for s in scored])
    assert exact >= SIM_PAIRS_EXACT_FRACTION, exact


def test_accepted_pairs_are_real_fibres(scored):
    """The pairs that count for the verdict: no pseudo-pair and no fibre twice among the
    accepted ones (the extra pairs of the recordings not exact are mostly slow phases,
    rejected by their rise time)."""
    _, scored = scored
    real = np.mean([s["accepted_real"] for s in scored])
    assert real >= SIM_ACCEPTED_REAL_FRACTION, real


def test_trigger_discharges(scored):
    _, scored = scored
    false = sum(s["false_triggers"] for s in scored) / sum(s["n_discharges"] for s in scored)
    assert false <= SIM_FALSE_TRIGGER_FRACTION, false


def test_blocked_discharges(scored):
    _, scored = scored
    pairs = [p for s in scored for p in s["pairs"]]
    exact = np.mean([p[2] == 0 for p in pairs])
    wrong = sum(p[2] for p in pairs) / sum(p[3] for p in pairs)
    assert exact >= SIM_BLOCKING_EXACT_FRACTION, exact
    assert wrong <= SIM_BLOCKING_WRONG_DISCHARGES, wrong


def test_mcd_against_truth(scored):
    _, scored = scored
    measured, true = np.array([p[:2] for s in scored for p in s["pairs"]]).T
    rel = np.abs(measured - true) / true
    within = np.abs(measured - true) <= np.maximum(MCD_ABS_US_30DB, MCD_REL_30DB * true)
    assert np.median(rel) <= SIM_MCD_MEDIAN_REL, np.median(rel)
    assert np.max(rel) <= SIM_MCD_MAX_REL, np.max(rel)
    assert np.mean(within) >= SIM_MCD_TARGET_FRACTION, np.mean(within)


#: The test studies that meet the issue's targets (the others are expected to fail them).
MEETS_ISSUE_TARGETS = {("achr-mg-moderate", 2), ("achr-mg-moderate", 3)}


def test_issue_targets(scored, request):
    """The issue's own targets, unloosened: every fibre found once in >= 95 % of
    recordings, blocked discharges found exactly, every MCD within max(0.5 µs, 3 %).
    Asserted on the studies that meet them, expected to fail (strictly) on the rest."""
    study, scored = scored
    if study not in MEETS_ISSUE_TARGETS:
        request.applymarker(pytest.mark.xfail(strict=True, reason="issue 3 targets not met on this simulated "
                                              "study (the MCD's own spread for overlapping pairs, "
                                              "docs/analysis.md §6; after-phase pseudo-pairs, §10); "
                                              "the tests above are regression limits"))
    pairs = [p for s in scored for p in s["pairs"]]
    measured, true = np.array([p[:2] for p in pairs]).T
    assert np.mean([s["pairs_exact"] for s in scored]) >= 0.95
    assert all(p[2] == 0 for p in pairs)
    assert np.all(np.abs(measured - true) <= np.maximum(MCD_ABS_US_30DB, MCD_REL_30DB * true))


def test_the_triggers_tail_in_a_jittery_fibres_window_is_no_discharge_of_it():
    """achr-mg-moderate, seed 8, recording 1 (found on seeds 7-12): a 0.39 mV fibre
    near block (true MCD 135 µs, 9 blocks), whose search window (±480 µs) holds the
    trigger's 0.25 mV slow negative tail 290 µs before its latency. In 8 of its blocks
    the tail passed for it, timed 290 µs early (MCD 170 µs). With the potentials that
    move against it subtracted it is clearly absent there: those are blocks again."""
    study = simulate_study("achr-mg-moderate", n_recordings=10, n_discharges=100, seed=8)
    rec = study.recordings[1]
    (measured_us, true_us, wrong, _, _), = score(rec, analyze_recording(rec))["pairs"]
    assert wrong <= 1
    assert abs(measured_us - true_us) < 0.1 * true_us


def test_another_units_potential_in_a_blocked_fibres_window_is_no_discharge_of_it():
    """achr-mg-moderate, seed 11, recording 2 (found on seeds 7-12): a fibre near block
    (true MCD 171 µs, 28 blocks) whose search window holds, in one discharge where it
    blocked, another unit's potential 280 µs before its latency. The fibre's fit settled
    on it (MCD 181.3 µs); a background template alone explains the window far better
    than the fibre does (docs/analysis.md §2), so that discharge is a block again."""
    study = simulate_study("achr-mg-moderate", n_recordings=10, n_discharges=100, seed=11)
    rec = study.recordings[2]
    (measured_us, true_us, wrong, _, _), = score(rec, analyze_recording(rec))["pairs"]
    assert wrong == 0
    assert abs(measured_us - true_us) < 0.01 * true_us


@pytest.mark.parametrize("preset, seed, recording", [
    ("achr-mg-moderate", 5, 4),   # 513 µs early on the trigger's last phases: found with it subtracted
    ("lems", 20, 5),              # two discharges 12.5 robust SDs off (the search reached 12)
    ("lems", 5, 4),               # 560 µs late, within reach of a 0.19 mV potential it emptied
    ("achr-mg-moderate", 17, 0),  # a reference on another unit's potential: the trigger's not the fibre's
])
def test_latency_excursions_of_simulated_fibres_near_block(preset, seed, recording):
    """Simulated fibres near block (found on seeds 1-30, seventeenth session) whose
    latency excursions were blocks (MCD 126.3 µs against 131.5; 104.3 against 127.4;
    78.3 against 90.9), and a reference on another unit's potential 0.95 ms before the
    unit's discharge, where the search, reaching 20 robust SDs, took the trigger's own
    potential for the fibre 843 µs off (MCD 69.0 against 51.7): docs/analysis.md §1.5."""
    rec = simulate_study(preset, n_recordings=10, n_discharges=100, seed=seed).recordings[recording]
    (measured_us, true_us, wrong, _, _), = score(rec, analyze_recording(rec))["pairs"]
    assert wrong == 0
    assert abs(measured_us - true_us) < MCD_REL_30DB * true_us


def test_responses_of_one_fibre_kept_apart_are_not_subtracted_from_each_other(monkeypatch):
    """Stimulated, concentric, achr-mg-severe, seed 1, recording 5: two potentials that
    move together (one fibre's, kept apart) hold each other's waveform in their joint
    templates; subtracting one, the other is clearly absent where it fired. Only the
    potentials that move against it are subtracted before its blocks are decided again
    (with every other one subtracted: 17 false blocks in its response R1, 4 without).
    R1 is the fibre's slow phase, not reported as a response since the twelfth session
    (``selection.slow_phases``); reported here to see its blocks."""
    from sfemg.analysis import core

    monkeypatch.setattr(core, "slow_phases", lambda timed, *args: [False] * len(timed))
    study = simulate_study("achr-mg-severe", mode="stimulated", n_recordings=10, n_discharges=100, seed=1,
                           electrode="concentric")
    rec = study.recordings[5]
    result = analyze_recording(rec)
    stimuli = np.asarray(rec.stimulus_times_s)
    k = np.abs(stimuli[:, None] - result.reference_times_s[None, :]).argmin(axis=0)
    pair = next(p for p in result.pairs if p.label == "R1")
    fibre = match_fibre(np.asarray(pair.time_points_s), rec.ground_truth)
    fired = np.isfinite(rec.ground_truth.event_times_s[fibre][k])
    assert np.sum(pair.blocked & fired) <= 4


def test_a_potential_made_of_the_others_waveforms_keeps_its_discharges():
    """The demo's configuration, seed 1, recording 7 (pair008): one trigger choice holds
    10 discharges, and a potential 2.1 ms before it is clearly absent in all of them once
    the potentials that move against it are subtracted. It is left as the selection
    decided (emptied, the joint fit had no position to start from: a RuntimeWarning,
    an error here); the recording has no time-locked potential, a one-line error."""
    from sfemg.demo import DEMO_STUDY

    with pytest.raises(SfemgInputError, match="no potentials found"):
        analyze_recording(simulate_study(seed=1, **DEMO_STUDY).recordings[7])


def test_phases_are_judged_on_the_template_fits_whatever_the_method():
    """The default validation grid's cell at 10 µV noise and 0.5 receptor blockade (5
    repeats of 4 recordings, as sweeps): analysed with the peak method, whose time
    points scatter more than the template fits' floor, phases looked like fibres
    jittering against the trigger (19 pseudo-pairs in 20 recordings). Judged on the
    template fits' positions they are phases (2 left)."""
    from sfemg.analysis import AnalysisParams
    from sfemg.validation import Cell
    from sfemg.validation.grid import simulate_repeat

    cell, unmatched = Cell(noise_rms_v=10e-6, receptor_blockade=0.5), 0
    for repeat in range(5):
        for rec in simulate_repeat(cell, 4, 1000 + repeat).recordings:
            result = analyze_recording(rec, AnalysisParams(method="peak"))
            unmatched += sum(match_fibre(np.asarray(p.time_points_s), rec.ground_truth) is None
                             for p in result.pairs)
    assert unmatched <= 2


def test_a_small_group_timed_on_a_bigger_neighbour_is_no_pair():
    """Seed 6, recording 7: a 0.2 mV group 0.1 ms before a 2.2 mV fibre; its fit segment
    holds mostly that fibre, the template's reference lands on it (1.7 mV) and the time
    points follow a blend of both fibres. It was reported as an accepted pair of its own
    (MCD 18 µs beside the fibre's 23 µs)."""
    rec = simulate_study("healthy-edc", n_recordings=10, n_discharges=100, seed=6).recordings[7]
    s = score(rec, analyze_recording(rec))
    assert s["accepted_real"] and s["pairs_exact"]


def test_a_fibre_is_not_hidden_as_the_phase_of_a_slow_potential_it_drags():
    """The default validation grid's cell 17 (10 µV, 100 kHz, 0.5 receptor blockade),
    repeat 2, recording 3: the fibre (true IPI 887 µs, MCD ~65 µs, rise 340 µs) and a
    larger slow pseudo-potential 440 µs before it (rise 422 µs) whose time points carry
    a small share of the fibre's. The fibre's latency differences regressed on the
    pseudo-potential's give a slope of 1.4 (the regression run the wrong way): a slow
    potential is hidden as following only a fast one (a fibre's spike); the fibre stays."""
    from sfemg.validation.grid import get_grid, repeat_seed, simulate_repeat

    cell = get_grid("default").cells[17]
    rec = simulate_repeat(cell, 4, repeat_seed(0, 17, 2)).recordings[3]
    result = analyze_recording(rec)
    assert any(abs(p.mean_ipi_us - 887.0) < 150.0 for p in result.pairs)


def test_a_small_group_timed_on_a_neighbours_tapered_phase_is_no_pair():
    """Seed 10, recording 5: a 0.23 mV group 570 µs before a 2 mV fibre phase. Its ±600 µs
    fit segment ends on that phase, which the segment's taper shrinks below the group's
    own peak, so the template's reference lands there (500 µs from the group's peak,
    outside its search window), not on a bigger peak. It was reported as a second,
    accepted pair of the fibre (MCD 36.7 µs beside the fibre's 25.9 µs)."""
    rec = simulate_study("healthy-edc", n_recordings=10, n_discharges=100, seed=10).recordings[5]
    s = score(rec, analyze_recording(rec))
    assert s["accepted_real"] and s["pairs_exact"]


def test_a_slow_fibre_on_the_triggers_waveform_is_found():
    """Seed 4, recording 9: the second fibre lies 156 µm from the electrode (rise 340 µs)
    and 1 ms after the trigger, on its waveform; it jitters 16 µs against it. The
    trigger's template holds it blurred, and only what it explains of the model's
    residual tells it from a phase: that test was applied to groups fast enough to be
    accepted only, so it was dropped and its slow tail 2.3 ms after the trigger was
    reported instead (a pseudo-pair)."""
    rec = simulate_study("healthy-edc", n_recordings=10, n_discharges=100, seed=4).recordings[9]
    s = score(rec, analyze_recording(rec))
    assert s["pairs_exact"]
    (measured_us, true_us, wrong_blocks, _, _), = s["pairs"]
    assert abs(measured_us - true_us) <= MCD_REL_30DB * true_us and wrong_blocks == 0


def test_a_response_cut_by_the_search_window_is_noted():
    """An endplate at 0.8 receptor blockade, blocking in 18 of 49 stimuli, its responses
    4.6-5.2 ms after them: at the default 5 ms window its later discharges were taken for
    blocks (27, MCD 259 µs against 220) without a word (found in a teacher's review). A
    note says so and how to widen the window, which gets it right."""
    from sfemg.analysis import AnalysisParams
    from sfemg.synthesis.physiology import Disease

    study = simulate_study("healthy-edc", n_recordings=13, seed=5, mode="stimulated", electrode="concentric",
                           disease=Disease(receptor_blockade=0.8, affected_fraction=1.0, severity_spread_cv=0.0))
    rec = study.recordings[12]
    result = analyze_recording(rec)
    assert any("the end of search_window_ms (5 ms)" in note and "--search-window-ms" in note for note in result.notes)
    wide = analyze_recording(rec, AnalysisParams(search_window_ms=6.0))
    stimuli = np.asarray(wide.reference_times_s)
    k = np.searchsorted(rec.ground_truth.discharge_times_s, stimuli + 1e-6, side="right") - 1
    true_blocks = [int(np.isnan(events[k]).sum()) for events in rec.ground_truth.event_times_s]
    assert wide.pairs[0].n_blocked in true_blocks and not any("search_window_ms" in n for n in wide.notes)


def test_windowed_recordings_are_timed_as_continuous_ones():
    """The simulator's sweeps (``output="sweeps"``: no signal between the unit's
    discharges) of a moderate-MG study, seed 3, against the same recordings made
    continuous. Until the twenty-seventh session the noise of windowed input was the
    MAD of all its samples, the unit's own potentials in them (2.0 x the noise on such
    sweeps), and other units' potentials on a fibre's were not modelled (no signal to
    learn them from): 6 of the 10 matched pairs were within max(0.5 µs, 3 %) of the
    truth (7 with the noise alone mended, 8 with the generic background alone), and the
    technical jitter read 14 % high (median over 86 pairs of three studies)."""
    kw = dict(n_recordings=10, n_discharges=100, seed=3)
    windowed = simulate_study("achr-mg-moderate", output="sweeps", **kw).recordings
    continuous = simulate_study("achr-mg-moderate", **kw).recordings
    within, ratios = [], []
    for rec, whole in zip(windowed, continuous):
        result = analyze_recording(rec)
        within += [abs(m - t) <= max(MCD_ABS_US_30DB, MCD_REL_30DB * t) for m, t, *_ in score(rec, result)["pairs"]]
        accepted = [p for p in result.pairs if p.accepted]
        reference = [p for p in analyze_recording(whole).pairs if p.accepted]
        if len(accepted) == len(reference) == 1:
            ratios.append(accepted[0].technical_jitter_us / reference[0].technical_jitter_us)
    assert len(within) == 10 and sum(within) >= 9, within
    assert len(ratios) >= 5 and 0.95 <= np.median(ratios) <= 1.05, ratios
