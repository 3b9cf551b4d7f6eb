"""The joint fit of overlapping potentials (sfemg.analysis.joint) against direct computations."""

import numpy as np
import pytest
import scipy.linalg

from sfemg.analysis import _joint_numba, joint
from sfemg.analysis.jitter import compute_mcd, mcd_gradient

from . import synth
from .tolerances import sd_ratio_tolerance


def explicit_normal_equations(spectra, w, weight, tau, present, rows):
    """Slow reference: per bin, the weighted projection and the projected Jacobian as
    explicit matrices; normal matrix Re sum_k W_k J^H V J, gradient -Re sum_k W_k J^H V r."""
    k, n = tau.shape
    normal = np.zeros((k * n, k * n))
    gradient = np.zeros(k * n)
    v = np.diag(rows.astype(complex))
    for b in range(w.size):
        m = (present * np.exp(-1j * w[b] * tau)).T                       # (n, K)
        gram = m.conj().T @ v @ m + joint._TEMPLATE_RIDGE * n * np.eye(k)
        s = np.linalg.solve(gram, m.conj().T @ v @ spectra[:, b])
        r = spectra[:, b] - m @ s
        proj = np.eye(n) - m @ np.linalg.solve(gram, m.conj().T @ v)
        jac = np.zeros((n, k * n), complex)
        for j in range(k):
            for i in range(n):
                e = np.zeros(n, complex)
                e[i] = -1j * w[b] * m[i, j] * s[j]                        # d model_i / d tau_ij
                jac[:, j * n + i] = -proj @ e
        normal += weight[b] * (jac.conj().T @ v @ jac).real
        gradient -= weight[b] * (jac.conj().T @ v @ r).real
    return normal, gradient


@pytest.mark.parametrize("nb,spacing", [(9, "even"), (150, "even"), (40, "gaps")])
def test_normal_equations_match_explicit_projection(nb, spacing):
    """Evenly spaced bins (the kernel's phasors by products, restarted every 64 bins)
    and bins with gaps (recomputed where the spacing changes)."""
    rng = np.random.default_rng(0)
    k, n = 3, 12
    spectra = rng.normal(size=(n, nb)) + 1j * rng.normal(size=(n, nb))
    w = np.linspace(0.1, 2.5, nb)
    if spacing == "gaps":
        w = np.sort(rng.choice(np.linspace(0.1, 2.5, 3 * nb), nb, replace=False))
    weight = rng.uniform(0.5, 2.0, nb)
    tau = rng.normal(0, 2, (k, n))
    present = rng.random((k, n)) > 0.15
    rows = np.ones(n)
    rows[2] = 0.0
    free = present & (rows[None, :] > 0)
    fast_a, fast_g, _, _, _ = joint._normal_equations(spectra, w, weight, tau, present, rows, free)
    slow_a, slow_g = explicit_normal_equations(spectra, w, weight, tau, present, rows)
    index = np.flatnonzero(free.reshape(-1))
    slow_a, slow_g = slow_a[np.ix_(index, index)], slow_g[index]
    # round-off: the low bins' Gram matrices (shifts spread over 0.2 rad) have condition ~1e4
    np.testing.assert_allclose(fast_a, slow_a, rtol=0, atol=1e-7 * np.abs(slow_a).max())
    np.testing.assert_allclose(fast_g, slow_g, rtol=0, atol=1e-7 * np.abs(slow_g).max())


def overlapping_sweeps(true_pos, fs_hz, length):
    """Noise-free sweeps: a triphasic spike with a slow after-phase (potential 0) and a
    biphasic spike on that after-phase (potential 1), at continuous positions (samples)."""
    t = np.arange(length)[None, :]
    a = (t - true_pos[0][:, None]) / fs_hz
    b = (t - true_pos[1][:, None]) / fs_hz
    after = 0.5e-3 * np.exp(-0.5 * ((a - 0.45e-3) / 0.2e-3) ** 2)
    return synth.triphasic(a, 1e-3) + after + synth.biphasic(b, 0.8e-3)


def test_joint_positions_undo_a_scaled_relative_jitter():
    """Started from relative shifts scaled by 0.85 (the single-template fit's drag), the
    joint fit returns the true ones: the second-order terms identify the scale."""
    fs, length, n = 50e3, 561, 100
    rng = np.random.default_rng(3)
    base = 280.0 + rng.uniform(-0.5, 0.5, n)
    rel = 0.6e-3 * fs + rng.normal(0, 1.2, n)                            # 600 µs, ~24 µs SD
    true_pos = np.vstack([base, base + rel])
    start = true_pos.copy()
    start[1] = base + rel.mean() + 0.85 * (rel - rel.mean())
    fit_half = 30
    noise = np.full(fit_half + 1, 1e-14)
    est, _ = joint.joint_positions(overlapping_sweeps(true_pos, fs, length), start, noise, fs, fit_half)
    err = est - true_pos
    err -= err.mean(axis=1, keepdims=True)
    assert np.abs(err).max() < 0.01, np.abs(err).max()


