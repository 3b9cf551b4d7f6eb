"""Score measured pairs against the ground truth: per Monte Carlo repeat, then with
confidence intervals over the repeats.

Measured pairs are matched to true fibre pairs by their mean interpotential interval
(voluntary; mean latency from the stimulus when stimulated), one to one, nearest first,
within :data:`MATCH_TOLERANCE_US`. A stimulated latency is measured to a time point of
the potential (its onset, a level crossing, its peak), which lies up to a few hundred µs
after the instant the action potential passes the electrode (where the true latency
ends); unlike in an IPI this offset does not cancel, so a stimulated endplate is matched
against the window :data:`STIMULATED_TIME_POINT_WINDOW_US` after its true mean latency,
widened by the tolerance. A pair is unordered: a pipeline that triggers on the
other fibre of a pair reports the IPI with the opposite sign (and the same jitter), so
intervals are compared by magnitude. A measured pair with no true partner is a *false
pair* (e.g. a second phase of a potential taken for another fibre, or a background
unit); a true pair with no measured partner is *missed*. Errors (bias, RMSE) are over
matched pairs the pipeline accepted; matched pairs it rejected are counted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import scipy.stats

from ..analysis.jitter import MSD_RATIO_THRESHOLD
from ..errors import SfemgInputError

__all__ = ["METRICS", "MATCH_TOLERANCE_US", "STIMULATED_TIME_POINT_WINDOW_US", "true_pairs", "match_pairs",
           "check_tolerance", "pair_fields", "score_repeat", "summarize_metrics", "CONFIDENCE_LEVEL"]

#: Largest |measured − true| mean IPI for a match, µs: a potential's time point (peak,
#: level) lies tens of µs from the instant its action potential passes the electrode,
#: while the potentials of distinct fibres are >= ~200 µs apart.
MATCH_TOLERANCE_US = 150.0
#: Where a stimulated endplate's measured mean latency may lie, µs after its true mean
#: latency (the stimulus to the action potential passing the electrode): from that
#: instant itself (a pipeline reporting the true latency, or timing the potential's
#: onset) to past the main phase's peak (220-360 µs after it). sfemg's peak and template
#: time points measured +240 to +341 µs, its 50 % level +151 to +217 µs (SFE and
#: concentric, 25-100 kHz). A measured latency matches when it lies within the tolerance
#: of this window: by default from 150 µs before the true mean latency to 550 µs after
#: (the potential's late phase, ~700 µs, and later responses stay out). Voluntary IPIs
#: need no window: both potentials carry such an offset, and they cancel.
STIMULATED_TIME_POINT_WINDOW_US = (0.0, 400.0)
#: Two-sided level of the confidence intervals (Student t over repeats).
CONFIDENCE_LEVEL = 0.95

#: Scores of one repeat, in storage order (NaN where undefined, e.g. no blocking pairs).
METRICS = (
    "n_true_pairs",          # true fibre pairs in the repeat's recordings
    "n_measured_pairs",      # pairs the method reported
    "n_matched_pairs",       # measured pairs matched to a true pair
    "false_pairs",           # measured pairs with no true partner
    "missed_pairs",          # true pairs with no measured partner
    "rejected_pairs",        # matched pairs the method did not accept
    "mcd_bias_us",           # mean (measured − true) MCD over accepted matches, µs
    "mcd_rmse_us",           # root-mean-square MCD error, µs
    "msd_bias_us",           # mean MSD error, µs
    "jitter_bias_us",        # mean error of the reported jitter (MCD/MSD rule), µs
    "jitter_rmse_us",        # RMS error of the reported jitter, µs
    "ratio_rule_agreement",  # fraction of matches where MCD/MSD > 1.25 agrees with the truth
    "blocking_precision",    # matched pairs said to block that truly block (pair level)
    "blocking_recall",       # truly blocking pairs found to block (missed pairs count as not found)
    "blocking_bias_percent",  # mean error of the blocking percentage over matches
    "technical_jitter_us",   # mean reported technical jitter over matches, µs
    "discharge_blocking_precision",  # discharges said blocked that are (needs per-discharge results)
    "discharge_blocking_recall",     # blocked discharges said blocked, of those the method analysed
)


def true_pairs(ground_truth) -> dict:
    """True jitter, blocking and mean IPI of each pair (endplate) of one recording.

    Parameters
    ----------
    ground_truth : sfemg.recording.GroundTruth

    Returns
    -------
    dict of str to ndarray, each shape (n_pairs,) unless stated
        The columns of :func:`sfemg.synthesis.truth.true_jitter_table` (without
        ``recording``); ``mean_ipi_us``: the mean IPI against the trigger fibre
        (voluntary) or mean latency from the stimulus (stimulated), µs;
        ``discharge_times_s`` (n_pairs, n_discharges): the nerve discharge (stimulus)
        times, s; ``blocked`` (n_pairs, n_discharges): the pair's potential or its
        trigger missing. A pair whose potential never appears with its reference (its
        fibre, or the trigger's, blocked throughout) is left out: nothing in the
        recording shows it.
    """
    from ..synthesis.truth import true_jitter_table
    table = true_jitter_table([ground_truth], ratio_threshold=MSD_RATIO_THRESHOLD)
    del table["recording"]
    gt = ground_truth
    base = gt.discharge_times_s if gt.trigger_fibre < 0 else gt.event_times_s[gt.trigger_fibre]
    with np.errstate(invalid="ignore"):
        table["mean_ipi_us"] = np.array([np.nanmean(gt.event_times_s[f] - base) * 1e6 if
                                         np.isfinite(gt.event_times_s[f] - base).any() else np.nan
                                         for f in table["fibre"]], dtype=float)
    lo, hi = STIMULATED_TIME_POINT_WINDOW_US if gt.trigger_fibre < 0 else (0.0, 0.0)
    table["match_ipi_us"] = table["mean_ipi_us"] + 0.5 * (lo + hi)
    table["match_slack_us"] = np.full(table["mean_ipi_us"].shape, 0.5 * (hi - lo))
    trigger_blocked = gt.blocked[gt.trigger_fibre] if gt.trigger_fibre >= 0 else np.zeros_like(gt.blocked[0])
    table["blocked"] = np.array([gt.blocked[f] | trigger_blocked for f in table["fibre"]], dtype=bool)
    table["discharge_times_s"] = np.tile(gt.discharge_times_s, (table["fibre"].size, 1))
    # a fibre never seen with its reference holds nothing in the recording to find (it
    # counted as missed by every method, the oracle's too; a developer's review)
    seen = np.isfinite(table["mean_ipi_us"])
    return {name: column[seen] for name, column in table.items()}


def check_tolerance(tolerance_us) -> float:
    """``tolerance_us`` as a float, or :class:`SfemgInputError` unless it is a positive number."""
    if not (isinstance(tolerance_us, (int, float, np.integer, np.floating)) and not isinstance(tolerance_us, bool)
            and math.isfinite(tolerance_us) and tolerance_us > 0):
        raise SfemgInputError(f"the matching tolerance must be a positive number of µs, got {tolerance_us!r}")
    return float(tolerance_us)


def match_pairs(true_ipi_us, measured_ipi_us, tolerance_us: float = MATCH_TOLERANCE_US, slack_us=0.0):
    """One-to-one matches of measured to true pairs by mean IPI, nearest first.

    Parameters
    ----------
    true_ipi_us : array_like, shape (n_true,)
    measured_ipi_us : array_like, shape (n_measured,)
        Compared by magnitude (the sign says which potential triggered); NaN never matches.
    tolerance_us : float
        Largest accepted |difference|, µs.
    slack_us : float or array_like, shape (n_true,)
        Added to the tolerance, per true pair (stimulated endplates: half the width of
        :data:`STIMULATED_TIME_POINT_WINDOW_US`), µs.

    Returns
    -------
    true_index, measured_index : ndarray of int, shape (n_matches,)
        Matched positions, in order of increasing distance.
    """
    t = np.abs(np.asarray(true_ipi_us, dtype=float))
    m = np.abs(np.asarray(measured_ipi_us, dtype=float))
    dist = np.abs(t[:, None] - m[None, :])
    limit = tolerance_us + np.broadcast_to(np.asarray(slack_us, dtype=float), t.shape)[:, None]
    ti, mi = np.nonzero(np.nan_to_num(dist, nan=np.inf) <= limit)
    order = np.lexsort((mi, ti, dist[ti, mi]))
    used_t, used_m, out = set(), set(), []
    for i, j in zip(ti[order], mi[order]):
        if i not in used_t and j not in used_m:
            used_t.add(i)
            used_m.add(j)
            out.append((i, j))
    out = np.array(out, dtype=np.int64).reshape(-1, 2)
    return out[:, 0], out[:, 1]


_PAIR_FIELDS = ("mean_ipi_us", "mcd_us", "msd_us", "jitter_us", "mcd_msd_ratio", "blocking_percent",
                "technical_jitter_us", "accepted")


def pair_fields(pair) -> dict:
    """The scored fields of one measured pair (mapping or object), as floats.

    ``mean_ipi_us`` and ``mcd_us`` are required (null, as ``--json`` writes NaN, is NaN: a
    pair without a mean IPI matches no true pair, one without an MCD is left out of the
    MCD's scores); missing optional fields (or nulls) become NaN, except ``accepted``
    (default True) and ``jitter_us`` (default: by the MCD/MSD rule from what is given).

    Raises
    ------
    SfemgInputError
        A required field is missing, a value is not a number (text such as "20" is not
        one) or is infinite, or ``accepted`` is not true or false (or 1 or 0).
    """
    get = pair.get if isinstance(pair, Mapping) else (lambda k, d=None: getattr(pair, k, d))
    missing = object()
    out = {}
    for name in _PAIR_FIELDS:
        value = get(name, missing)
        if value is missing and name in ("mean_ipi_us", "mcd_us"):
            raise SfemgInputError(f"a measured pair lacks {name!r} (needed to score it)")
        if value is missing or value is None:
            value = True if name == "accepted" else math.nan
        if isinstance(value, np.ndarray) and value.ndim == 0:  # (a NumPy scalar kept as an array)
            value = value[()]
        if name == "accepted":
            if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) and value in (0, 1):
                value = bool(value)  # (1 and 0: true and false as other languages write them)
            if not isinstance(value, (bool, np.bool_)):
                raise SfemgInputError(f"a measured pair's 'accepted' is not true or false: {value!r}")
            out[name] = bool(value)
        elif isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise SfemgInputError(f"a measured pair's {name!r} is not a number: {value!r}")
        elif math.isinf(value):  # (left out of the means, silently: a metric shown as "-")
            raise SfemgInputError(f"a measured pair's {name!r} is infinite")
        else:
            out[name] = float(value)
    if math.isnan(out["jitter_us"]):
        ratio = out["mcd_us"] / out["msd_us"] if out["msd_us"] > 0 else math.nan
        out["jitter_us"] = out["msd_us"] if ratio > MSD_RATIO_THRESHOLD else out["mcd_us"]
    if math.isnan(out["mcd_msd_ratio"]) and out["msd_us"] > 0:
        out["mcd_msd_ratio"] = out["mcd_us"] / out["msd_us"]
    return out


def _discharge_series(pair):
    """``(blocked, reference_times_s)`` per analysed discharge if the pair carries them
    (PairResult-like, or a mapping with those keys), else None."""
    get = pair.get if isinstance(pair, Mapping) else (lambda k, d=None: getattr(pair, k, d))
    blocked, ref = get("blocked", None), get("reference_times_s", None)
    if blocked is None or ref is None:
        return None
    blocked, ref = np.asarray(blocked, dtype=bool), np.asarray(ref, dtype=float)
    return (blocked, ref) if blocked.shape == ref.shape and blocked.ndim == 1 else None


def _discharge_blocking(measured_blocked, reference_times_s, true_blocked, discharge_times_s):
    """Blocked-discharge counts (true positives, said blocked, truly blocked) over the
    analysed discharges, each mapped to the last true discharge before its reference
    time (the trigger potential or stimulus follows its discharge by a few ms, well
    within half an inter-discharge interval)."""
    j = np.searchsorted(discharge_times_s, reference_times_s, side="right") - 1
    ok = np.isfinite(reference_times_s) & (j >= 0)
    j = np.where(ok, j, 0)
    half_idi = 0.5 * np.median(np.diff(discharge_times_s)) if discharge_times_s.size > 1 else np.inf
    ok &= reference_times_s - discharge_times_s[j] < half_idi
    said, truth = measured_blocked[ok], true_blocked[j[ok]]
    return int(np.sum(said & truth)), int(np.sum(said)), int(np.sum(truth))


def _mean(x):
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else math.nan


def _fraction(hits, total):
    return hits / total if total else math.nan


def score_repeat(truths, measured, tolerance_us: float = MATCH_TOLERANCE_US) -> np.ndarray:
    """Scores of one Monte Carlo repeat (a set of recordings), in :data:`METRICS` order.

    Parameters
    ----------
    truths : sequence of dict
        Per recording, :func:`true_pairs` of its ground truth (pairs are matched on
        ``match_ipi_us`` within tolerance + ``match_slack_us``; on ``mean_ipi_us``
        within the tolerance where those are absent).
    measured : sequence of sequence
        Per recording (same order), the measured pairs (mappings or PairResult-like);
        an empty sequence for a recording the method could not analyse.
    tolerance_us : float
        Matching tolerance on the mean IPI, µs.

    Returns
    -------
    ndarray, shape (len(METRICS),)
    """
    if len(truths) != len(measured):
        raise ValueError("truths and measured must have one entry per recording")
    n_true = n_meas = 0
    rejected = 0
    err = {k: [] for k in ("mcd", "msd", "jitter", "block", "tech")}
    rule_agree = []
    said_block = said_and_true = truly_block = 0
    discharge_counts = np.zeros(3, dtype=np.int64)  # true positives, said blocked, truly blocked
    has_series = False
    for truth, pairs in zip(truths, measured):
        fields = [pair_fields(p) for p in pairs]
        n_true += truth["mcd_us"].size
        n_meas += len(fields)
        target = truth["match_ipi_us"] if "match_ipi_us" in truth else truth["mean_ipi_us"]
        ti, mi = match_pairs(target, [f["mean_ipi_us"] for f in fields], tolerance_us,
                             truth.get("match_slack_us", 0.0))
        true_blocks = truth["blocking_percent"] > 0
        truly_block += int(true_blocks.sum())
        for i, j in zip(ti, mi):
            f = fields[j]
            measured_blocks = f["blocking_percent"] > 0
            said_block += int(measured_blocks)
            said_and_true += int(measured_blocks and true_blocks[i])
            series = _discharge_series(pairs[j])
            if series is not None:
                has_series = True
                discharge_counts += _discharge_blocking(*series, truth["blocked"][i], truth["discharge_times_s"][i])
            if not f["accepted"]:
                rejected += 1
                continue
            err["mcd"].append(f["mcd_us"] - truth["mcd_us"][i])
            err["msd"].append(f["msd_us"] - truth["msd_us"][i])
            err["jitter"].append(f["jitter_us"] - truth["jitter_us"][i])
            err["block"].append(f["blocking_percent"] - truth["blocking_percent"][i])
            err["tech"].append(f["technical_jitter_us"])
            true_ratio = truth["mcd_us"][i] / truth["msd_us"][i]
            if np.isfinite(true_ratio) and np.isfinite(f["mcd_msd_ratio"]):
                rule_agree.append((f["mcd_msd_ratio"] > MSD_RATIO_THRESHOLD) == (true_ratio > MSD_RATIO_THRESHOLD))
    n_matched = len(err["mcd"]) + rejected
    values = {
        "n_true_pairs": n_true, "n_measured_pairs": n_meas, "n_matched_pairs": n_matched,
        "false_pairs": n_meas - n_matched, "missed_pairs": n_true - n_matched, "rejected_pairs": rejected,
        "mcd_bias_us": _mean(err["mcd"]), "mcd_rmse_us": math.sqrt(_mean(np.square(err["mcd"]))),
        "msd_bias_us": _mean(err["msd"]), "jitter_bias_us": _mean(err["jitter"]),
        "jitter_rmse_us": math.sqrt(_mean(np.square(err["jitter"]))),
        "ratio_rule_agreement": _mean(rule_agree),
        "blocking_precision": _fraction(said_and_true, said_block),
        "blocking_recall": _fraction(said_and_true, truly_block),
        "blocking_bias_percent": _mean(err["block"]), "technical_jitter_us": _mean(err["tech"]),
        "discharge_blocking_precision": _fraction(discharge_counts[0], discharge_counts[1]) if has_series else math.nan,
        "discharge_blocking_recall": _fraction(discharge_counts[0], discharge_counts[2]) if has_series else math.nan,
    }
    return np.array([values[k] for k in METRICS], dtype=np.float64)


#: Physical range of each bounded metric; confidence limits are clipped to it (a
#: t-interval over few repeats can otherwise reach below zero for an RMSE or a count).
_RANGE = {**{name: (0.0, math.inf) for name in METRICS if name.startswith(("n_", "mcd_rmse", "jitter_rmse",
                                                                             "technical"))
             or name.endswith("_pairs")},
          **{name: (0.0, 1.0) for name in METRICS if name.endswith(("precision", "recall", "agreement"))}}


def summarize_metrics(per_repeat, level: float = CONFIDENCE_LEVEL) -> dict:
    """Mean and Student-t confidence interval of each metric over repeats.

    Parameters
    ----------
    per_repeat : array_like, shape (n_repeats, len(METRICS))
        NaN entries (undefined in that repeat) are left out of that metric.
    level : float
        Two-sided confidence level.

    Returns
    -------
    dict of str to dict
        Per metric ``{"mean", "ci_low", "ci_high", "n"}``; the interval is
        ``mean ± t_{(1+level)/2, n-1} · SD / sqrt(n)`` (NaN with fewer than 2 values),
        clipped to the metric's physical range (counts, RMSEs ≥ 0; fractions in [0, 1]).
    """
    x = np.atleast_2d(np.asarray(per_repeat, dtype=float))
    out = {}
    for k, name in enumerate(METRICS):
        v = x[:, k][np.isfinite(x[:, k])]
        n = int(v.size)
        mean = float(v.mean()) if n else math.nan
        half = (float(scipy.stats.t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / math.sqrt(n))
                if n >= 2 else math.nan)
        low, high = _RANGE.get(name, (-math.inf, math.inf))
        out[name] = {"mean": mean, "ci_low": max(mean - half, low), "ci_high": min(mean + half, high), "n": n}
    return out
