"""sfemg: single-fibre EMG synthesis from neuromuscular physiology, and jitter analysis.

The public API in one place:

- synthesis: :func:`simulate_study` (and ``sfemg.synthesis`` for the layers below it)
- analysis: :func:`analyze` / :func:`analyze_file`, :func:`analyze_recording`,
  :func:`analyze_signal`
- storage: ``sfemg.io`` (:func:`~sfemg.io.save_recordings`, :func:`~sfemg.io.load_recordings`)
- displays: ``plot_*`` (need matplotlib: ``pip install sfemg[plot]``), loaded on first use
"""

import importlib.metadata as _metadata

try:
    __version__ = _metadata.version("sfemg")
except _metadata.PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

from . import io
from .analysis import analyze_file, analyze_recording, analyze_signal
from .errors import SfemgInputError
from .recording import GroundTruth, Recording
from .synthesis import simulate_study

#: ``sfemg.analyze(path, ...)`` is :func:`analyze_file`.
analyze = analyze_file

_PLOTS = ("plot_superimposed_sweeps", "plot_raster", "plot_ipi_trend", "plot_ipi_histogram",
          "plot_pair_panel", "plot_jitter_study", "plot_truth_vs_measured", "plot_safety_factor", "plot_rns")

__all__ = ["__version__", "SfemgInputError", "Recording", "GroundTruth", "simulate_study",
           "analyze", "analyze_file", "analyze_recording", "analyze_signal", "io", *_PLOTS]


def __getattr__(name):
    """Load the plotting functions (and matplotlib) only when one is first used."""
    if name in _PLOTS:
        from . import plotting
        return getattr(plotting, name)
    raise AttributeError(f"module 'sfemg' has no attribute {name!r}")