@pytest.mark.parametrize("noise_v,louder_sweeps", [(20e-6, 0), (60e-6, 0), (20e-6, 30)])
def test_shift_covariance_predicts_the_scatter_of_the_mcd(noise_v, louder_sweeps):
    """The joint fit's covariance against the scatter over 200 noise realisations of one
    overlapping pair (~24 µs relative SD): for the MCD (delta method; its uncertainty
    holds the weakly identified scale of the relative shifts) and for one discharge's
    interval. Also where 30 of the 100 sweeps carry twice the noise power: each sweep's
    own residual scales its shifts' variance (a louder sweep's interval is reported less
    precise; with one scale for all sweeps its scatter was 1.27 x the reported SD).
    Measured (scatter / reported): MCD 0.99, 1.00, 0.89; intervals 1.08-1.10, 1.03-1.05."""
    fs, length, n, fit_half, repeats = 50e3, 561, 100, 30, 200
    rng = np.random.default_rng(3)
    base = 280.0 + rng.uniform(-0.5, 0.5, n)
    rel = 0.6e-3 * fs + rng.normal(0, 1.2, n)
    true_pos = np.vstack([base, base + rel])
    clean = overlapping_sweeps(true_pos, fs, length)
    noise_power = np.full(fit_half + 1, (2 * fit_half + 1) * noise_v ** 2)
    def interval(i):  # weights of one discharge's interval
        w = np.zeros((2, n))
        w[:, i] = -1.0, 1.0
        return w

    errors, reported = [], []
    for _ in range(repeats):
        sweeps = clean + rng.normal(0, noise_v, clean.shape)
        sweeps[:louder_sweeps] += rng.normal(0, noise_v, (louder_sweeps, length))
        est, cov = joint.joint_positions(sweeps, true_pos, noise_power, fs, fit_half)
        ipis = est[1] - est[0]
        gradient = mcd_gradient(ipis)
        errors.append([compute_mcd(ipis) - compute_mcd(rel), *(ipis - rel)[[0, n - 1]]])
        # the MCD; the interval of the first sweep (louder, if any) and of the last (never)
        reported.append([np.sqrt(cov.variance(np.vstack([-gradient, gradient]))),
                         np.sqrt(cov.variance(interval(0))), np.sqrt(cov.variance(interval(n - 1)))])
    errors, reported = np.array(errors), np.array(reported)
    ratios = np.std(errors, axis=0, ddof=1) / np.mean(reported, axis=0)
    assert np.all(np.abs(ratios - 1.0) <= sd_ratio_tolerance(repeats)), ratios


def test_shift_covariance_ignores_common_shifts_and_subsets():
    """A shift of one potential's every template position is a shift of its template:
    no variance; a subset of the sweeps keeps the rows of the rest."""
    fs, length, n = 50e3, 561, 40
    rng = np.random.default_rng(1)
    base = 280.0 + rng.uniform(-0.5, 0.5, n)
    true_pos = np.vstack([base, base + 30.0 + rng.normal(0, 1.2, n)])
    sweeps = overlapping_sweeps(true_pos, fs, length) + rng.normal(0, 20e-6, (n, length))
    _, cov = joint.joint_positions(sweeps, true_pos, np.full(31, 61 * 20e-6 ** 2), fs, 30)
    assert cov.variance(np.vstack([np.ones(n), np.zeros(n)])) < 1e-12 * cov.variance(np.eye(2, n))
    keep = np.arange(n) % 3 > 0
    weights = rng.normal(0, 1, (2, n))
    weights[:, ~keep] = 0
    assert cov.subset(keep).variance(weights[:, keep]) == pytest.approx(cov.variance(weights), rel=1e-12)


def test_two_sweeps_and_a_flat_sweep_do_not_fail():
    """Degenerate input (two sweeps, one of them all zeros) gives finite positions or NaN
    only where a potential is absent, never an exception."""
    fs, length = 50e3, 201
    true_pos = np.array([[80.0, 80.3], [110.0, 111.0]])
    data = overlapping_sweeps(true_pos, fs, length)
    data[1] = 0.0
    start = true_pos.copy()
    start[1, 1] = np.nan
    est, _ = joint.joint_positions(data, start, np.full(31, 1e-14), fs, 30)
    assert np.all(np.isfinite(est[0])) and np.isfinite(est[1, 0]) and np.isnan(est[1, 1])


