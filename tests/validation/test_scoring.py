"""Pair matching and scores on hand-made truths and results with known errors."""

import math

import numpy as np
import pytest
import scipy.stats

from sfemg.errors import SfemgInputError
from sfemg.validation import METRICS, match_pairs, score_repeat, summarize_metrics
from sfemg.validation.scoring import pair_fields


def truth(ipi, mcd, msd, blocking, blocked=None):
    n = len(ipi)
    blocked = np.zeros((n, 10), bool) if blocked is None else np.atleast_2d(blocked)
    return {"mean_ipi_us": np.array(ipi, float), "mcd_us": np.array(mcd, float), "msd_us": np.array(msd, float),
            "jitter_us": np.where(np.array(mcd) / np.array(msd) > 1.25, msd, mcd).astype(float),
            "blocking_percent": np.array(blocking, float), "fibre": np.arange(1, n + 1), "blocked": blocked,
            "discharge_times_s": np.tile(0.1 * np.arange(blocked.shape[1]), (n, 1))}


def scores(*args, **kwargs):
    return dict(zip(METRICS, score_repeat(*args, **kwargs)))


def test_match_is_one_to_one_nearest_first_within_tolerance():
    ti, mi = match_pairs([1000.0, 1100.0, 3000.0], [1090.0, 1010.0, 1500.0, np.nan], tolerance_us=150.0)
    assert sorted(zip(ti.tolist(), mi.tolist())) == [(0, 1), (1, 0)]
    ti, mi = match_pairs([1000.0], [1060.0, 1040.0])  # two candidates: the nearer wins
    assert (ti.tolist(), mi.tolist()) == ([0], [1])
    assert match_pairs([], [1.0])[0].size == 0
    ti, mi = match_pairs([1500.0], [-1480.0])  # triggered on the other fibre: the same pair
    assert (ti.tolist(), mi.tolist()) == ([0], [0])


def test_known_errors_false_missed_rejected_and_blocking():
    truths = [truth([1000.0, 2000.0], [20.0, 80.0], [19.0, 50.0], [0.0, 5.0]),
              truth([1500.0], [40.0], [39.0], [2.0])]
    measured = [
        [{"mean_ipi_us": 1010.0, "mcd_us": 22.0, "msd_us": 20.0, "blocking_percent": 1.0},   # +2, false block
         {"mean_ipi_us": 2020.0, "mcd_us": 76.0, "msd_us": 50.0, "blocking_percent": 4.0},   # -4, MSD rule
         {"mean_ipi_us": 600.0, "mcd_us": 10.0}],                                             # false pair
        [{"mean_ipi_us": 1480.0, "mcd_us": 70.0, "blocking_percent": 3.0, "accepted": False},  # rejected
         {"mean_ipi_us": 5000.0, "mcd_us": 9.0, "accepted": None}],                           # false pair
    ]
    s = scores(truths, measured)
    assert (s["n_true_pairs"], s["n_measured_pairs"], s["n_matched_pairs"]) == (3, 5, 3)
    assert (s["false_pairs"], s["missed_pairs"], s["rejected_pairs"]) == (2, 0, 1)
    assert s["mcd_bias_us"] == pytest.approx(-1.0)
    assert s["mcd_rmse_us"] == pytest.approx(math.sqrt(10.0))
    assert s["msd_bias_us"] == pytest.approx(0.5)
    # jitter by the 1.25 rule: pair 2 reports MSD 50 (ratio 1.52), true 50 -> error 0; pair 1: +2
    assert s["jitter_bias_us"] == pytest.approx(1.0)
    assert s["ratio_rule_agreement"] == 1.0
    # blocking, pair level: said to block: 3 matched (1 wrong); truly blocking: 2, both found
    assert s["blocking_precision"] == pytest.approx(2 / 3)
    assert s["blocking_recall"] == pytest.approx(1.0)
    assert s["blocking_bias_percent"] == pytest.approx(0.0)  # accepted matches: +1 and -1
    assert math.isnan(s["technical_jitter_us"])


def test_a_recording_without_results_misses_its_pairs():
    s = scores([truth([1000.0], [20.0], [20.0], [10.0])], [[]])
    assert (s["missed_pairs"], s["false_pairs"]) == (1, 0)
    assert s["blocking_recall"] == 0.0 and math.isnan(s["blocking_precision"]) and math.isnan(s["mcd_bias_us"])


def test_pair_fields_need_ipi_and_mcd_and_numbers():
    with pytest.raises(SfemgInputError, match="mean_ipi_us"):
        pair_fields({"mcd_us": 3.0})
    with pytest.raises(SfemgInputError, match="not a number"):
        pair_fields({"mean_ipi_us": 1.0, "mcd_us": "fast"})
    assert pair_fields({"mean_ipi_us": 1.0, "mcd_us": 30.0, "msd_us": 20.0})["jitter_us"] == 20.0


