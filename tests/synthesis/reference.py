"""Slow, obviously-correct references for the synthesis kernels (stumpy's naive.py idea).

Each function does what its kernel does, the plain way: Python loops, scipy's Lambert W
and binomial quantile function, no tricks.
"""

import math

import numpy as np
from scipy.optimize import brentq
from scipy.stats import binom


def quantal_content(n_available, p, u, z):
    """Binomial(round(N), p): exact quantile for small variance, rounded normal otherwise."""
    n = math.floor(n_available + 0.5)
    if n <= 0 or p <= 0:
        return 0.0
    if p >= 1:
        return float(n)
    var = n * p * (1 - p)
    if var > 30.0:
        return float(min(max(math.floor(n * p + math.sqrt(var) * z + 0.5), 0), n))
    if p > 0.5:  # failures, from the complementary uniform
        return float(n - max(binom.ppf(1 - u, n, 1 - p), 0.0))
    return float(max(binom.ppf(u, n, p), 0.0))  # scipy gives -1 at u = 0


def epp_crossing_time(level, tau_r, tau_d):
    """First time the peak-normalised e^(-t/τd) − e^(-t/τr) reaches ``level``, by brentq."""
    t_peak = math.log(tau_d / tau_r) * tau_r * tau_d / (tau_d - tau_r)
    if level >= 1:
        return t_peak
    g_peak = math.exp(-t_peak / tau_d) - math.exp(-t_peak / tau_r)
    return brentq(lambda t: (math.exp(-t / tau_d) - math.exp(-t / tau_r)) / g_peak - level,
                  0.0, t_peak, xtol=1e-20, rtol=1e-15)


def transmission(state, times, noise):
    """Per-endplate, per-discharge transmission as plain Python loops."""
    n_e, n_d = times.shape
    latency = np.full((n_e, n_d), np.nan)
    blocked = np.zeros((n_e, n_d), bool)
    epp_out = np.zeros((n_e, n_d))
    quanta = np.zeros((n_e, n_d))
    for e in range(n_e):
        pool = state.pool_size_quanta[e]
        n_avail, facil, mob = pool, 0.0, 0.0
        for k in range(n_d):
            if k > 0:
                dt = times[e, k] - times[e, k - 1]
                n_avail = pool - (pool - n_avail) * math.exp(-dt * (1 + mob) / state.refill_time_constant_s[e])
                facil *= math.exp(-dt / state.facilitation_time_constant_s[e])
                mob *= math.exp(-dt / state.mobilisation_time_constant_s[e])
            p = min(state.release_probability[e] * (1 + facil), 1.0)
            m = quantal_content(n_avail, p, noise["u_release"][e, k], noise["z_release"][e, k])
            n_avail -= m
            facil += state.facilitation_increment[e]
            mob += state.mobilisation_gain[e] * m / pool
            a_lin = 0.0
            if m > 0:
                a_lin = max(state.quantal_size_v[e] * (m + math.sqrt(m) * state.quantal_size_cv[e]
                                                       * noise["z_quantal"][e, k]), 0.0)
            epp = a_lin / (1 + a_lin / state.driving_force_v[e])
            epp_out[e, k], quanta[e, k] = epp, m
            if epp > state.threshold_v[e]:
                t = epp_crossing_time(state.threshold_v[e] / epp, state.epp_rise_time_constant_s[e],
                                      state.epp_decay_time_constant_s[e])
                latency[e, k] = t + state.axonal_jitter_s[e] * noise["z_axon"][e, k]
            else:
                blocked[e, k] = True
    return latency, blocked, epp_out, quanta


def add_events(n_samples, start_s, fs_hz, table, event_times_s, event_wave, event_gain):
    """Sum of events, each waveform evaluated by explicit 4-point Lagrange interpolation."""
    out = np.zeros(n_samples)
    for t_ev, w, g in zip(event_times_s, event_wave, event_gain):
        wave = table.waveforms_v[w]
        for n in range(n_samples):
            pos = (start_s + n / fs_hz - t_ev - table.start_s[w]) / table.step_s
            i = math.floor(pos)
            if 1 <= i <= wave.size - 3:
                nodes = [i - 1, i, i + 1, i + 2]
                value = 0.0
                for a in nodes:
                    basis = 1.0
                    for b in nodes:
                        if b != a:
                            basis *= (pos - b) / (a - b)
                    value += basis * wave[a]
                out[n] += g * value
    return out

