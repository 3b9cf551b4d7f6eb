"""Shared look, numbering and number formatting of the clinical displays.

Every display is legible in grey scale: categories differ by marker and line style, and
colour only repeats what the shape already says. Numbers are written the way
clinicians write them: jitter to 1 µs, blocking to 1 %, the MCD/MSD ratio to 2 decimals.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

__all__ = ["StudyPair", "study_pairs", "new_axes", "fmt_us", "fmt_percent", "fmt_ratio",
           "short_citation", "is_abnormal", "interval_name", "US_PER_S", "MS_PER_S", "MV_PER_V"]

US_PER_S = 1e6
MS_PER_S = 1e3
MV_PER_V = 1e3

#: Marker, face colour and edge colour per pair category (grey-scale safe).
PAIR_STYLE = {
    "normal": dict(marker="o", mfc="black", mec="black"),
    "blocking": dict(marker="^", mfc="black", mec="black"),
    "rejected": dict(marker="o", mfc="none", mec="0.45"),
}
TRACE_COLOR = "0.25"          # sweeps
BLOCKED_COLOR = "tab:red"     # blocked discharges (also drawn as "x" and dashed lines)
POINT_COLOR = "tab:blue"      # measured time points (also drawn as filled dots)


@dataclass(frozen=True)
class StudyPair:
    """One pair (or endplate) of a study with its row number in tables and plots.

    Attributes
    ----------
    row : int
        1-based number, in acquisition order, shared by the table and the jitter plot.
    recording : RecordingResult
    pair_index : int
        Index of the pair in ``recording.pairs``.
    """

    row: int
    recording: object
    pair_index: int

    @property
    def pair(self):
        """The :class:`~sfemg.analysis.PairResult`."""
        return self.recording.pairs[self.pair_index]


def study_pairs(study_result):
    """All pairs of a study in acquisition order, numbered from 1.

    Parameters
    ----------
    study_result : StudyResult

    Returns
    -------
    list of StudyPair
    """
    out = []
    for rec in study_result.recordings:
        for i in range(len(rec.pairs)):
            out.append(StudyPair(len(out) + 1, rec, i))
    return out


def new_axes(ax, figsize=(6.4, 4.0)):
    """``ax`` and its figure, or a new figure with one axes when ``ax`` is None."""
    if ax is not None:
        return ax.figure, ax
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax


def _finite(x):
    return x is not None and isinstance(x, (int, float, np.integer, np.floating)) \
        and math.isfinite(x)


def fmt_us(value_us):
    """A time in µs rounded to 1 µs ("–" when unknown), e.g. ``"33"``."""
    return f"{value_us:.0f}" if _finite(value_us) else "–"


def fmt_percent(value):
    """A percentage rounded to 1 % ("–" when unknown), e.g. ``"18"``."""
    return f"{value:.0f}" if _finite(value) else "–"


def fmt_uncertainty_us(value_us):
    """A measurement uncertainty in µs to 2 significant digits ("–" when unknown, "<0.01"
    below 0.01 µs), e.g. ``"0.37"``, ``"1.7"``, ``"12"``."""
    if not _finite(value_us):
        return "–"
    if abs(value_us) < 0.01:  # (a near-noiseless signal: "1.0e-09" did not fit the panel's column)
        return "<0.01"
    return f"{value_us:.0f}" if abs(value_us) >= 10 else f"{value_us:#.2g}".rstrip(".")


def fmt_ratio(value):
    """A ratio to 2 decimals ("–" when unknown), e.g. ``"1.02"``."""
    return f"{value:.2f}" if _finite(value) else "–"


def short_citation(citation):
    """``"Stålberg et al. 2016"``, ``"Bromberg & Scott 1994"`` from a full reference in
    Vancouver style (authors up to the first full stop, then the year)."""
    if not citation:
        return ""
    names = [name.split()[0] for name in citation.split(". ")[0].split(",") if name.strip()]
    authors = (f"{names[0]} et al." if len(names) > 2 or "et al" in citation.split(". ")[0]
               else " & ".join(names))
    year = re.search(r"\b(19|20)\d\d\b", citation)
    return f"{authors} {year.group(0)}" if year else authors


def is_abnormal(pair, limits):
    """True for an accepted pair that blocks or exceeds the individual limit.

    Parameters
    ----------
    pair : PairResult
    limits : dict or None
        ``study["limits"]`` of a :class:`~sfemg.analysis.StudyResult`.
    """
    if not pair.accepted:
        return False
    above = limits is not None and _finite(pair.jitter_us) and pair.jitter_us > limits["individual_us"]
    return bool(above or pair.n_blocked > 0)


def interval_name(mode):
    """What is timed: ``"IPI"`` (voluntary) or ``"Latency"`` (stimulated)."""
    return "Latency" if mode == "stimulated" else "IPI"
