"""Rendering: potentials at continuous times, the amplifier filter, the line-source model."""

import numpy as np
import pytest
from scipy import signal as sps

from sfemg import SfemgInputError
from sfemg.synthesis._render_numba import add_events, sosfilt_inplace
from sfemg.synthesis.potentials import FibrePotential, compute_fibre_potential, conduction_velocity_m_s
from sfemg.synthesis.render import Amplifier, WaveTable, iter_signal_chunks, render_segment, render_sweeps
from tests import tolerances as tol
from tests.synthesis import reference as ref


@pytest.fixture(scope="module")
def table():
    return WaveTable.stack([compute_fibre_potential(55e-6, 60e-6),
                            compute_fibre_potential(40e-6, 150e-6)])


def test_add_events_matches_reference(table):
    fs, start, n = 25_000.0, 0.0012345, 400
    times = np.array([0.0030001, 0.00612345, 0.0125, -0.004, 0.0171])  # one before, one past
    wave = np.array([0, 1, 0, 1, 1])
    gain = np.array([1.0, 0.5, -2.0, 1.0, 3.0])
    got = np.zeros(n)
    add_events(got, start, 7, fs, table.waveforms_v, table.start_s, table.step_s, times, wave, gain)
    want = ref.add_events(n, start + 7 / fs, fs, table, times, wave, gain)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.abs(want).max())


def test_rendering_evaluates_the_continuous_waveform(table):
    """Samples equal the waveform at their exact times (spline-free check against the
    fine grid's own cubic spline)."""
    fs = 100_000.0
    t_event = 0.0050000123
    out = np.zeros(1000)
    add_events(out, 0.0, 0, fs, table.waveforms_v, table.start_s, table.step_s,
               np.array([t_event]), np.array([0]), np.array([1.0]))
    pot = FibrePotential(table.waveforms_v[0], table.start_s[0], table.step_s)
    t = np.arange(1000) / fs - t_event
    inside = (t > pot.start_s + 2 * pot.step_s) & (t < pot.time_s[-3])
    np.testing.assert_allclose(out[inside], pot(t[inside]), rtol=0,
                               atol=tol.RENDER_INTERPOLATION_REL * np.abs(pot.waveform_v).max())


@pytest.mark.parametrize("fs", [25_000.0, 50_000.0, 100_000.0])
@pytest.mark.parametrize("delta_s", [0.013e-6, 0.37e-6, 3.3e-6, 7.91e-6])
def test_fractional_delay_moves_the_potential_by_delta(table, fs, delta_s):
    """Shifting the event by δ moves the rendered, filtered potential by δ (issue: 0.05 µs).

    The shift is measured by least squares against the unshifted rendering, as a timing
    algorithm would: δ̂ = argmin Σ (y_δ(t) − y_0(t − δ))², solved with the derivative."""
    amp = Amplifier()
    n = int(0.01 * fs)

    def render(t):
        return render_segment(0.0, n, fs, table, np.array([t]), np.array([0]), np.array([1.0]),
                              amplifier=amp)

    y0 = render(0.004)
    y1 = render(0.004 + delta_s)
    # Gauss-Newton on the shift using a band-limited (FFT) shift of y0
    freqs = np.fft.rfftfreq(n, 1 / fs)
    spec = np.fft.rfft(y0)
    est = 0.0
    for _ in range(10):
        shifted = np.fft.irfft(spec * np.exp(-2j * np.pi * freqs * est), n)
        deriv = np.fft.irfft(spec * np.exp(-2j * np.pi * freqs * est) * (-2j * np.pi * freqs), n)
        est += np.sum((y1 - shifted) * deriv) / np.sum(deriv * deriv)
    assert abs(est - delta_s) < tol.FRACTIONAL_DELAY_S


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_sosfilt_matches_scipy(order):
    sos = Amplifier(order=order).sos(50_000.0)
    x = np.random.default_rng(0).standard_normal(5000)
    y = x.copy()
    sosfilt_inplace(sos, y, np.zeros((len(sos), 2)))
    np.testing.assert_allclose(y, sps.sosfilt(sos, x), rtol=1e-12, atol=1e-12)


def test_chunked_rendering_is_bit_identical_to_one_piece(table):
    """A long signal streamed in chunks equals the signal rendered whole (same rng)."""
    fs, n = 50_000.0, 20_011
    times = np.array([0.0301, 0.1999, 0.2, 0.3])  # one straddles a chunk boundary
    args = (fs, table, times, np.array([0, 1, 0, 1]), np.ones(4))
    whole = render_segment(0.0, n, *args, amplifier=Amplifier(), rng=np.random.default_rng(9))
    chunks = list(iter_signal_chunks(n, *args, amplifier=Amplifier(), rng=np.random.default_rng(9),
                                     chunk_samples=1000))
    assert [first for first, _ in chunks] == list(range(0, n, 1000))
    assert np.concatenate([c for _, c in chunks]).tobytes() == whole.tobytes()


