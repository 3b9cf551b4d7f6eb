"""Displays of one fibre pair (or endplate): sweeps, raster, IPI trend and histogram, panel."""

from __future__ import annotations

import textwrap

import numpy as np

from ._style import (
    BLOCKED_COLOR,
    MS_PER_S,
    MV_PER_V,
    POINT_COLOR,
    TRACE_COLOR,
    US_PER_S,
    fmt_percent,
    fmt_ratio,
    fmt_uncertainty_us,
    fmt_us,
    interval_name,
    new_axes,
)

__all__ = ["plot_superimposed_sweeps", "plot_raster", "plot_ipi_trend", "plot_ipi_histogram",
           "plot_pair_panel"]

#: Grid margins of :func:`plot_pair_panel` (figure fractions, for an A4 landscape page).
_PANEL_MARGINS = dict(left=0.075, right=0.985, bottom=0.07, top=0.91, wspace=0.22, hspace=0.3)

#: Characters of the pair panel's text column that fit beside the raster (A4 landscape).
_TEXT_WIDTH = 28

#: Time shown before the earlier of the trigger and the timed potential, and after the
#: later (its slower later phases), when zooming on a pair, s.
_PAIR_MARGIN_S = 0.6e-3
_PAIR_MARGIN_AFTER_S = 1.0e-3


def _reference_name(recording_result):
    return "stimulus" if recording_result.mode == "stimulated" else "trigger"


def _relative_points_s(pair):
    """Time point of the timed potential relative to each sweep's reference, s (NaN if blocked)."""
    return pair.time_points_s - pair.reference_times_s


def _pair_xlim_ms(recording_result, pair):
    """Sweep-time window (ms) holding the reference and the pair's potential in every
    discharge, with margins (around the median alone, a jittery endplate's late responses
    and their later phases were cut off: review)."""
    rel = _relative_points_s(pair)
    early, late = (np.nanmin(rel), np.nanmax(rel)) if np.any(np.isfinite(rel)) else (0.0, 0.0)
    t = recording_result.sweep_time_s
    lo = max(min(0.0, early) - _PAIR_MARGIN_S, t[0])
    hi = min(max(0.0, late) + _PAIR_MARGIN_AFTER_S, t[-1])
    return lo * MS_PER_S, hi * MS_PER_S


def _pair_arg(recording_result, pair):
    """Resolve ``pair`` (None, index or PairResult) to a PairResult or None."""
    if pair is None or not isinstance(pair, (int, np.integer)):
        return pair
    return recording_result.pairs[int(pair)]


def _window(recording_result, pair):
    """The sweeps within the displayed window.

    Returns
    -------
    t_ms : ndarray, shape (n_shown,)
        Sweep time, ms (the pair's window with one sample either side, or the whole sweep).
    sweeps_mv : ndarray, shape (n_discharges, n_shown)
    xlim_ms : tuple of float
    """
    t_ms = recording_result.sweep_time_s * MS_PER_S
    sweeps_mv = recording_result.aligned_sweeps_v * MV_PER_V
    if pair is None:
        return t_ms, sweeps_mv, (t_ms[0], t_ms[-1])
    lo, hi = _pair_xlim_ms(recording_result, pair)
    i0 = max(np.searchsorted(t_ms, lo) - 1, 0)
    i1 = min(np.searchsorted(t_ms, hi) + 1, t_ms.size)
    return t_ms[i0:i1], sweeps_mv[:, i0:i1], (lo, hi)


def _marks_mv(pair, t_ms, sweeps_mv):
    """Time points (ms from the reference) and the sweep's value there (mV), unblocked only."""
    rel_ms = _relative_points_s(pair) * MS_PER_S
    ok = np.isfinite(rel_ms)
    y = np.array([np.interp(x, t_ms, s) for x, s in zip(rel_ms[ok], sweeps_mv[ok])])
    return rel_ms[ok], y, ok


