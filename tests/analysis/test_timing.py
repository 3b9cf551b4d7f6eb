"""Time-point estimators on analytic potentials and the Cramér–Rao bound formula."""

import numpy as np
import pytest
import scipy.optimize

from sfemg.analysis.timing import fit_taper, fit_template, level_positions, peak_positions

from . import synth
from .tolerances import ALIASED_NOISELESS_SAMPLES, CRB_FORMULA_REL, CRB_REL, N_SD, NOISELESS_PEAK_SAMPLES

FS = 100e3
L = 121  # ±600 µs


def segments(true_pos, amplitude=1e-3, shape="triphasic"):
    """Noise-free potentials whose t = 0 lies at ``true_pos`` samples in each segment."""
    n = np.arange(L)
    return np.vstack([synth.SHAPES[shape]((n - p) / FS, amplitude) for p in true_pos])


def test_peak_positions_noise_free():
    true = 60 + np.linspace(-0.5, 0.5, 11)
    pos, peak = peak_positions(segments(true))
    assert np.max(np.abs(pos - true)) < NOISELESS_PEAK_SAMPLES
    assert np.all(peak <= 1e-3) and np.all(peak > 0.9e-3)


def slow_level_crossing(fraction, true_pos):
    """Exact rising-phase crossing of the analytic triphasic: root left of its peak."""
    f = lambda u: (1 - u * u) * np.exp(-u * u / 2) - fraction  # noqa: E731
    u = scipy.optimize.brentq(f, -1.0, 0.0)
    return true_pos + u * synth.PHASE_S * FS


def test_level_positions_match_exact_crossing():
    true = 60 + np.linspace(-0.5, 0.5, 11)
    pos = level_positions(segments(true), 0.5)
    want = np.array([slow_level_crossing(0.5, p) for p in true])
    # linear interpolation of a curve sampled at 1/3.5 of its width: < 0.05 sample
    np.testing.assert_allclose(pos, want, atol=0.05)
    assert np.isnan(level_positions(np.ones((1, 10)), 0.5)[0])


def test_template_recovers_exact_fractional_shifts_without_noise():
    true = 60 + np.random.default_rng(0).uniform(-3, 3, 40)
    white = np.full(L // 2 + 1, L * 1e-12)
    fit = fit_template(segments(true), white)
    est = fit.positions - np.mean(fit.positions - true)
    np.testing.assert_allclose(est, true, atol=1e-6)
    np.testing.assert_allclose(fit.amplitudes, 1.0, atol=1e-6)


@pytest.mark.parametrize("shape", ["triphasic", "biphasic"])
def test_template_reaches_white_noise_bound(shape):
    rng = np.random.default_rng(1)
    n, sigma = 2000, 30e-6
    true = 60 + rng.uniform(-0.5, 0.5, n)
    data = segments(true, shape=shape) + rng.normal(0, sigma, (n, L))
    fit = fit_template(data, np.full(L // 2 + 1, L * sigma ** 2))
    # white-noise bound sigma^2 / sum s'(t_n)^2 with the analytic derivative
    t = (np.arange(L) - 60) / FS
    h = 1e-9
    deriv = (synth.SHAPES[shape](t + h, 1e-3) - synth.SHAPES[shape](t - h, 1e-3)) / (2 * h) / FS
    bound = sigma ** 2 / np.sum(deriv ** 2)
    assert fit.crb_var == pytest.approx(bound, rel=CRB_FORMULA_REL)
    err = fit.positions - true
    sd = np.std(err - err.mean())
    # relative SD of a sample SD over n values: 1/sqrt(2n)
    assert abs(sd / np.sqrt(bound) - 1) < CRB_REL + N_SD / np.sqrt(2 * n)
    assert fit_taper(L)[L // 2] == 1.0


def test_aliased_potentials_timed_by_image_model():
    """25 kHz, ~70 µs phases: sampled potentials are not shifted copies of one waveform."""
    fs, length = 25e3, 31
    rng = np.random.default_rng(2)
    true = 15 + rng.uniform(-0.5, 0.5, 200)
    n = np.arange(length)
    data = np.vstack([synth.triphasic((n - p) / fs, 1e-3) for p in true])
    white = np.full(length // 2 + 1, length * 1e-14)
    fit = fit_template(data, white)
    err = fit.positions - true
    # measured: 0.005 sample with the image term (taper and higher images), 0.020 without
    assert np.std(err - err.mean()) < ALIASED_NOISELESS_SAMPLES
