"""Ground truth beside the measurement, and the physiology behind jitter and blocking.

Synthetic recordings know each fibre's true action-potential times. A measured potential
is matched to the fibre whose true times it follows most closely: the difference between
the measured time point and the true time of the right fibre is constant up to the
timing error (a few µs), whereas any other fibre of the unit differs by its jitter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SfemgInputError
from ._style import BLOCKED_COLOR, MV_PER_V, US_PER_S, new_axes, study_pairs

__all__ = ["PairTruth", "pair_ground_truth", "plot_truth_vs_measured", "plot_safety_factor",
           "illustrative_fibre", "plot_rns"]

#: A measured potential is matched to a fibre only if the median absolute deviation of
#: (measured time point - true time) is below this, s: timing error is a few µs, while a
#: wrong fibre of the unit adds its jitter (an MCD of 5 µs or more, MAD ≈ 0.6 × MCD).
MATCH_MAD_S = 15e-6

#: Largest believable constant offset between a measured time point and the true time the
#: action potential passes the electrode (peak of the potential vs its source), s.
MATCH_MAX_OFFSET_S = 1e-3


@dataclass(frozen=True)
class PairTruth:
    """The ground truth of one measured pair (or endplate).

    Attributes
    ----------
    fibre : int
        Simulated fibre whose potential is timed.
    reference_fibre : int or None
        Simulated fibre of the trigger potential (voluntary), None for stimulated.
    true_mcd_us : float
        MCD of the true IPI (or latency), µs.
    safety_factor : float
        Resting safety factor (EPP / threshold) of the weaker of the endplates involved.
    """

    fibre: int
    reference_fibre: int | None
    true_mcd_us: float
    safety_factor: float


def _match_fibre(times_s, gt):
    """The fibre whose true event times follow ``times_s`` (NaN = missing), or None."""
    t = times_s[np.isfinite(times_s)]
    best, best_mad = None, np.inf
    for f in range(gt.n_fibres):
        ev = gt.event_times_s[f]
        ev = np.sort(ev[np.isfinite(ev)])
        if ev.size < 2 or t.size < 3:
            continue
        i = np.clip(np.searchsorted(ev, t), 1, ev.size - 1)
        nearest = np.where(np.abs(t - ev[i - 1]) < np.abs(t - ev[i]), ev[i - 1], ev[i])
        d = t - nearest
        offset = np.median(d)
        mad = np.median(np.abs(d - offset))
        if abs(offset) < MATCH_MAX_OFFSET_S and mad < best_mad:
            best, best_mad = f, mad
    return best if best_mad < MATCH_MAD_S else None


def _fibre_safety_factor(gt, fibre):
    resting = gt.fibres.get("resting_safety_factor")
    if resting is not None:
        return float(np.asarray(resting)[fibre])
    return float(np.nanmean(gt.safety_factor[fibre]))


def pair_ground_truth(recording_result, recording):
    """Match each measured pair of a synthetic recording to its simulated fibres.

    Parameters
    ----------
    recording_result : RecordingResult
    recording : Recording
        The same recording, with ``ground_truth``.

    Returns
    -------
    dict of int to PairTruth
        Keyed by pair index; pairs whose potentials match no simulated fibre are left out.
    """
    gt = recording.ground_truth
    if gt is None:
        raise SfemgInputError(f"recording {recording.name!r} has no ground truth (not synthetic)")
    stimulated = recording_result.mode == "stimulated"
    ref = None
    if not stimulated:
        ref = _match_fibre(np.asarray(recording_result.reference_times_s, float), gt)
        if ref is None:
            return {}
    out = {}
    for i, pair in enumerate(recording_result.pairs):
        f = _match_fibre(np.asarray(pair.time_points_s, float), gt)
        if f is None or f == ref:
            continue
        sf = min(_fibre_safety_factor(gt, k) for k in ((f,) if ref is None else (f, ref)))
        out[i] = PairTruth(f, ref, gt.true_jitter_mcd_s(f, ref) * US_PER_S, sf)
    return out


def _recordings_by_name(recordings):
    by_name = {r.name: r for r in recordings}
    return {name: r for name, r in by_name.items() if r.ground_truth is not None}


def plot_truth_vs_measured(study_result, recordings, ax=None, *, safety_factor_range=None):
    """Measured MCD of every pair against the MCD of its true IPI (or latency).

    Points on the dashed identity line are measured exactly; the measurement floor
    (technical jitter) lifts the smallest values above it. Colour gives the safety factor
    of the pair's weaker endplate (viridis: dark = low, legible in grey scale); circles are
    accepted pairs, squares rejected ones.

    Parameters
    ----------
    study_result : StudyResult
    recordings : sequence of Recording
        The analysed recordings with ground truth, matched to the results by name.
    ax : matplotlib.axes.Axes, optional
    safety_factor_range : (float, float), optional
        The colour scale's ends (default: this study's lowest and highest safety factor);
        give the same to panels side by side, so that one colour is one safety factor.

    Returns
    -------
    matplotlib.axes.Axes
    """
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    if safety_factor_range is not None and not (len(safety_factor_range) == 2
                                                and safety_factor_range[0] < safety_factor_range[1]):
        raise SfemgInputError(f"safety_factor_range must be (low, high) with low < high, got {safety_factor_range!r}")
    _, ax = new_axes(ax, figsize=(5.5, 4.5))
    by_name = _recordings_by_name(recordings)
    true_us, meas_us, sf, accepted = [], [], [], []
    truths = {}
    for e in study_pairs(study_result):
        rec = by_name.get(e.recording.name)
        if rec is None:
            continue
        if e.recording.name not in truths:
            truths[e.recording.name] = pair_ground_truth(e.recording, rec)
        truth = truths[e.recording.name].get(e.pair_index)
        if truth is None or not (np.isfinite(truth.true_mcd_us) and np.isfinite(e.pair.mcd_us)):
            continue
        true_us.append(truth.true_mcd_us)
        meas_us.append(e.pair.mcd_us)
        sf.append(truth.safety_factor)
        accepted.append(e.pair.accepted)
    true_us, meas_us, sf = np.array(true_us), np.array(meas_us), np.array(sf)
    accepted = np.array(accepted, bool)
    if true_us.size:
        lo = max(1.0, 0.7 * min(true_us.min(), meas_us.min()))
        hi = 1.4 * max(true_us.max(), meas_us.max())
        norm_sf = ((np.nanmin(sf), np.nanmax(sf)) if np.any(np.isfinite(sf)) else (0, 1)) \
            if safety_factor_range is None else tuple(safety_factor_range)
        sc = None
        for sel, marker, label in ((accepted, "o", "accepted"), (~accepted, "s", "rejected")):
            if sel.any():
                sc = ax.scatter(true_us[sel], meas_us[sel], c=sf[sel], cmap="viridis",
                                vmin=norm_sf[0], vmax=norm_sf[1], marker=marker, s=36,
                                edgecolors="black", linewidths=0.6, label=label, zorder=3)
        # (beside the square axes, as high as they are: a bar of the figure's height was twice theirs)
        ax.figure.colorbar(sc, cax=ax.inset_axes((1.04, 0.0, 0.05, 1.0)), label="Safety factor (EPP / threshold)")
    else:
        lo, hi = 1.0, 300.0
        ax.text(0.5, 0.5, "no measured pair matched a simulated fibre", transform=ax.transAxes,
                ha="center", va="center", fontsize="small")
    ax.plot([lo, hi], [lo, hi], color="black", linestyle="--", linewidth=1.0, label="identity")
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    ax.set_xlabel("True MCD (µs)")
    ax.set_ylabel("Measured MCD (µs)")
    legend = ax.legend(loc="upper left", fontsize="x-small")
    for handle in legend.legend_handles:  # (the markers' shapes, not the first point's colour)
        if hasattr(handle, "set_array"):  # (a scatter's handle maps its array at each draw)
            handle.set_array(None)
            handle.set_facecolor("0.85")
    ax.set_title(f"Ground truth vs measurement ({true_us.size} pairs)", fontsize="medium")
    return ax


#: The default endplate for :func:`plot_safety_factor` blocks closest to this fraction of
#: discharges: enough blocks to see, enough transmitted discharges to compare with.
ILLUSTRATIVE_BLOCKING_FRACTION = 0.25


def illustrative_fibre(recording):
    """The endplate that best shows blocking, and how far it is from the ideal.

    Parameters
    ----------
    recording : Recording
        With ``ground_truth``.

    Returns
    -------
    fibre : int
        Among the fibres that block, the one whose blocked fraction is closest to
        :data:`ILLUSTRATIVE_BLOCKING_FRACTION`; the lowest mean safety factor if none blocks.
    distance : float
        |blocked fraction - ILLUSTRATIVE_BLOCKING_FRACTION|, or 1 + the mean safety factor
        when nothing blocks (to rank recordings: smaller is better).
    """
    gt = recording.ground_truth
    fraction = gt.blocked.mean(axis=1)
    if fraction.max() > 0:
        distance = np.where(fraction > 0, np.abs(fraction - ILLUSTRATIVE_BLOCKING_FRACTION), np.inf)
        fibre = int(np.argmin(distance))
        return fibre, float(distance[fibre])
    mean_sf = np.nanmean(gt.safety_factor, axis=1)
    fibre = int(np.argmin(mean_sf))
    return fibre, 1.0 + float(mean_sf[fibre])


def plot_safety_factor(recording, fibre=None, ax=None):
    """EPP amplitude against the firing threshold over consecutive discharges.

    The action potential fires when the endplate potential reaches threshold; the margin
    is the safety factor. Where the EPP falls short the discharge is blocked (crosses).

    Parameters
    ----------
    recording : Recording
        A synthetic recording (with ``ground_truth``).
    fibre : int, optional
        Simulated fibre (endplate); default :func:`illustrative_fibre`.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    gt = recording.ground_truth
    if gt is None:
        raise SfemgInputError(f"recording {recording.name!r} has no ground truth (not synthetic)")
    if fibre is None:
        fibre, _ = illustrative_fibre(recording)
    if isinstance(fibre, bool) or not isinstance(fibre, (int, np.integer)) or not 0 <= fibre < gt.n_fibres:
        raise SfemgInputError(f"fibre {fibre!r} is not a fibre index: recording {recording.name!r} has "
                              f"{gt.n_fibres} fibres (0-{gt.n_fibres - 1})")
    _, ax = new_axes(ax, figsize=(6.4, 3.5))
    epp_mv = gt.epp_amplitude_v[fibre] * MV_PER_V
    thr_mv = gt.threshold_v[fibre] * MV_PER_V
    blocked = gt.blocked[fibre]
    n = np.arange(1, epp_mv.size + 1)
    ax.plot(n, epp_mv, color="black", linewidth=0.8, label="EPP amplitude")
    ax.plot(n[~blocked], epp_mv[~blocked], linestyle="none", marker="o", ms=2.5, color="black")
    ax.plot(n, thr_mv, color="0.35", linestyle="--", linewidth=1.2, label="threshold")
    if blocked.any():
        ax.plot(n[blocked], epp_mv[blocked], linestyle="none", marker="x", ms=6, mew=1.4,
                color=BLOCKED_COLOR, label=f"blocked ({blocked.sum()})")
    ax.set_xlim(0, n.size + 1)
    ax.set_ylim(0, 1.15 * max(np.nanmax(epp_mv), np.nanmax(thr_mv)))
    ax.set_xlabel("Discharge")
    ax.set_ylabel("Depolarisation (mV)")
    ax.legend(loc="lower right", fontsize="x-small", ncols=3, framealpha=0.9)
    ax.set_title(f"{recording.name}, fibre {fibre}: safety factor "
                 f"{_fibre_safety_factor(gt, fibre):.2f} expected at rest, {blocked.sum()} of "
                 f"{blocked.size} discharges blocked", fontsize="medium")
    return ax