def plot_superimposed_sweeps(recording_result, ax=None, pair=None):
    """Superimposed sweeps aligned on the trigger potential (or the stimulus).

    Each discharge's sweep is drawn over the others, so a time-locked potential with
    jitter shows as a smeared band. The measured time points are marked with dots; with a
    ``pair`` the sweeps in which its potential is blocked are dashed and the view is
    zoomed on the reference and that potential.

    Parameters
    ----------
    recording_result : RecordingResult
        Uses ``aligned_sweeps_v`` (n_discharges, n_sweep_samples), V, and
        ``sweep_time_s`` (n_sweep_samples,), s.
    ax : matplotlib.axes.Axes, optional
        Axes to draw in; a new figure is made when None.
    pair : int or PairResult, optional
        The pair whose time points are marked; all pairs' when None.

    Returns
    -------
    matplotlib.axes.Axes
    """
    from matplotlib.collections import LineCollection

    _, ax = new_axes(ax)
    rr = recording_result
    pair = _pair_arg(rr, pair)
    t_ms, sweeps_mv, xlim = _window(rr, pair)
    blocked = pair.blocked if pair is not None else np.zeros(sweeps_mv.shape[0], bool)
    segments = np.stack([np.broadcast_to(t_ms, sweeps_mv.shape), sweeps_mv], axis=-1)
    if blocked.any():
        ax.add_collection(LineCollection(segments[blocked], colors=BLOCKED_COLOR, linewidths=0.6,
                                         linestyles="--", alpha=0.6, label="blocked sweeps",
                                         rasterized=True))
    ax.add_collection(LineCollection(segments[~blocked], colors=TRACE_COLOR, linewidths=0.5,
                                     alpha=0.35, label="sweeps", rasterized=True))
    marked = rr.pairs if pair is None else (pair,)
    for i, p in enumerate(marked):
        x, y, _ = _marks_mv(p, t_ms, sweeps_mv)
        ax.plot(x, y, linestyle="none", marker="o", ms=2.5, color=POINT_COLOR,
                mec="black", mew=0.3, label="time points" if i == 0 else None)
    ax.axvline(0.0, color="black", linestyle=":", linewidth=0.8, label=_reference_name(rr))
    ax.autoscale_view()
    ax.set_xlim(*xlim)
    ax.set_xlabel(f"Time from {_reference_name(rr)} (ms)")
    ax.set_ylabel("Amplitude (mV)")
    ax.legend(loc="upper right", fontsize="x-small", frameon=False)
    return ax


def plot_raster(recording_result, ax=None, pair=None, *, rows_per_potential=None):
    """Consecutive sweeps stacked one below the other (discharge 1 at the top).

    Parameters
    ----------
    recording_result : RecordingResult
    ax : matplotlib.axes.Axes, optional
    pair : int or PairResult, optional
        Mark this pair's time points (dots) and blocked discharges (crosses at the
        potential's median latency) and zoom on it; all pairs' time points when None.
    rows_per_potential : float, optional
        Vertical size of the largest peak-to-peak amplitude shown, in rows (default: a
        tenth of the discharges, at least 3, so that shapes stay visible).

    Returns
    -------
    matplotlib.axes.Axes
        The y axis counts discharges; a scale bar gives the amplitude in mV.
    """
    from matplotlib.collections import LineCollection

    _, ax = new_axes(ax)
    rr = recording_result
    pair = _pair_arg(rr, pair)
    t_ms, sweeps_mv, (lo, hi) = _window(rr, pair)
    n = sweeps_mv.shape[0]
    rows = np.arange(1, n + 1)
    if rows_per_potential is None:
        rows_per_potential = max(3.0, n / 10)
    ptp = np.ptp(sweeps_mv, axis=1).max() if n else 1.0
    rows_per_mv = rows_per_potential / ptp if ptp > 0 else 1.0
    # rows grow downwards: discharge i sits at y=i and positive voltage points up (-y)
    y = rows[:, None] - sweeps_mv * rows_per_mv
    ax.add_collection(LineCollection(np.stack([np.broadcast_to(t_ms, y.shape), y], axis=-1),
                                     colors=TRACE_COLOR, linewidths=0.5, rasterized=True))
    for i, p in enumerate(rr.pairs if pair is None else (pair,)):
        x, y_mv, ok = _marks_mv(p, t_ms, sweeps_mv)
        ax.plot(x, rows[ok] - y_mv * rows_per_mv, linestyle="none", marker="o", ms=2, color=POINT_COLOR,
                mec="black", mew=0.2, label="time points" if i == 0 else None)
        if pair is not None and p.blocked.any():
            ax.plot(np.full(p.blocked.sum(), np.median(x)), rows[p.blocked],
                    linestyle="none", marker="x", ms=5, mew=1.2, color=BLOCKED_COLOR,
                    label="blocked")
    ax.axvline(0.0, color="black", linestyle=":", linewidth=0.8)
    ax.set_xlim(lo, hi)
    ax.set_ylim(n + rows_per_potential, 1 - rows_per_potential)
    bar_mv = _nice_scale(ptp / 2)
    x_bar = hi - 0.04 * (hi - lo)
    ax.plot([x_bar, x_bar], [n, n - bar_mv * rows_per_mv], color="black", linewidth=2,
            solid_capstyle="butt")
    ax.annotate(f"{bar_mv:g} mV", (x_bar, n - 0.5 * bar_mv * rows_per_mv), xytext=(-4, 0),
                textcoords="offset points", ha="right", va="center", fontsize="x-small")
    ax.set_xlabel(f"Time from {_reference_name(rr)} (ms)")
    ax.set_ylabel("Discharge")
    if pair is not None:
        ax.legend(loc="upper right", fontsize="x-small", frameon=True, framealpha=0.9)
    return ax


