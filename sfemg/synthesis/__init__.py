"""Synthesis: single-fibre EMG recordings whose jitter and blocking come from NMJ physiology.

Layers, bottom up: :mod:`.physiology` (parameters, per-endplate state),
:mod:`.transmission` (quantal release → EPP → threshold → latency; numba kernel),
:mod:`.potentials` (line-source fibre potentials), :mod:`.render` (potentials at
continuous times + noise + amplifier), :mod:`.study` (firing, geometry, whole studies),
:mod:`.presets` (named muscles and disorders), :mod:`.rns` (repetitive nerve
stimulation: the CMAP decrement).
"""

from .physiology import Disease, EndplateState, NMJParams, draw_endplates
from .presets import MUSCLES, PRESETS, Preset, get_preset
from .rns import RNSResult, simulate_rns
from .study import Study, StudyParams, simulate_recording, simulate_study, study_params, write_study
from .transmission import TransmissionResult, simulate_transmission

__all__ = ["simulate_study", "write_study", "study_params", "simulate_recording", "Study", "StudyParams",
           "NMJParams", "Disease", "EndplateState", "draw_endplates", "simulate_transmission", "TransmissionResult",
           "PRESETS", "MUSCLES", "Preset", "get_preset", "simulate_rns", "RNSResult"]
