"""Analytic single-fibre recordings for the analysis tests (no simulator involved).

Potentials are Gaussian-derivative shapes evaluated at exact (continuous) event times:
``triphasic`` = negated 2nd derivative (main phase positive, two negative side phases),
``biphasic`` = 1st derivative. White Gaussian noise is added and the sum passes the
amplifier: a 2nd-order Butterworth band-pass, 500 Hz to min(10 kHz, 0.45 fs), applied to the
sampled signal as an SFEMG amplifier (and sfemg's simulator) does. The noise is scaled so
that the *filtered* noise has the requested RMS; SNR is the filtered smaller potential's
peak over that RMS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.signal

PHASE_S = 35e-6  # Gaussian width: main phase ~70 µs between zero crossings


def triphasic(t_s, amplitude_v, width_s=PHASE_S):
    """Mexican-hat potential with peak ``amplitude_v`` at t = 0, V."""
    u = t_s / width_s
    return amplitude_v * (1.0 - u * u) * np.exp(-0.5 * u * u)


def biphasic(t_s, amplitude_v, width_s=PHASE_S):
    """Gaussian-derivative potential, extremes ±``amplitude_v`` at t = ∓width, V."""
    u = t_s / width_s
    return -amplitude_v * u * np.exp(0.5 - 0.5 * u * u)


SHAPES = {"triphasic": triphasic, "biphasic": biphasic}


def amplifier(fs_hz, order=2):
    """Second-order sections of the amplifier band-pass (Butterworth of ``order``) for
    sampling rate ``fs_hz``."""
    return scipy.signal.butter(order, [500.0, min(10_000.0, 0.45 * fs_hz)], "bandpass", fs=fs_hz,
                               output="sos")


def band_noise(n, fs_hz, rms_v, rng, order=2):
    """White Gaussian noise through the amplifier, scaled to RMS ``rms_v`` after filtering."""
    noise = scipy.signal.sosfilt(amplifier(fs_hz, order), rng.standard_normal(n + 2000))[2000:]
    return noise * (rms_v / noise.std())


def filtered_peak_v(shape, amplitude_v, fs_hz, order=2):
    """Peak |value| of one potential after the amplifier, averaged over 8 sampling phases, V."""
    half = int(np.ceil(1e-3 * fs_hz))
    peaks = []
    for phase in np.arange(8) / 8:
        t = (np.arange(-half, 3 * half) - phase) / fs_hz
        peaks.append(np.abs(scipy.signal.sosfilt(amplifier(fs_hz, order), SHAPES[shape](t, amplitude_v))).max())
    return float(np.mean(peaks))


def _finish(clean, fs_hz, rms_v, rng, order=2):
    """Clean potentials through the amplifier, plus amplifier-filtered noise of RMS ``rms_v``."""
    return scipy.signal.sosfilt(amplifier(fs_hz, order), clean) + band_noise(clean.size, fs_hz, rms_v, rng, order)


def add_potentials(signal, fs_hz, times_s, shape, amplitude_v, width_s=PHASE_S):
    """Add one potential at each finite time (in place), evaluated within ±17 widths (±0.6 ms
    at the default width)."""
    fn = SHAPES[shape]
    half = int(np.ceil(17 * width_s * fs_hz))
    offsets = np.arange(-half, half + 1)
    for t in times_s[np.isfinite(times_s)]:
        centre = int(round(t * fs_hz))
        idx = centre + offsets
        ok = (idx >= 0) & (idx < signal.size)
        signal[idx[ok]] += fn(idx[ok] / fs_hz - t, amplitude_v, width_s)


def add_artefacts(signal, fs_hz, stimulus_times_s, artefact_v=5e-3, decay_s=0.15e-3):
    """Add a stimulus artefact at the first sample from each stimulus (in place): a step
    of ``artefact_v`` decaying with time constant ``decay_s``, negative for its first 40 µs."""
    t_axis = np.arange(int(max(2e-3, 15 * decay_s) * fs_hz)) / fs_hz
    artefact = artefact_v * np.exp(-t_axis / decay_s) * (1 - 2 * (t_axis < 40e-6))
    for s in stimulus_times_s:
        i = int(np.ceil(s * fs_hz - 1e-6))  # (not a sample late where s * fs_hz rounds up)
        signal[i:i + t_axis.size] += artefact


@dataclass
class Truth:
    """Planted event times: ``times_s`` (n_fibres, n_discharges), NaN where blocked."""

    reference_s: np.ndarray
    times_s: np.ndarray

    def mcd_s(self, fibre, reference=0):
        """True MCD of fibre's IPI (or latency when reference is None), skipping blocks."""
        base = self.reference_s if reference is None else self.times_s[reference]
        d = np.abs(np.diff(self.times_s[fibre] - base))
        return float(np.nanmean(d))


