"""Numba kernels: place potentials at continuous times, and filter like the amplifier.

Called only through :mod:`sfemg.synthesis.render`.
"""

from __future__ import annotations

import math

import numpy as np

from .._numba import jit


@jit
def add_events(out, start_s, first_sample, fs_hz, wave_table, wave_start_s, wave_step_s,
               event_times_s, event_wave, event_gain):
    """Add each event's waveform to ``out`` at its exact (continuous) time.

    Parameters
    ----------
    out : (n_samples,) float64
        Segment to add into; its sample ``n`` is at ``start_s + (first_sample + n) / fs_hz``
        (so a signal rendered in chunks has exactly the sample times of one rendered whole).
    start_s, fs_hz : float
    first_sample : int
    wave_table : (n_waves, n_fine) float64
        Waveforms on a fine grid; row ``w`` sample ``i`` is at
        ``wave_start_s[w] + i * wave_step_s`` relative to the event.
    wave_start_s : (n_waves,) float64
    wave_step_s : float
    event_times_s : (n_events,) float64
        Event times, s; events whose waveform misses the segment are skipped.
    event_wave : (n_events,) int64
        Row of ``wave_table`` for each event.
    event_gain : (n_events,) float64
        Scale of each event's waveform.

    Notes
    -----
    Values between fine-grid points come from 4-point (cubic) Lagrange interpolation.
    """
    n_samples = out.shape[0]
    n_fine = wave_table.shape[1]
    inv_step = 1.0 / wave_step_s
    for j in range(event_times_s.shape[0]):
        w = event_wave[j]
        t0 = event_times_s[j] + wave_start_s[w]
        t1 = t0 + (n_fine - 1) * wave_step_s
        first = max(int(math.ceil((t0 - start_s) * fs_hz)) - first_sample - 1, 0)
        last = min(int(math.floor((t1 - start_s) * fs_hz)) - first_sample + 1, n_samples - 1)
        gain = event_gain[j]
        for n in range(first, last + 1):
            pos = ((start_s + (first_sample + n) / fs_hz) - t0) * inv_step
            i = int(math.floor(pos))
            if i < 1 or i > n_fine - 3:
                continue
            f = pos - i
            y0 = wave_table[w, i - 1]
            y1 = wave_table[w, i]
            y2 = wave_table[w, i + 1]
            y3 = wave_table[w, i + 2]
            value = (-f * (f - 1.0) * (f - 2.0) / 6.0 * y0
                     + (f + 1.0) * (f - 1.0) * (f - 2.0) / 2.0 * y1
                     - (f + 1.0) * f * (f - 2.0) / 2.0 * y2
                     + (f + 1.0) * f * (f - 1.0) / 6.0 * y3)
            out[n] += gain * value


@jit
def sosfilt_inplace(sos, x, state):
    """Filter ``x`` in place with second-order sections, carrying the filter state.

    Direct form II transposed — the arithmetic of ``scipy.signal.sosfilt`` — taking the
    sections two at a time in one pass over the data, with the filter state in
    registers (about twice as fast as one section per pass).

    Parameters
    ----------
    sos : (n_sections, 6) float64
        ``[b0, b1, b2, a0, a1, a2]`` per section, ``a0 == 1``; ``n_sections`` even.
    x : (n_samples,) float64
    state : (n_sections, 2) float64
        Filter state before ``x`` (zeros at the start of a signal); updated to the state
        after it, so consecutive chunks filter exactly as one signal.
    """
    for s in range(0, sos.shape[0], 2):
        b0, b1, b2, a1, a2 = sos[s, 0], sos[s, 1], sos[s, 2], sos[s, 4], sos[s, 5]
        c0, c1, c2, d1, d2 = sos[s + 1, 0], sos[s + 1, 1], sos[s + 1, 2], sos[s + 1, 4], sos[s + 1, 5]
        z1, z2, w1, w2 = state[s, 0], state[s, 1], state[s + 1, 0], state[s + 1, 1]
        for i in range(x.shape[0]):
            xi = x[i]
            yi = b0 * xi + z1
            z1 = b1 * xi - a1 * yi + z2
            z2 = b2 * xi - a2 * yi
            oi = c0 * yi + w1
            w1 = c1 * yi - d1 * oi + w2
            w2 = c2 * yi - d2 * oi
            x[i] = oi
        state[s, 0], state[s, 1], state[s + 1, 0], state[s + 1, 1] = z1, z2, w1, w2


@jit
def render_rows(out, starts_s, first_sample, fs_hz, wave_table, wave_start_s, wave_step_s,
                event_times_s, event_wave, event_gain, sos):
    """Row by row: :func:`add_events` at the row's start time, then :func:`sosfilt_inplace`
    from a fresh (zero) filter state — each row a separate segment (sweeps).

    Parameters
    ----------
    out : (n_rows, n_samples) float64
        Noise (or zeros) to add into and filter in place.
    starts_s : (n_rows,) float64
        ``start_s`` of each row; ``first_sample`` and the rest as for :func:`add_events`.
    sos : (n_sections, 6) float64
    """
    state = np.zeros((sos.shape[0], 2))
    for r in range(out.shape[0]):
        add_events(out[r], starts_s[r], first_sample, fs_hz, wave_table, wave_start_s, wave_step_s,
                   event_times_s, event_wave, event_gain)
        state[:] = 0.0
        sosfilt_inplace(sos, out[r], state)
