"""Result objects of the jitter analysis: per pair, per recording and per study."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .params import AnalysisParams

__all__ = ["PairResult", "RecordingResult", "StudyResult", "PAIR_JSON_FIELDS", "FLAG_MEANINGS"]

#: What each pair flag means, in a line a report can print (docs/analysis.md §4).
FLAG_MEANINGS = {
    "clipped": "the potential or the trigger reaches the level where the samples clip (excluded)",
    "all-blocked": "the potential is missing in every discharge (excluded)",
    "few-discharges": "recorded over fewer than min_discharges (default 50), or its MCD from under half as many",
    "low-mcd": "MCD below low_mcd_us (default 5 µs): split fibre or direct muscle stimulation (excluded)",
    "flip-flop": "bimodal IPIs: the potential alternates between two latencies",
    "irregular-firing": "many short reference intervals: two units taken for one (excluded)",
    "latency-excursions": "found outside its search window in some discharges (counted as discharges)",
    "discharges-displaced": "some of the unit's discharges were lost with references left out",
    "stimulus-failures": "every response absent together after some stimuli: not blocks, those stimuli left out",
}

#: The per-pair fields of the ``--json`` summary, in order: the contract's (docs/hdf5.md),
#: then the pair's flags ("flip-flop", "few-discharges", ...), which a reader of the
#: summary should see as much as the reasons for rejection, the MCD's uncertainty, the
#: pair's label ("P1-P2", "R1"), as the report names it, and the potential's amplitude and
#: rise time, which its acceptance is judged on.
PAIR_JSON_FIELDS = ("mcd_us", "msd_us", "mcd_msd_ratio", "jitter_us", "mean_ipi_us",
                    "technical_jitter_us", "blocking_percent", "n_discharges", "n_blocked",
                    "accepted", "reject_reasons", "flags", "mcd_uncertainty_us", "label",
                    "amplitude_uv", "rise_time_us")


def json_value(value):
    """A JSON-safe scalar: NaN/inf become None, numpy scalars become Python ones."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (tuple, list)):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class PairResult:
    """Jitter of one fibre pair (voluntary) or one endplate (stimulated).

    Attributes
    ----------
    fibre : int
        Index of the timed potential among the recording's potentials (by latency).
    label : str
        Human-readable name, e.g. ``"P1-P2"`` or ``"R1"``.
    mcd_us, msd_us, mcd_msd_ratio, jitter_us : float
        MCD, MSD (NaN for stimulated), their ratio, and the reported jitter, µs.
    mean_ipi_us : float
        Mean IPI (voluntary) or mean latency from the stimulus (stimulated), µs.
    technical_jitter_us : float
        MCD that the Cramér–Rao bound on timing error alone gives, µs.
    mcd_uncertainty_us : float
        Standard uncertainty of ``mcd_us`` from timing error: the SD of the measured MCD
        about the MCD of the true time points, to first order (docs/analysis.md §3); NaN
        for the peak and level methods, whose timing error is not known.
    blocking_percent : float
        Percent of discharges in which the potential (or response) is missing.
    n_discharges, n_blocked : int
    accepted : bool
        False if any reject reason applies (the pair is left out of the study).
    reject_reasons : tuple of str
    flags : tuple of str
        Any of "flip-flop", "few-discharges", "low-mcd", "all-blocked", "irregular-firing",
        "latency-excursions", "discharges-displaced", "stimulus-failures", "clipped" (docs/analysis.md
        §4).
    amplitude_v : float
        Peak-to-peak amplitude of the timed potential's template, V.
    rise_time_us : float
        Rise time of the timed potential's template, µs.
    ipis_s : ndarray, shape (n_discharges,)
        IPI or latency per discharge, s; NaN where blocked.
    idis_s : ndarray, shape (n_discharges,)
        Preceding inter-discharge interval, s; NaN where unknown.
    blocked : ndarray of bool, shape (n_discharges,)
    reference_times_s : ndarray, shape (n_discharges,)
        Trigger time points (voluntary) or stimulus times (stimulated), s.
    time_points_s : ndarray, shape (n_discharges,)
        Time point of the timed potential, s; NaN where blocked.
    """

    fibre: int
    label: str
    mcd_us: float
    msd_us: float
    mcd_msd_ratio: float
    jitter_us: float
    mean_ipi_us: float
    technical_jitter_us: float
    blocking_percent: float
    n_discharges: int
    n_blocked: int
    accepted: bool
    reject_reasons: tuple = ()
    flags: tuple = ()
    amplitude_v: float = float("nan")
    rise_time_us: float = float("nan")
    mcd_uncertainty_us: float = float("nan")
    ipis_s: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    idis_s: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    blocked: np.ndarray = field(default_factory=lambda: np.empty(0, bool), repr=False)
    reference_times_s: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    time_points_s: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)

    @property
    def amplitude_uv(self) -> float:
        """:attr:`amplitude_v` in µV, the unit of the acceptance limits (and of the ``--json``
        summary)."""
        return self.amplitude_v * 1e6

    def to_json_dict(self) -> dict:
        """The ``--json`` summary of this pair (docs/hdf5.md; NaN written as null)."""
        return {name: json_value(getattr(self, name)) for name in PAIR_JSON_FIELDS}


