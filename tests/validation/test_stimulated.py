"""Stimulated cells: grids, simulation, estimators, sweeps and benchmark sets; voluntary
cells described, simulated and scored as before the activation axis existed."""

import dataclasses
import json

import numpy as np
import pytest

from sfemg.analysis import analyze_recording
from sfemg.analysis.jitter import compute_mcd
from sfemg.errors import SfemgInputError
from sfemg.io import load_recordings
from sfemg.io.validation import load_validation
from sfemg.validation import (
    GRIDS,
    METRICS,
    Cell,
    Grid,
    estimator_analyser,
    get_grid,
    match_pairs,
    repeat_seed,
    run_sweep,
    score_repeat,
    simulate_repeat,
    true_pairs,
)
from sfemg.validation.benchmark_set import score_results, write_benchmark_set
from sfemg.validation.scoring import STIMULATED_TIME_POINT_WINDOW_US

from .plugin_example import truth_analyser
from .routes import json_of, scores_from_files

STIM = Cell(mode="stimulated", n_discharges=40)
#: One stimulated cell, 2 repeats x 2 endplates, the whole analysis and an estimator.
SWEEP = dict(grid=Grid("stim", (STIM,)), n_repeats=2, n_recordings=2,
             methods=("analyser:sfemg-template", "timepoint:template"), seed=3)
#: Cell fields before the activation axis: what a voluntary cell's dict must still hold.
OLD_FIELDS = {"noise_rms_v", "fs_hz", "receptor_blockade", "rate_cv", "electrode", "output", "n_discharges",
              "rate_hz", "preset"}


def metric(values, name):
    return values[..., METRICS.index(name)]


# --- cells and grids -------------------------------------------------------------------

def test_voluntary_cells_are_described_as_before():
    for name in ("default", "tiny"):
        for cell in GRIDS[name].cells:
            assert set(cell.to_dict()) == OLD_FIELDS and cell.mode == "voluntary"
    assert len(GRIDS["default"].cells) == 21
    assert GRIDS["default"].cells[5].label() == "10µV 50kHz b0.50 cv0.15 sfe"
    old = {"noise_rms_v": 1e-05, "fs_hz": 50000.0, "receptor_blockade": 0.5, "rate_cv": 0.15, "electrode": "sfe",
           "output": "sweeps", "n_discharges": 100, "rate_hz": 10.0, "preset": "healthy-edc"}
    assert Cell().to_dict() == old and Cell(**old) == Cell()  # a stored dict reads back to the same cell


def test_stimulated_cells_round_trip_and_have_no_firing_irregularity():
    grid = GRIDS["stimulated"]
    assert len(grid.cells) == 20 and all(c.mode == "stimulated" for c in grid.cells)
    assert Grid.from_dict(grid.to_dict()) == grid
    assert grid.cells[5].label() == "10µV 50kHz b0.50 sfe stim"
    assert grid.cells[-1].to_dict()["stimulus_artefact"] is False and grid.cells[-1].label().endswith("stim-noart")
    assert Cell(mode="stimulated", rate_cv=0.3).rate_cv == 0.0  # stimulation is regular
    with pytest.raises(SfemgInputError, match="stimulated cells only"):
        Cell(stimulus_artefact=False)
    with pytest.raises(SfemgInputError, match="mode"):
        Cell(mode="evoked")


def test_a_cell_with_the_stimulator_on_its_own_clock():
    """``stimulator_clock="own"``: in the cell's dict and label only when set, read back,
    refused for voluntary cells, and passed to the simulator (markers at the next sample,
    the ground truth's stimuli within the sample before them)."""
    own = dataclasses.replace(STIM, stimulator_clock="own")
    assert own.to_dict()["stimulator_clock"] == "own" and "stimulator_clock" not in STIM.to_dict()
    assert Cell(**own.to_dict()) == own and own.label().endswith("stim-own")
    with pytest.raises(SfemgInputError, match="stimulated cells only"):
        Cell(stimulator_clock="own")
    with pytest.raises(SfemgInputError, match="stimulator_clock"):
        Cell(mode="stimulated", stimulator_clock="free")
    study = simulate_repeat(own, 1, repeat_seed(3, 0, 0))
    rec = study.recordings[0]
    lag = (rec.stimulus_times_s - rec.ground_truth.discharge_times_s) * rec.fs_hz
    assert study.params.stimulator_clock == "own" and np.all((lag >= 0) & (lag < 1)) and lag.std() > 0.2


