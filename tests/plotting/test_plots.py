"""The displays draw the data they are given, label axes with units and stay legible."""

import dataclasses
import itertools

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import LineCollection

from sfemg import SfemgInputError
from sfemg.plotting import (
    pair_ground_truth,
    plot_ipi_histogram,
    plot_ipi_trend,
    plot_jitter_study,
    plot_pair_panel,
    plot_raster,
    plot_safety_factor,
    plot_superimposed_sweeps,
    plot_truth_vs_measured,
)

from .conftest import BLOCKED, N_DISCHARGES, N_STUDY_PAIRS

N_SHOWN = N_DISCHARGES - len(BLOCKED)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _line(ax, label):
    return next(line for line in ax.get_lines() if line.get_label() == label)


def _overlapping(texts):
    """Pairs of visible, non-empty texts whose drawn boxes overlap."""
    fig = texts[0].figure if texts else None
    renderer = fig.canvas.get_renderer() if fig else None
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts
             if t.get_visible() and t.get_text()]
    return [(a, b) for (a, ba), (b, bb) in itertools.combinations(boxes, 2) if ba.overlaps(bb)]


def _tick_overlaps(ax):
    """Overlapping drawn tick labels of the x axis, then of the y axis."""
    out = []
    for axis in (ax.xaxis, ax.yaxis):
        lo, hi = sorted(axis.get_view_interval())
        out += _overlapping([t.label1 for t in axis.get_major_ticks()
                             if lo <= t.get_loc() <= hi and t.label1.get_visible()])
    return out


def test_superimposed_sweeps_draw_every_sweep_and_time_point(recording_result):
    ax = plot_superimposed_sweeps(recording_result, pair=0)
    collections = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert sum(len(c.get_segments()) for c in collections) == N_DISCHARGES
    assert {c.get_label() for c in collections} == {"sweeps", "blocked sweeps"}
    assert len(_line(ax, "time points").get_xdata()) == N_SHOWN
    assert "(ms)" in ax.get_xlabel() and "(mV)" in ax.get_ylabel()
    # zoomed on the trigger (0 ms) and the timed potential (~1 ms)
    lo, hi = ax.get_xlim()
    assert lo < 0 < 1 < hi < 2.5


def test_superimposed_sweeps_mark_all_pairs_without_pair(recording_result):
    ax = plot_superimposed_sweeps(recording_result)
    assert ax.get_xlim() == pytest.approx(tuple(recording_result.sweep_time_s[[0, -1]] * 1e3))
    assert len(_line(ax, "time points").get_xdata()) == N_SHOWN


def test_time_points_sit_on_the_potential(recording_result):
    """Marks are drawn at the sweep's value at the measured time point (the peak here)."""
    ax = plot_superimposed_sweeps(recording_result, pair=0)
    y = _line(ax, "time points").get_ydata()
    # the timed potential is centred on its time point where it crosses zero
    assert np.all(np.abs(y) < 0.1)


