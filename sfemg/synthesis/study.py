"""Simulate whole recordings and studies: firing, transmission, propagation, signal.

:func:`simulate_study` is the entry point: a preset (muscle + disorder), an activation
mode and counts in; a :class:`Study` of :class:`~sfemg.recording.Recording` objects with
ground truth out. Each recording is one electrode position with its own random stream
(``SeedSequence(seed).spawn``), so the result is the same bits whatever the number of
worker threads.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import signal as sps

from .. import __version__
from .._units import to_samples
from .._validation import check_number, worker_count
from ..errors import SfemgInputError
from ..recording import GroundTruth, Recording
from .physiology import Disease, NMJParams, draw_endplates
from .potentials import Conductor, FibrePotential, compute_fibre_potential, conduction_velocity_m_s
from .presets import get_preset
from .render import Amplifier, WaveTable, iter_signal_chunks, render_segment, render_sweeps
from .transmission import draw_transmission_noise, simulate_transmission

__all__ = ["StudyParams", "Study", "study_params", "simulate_study", "write_study", "simulate_recording",
           "ELECTRODE_AMPLIFIERS"]

#: Clinical amplifier settings per electrode (docs/literature.md §5): SFE high-pass 500 Hz,
#: concentric needle 1 kHz; the concentric electrode's larger surface has lower noise.
ELECTRODE_AMPLIFIERS = {
    "sfe": Amplifier(highpass_hz=500.0, lowpass_hz=10_000.0, noise_rms_v=10e-6),
    "concentric": Amplifier(highpass_hz=1000.0, lowpass_hz=10_000.0, noise_rms_v=7e-6),
}

#: Concentric needle recording surface (DCF25-like, ~0.07 × 0.3 mm ellipse), sampled as
#: points (axial offset, extra radial offset), m.
_CNE_SEMI_AXES_M = (0.15e-3, 0.035e-3)


def _concentric_points(n=9):
    """Points of an n × n grid inside the concentric needle's elliptic core, shape
    (n_inside, 2): (axial offset, extra radial offset), m."""
    a, b = _CNE_SEMI_AXES_M
    u = np.linspace(-1, 1, n)
    uu, vv = np.meshgrid(u, u)
    keep = uu ** 2 + vv ** 2 <= 1
    return np.column_stack([a * uu[keep], b * (vv[keep] + 1)])


#: Bounds on a study that no SFEMG study comes near, so that a typo (``--discharges
#: 100000000``, ``--rate 0.001``) is an input error, not hours of work or a crash.
MAX_RECORDINGS = 100_000
MAX_RECORDING_S = 24 * 3600.0


@dataclass(frozen=True)
class StudyParams:
    """Everything that defines a simulated study (stored with it in full).

    Attributes
    ----------
    preset : str
        Name of the physiological state (``sfemg presets``).
    muscle : str
        Muscle whose healthy physiology is used.
    mode : {"voluntary", "stimulated"}
    n_recordings : int
        Electrode positions: fibre pairs (voluntary) or endplates (stimulated) when
        ``fibres_per_recording`` is 2 or 1 respectively.
    n_discharges : int
        Discharges (stimuli) recorded per position, after the warm-up.
    rate_hz : float
        Mean firing rate (voluntary) or stimulation rate (stimulated), Hz.
    rate_cv : float
        Coefficient of variation of the motor neuron's inter-discharge intervals
        (voluntary; 0.1–0.2 in health).
    fibres_per_recording : int
        Fibres of the unit in the pick-up area (voluntary: trigger + others).
    fs_hz : float
        Sampling rate, Hz.
    electrode : {"sfe", "concentric"}
    output : {"continuous", "sweeps"}
    sweep_window_s, sweep_pretrigger_s : float
        Sweep length and the part before the trigger (stimulus), s.
    warmup_s : float
        Activity before the recording starts, so transmission is in its steady state, s.
    n_background_units : int
        Distant, unrelated motor units firing in the background.
    stimulus_artefact : bool
        Add a decaying artefact at each stimulus (stimulated mode).
    stimulator_clock : {"sampling", "own"}
        Stimulated mode: the stimulator is triggered by the sampling clock (every stimulus
        on a sample, the recording's stimulus times exact), or runs on a clock of its
        own (each stimulus anywhere within a sample; the recording's stimulus times are
        markers at the first sample from each, as a marker channel takes them; the ground
        truth keeps the exact times).
    nmj : NMJParams
    disease : Disease
    conductor : Conductor
    amplifier : Amplifier, optional
        Filters and noise; by default the clinical setting of ``electrode``
        (:data:`ELECTRODE_AMPLIFIERS`).
    """

    preset: str = "healthy-edc"
    muscle: str = "edc"
    mode: Literal["voluntary", "stimulated"] = "voluntary"
    n_recordings: int = 20
    n_discharges: int = 100
    rate_hz: float = 10.0
    rate_cv: float = 0.15
    fibres_per_recording: int = 2
    fs_hz: float = 50_000.0
    electrode: Literal["sfe", "concentric"] = "sfe"
    output: Literal["continuous", "sweeps"] = "continuous"
    sweep_window_s: float = 10e-3
    sweep_pretrigger_s: float = 2e-3
    warmup_s: float = 3.0
    n_background_units: int = 3
    stimulus_artefact: bool = True
    stimulator_clock: Literal["sampling", "own"] = "sampling"
    nmj: NMJParams = field(default_factory=NMJParams)
    disease: Disease = field(default_factory=Disease)
    conductor: Conductor = field(default_factory=Conductor)
    amplifier: Amplifier | None = None

    def __post_init__(self):
        def bad(name, rule):
            raise SfemgInputError(f"{name} must be {rule}, got {getattr(self, name)!r}")

        for name, kind in (("nmj", NMJParams), ("disease", Disease), ("conductor", Conductor),
                           ("amplifier", (Amplifier, type(None)))):
            if not isinstance(getattr(self, name), kind):  # (a dict failed deep inside the simulation)
                kinds = kind if isinstance(kind, tuple) else (kind,)
                bad(name, " or ".join("None" if k is type(None) else f"a {k.__name__}" for k in kinds))
        if self.mode not in ("voluntary", "stimulated"):
            bad("mode", "'voluntary' or 'stimulated'")
        if self.electrode not in ELECTRODE_AMPLIFIERS:
            bad("electrode", "'sfe' or 'concentric'")
        if self.amplifier is None:
            object.__setattr__(self, "amplifier", ELECTRODE_AMPLIFIERS[self.electrode])
        if self.output not in ("continuous", "sweeps"):
            bad("output", "'continuous' or 'sweeps'")
        if self.stimulator_clock not in ("sampling", "own"):
            bad("stimulator_clock", "'sampling' or 'own'")
        for name, low in (("n_recordings", 1), ("n_discharges", 2), ("fibres_per_recording", 1),
                          ("n_background_units", 0)):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                bad(name, f"an integer >= {low}")
        if self.mode == "voluntary" and self.fibres_per_recording < 2:
            bad("fibres_per_recording", ">= 2 in voluntary mode (a trigger and a timed fibre)")
        check_number(self, "rate_hz", 0.0, 100.0, low_open=True)
        if self.n_recordings > MAX_RECORDINGS:
            bad("n_recordings", f"at most {MAX_RECORDINGS}")
        if self.n_discharges / self.rate_hz > MAX_RECORDING_S:
            bad("n_discharges", f"at most {MAX_RECORDING_S / 3600:g} hours of firing at rate_hz = {self.rate_hz:g} Hz")
        check_number(self, "rate_cv", 0.0, 0.5)
        for name in ("sweep_window_s", "sweep_pretrigger_s", "warmup_s"):
            check_number(self, name, 0.0)
        if self.output == "sweeps" and not self.sweep_pretrigger_s < self.sweep_window_s:
            bad("sweep_pretrigger_s", "shorter than sweep_window_s")
        if self.mode == "voluntary" and self.rate_hz > 50:
            bad("rate_hz", "<= 50 Hz for voluntary firing")
        check_number(self, "fs_hz", 0.0, low_open=True)  # (a number first: text failed inside the check below)
        self.amplifier.check_sampling_rate(self.fs_hz)
        if self.output == "sweeps" and self.sweep_window_s * self.rate_hz >= 1:
            bad("sweep_window_s", f"shorter than the mean interval 1/rate_hz = {1 / self.rate_hz:g} s")

    def to_dict(self) -> dict:
        """All parameters as a JSON-serialisable dict (nested dataclasses as dicts)."""
        return dataclasses.asdict(self)

    def approx_signal_bytes(self) -> float:
        """About how many bytes the study's samples take stored, for a check of the free
        space before writing, erring high: float32, each recording's rounded up to whole
        MiB (HDF5 stores whole chunks; a continuous signal's also runs past its last
        discharge) and a quarter more (ground truth, metadata)."""
        per_recording_s = (self.n_discharges * self.sweep_window_s if self.output == "sweeps"
                           else self.n_discharges / self.rate_hz)
        mib = 2.0 ** 20
        return 1.25 * self.n_recordings * np.ceil(4.0 * per_recording_s * self.fs_hz / mib + 1.0) * mib


@dataclass(frozen=True)
class Study:
    """A simulated study: its recordings, the parameters and the seed that made them."""

    recordings: tuple[Recording, ...]
    params: StudyParams
    seed: int
    ground_truths: tuple[GroundTruth, ...] = ()

    def __post_init__(self):
        if not self.ground_truths:
            object.__setattr__(self, "ground_truths",
                               tuple(r.ground_truth for r in self.recordings))

    def provenance(self) -> dict:
        """Package version, seed and generator used, for storage."""
        return {"sfemg_version": __version__, "seed": int(self.seed),
                "generator": "numpy PCG64 via SeedSequence.spawn, one stream per recording (and its child "
                             "for a stimulator's own clock)"}


@functools.lru_cache(maxsize=8)
def _background_bank(electrode, conductor):
    """Potentials of distant fibres (0.4-0.8 mm away), one set per electrode, shared by
    the background motor units of every recording (computed once)."""
    points = _concentric_points() if electrode == "concentric" else None
    return tuple(compute_fibre_potential(d, r, electrode_points_m=points, conductor=conductor)
                 for d in (45e-6, 60e-6, 75e-6) for r in (400e-6, 600e-6, 800e-6))


#: The converter's anti-alias filter (the signal is band-limited to below Nyquist before
#: it is sampled): Butterworth order and corner as a fraction of the sampling rate.
_ANTI_ALIAS_ORDER = 4
_ANTI_ALIAS_FRACTION = 0.4


@functools.lru_cache(maxsize=8)
def _stimulus_artefact(step_s, fs_hz=None):
    """The stimulus artefact: a 5 mV step decaying with a 0.1 ms time constant; with the
    sampling rate ``fs_hz``, through the converter's anti-alias low-pass
    (:data:`_ANTI_ALIAS_ORDER`, :data:`_ANTI_ALIAS_FRACTION` × ``fs_hz``) before it is
    sampled (the amplifier's own filters then act on the samples, as on everything).

    A stimulator on its own clock needs it: a bare step between two samples reads alike
    at every sampling phase, with no time within a sample to find (its fitted times kept
    to the sample grid: 2-4 µs of marker scatter read for 5.8). On the sampling clock
    every stimulus falls on a sample, and the bare step of the simulator's first
    versions is kept: filtered (with the amplifier's 10 kHz low-pass), it had changed
    the simulated stimulated studies (a rejected pseudo-response of ~0.1 mV at 1.2 ms,
    the artefact's leftover past the blank, in 8 of 144 recordings).
    """
    tt = np.arange(0, 2e-3, step_s)
    artefact = 5e-3 * np.exp(-tt / 0.1e-3) * (tt > 0)
    if fs_hz is not None:
        sos = sps.butter(_ANTI_ALIAS_ORDER, _ANTI_ALIAS_FRACTION * fs_hz, "lowpass", fs=1.0 / step_s, output="sos")
        artefact = sps.sosfilt(sos, artefact)
    return FibrePotential(artefact, 0.0, step_s)


#: Spawn key suffix of a recording's stream for its stimulator's own clock: a child of
#: the recording's SeedSequence built by hand (``.spawn`` would depend on how often it
#: had been called), so nothing else in a recording may spawn child 0.
_OWN_CLOCK_CHILD = 0


def _ground_truth(params: StudyParams, rng, seed_sequence):
    """:func:`_simulate_physiology`, and for a stimulator on its own clock each stimulus
    moved, with its responses, to anywhere within the sample after it — drawn from a
    stream of its own after the physiology, which is the sampling clock's (its intervals
    differ by under a sample), so that the rest of the recording keeps its draws."""
    gt, geometry = _simulate_physiology(params, rng)
    if params.mode == "stimulated" and params.stimulator_clock == "own":
        child = np.random.SeedSequence(seed_sequence.entropy, spawn_key=(*seed_sequence.spawn_key, _OWN_CLOCK_CHILD),
                                       pool_size=seed_sequence.pool_size)
        offsets_s = np.random.default_rng(child).random(gt.discharge_times_s.size) / params.fs_hz
        gt = dataclasses.replace(gt, discharge_times_s=gt.discharge_times_s + offsets_s,
                                 event_times_s=gt.event_times_s + offsets_s[None, :])
    return gt, geometry


def _discharge_times(params: StudyParams, rng) -> tuple[np.ndarray, int]:
    """Nerve discharge (stimulus) times including the warm-up, s (the recording starts at
    0), and the number of warm-up discharges before it."""
    n_warm = int(np.ceil(params.warmup_s * params.rate_hz))
    n = n_warm + params.n_discharges
    mean = 1.0 / params.rate_hz
    if params.mode == "stimulated":
        intervals = np.full(n, mean)
    else:
        intervals = mean * (1.0 + params.rate_cv * rng.standard_normal(n))
        intervals = np.maximum(intervals, 0.25 * mean)  # refractoriness: no doublets
    times = np.cumsum(intervals)
    times = times - times[n_warm] + 0.5 * mean
    if params.mode == "stimulated":
        # a stimulator on the sampling clock (or one whose own is moved off it later)
        # fires on samples: where the period is no whole number of samples (7 Hz at
        # 50 kHz), each stimulus to its nearest; times within 1e-6 sample of one (10 Hz
        # at 25-100 kHz, to rounding) are kept as computed
        samples = times * params.fs_hz
        off_grid = np.abs(samples - np.round(samples)) > 1e-6
        times = np.where(off_grid, np.round(samples) / params.fs_hz, times)
    return times, n_warm


def _propagation_delay_s(event_base_s, blocked, distance_m, velocity_m_s, nmj: NMJParams):
    """Endplate-to-electrode conduction time with velocity recovery, per discharge.

    The velocity after a discharge is ``v (1 + g exp(-IDI / tau))`` with IDI the
    interval since this fibre's previous action potential (longer after a block).
    """
    n_fibres, n = event_base_s.shape
    delay = np.empty((n_fibres, n))
    for f in range(n_fibres):
        fired = ~blocked[f]
        idx = np.where(fired, np.arange(n), -1)
        last = np.maximum.accumulate(idx)
        prev = np.concatenate([[-1], last[:-1]])
        idi = np.where(prev >= 0, event_base_s[f] - event_base_s[f, np.maximum(prev, 0)], np.inf)
        gain = nmj.velocity_recovery_gain * np.exp(-idi / nmj.velocity_recovery_time_constant_s)
        delay[f] = distance_m[f] / (velocity_m_s[f] * (1.0 + gain))
    return delay


def _simulate_physiology(params: StudyParams, rng):
    """Firing, transmission, geometry and propagation of one electrode position.

    Returns
    -------
    gt : GroundTruth
    geometry : dict of str to ndarray
        ``diameter_m``, ``radial_m``, ``velocity_m_s`` per fibre (for rendering).
    """
    voluntary = params.mode == "voluntary"
    n_fib = params.fibres_per_recording
    times, n_warm = _discharge_times(params, rng)
    state = draw_endplates(params.nmj, params.disease, n_fib, rng)
    if voluntary:
        # The examiner triggers on a stable potential: the trigger fibre (0) is the one
        # with the most secure transmission; the others are timed against it.
        sf = state.resting_safety_factor()
        state = state.subset(np.concatenate([[np.argmax(sf)], np.delete(np.arange(n_fib), np.argmax(sf))]))
    noise = draw_transmission_noise(rng, (n_fib, times.size))
    tx = simulate_transmission(state, times, noise)

    # Fibre geometry: the trigger fibre (0) is closest to the electrode.
    diameter = np.clip(rng.normal(55e-6, 8e-6, n_fib), 30e-6, 80e-6)
    radial = rng.uniform(60e-6, 180e-6, n_fib)
    radial[0] = rng.uniform(45e-6, 90e-6)
    # endplate to electrode: near the endplate zone when stimulating intramuscular nerve twigs
    distance = rng.uniform(5e-3, 25e-3, n_fib) if voluntary else rng.uniform(3e-3, 10e-3, n_fib)
    velocity = conduction_velocity_m_s(diameter)
    # Axonal delays place the potentials apart: voluntary IPIs 0.9-1.7 ms after the
    # trigger (then 1.9-2.7 ms, ...); stimulated latencies 2.5-4.5 ms from the stimulus.
    fired = np.where(tx.blocked, np.inf, tx.latency_s)
    typical_nmj = np.where(np.isfinite(fired).any(axis=1), np.median(fired, axis=1), 0.0)
    typical_nmj = np.where(np.isfinite(typical_nmj), typical_nmj, 0.0)
    typical = params.nmj.synaptic_delay_s + typical_nmj + distance / velocity
    if voluntary:
        target = np.concatenate([[0.0], 0.9e-3 + 1.0e-3 * np.arange(n_fib - 1)
                                 + rng.uniform(0, 0.8e-3, n_fib - 1)])
        axon = target - (typical - typical[0])
        axon += 1e-3 - axon.min()  # every branch conducts for at least 1 ms
    else:
        axon = np.maximum(rng.uniform(2.5e-3, 4.5e-3, n_fib) - typical, 0.3e-3)
    base = times[None, :] + axon[:, None] + params.nmj.synaptic_delay_s
    arrive = base + np.nan_to_num(tx.latency_s)
    prop = _propagation_delay_s(arrive, tx.blocked, distance, velocity, params.nmj)
    events = np.where(tx.blocked, np.nan, arrive + prop)
    keep = slice(n_warm, None)
    fibres = {"diameter_m": diameter, "radial_distance_m": radial,
              "endplate_to_electrode_m": distance, "conduction_velocity_m_s": velocity,
              "axonal_delay_s": axon, "resting_safety_factor": state.resting_safety_factor()}
    fibres.update({k: np.asarray(v) for k, v in state.as_dict().items()})
    gt = GroundTruth(
        discharge_times_s=times[keep],
        event_times_s=events[:, keep],
        endplate_latency_s=(axon[:, None] + params.nmj.synaptic_delay_s + tx.latency_s)[:, keep],
        blocked=tx.blocked[:, keep],
        epp_amplitude_v=tx.epp_amplitude_v[:, keep],
        threshold_v=tx.threshold_v[:, keep],
        safety_factor=tx.safety_factor[:, keep],
        quantal_content=tx.quantal_content[:, keep],
        trigger_fibre=0 if voluntary else -1,
        fibres=fibres,
    )
    return gt, {"diameter_m": diameter, "radial_m": radial, "velocity_m_s": velocity}


@dataclass(frozen=True)
class _RenderPlan:
    """Everything needed to render one recording's signal, in memory or in chunks."""

    name: str
    ground_truth: GroundTruth
    table: WaveTable
    event_times_s: np.ndarray
    event_wave: np.ndarray
    event_gain: np.ndarray
    stimulus_times_s: np.ndarray | None
    n_samples: int
    sweep_start_times_s: np.ndarray | None
    rng: np.random.Generator


def _plan_recording(params: StudyParams, index: int, seed_sequence) -> _RenderPlan:
    """Physiology, geometry and the events to render at one electrode position."""
    rng = np.random.default_rng(seed_sequence)
    voluntary = params.mode == "voluntary"
    n_fib = params.fibres_per_recording
    gt, geo = _ground_truth(params, rng, seed_sequence)
    gt_times, gt_events = gt.discharge_times_s, gt.event_times_s
    t_end = np.nanmax(np.concatenate([gt_events.ravel(), gt_times])) + 5e-3

    # Waveforms: one per fibre (+ background units, + stimulus artefact).
    points = _concentric_points() if params.electrode == "concentric" else None
    waves = [compute_fibre_potential(d, r, v, electrode_points_m=points, conductor=params.conductor)
             for d, r, v in zip(geo["diameter_m"], geo["radial_m"], geo["velocity_m_s"])]
    ev_t = [gt_events[f][np.isfinite(gt_events[f])] for f in range(n_fib)]
    ev_w = [np.full(e.size, f) for f, e in enumerate(ev_t)]
    ev_g = [np.ones(e.size) for e in ev_t]
    bank = _background_bank(params.electrode, params.conductor)
    for _ in range(params.n_background_units):
        waves.append(bank[rng.integers(len(bank))])
        rate = rng.uniform(7.0, 14.0)
        isi = (1.0 + 0.15 * rng.standard_normal(int(t_end * rate) + 3)) / rate
        t = rng.uniform(0, 1 / rate) + np.cumsum(np.maximum(isi, 0.2 / rate))
        t = t[t < t_end]
        ev_t.append(t)
        ev_w.append(np.full(t.size, len(waves) - 1))
        ev_g.append(np.full(t.size, rng.uniform(1.0, 3.0)))
    stimulus = markers_s = None
    if not voluntary:
        stimulus = gt_times
        # a stimulator on its own clock is marked at the first sample from each stimulus
        markers_s = np.ceil(gt_times * params.fs_hz - 1e-6) / params.fs_hz if params.stimulator_clock == "own" \
            else gt_times
        if params.stimulus_artefact:
            waves.append(_stimulus_artefact(waves[0].step_s, params.fs_hz if params.stimulator_clock == "own"
                                            else None))
            ev_t.append(stimulus)
            ev_w.append(np.full(stimulus.size, len(waves) - 1))
            ev_g.append(np.ones(stimulus.size))
    starts = None
    if params.output == "sweeps":
        if voluntary:
            # triggered on the trigger fibre's potential, as an EMG machine does; where
            # it is blocked (rare: it is the most secure fibre) at its median delay
            trigger_delay = gt_events[0] - gt_times
            present = np.isfinite(trigger_delay)
            trigger_nominal = np.median(trigger_delay[present]) if present.any() else 0.0
            starts = np.where(present, gt_events[0], gt_times + trigger_nominal) - params.sweep_pretrigger_s
        else:
            starts = markers_s - params.sweep_pretrigger_s
    prefix = "pair" if voluntary else "endplate"
    # in time order, so a signal rendered whole or in chunks sums its events in one order
    ev_t, ev_w, ev_g = (np.concatenate(x) for x in (ev_t, ev_w, ev_g))
    order = np.argsort(ev_t, kind="stable")
    return _RenderPlan(name=f"{prefix}{index + 1:03d}", ground_truth=gt, table=WaveTable.stack(waves),
                       event_times_s=ev_t[order], event_wave=ev_w[order],
                       event_gain=ev_g[order], stimulus_times_s=markers_s,
                       n_samples=int(np.ceil(t_end * params.fs_hz)), sweep_start_times_s=starts, rng=rng)


def _recording(params: StudyParams, plan: _RenderPlan, signal=None, sweeps=None) -> Recording:
    """The Recording of a plan with its rendered signal (or sweeps)."""
    return Recording(name=plan.name, fs_hz=params.fs_hz, signal_v=signal, sweeps_v=sweeps,
                     sweep_start_times_s=plan.sweep_start_times_s, stimulus_times_s=plan.stimulus_times_s,
                     mode=params.mode, electrode=params.electrode, muscle=params.muscle,
                     ground_truth=plan.ground_truth)


def _events(plan: _RenderPlan):
    return plan.table, plan.event_times_s, plan.event_wave, plan.event_gain


def _render_sweeps(params: StudyParams, plan: _RenderPlan) -> np.ndarray:
    """Sweeps of ``sweep_window_s`` at each start, each with a settled filter."""
    n_win = to_samples(params.sweep_window_s, params.fs_hz)
    return render_sweeps(plan.sweep_start_times_s, n_win, params.fs_hz, *_events(plan),
                         amplifier=params.amplifier, rng=plan.rng, lead_s=5e-3)


def simulate_recording(params: StudyParams, index: int, seed_sequence, *, render=True):
    """Simulate the recording at one electrode position.

    Parameters
    ----------
    params : StudyParams
    index : int
        Position in the study (names the recording).
    seed_sequence : numpy.random.SeedSequence
        This recording's own random stream. The physiology draws come first, so the
        ground truth is the same whether or not the signal is rendered.
    render : bool
        Render the signal; when False only the ground truth is simulated (fast).

    Returns
    -------
    Recording or GroundTruth
        A Recording with its :class:`~sfemg.recording.GroundTruth`, or the ground truth
        alone when ``render`` is False.
    """
    if not render:
        return _ground_truth(params, np.random.default_rng(seed_sequence), seed_sequence)[0]
    plan = _plan_recording(params, index, seed_sequence)
    if params.output == "sweeps":
        return _recording(params, plan, sweeps=_render_sweeps(params, plan))
    signal = render_segment(0.0, plan.n_samples, params.fs_hz, *_events(plan),
                            amplifier=params.amplifier, rng=plan.rng)
    return _recording(params, plan, signal=signal)


def resolve_seed(seed) -> int:
    """An integer seed in [0, 2**63) from ``seed`` (int, Generator or None → fresh entropy).

    Raises
    ------
    SfemgInputError
        For anything else (negative, too large to store, not an integer).
    """
    if seed is None:
        return int(np.random.SeedSequence().entropy % (2 ** 63))
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2 ** 63))
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and 0 <= seed < 2 ** 63:
        return int(seed)
    raise SfemgInputError(f"seed must be an integer in [0, 2**63), a Generator or None, got {seed!r}")


def study_params(preset: str = "healthy-edc", *, muscle: str | None = None,
                 mode: Literal["voluntary", "stimulated"] = "voluntary",
                 n_recordings: int | None = None, n_discharges: int | None = None,
                 rate_hz: float | None = None, fs_hz: float = 50_000.0,
                 electrode: Literal["sfe", "concentric"] = "sfe",
                 output: Literal["continuous", "sweeps"] = "continuous", **overrides) -> StudyParams:
    """The complete, validated parameters of a study of a named state.

    Parameters
    ----------
    preset : str
        Physiological state (``sfemg.synthesis.PRESETS``), e.g. ``"healthy-edc"``,
        ``"achr-mg-moderate"``.
    muscle : str, optional
        Use this muscle's healthy physiology instead of the preset's.
    mode : {"voluntary", "stimulated"}
        Voluntary activation (fibre pairs of one unit) or axonal stimulation (endplates).
    n_recordings : int, optional
        Electrode positions: pairs (voluntary, default 20) or endplates (stimulated,
        default 30).
    n_discharges : int, optional
        Discharges (stimuli) per position (default 100 voluntary, 50 stimulated).
    rate_hz : float, optional
        Firing rate or stimulation rate (default 10 Hz, the preferred stimulation rate).
    fs_hz : float
        Sampling rate, Hz.
    electrode : {"sfe", "concentric"}
    output : {"continuous", "sweeps"}
    **overrides
        Any other :class:`StudyParams` field (``nmj=``, ``disease=``, ``rate_cv=``, ...).

    Returns
    -------
    StudyParams
    """
    p, nmj = get_preset(preset, muscle)
    stimulated = mode == "stimulated"
    kwargs = dict(
        preset=preset, muscle=p.muscle, mode=mode,
        n_recordings=n_recordings if n_recordings is not None else (30 if stimulated else 20),
        n_discharges=n_discharges if n_discharges is not None else (50 if stimulated else 100),
        rate_hz=rate_hz if rate_hz is not None else 10.0,
        fibres_per_recording=1 if stimulated else 2,
        fs_hz=fs_hz, electrode=electrode, output=output, nmj=nmj, disease=p.disease,
    )
    unknown = set(overrides) - {f.name for f in dataclasses.fields(StudyParams)}
    if unknown:
        raise SfemgInputError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
    kwargs.update(overrides)
    return StudyParams(**kwargs)


def _run(params: StudyParams, seed, n_jobs, progress, task, stop=None):
    """Run ``task(i, seed_sequence_i)`` for every recording, on ``n_jobs`` threads, in order.

    On an error or an interruption ``stop`` (a :class:`threading.Event`, which long
    tasks check) is set, the tasks not started are dropped and the running ones awaited.

    Returns the integer seed and the list of results in recording order.
    """
    seed_int = resolve_seed(seed)
    children = np.random.SeedSequence(seed_int).spawn(params.n_recordings)
    n_jobs = worker_count(n_jobs, "n_jobs")
    results = []
    pool = ThreadPoolExecutor(n_jobs)
    try:
        futures = [pool.submit(task, k, children[k]) for k in range(params.n_recordings)]
        for i, future in enumerate(futures):
            results.append(future.result())
            if progress:
                progress(i + 1, params.n_recordings)
    except BaseException:  # a failed recording or Ctrl-C: do not finish the others first
        if stop is not None:
            stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return seed_int, results


def simulate_study(preset: str = "healthy-edc", *, seed=None, n_jobs: int | None = None, progress=None,
                   render: bool = True, **kwargs) -> Study:
    """Simulate a single-fibre EMG study from the physiology of a named state, in memory.

    Parameters
    ----------
    preset : str
        Physiological state (``sfemg.synthesis.PRESETS``).
    seed : int, numpy.random.Generator or None
        Same seed, same bits, whatever ``n_jobs``.
    n_jobs : int, optional
        Worker threads (default: all cores).
    progress : callable, optional
        Called as ``progress(n_done, n_total)`` after each recording.
    render : bool
        Render the signals. With False only the ground truth is simulated (the same
        ground truth, from the same seed): ``Study.recordings`` is empty and
        ``Study.ground_truths`` holds it — for fast physiology sweeps.
    **kwargs
        The study: ``muscle``, ``mode``, ``n_recordings``, ``n_discharges``, ``rate_hz``,
        ``fs_hz``, ``electrode``, ``output`` and any :class:`StudyParams` field — see
        :func:`study_params`.

    Returns
    -------
    Study

    See Also
    --------
    write_study : the same, streamed straight to HDF5 (long recordings, bounded memory).

    Examples
    --------
    >>> study = simulate_study("healthy-edc", n_recordings=2, n_discharges=50, seed=1)
    >>> [r.name for r in study.recordings]
    ['pair001', 'pair002']
    """
    params = study_params(preset, **kwargs)
    seed_int, results = _run(params, seed, n_jobs, progress,
                             lambda i, seq: simulate_recording(params, i, seq, render=render))
    if not render:
        return Study(recordings=(), params=params, seed=seed_int, ground_truths=tuple(results))
    return Study(recordings=tuple(results), params=params, seed=seed_int)


def write_study(path, params: StudyParams, *, seed=None, n_jobs: int | None = None, progress=None,
                force: bool = False, chunk_s: float = 5.0, provenance: dict | None = None) -> Study:
    """Simulate a study straight into an HDF5 file, streaming long signals in chunks.

    Memory stays bounded by ``n_jobs`` chunks of ``chunk_s`` seconds whatever the
    recordings' length (a 1-hour recording needs no more than a 10-second one). The file
    holds the same bits :func:`simulate_study` followed by
    :func:`~sfemg.io.save_recordings` would write.

    Parameters
    ----------
    path : str or os.PathLike
        Output file (written atomically; an existing file only with ``force``).
    params : StudyParams
        From :func:`study_params`.
    seed, n_jobs, progress
        As for :func:`simulate_study`.
    force : bool
        Replace an existing file.
    chunk_s : float
        Length of the streamed chunks, s.
    provenance : dict, optional
        Extra provenance attributes (e.g. the command line).

    Returns
    -------
    Study
        Parameters, seed and ground truths (no signals: they are in the file).
    """
    from ..io import open_study_writer

    if not (np.isfinite(chunk_s) and chunk_s > 0):
        raise SfemgInputError(f"chunk_s must be positive, got {chunk_s!r}")
    chunk_samples = max(int(chunk_s * params.fs_hz), 1)
    seed_int = resolve_seed(seed)
    header = Study(recordings=(), params=params, seed=seed_int, ground_truths=())
    stop = threading.Event()  # (set on an error or Ctrl-C: long recordings end at their next chunk)
    with open_study_writer(path, parameters=params.to_dict(), provenance={**header.provenance(), **(provenance or {})},
                           force=force, expected_bytes=params.approx_signal_bytes()) as writer:
        def task(i, seq):
            plan = _plan_recording(params, i, seq)
            if params.output == "sweeps":
                writer.add(_recording(params, plan, sweeps=_render_sweeps(params, plan)))
                return plan.ground_truth
            writer.begin_signal(plan.name, params.fs_hz, plan.n_samples, mode=params.mode,
                                electrode=params.electrode, muscle=params.muscle,
                                stimulus_times_s=plan.stimulus_times_s)
            for first, chunk in iter_signal_chunks(plan.n_samples, params.fs_hz, *_events(plan),
                                                   amplifier=params.amplifier, rng=plan.rng,
                                                   chunk_samples=chunk_samples):
                if stop.is_set():
                    return None
                writer.write_chunk(plan.name, first, chunk)
            writer.add_ground_truth(plan.name, plan.ground_truth)
            return plan.ground_truth

        _, ground_truths = _run(params, seed_int, n_jobs, progress, task, stop)
    return Study(recordings=(), params=params, seed=seed_int, ground_truths=tuple(ground_truths))