def test_joint_timing_is_a_parameter_and_changes_only_overlapping_potentials():
    """joint_timing=False times each potential on its own segment (the 'single' analysis);
    with it on, a simulated recording whose fibres overlap gets other time points for them."""
    from sfemg.analysis import AnalysisParams, analyze_recording
    from sfemg.errors import SfemgInputError
    from sfemg.synthesis import simulate_study
    from sfemg.validation.plugins import ANALYSERS

    rec = simulate_study("healthy-edc", n_recordings=1, n_discharges=60, seed=3).recordings[0]
    joint_pairs = analyze_recording(rec).pairs
    single_pairs = analyze_recording(rec, AnalysisParams(joint_timing=False)).pairs
    assert [p.label for p in joint_pairs] == [p.label for p in single_pairs]
    assert any(not np.array_equal(a.time_points_s, b.time_points_s, equal_nan=True)
               for a, b in zip(joint_pairs, single_pairs))
    assert [p.mcd_us for p in ANALYSERS["sfemg-template-single"](rec)] == [p.mcd_us for p in single_pairs]
    with pytest.raises(SfemgInputError, match="joint_timing"):
        AnalysisParams(joint_timing="yes")


def test_a_potential_only_in_left_out_sweeps_keeps_its_single_fit():
    """Sweeps carrying another unit's potential are left out of the templates; a potential
    present only there has no template and keeps the positions it had when they were
    left out, instead of failing on a singular system."""
    fs, length, n = 50e3, 201, 12
    rng = np.random.default_rng(0)
    true = np.vstack([80 + rng.uniform(-0.5, 0.5, n), 110 + rng.normal(0, 1, n)])
    sweeps = overlapping_sweeps(true, fs, length) + rng.normal(0, 1e-6, (n, length))
    sweeps[3, 120:140] += 5e-3 * np.hanning(20)  # other units on sweeps 3 and 4
    sweeps[4, 40:60] -= 5e-3 * np.hanning(20)
    start = true.copy()
    start[1, :] = np.nan
    start[1, 3:5] = true[1, 3:5]
    est, _ = joint.joint_positions(sweeps, start, np.full(31, 1e-12), fs, 30)
    assert np.all(np.abs(est[1, 3:5] - true[1, 3:5]) < 0.5)
    assert np.isnan(est[1, :3]).all() and np.isfinite(est[0]).all()


def test_sweeps_with_another_units_potential_are_left_out_from_the_first_step(monkeypatch):
    """Sweeps that the model at the starting positions already fits far worse than the
    median (another unit's potential on them) are left out of the template estimate
    before the first Gauss-Newton step, so they do not drag it: the fit takes no more
    steps than on the same sweeps without that potential (with them in the first step
    it was clipped at the largest step and took 4 steps against 2)."""
    fs, length, n, noise_v = 50e3, 561, 60, 30e-6
    rng = np.random.default_rng(8)
    base = 280.0 + rng.uniform(-0.5, 0.5, n)
    rel = 0.6e-3 * fs + rng.normal(0, 1.2, n)
    true_pos = np.vstack([base, base + rel])
    clean = overlapping_sweeps(true_pos, fs, length) + rng.normal(0, noise_v, (n, length))
    other = [7, 31]
    sweeps = clean.copy()
    sweeps[other, 300:320] += 2e-3 * np.hanning(20)  # on the pair, 0.4 ms after the first
    start = true_pos.copy()
    start[1] = base + rel.mean() + 0.85 * (rel - rel.mean())  # the single fits' drag
    steps = []
    projected_step = joint._projected_step

    def recording_step(spectra, w, weight, tau, present, rows):
        result = projected_step(spectra, w, weight, tau, present, rows)
        steps.append((rows.copy(), np.abs(result[0]).max()))
        return result

    monkeypatch.setattr(joint, "_projected_step", recording_step)
    noise = np.full(31, 61 * noise_v ** 2)
    joint.joint_positions(clean, start, noise, fs, 30)
    n_clean = len(steps)
    steps.clear()
    est, _ = joint.joint_positions(sweeps, start, noise, fs, 30)
    first_rows, first_step = steps[0]
    assert set(other) <= set(np.flatnonzero(first_rows == 0).tolist())
    assert first_step < joint._MAX_STEP and len(steps) <= n_clean, (first_step, len(steps), n_clean)
    kept = np.setdiff1d(np.arange(n), other)
    err = (est[1] - est[0] - rel)[kept]
    assert np.abs(err - err.mean()).max() < 0.15  # ~5 SD of the relative shifts' errors (RMS 0.03 sample here)


