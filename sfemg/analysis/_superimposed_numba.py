"""Numba kernels behind :mod:`sfemg.analysis.superimposed`.

:func:`model_residual_kernel` (the sweeps less the unit's model),
:func:`window_energy_kernel` (its energy around each potential),
:func:`group_template_kernel` (one background template), :func:`retime_kernel` (one
pass over the flagged discharges) and :func:`find_kernel` (one over the blocked
discharges with something in the potential's window) run without the GIL; the NumPy
code they replaced is the tests' reference (``tests/analysis/test_superimposed.py``).
"""

from __future__ import annotations

import numpy as np

from .._numba import jit
from ._timing_numba import peak_offset


@jit
def model_residual_kernel(spectra, template_spectra, positions, w1, out):  # pragma: no cover - compiled
    """``out[i] = spectra[i] - sum_k template_spectra[k] e^{-i w1 b positions[k, i]}`` over
    bins b, for the potentials present (finite position) in sweep i; the phase factors
    as powers of one ``e^{-i w1 p}`` (they drift by ~b ulp)."""
    n, n_bins = spectra.shape
    for i in range(n):
        for b in range(n_bins):
            out[i, b] = spectra[i, b]
        for k in range(template_spectra.shape[0]):
            p = positions[k, i]
            if not np.isfinite(p):
                continue
            z = complex(np.cos(w1 * p), -np.sin(w1 * p))
            factor = 1.0 + 0.0j
            for b in range(n_bins):
                out[i, b] -= template_spectra[k, b] * factor
                factor *= z
    return out


@jit
def window_energy_kernel(residual, positions, half, out):  # pragma: no cover - compiled
    """``out[k, i]``: sum of ``residual[i, c - half .. c + half]**2`` (columns clipped to
    the row) around ``c = round(positions[k, i])``; NaN where the position is NaN."""
    length = residual.shape[1]
    for k in range(positions.shape[0]):
        for i in range(positions.shape[1]):
            p = positions[k, i]
            if not np.isfinite(p):
                out[k, i] = np.nan
                continue
            c = int(np.round(p))
            total = 0.0
            for j in range(c - half, c + half + 1):
                v = residual[i, min(max(j, 0), length - 1)]
                total += v * v
            out[k, i] = total
    return out


@jit
def group_template_kernel(signal, centres, half, lags, template):  # pragma: no cover - compiled
    """The mean of a group's members aligned on their unaligned mean, into ``template``.

    Each member (centred on ``centres[i]``) is taken at the lag within ± ``lags``
    samples whose segment has the largest dot product with the members' mean at lag 0
    (first of equals); ``template`` is the mean of those segments.

    Parameters
    ----------
    signal : ndarray, shape (n_samples,)
    centres : ndarray of int, shape (n,)
        With ``centres - half - lags >= 0`` and ``centres + half + lags < n_samples``.
    half, lags : int
    template : ndarray, shape (2 * half + 1,)

    Returns
    -------
    float
        The median over the members of the Pearson correlation of their aligned segment
        with ``template`` (0 for a segment or template without variance).
    """
    n = centres.shape[0]
    size = 2 * half + 1
    first = np.zeros(size)
    for i in range(n):
        for s in range(size):
            first[s] += signal[centres[i] - half + s]
    first /= n
    best = np.empty(n, dtype=np.int64)
    for i in range(n):
        best_score = -np.inf
        for lag in range(-lags, lags + 1):
            score = 0.0
            for s in range(size):
                score += signal[centres[i] + lag - half + s] * first[s]
            if score > best_score:
                best_score = score
                best[i] = lag
    template[:] = 0.0
    for i in range(n):
        for s in range(size):
            template[s] += signal[centres[i] + best[i] - half + s]
    template /= n
    t_mean = template.mean()
    t_norm = 0.0
    for s in range(size):
        t_norm += (template[s] - t_mean) ** 2
    correlation = np.zeros(n)
    for i in range(n):
        start = centres[i] + best[i] - half
        mean = 0.0
        for s in range(size):
            mean += signal[start + s]
        mean /= size
        cross = 0.0
        norm = 0.0
        for s in range(size):
            d = signal[start + s] - mean
            cross += d * (template[s] - t_mean)
            norm += d * d
        if norm > 0.0 and t_norm > 0.0:
            correlation[i] = cross / np.sqrt(norm * t_norm)
    return np.median(correlation)