def test_pair_fields_take_null_as_nan_and_refuse_text():
    """Found by a developer's review: null (how --json writes NaN, e.g. for a pair that
    blocks throughout) made scoring fail as a missing MCD, while text ("20", "false")
    passed as numbers and as true."""
    fields = pair_fields({"mean_ipi_us": 1000.0, "mcd_us": None})
    assert math.isnan(fields["mcd_us"]) and fields["accepted"] is True
    with pytest.raises(SfemgInputError, match="lacks 'mcd_us'"):
        pair_fields({"mean_ipi_us": 1000.0})
    with pytest.raises(SfemgInputError, match=r"'mcd_us' is not a number: '20'"):
        pair_fields({"mean_ipi_us": 1000.0, "mcd_us": "20"})
    with pytest.raises(SfemgInputError, match=r"'accepted' is not true or false: 'false'"):
        pair_fields({"mean_ipi_us": 1000.0, "mcd_us": 20.0, "accepted": "false"})
    with pytest.raises(SfemgInputError, match=r"'accepted' is not true or false: 2"):
        pair_fields({"mean_ipi_us": 1000.0, "mcd_us": 20.0, "accepted": 2})
    # 1 and 0 as other tools write true and false, and 0-d arrays, are taken (a developer's review)
    fields = pair_fields({"mean_ipi_us": np.array(1000.0), "mcd_us": 20.0, "accepted": np.int64(0)})
    assert fields["mean_ipi_us"] == 1000.0 and fields["accepted"] is False
    assert pair_fields({"mean_ipi_us": 1000.0, "mcd_us": 20.0, "accepted": 1})["accepted"] is True
    # a matched pair without an MCD is left out of the MCD's scores, not an error
    s = scores([truth([1000.0, 2000.0], [20.0, 30.0], [20.0, 30.0], [0.0, 0.0])],
               [[{"mean_ipi_us": 1000.0, "mcd_us": None}, {"mean_ipi_us": 2000.0, "mcd_us": 33.0}]])
    assert s["n_matched_pairs"] == 2 and s["mcd_bias_us"] == pytest.approx(3.0)


def test_confidence_interval_is_student_t_over_repeats():
    rng = np.random.default_rng(3)
    x = np.full((6, len(METRICS)), np.nan)
    bias = METRICS.index("mcd_bias_us")  # unbounded: its interval is not clipped
    x[:, bias] = rng.normal(size=6)
    x[0, 1] = 4.0
    out = summarize_metrics(x)
    half = scipy.stats.t.ppf(0.975, 5) * x[:, bias].std(ddof=1) / math.sqrt(6)
    first = out["mcd_bias_us"]
    assert first["n"] == 6 and first["mean"] == pytest.approx(x[:, bias].mean())
    assert (first["ci_low"], first["ci_high"]) == pytest.approx((first["mean"] - half, first["mean"] + half))
    assert out[METRICS[1]]["mean"] == 4.0 and math.isnan(out[METRICS[1]]["ci_low"])
    assert out[METRICS[2]]["n"] == 0 and math.isnan(out[METRICS[2]]["mean"])


def test_discharge_level_blocking_maps_discharges_by_reference_time():
    true_blocked = np.zeros(10, bool)
    true_blocked[[2, 5, 7]] = True
    t = truth([1000.0], [30.0], [30.0], [30.0], blocked=true_blocked)
    # the method analysed discharges 1..8 (its trigger 3 ms after each), said 2, 5 and 6 blocked
    ref = 0.1 * np.arange(1, 9) + 3e-3
    said = np.isin(np.arange(1, 9), [2, 5, 6])
    pair = {"mean_ipi_us": 1000.0, "mcd_us": 30.0, "blocking_percent": 37.5, "blocked": said,
            "reference_times_s": ref}
    s = scores([t], [[pair]])
    assert s["discharge_blocking_precision"] == pytest.approx(2 / 3)   # 2 and 5 right, 6 wrong
    assert s["discharge_blocking_recall"] == pytest.approx(2 / 3)      # 7 missed (9 not analysed: 0 blocked)
    without = scores([t], [[{k: v for k, v in pair.items() if k != "blocked"}]])
    assert math.isnan(without["discharge_blocking_precision"])


def test_confidence_limits_stay_in_the_metrics_physical_range():
    import numpy as np

    from sfemg.validation.scoring import METRICS, summarize_metrics

    rows = np.full((2, len(METRICS)), np.nan)
    rows[:, METRICS.index("mcd_rmse_us")] = [0.1, 3.0]
    rows[:, METRICS.index("blocking_recall")] = [0.2, 1.0]
    rows[:, METRICS.index("mcd_bias_us")] = [-0.1, 3.0]
    s = summarize_metrics(rows)
    assert s["mcd_rmse_us"]["ci_low"] == 0.0
    assert s["blocking_recall"]["ci_high"] == 1.0 and s["blocking_recall"]["ci_low"] == 0.0
    assert s["mcd_bias_us"]["ci_low"] < 0  # a bias may be negative


def test_a_fibre_that_never_fires_is_no_true_pair():
    """A developer's review: a timed fibre blocked throughout (moderate MG, seed 3, its
    third recording) had a NaN true mean IPI; every method, the oracle's too, scored it
    missed, and the oracle added a false pair. Nothing in the recording shows it: it is
    left out of the truth, and the oracle scores the rest perfectly matched."""
    from sfemg.synthesis import simulate_study
    from sfemg.validation import method_analyser
    from sfemg.validation.scoring import true_pairs

    study = simulate_study("achr-mg-moderate", n_recordings=8, n_discharges=60, seed=3)
    gt = study.ground_truths[2]
    assert np.isfinite(gt.event_times_s[gt.trigger_fibre]).all() and np.isnan(gt.event_times_s[1]).all()
    truths = [true_pairs(g) for g in study.ground_truths]
    assert [t["fibre"].size for t in truths] == [1, 1, 0, 1, 1, 1, 1, 1]
    oracle = method_analyser("timepoint:peak")
    scores = dict(zip(METRICS, score_repeat(truths, [oracle(rec) for rec in study.recordings])))
    assert (scores["n_true_pairs"], scores["n_matched_pairs"], scores["false_pairs"], scores["missed_pairs"]) == (
        7, 7, 0, 0)