@pytest.mark.parametrize("noise", [True, False])
def test_sweeps_are_bit_identical_to_segments_one_by_one(table, noise):
    """render_sweeps (one compiled pass) = render_segment per sweep with the same rng."""
    fs = 50_000.0
    starts = np.array([0.0, 0.0401, 0.09, 0.1333])
    times = np.array([0.0031, 0.0402, 0.0449, 0.095, 0.1, 0.14])  # some in no sweep, one before a start
    args = (fs, table, times, np.array([0, 1, 0, 1, 0, 1]), np.array([1.0, 0.5, -2.0, 1.0, 3.0, 1.0]))
    rng_a, rng_b = (np.random.default_rng(4) if noise else None for _ in range(2))
    got = render_sweeps(starts, 500, *args, amplifier=Amplifier(), rng=rng_a, lead_s=5e-3)
    want = np.stack([render_segment(s, 500, *args, amplifier=Amplifier(), rng=rng_b, lead_s=5e-3) for s in starts])
    assert got.shape == (4, 500) and got.tobytes() == want.tobytes()
    assert np.abs(got).max() > 0


def test_noise_has_the_requested_rms_after_filtering():
    amp = Amplifier(noise_rms_v=12e-6)
    empty = WaveTable(np.zeros((1, 8)), np.zeros(1), 1e-6)
    x = render_segment(0.0, 400_000, 50_000.0, empty, np.array([]), np.array([], int), np.array([]),
                       amplifier=amp, rng=np.random.default_rng(3))
    rms = x[5000:].std()
    # RMS of ~400k correlated samples (band 500 Hz–10 kHz at 50 kHz: ~40k effective
    # independent samples): relative SE ≈ 1/sqrt(2 * 40k) ≈ 0.4 %
    assert rms == pytest.approx(12e-6, rel=tol.Z_STAT * 0.004)


def _recorded(radial_m, fs=100_000.0):
    """A fibre's potential as recorded: rendered and band-passed by the SFE amplifier."""
    table = WaveTable.stack([compute_fibre_potential(55e-6, radial_m)])
    return render_segment(0.0, 2000, fs, table, np.array([0.008]), np.array([0]), np.array([1.0]),
                          amplifier=Amplifier())


def _rise_time_s(y, fs=100_000.0):
    """Positive peak to main negative peak, s."""
    i_neg = np.argmin(y)
    return (i_neg - np.argmax(y[:i_neg])) / fs


def test_line_source_potential_shape():
    """Recorded potentials are triphasic with a dominant negative phase; amplitude falls
    and rise time grows with distance from the fibre."""
    near, far = _recorded(50e-6), _recorded(300e-6)
    for y in (near, far):
        assert abs(y.min()) > y.max() > 0
        assert np.argmax(y[: np.argmin(y)]) < np.argmin(y)
    assert np.ptp(near) > 3 * np.ptp(far)
    assert _rise_time_s(far) > _rise_time_s(near)
    assert conduction_velocity_m_s(50e-6) == pytest.approx(3.45)


def test_filtered_single_fibre_potential_meets_clinical_acceptance():
    """A fibre 50-100 µm from an SFE gives > 200 µV and a rise time < 300 µs after the
    500 Hz high-pass (the acceptance criteria the analysis applies)."""
    for r in (50e-6, 100e-6):
        y = _recorded(r)
        assert np.ptp(y) > 200e-6
        assert _rise_time_s(y) < 300e-6


@pytest.mark.parametrize("kwargs,match", [
    ({"highpass_hz": -1.0}, "highpass_hz"),
    ({"lowpass_hz": 400.0}, "lowpass_hz"),
    ({"order": 0}, "order"),
    ({"noise_rms_v": float("nan")}, "noise_rms_v"),
])
def test_amplifier_rejects_impossible_settings(kwargs, match):
    with pytest.raises(SfemgInputError, match=match):
        Amplifier(**kwargs)


def test_sampling_rate_too_low_for_the_filters():
    with pytest.raises(SfemgInputError, match="fs_hz=20000 is too low"):
        Amplifier().sos(20_000.0)


def test_potential_rejects_impossible_geometry():
    with pytest.raises(SfemgInputError, match="radial distance"):
        compute_fibre_potential(55e-6, 10e-6)
    with pytest.raises(SfemgInputError, match="diameter"):
        compute_fibre_potential(-1.0, 100e-6)
