"""Every name and version of sfemg's HDF5 layout, in one place.

Layout (docs/hdf5.md; SI units in storage: s, V, Hz)::

    /                                   attrs: sfemg-schema-version, encoding-type="sfemg-file"
    /recordings/<name>/                 attrs: encoding-type="sfemg-recording", mode, electrode, ...
        signal                          (n_samples,) float, V, attr sampling_rate_hz   [continuous]
        sweeps                          (n_sweeps, n_samples) float, V, attr sampling_rate_hz [windowed]
        sweep_start_times_s             (n_sweeps,) float, s     [windowed only]
        stimulus_times_s                (n_stimuli,) float, s    [stimulated only]
        ground_truth/                   synthetic recordings only, see GROUND_TRUTH_*
    /parameters/                        synthetic files only: complete parameter set (JSON attr)
    /provenance/                        package version, seed, generator, command
    /analysis/                          written by ``sfemg analyze``, see ANALYSIS_*

A foreign file needs only ``/recordings/<name>/signal`` (or ``sweeps``) with
``sampling_rate_hz``; everything else is optional on input.
"""

from __future__ import annotations

__all__ = [
    "SCHEMA_VERSION",
    "ENCODING_TYPE",
    "ENCODING_VERSION",
]

#: Version of the file layout as a whole, stored on the root group.
SCHEMA_VERSION = "1.0.0"
ROOT_SCHEMA_VERSION_ATTR = "sfemg-schema-version"

#: Attribute names carried by every group sfemg writes.
ENCODING_TYPE = "encoding-type"
ENCODING_VERSION = "encoding-version"

# --- encoding types (value of ENCODING_TYPE) and their versions --------------------
FILE_TYPE = "sfemg-file"
RECORDING_TYPE = "sfemg-recording"
RECORDINGS_TYPE = "sfemg-recordings"
GROUND_TRUTH_TYPE = "sfemg-ground-truth"
FIBRE_PROPERTIES_TYPE = "sfemg-fibre-properties"
PARAMETERS_TYPE = "sfemg-parameters"
PROVENANCE_TYPE = "sfemg-provenance"
GROUP_VERSION = "1.0.0"

# --- recordings ---------------------------------------------------------------------
RECORDINGS = "recordings"
SIGNAL = "signal"
SWEEPS = "sweeps"
SWEEP_START_TIMES = "sweep_start_times_s"
STIMULUS_TIMES = "stimulus_times_s"
SAMPLING_RATE_ATTR = "sampling_rate_hz"
MODE_ATTR = "mode"
ELECTRODE_ATTR = "electrode"
MUSCLE_ATTR = "muscle"
MODES = ("voluntary", "stimulated")

# --- ground truth (synthetic recordings) ---------------------------------------------
GROUND_TRUTH = "ground_truth"
#: (n_discharges,) s: motor-neuron discharge times (voluntary) or stimulus times.
GT_DISCHARGE_TIMES = "discharge_times_s"
#: (n_fibres, n_discharges) s: time the fibre's potential passes the electrode; NaN if blocked.
GT_EVENT_TIMES = "event_times_s"
#: (n_fibres, n_discharges) s: nerve discharge (or stimulus) to endplate action potential.
GT_LATENCIES = "endplate_latency_s"
#: (n_fibres, n_discharges) bool: transmission failed at the endplate.
GT_BLOCKED = "blocked"
#: (n_fibres, n_discharges) V: endplate potential amplitude.
GT_EPP_AMPLITUDE = "epp_amplitude_v"
#: (n_fibres, n_discharges) V: depolarisation needed to fire the fibre.
GT_THRESHOLD = "threshold_v"
#: (n_fibres, n_discharges): EPP amplitude / threshold.
GT_SAFETY_FACTOR = "safety_factor"
#: (n_fibres, n_discharges): quantal content (quanta released).
GT_QUANTAL_CONTENT = "quantal_content"
#: Index of the trigger fibre (an integer attribute; -1 in stimulated recordings), and the
#: group of per-fibre static properties.
GT_TRIGGER_FIBRE_ATTR = "trigger_fibre"
GT_FIBRE_PROPERTIES = "fibres"

# --- parameters and provenance --------------------------------------------------------
PARAMETERS = "parameters"
PARAMETERS_JSON_ATTR = "json"
PROVENANCE = "provenance"

