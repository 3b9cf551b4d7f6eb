"""Validation of jitter algorithms at scale: grids, seeded Monte Carlo sweeps (serial,
local processes or Dask), scores with confidence intervals, plug-in algorithms,
and versioned benchmark sets for foreign pipelines. Guide: ``docs/validation.md``.
"""

from .grid import GRIDS, Cell, Grid, get_grid, repeat_seed, simulate_repeat
from .plugins import (
    ANALYSERS,
    TIME_POINT_ESTIMATORS,
    Analyser,
    TimePointEstimator,
    estimator_analyser,
    load_plugin,
    method_analyser,
    register_analyser,
    register_time_point_estimator,
)
from .scoring import METRICS, match_pairs, score_repeat, summarize_metrics, true_pairs
from .sweep import DEFAULT_METHODS, format_summary, run_sweep, summarize_sweep

__all__ = ["Cell", "Grid", "GRIDS", "get_grid", "repeat_seed", "simulate_repeat", "TimePointEstimator",
           "Analyser", "TIME_POINT_ESTIMATORS", "ANALYSERS", "register_time_point_estimator",
           "register_analyser", "load_plugin", "method_analyser", "estimator_analyser", "METRICS",
           "true_pairs", "match_pairs", "score_repeat", "summarize_metrics", "run_sweep",
           "summarize_sweep", "format_summary", "DEFAULT_METHODS"]