def test_raster_one_trace_per_discharge_and_blocked_marked(recording_result):
    ax = plot_raster(recording_result, pair=0)
    (traces,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(traces.get_segments()) == N_DISCHARGES
    blocked = _line(ax, "blocked")
    assert sorted(blocked.get_ydata()) == [b + 1 for b in BLOCKED]
    assert ax.get_ylabel() == "Discharge" and "(ms)" in ax.get_xlabel()
    assert any("mV" in t.get_text() for t in ax.texts), "amplitude scale bar"
    assert ax.yaxis_inverted(), "discharge 1 at the top"


def test_ipi_trend_points_and_blocked(recording_result):
    pair = recording_result.pairs[0]
    ax = plot_ipi_trend(pair)
    ipi = _line(ax, "IPI")
    assert len(ipi.get_xdata()) == N_DISCHARGES
    np.testing.assert_allclose(ipi.get_ydata(), pair.ipis_s * 1e6)
    assert list(_line(ax, f"blocked ({len(BLOCKED)})").get_xdata()) == [b + 1 for b in BLOCKED]
    assert ax.get_ylabel() == "IPI (µs)"
    assert plot_ipi_trend(pair, mode="stimulated").get_ylabel() == "Latency (µs)"


@pytest.mark.parametrize("orientation", ["vertical", "horizontal"])
def test_ipi_histogram_counts_unblocked_discharges(recording_result, orientation):
    ax = plot_ipi_histogram(recording_result.pairs[0], orientation=orientation)
    heights = [p.get_height() if orientation == "vertical" else p.get_width() for p in ax.patches]
    assert sum(heights) == N_SHOWN
    label = ax.get_xlabel() if orientation == "vertical" else ax.get_ylabel()
    assert label == "IPI (µs)"


def test_pair_panel_has_every_display_and_the_numbers(recording_result):
    fig = plot_pair_panel(recording_result, 0)
    assert len(fig.axes) == 5
    text = "\n".join(t.get_text() for ax in fig.axes for t in ax.texts)
    pair = recording_result.pairs[0]
    for key in ("MCD", "MSD", "MCD/MSD", "Blocking", "Accepted", f"{pair.mcd_us:.0f} µs",
                f"{pair.blocking_percent:.0f} %", "± timing SD    0.37 µs"):
        assert key in text
    fig.canvas.draw()
    for ax in fig.axes:
        assert not _tick_overlaps(ax), ax.get_title()
    boxes = [ax.get_tightbbox() for ax in fig.axes if ax.axison]
    assert not [1 for a, b in itertools.combinations(boxes, 2) if a.overlaps(b)]


def test_pair_panel_numbers_fit_the_page():
    """Found by a new user's review: "(0 blocked)" ran off the page's right edge, and a
    technical jitter of 0.46 µs read "0 µs"."""
    from .conftest import make_recording_result
    rr = make_recording_result(accepted=False)
    pair = dataclasses.replace(rr.pairs[0], technical_jitter_us=0.46, n_discharges=1000,
                               flags=("few-discharges", "discharges-displaced", "latency-excursions"))
    fig = plot_pair_panel(dataclasses.replace(rr, pairs=(pair,)), 0)
    fig.canvas.draw()
    (text,) = [t for ax in fig.axes for t in ax.texts if "MCD/MSD" in t.get_text()]
    assert "Technical      0.46 µs" in text.get_text() and "Blocked           3" in text.get_text()
    assert text.get_window_extent().x1 <= fig.bbox.x1


def test_pair_panel_shows_reject_reasons():
    from .conftest import make_recording_result
    fig = plot_pair_panel(make_recording_result(accepted=False), 0)
    text = "\n".join(t.get_text() for ax in fig.axes for t in ax.texts)
    assert "Rejected" in text and "rise time 341" in text and "flip-flop" in text
    unknown = dataclasses.replace(make_recording_result(), pairs=(dataclasses.replace(
        make_recording_result().pairs[0], mcd_uncertainty_us=float("nan")),))
    text = "\n".join(t.get_text() for ax in plot_pair_panel(unknown, 0).axes for t in ax.texts)
    assert "± timing SD       – µs" in text  # the peak and level methods' is not known


def test_pair_panel_says_where_stimulus_times_came_from():
    """Stimulated: the stimulus times' source and the markers' scatter about the
    artefact are on the panel, and the panel still fits its page; nothing of it on a
    voluntary one."""
    from .conftest import make_recording_result
    stimulated = dataclasses.replace(make_recording_result(mode="stimulated"), stimulus_timing="artefact",
                                     marker_scatter_us=5.77, stimulus_error_us=0.07)
    fig = plot_pair_panel(stimulated, 0)
    text = "\n".join(t.get_text() for ax in fig.axes for t in ax.texts)
    assert "Stimulus     artefact" in text and "Marker SD       5.8 µs" in text and "Markers off" not in text
    fig.canvas.draw()
    boxes = [ax.get_tightbbox() for ax in fig.axes if ax.axison]
    assert not [1 for a, b in itertools.combinations(boxes, 2) if a.overlaps(b)]
    unchecked = dataclasses.replace(stimulated, stimulus_timing="markers", marker_scatter_us=float("nan"))
    text = "\n".join(t.get_text() for ax in plot_pair_panel(unchecked, 0).axes for t in ax.texts)
    assert "Stimulus      markers" in text and "Marker SD" not in text
    off = dataclasses.replace(stimulated, stimulus_timing="markers", markers_off=4)
    text = "\n".join(t.get_text() for ax in plot_pair_panel(off, 0).axes for t in ax.texts)
    assert "Markers off       4" in text
    text = "\n".join(t.get_text() for ax in plot_pair_panel(make_recording_result(), 0).axes for t in ax.texts)
    assert "Stimulus" not in text


def test_jitter_study_plot(study_result):
    ax = plot_jitter_study(study_result)
    pairs = [p for r in study_result.recordings for p in r.pairs]
    points = sum(len(line.get_xdata()) for line in ax.get_lines()
                 if line.get_label() in ("accepted", "accepted, blocking (%)",
                                          "rejected (not in study)"))
    assert points == N_STUDY_PAIRS
    assert len(_line(ax, "rejected (not in study)").get_xdata()) == sum(not p.accepted for p in pairs)
    blocking = [p for p in pairs if p.accepted and p.n_blocked]
    assert len(_line(ax, "accepted, blocking (%)").get_xdata()) == len(blocking)
    assert sorted(t.get_text() for t in ax.texts) == sorted(f"{p.blocking_percent:.0f}%"
                                                           for p in blocking)
    labels = [line.get_label() for line in ax.get_lines()]
    assert any(lab.startswith("individual limit 43 µs (Stålberg et al. 2016)") for lab in labels)
    assert any(lab.startswith("mean limit 30 µs") for lab in labels)
    assert ax.get_ylabel() == "Jitter (µs)"
    assert study_result.study["verdict"].capitalize() in ax.get_title()
    ax.figure.canvas.draw()
    assert not _tick_overlaps(ax)
    assert not _overlapping(ax.texts)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 10])