# --- analysis results -------------------------------------------------------------------
# (section owned by the analysis module; names added there)
ANALYSIS = "analysis"
ANALYSIS_TYPE = "sfemg-analysis"
ANALYSIS_RECORDING_TYPE = "sfemg-analysis-recording"
ANALYSIS_STUDY_TYPE = "sfemg-analysis-study"
ANALYSIS_VERSION = "2.3.0"
#: Versions load_results reads: 1.0.0 stored each per-pair field as its own dataset
#: (27 datasets per recording; creating them was half the cost of writing results);
#: 2.1.0 added the MCD's uncertainty (``mcd_uncertainty_s``; NaN when read from older);
#: 2.2.0 where stimulated recordings' stimulus times came from (ANALYSIS_STIMULUS_ATTRS;
#: older groups read as markers taken as exact); 2.3.0 each recording's notes
#: (ANALYSIS_NOTES_ATTR; older groups read as none).
ANALYSIS_READ_VERSIONS = ("1.0.0", "2.0.0", "2.1.0", "2.2.0", "2.3.0")
#: /analysis attrs: time-point method, all AnalysisParams as JSON, package version, source
#: file, and the recordings that could not be analysed (JSON {name: message}).
ANALYSIS_METHOD_ATTR = "method"
ANALYSIS_PARAMS_ATTR = "parameters_json"
ANALYSIS_SFEMG_VERSION_ATTR = "sfemg_version"
ANALYSIS_SOURCE_ATTR = "source_file"
ANALYSIS_PROBLEMS_ATTR = "problems_json"
#: /analysis/recordings/<name>/ (attrs: mode, fs, noise_rms_v, trigger_fibre, muscle, electrode)
ANALYSIS_RECORDINGS = "recordings"
#: ... and (2.2.0) where the stimulus times came from: RecordingResult field -> (attr,
#: factor to SI (None: text), value read from older groups, whose type is the field's);
#: "", NaN and 0 for voluntary recordings.
ANALYSIS_STIMULUS_ATTRS = {"stimulus_timing": ("stimulus_timing", None, "markers"),
                           "marker_scatter_us": ("marker_scatter_s", 1e-6, float("nan")),
                           "stimulus_error_us": ("stimulus_error_s", 1e-6, float("nan")),
                           "markers_off": ("markers_off", 1, 0)}
#: ... and (2.3.0) the recording's notes (RecordingResult.notes), a JSON list of strings.
ANALYSIS_NOTES_ATTR = "notes_json"
#: /analysis/study attrs: the whole study dict as JSON in "json" (µs, as in the --json summary), and
#: "verdict" as text.
ANALYSIS_STUDY = "study"
ANALYSIS_STUDY_JSON_ATTR = "json"
#: The per-pair table, one compound row per pair: the scalar and text fields below.
ANALYSIS_PAIRS_TABLE = "pairs"
#: Per-pair scalar columns of the table (1.0.0: datasets), shape (n_pairs,): PairResult
#: field -> (column, factor to SI).
ANALYSIS_PAIR_SCALARS = {
    "fibre": ("fibre", 1), "mcd_us": ("mcd_s", 1e-6), "msd_us": ("msd_s", 1e-6),
    "mcd_msd_ratio": ("mcd_msd_ratio", 1), "jitter_us": ("jitter_s", 1e-6),
    "mean_ipi_us": ("mean_ipi_s", 1e-6), "technical_jitter_us": ("technical_jitter_s", 1e-6),
    "blocking_percent": ("blocking_percent", 1), "n_discharges": ("n_discharges", 1),
    "n_blocked": ("n_blocked", 1), "accepted": ("accepted", 1),
    "amplitude_v": ("amplitude_v", 1), "rise_time_us": ("rise_time_s", 1e-6),
    "mcd_uncertainty_us": ("mcd_uncertainty_s", 1e-6),
}
#: Columns added to the table since 2.0.0 (older files read them as NaN).
ANALYSIS_PAIR_ADDED_SINCE = {"mcd_uncertainty_s": "2.1.0"}
#: Integer and boolean columns (the others are float64).
ANALYSIS_PAIR_INTEGERS = ("fibre", "n_discharges", "n_blocked")
ANALYSIS_PAIR_BOOLEANS = ("accepted",)
#: Per-pair text columns (string lists stored as JSON strings), shape (n_pairs,).
ANALYSIS_PAIR_TEXT = {"label": "label", "reject_reasons": "reject_reasons_json",
                      "flags": "flags_json"}
#: Per-pair, per-discharge datasets, shape (n_pairs, n_discharges).
ANALYSIS_PAIR_SERIES = {"time_points_s": "time_points_s", "ipis_s": "ipis_s",
                        "blocked": "blocked"}
#: Per-recording arrays (RecordingResult field = dataset name).
ANALYSIS_RECORDING_ARRAYS = ("reference_times_s", "idis_s", "potential_latencies_s",
                             "timing_sd_s", "templates_v", "template_time_s",
                             "aligned_sweeps_v", "sweep_time_s")

# --- validation sweeps (sfemg.validation; file written by ``sfemg validate``) --------------
# /                                   attrs: sfemg-schema-version, encoding-type="sfemg-validation-file"
# /validation/                        attrs: config_json (grid, seed, repeats, methods, metrics)
#     cells/cell0007/metrics          (n_methods, n_repeats, n_metrics) float64, NaN = undefined
# /provenance/                        attrs: sfemg version, command, scheduler
#     cells/cell0007                  attrs: wall time, hosts, finish time (never compared)
VALIDATION_FILE_TYPE = "sfemg-validation-file"
VALIDATION = "validation"
VALIDATION_TYPE = "sfemg-validation"
VALIDATION_CELL_TYPE = "sfemg-validation-cell"
VALIDATION_VERSION = "1.0.0"
VALIDATION_CONFIG_ATTR = "config_json"
VALIDATION_CELLS = "cells"
VALIDATION_METRICS = "metrics"
VALIDATION_PROVENANCE_JSON_ATTR = "json"


def validation_cell_name(index: int) -> str:
    """Group name of grid cell ``index`` (zero-padded so groups sort in grid order)."""
    return f"cell{index:04d}"


def validation_cell_index(name: str) -> int:
    """Inverse of :func:`validation_cell_name`."""
    return int(name[len("cell"):])
