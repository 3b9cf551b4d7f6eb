"""Analysis of the toolkit's own simulated studies against their ground truth."""

import numpy as np
import pytest

from sfemg.analysis import analyze_recording
from sfemg.synthesis import simulate_study

from .tolerances import MCD_REL_30DB


def best_matching_pair(result, ipi_true):
    """The pair whose IPIs correlate best (in absolute value) with the true IPIs."""
    scored = []
    for p in result.pairs:
        ok = np.isfinite(p.ipis_s) & np.isfinite(ipi_true)
        if ok.sum() >= 10:
            scored.append((abs(np.corrcoef(p.ipis_s[ok], ipi_true[ok])[0, 1]), p))
    return max(scored, key=lambda s: s[0]) if scored else (0.0, None)


@pytest.fixture(scope="module")
def simulated():
    return simulate_study("healthy-edc", n_recordings=6, n_discharges=100, seed=1).recordings


def test_simulated_recordings_are_analysed(simulated):
    for rec in simulated:
        r = analyze_recording(rec)
        assert r.n_discharges >= 95 and r.pairs
        assert all(np.isfinite(p.technical_jitter_us) for p in r.pairs if p.n_blocked < p.n_discharges)


@pytest.mark.xfail(strict=True, reason="known gap (docs/analysis.md §6): the median MCD error is "
                   "~0.5 % but a few pairs are off by 10-15 %: a fibre's slow tail under the other's "
                   "spike biases both time points by a fraction of their relative jitter (peel-off "
                   "not yet converging, §10)")
def test_simulated_jitter_within_target(simulated):
    errors = []
    for rec in simulated:
        gt = rec.ground_truth
        r = analyze_recording(rec)
        k = np.abs(gt.event_times_s[gt.trigger_fibre][:, None] - r.reference_times_s[None, :]).argmin(0)
        for f in range(gt.n_fibres):
            if f == gt.trigger_fibre:
                continue
            ipi_true = gt.event_times_s[f][k] - gt.event_times_s[gt.trigger_fibre][k]
            corr, p = best_matching_pair(r, ipi_true)
            true_mcd_us = np.nanmean(np.abs(np.diff(ipi_true))) * 1e6
            errors.append(abs(p.mcd_us - true_mcd_us) / true_mcd_us if p is not None else np.inf)
    assert max(errors) <= MCD_REL_30DB
