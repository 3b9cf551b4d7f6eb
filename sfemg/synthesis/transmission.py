"""Neuromuscular transmission: quantal release → endplate potential → threshold → latency.

For every endplate and discharge (the model of docs/physiology.md):

1. **Release.** The readily releasable pool ``N`` refills towards its resting size with
   time constant ``refill_time_constant_s / (1 + mobilisation)``; release probability is
   ``p0 (1 + facilitation)``; the quantal content ``m ~ Binomial(N, p)`` is removed from
   the pool; facilitation (decaying in ~25 ms) and mobilisation (seconds) grow with each
   impulse.
2. **Postsynaptic response.** The EPP is the sum of ``m`` quanta of size
   ``quantal_size_v`` (∝ functional AChR fraction) with per-quantum variability,
   corrected for nonlinear summation: ``A = A_lin / (1 + A_lin / driving_force_v)``.
3. **Threshold.** The depolarisation needed to fire (raised by Na⁺-channel loss).
4. **Latency.** The EPP rises as ``A (e^(−t/τ_decay) − e^(−t/τ_rise)) / peak``; the
   fibre fires when it crosses threshold, so the latency — and its variability, the
   jitter — grows as the safety factor ``A / threshold`` falls and the crossing moves
   up the flattening top of the EPP; the endplate **blocks** when ``A`` stays below
   threshold. Terminal-axon and synaptic-delay
   variability adds Gaussian noise of SD ``axonal_jitter_s``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SfemgInputError
from ._transmission_numba import transmission_kernel
from .physiology import EndplateState

__all__ = ["TransmissionResult", "simulate_transmission", "draw_transmission_noise"]


@dataclass(frozen=True)
class TransmissionResult:
    """Per-endplate, per-discharge outcome; every array has shape (n_endplates, n_discharges).

    Attributes
    ----------
    latency_s : ndarray
        Discharge to the endplate's action potential (without the fixed synaptic and
        axonal delays), s; NaN where blocked.
    blocked : ndarray of bool
    epp_amplitude_v : ndarray
        EPP amplitude, V.
    quantal_content : ndarray
        Quanta released.
    threshold_v : ndarray
        Threshold depolarisation (constant along each row), V.
    """

    latency_s: np.ndarray
    blocked: np.ndarray
    epp_amplitude_v: np.ndarray
    quantal_content: np.ndarray
    threshold_v: np.ndarray

    @property
    def safety_factor(self) -> np.ndarray:
        """EPP amplitude / threshold, shape (n_endplates, n_discharges)."""
        return self.epp_amplitude_v / self.threshold_v


def draw_transmission_noise(rng, shape):
    """The random numbers one transmission run consumes, drawn from ``rng``.

    Parameters
    ----------
    rng : numpy.random.Generator
    shape : tuple of int
        ``(n_endplates, n_discharges)``.

    Returns
    -------
    dict of str to ndarray
        ``u_release`` (uniform), ``z_release``, ``z_quantal``, ``z_axon`` (standard normal).
    """
    return {
        "u_release": rng.random(shape),
        "z_release": rng.standard_normal(shape),
        "z_quantal": rng.standard_normal(shape),
        "z_axon": rng.standard_normal(shape),
    }


_STATE_FIELDS = ("pool_size_quanta", "release_probability", "refill_time_constant_s",
                 "mobilisation_gain", "mobilisation_time_constant_s", "facilitation_increment",
                 "facilitation_time_constant_s", "quantal_size_v", "quantal_size_cv",
                 "driving_force_v", "threshold_v", "epp_rise_time_constant_s",
                 "epp_decay_time_constant_s", "axonal_jitter_s")


def simulate_transmission(state: EndplateState, discharge_times_s, noise) -> TransmissionResult:
    """Run the transmission kernel for every endplate over its discharges.

    Parameters
    ----------
    state : EndplateState
        ``n_endplates`` endplates.
    discharge_times_s : array_like, shape (n_endplates, n_discharges) or (n_discharges,)
        Nerve discharge (stimulus) times, s, strictly increasing; a 1-D array is shared
        by all endplates.
    noise : dict of str to ndarray
        As returned by :func:`draw_transmission_noise` for shape (n_endplates, n_discharges).

    Returns
    -------
    TransmissionResult
    """
    n = state.n_endplates
    times = np.asarray(discharge_times_s, dtype=np.float64)
    if times.ndim == 1:
        times = np.broadcast_to(times, (n, times.size))
    if times.ndim != 2 or times.shape[0] != n:
        raise SfemgInputError(f"discharge_times_s: expected shape ({n}, n_discharges), got {times.shape}")
    if not np.all(np.isfinite(times)):
        raise SfemgInputError("discharge_times_s: contains NaN or infinite values")
    if times.shape[1] > 1 and np.any(np.diff(times, axis=1) <= 0):
        raise SfemgInputError("discharge_times_s: times must be strictly increasing")
    times = np.ascontiguousarray(times)
    shape = times.shape
    rand = {}
    for key in ("u_release", "z_release", "z_quantal", "z_axon"):
        arr = np.ascontiguousarray(noise[key], dtype=np.float64)
        if arr.shape != shape:
            raise SfemgInputError(f"noise[{key!r}]: expected shape {shape}, got {arr.shape}")
        rand[key] = arr
    params = [np.ascontiguousarray(getattr(state, f), dtype=np.float64) for f in _STATE_FIELDS]
    latency = np.empty(shape)
    blocked = np.empty(shape, dtype=np.bool_)
    epp = np.empty(shape)
    quanta = np.empty(shape)
    transmission_kernel(times, *params, rand["u_release"], rand["z_release"], rand["z_quantal"],
                        rand["z_axon"], latency, blocked, epp, quanta)
    threshold = np.broadcast_to(state.threshold_v[:, None], shape).copy()
    return TransmissionResult(latency_s=latency, blocked=blocked, epp_amplitude_v=epp,
                              quantal_content=quanta, threshold_v=threshold)
