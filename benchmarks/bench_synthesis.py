"""Synthesis speed against its floor, and the transmission kernel against NumPy.

Run ``python benchmarks/bench_synthesis.py [--quick]``. Prints ratios measured in this
run (the machine may be shared and noisy; each figure is the best of several repeats):

1. **study / floor**: simulating a 20-pair voluntary study at 100 kHz, continuous,
   against the floor — NumPy drawing the same number of Gaussian samples and
   ``scipy.signal.sosfilt`` running one 2nd-order high-pass over them. Target ≤ 1.0.
2. **NumPy / kernel**: a straightforward vectorised NumPy version of the transmission
   model (vectorised over endplates, stepping through discharges) against the numba
   kernel on the same inputs. Target ≥ 20.
"""

from __future__ import annotations

import argparse

import numpy as np
from _timing import best_of
from scipy import signal as sps

from sfemg.synthesis import simulate_study
from sfemg.synthesis.physiology import Disease, NMJParams, draw_endplates
from sfemg.synthesis.transmission import draw_transmission_noise, simulate_transmission


def epp_crossing_newton(level, tau_r, tau_d):
    """Vectorised Newton iterations for the EPP threshold crossing (from t = 0)."""
    t_peak = np.log(tau_d / tau_r) * tau_r * tau_d / (tau_d - tau_r)
    target = level * (np.exp(-t_peak / tau_d) - np.exp(-t_peak / tau_r))
    t = np.zeros_like(level)
    for _ in range(200):
        f = np.exp(-t / tau_d) - np.exp(-t / tau_r) - target
        slope = np.exp(-t / tau_r) / tau_r - np.exp(-t / tau_d) / tau_d
        t_new = np.minimum(t - f / np.where(slope > 0, slope, np.inf), t_peak)
        done = np.all(np.abs(t_new - t) <= 1e-13 * t_peak)
        t = t_new
        if done:
            break
    return t


def numpy_transmission(state, times, noise):
    """The transmission model written as plain vectorised NumPy (the baseline)."""
    n_e, n_d = times.shape
    n_avail = state.pool_size_quanta.copy()
    facil = np.zeros(n_e)
    mob = np.zeros(n_e)
    latency = np.empty((n_e, n_d))
    t_prev = np.full(n_e, -np.inf)
    from scipy.stats import binom
    for k in range(n_d):
        dt = times[:, k] - t_prev
        first = ~np.isfinite(dt)
        rate = (1.0 + mob) / state.refill_time_constant_s
        refilled = state.pool_size_quanta - (state.pool_size_quanta - n_avail) * np.exp(-dt * rate)
        n_avail = np.where(first, n_avail, refilled)
        facil = np.where(first, facil, facil * np.exp(-dt / state.facilitation_time_constant_s))
        mob = np.where(first, mob, mob * np.exp(-dt / state.mobilisation_time_constant_s))
        p = np.minimum(state.release_probability * (1.0 + facil), 1.0)
        n = np.floor(n_avail + 0.5)
        var = n * p * (1 - p)
        normal = np.clip(np.floor(n * p + np.sqrt(var) * noise["z_release"][:, k] + 0.5), 0, n)
        exact = binom.ppf(noise["u_release"][:, k], n, p)
        m = np.where(var > 30.0, normal, exact)
        n_avail = n_avail - m
        facil = facil + state.facilitation_increment
        mob = mob + state.mobilisation_gain * m / state.pool_size_quanta
        a_lin = np.maximum(state.quantal_size_v * (m + np.sqrt(m) * state.quantal_size_cv
                                                   * noise["z_quantal"][:, k]), 0.0)
        epp = a_lin / (1.0 + a_lin / state.driving_force_v)
        level = np.minimum(state.threshold_v / np.maximum(epp, 1e-300), 1.0)
        t_cross = epp_crossing_newton(level, state.epp_rise_time_constant_s,
                                      state.epp_decay_time_constant_s)
        latency[:, k] = np.where(epp > state.threshold_v,
                                 t_cross + state.axonal_jitter_s * noise["z_axon"][:, k], np.nan)
        t_prev = times[:, k]
    return latency


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat (CI)")
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    n_discharges = 20 if args.quick else 100
    n_pairs = 4 if args.quick else 20

    # 1. study vs floor
    simulate_study(n_recordings=1, n_discharges=5, fs_hz=100_000.0, seed=0)  # compile / load
    study = simulate_study(n_recordings=n_pairs, n_discharges=n_discharges, fs_hz=100_000.0, seed=1)
    n_samples = sum(r.signal_v.size for r in study.recordings)
    sos = sps.butter(2, 500.0, "highpass", fs=100_000.0, output="sos")
    rng = np.random.default_rng(0)
    t_floor = best_of(lambda: sps.sosfilt(sos, rng.standard_normal(n_samples)), repeats)
    t_study = best_of(lambda: simulate_study(n_recordings=n_pairs, n_discharges=n_discharges,
                                             fs_hz=100_000.0, seed=1), repeats)
    t_serial = best_of(lambda: simulate_study(n_recordings=n_pairs, n_discharges=n_discharges,
                                              fs_hz=100_000.0, seed=1, n_jobs=1), repeats)
    print(f"study: {n_pairs} pairs x {n_discharges} discharges, 100 kHz continuous, "
          f"{n_samples / 1e6:.1f} M samples")
    print(f"  synthesis {t_study * 1e3:8.1f} ms | floor (normal + 1 high-pass) {t_floor * 1e3:8.1f} ms"
          f" | ratio {t_study / t_floor:.2f} (target <= 1.0)")
    print(f"  (one worker thread: {t_serial * 1e3:.1f} ms, ratio {t_serial / t_floor:.2f})")

    # 2. transmission kernel vs vectorised NumPy
    # 40 endplates: the two fibres of each of the 20 pairs of a voluntary study.
    n_e, n_d = (40, 200) if args.quick else (40, 1000)
    rng = np.random.default_rng(2)
    state = draw_endplates(NMJParams(), Disease(), n_e, rng)
    times = np.cumsum(rng.uniform(0.08, 0.12, (n_e, n_d)), axis=1)
    noise = draw_transmission_noise(rng, (n_e, n_d))
    simulate_transmission(state, times, noise)
    t_kernel = best_of(lambda: simulate_transmission(state, times, noise), max(repeats, 3))
    t_numpy = best_of(lambda: numpy_transmission(state, times, noise), repeats)
    print(f"transmission: {n_e} endplates x {n_d} discharges")
    print(f"  numba kernel {t_kernel * 1e3:8.2f} ms | vectorised NumPy {t_numpy * 1e3:8.1f} ms"
          f" | speed-up {t_numpy / t_kernel:.0f}x (target >= 20)")


if __name__ == "__main__":
    main()