def test_a_small_study_numbers_every_pair(study_result, n):
    """Found by a new user's review: one pair's axis read 0.8 and 1.6; and in review,
    two or three pairs then got the one number 2, and four or five 2 and 4."""
    from sfemg.analysis import StudyResult
    few = StudyResult(study_result.recordings[:n], study_result.study)
    ax = plot_jitter_study(few)
    ax.figure.canvas.draw()
    lo, hi = ax.get_xlim()
    assert [t for t in ax.get_xticks() if lo <= t <= hi] == list(range(1, n + 1))
    assert not _tick_overlaps(ax)
    assert f"of {n} pair{'s' if n > 1 else ''} accepted" in ax.get_title()


def test_jitter_study_without_limits_says_why(study_result):
    from sfemg.analysis import StudyResult, study_verdict
    pairs = [p for r in study_result.recordings for p in r.pairs]
    unknown = StudyResult(study_result.recordings, study_verdict(pairs, muscle="biceps"))
    ax = plot_jitter_study(unknown)
    assert "Unknown" in ax.get_title()
    assert not any("limit" in line.get_label() for line in ax.get_lines())


def test_truth_vs_measured(simulated):
    study, result = simulated
    ax = plot_truth_vs_measured(result, study.recordings)
    truths = {r.name: pair_ground_truth(r, rec) for r, rec in
              zip(result.recordings, [next(s for s in study.recordings if s.name == r.name)
                                      for r in result.recordings])}
    matched = sum(len(t) for t in truths.values())
    assert matched >= 3, "most simulated pairs are matched to their fibres"
    n_points = sum(len(c.get_offsets()) for c in ax.collections)
    assert 0 < n_points <= matched
    assert ax.get_xlabel() == "True MCD (µs)" and ax.get_ylabel() == "Measured MCD (µs)"
    assert len(_line(ax, "identity").get_xdata()) == 2
    assert any("Safety factor" in a.get_ylabel() for a in ax.child_axes), "colour bar"


def test_truth_vs_measured_colours_mean_one_safety_factor_across_panels(simulated):
    """Side by side, one colour meant different safety factors (a scale per panel), the
    legend's markers took the first point's colour, and the colour bar stood twice the
    square plot's height (found in review)."""
    study, result = simulated
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax in (left, right):
        plot_truth_vs_measured(result, study.recordings, ax=ax, safety_factor_range=(1.0, 6.0))
    for ax in (left, right):
        assert all(c.norm.vmin == 1.0 and c.norm.vmax == 6.0 for c in ax.collections if c.get_array() is not None)
        assert all(tuple(h.get_facecolor()[0][:3]) == (0.85, 0.85, 0.85)
                   for h in ax.get_legend().legend_handles if hasattr(h, "set_array"))
    fig.canvas.draw()
    bar = next(a for a in left.child_axes if "Safety factor" in a.get_ylabel())
    assert abs(bar.get_window_extent().height - left.get_window_extent().height) < 2  # pixels
    plt.close(fig)


