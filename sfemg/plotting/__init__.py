"""Clinical displays of a jitter study (matplotlib; ``pip install sfemg[plot]``).

Every function takes ``ax=None`` (a new figure when None), returns the axes (composite
displays return the figure) and never calls ``show()``. Displays are legible in grey
scale; times are in ms (sweeps) or µs (jitter), amplitudes in mV.
"""

from .pair import plot_ipi_histogram, plot_ipi_trend, plot_pair_panel, plot_raster, plot_superimposed_sweeps
from .physiology import pair_ground_truth, plot_rns, plot_safety_factor, plot_truth_vs_measured
from .study import plot_jitter_study

__all__ = ["plot_superimposed_sweeps", "plot_raster", "plot_ipi_trend", "plot_ipi_histogram",
           "plot_pair_panel", "plot_jitter_study", "plot_truth_vs_measured",
           "plot_safety_factor", "plot_rns", "pair_ground_truth"]
