"""Numba kernel: neuromuscular transmission, endplate by endplate, discharge by discharge.

Called only through :func:`sfemg.synthesis.transmission.simulate_transmission`, which
validates the inputs and allocates the outputs. The kernel takes arrays and scalars,
draws no random numbers of its own (the caller passes them in), and fills the outputs.
"""

from __future__ import annotations

import math

from .._numba import jit

#: Binomial variance above which the quantal content uses the normal approximation.
BINOMIAL_NORMAL_VARIANCE = 30.0


@jit
def draw_quantal_content(n_available, p_release, u, z):
    """Quanta released from ``n_available`` with probability ``p_release`` each.

    Exact inverse-CDF binomial draw from the uniform ``u`` when the variance is small,
    rounded normal approximation from the standard normal ``z`` otherwise. Above
    ``p = 0.5`` the failures are drawn instead (``n − Binomial(n, 1 − p)`` from ``1 − u``),
    so the inverse CDF always starts from a probability that does not underflow.
    """
    n = math.floor(n_available + 0.5)
    if n <= 0 or p_release <= 0.0:
        return 0.0
    if p_release >= 1.0:
        return float(n)
    var = n * p_release * (1.0 - p_release)
    if var > BINOMIAL_NORMAL_VARIANCE:
        m = math.floor(n * p_release + math.sqrt(var) * z + 0.5)
        return float(min(max(m, 0.0), n))
    if p_release > 0.5:
        return float(n) - _inverse_binomial(n, 1.0 - p_release, 1.0 - u)
    return _inverse_binomial(n, p_release, u)


@jit
def _inverse_binomial(n, p, u):
    """Smallest k with Binomial(n, p) CDF(k) >= u, for p <= 0.5 and small variance."""
    if u >= 1.0:  # only k = n reaches a CDF of exactly 1
        return float(n)
    ratio = p / (1.0 - p)
    pmf = math.exp(n * math.log1p(-p))
    cdf = pmf
    k = 0
    while cdf < u and k < n:
        pmf *= (n - k) / (k + 1.0) * ratio
        k += 1
        cdf += pmf
    return float(k)


@jit
def epp_peak_time(tau_rise_s, tau_decay_s):
    """Time to peak of ``exp(-t/tau_decay) - exp(-t/tau_rise)``, s."""
    return math.log(tau_decay_s / tau_rise_s) * tau_rise_s * tau_decay_s / (tau_decay_s - tau_rise_s)


@jit
def epp_crossing_time(level, tau_rise_s, tau_decay_s):
    """First time the peak-normalised EPP waveform reaches ``level`` (0 < level <= 1), s.

    The waveform ``g(t) = (exp(-t/tau_decay) - exp(-t/tau_rise)) / g_peak`` rises and is
    concave on [0, t_peak], so Newton's method started left of the root climbs to it
    monotonically; a bracket guards the last steps where the slope vanishes (level near 1).
    """
    t_peak = epp_peak_time(tau_rise_s, tau_decay_s)
    if level >= 1.0:
        return t_peak
    g_peak = math.exp(-t_peak / tau_decay_s) - math.exp(-t_peak / tau_rise_s)
    target = level * g_peak
    lo = 0.0
    hi = t_peak
    t = 0.0
    for _ in range(200):
        e_d = math.exp(-t / tau_decay_s)
        e_r = math.exp(-t / tau_rise_s)
        f = e_d - e_r - target
        if f < 0.0:
            lo = t
        else:
            hi = t
        slope = e_r / tau_rise_s - e_d / tau_decay_s
        t_new = t - f / slope if slope > 0.0 else 0.5 * (lo + hi)
        if not lo < t_new < hi:
            t_new = 0.5 * (lo + hi)
        if abs(t_new - t) <= 1e-13 * t_peak:
            return t_new
        t = t_new
    return t


@jit
def transmission_kernel(discharge_times_s, pool_size, p_release, refill_tau_s, mob_gain,
                        mob_tau_s, facil_increment, facil_tau_s, quantal_size_v,
                        quantal_size_cv, driving_force_v, threshold_v, epp_rise_s, epp_decay_s,
                        axonal_jitter_s, u_release, z_release, z_quantal, z_axon,
                        out_latency_s, out_blocked, out_epp_v, out_quanta):
    """Simulate every endplate's transmission over its discharges.

    Parameters
    ----------
    discharge_times_s : (n_endplates, n_discharges) float64
        Nerve discharge (or stimulus) times, increasing along each row, s.
    pool_size, p_release, refill_tau_s, mob_gain, mob_tau_s, facil_increment,
    facil_tau_s, quantal_size_v, quantal_size_cv, driving_force_v, threshold_v,
    epp_rise_s, epp_decay_s, axonal_jitter_s : (n_endplates,) float64
        Per-endplate state (see :class:`~sfemg.synthesis.physiology.EndplateState`).
    u_release, z_release, z_quantal, z_axon : (n_endplates, n_discharges) float64
        Uniform [0, 1) and standard-normal random numbers.
    out_latency_s : (n_endplates, n_discharges) float64
        Filled: discharge to threshold crossing (EPP part + axonal jitter), s; NaN if blocked.
    out_blocked : (n_endplates, n_discharges) bool
        Filled: True when the EPP stays below threshold.
    out_epp_v, out_quanta : (n_endplates, n_discharges) float64
        Filled: EPP amplitude (V) and quanta released.
    """
    n_endplates, n_discharges = discharge_times_s.shape
    for e in range(n_endplates):
        n_avail = pool_size[e]
        facil = 0.0
        mob = 0.0
        t_prev = -math.inf
        for k in range(n_discharges):
            t = discharge_times_s[e, k]
            dt = t - t_prev
            if dt < math.inf:
                rate = (1.0 + mob) / refill_tau_s[e]
                n_avail = pool_size[e] - (pool_size[e] - n_avail) * math.exp(-dt * rate)
                facil *= math.exp(-dt / facil_tau_s[e])
                mob *= math.exp(-dt / mob_tau_s[e])
            p = min(p_release[e] * (1.0 + facil), 1.0)
            m = draw_quantal_content(n_avail, p, u_release[e, k], z_release[e, k])
            n_avail -= m
            facil += facil_increment[e]
            mob += mob_gain[e] * m / pool_size[e]
            if m > 0.0:
                a_lin = quantal_size_v[e] * (m + math.sqrt(m) * quantal_size_cv[e] * z_quantal[e, k])
                a_lin = max(a_lin, 0.0)
            else:
                a_lin = 0.0
            epp = a_lin / (1.0 + a_lin / driving_force_v[e])
            out_epp_v[e, k] = epp
            out_quanta[e, k] = m
            if epp > threshold_v[e]:
                t_cross = epp_crossing_time(threshold_v[e] / epp, epp_rise_s[e], epp_decay_s[e])
                out_latency_s[e, k] = t_cross + axonal_jitter_s[e] * z_axon[e, k]
                out_blocked[e, k] = False
            else:
                out_latency_s[e, k] = math.nan
                out_blocked[e, k] = True
            t_prev = t