def test_ground_truth_matches_the_right_fibre(simulated):
    """The measured MCD of a matched pair is close to the true MCD of its fibres."""
    study, result = simulated
    by_name = {r.name: r for r in study.recordings}
    ratios = [p.mcd_us / t.true_mcd_us for r in result.recordings
              for i, t in pair_ground_truth(r, by_name[r.name]).items()
              for p in [r.pairs[i]] if p.accepted and np.isfinite(p.mcd_us)]
    assert ratios and 0.7 < np.median(ratios) < 1.3


def test_safety_factor_plot(simulated):
    study, _ = simulated
    rec = max(study.recordings, key=lambda r: r.ground_truth.blocked.sum())
    gt = rec.ground_truth
    ax = plot_safety_factor(rec)
    fibre = int(ax.get_title().split("fibre ")[1].split(":")[0])
    epp = _line(ax, "EPP amplitude")
    np.testing.assert_allclose(epp.get_ydata(), gt.epp_amplitude_v[fibre] * 1e3)
    np.testing.assert_allclose(_line(ax, "threshold").get_ydata(), gt.threshold_v[fibre] * 1e3)
    n_blocked = int(gt.blocked[fibre].sum())
    if n_blocked:
        assert len(_line(ax, f"blocked ({n_blocked})").get_xdata()) == n_blocked
    assert ax.get_ylabel() == "Depolarisation (mV)"
    for bad in (gt.n_fibres, 1.5, True):  # (a researcher's review: 1.5 an IndexError, True a matplotlib error)
        with pytest.raises(SfemgInputError, match="is not a fibre index"):
            plot_safety_factor(rec, fibre=bad)


def test_plots_draw_into_given_axes_and_never_show(recording_result, study_result, monkeypatch):
    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("show() called"))
    fig, axes = plt.subplots(2, 3)
    pair = recording_result.pairs[0]
    calls = [lambda ax: plot_superimposed_sweeps(recording_result, ax=ax),
             lambda ax: plot_raster(recording_result, ax=ax),
             lambda ax: plot_ipi_trend(pair, ax=ax),
             lambda ax: plot_ipi_histogram(pair, ax=ax),
             lambda ax: plot_jitter_study(study_result, ax=ax)]
    for call, ax in zip(calls, axes.flat):
        assert call(ax) is ax
    assert len(plt.get_fignums()) == 1


@pytest.mark.parametrize("value, text", [(0.374, "0.37"), (1.72, "1.7"), (12.4, "12"), (0.0123, "0.012"),
                                         (1e-9, "<0.01"), (float("nan"), "–")])
def test_uncertainties_read_in_two_digits_and_fit_their_column(value, text):
    """Found in review: a near-noiseless technical jitter read "1.0e-09", wider than the
    pair panel's column."""
    from sfemg.plotting._style import fmt_uncertainty_us
    assert fmt_uncertainty_us(value) == text


def test_short_citations_name_two_authors_and_abbreviate_more():
    """A legend read "Bromberg et al. 1994" for a paper of two authors (found in review)."""
    from sfemg.analysis.limits import BROMBERG_1994, STALBERG_2016
    from sfemg.plotting._style import short_citation

    assert short_citation(BROMBERG_1994) == "Bromberg & Scott 1994"
    assert short_citation(STALBERG_2016) == "Stålberg et al. 2016"
    assert short_citation("Smith J. One author. J Test 2001;1:1.") == "Smith 2001"
    assert short_citation(None) == ""


def test_ipi_trend_keeps_its_blocked_crosses_and_legend_off_the_values(recording_result):
    """The crosses of blocked discharges were drawn over the lowest values and the legend
    over the highest (found in review): a strip below the values, room above them."""
    pair = recording_result.pairs[0]
    ax = plot_ipi_trend(pair)
    ipi_us = pair.ipis_s[np.isfinite(pair.ipis_s)] * 1e6
    low, high = ax.get_ylim()
    span = ipi_us.max() - ipi_us.min()
    assert low <= ipi_us.min() - 0.14 * span and high >= ipi_us.max() + 0.29 * span
    plt.close(ax.figure)