@dataclass(frozen=True)
class RecordingResult:
    """Analysis of one recording.

    Attributes
    ----------
    name : str
    mode : {"voluntary", "stimulated"}
    fs_hz : float
    method : str
        Time-point method used.
    pairs : tuple of PairResult
    reference_times_s : ndarray, shape (n_discharges,)
        Trigger time points or stimulus times, s.
    idis_s : ndarray, shape (n_discharges,)
        Preceding inter-discharge interval, s (NaN for the first and where a reference
        left out may have taken the place of the unit's discharge before it).
    noise_rms_v : float
        Noise RMS in potential-free segments, V.
    potential_latencies_s : ndarray, shape (n_potentials,)
        Median latency of each potential from the reference, s.
    timing_sd_s : ndarray, shape (n_potentials,)
        Cramér–Rao bound on the standard deviation of each potential's time point, s.
    templates_v : ndarray, shape (n_potentials, n_template_samples)
        Each potential's template, polarity as recorded, centred on its peak (zero-padded), V.
    template_time_s : ndarray, shape (n_template_samples,)
        Time axis of the templates relative to their peak, s.
    aligned_sweeps_v : ndarray of float32, shape (n_discharges, n_sweep_samples)
        The signal around each trigger / stimulus, V (for superimposed-sweep displays).
    sweep_time_s : ndarray, shape (n_sweep_samples,)
        Time axis of the sweeps relative to the trigger / stimulus, s.
    trigger_fibre : int
        Index of the trigger potential (voluntary), -1 for stimulated recordings.
    muscle, electrode : str or None
        As given by the recording or the parameters.
    stimulus_timing : {"markers", "artefact"} or None
        Stimulated: whether the latencies are measured from the stimulus markers or from
        the stimulus artefact (``AnalysisParams.stimulus_timing``); None for voluntary.
    marker_scatter_us : float
        Stimulated: SD of the stimulus markers about the artefact, less the artefact's own
        timing error, µs; NaN where no artefact was timed.
    stimulus_error_us : float
        Stimulated: RMS over the stimuli of each stimulus time's error as used (the
        artefact's timing error, or the markers' scatter), µs, counted in every pair's
        technical jitter and MCD uncertainty; NaN where no artefact was timed (the markers
        taken as exact).
    markers_off : int
        Stimulated: markers farther off their stimulus artefact than the markers' scatter
        allows (> 5 robust SDs); timed from the artefact unless the markers were asked for.
    notes : tuple of str
        One line each on what was found but not analysed (potentials time-locked to the
        reference past ``search_window_ms``), with what to do about it.
    """

    name: str
    mode: str
    fs_hz: float
    method: str
    pairs: tuple
    reference_times_s: np.ndarray
    idis_s: np.ndarray
    noise_rms_v: float
    potential_latencies_s: np.ndarray
    timing_sd_s: np.ndarray
    templates_v: np.ndarray
    template_time_s: np.ndarray
    aligned_sweeps_v: np.ndarray
    sweep_time_s: np.ndarray
    trigger_fibre: int = -1
    muscle: str | None = None
    electrode: str | None = None
    stimulus_timing: str | None = None
    marker_scatter_us: float = float("nan")
    stimulus_error_us: float = float("nan")
    markers_off: int = 0
    notes: tuple = ()

    def __post_init__(self):
        if isinstance(self.notes, str) or not all(isinstance(n, str) for n in self.notes):
            raise TypeError(f"RecordingResult.notes must be a sequence of str, not {self.notes!r}")
        object.__setattr__(self, "notes", tuple(self.notes))

    @property
    def n_discharges(self) -> int:
        """Number of analysed discharges (triggers or stimuli)."""
        return int(self.reference_times_s.size)

    @property
    def firing_rate_hz(self) -> float:
        """Discharge (or stimulation) rate: 1 / median inter-discharge interval, Hz."""
        idi = self.idis_s[np.isfinite(self.idis_s)]
        return float(1.0 / np.median(idi)) if idi.size else float("nan")

    def to_json_dict(self) -> dict:
        """``{"pairs": [...], "notes": [...], "n_discharges", "firing_rate_hz"}`` with the
        ``--json`` fields per pair, the recording's notes, its discharges (triggers or
        stimuli) analysed and their rate; stimulated recordings add ``"stimulus_timing":
        {"source", "marker_scatter_us", "stimulus_error_us", "markers_off"}``."""
        out = {"pairs": [p.to_json_dict() for p in self.pairs], "notes": list(self.notes),
               "n_discharges": self.n_discharges, "firing_rate_hz": json_value(self.firing_rate_hz)}
        if self.stimulus_timing is not None:
            out["stimulus_timing"] = {"source": self.stimulus_timing,
                                      "marker_scatter_us": json_value(self.marker_scatter_us),
                                      "stimulus_error_us": json_value(self.stimulus_error_us),
                                      "markers_off": self.markers_off}
        return out