@jit
def _dot(left, start, background, m, phase, stride):  # pragma: no cover - compiled
    """``sum_s left[start + s] * background[m, phase, s]`` over every ``stride``-th s."""
    total = 0.0
    for s in range(0, background.shape[2], stride):
        total += left[start + s] * background[m, phase, s]
    return total


@jit
def _window_gain(left, centre, background, m, stride, lo, hi, scale):  # pragma: no cover - compiled
    """Energy that ``scale`` × background template m (phase 0, every ``stride``-th
    sample, centred on ``centre``) takes out of ``left`` within ``[lo, hi)``:
    ``sum (2 scale left b - scale^2 b^2)`` over its samples there."""
    half = background.shape[2] // 2
    start = max(lo - (centre - half), 0)
    start = (start + stride - 1) // stride * stride
    stop = min(hi - (centre - half), background.shape[2])
    cross = 0.0
    norm = 0.0
    for s in range(start, stop, stride):
        v = background[m, 0, s]
        cross += left[centre - half + s] * v
        norm += v * v
    return 2.0 * scale * cross - scale * scale * norm


@jit
def _best_background(left, lo, hi, background, energy, coarse_energy, stride, n_phases, min_scale, max_scale,
                     fitted):  # pragma: no cover - compiled
    """Fit the background template that takes most energy out of ``left`` around
    ``left[lo:hi]`` into ``fitted`` (zeros elsewhere); False if none fits.

    Coarse: each template's sub-sample phase 0, every ``stride``-th sample of it, at every
    ``stride``-th integer centre from which it overlaps ``left[lo:hi]``, with its
    least-squares scale over its whole length (kept when within [min_scale, max_scale]);
    the one that takes most energy out of ``left[lo:hi]`` wins (:func:`_window_gain`;
    first of equals, centres outer, templates inner): a bigger potential that only
    touches the window does not beat the one on the potential. Fine: that template,
    whole, at the centres within ``stride`` of it. The best centre is
    refined by a parabola through the explained energies ``dot^2``, rounded to the
    nearest phase, and that phase fitted there with its scale clipped to the range.
    """
    length = left.shape[0]
    size = background.shape[2]
    half = size // 2
    first = max(half, lo - half)
    last = min(length - half - 1, hi + half - 1)
    best_gain = -np.inf
    best_c = -1
    best_m = -1
    for c in range(first, last + 1, stride):
        for m in range(background.shape[0]):
            scale = _dot(left, c - half, background, m, 0, stride) / coarse_energy[m]
            if min_scale <= scale <= max_scale:
                gain = _window_gain(left, c, background, m, stride, lo, hi, scale)
                if gain > best_gain:
                    best_gain = gain
                    best_c = c
                    best_m = m
    if best_c < 0:
        return False
    coarse_c = best_c
    best_gain = -np.inf
    best_c = -1
    for c in range(max(first, coarse_c - stride + 1), min(last, coarse_c + stride - 1) + 1):
        scale = _dot(left, c - half, background, best_m, 0, 1) / energy[best_m]
        if min_scale <= scale <= max_scale:
            gain = _window_gain(left, c, background, best_m, 1, lo, hi, scale)
            if gain > best_gain:
                best_gain = gain
                best_c = c
    if best_c < 0:
        return False
    shift = 0.0
    if first < best_c < last:  # the explained energies dot^2 either side
        shift = peak_offset(_dot(left, best_c - 1 - half, background, best_m, 0, 1) ** 2,
                            _dot(left, best_c - half, background, best_m, 0, 1) ** 2,
                            _dot(left, best_c + 1 - half, background, best_m, 0, 1) ** 2)
    # best_c, or best_c - 1 when shifted left of it: inside [first, last], the template whole
    centre, phase = _split(int(round((best_c + shift) * n_phases)), n_phases)
    norm = 0.0
    for s in range(size):
        norm += background[best_m, phase, s] ** 2
    scale = min(max(_dot(left, centre - half, background, best_m, phase, 1) / norm, min_scale), max_scale)
    fitted[:] = 0.0
    for s in range(size):
        fitted[centre - half + s] = scale * background[best_m, phase, s]
    return True


