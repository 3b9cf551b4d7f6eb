"""The classic jitter plot of a whole study."""

from __future__ import annotations

import textwrap

import numpy as np

from ._style import PAIR_STYLE, fmt_us, short_citation, study_pairs

__all__ = ["plot_jitter_study", "verdict_text", "limits_text", "study_mode"]

#: Above this many pairs the blocking percentages are left to the table (they would overlap).
MAX_ANNOTATED_PAIRS = 40

#: Up to this many pairs, every row number is on the jitter plot's axis.
_EVERY_ROW_NUMBERED = 10


def study_mode(study_result):
    """"voluntary" or "stimulated": the study's activation."""
    study = study_result.study
    if study.get("activation"):
        return study["activation"]
    modes = {r.mode for r in study_result.recordings}
    return modes.pop() if len(modes) == 1 else "voluntary"


def verdict_text(study):
    """One line: the verdict and why, e.g. ``"Abnormal: mean jitter 63.4 µs > 30 µs"``."""
    verdict = str(study.get("verdict", "unknown"))
    reason = study.get("verdict_reason", "")
    head = verdict[0].upper() + verdict[1:]
    return f"{head}: {reason}" if reason and reason not in verdict else head


def limits_text(study):
    """The reference limits used and their source, one sentence (empty when none)."""
    lim = study.get("limits")
    if not lim:
        return ""
    what = ", ".join(str(study[k]) for k in ("muscle", "electrode", "activation") if study.get(k))
    note = f"; {lim['note']}" if lim.get("note") else ""
    return (f"Reference limits ({what}{note}): mean {lim['mean_us']:g} µs, individual "
            f"{lim['individual_us']:g} µs. {lim['citation']}. Table version "
            f"{lim.get('table_version', study.get('limits_table_version', '?'))}.")


def plot_jitter_study(study_result, ax=None):
    """Every pair's jitter against the individual limit, the mean against the mean limit.

    Pairs are numbered in acquisition order (the row numbers of the report's table).
    Filled circles: accepted pairs; filled triangles: accepted pairs that block, with the
    blocking percentage written above (up to :data:`MAX_ANNOTATED_PAIRS` pairs); open
    markers: rejected pairs (not in the study).
    Horizontal lines: individual limit (dashed), mean limit (dash-dot), the study's mean
    jitter (solid). The title gives the verdict; the limit lines' labels cite their source.

    Parameters
    ----------
    study_result : StudyResult
        Uses each pair's ``jitter_us``, ``blocking_percent``, ``n_blocked`` and
        ``accepted``, and ``study["mean_jitter_us"]``, ``["limits"]`` and ``["verdict"]``.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    from matplotlib.ticker import MaxNLocator

    from ._style import new_axes

    _, ax = new_axes(ax, figsize=(8.0, 4.0))
    study = study_result.study
    entries = study_pairs(study_result)
    rows = np.array([e.row for e in entries])
    jitter = np.array([e.pair.jitter_us for e in entries], float)
    accepted = np.array([e.pair.accepted for e in entries], bool)
    blocks = np.array([e.pair.n_blocked > 0 for e in entries], bool)
    annotate = len(entries) <= MAX_ANNOTATED_PAIRS
    labels = {"normal": "accepted", "blocking": "accepted, blocking" + (" (%)" if annotate else ""),
              "rejected": "rejected (not in study)"}
    for kind, sel in (("normal", accepted & ~blocks), ("blocking", accepted & blocks),
                      ("rejected", ~accepted)):
        if sel.any():
            style = PAIR_STYLE[kind]
            ax.plot(rows[sel], jitter[sel], linestyle="none", ms=6, mew=1.0, **style,
                    label=labels[kind])
    for e, j, ok, b in zip(entries, jitter, accepted, blocks):
        if annotate and ok and b and np.isfinite(j):
            ax.annotate(f"{e.pair.blocking_percent:.0f}%", (e.row, j), xytext=(0, 6),
                        textcoords="offset points", ha="center", va="bottom", rotation=90,
                        fontsize=7)
    lim = study.get("limits")
    cite = f" ({short_citation(lim['citation'])})" if lim else ""
    if lim:
        ax.axhline(lim["individual_us"], color="black", linestyle="--", linewidth=1.0,
                   label=f"individual limit {lim['individual_us']:g} µs{cite}")
        ax.axhline(lim["mean_us"], color="black", linestyle="-.", linewidth=1.0,
                   label=f"mean limit {lim['mean_us']:g} µs")
    mean = study.get("mean_jitter_us")
    if mean is not None and np.isfinite(mean):
        ax.axhline(mean, color="0.5", linestyle="-", linewidth=2.0,
                   label=f"mean jitter {fmt_us(mean)} µs")
    finite = jitter[np.isfinite(jitter)]
    top = max([finite.max() if finite.size else 0.0]
              + ([lim["individual_us"]] if lim else []) + [mean if mean and np.isfinite(mean) else 0])
    ax.set_ylim(0, _HEADROOM * top if top > 0 else 1.0)
    ax.set_xlim(0.3, max(len(entries), 1) + 0.7)
    if len(entries) <= _EVERY_ROW_NUMBERED:  # (a locator numbered one pair 0.8, 1.6, and 4 or 5 pairs 2, 4)
        ax.set_xticks(np.arange(1, max(len(entries), 1) + 1))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=min(len(entries), 25)))
    what = "Endplate" if study_mode(study_result) == "stimulated" else "Pair"
    ax.set_xlabel(f"{what} (row of the table)")
    ax.set_ylabel("Jitter (µs)")
    ax.grid(axis="y", color="0.9", linewidth=0.6)
    ax.legend(loc="upper left", fontsize="x-small", ncols=2, frameon=True, framealpha=0.9)
    n_acc = int(accepted.sum())
    title = (f"{verdict_text(study)}\n{n_acc} of {len(entries)} "
             f"{what.lower()}{'' if len(entries) == 1 else 's'} accepted")
    if n_acc:
        title += (f"; mean {fmt_us(study.get('mean_jitter_us'))} µs, "
                  f"median {fmt_us(study.get('median_jitter_us'))} µs")
    width_in = ax.bbox.width / ax.figure.dpi  # (a panel of a grid, or of a subfigure, is narrow)
    keep = {"> ": ">\u00a0", "≤ ": "≤\u00a0", " %": "\u00a0%", " µs": "\u00a0µs"}  # (not broken at these spaces)
    for space, joined in keep.items():
        title = title.replace(space, joined)
    ax.set_title("\n".join(textwrap.fill(line, max(30, int(width_in * _TITLE_CHARS_PER_IN)))
                           for line in title.split("\n")), fontsize="medium")
    return ax


#: :func:`plot_jitter_study`'s y range over its highest value: the legend (upper left) and
#: the blocking percentages above the points need the top ~30 % of the axes.
_HEADROOM = 1.45
#: Characters of the medium-size title per inch of axes width.
_TITLE_CHARS_PER_IN = 12