@dataclass(frozen=True)
class StudyResult:
    """All recordings of a study, the verdict and the problems met.

    Attributes
    ----------
    recordings : tuple of RecordingResult
    study : dict
        Summary and verdict, see :func:`sfemg.analysis.study_verdict`.
    problems : dict of str to str
        Recording name to a one-line reason it could not be analysed.
    params : AnalysisParams
    source : str, optional
        The file the recordings came from.
    """

    recordings: tuple
    study: dict
    problems: dict = field(default_factory=dict)
    params: AnalysisParams = field(default_factory=AnalysisParams)
    source: str | None = None

    def stimulus_summary(self) -> str:
        """One line on where the stimulated recordings' stimulus times came from (from the
        artefact in how many, the markers' largest scatter about it, markers off their
        stimulus); "" without stimulated recordings."""
        stimulated = [r for r in self.recordings if r.stimulus_timing is not None]
        if not stimulated:
            return ""
        from_artefact = sum(r.stimulus_timing == "artefact" for r in stimulated)
        scatter = [r.marker_scatter_us for r in stimulated if math.isfinite(r.marker_scatter_us)]
        off = sum(r.markers_off for r in stimulated)
        line = f"stimulus times: from the artefact in {from_artefact} of {len(stimulated)} recording(s)"
        if not scatter:
            line += "; markers not checked (no artefact to time)"
        elif max(scatter) < 0.05:
            line += "; markers agree with it within 0.05 µs"
        else:
            line += f"; markers scatter about it by up to {max(scatter):.{1 if max(scatter) < 10 else 0}f} µs"
        return line + (f"; {off} marker(s) off their stimulus" if off else "")

    def to_json_dict(self) -> dict:
        """The ``--json`` summary: ``{"recordings": {name: {"pairs": [...]}}, "study": {...},
        "problems": {name: why}}`` (``problems``: the recordings not analysed, each with
        its one-line reason)."""
        return {"recordings": {r.name: r.to_json_dict() for r in self.recordings},
                "study": json_value(self.study), "problems": dict(self.problems)}