def test_joint_templates_match_per_bin_least_squares():
    """Against a per-bin solve with NumPy: templates from the normal equations
    G S = sum_i a_i e^{i w tau_i} X_i, residual X - sum_j S_j e^{-i w tau_j}."""
    rng = np.random.default_rng(3)
    k, n, length = 2, 15, 64
    spectra = np.fft.rfft(rng.normal(size=(n, length)), axis=1)
    positions = rng.uniform(10, 50, (k, n))
    positions[1, 4] = np.nan
    templates, residual = joint.joint_templates(spectra, positions, length, 1e-3)
    w = 2 * np.pi * np.arange(length // 2 + 1) / length
    rot = np.where(np.isfinite(positions)[:, :, None],
                   np.exp(1j * w[None, None, :] * np.nan_to_num(positions)[:, :, None]), 0.0)
    gram = np.einsum("jib,kib->bjk", rot, rot.conj()) + 1e-3 * n * np.eye(k)
    want = np.linalg.solve(gram, np.einsum("jib,ib->bj", rot, spectra)[:, :, None])[:, :, 0].T
    np.testing.assert_allclose(templates, want, rtol=0, atol=1e-9 * np.abs(want).max())
    placed = np.einsum("jb,jib->ib", want, rot.conj())
    np.testing.assert_allclose(residual, spectra - placed, rtol=0, atol=1e-9 * np.abs(spectra).max())


def test_one_blas_thread_is_held_until_the_last_user_leaves():
    """Two analyses on worker threads enter and leave in any order: the limit must stay
    until both have left (threadpoolctl's own limit, entered twice, would be lifted by
    the first to leave), then the original thread count comes back."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from sfemg._blas import one_blas_thread

    def blas_threads():
        return {m["num_threads"] for m in threadpool_info() if m["user_api"] == "blas"}

    with threadpool_limits(2, user_api="blas"):
        if blas_threads() != {2}:
            pytest.skip("BLAS cannot run on 2 threads on this machine")
        one_blas_thread.__enter__()  # thread A
        one_blas_thread.__enter__()  # thread B
        assert blas_threads() == {1}
        one_blas_thread.__exit__(None, None, None)  # A leaves first
        assert blas_threads() == {1}
        one_blas_thread.__exit__(None, None, None)  # B
        assert blas_threads() == {2}


def test_a_singular_joint_model_raises_rather_than_giving_nan():
    """Two potentials at the same shifts in every sweep, no ridge: the per-bin Gram matrix
    is singular; the kernel's own Cholesky says so instead of returning NaN templates."""
    rng = np.random.default_rng(3)
    spectra = rng.normal(size=(6, 5)) + 1j * rng.normal(size=(6, 5))
    tau = np.tile(rng.normal(size=6), (2, 1))
    w = np.linspace(0.1, 1.0, 5)
    with pytest.raises(np.linalg.LinAlgError):
        joint._bin_parts(spectra, w, np.ones(5), tau, np.ones((2, 6), bool), np.ones(6), None, ridge=0.0)


@pytest.mark.parametrize("size", [1, 7, 120])
def test_damped_solve_matches_scipy_cholesky(size):
    """The compiled damped solve gives SciPy's Cholesky solution of the damped system
    (to rounding), damps in place, and refuses an indefinite matrix."""
    rng = np.random.default_rng(size)
    factor = rng.standard_normal((size + 5, size))
    normal = factor.T @ factor
    gradient = rng.standard_normal(size)
    damped = normal + 0.3 * np.trace(normal) / size * np.eye(size)
    expected = scipy.linalg.cho_solve(scipy.linalg.cho_factor(damped), gradient)
    work = normal.copy()
    got, lower = _joint_numba.damped_solve_kernel(work, gradient, 0.3)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12 * np.abs(expected).max())
    np.testing.assert_allclose(work, damped, rtol=1e-15)
    np.testing.assert_allclose(lower @ lower.T, damped, rtol=1e-12, atol=1e-12 * np.abs(damped).max())
    assert np.all(np.triu(lower, 1) == 0)
    with pytest.raises(np.linalg.LinAlgError):
        _joint_numba.damped_solve_kernel(-normal - np.eye(size), gradient, 0.0)
    # the normal matrix's triangles are filled by products that round differently: like
    # SciPy, the solve reads the upper one
    skewed = normal + np.tril(rng.normal(0, 1e-3, normal.shape), -1)
    expected = scipy.linalg.cho_solve(scipy.linalg.cho_factor(skewed + (damped - normal)), gradient)
    got = _joint_numba.damped_solve_kernel(skewed.copy(), gradient, 0.3)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12 * np.abs(expected).max())