@jit
def _split(quarters, n_phases):  # pragma: no cover - compiled
    """A position in 1/n_phases samples as (whole samples, phase): floor and remainder."""
    whole = quarters // n_phases
    return whole, quarters - whole * n_phases


@jit
def _shift_cost(data, fitted, phases, base, step, lo, hi, n_phases, free_scale, cost, scale,
                g):  # pragma: no cover - compiled
    """``cost[g]``: squared misfit over ``lo:hi`` of ``data - fitted`` and the potential
    at ``(base + step * n_phases) / n_phases`` samples, at unit scale or (``free_scale``)
    at its least-squares scale, stored in ``scale[g]``."""
    length = data.shape[0]
    whole, frac = _split(int(base + round(step * n_phases)), n_phases)
    if not free_scale:
        total = 0.0
        for t in range(lo, hi):
            d = data[t] - fitted[t] - phases[frac, (t - whole) % length]
            total += d * d
        cost[g] = total
        scale[g] = 1.0
        return
    rr = 0.0
    rp = 0.0
    pp = 0.0
    for t in range(lo, hi):
        r = data[t] - fitted[t]
        v = phases[frac, (t - whole) % length]
        rr += r * r
        rp += r * v
        pp += v * v
    scale[g] = rp / pp if pp > 0.0 else 0.0
    cost[g] = rr - scale[g] * rp


@jit
def _fit_beside(data, residual, start, phases, background, energy, coarse_energy, stride, fit_half, steps, n_rounds,
                min_scale, max_scale, free_scale, left, fitted, cost, scale):  # pragma: no cover - compiled
    """A potential's shift (and scale) with a background potential fitted beside it, in turn.

    ``n_rounds`` times: the background that takes most energy out of what the potential
    leaves in its fit window (first round: ``residual``; later rounds: ``data`` less the
    potential at the previous round's shift and scale; :func:`_best_background`), then
    the shift on the grid ``steps`` around ``start`` that fits ``data`` less that
    background best in the window, refined by a parabola; the potential at unit scale,
    or at its least-squares scale at each shift (``free_scale``).

    Parameters
    ----------
    data : ndarray, shape (L,)
        The sweep less the other potentials' model, V.
    residual : ndarray, shape (L,)
        ``data`` less the potential at ``start``, V.
    start : float
        The potential's position, samples.
    phases : ndarray, shape (P, L)
        Its template at sub-sample shifts 0, 1/P, ...; reference at 0, circular.
    background, energy, coarse_energy, stride, fit_half, steps, n_rounds, min_scale, max_scale
        As in :func:`retime_kernel`.
    free_scale : bool
    left, fitted : ndarray, shape (L,)
        Work arrays.
    cost, scale : ndarray, shape (len(steps),)
        Work arrays.

    Returns
    -------
    tau : float
        The fitted position, samples.
    misfit : float
        Squared misfit over the window at the best grid shift, V^2; inf where no
        background template fits.
    potential_scale : float
        The potential's scale there (1 unless ``free_scale``).
    """
    length = data.shape[0]
    n_phases = phases.shape[0]
    n_grid = steps.shape[0]
    centre = int(round(start))
    lo = max(centre - fit_half, 0)
    hi = min(centre + fit_half + 1, length)
    base = round(start * n_phases)
    left[:] = residual
    tau = start
    best = -1
    if n_rounds < 1:
        return start, np.inf, 0.0
    for round_ in range(n_rounds):
        if round_ > 0:  # what the potential at the previous round's shift leaves
            whole, frac = _split(int(base + round(steps[best] * n_phases)), n_phases)
            for t in range(length):
                left[t] = data[t] - scale[best] * phases[frac, (t - whole) % length]
        if not _best_background(left, lo, hi, background, energy, coarse_energy, stride, n_phases, min_scale,
                                max_scale, fitted):
            return start, np.inf, 0.0
        # whole-sample steps from the middle of the grid, then every step within one
        # sample of the best of them
        cost[:] = np.inf
        middle = n_grid // 2
        best = middle
        for g in range(middle % n_phases, n_grid, n_phases):
            _shift_cost(data, fitted, phases, base, steps[g], lo, hi, n_phases, free_scale, cost, scale, g)
            if cost[g] < cost[best]:
                best = g
        coarse = best
        for g in range(max(0, coarse - n_phases + 1), min(n_grid, coarse + n_phases)):
            if g != coarse:
                _shift_cost(data, fitted, phases, base, steps[g], lo, hi, n_phases, free_scale, cost, scale, g)
                if cost[g] < cost[best] or (cost[g] == cost[best] and g < best):
                    best = g
        tau = (base + round(steps[best] * n_phases)) / n_phases
        if 0 < best < n_grid - 1:  # the cost's minimum: the maximum of its negative
            tau += (steps[1] - steps[0]) * peak_offset(-cost[best - 1], -cost[best], -cost[best + 1])
    return tau, cost[best], scale[best]


