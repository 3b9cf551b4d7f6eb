"""In-memory recordings: what the simulator produces, files hold and the analysis reads.

A :class:`Recording` is one electrode position: either a continuous ``signal_v`` or a set
of windowed ``sweeps_v``, its sampling rate, and optionally the stimulus times
(stimulated recordings) and, for synthetic recordings, the :class:`GroundTruth`.
Validation happens here, once, so every consumer can trust the arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .errors import SfemgInputError

__all__ = ["Recording", "GroundTruth", "Mode"]

Mode = Literal["voluntary", "stimulated"]


def _float_array(name, value, ndim):
    """Return ``value`` as a finite float64 array of ``ndim`` dimensions or raise."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu" or arr.dtype.kind == "b":
        raise SfemgInputError(f"{name}: expected real numbers, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise SfemgInputError(f"{name}: expected a {ndim}-D array, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise SfemgInputError(f"{name}: contains NaN or infinite values (gaps? cut them out, or analyse the "
                              "parts between them separately)")
    return arr


@dataclass(frozen=True)
class GroundTruth:
    """What really happened in a synthetic recording, per fibre and discharge.

    Attributes
    ----------
    discharge_times_s : ndarray, shape (n_discharges,)
        Motor-neuron discharge times (voluntary) or stimulus times (stimulated), s.
    event_times_s : ndarray, shape (n_fibres, n_discharges)
        Time each fibre's action potential passes the electrode, s; NaN when blocked.
    endplate_latency_s : ndarray, shape (n_fibres, n_discharges)
        Nerve discharge (or stimulus) to the endplate's action potential, s; NaN if blocked.
    blocked : ndarray of bool, shape (n_fibres, n_discharges)
        True where the endplate potential failed to reach threshold.
    epp_amplitude_v : ndarray, shape (n_fibres, n_discharges)
        Endplate-potential amplitude, V.
    threshold_v : ndarray, shape (n_fibres, n_discharges)
        Depolarisation needed to fire the fibre, V.
    safety_factor : ndarray, shape (n_fibres, n_discharges)
        ``epp_amplitude_v / threshold_v``.
    quantal_content : ndarray, shape (n_fibres, n_discharges)
        Quanta released.
    trigger_fibre : int
        Index of the fibre whose potential triggers the sweeps (voluntary recordings).
    fibres : dict of str to ndarray, each shape (n_fibres,)
        Static per-fibre properties (diameter, distances, AChR fraction, ...), SI units.
    """

    discharge_times_s: np.ndarray
    event_times_s: np.ndarray
    endplate_latency_s: np.ndarray
    blocked: np.ndarray
    epp_amplitude_v: np.ndarray
    threshold_v: np.ndarray
    safety_factor: np.ndarray
    quantal_content: np.ndarray
    trigger_fibre: int = 0
    fibres: dict = field(default_factory=dict)

    @property
    def n_fibres(self) -> int:
        """Number of fibres of the motor unit in the recording."""
        return self.event_times_s.shape[0]

    def true_jitter_mcd_s(self, fibre: int, reference: int | None = None) -> float:
        """Mean consecutive difference of the true IPI (or latency), s.

        Parameters
        ----------
        fibre : int
            The fibre whose potential is timed.
        reference : int, optional
            The reference fibre (voluntary pairs). When None the latency from the
            discharge (stimulus) is used, as for a stimulated endplate.

        Returns
        -------
        float
            MCD over consecutive discharges where neither potential is blocked, s.
        """
        from .analysis.jitter import compute_mcd

        base = self.discharge_times_s if reference is None else self.event_times_s[reference]
        return compute_mcd(self.event_times_s[fibre] - base)


@dataclass(frozen=True)
class Recording:
    """One recording: a continuous signal or a set of sweeps, in volts.

    Attributes
    ----------
    name : str
        Unique name within a file (HDF5 group name).
    fs_hz : float
        Sampling rate, Hz.
    signal_v : ndarray, shape (n_samples,), optional
        Continuous signal, V. Exactly one of ``signal_v`` and ``sweeps_v`` is given.
    sweeps_v : ndarray, shape (n_sweeps, n_samples), optional
        Windowed sweeps, V, each starting at ``sweep_start_times_s``.
    sweep_start_times_s : ndarray, shape (n_sweeps,), optional
        Start time of each sweep, s (required with ``sweeps_v``).
    stimulus_times_s : ndarray, shape (n_stimuli,), optional
        Stimulus times, s (stimulated recordings).
    mode : {"voluntary", "stimulated"}, optional
        Activation; inferred as "stimulated" when stimulus times are given.
    electrode : {"sfe", "concentric"}, optional
    muscle : str, optional
    ground_truth : GroundTruth, optional
        Synthetic recordings only.
    """

    name: str
    fs_hz: float
    signal_v: np.ndarray | None = None
    sweeps_v: np.ndarray | None = None
    sweep_start_times_s: np.ndarray | None = None
    stimulus_times_s: np.ndarray | None = None
    mode: Mode | None = None
    electrode: str | None = None
    muscle: str | None = None
    ground_truth: GroundTruth | None = None

    def __post_init__(self):
        where = f"recording {self.name!r}"
        fs = self.fs_hz
        if not isinstance(fs, (int, float, np.integer, np.floating)) or not np.isfinite(fs) or fs <= 0:
            raise SfemgInputError(f"{where}: sampling_rate_hz must be a positive number, got {fs!r}")
        object.__setattr__(self, "fs_hz", float(fs))
        if (self.signal_v is None) == (self.sweeps_v is None):
            raise SfemgInputError(f"{where}: give exactly one of a continuous signal or sweeps")
        if self.signal_v is not None:
            sig = _float_array(f"{where}: signal", self.signal_v, 1)
            if sig.size < 2:
                raise SfemgInputError(f"{where}: signal has {sig.size} sample(s); need a recording")
            object.__setattr__(self, "signal_v", sig)
        else:
            sw = _float_array(f"{where}: sweeps", self.sweeps_v, 2)
            if sw.shape[0] < 1 or sw.shape[1] < 2:
                raise SfemgInputError(f"{where}: sweeps have shape {sw.shape}; need sweeps of samples")
            object.__setattr__(self, "sweeps_v", sw)
            if self.sweep_start_times_s is None:
                raise SfemgInputError(f"{where}: sweeps need sweep_start_times_s")
            starts = _float_array(f"{where}: sweep_start_times_s", self.sweep_start_times_s, 1)
            if starts.size != sw.shape[0]:
                raise SfemgInputError(
                    f"{where}: {starts.size} sweep start times for {sw.shape[0]} sweeps")
            if np.any(np.diff(starts) <= 0):  # (the MCD takes consecutive discharges)
                raise SfemgInputError(f"{where}: sweep_start_times_s must be strictly increasing")
            object.__setattr__(self, "sweep_start_times_s", starts)
        if self.stimulus_times_s is not None:
            stim = _float_array(f"{where}: stimulus_times_s", self.stimulus_times_s, 1)
            if stim.size and np.any(np.diff(stim) <= 0):
                raise SfemgInputError(f"{where}: stimulus_times_s must be strictly increasing")
            object.__setattr__(self, "stimulus_times_s", stim)
        mode = self.mode.strip().lower() if isinstance(self.mode, str) else self.mode  # ("Stimulated" too)
        if mode is None:
            mode = "stimulated" if self.stimulus_times_s is not None else "voluntary"
        if mode not in ("voluntary", "stimulated"):
            raise SfemgInputError(f"{where}: mode must be 'voluntary' or 'stimulated', not {mode!r}")
        if mode == "stimulated" and self.stimulus_times_s is None and self.sweeps_v is None:
            raise SfemgInputError(f"{where}: a stimulated continuous recording needs stimulus_times_s")
        object.__setattr__(self, "mode", mode)

    @property
    def is_sweeps(self) -> bool:
        """True for windowed (sweep) recordings."""
        return self.sweeps_v is not None