def _nice_scale(value):
    """The largest of 1, 2, 5 × 10^k not above ``value`` (for scale bars)."""
    if not value > 0:
        return 1.0
    exp = np.floor(np.log10(value))
    for m in (5, 2, 1):
        if m * 10 ** exp <= value:
            return float(m * 10 ** exp)
    return float(10 ** exp)


def plot_ipi_trend(pair_result, ax=None, *, mode="voluntary"):
    """IPI (or latency) of each discharge in order, blocked discharges marked.

    Parameters
    ----------
    pair_result : PairResult
        Uses ``ipis_s`` (n_discharges,), s, NaN where blocked, and ``blocked``.
    ax : matplotlib.axes.Axes, optional
    mode : {"voluntary", "stimulated"}
        Names the quantity: IPI (voluntary) or latency from the stimulus (stimulated).

    Returns
    -------
    matplotlib.axes.Axes
        Blocked discharges are crosses in a strip along the bottom edge of the axes, below
        every value, which leave the top free for the legend.
    """
    _, ax = new_axes(ax, figsize=(6.4, 3.0))
    ipi_us = pair_result.ipis_s * US_PER_S
    n = np.arange(1, ipi_us.size + 1)
    ax.plot(n, ipi_us, color="black", linewidth=0.8, marker="o", ms=2.5,
            label=interval_name(mode))
    if np.any(np.isfinite(ipi_us)):
        ax.axhline(np.nanmean(ipi_us), color="0.4", linestyle="--", linewidth=0.8, label="mean")
    blocked = np.asarray(pair_result.blocked, bool)
    if blocked.any():
        ax.plot(n[blocked], np.full(blocked.sum(), 0.04), transform=ax.get_xaxis_transform(),
                linestyle="none", marker="x", ms=5, mew=1.2, color=BLOCKED_COLOR,
                label=f"blocked ({blocked.sum()})")
    finite = ipi_us[np.isfinite(ipi_us)]
    if finite.size:  # (the crosses drew over the lowest values, the legend over the highest)
        low, high = finite.min(), finite.max()
        span = max(high - low, 1.0)
        ax.set_ylim(low - _STRIP * span, high + _HEADROOM * span)
    ax.set_xlim(0, max(n.size, 1) + 1)
    ax.set_xlabel("Discharge")
    ax.set_ylabel(f"{interval_name(mode)} (µs)")
    ax.legend(loc="upper right", fontsize="x-small", ncols=3, frameon=True, framealpha=0.9)
    return ax


#: Room in :func:`plot_ipi_trend` below the values for the blocked discharges' crosses and
#: above them for the legend, as fractions of the values' range.
_STRIP = 0.15
_HEADROOM = 0.3


def plot_ipi_histogram(pair_result, ax=None, *, mode="voluntary", orientation="vertical"):
    """Histogram of the IPIs (or latencies) of the discharges that were not blocked.

    Parameters
    ----------
    pair_result : PairResult
    ax : matplotlib.axes.Axes, optional
    mode : {"voluntary", "stimulated"}
    orientation : {"vertical", "horizontal"}
        "horizontal" puts the IPI on the y axis, to share it with :func:`plot_ipi_trend`.

    Returns
    -------
    matplotlib.axes.Axes
    """
    from matplotlib.ticker import MaxNLocator

    _, ax = new_axes(ax, figsize=(4.0, 3.0))
    ipi_us = pair_result.ipis_s[np.isfinite(pair_result.ipis_s)] * US_PER_S
    if ipi_us.size:
        ax.hist(ipi_us, bins="auto", orientation=orientation, color="0.7", edgecolor="black",
                linewidth=0.6)
    value = f"{interval_name(mode)} (µs)"
    count_axis = ax.xaxis if orientation == "horizontal" else ax.yaxis
    count_axis.set_major_locator(MaxNLocator(integer=True))
    if orientation == "horizontal":
        ax.set_xlabel("Discharges")
        ax.set_ylabel(value)
    else:
        ax.set_xlabel(value)
        ax.set_ylabel("Discharges")
    return ax


def _stimulus_lines(recording_result):
    """Where a stimulated recording's stimulus times came from, and the markers' scatter
    about the artefact (none for voluntary recordings)."""
    rr = recording_result
    if rr.stimulus_timing is None:
        return []
    lines = [f"Stimulus     {rr.stimulus_timing:>8}"]
    if np.isfinite(rr.marker_scatter_us):
        lines.append(f"Marker SD    {fmt_uncertainty_us(rr.marker_scatter_us):>6} µs")
    if rr.markers_off:
        lines.append(f"Markers off  {rr.markers_off:>6}")
    return lines