def test_grid_sums_keep_the_first_grids_indices():
    both = get_grid("default+stimulated")
    assert both.cells[:21] == GRIDS["default"].cells and both.cells[21:] == GRIDS["stimulated"].cells
    with pytest.raises(SfemgInputError, match="unknown grid 'nope'"):
        get_grid("default+nope")
    with pytest.raises(SfemgInputError, match="repeats a cell"):
        get_grid("tiny+tiny")


# --- simulation ----------------------------------------------------------------------------

def test_voluntary_repeats_simulate_the_same_bits_as_before():
    """simulate_repeat of a voluntary cell is the call it was before the activation axis."""
    from sfemg.synthesis import Disease, simulate_study
    from sfemg.synthesis.study import ELECTRODE_AMPLIFIERS
    cell = Cell(n_discharges=30, noise_rms_v=20e-6)
    seed = repeat_seed(9, 4, 1)
    before = simulate_study(
        cell.preset, mode="voluntary", n_recordings=2, n_discharges=cell.n_discharges, rate_hz=cell.rate_hz,
        fs_hz=cell.fs_hz, electrode=cell.electrode, output=cell.output, seed=seed, n_jobs=1,
        disease=Disease(receptor_blockade=cell.receptor_blockade, severity_spread_cv=0.0),
        amplifier=dataclasses.replace(ELECTRODE_AMPLIFIERS["sfe"], noise_rms_v=cell.noise_rms_v),
        rate_cv=cell.rate_cv)
    now = simulate_repeat(cell, 2, seed)
    assert now.params == before.params
    for a, b in zip(now.recordings, before.recordings):
        assert np.array_equal(a.sweeps_v, b.sweeps_v)
        assert np.array_equal(a.ground_truth.event_times_s, b.ground_truth.event_times_s, equal_nan=True)


def test_stimulated_repeats_have_one_endplate_and_stimulus_times():
    study = simulate_repeat(STIM, 2, repeat_seed(3, 0, 0))
    for rec in study.recordings:
        assert rec.mode == "stimulated" and rec.name.startswith("endplate")
        assert rec.ground_truth.trigger_fibre == -1 and rec.ground_truth.n_fibres == 1
        np.testing.assert_array_equal(rec.stimulus_times_s, rec.ground_truth.discharge_times_s)
        truth = true_pairs(rec.ground_truth)
        assert truth["mcd_us"].size == 1 and np.isnan(truth["msd_us"][0])
        lo, hi = STIMULATED_TIME_POINT_WINDOW_US
        assert truth["match_ipi_us"][0] == truth["mean_ipi_us"][0] + 0.5 * (lo + hi)
    no_artefact = simulate_repeat(dataclasses.replace(STIM, stimulus_artefact=False), 2, repeat_seed(3, 0, 0))
    assert study.params.stimulus_artefact and not no_artefact.params.stimulus_artefact
    a, b = study.recordings[0], no_artefact.recordings[0]
    np.testing.assert_array_equal(a.ground_truth.event_times_s, b.ground_truth.event_times_s)
    # the artefact is what differs, largest just after the stimulus (sweeps start 2 ms before it)
    diff = np.abs(a.sweeps_v - b.sweeps_v).max(axis=0)
    assert diff.argmax() < int(2.5e-3 * a.fs_hz) and diff.max() > 1e-3


# --- scoring ---------------------------------------------------------------------------------

def test_stimulated_matching_window():
    """A measured latency matches from `tolerance` before the true latency to `tolerance`
    after the end of the time-point window."""
    lo, hi = STIMULATED_TIME_POINT_WINDOW_US
    centre, slack = 3000.0 + 0.5 * (lo + hi), 0.5 * (hi - lo)
    for delta, ok in ((-150.0, True), (-160.0, False), (hi + 150.0, True), (hi + 160.0, False), (270.0, True)):
        ti, _ = match_pairs([centre], [3000.0 + delta], 150.0, slack)
        assert (ti.size == 1) == ok, delta
    ti, mi = match_pairs([centre], [3000.0 + 700.0, 3000.0 + 280.0], 150.0, slack)
    assert mi.tolist() == [1]  # the potential's late phase is not taken