def test_jitter_study_leaves_the_top_to_its_legend_and_fits_its_title(study_result):
    """The legend hid blocking percentages and points near the top, and a fixed 95-character
    title ran into the neighbouring panels of a grid (found in review)."""
    ax = plot_jitter_study(study_result)
    jitter = [p.jitter_us for r in study_result.recordings for p in r.pairs]
    assert ax.get_ylim()[1] >= 1.44 * max(jitter)
    plt.close(ax.figure)
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    plot_jitter_study(study_result, ax=axes[1])
    fig.canvas.draw()
    title = axes[1].title.get_window_extent()
    assert axes[0].get_window_extent().x1 < title.x0 and title.x1 < axes[2].get_window_extent().x0
    plt.close(fig)


def test_rns_display_shows_each_train_against_its_first_response():
    """The decrement display (teacher's review: RNS had none): one line per train, in %
    of its 1st response, the 10 % criterion drawn, the legend below every response."""
    from sfemg.plotting import plot_rns
    from sfemg.synthesis import simulate_rns

    trains = [simulate_rns(p, seed=1) for p in ("healthy-edc", "achr-mg-severe")]
    ax = plot_rns(trains, ["healthy-edc", "achr-mg-severe"], rate_hz=3)
    lines = [line for line in ax.get_lines() if len(line.get_xdata()) == 10]
    for line, train in zip(lines, trains):
        np.testing.assert_allclose(line.get_ydata(), 100 * train.cmap_relative / train.cmap_relative[0])
    assert any(np.allclose(line.get_ydata(), 90.0) for line in ax.get_lines() if len(line.get_ydata()) == 2)
    assert "severe: 13.4 % at the 4th" in " ".join(t.get_text() for t in ax.get_legend().get_texts())
    ax.figure.canvas.draw()
    legend_top = ax.get_legend().get_window_extent().y1
    lowest = ax.transData.transform((4, min(np.nanmin(line.get_ydata()) for line in lines)))[1]
    assert legend_top < lowest
    with pytest.raises(SfemgInputError, match="one label per train"):
        plot_rns(trains, ["one"])
    plt.close(ax.figure)


def test_a_pairs_view_holds_every_discharges_potential_and_its_later_phases(recording_result):
    """Zoomed around the median latency, a jittery endplate's latest responses and their
    later phases were cut off at the right (found in review): the view runs from before
    the earliest to 1 ms past the latest time point."""
    pair = recording_result.pairs[0]
    ax = plot_superimposed_sweeps(recording_result, pair=0)
    rel_ms = (pair.time_points_s - pair.reference_times_s) * 1e3
    lo, hi = ax.get_xlim()
    assert lo <= min(0.0, np.nanmin(rel_ms)) - 0.6 + 1e-9
    assert hi >= min(np.nanmax(rel_ms) + 1.0, recording_result.sweep_time_s[-1] * 1e3) - 1e-9
    plt.close(ax.figure)


def test_displays_from_review_edge_cases(study_result, simulated):
    """Found in a review of the display changes: a jitter plot in a subfigure crashed (its
    width read from a figure); 15 or more RNS trains put every line out of view; a first
    response of 0 % was labelled "nan %"; a safety-factor range given as an array raised."""
    from sfemg.plotting import plot_rns
    from sfemg.synthesis import simulate_rns

    fig = plt.figure(figsize=(12, 4))
    plot_jitter_study(study_result, ax=fig.subfigures(1, 2)[0].add_subplot())
    plt.close(fig)
    trains = [simulate_rns("achr-mg-severe", seed=s, n_endplates=200) for s in range(1, 17)]
    ax = plot_rns(trains)
    low, high = ax.get_ylim()
    assert low < min(np.min(100 * t.cmap_relative / t.cmap_relative[0]) for t in trains) and high == 105.0
    assert [t.get_text().split(":")[0] for t in ax.get_legend().get_texts()][:2] == ["train 1", "train 2"]
    plt.close(ax.figure)
    none = dataclasses.replace(trains[0], cmap_relative=np.zeros(10), decrement_percent=np.full(10, np.nan))
    ax = plot_rns([none, trains[1]], ["blocked", "severe"])
    assert ax.get_legend().get_texts()[0].get_text() == "blocked: no response"
    plt.close(ax.figure)
    with pytest.raises(SfemgInputError, match="at least one train"):
        plot_rns([])
    study, result = simulated
    ax = plot_truth_vs_measured(result, study.recordings, safety_factor_range=np.array([1.0, 5.0]))
    plt.close(ax.figure)
    with pytest.raises(SfemgInputError, match="low < high"):
        plot_truth_vs_measured(result, study.recordings, safety_factor_range=(5.0, 1.0))
