"""Measure every calibration target of the physiology and print the docs table.

Run ``python benchmarks/calibration.py [--quick]``; paste the output into
docs/physiology.md. Values are computed from the simulator's ground truth (the jitter a
perfect measurement would report); tests/synthesis/test_calibration.py asserts them.
"""

from __future__ import annotations

import argparse

import numpy as np

from sfemg.analysis import lookup_limits
from sfemg.synthesis import PRESETS, NMJParams, simulate_study
from sfemg.synthesis.physiology import Disease, draw_endplates
from sfemg.synthesis.transmission import draw_transmission_noise, simulate_transmission
from sfemg.synthesis.truth import true_jitter_table


def studies(preset, n_seeds, **kwargs):
    """True-jitter tables of ``n_seeds`` studies of a preset."""
    return [true_jitter_table(simulate_study(preset, seed=s, render=False, **kwargs).ground_truths)
            for s in range(n_seeds)]


def summary(tables):
    """Mean (range) of study means, % pairs blocking, 95th percentile of pair jitter."""
    means = np.array([np.nanmean(t["jitter_us"]) for t in tables])
    jitter = np.concatenate([t["jitter_us"] for t in tables])
    blocking = np.concatenate([t["blocking_percent"] for t in tables]) > 0
    return (f"{means.mean():.1f} ({means.min():.0f}–{means.max():.0f})",
            f"{100 * blocking.mean():.0f} %", f"{np.nanpercentile(jitter, 95):.0f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer seeds (CI)")
    n = 5 if parser.parse_args().quick else 40
    print("| preset | study mean jitter, µs: mean (range) | pairs blocking | pair jitter p95, µs |"
          " target | source |")
    print("|---|---|---|---|---|---|")
    targets = {
        "healthy-edc": ("mean < 30, pairs < 43 (CNE); 5–50 normal", "Stålberg 2016; Thiele & Stålberg 1974"),
        "healthy-frontalis": ("mean < 28, pairs < 38 (CNE)", "Stålberg 2016"),
        "healthy-orbicularis-oculi": ("mean < 31, pairs < 45 (CNE)", "Stålberg 2016"),
        "achr-mg-mild": ("ocular MG: mean 33.3 (14.2–86)", "Kouyoumdjian 2020"),
        "achr-mg-moderate": ("generalised MG: mean 66.3 (14.4–220)", "Kouyoumdjian 2020"),
        "achr-mg-severe": ("above generalised mean, frequent blocking", "—"),
        "musk-mg": ("abnormal, patchy", "—"),
        "lems": ("markedly abnormal, blocking", "—"),
    }
    for name in PRESETS:
        mean, blocking, p95 = summary(studies(name, n))
        target, source = targets[name]
        print(f"| {name} | {mean} | {blocking} | {p95} | {target} | {source} |")

    pairs = np.concatenate([t["jitter_us"] for t in studies("healthy-edc", max(n // 4, 2), n_recordings=50)])
    ends = np.concatenate([t["mcd_us"] for t in studies("healthy-edc", max(n // 4, 2), n_recordings=100,
                                                         mode="stimulated")])
    mcds = np.concatenate([t["mcd_us"] for t in studies("healthy-edc", max(n // 4, 2), n_recordings=50)])
    print()
    print(f"pair/endplate jitter ratio (reported pair jitter): {np.mean(pairs) / np.mean(ends):.3f} "
          f"(√2 = 1.414); with the raw pair MCD: {np.mean(mcds) / np.mean(ends):.3f}")

    limits, _ = lookup_limits("edc", "concentric", "voluntary")
    print(f"CNE EDC limits used: {limits.mean_us:g}/{limits.individual_us:g} µs")

    print()
    print("| AChR blockade | endplate MCD, µs | discharges blocked | mean safety factor |")
    print("|---|---|---|---|")
    rng = np.random.default_rng(0)
    for b in (0.0, 0.3, 0.5, 0.6, 0.7, 0.8):
        state = draw_endplates(NMJParams(), Disease(receptor_blockade=b, severity_spread_cv=0.0), 200, rng)
        times = np.cumsum((1 + 0.15 * rng.standard_normal((200, 300))).clip(0.3) / 10.0, axis=1)
        r = simulate_transmission(state, times, draw_transmission_noise(rng, times.shape))
        d = np.abs(np.diff(r.latency_s, axis=1))
        print(f"| {b:.1f} | {np.nanmean(d) * 1e6:.1f} | {100 * r.blocked.mean():.2f} % | "
              f"{r.safety_factor.mean():.2f} |")

    print()
    print("| stimulus (3 Hz) | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    state = draw_endplates(NMJParams(), Disease(), 400, rng)
    times = np.arange(10) / 3.0
    m = simulate_transmission(state, times, draw_transmission_noise(rng, (400, 10))).quantal_content.mean(axis=0)
    print("| quanta released, % of 1st | " + " | ".join(f"{100 * x / m[0]:.0f}" for x in m) + " |")


if __name__ == "__main__":
    main()
