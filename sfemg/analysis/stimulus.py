"""Stimulus times checked against the stimulus artefact, and taken from it where the
markers are the coarser clock.

A stimulated latency is measured from the stimulus, so an error in the stimulus times
adds to every latency: markers from a channel of their own, or a free-running
stimulator's pulses taken at the nearest sample (an error spread evenly over one sample,
SD 5.8 µs at 50 kHz), raise the MCD of a 20 µs endplate by ~10 %. The artefact begins
at the stimulus itself. Its time in each sweep is fitted as a template
(:func:`~sfemg.analysis.timing.fit_template`, sub-sample shift, Cramér–Rao bound
inflated by the fit's misfit); the markers' scatter about it tells how precise they are,
and where they scatter clearly more than the artefact's own timing error, the artefact
times (moved by their median offset into the markers' frame) are the stimulus times.
docs/analysis.md §1.3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SfemgInputError
from .detect import estimate_noise_spectrum, median_and_robust_sd
from .timing import fit_taper, fit_template, misfit_ratio

__all__ = ["StimulusTiming", "time_stimuli"]

#: Half-length of the artefact's fit segment around the marker, µs: the artefact's onset
#: and first decay lie in the taper's flat middle (±125 µs); markers up to about that far
#: off the artefact are followed (the shift search reaches ±125 µs).
_ARTEFACT_HALF_US = 250.0
#: The artefact is timed only if the median segment's peak-to-peak is at least this many
#: noise SDs (a stimulus artefact is of millivolts; simulated ones read 240-330 SDs) and
#: at least this many stimuli have the whole segment in the recording.
_MIN_ARTEFACT_SDS = 20.0
_MIN_STIMULI = 8
#: With ``stimulus_timing="auto"`` the artefact times are used when the markers scatter
#: about them by more than this many times the artefact's own timing SD (their error
#: variance then exceeds the artefact's threefold). Exact markers read 1.06-1.52 on
#: simulated recordings (one sweep with another potential on the artefact).
_MARKERS_WORSE = 2.0
#: Offsets of markers from the artefact farther than this many robust SDs from their
#: median are left out of the markers' scatter (a sweep whose artefact fit failed).
_OUTLIER_SDS = 5.0
#: A sweep's artefact fit is used for its stimulus time only if its correlation with the
#: template is at least this.
_MIN_CORRELATION = 0.9


@dataclass(frozen=True)
class StimulusTiming:
    """Where the stimulus times come from and how precise they are."""

    source: str               # "markers" or "artefact"
    shifts: np.ndarray        # (n,) stimulus time less its marker's, samples (0 where the marker is kept)
    error_var: float          # samples^2: variance of each stimulus time's error (0 when not checked)
    marker_scatter: float     # samples: SD of the markers about the artefact; NaN if no artefact was timed
    artefact_sd: float        # samples: timing SD of the artefact; NaN if none was timed


def _markers(positions, choice, why):
    if choice == "artefact":
        raise SfemgInputError(f"stimulus times cannot be taken from the artefact: {why}")
    return StimulusTiming("markers", np.zeros(positions.size), 0.0, float("nan"), float("nan"))


def time_stimuli(x_v, rows, positions, noise_v, busy_rows, busy_cols, fs_hz, noise_sd, choice):
    """The stimulus times to measure latencies from, with their error.

    Parameters
    ----------
    x_v : ndarray, shape (n_rows, n_cols)
        The samples (a continuous signal as one row, or the sweeps), V, artefact included.
    rows : ndarray of int, shape (n,)
        Row of each stimulus.
    positions : ndarray, shape (n,)
        Each stimulus marker's position in its row, samples.
    noise_v, busy_rows, busy_cols : ndarray
        Where the noise is measured and the positions it keeps away from (as in
        :class:`~sfemg.analysis.sweeps.Sweeps`); the artefacts must be among them.
    fs_hz : float
    noise_sd : float
        Noise SD, V.
    choice : {"auto", "markers", "artefact"}
        ``AnalysisParams.stimulus_timing``: the artefact times where the markers scatter
        about them by more than :data:`_MARKERS_WORSE` times the artefact's timing SD,
        always the markers, or always the artefact.

    Returns
    -------
    StimulusTiming
        Shifts of 0 where the markers are kept (their error variance then the scatter
        measured about the artefact less the artefact's own).

    Raises
    ------
    SfemgInputError
        ``choice="artefact"`` and no artefact to time (too small, too few whole segments).
    """
    half = max(2, int(round(_ARTEFACT_HALF_US * 1e-6 * fs_hz)))
    length = 2 * half + 1
    n_cols = x_v.shape[1]
    start = np.floor(positions).astype(np.int64) - half
    whole = (start >= 0) & (start + length <= n_cols)
    if whole.sum() < _MIN_STIMULI:
        return _markers(positions, choice, f"only {whole.sum()} stimuli have {_ARTEFACT_HALF_US:g} µs of "
                                           "signal either side")
    rows, start = rows[whole], start[whole]
    cols = np.arange(length)[None, :]
    segments = x_v[rows[:, None], start[:, None] + cols]
    typical = np.median(segments, axis=0)
    if np.ptp(typical) < _MIN_ARTEFACT_SDS * noise_sd:
        return _markers(positions, choice, f"its peak-to-peak is {np.ptp(typical) / noise_sd:.0f} noise SDs "
                                           f"(at least {_MIN_ARTEFACT_SDS:g} needed)")
    sign = np.sign(typical[np.argmax(np.abs(typical))])
    power, rms, _ = estimate_noise_spectrum(noise_v, busy_rows, busy_cols, length, length // 2, fit_taper(length))
    # twice: the segments cut at the markers, then centred on the artefact's peak (in the
    # taper's flat middle, which then moves with it: where the markers scatter, a fixed
    # frame would read as misfit)
    fit = fit_template(sign * segments, power)
    start = np.clip(start + np.round(fit.positions - half).astype(np.int64), 0, n_cols - length)
    segments = sign * x_v[rows[:, None], start[:, None] + cols]
    fit = fit_template(segments, power)
    artefact_var = fit.crb_var * misfit_ratio(segments, fit, rms)
    offsets = start + fit.positions - positions[whole]
    middle, spread = median_and_robust_sd(offsets)
    inliers = np.abs(offsets - middle) <= _OUTLIER_SDS * max(spread, np.sqrt(artefact_var))
    scatter_var = float(np.var(offsets[inliers]))
    marker_var = max(scatter_var - artefact_var, 0.0)
    use_artefact = choice == "artefact" or (choice == "auto" and scatter_var > _MARKERS_WORSE ** 2 * artefact_var)
    if not use_artefact:
        return StimulusTiming("markers", np.zeros(positions.size), marker_var, np.sqrt(marker_var),
                              np.sqrt(artefact_var))
    shifts = np.zeros(positions.size)
    good = fit.correlations >= _MIN_CORRELATION
    shifts[np.flatnonzero(whole)[good]] = (offsets - middle)[good]
    return StimulusTiming("artefact", shifts, artefact_var, np.sqrt(marker_var), np.sqrt(artefact_var))