#: The decrement that marks low-rate RNS abnormal (4th response against the 1st; docs/literature.md §10).
RNS_ABNORMAL_DECREMENT_PERCENT = 10.0
#: :func:`plot_rns` keeps its legend inside the axes, below the responses, up to this many trains.
_RNS_LEGEND_INSIDE = 7


def plot_rns(results, labels=None, ax=None, *, rate_hz=None):
    """Repetitive nerve stimulation: each response's CMAP against the first's, per train.

    The CMAP is the share of the muscle's fibres that transmit (each fibre's action
    potential counted alike), so a decrement is fibres blocking. The dotted line is the
    low-rate criterion: a 4th response more than 10 % below the 1st is abnormal
    (docs/literature.md §10; judged at 5 Hz and below).

    Parameters
    ----------
    results : RNSResult or sequence of RNSResult
        From :func:`~sfemg.synthesis.simulate_rns`, e.g. one per preset.
    labels : sequence of str, optional
        One per result (legend), e.g. the presets' names.
    ax : matplotlib.axes.Axes, optional
    rate_hz : float, optional
        The trains' stimulation rate, Hz, for the title.

    Returns
    -------
    matplotlib.axes.Axes
    """
    results = [results] if hasattr(results, "cmap_relative") else list(results)
    if not results:
        raise SfemgInputError("plot_rns needs at least one train (an RNSResult)")
    labels = [f"train {k + 1}" for k in range(len(results))] if labels is None else list(labels)
    if len(labels) != len(results):
        raise SfemgInputError(f"plot_rns needs one label per train ({len(results)}), got {len(labels)}")
    _, ax = new_axes(ax, figsize=(6.4, 4.0))
    many = len(results) > _RNS_LEGEND_INSIDE  # (then a short legend beside the axes)
    lowest = 100.0 - RNS_ABNORMAL_DECREMENT_PERCENT
    for k, (result, label) in enumerate(zip(results, labels)):
        cmap = np.asarray(result.cmap_relative, float)
        if not cmap[0] > 0:  # (a muscle none of whose fibres transmit has no decrement to draw)
            ax.plot([], [], marker="osD^v<>p"[k % 8], linestyle="none", label=f"{label}: no response")
            continue
        relative = 100.0 * cmap / cmap[0]
        lowest = min(lowest, float(np.min(relative)))
        detail = "" if many else f" at the 4th (1st: {100 * cmap[0]:.0f} % of fibres)"
        ax.plot(np.arange(1, cmap.size + 1), relative, marker="osD^v<>p"[k % 8], ms=4, linewidth=1.0,
                label=f"{label}: {result.decrement_4th_percent:.1f} %{detail}")
    ax.axhline(100.0 - RNS_ABNORMAL_DECREMENT_PERCENT, color="black", linestyle=":", linewidth=1.0,
               label=f"{RNS_ABNORMAL_DECREMENT_PERCENT:g} % decrement (abnormal below, 4th response)")
    ax.axvline(4, color="0.8", linewidth=0.8, zorder=0)
    ax.set_xlabel("Stimulus")
    ax.set_ylabel("CMAP (% of the 1st response)")
    # the legend in the room left below the lowest response (~6 % of the axes a row), or beside
    below = 0.0 if many else 0.06 * (len(results) + 1) + 0.03
    ax.set_ylim((lowest - 2.0 - below * 105.0) / (1.0 - below), 105.0)
    ax.set_xlim(0.5, max(len(r.cmap_relative) for r in results) + 0.5)
    if many:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="x-small", ncols=1 + len(results) // 24)
    else:
        ax.legend(loc="lower left", fontsize="x-small")
    ax.set_title("Repetitive nerve stimulation" + (f" at {rate_hz:g} Hz" if rate_hz else ""), fontsize="medium")
    return ax