def reference_fixed_template_shifts(spectra, w, weight, templates, tau, present, n_steps=3, max_step=0.5):
    """NumPy reference of the fixed-template Gauss-Newton steps: all sweeps at once,
    K x K systems by np.linalg.solve (least squares sweep by sweep if one is singular)."""
    k, n = tau.shape
    start = tau
    present = present & (np.abs(templates).max(axis=0) > 0)[:, None]
    tau = np.where(present, tau, 0.0)
    for _ in range(n_steps):
        m = present[:, :, None] * np.exp(-1j * w[None, None, :] * tau[:, :, None])
        placed = m * templates.T[:, None, :]
        resid = spectra - placed.sum(axis=0)
        c = -1j * w[None, None, :] * placed
        h = np.einsum("jib,mib,b->ijm", c.conj(), c, weight).real
        g = np.einsum("jib,ib,b->ij", c.conj(), resid, weight).real
        h[~present.T] = 0.0
        g[~present.T] = 0.0
        h += np.eye(k)[None, :, :] * (~present.T)[:, :, None]
        try:
            step = np.linalg.solve(h, g[:, :, None])[:, :, 0].T
        except np.linalg.LinAlgError:
            step = np.stack([np.linalg.lstsq(hi, gi, rcond=None)[0] for hi, gi in zip(h, g)]).T
        tau = tau + np.where(present, np.clip(step, -max_step, max_step), 0.0)
    return np.where(present, tau, start)


@pytest.mark.parametrize("n_pot", [1, 2, 3])
def test_fixed_template_shifts_match_numpy_reference(n_pot):
    """Sweeps made of shifted templates plus noise, some potentials absent, one template
    vanished and one sweep empty: the compiled steps give the reference's shifts."""
    rng = np.random.default_rng(n_pot)
    n, n_bins = 12, 40
    w = 2 * np.pi * np.arange(1, n_bins + 1) / 200
    weight = rng.uniform(0.5, 2.0, n_bins)
    shape = (n_bins, n_pot)
    templates = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / (1 + w[:, None] * 10)
    true = rng.normal(0, 0.3, (n_pot, n))
    present = rng.random((n_pot, n)) < 0.8
    phasors = present[:, :, None] * np.exp(-1j * w[None, None, :] * true[:, :, None])
    spectra = np.einsum("bj,jib->ib", templates, phasors)
    spectra = spectra + 0.01 * (rng.standard_normal((n, n_bins)) + 1j * rng.standard_normal((n, n_bins)))
    spectra[0] = 0.0
    if n_pot > 1:
        templates[:, -1] = 0.0
    start = true + rng.normal(0, 0.2, true.shape)
    got = joint._fixed_template_shifts(spectra, w, weight, templates, start.copy(), present)
    want = reference_fixed_template_shifts(spectra, w, weight, templates, start.copy(), present)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    assert np.array_equal(got[~present], start[~present])


def test_fixed_template_shifts_of_a_singular_sweep_take_the_least_squares_step():
    """Two potentials of one template at one shift in a sweep make its system exactly
    singular: that sweep takes the least-squares step (NumPy's rcond), as the NumPy form
    did; the others, well posed, their solution."""
    rng = np.random.default_rng(7)
    n, n_bins = 6, 40
    w = 2 * np.pi * np.arange(1, n_bins + 1) / 200
    weight = np.ones(n_bins)
    column = (rng.standard_normal(n_bins) + 1j * rng.standard_normal(n_bins)) / (1 + w * 10)
    templates = np.column_stack([column, column])
    true = np.vstack([np.zeros(n), np.linspace(3.0, 8.0, n)])
    true[1, 0] = 0.0                                          # sweep 0: both at one shift
    present = np.ones((2, n), dtype=bool)
    spectra = np.einsum("bj,jib->ib", templates, np.exp(-1j * w[None, None, :] * true[:, :, None]))
    start = true + 0.3
    got = joint._fixed_template_shifts(spectra, w, weight, templates, start.copy(), present)
    want = reference_fixed_template_shifts(spectra, w, weight, templates, start.copy(), present)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    assert np.abs(got[:, 0] - start[:, 0]).max() > 0.1       # the singular sweep moved
