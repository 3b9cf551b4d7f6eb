"""Plug-ins a user might write, loaded by the tests through ``module:function`` specs."""

import numpy as np

from sfemg.validation import true_pairs


def centroid_time_points(segments_v, fs_hz, noise_power_v2):
    """Centre of mass of the positive part of each segment, samples (a time-point estimator)."""
    weights = np.clip(segments_v, 0.0, None)
    return (weights * np.arange(segments_v.shape[1])).sum(axis=1) / weights.sum(axis=1)


def truth_analyser(recording):
    """A perfect pipeline: reports the ground truth (an analyser)."""
    truth = true_pairs(recording.ground_truth)
    return [{"mean_ipi_us": truth["mean_ipi_us"][i], "mcd_us": truth["mcd_us"][i], "msd_us": truth["msd_us"][i],
             "blocking_percent": truth["blocking_percent"][i]} for i in range(truth["mcd_us"].size)]


not_callable = 42


def broken_analyser(recording):
    """A pipeline with a bug."""
    raise ValueError("oops")


def wrong_shape_time_points(segments_v, fs_hz, noise_power_v2):
    """An estimator with a bug: one position too few."""
    return np.zeros(segments_v.shape[0] - 1)


def dict_analyser(recording):
    """A pipeline with a bug: one pair, not a list of them."""
    return {"mean_ipi_us": 1000.0, "mcd_us": 20.0}


def ipi_less_analyser(recording):
    """A pipeline with a bug: a pair without its mean IPI."""
    return [{"mcd_us": 20.0}]


def nan_time_points(segments_v, fs_hz, noise_power_v2):
    """An estimator that finds nothing: every discharge blocked."""
    return np.full(segments_v.shape[0], np.nan)


def process_ending_analyser(recording):
    """A pipeline that ends its process (a crash in compiled code, the OOM killer)."""
    import os
    os._exit(3)


def slow_time_points(segments_v, fs_hz, noise_power_v2):
    """A slow estimator (the largest sample, half a second a call)."""
    import time
    time.sleep(0.5)
    return np.argmax(segments_v, axis=1).astype(float)


def misusing_analyser(recording):
    """A pipeline with a bug: sfemg's analysis with a misspelt method (sfemg raises
    SfemgInputError, as a plug-in does to say that a recording holds nothing to analyse)."""
    from sfemg.analysis import AnalysisParams, analyze_recording
    return list(analyze_recording(recording, AnalysisParams(method="tempalte")).pairs)


def infinite_time_points(segments_v, fs_hz, noise_power_v2):
    """An estimator with a bug: one position infinite."""
    positions = np.argmax(segments_v, axis=1).astype(float)
    positions[3] = np.inf
    return positions


def seconds_analyser(recording):
    """A pipeline with a bug: the true pairs, their mean IPIs in seconds."""
    return [dict(pair, mean_ipi_us=pair["mean_ipi_us"] * 1e-6) for pair in truth_analyser(recording)]