@jit
def _energy_around(x, position, fit_half):  # pragma: no cover - compiled
    """Sum of squares of ``x`` over the fit window around ``position`` (samples):
    ``x[round(position) - fit_half : round(position) + fit_half + 1]``, clipped to ``x``."""
    centre = int(round(position))
    total = 0.0
    for t in range(max(centre - fit_half, 0), min(centre + fit_half + 1, x.shape[0])):
        total += x[t] * x[t]
    return total


@jit
def _less_potential(row, phases_k, position, out):  # pragma: no cover - compiled
    """``out``: ``row`` less the potential at unit scale at ``position`` samples (its
    template at sub-sample shifts ``phases_k``, shape (P, L); the position rounded to
    1/P sample)."""
    length = row.shape[0]
    whole, frac = _split(int(round(position * phases_k.shape[0])), phases_k.shape[0])
    for t in range(length):
        out[t] = row[t] - phases_k[frac, (t - whole) % length]


@jit
def _work_arrays(length, n_steps):  # pragma: no cover - compiled
    """The kernels' work arrays: ``left``, ``fitted``, ``assumed`` (length ``length``),
    ``cost``, ``scale`` (length ``n_steps``)."""
    return np.empty(length), np.empty(length), np.empty(length), np.empty(n_steps), np.empty(n_steps)


