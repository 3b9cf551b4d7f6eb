"""The jitter a perfect measurement would report, from a study's ground truth.

Used to calibrate the physiology against the literature (docs/physiology.md), to score
analyses against the truth, and in the report's truth-vs-measured display.
"""

from __future__ import annotations

import numpy as np

from ..analysis.jitter import MSD_RATIO_THRESHOLD, compute_mcd, compute_msd, reported_jitter

__all__ = ["true_jitter_table"]


def true_jitter_table(ground_truths, *, ratio_threshold=MSD_RATIO_THRESHOLD) -> dict:
    """True jitter of every pair (voluntary) or endplate (stimulated).

    Voluntary: the IPI of each fibre against the trigger fibre, MSD sorted by the motor
    neuron's preceding inter-discharge interval, a discharge counted as blocked for the
    pair when either potential is missing. Stimulated: the latency of each fibre from
    the stimulus.

    Parameters
    ----------
    ground_truths : sequence of GroundTruth
    ratio_threshold : float
        MCD/MSD ratio above which MSD is the reported jitter.

    Returns
    -------
    dict of str to ndarray, each shape (n_pairs,)
        ``recording`` (index), ``fibre``, ``mcd_us``, ``msd_us``, ``jitter_us`` (by the
        MCD/MSD rule; MCD for stimulated), ``blocking_percent`` and
        ``mean_safety_factor`` (of the timed fibre's endplate).
    """
    rows = []
    for i, gt in enumerate(ground_truths):
        stimulated = gt.trigger_fibre < 0
        idi = np.concatenate([[np.nan], np.diff(gt.discharge_times_s)])
        fibres = range(gt.n_fibres) if stimulated else (f for f in range(gt.n_fibres) if f != gt.trigger_fibre)
        for f in fibres:
            if stimulated:
                interval = gt.event_times_s[f] - gt.discharge_times_s
                missing = gt.blocked[f]
                mcd, msd = compute_mcd(interval), float("nan")
            else:
                interval = gt.event_times_s[f] - gt.event_times_s[gt.trigger_fibre]
                missing = gt.blocked[f] | gt.blocked[gt.trigger_fibre]
                mcd, msd = compute_mcd(interval), compute_msd(interval, idi)
            jitter, _ = reported_jitter(mcd, msd, ratio_threshold)
            rows.append((i, f, mcd * 1e6, msd * 1e6, jitter * 1e6, 100.0 * missing.mean(),
                         float(np.mean(gt.safety_factor[f]))))
    names = ("recording", "fibre", "mcd_us", "msd_us", "jitter_us", "blocking_percent",
             "mean_safety_factor")
    cols = list(zip(*rows)) if rows else [()] * len(names)
    return {n: np.asarray(c, dtype=int if n in ("recording", "fibre") else float)
            for n, c in zip(names, cols)}