def voluntary(fs_hz=50_000.0, n_discharges=200, *, snr_db=30.0, jitter_us=(20.0,),
              ipis_s=(1.0e-3,), amplitudes_v=(1e-3, 0.6e-3), shapes=("triphasic", "biphasic"),
              block_prob=(0.0,), rate_hz=10.0, rate_cv=0.15, idi_slope=0.0, foreign=False,
              amplifier_order=2, seed=0):
    """A continuous voluntary recording of one unit with ``len(ipis_s) + 1`` fibres.

    The trigger (fibre 0) fires at ``rate_hz``, its intervals varying with a coefficient of
    variation ``rate_cv`` (at least half the mean interval); fibre k
    follows at ``ipis_s[k-1] + e`` with ``e`` Gaussian of SD ``jitter_us / 1.128`` plus
    ``idi_slope * (IDI - mean IDI)`` (firing-rate dependence); it is blocked with
    probability ``block_prob[k-1]``. ``foreign`` adds a non-locked unit (0.5 mV, 7.3 Hz).
    ``amplifier_order`` is the order of the amplifier's Butterworth band-pass.
    SNR is the smallest potential's peak over the noise RMS.

    Returns
    -------
    signal_v : ndarray
    truth : Truth
    """
    rng = np.random.default_rng(seed)
    idi = 1.0 / rate_hz * (1.0 + rate_cv * rng.standard_normal(n_discharges))
    idi = np.clip(idi, 0.5 / rate_hz, None)
    t0 = 0.02 + np.cumsum(idi)
    duration = t0[-1] + 0.02
    n = int(duration * fs_hz)
    noise_rms = min(filtered_peak_v(s, a, fs_hz, amplifier_order) for s, a in zip(shapes, amplitudes_v)) \
        / 10 ** (snr_db / 20)
    signal = np.zeros(n)
    times = [t0]
    prev_idi = np.r_[1.0 / rate_hz, np.diff(t0)]
    for k, ipi in enumerate(ipis_s):
        sd = jitter_us[k] * 1e-6 / (2 / np.sqrt(np.pi))
        t = t0 + ipi + sd * rng.standard_normal(n_discharges) + idi_slope * (prev_idi - 1.0 / rate_hz)
        t[rng.random(n_discharges) < block_prob[k]] = np.nan
        times.append(t)
    for k, t in enumerate(times):
        add_potentials(signal, fs_hz, t, shapes[k], amplitudes_v[k])
    if foreign:
        tf = np.arange(0.013, duration - 0.01, 1 / 7.3)
        add_potentials(signal, fs_hz, tf, "triphasic", -0.5e-3)
    return _finish(signal, fs_hz, noise_rms, rng, amplifier_order), Truth(t0, np.vstack(times))