def test_a_time_point_estimator_gets_the_endplates_potential_only():
    seen = []

    def spy(segments_v, fs_hz, noise_power_v2):
        seen.append((segments_v.shape, fs_hz, noise_power_v2.shape, int(np.argmax(segments_v.mean(axis=0)))))
        return np.full(segments_v.shape[0], segments_v.shape[1] // 2, dtype=float)

    rec = simulate_repeat(STIM, 1, repeat_seed(3, 0, 1)).recordings[0]
    gt = rec.ground_truth
    pairs = estimator_analyser(spy)(rec)
    n_fired = int(np.isfinite(gt.event_times_s[0]).sum())
    half = int(round(600e-6 * rec.fs_hz))
    assert seen == [((n_fired, 2 * half + 1), rec.fs_hz, (half + 1,), seen[0][3])]
    assert abs(seen[0][3] - half) <= 2  # the main phase's peak at the centre
    (pair,) = pairs
    assert pair["mean_ipi_us"] == pytest.approx(np.nanmean(gt.event_times_s[0] - gt.discharge_times_s) * 1e6)
    assert np.isnan(pair["msd_us"]) and pair["jitter_us"] == pair["mcd_us"]
    np.testing.assert_array_equal(pair["reference_times_s"], gt.discharge_times_s)  # the stimulus itself
    np.testing.assert_array_equal(pair["blocked"], gt.blocked[0])


def test_the_segments_are_centred_on_the_data_not_on_the_truth():
    """Found by a developer's review: segments centred on each discharge's true position
    gave the truth away to the sample (an estimator returning the centre beat the
    template fit on MCD RMSE). With the truth moved by whole samples, discharge by
    discharge, and the data left alone, the centre must still follow the data."""
    def centre(segments_v, fs_hz, noise_power_v2):
        return np.full(segments_v.shape[0], segments_v.shape[1] // 2, dtype=float)

    rec = simulate_repeat(STIM, 1, repeat_seed(3, 0, 1)).recordings[0]
    gt = rec.ground_truth
    moves = np.random.default_rng(0).integers(-1, 2, gt.event_times_s.shape[1]) / rec.fs_hz
    moved = gt.event_times_s.copy()
    moved[0] += moves
    rec = dataclasses.replace(rec, ground_truth=dataclasses.replace(gt, event_times_s=moved))
    (pair,) = estimator_analyser(centre)(rec)
    fired = np.isfinite(moved[0])
    # the time points' errors against the moved truth are the moves (plus < 1 sample of
    # rounding and noise): their MCD is at least most of the moves' own
    assert pair["technical_jitter_us"] > 0.7 * compute_mcd(moves[fired]) * 1e6


# --- sweeps ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stim_sweep(tmp_path_factory):
    path = tmp_path_factory.mktemp("stim") / "serial.h5"
    run_sweep(path, n_workers=1, **SWEEP)
    return path


def test_a_stimulated_sweep_scores_every_endplate(stim_sweep):
    values = load_validation(stim_sweep)["metrics"][0]  # (methods, repeats, metrics)
    recordings = [r for rep in range(2) for r in simulate_repeat(STIM, 2, repeat_seed(3, 0, rep)).recordings]
    true_mcd = [true_pairs(r.ground_truth)["mcd_us"][0] for r in recordings]
    assert 20 < np.mean(true_mcd) < 80  # ~38 µs: the ~55 µs pair jitter of 0.5 blockade / sqrt(2)
    assert np.all(metric(values, "n_true_pairs") == 2)
    assert np.all(metric(values, "n_matched_pairs") == 2) and np.all(metric(values, "missed_pairs") == 0)
    assert np.all(metric(values, "rejected_pairs") == 0) and np.all(metric(values, "false_pairs")[1] == 0)
    # besides the endplates, accepted, only pairs rejected with their reason (the strict
    # expectation, no false pair at all, is the known failure below)
    rejected = [p for r in recordings for p in analyze_recording(r).pairs if not p.accepted]
    assert metric(values, "false_pairs")[0].sum() == len(rejected) and all(p.reject_reasons for p in rejected)
    rmse = metric(values, "mcd_rmse_us")
    assert np.all(np.isfinite(rmse)) and np.all(rmse < 0.2 * np.mean(true_mcd))
    assert np.all(np.isfinite(metric(values, "technical_jitter_us")))
    assert np.all(np.isnan(metric(values, "msd_bias_us")))  # no MSD for a stimulated endplate
    assert np.all(metric(values, "jitter_rmse_us") == rmse)  # the reported jitter is the MCD


@pytest.mark.xfail(strict=True, reason=(
    "since windowed input's noise is measured between consecutive sweeps (twenty-seventh session; it read 2.7x "
    "too high and hid it), a slow wave at 4.8 ms time-locked to the stimuli, not to the endplate (slope 0.04 on its "
    "latency), rise time 416 µs, 133 µV, in 22 of 40 sweeps, is reported as a rejected response: "
    "docs/analysis.md §10"))
def test_a_stimulated_sweep_reports_no_pair_but_its_endplates(stim_sweep):
    assert np.all(metric(load_validation(stim_sweep)["metrics"][0], "false_pairs") == 0)


def test_a_stimulated_sweep_gives_the_same_bits_on_processes(stim_sweep, tmp_path):
    run_sweep(tmp_path / "processes.h5", n_workers=2, **SWEEP)
    a, b = load_validation(stim_sweep), load_validation(tmp_path / "processes.h5")
    assert a["config"] == b["config"] and a["metrics"][0].tobytes() == b["metrics"][0].tobytes()


# --- benchmark sets --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stim_bench(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stimbench") / "set"
    write_benchmark_set(folder, Grid("stim", (STIM,)), n_repeats=2, n_recordings=1, seed=4)
    return folder


def test_stimulated_benchmark_recordings_carry_stimuli(stim_bench):
    recs = load_recordings(stim_bench / "cell000.h5")
    assert [r.name for r in recs] == ["c000r000_endplate001", "c000r001_endplate001"]
    for r in recs:
        assert r.mode == "stimulated" and r.signal_v is not None and r.stimulus_times_s.size == STIM.n_discharges
        assert r.ground_truth.trigger_fibre == -1


def test_stimulated_benchmark_scores_true_and_measured_latencies(stim_bench, tmp_path):
    perfect = score_results(json_of(stim_bench, truth_analyser), stim_bench)["overall"]
    assert perfect["mcd_rmse_us"]["mean"] == 0.0 and perfect["missed_pairs"]["mean"] == 0.0
    # the files -> `analyze --json` -> score route, latencies to the potentials' time points
    from_files = scores_from_files(stim_bench, tmp_path)
    overall = from_files["overall"]
    assert overall["n_matched_pairs"]["mean"] == 1.0 and overall["missed_pairs"]["mean"] == 0.0
    assert abs(overall["mcd_bias_us"]["mean"]) < 5.0


def test_score_repeat_on_a_stimulated_truth_without_a_match_window_entry():
    """Hand-made truths without match_* keys are matched on mean_ipi_us, as before."""
    rec = simulate_repeat(STIM, 1, repeat_seed(3, 0, 0)).recordings[0]
    truth = {k: v for k, v in true_pairs(rec.ground_truth).items() if not k.startswith("match_")}
    measured = [{"mean_ipi_us": truth["mean_ipi_us"][0] + 100.0, "mcd_us": truth["mcd_us"][0]}]
    values = score_repeat([truth], [measured])
    assert metric(values, "n_matched_pairs") == 1 and metric(values, "mcd_bias_us") == 0.0


def test_plot_selects_the_activation(stim_sweep):
    from sfemg.validation.plot import plot_error_vs_noise
    ax = plot_error_vs_noise(stim_sweep, mode="stimulated")
    assert len(ax.get_legend().get_texts()) == 2 and ax.get_title().endswith("stimulated")
    # no voluntary cell: said so (an empty plot until the twenty-second session)
    with pytest.raises(SfemgInputError, match="no finished cell is voluntary; the sweep's: stimulated"):
        plot_error_vs_noise(stim_sweep, mode="voluntary")


def test_cli_scores_a_stimulated_set_and_names_grid_sums(stim_bench, tmp_path, capsys):
    from sfemg.cli import main
    results = tmp_path / "results.json"
    results.write_text(json.dumps(json_of(stim_bench, truth_analyser)))
    assert main(["score", str(results), str(stim_bench)]) == 0
    out = capsys.readouterr().out
    assert "10µV 50kHz b0.50 sfe stim" in out
    assert json.loads((tmp_path / "results.scores.json").read_text())["cells"][0]["cell"]["mode"] == "stimulated"
    assert main(["validate", "--grid", "default+nope", "-o", str(tmp_path / "x.h5")]) == 2
    err = capsys.readouterr().err
    assert "unknown grid 'nope'" in err and err.count("\n") == 1