@jit
def retime_kernel(data, residual, starts, typical, potentials, phases, background, energy, coarse_energy, stride,
                  fit_half, steps, n_rounds, min_scale, max_scale, accept_fraction, better_fraction, lone_move,
                  out):  # pragma: no cover - compiled
    """Re-time each flagged discharge with a background potential fitted beside it.

    From the potential's fitted position, and again from where it typically lies in
    the discharge (the fitted position can be on the other unit's potential, farther
    from the fibre than the shifts tried): the second fit is taken when it leaves less
    than ``better_fraction`` of what the first left in its window (the first's misfit,
    or the residual energy there if that is smaller), is kept by the rule below and,
    where no background fitted at all beside the potential at its fitted position
    (misfit inf), moves it by more than ``lone_move`` from there.

    Parameters
    ----------
    data : ndarray, shape (n_items, L)
        Each flagged discharge's sweep less the other potentials' model, V.
    residual : ndarray, shape (n_items, L)
        Its sweep less every potential's model, V.
    starts : ndarray, shape (n_items,)
        The potential's fitted position, samples.
    typical : ndarray, shape (n_items,)
        Where it typically lies in that discharge, samples; NaN: not sought there.
    potentials : ndarray of int, shape (n_items,)
        Which potential (row of ``phases``).
    phases : ndarray, shape (K, P, L)
        Each potential's template at sub-sample shifts 0, 1/P, ...; reference at 0, circular.
    background : ndarray, shape (m, P, S)
        The background templates at the same sub-sample shifts, centred on sample S // 2.
    energy, coarse_energy : ndarray, shape (m,)
        Sum of squares of each background template's phase 0, and of every
        ``stride``-th sample of it.
    stride : int
        Step of the coarse search for the background, samples.
    fit_half : int
        Half-length of the fit window around the fitted position, samples.
    steps : ndarray, shape (G,)
        Shifts tried around the fitted position, samples (multiples of 1/P).
    n_rounds : int
        Rounds of background fit then shift fit (:func:`_fit_beside`).
    min_scale, max_scale, accept_fraction : float
        The background's scale range; the fraction of the window's residual energy
        (the data less the potential where the fit started) the final misfit must fall
        below.
    better_fraction : float
        The second fit's misfit must fall below this fraction of the first's (or of the
        first window's residual energy, if smaller).
    lone_move : float
        The least move of the second fit from the fitted position, samples, where no
        background fitted beside the first (misfit inf).
    out : ndarray, shape (n_items,)
        The new position, or NaN where the re-timing is not kept.
    """
    left, fitted, assumed, cost, scale = _work_arrays(data.shape[1], steps.shape[0])
    for item in range(data.shape[0]):
        k = potentials[item]
        before = _energy_around(residual[item], starts[item], fit_half)
        tau, misfit, _ = _fit_beside(data[item], residual[item], starts[item], phases[k], background, energy,
                                     coarse_energy, stride, fit_half, steps, n_rounds, min_scale, max_scale, False,
                                     left, fitted, cost, scale)
        out[item] = tau if misfit < accept_fraction * before else np.nan
        start = typical[item]
        if not np.isfinite(start):
            continue
        _less_potential(data[item], phases[k], start, assumed)
        before_there = _energy_around(assumed, start, fit_half)
        tau_there, misfit_there, _ = _fit_beside(data[item], assumed, start, phases[k], background, energy,
                                                 coarse_energy, stride, fit_half, steps, n_rounds, min_scale,
                                                 max_scale, False, left, fitted, cost, scale)
        if misfit_there < better_fraction * min(misfit, before) and misfit_there < accept_fraction * before_there \
                and (np.isfinite(misfit) or abs(tau_there - starts[item]) > lone_move):
            out[item] = tau_there
    return out