def stimulated(fs_hz=50_000.0, n_stimuli=150, *, snr_db=30.0, jitter_us=(15.0,),
               latencies_s=(3e-3,), amplitudes_v=(0.6e-3,), rate_hz=10.0, artefact_v=5e-3,
               artefact_decay_s=0.15e-3, block_prob=(0.0,), failed=(), asynchronous=False, seed=0):
    """A continuous stimulated recording: stimulus artefacts and time-locked responses.

    The artefact is :func:`add_artefacts`'s (the stimuli fall on samples at 10 Hz), of
    ``artefact_v`` decaying with ``artefact_decay_s``.
    ``asynchronous``: each stimulus falls at a random point within a sample (a stimulator
    on a clock of its own), and the artefact is a Gaussian-derivative spike of
    ``artefact_v`` (width 40 µs) at its exact time, 120 µs after the stimulus.
    ``failed``: indices of stimuli that miss the axon (below its threshold): their
    artefact, and no response.

    Returns
    -------
    signal_v, stimulus_times_s : ndarray
    truth : Truth
    """
    rng = np.random.default_rng(seed)
    stim = 0.01 + np.arange(n_stimuli) / rate_hz
    if asynchronous:
        stim = stim + rng.random(n_stimuli) / fs_hz
    n = int((stim[-1] + 0.02) * fs_hz)
    noise_rms = min(filtered_peak_v("triphasic", a, fs_hz) for a in amplitudes_v) / 10 ** (snr_db / 20)
    signal = np.zeros(n)
    if asynchronous:
        add_potentials(signal, fs_hz, stim + 120e-6, "biphasic", artefact_v, width_s=40e-6)
    else:
        add_artefacts(signal, fs_hz, stim, artefact_v, artefact_decay_s)
    times = []
    for k, lat in enumerate(latencies_s):
        sd = jitter_us[k] * 1e-6 / (2 / np.sqrt(np.pi))
        t = stim + lat + sd * rng.standard_normal(n_stimuli)
        t[rng.random(n_stimuli) < block_prob[k]] = np.nan
        t[np.asarray(failed, dtype=int)] = np.nan
        add_potentials(signal, fs_hz, t, "triphasic", amplitudes_v[k])
        times.append(t)
    return _finish(signal, fs_hz, noise_rms, rng), stim, Truth(stim, np.vstack(times))


def front_end_stimulated(fs_hz=25_000.0, n_stimuli=150, *, latency_s=2.5e-3, jitter_sd_s=5e-6,
                         amplitude_v=0.5e-3, snr_db=40.0, rate_hz=5.0, artefact_v=3e-3,
                         asynchronous=True, oversampling=8, seed=0):
    """A stimulated recording as an analogue front end makes it: around each stimulus its
    artefact (a 20 µs biphasic spike and a 0.4 ms decay) and one triphasic response are
    rendered at ``oversampling`` × the rate, filtered by the amplifier's band there and
    then sampled, so that what lies above the Nyquist frequency aliases (:func:`amplifier`
    works at the sampling rate itself). The stimuli share one random sub-sample phase,
    and with ``asynchronous`` each gets a random one of its own. Noise: white noise
    through a 4th-order 500 Hz-10 kHz band-pass, scaled to the response's filtered peak
    over ``snr_db``.

    Returns
    -------
    signal_v, stimulus_times_s : ndarray
    truth : Truth
    """
    rng = np.random.default_rng(seed)
    stim = 0.02 + np.arange(n_stimuli) / rate_hz + rng.uniform(0, 1 / fs_hz)
    if asynchronous:
        stim = stim + rng.uniform(0, 1 / fs_hz, n_stimuli)
    latency = latency_s + jitter_sd_s * rng.standard_normal(n_stimuli)
    fine_hz = oversampling * fs_hz
    band = scipy.signal.butter(2, [500.0, min(10_000.0, 0.45 * fs_hz)], "bandpass", fs=fine_hz, output="sos")
    n = int((stim[-1] + 0.03) * fs_hz)
    signal = np.zeros(n)
    for s, lat in zip(stim, latency):
        first, length = int(np.floor((s - 1e-3) * fs_hz)), int(26e-3 * fs_hz)
        t = (first + np.arange(length * oversampling) / oversampling) / fs_hz - s
        onset = 0.5 * (1 + np.tanh((t - 40e-6) / 10e-6))
        decay = 0.3 * np.exp(-np.clip(t - 40e-6, 0, None) / 0.4e-3) * onset
        artefact = biphasic(t - 60e-6, 1.0, 20e-6) * np.exp(-0.5) + decay
        rendered = scipy.signal.sosfilt(band, artefact_v * artefact + triphasic(t - lat, amplitude_v))[::oversampling]
        signal[first:first + length] += rendered[: max(0, min(length, n - first))]
    t = np.arange(-3e-3, 4e-3, 1 / fine_hz)
    peak_v = np.abs(scipy.signal.sosfilt(band, triphasic(t, amplitude_v))).max()
    noise = scipy.signal.sosfilt(scipy.signal.butter(4, [500.0, min(10_000.0, 0.45 * fs_hz)], "bandpass", fs=fs_hz,
                                                     output="sos"), rng.standard_normal(n + 4000))[4000:]
    signal += noise / noise.std() * peak_v / 10 ** (snr_db / 20)
    return signal, stim, Truth(stim, (stim + latency)[None, :])