def pair_summary_lines(recording_result, pair):
    """The panel's text: MCD and its uncertainty, MSD, ratio, jitter, blocking, acceptance
    (one item a line)."""
    p = pair
    stimulated = recording_result.mode == "stimulated"
    # the reported jitter is a copy of MSD when the MCD/MSD rule chose it
    reported = "MSD" if p.jitter_us == p.msd_us and p.jitter_us != p.mcd_us else "MCD"
    lines = [
        f"MCD          {fmt_us(p.mcd_us):>6} µs",
        f"± timing SD  {fmt_uncertainty_us(p.mcd_uncertainty_us):>6} µs",  # (the timing error's part only)
        f"MSD          {fmt_us(p.msd_us):>6} µs",
        f"MCD/MSD      {fmt_ratio(p.mcd_msd_ratio):>6}",
        f"Jitter       {fmt_us(p.jitter_us):>6} µs ({reported})",
        f"Blocking     {fmt_percent(p.blocking_percent):>6} %",
        f"Mean {'latency' if stimulated else 'IPI    '} {fmt_us(p.mean_ipi_us):>6} µs",
        f"Technical    {fmt_uncertainty_us(p.technical_jitter_us):>6} µs",  # (a floor: below 1 µs too)
        *_stimulus_lines(recording_result),
        f"Discharges   {p.n_discharges:>6}",
        f"Blocked      {p.n_blocked:>6}",
        f"Amplitude    {p.amplitude_v * MV_PER_V:>6.2f} mV" if np.isfinite(p.amplitude_v)
        else "Amplitude         –",
        f"Rise time    {fmt_us(p.rise_time_us):>6} µs",
        "",
        "Accepted" if p.accepted else "Rejected:",
    ]
    for reason in p.reject_reasons:
        lines += textwrap.wrap(reason, _TEXT_WIDTH, initial_indent="- ", subsequent_indent="  ")
    if p.flags:
        lines += textwrap.wrap("Flags: " + ", ".join(p.flags), _TEXT_WIDTH, subsequent_indent="  ")
    return lines


def plot_pair_panel(recording_result, pair_index, fig=None):
    """Everything about one pair on one page (A4 landscape).

    Superimposed sweeps with the time points marked, the raster, the IPI (latency)
    trend with blocked discharges marked, its histogram, and MCD, MSD, MCD/MSD, jitter,
    blocking and acceptance as text.

    Parameters
    ----------
    recording_result : RecordingResult
    pair_index : int
        Index into ``recording_result.pairs``.
    fig : matplotlib.figure.Figure, optional
        Figure to draw in (it should be empty); a new 11.69 × 8.27 inch (A4 landscape)
        figure when None. Fixed margins suit that size; give a figure with
        ``layout="constrained"`` for other sizes.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    rr = recording_result
    pair = rr.pairs[pair_index]
    if fig is None:
        fig = plt.figure(figsize=(11.69, 8.27))
    # fixed margins (fast) unless the figure has a layout engine of its own
    margins = {} if fig.get_layout_engine() is not None else _PANEL_MARGINS
    grid = fig.add_gridspec(2, 3, width_ratios=[1.0, 1.0, 0.72], height_ratios=[1.25, 1.0],
                            **margins)
    ax_sweeps = fig.add_subplot(grid[0, 0])
    ax_raster = fig.add_subplot(grid[0, 1])
    ax_text = fig.add_subplot(grid[0, 2])
    ax_trend = fig.add_subplot(grid[1, 0:2])
    ax_hist = fig.add_subplot(grid[1, 2], sharey=ax_trend)
    plot_superimposed_sweeps(rr, ax=ax_sweeps, pair=pair)
    plot_raster(rr, ax=ax_raster, pair=pair)
    plot_ipi_trend(pair, ax=ax_trend, mode=rr.mode)
    plot_ipi_histogram(pair, ax=ax_hist, mode=rr.mode, orientation="horizontal")
    ax_hist.tick_params(labelleft=False)
    ax_hist.set_ylabel("")
    ax_sweeps.set_title("Superimposed sweeps", fontsize="medium")
    ax_raster.set_title("Raster", fontsize="medium")
    ax_trend.set_title(f"{interval_name(rr.mode)} trend", fontsize="medium")
    ax_hist.set_title("Histogram", fontsize="medium")
    ax_text.axis("off")
    ax_text.text(0.0, 1.0, "\n".join(pair_summary_lines(rr, pair)), va="top", ha="left",
                 family="DejaVu Sans Mono", fontsize=9.5, transform=ax_text.transAxes)
    what = "Endplate" if rr.mode == "stimulated" else "Pair"
    rate = rr.firing_rate_hz
    rate_text = f", {rate:.1f} Hz" if np.isfinite(rate) else ""
    fig.suptitle(f"{rr.name} — {what} {pair.label} ({rr.mode}{rate_text}, "
                 f"{rr.fs_hz / 1000:g} kHz, time point: {rr.method})", fontsize="large")
    return fig