@jit
def find_kernel(data, starts, potentials, phases, background, energy, coarse_energy, stride, fit_half, steps,
                n_rounds, min_scale, max_scale, present_scale, misfit_fraction, out):  # pragma: no cover - compiled
    """Seek each blocked discharge's potential beside a background potential.

    A background potential and the potential at its least-squares scale are fitted in
    turn (:func:`_fit_beside`, from the potential's expected position and unit scale);
    the potential is present when that scale is within [``present_scale``,
    1 / ``present_scale``] (its own size, as a present potential keeps it) and the two
    leave at most ``misfit_fraction`` of the fitted potential's energy in its fit window
    unexplained (the shape fits, not only the size). (Its scale
    is free because the data are the sweep less the other potentials' *joint*
    templates, which hold part of a nearly rigid partner's waveform: where the partner
    is blocked, what is left there is its negative, scale < 0.)

    Parameters
    ----------
    data : ndarray, shape (n_items, L)
        Each discharge's sweep less the unit's model (the potential is absent from it), V.
    starts : ndarray, shape (n_items,)
        The potential's expected position, samples.
    potentials, phases, background, energy, coarse_energy, stride, fit_half, steps, n_rounds, min_scale, max_scale
        As in :func:`retime_kernel`.
    present_scale : float
        The least scale of a present potential; its reciprocal the largest.
    misfit_fraction : float
        The largest misfit of a present potential, in its fitted energy.
    out : ndarray, shape (n_items,)
        The potential's position where it is found, else NaN.
    """
    length = data.shape[1]
    n_phases = phases.shape[1]
    left, fitted, assumed, cost, scale = _work_arrays(length, steps.shape[0])
    for item in range(data.shape[0]):
        start = starts[item]
        k = potentials[item]
        _less_potential(data[item], phases[k], start, assumed)  # assumed present, at unit scale, to begin with
        tau, misfit, potential_scale = _fit_beside(data[item], assumed, start, phases[k], background, energy,
                                                   coarse_energy, stride, fit_half, steps, n_rounds, min_scale,
                                                   max_scale, True, left, fitted, cost, scale)
        centre = int(round(start))
        whole, frac = _split(int(round(tau * n_phases)), n_phases)
        own = 0.0
        for t in range(max(centre - fit_half, 0), min(centre + fit_half + 1, length)):
            own += phases[k, frac, (t - whole) % length] ** 2
        found = present_scale <= potential_scale <= 1.0 / present_scale \
            and misfit <= misfit_fraction * potential_scale ** 2 * own
        out[item] = tau if found else np.nan
    return out


@jit
def lost_kernel(data, starts, potentials, phases, background, energy, coarse_energy, stride, fit_half, min_scale,
                max_scale, present_scale, misfit_fraction, better_fraction, out):  # pragma: no cover - compiled
    """Whether a background potential alone explains each present discharge's potential.

    The background that takes most energy out of the potential's fit window of the data
    (:func:`_best_background`, the potential left out) is fitted; the potential is lost
    (another unit's potential stands in its place) when what that background leaves in
    the window is at most ``misfit_fraction`` of the potential's own energy there (at
    unit scale) and at most ``better_fraction`` of what the potential leaves at its
    least-squares scale in [``present_scale``, 1 / ``present_scale``]; False where no
    background fits.

    Parameters
    ----------
    data : ndarray, shape (n_items, L)
        Each discharge's sweep less the other potentials' model, V.
    starts : ndarray, shape (n_items,)
        The potential's position, samples.
    potentials, phases, background, energy, coarse_energy, stride, fit_half, min_scale, max_scale
        As in :func:`retime_kernel`.
    present_scale : float
        The least scale of a present potential; its reciprocal the largest.
    misfit_fraction : float
        The largest misfit of the background alone, in the potential's energy.
    better_fraction : float
        The largest misfit of the background alone, in the potential's misfit.
    out : ndarray of bool, shape (n_items,)
        True where the potential is lost.
    """
    length = data.shape[1]
    n_phases = phases.shape[1]
    fitted = np.empty(length)
    for item in range(data.shape[0]):
        k = potentials[item]
        centre = int(round(starts[item]))
        lo = max(centre - fit_half, 0)
        hi = min(centre + fit_half + 1, length)
        out[item] = False
        if not _best_background(data[item], lo, hi, background, energy, coarse_energy, stride, n_phases, min_scale,
                                max_scale, fitted):
            continue
        whole, frac = _split(int(round(starts[item] * n_phases)), n_phases)
        misfit = 0.0
        own = 0.0
        dd = 0.0
        dv = 0.0
        for t in range(lo, hi):
            v = phases[k, frac, (t - whole) % length]
            misfit += (data[item, t] - fitted[t]) ** 2
            own += v * v
            dd += data[item, t] ** 2
            dv += data[item, t] * v
        scale = min(max(dv / own, present_scale), 1.0 / present_scale) if own > 0.0 else 0.0
        present = dd - 2.0 * scale * dv + scale * scale * own
        out[item] = misfit <= misfit_fraction * own and misfit <= better_fraction * present
    return out
