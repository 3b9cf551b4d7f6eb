"""Jitter analysis of single-fibre EMG recordings, from any source.

Potentials → time points → MCD / MSD / blocking per pair → study verdict against cited
reference limits; results stored in HDF5 and summarised as JSON. Method and accuracy:
``docs/analysis.md``.
"""

from .core import analyze_recording, analyze_signal
from .jitter import compute_mcd, compute_msd, reported_jitter
from .limits import (
    KNOWN_MUSCLES,
    REFERENCE_LIMITS,
    REFERENCE_LIMITS_VERSION,
    STUDY_PAIRS,
    ReferenceLimits,
    canonical_electrode,
    canonical_muscle,
    lookup_limits,
    study_verdict,
)
from .params import AnalysisParams
from .results import PairResult, RecordingResult, StudyResult
from .study import analyze_file, analyze_recordings

__all__ = ["analyze_signal", "analyze_recording", "analyze_recordings", "analyze_file",
           "AnalysisParams", "PairResult", "RecordingResult", "StudyResult", "compute_mcd",
           "compute_msd", "reported_jitter", "study_verdict", "REFERENCE_LIMITS",
           "REFERENCE_LIMITS_VERSION", "ReferenceLimits", "lookup_limits", "STUDY_PAIRS", "KNOWN_MUSCLES",
           "canonical_electrode", "canonical_muscle"]
