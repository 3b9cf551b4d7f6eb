"""Every name and version of sfemg's HDF5 layout, in one place.

Layout (DESIGN.md §5; SI units in storage: s, V, Hz)::

    /                                   attrs: sfemg-schema-version, encoding-type="sfemg-file"
    /recordings/<name>/                 attrs: encoding-type="sfemg-recording", mode, electrode, ...
        signal                          (n_samples,) float, V, attr sampling_rate_hz   [continuous]
        sweeps                          (n_sweeps, n_samples) float, V, attr sampling_rate_hz [windowed]
        sweep_start_times_s             (n_sweeps,) float, s     [windowed only]
        stimulus_times_s                (n_stimuli,) float, s    [stimulated only]
        ground_truth/                   synthetic recordings only, see GROUND_TRUTH_*
    /parameters/                        synthetic files only: complete parameter set (JSON attr)
    /provenance/                        package version, seed, command, creation time
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
#: (n_fibres,) index of the trigger fibre (attr), and per-fibre static properties.
GT_TRIGGER_FIBRE_ATTR = "trigger_fibre"
GT_FIBRE_PROPERTIES = "fibres"

# --- parameters and provenance --------------------------------------------------------
PARAMETERS = "parameters"
PARAMETERS_JSON_ATTR = "json"
PROVENANCE = "provenance"

# --- analysis results -------------------------------------------------------------------
# (section owned by the analysis module; names added there)
ANALYSIS = "analysis"
