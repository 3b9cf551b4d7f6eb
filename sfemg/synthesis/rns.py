"""Repetitive nerve stimulation: the CMAP decrement that follows from the same physiology.

The compound muscle action potential of a train is the sum of the fibres that transmit
each stimulus. At 3 Hz the release of every endplate runs down over the first 4–5
stimuli (pool depletion) and partly recovers as the secondary store mobilises; in a
healthy muscle every endplate keeps a safety factor above 1 and the CMAP holds, in a
myasthenic one the endplates with the least margin fail and the CMAP falls — the
decrement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SfemgInputError
from .physiology import draw_endplates
from .presets import get_preset
from .study import resolve_seed
from .transmission import draw_transmission_noise, simulate_transmission

__all__ = ["RNSResult", "simulate_rns"]


@dataclass(frozen=True)
class RNSResult:
    """A train of supramaximal stimuli to a muscle.

    Attributes
    ----------
    stimulus_times_s : ndarray, shape (n_stimuli,)
    cmap_relative : ndarray, shape (n_stimuli,)
        CMAP amplitude as the fraction of the muscle's fibres that transmitted.
    decrement_percent : ndarray, shape (n_stimuli,)
        ``100 (1 − CMAP_k / CMAP_1)``.
    blocked : ndarray of bool, shape (n_endplates, n_stimuli)
    """

    stimulus_times_s: np.ndarray
    cmap_relative: np.ndarray
    decrement_percent: np.ndarray
    blocked: np.ndarray

    @property
    def decrement_4th_percent(self) -> float:
        """Decrement from the 1st to the 4th response, % (> 10 % is abnormal)."""
        return float(self.decrement_percent[3])


def simulate_rns(preset: str = "healthy-edc", *, muscle: str | None = None, rate_hz: float = 3.0,
                 n_stimuli: int = 10, n_endplates: int = 1000, seed=None) -> RNSResult:
    """Simulate repetitive nerve stimulation of a muscle from rest.

    Parameters
    ----------
    preset : str
        Physiological state (``sfemg presets``).
    muscle : str, optional
        Use this muscle's healthy physiology instead of the preset's.
    rate_hz : float
        Stimulation rate, Hz (clinically 2–5 Hz).
    n_stimuli : int
        Stimuli in the train, >= 4.
    n_endplates : int
        Muscle fibres contributing to the CMAP (at most 10⁶).
    seed : int, numpy.random.Generator or None
        As for :func:`~sfemg.synthesis.simulate_study`.

    Returns
    -------
    RNSResult
    """
    if isinstance(rate_hz, bool) or not isinstance(rate_hz, (int, float, np.integer, np.floating)) \
            or not (np.isfinite(rate_hz) and 0 < rate_hz <= 100):
        raise SfemgInputError(f"rate_hz must be in (0, 100] Hz, got {rate_hz!r}")
    for name, value, low, high in (("n_stimuli", n_stimuli, 4, 10_000),
                                   ("n_endplates", n_endplates, 1, 1_000_000)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
            raise SfemgInputError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    p, nmj = get_preset(preset, muscle)
    rng = np.random.default_rng(resolve_seed(seed))
    state = draw_endplates(nmj, p.disease, int(n_endplates), rng)
    times = np.arange(int(n_stimuli)) / rate_hz
    tx = simulate_transmission(state, times, draw_transmission_noise(rng, (state.n_endplates, times.size)))
    cmap = (~tx.blocked).mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        decrement = 100.0 * (1.0 - cmap / cmap[0])
    return RNSResult(stimulus_times_s=times, cmap_relative=cmap, decrement_percent=decrement,
                     blocked=tx.blocked)
