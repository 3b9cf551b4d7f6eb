"""Analysis parameters: one frozen, validated dataclass shared by every analysis step."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .._validation import check_number
from ..errors import SfemgInputError
from .jitter import MSD_RATIO_THRESHOLD

__all__ = ["AnalysisParams", "MIN_FS_HZ", "MAX_FS_HZ", "ACCEPTANCE_MIN_AMPLITUDE_V"]

#: Lowest sampling rate accepted for jitter measurement, Hz. Single-fibre potential phases
#: last ~60-80 µs; below 20 kHz a phase spans fewer than ~1.5 samples, the potential's
#: spectrum (up to ~10 kHz) is no longer below Nyquist, and the interpolated time points
#: acquire a sampling-phase bias of several µs (docs/analysis.md, "Sampling rate").
MIN_FS_HZ = 20_000.0
#: Highest sampling rate accepted, Hz: EMG amplifiers sample at up to a few hundred kHz
#: (the simulator at up to 1 MHz); beyond this the rate is in other units, and the
#: windows in samples (and their arrays) grow past any memory.
MAX_FS_HZ = 10e6

#: Time windows and intervals of the analysis (µs or ms by their names), each at most
#: _MAX_WINDOW_S: SFEMG's latencies and phases are milliseconds, and an absurd window
#: (1e300) overflowed or exhausted memory once turned into samples.
_WINDOWS = ("peak_window_us", "search_window_ms", "lock_half_window_us", "fit_half_window_us",
            "artefact_blank_ms", "artefact_baseline_ms", "min_idi_ms", "max_rise_time_us", "excursion_window_us")
_MAX_WINDOW_S = 1.0
#: Minimum peak-to-peak amplitude of an acceptable potential, V, per electrode
#: (SFE > 200 µV; concentric needle >= 50 µV; docs/literature.md §5).
ACCEPTANCE_MIN_AMPLITUDE_V = {"sfe": 200e-6, "concentric": 50e-6}


def _positive(name, value):
    if not isinstance(value, (int, float, np.integer, np.floating)) or not np.isfinite(value) \
            or value <= 0:
        raise SfemgInputError(f"AnalysisParams.{name} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class AnalysisParams:
    """Everything the jitter analysis can be told; defaults follow clinical practice.

    Attributes
    ----------
    method : {"template", "peak", "level"}
        Time point of a potential: least-squares template fit with sub-sample shift
        (best precision, default), interpolated peak, or level crossing on the rising phase.
    level_fraction : float
        Level, as a fraction of the peak, for ``method="level"`` (0 < f < 1).
    joint_timing : bool
        Template method: time potentials whose waveforms overlap by one joint fit of all
        of them (:mod:`sfemg.analysis.joint`) rather than each on its own segment, which
        is dragged towards the other fibre (MCD up to 15 % low on simulated recordings).
        Adds ~3.5-8 ms to a recording with overlapping potentials, most of them: the
        analysis takes ~1.7x as long as without (docs/analysis.md §7).
    electrode : {"sfe", "concentric"}
        Selects acceptance thresholds and reference limits, for recordings that do not
        state their own (``Recording.electrode``, which ``analyze_recording`` and the
        study functions use unless given an ``electrode`` to override it).
    muscle : str, optional
        Muscle name for reference limits ("edc", "frontalis", "orbicularis-oculi", ...).
    age_years : float, optional
        Subject age, years; SFE voluntary limits depend on it (Bromberg & Scott 1994).
    min_discharges : int
        A pair recorded over fewer discharges (or stimuli), or whose MCD rests on fewer
        than half as many (consecutive discharges both present), is flagged
        "few-discharges"; its blocking is reported as such.
    msd_ratio_threshold : float
        Report MSD instead of MCD when MCD/MSD exceeds this.
    low_mcd_us : float
        Pairs with MCD below this are flagged "low-mcd" and excluded from the study.
    detect_threshold_sd : float
        Candidate peaks must exceed this many noise standard deviations.
    peak_window_us : float
        A candidate is the largest sample of its polarity (positive peaks and negative
        troughs apart) within ± this window.
    search_window_ms : float
        Time-locked potentials are sought within ± this of the trigger (voluntary) or up to
        this after the stimulus (stimulated).
    lock_half_window_us : float
        Half-width of the latency-histogram peak that defines a time-locked potential.
    min_locked_fraction : float
        A time-locked potential must appear in at least this fraction of discharges.
    block_fraction : float
        A discharge is blocked when the potential's peak in its search window is below this
        fraction of the potential's median peak.
    fit_half_window_us : float
        Half-length of the segment around each potential used for the time point, µs.
    excursion_window_us : float
        A discharge in which a potential (not the trigger) is missing from its search
        window counts as fired, with a latency excursion, when its waveform is found
        within ± this of its latency, but at most 12 robust SDs of its latency (20 where its
        peak is at least 30 dB above the noise; outside the
        other potentials' windows, as big and as well shaped as its own discharges; not
        sought with fewer than 10 of its discharges present): a fibre near block fires
        hundreds of µs late, a steady one does not. 0 turns the search off (every such
        discharge is a block).
    superimposed_ratio : float
        Continuous recordings (voluntary or stimulated), template method with joint
        timing: a discharge
        in which what the model of the unit's potentials leaves within ±300 µs of a
        potential has more than this many times its median energy (another unit's
        potential on it) is re-timed with that other potential modelled, from templates
        of the recording's recurring potentials away from the unit's discharges
        (:mod:`sfemg.analysis.superimposed`). 0 turns the re-timing off; otherwise it must
        exceed 1 (at 1, half the discharges would be re-timed).
    artefact_blank_ms : float
        Stimulated recordings: samples closer than this after the stimulus are artefact
        (zeroed; no response is sought there).
    artefact_baseline_ms : float
        Stimulated recordings: the slow artefact tail is removed by subtracting a running
        median of this length from each sweep, taken with the responses bridged (see
        ``sfemg.analysis.sweeps._remove_artefact``).
    stimulus_timing : {"auto", "markers", "artefact"}
        Stimulated recordings: what latencies are measured from. The stimulus artefact is
        timed in every sweep (template fit, where it stands at least 20 noise SDs and is
        not clipped) and the markers' scatter about it measured (``marker_scatter_us``
        of the result); "auto" takes the artefact times where the markers scatter by
        more than twice the artefact's own timing error (markers from a channel of their
        own, or pulses of a free-running stimulator taken at the nearest sample), else
        the markers, but for those off their stimulus (``markers_off``); "markers"
        always the markers (their measured scatter counted in the technical jitter);
        "artefact" always the artefact (an error if there is none to time).
        (:mod:`sfemg.analysis.stimulus`, docs/analysis.md §1.3)
    min_idi_ms : float
        Two trigger discharges closer than this are one (the first is kept).
    irregular_interval_ratio : float
        Voluntary: a reference (trigger) interval shorter than this fraction of the median
        interval is irregular (a motor unit firing with an interval CV of 0.3 has at most
        ~10 % of them at 0.5; two units' interleaved discharges ~20 %); see
        ``irregular_fraction``.
    irregular_fraction : float
        When more than this fraction of the reference intervals are irregular, every pair is
        flagged "irregular-firing" and rejected: the reference discharges are most likely
        two units' (another unit's potential of the trigger's size and shape, which the
        trigger check cannot tell apart), and the other unit's discharges count as blocks.
        1 turns the rule off.
    min_amplitude_v : float, optional
        Acceptance: minimum peak-to-peak amplitude, V (default by electrode).
    max_rise_time_us : float
        Acceptance: rise time (preceding trough to main peak) must be below this, µs.
    flip_flop_separation : float
        Ashman's D above which the interval distribution is called bimodal (flip-flop).
    highpass_hz : float
        Corner of a high-pass filter (2nd-order Butterworth, causal, as an SFEMG
        amplifier's) applied to the samples before anything else, Hz (0, or at least 1); 0 (default): the
        samples are analysed as recorded, which must then be high-pass filtered already
        (SFE 500 Hz, concentric 1 kHz in clinical use): a recording whose slow
        component (DC offset, mains hum, drift) exceeds a few noise SDs is refused with a
        one-line error (:func:`sfemg.analysis.sweeps.band_limited`).
    """

    method: Literal["template", "peak", "level"] = "template"
    level_fraction: float = 0.5
    joint_timing: bool = True
    electrode: Literal["sfe", "concentric"] = "sfe"
    muscle: str | None = None
    age_years: float | None = None
    min_discharges: int = 50
    msd_ratio_threshold: float = MSD_RATIO_THRESHOLD
    low_mcd_us: float = 5.0
    detect_threshold_sd: float = 5.0
    peak_window_us: float = 250.0
    search_window_ms: float = 5.0
    lock_half_window_us: float = 300.0
    min_locked_fraction: float = 0.3
    block_fraction: float = 0.5
    fit_half_window_us: float = 600.0
    excursion_window_us: float = 1000.0
    superimposed_ratio: float = 8.0
    artefact_blank_ms: float = 1.0
    artefact_baseline_ms: float = 1.0
    stimulus_timing: Literal["auto", "markers", "artefact"] = "auto"
    min_idi_ms: float = 10.0
    irregular_interval_ratio: float = 0.5
    irregular_fraction: float = 0.15
    min_amplitude_v: float | None = None
    max_rise_time_us: float = 300.0
    flip_flop_separation: float = 4.0
    highpass_hz: float = 0.0

    def __post_init__(self):
        if self.method not in ("template", "peak", "level"):
            raise SfemgInputError(
                f"AnalysisParams.method must be 'template', 'peak' or 'level', not {self.method!r}")
        if not isinstance(self.joint_timing, (bool, np.bool_)):
            raise SfemgInputError(f"AnalysisParams.joint_timing must be True or False, got {self.joint_timing!r}")
        if self.stimulus_timing not in ("auto", "markers", "artefact"):
            raise SfemgInputError("AnalysisParams.stimulus_timing must be 'auto', 'markers' or 'artefact', "
                                  f"not {self.stimulus_timing!r}")
        if self.electrode not in ("sfe", "concentric"):
            raise SfemgInputError(
                f"AnalysisParams.electrode must be 'sfe' or 'concentric', not {self.electrode!r}")
        for name in ("level_fraction", "min_locked_fraction", "block_fraction", "irregular_interval_ratio"):
            value = getattr(self, name)
            _positive(name, value)
            if value >= 1:
                raise SfemgInputError(f"AnalysisParams.{name} must be below 1, got {value!r}")
        for name in ("msd_ratio_threshold", "detect_threshold_sd", "flip_flop_separation", "low_mcd_us",
                     *(w for w in _WINDOWS if w != "excursion_window_us")):  # (that one may be 0: off)
            _positive(name, getattr(self, name))
        if not isinstance(self.min_discharges, (int, np.integer)) or self.min_discharges < 2:
            raise SfemgInputError(
                f"AnalysisParams.min_discharges must be an integer >= 2, got {self.min_discharges!r}")
        check_number(self, "excursion_window_us", 0.0)
        check_number(self, "highpass_hz", 0.0)
        if 0 < self.highpass_hz < 1:
            raise SfemgInputError("AnalysisParams.highpass_hz must be 0 (off) or at least 1 Hz (SFEMG amplifiers: "
                                  f"500 Hz SFE, 1000 Hz concentric), got {self.highpass_hz!r}")
        check_number(self, "superimposed_ratio", 0.0)
        if 0 < self.superimposed_ratio <= 1:
            raise SfemgInputError("AnalysisParams.superimposed_ratio must be 0 (off) or above 1, "
                                  f"got {self.superimposed_ratio!r}")
        _positive("irregular_fraction", self.irregular_fraction)
        if self.irregular_fraction > 1:
            raise SfemgInputError(
                f"AnalysisParams.irregular_fraction must be at most 1, got {self.irregular_fraction!r}")
        if self.min_amplitude_v is not None:
            _positive("min_amplitude_v", self.min_amplitude_v)
        if self.age_years is not None:
            _positive("age_years", self.age_years)
        if self.muscle is not None and not isinstance(self.muscle, str):
            raise SfemgInputError(f"AnalysisParams.muscle must be a string, got {self.muscle!r}")
        for name in _WINDOWS:
            per_s = 1e3 if name.endswith("_ms") else 1e6
            if getattr(self, name) / per_s > _MAX_WINDOW_S:
                raise SfemgInputError(f"AnalysisParams.{name} must be at most {_MAX_WINDOW_S * per_s:g} "
                                      f"({_MAX_WINDOW_S:g} s), got {getattr(self, name)!r}")

    @property
    def acceptance_min_amplitude_v(self) -> float:
        """Minimum peak-to-peak amplitude for this electrode, V."""
        if self.min_amplitude_v is not None:
            return float(self.min_amplitude_v)
        return ACCEPTANCE_MIN_AMPLITUDE_V[self.electrode]

    def replace(self, **changes) -> "AnalysisParams":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """All parameters as a JSON-serialisable dict."""
        return dataclasses.asdict(self)


def checked_params(params) -> AnalysisParams:
    """``params``, the defaults for None; anything but an :class:`AnalysisParams` refused
    (a dict failed deep inside the analysis)."""
    if params is None:
        return AnalysisParams()
    if not isinstance(params, AnalysisParams):
        raise SfemgInputError(f"params must be an AnalysisParams (sfemg.analysis.AnalysisParams(...)), "
                              f"not {type(params).__name__}")
    return params
