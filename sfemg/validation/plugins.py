"""Plug-in interface: the algorithms a validation sweep scores.

Two kinds of plug-in, each a plain callable:

**Time-point estimator** (:class:`TimePointEstimator`) — the step that gives a potential
its time in each discharge. It is scored in isolation: the harness cuts one segment per
discharge around the *true* position of each potential (detection and blocking are taken
from the ground truth), the estimator returns a position per segment, and the IPIs they
give are scored against the truth. Technical jitter and bias against noise and sampling
rate are what this measures.

**Analyser** (:class:`Analyser`) — a whole pipeline: a recording in, its pairs out
(detection, time points, blocking and acceptance all included), scored exactly like a
foreign pipeline's JSON.

Both are named by a registered name or by ``"module:function"`` (``"module:Class.attr"``
works too); the module must be importable wherever the sweep runs (worker processes,
Dask workers). The built-ins are registered through the same registry:

=========================  ==========  =====================================================
name                       kind        what
=========================  ==========  =====================================================
``peak``                   time-point  parabolic peak (:func:`~sfemg.analysis.timing.peak_positions`)
``level``                  time-point  50 % level on the rising phase (interpolated)
``template``               time-point  Fourier template fit (maximum likelihood, noise-weighted)
``sfemg-template``         analyser    :func:`sfemg.analysis.analyze_recording`, template method
``sfemg-template-single``  analyser    the same without joint timing of overlapping potentials
``sfemg-peak``             analyser    the same, peak method
``sfemg-level``            analyser    the same, level method
=========================  ==========  =====================================================
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import inspect
import math
from typing import Protocol, runtime_checkable

import numpy as np

from .._units import to_samples
from ..errors import SfemgInputError

__all__ = ["TimePointEstimator", "Analyser", "TIME_POINT_ESTIMATORS", "ANALYSERS", "KINDS",
           "register_time_point_estimator", "register_analyser", "load_plugin", "method_analyser",
           "estimator_analyser", "peak_time_points", "level_time_points", "template_time_points",
           "BUILTIN_METHODS", "plugin_fingerprint"]

#: Method kinds, as written in method names ``"<kind>:<spec>"``.
KINDS = ("timepoint", "analyser")
#: Longest half-length of the segments given to a time-point estimator, µs (the
#: analysis' template-fit half window: the template method needs the whole potential —
#: ±300 µs segments tripled its error without noise). Shorter when the recording's
#: potentials are closer: at most half the smallest distance between two of them, as
#: the analysis does, so that a segment holds one potential.
SEGMENT_HALF_US = 600.0
#: Built-in peak and level estimators seek the peak within this distance of the segment's
#: centre (the analysis' own search range), µs; the segments are centred on the
#: potential's largest sample within this distance of its true main phase.
PEAK_SEARCH_US = 50.0
#: Level of the ``level`` estimator, fraction of the peak (the analysis' default).
LEVEL_FRACTION = 0.5
#: The main phase of a simulated potential peaks this long after the instant its action
#: potential passes the electrode (the ground-truth event time), µs: measured 220-360 µs
#: for SFE and concentric needles; the phases before (~60 µs) and after (~700 µs) are
#: outside. The estimator's segments are centred on the largest mean peak in this range.
MAIN_PHASE_AFTER_EVENT_US = (100.0, 500.0)
#: Peaks above this many noise SDs are kept out of the noise-spectrum estimate ...
_BUSY_THRESHOLD_SD = 4.0
#: ... found as local extremes within this half-width, µs (about a potential's phase).
_BUSY_HALF_WIDTH_US = 100.0


@runtime_checkable
class TimePointEstimator(Protocol):
    """Time of one potential in each discharge.

    Parameters
    ----------
    segments_v : ndarray, shape (n, L)
        One segment per discharge in which the potential fired, V, multiplied by the
        potential's polarity (main phase positive), the potential's peak near sample
        ``L // 2``. ``L`` spans up to ±600 µs (less when potentials are closer).
        Voluntary recordings: called for the trigger fibre's potential and for the
        timed fibre's; the IPIs are their differences. Stimulated recordings: called
        for the endplate's potential only (one per recording, ``L`` the full ±600 µs,
        segments starting 2 ms or more after the stimulus, its artefact decayed); the
        reference is the stimulus time itself, exact, so the latency's variation is
        all the estimator's and the physiology's.
    fs_hz : float
        Sampling rate, Hz.
    noise_power_v2 : ndarray, shape (L // 2 + 1,)
        Noise power per DFT bin of an untapered length-``L`` segment, V² (measured on
        potential-free stretches of the same recording); ignore it if not needed.

    Returns
    -------
    ndarray, shape (n,)
        Position of the potential's time point in each segment, samples from the
        segment's first sample (fractional). Any consistent reference point (peak,
        level crossing, ...) will do: only differences between discharges matter.
    """

    def __call__(self, segments_v: np.ndarray, fs_hz: float, noise_power_v2: np.ndarray) -> np.ndarray:
        ...


@runtime_checkable
class Analyser(Protocol):
    """A whole analysis pipeline: one recording in, its fibre pairs out.

    Parameters
    ----------
    recording : sfemg.recording.Recording
        Continuous or sweeps; voluntary (``recording.mode == "voluntary"``: one fibre
        pair) or stimulated (``"stimulated"``: one endplate, ``stimulus_times_s`` set;
        sweeps start 2 ms before each stimulus; a decaying stimulus artefact at each
        stimulus unless the cell turns it off).

    Returns
    -------
    list
        One item per pair (stimulated: per endplate) found, each a mapping or an object
        with (at least) ``mean_ipi_us`` (used to match the pair to a true one; the mean
        latency from the stimulus to the potential's time point when stimulated) and
        ``mcd_us``; optionally
        ``msd_us``, ``jitter_us``, ``mcd_msd_ratio``, ``blocking_percent``,
        ``technical_jitter_us``, ``accepted`` — the ``--json`` pair fields (docs/hdf5.md), so
        :class:`~sfemg.analysis.PairResult` qualifies. Raise
        :class:`~sfemg.errors.SfemgInputError` if nothing can be analysed (every true
        pair then counts as missed; the sweep counts such recordings and says so).
    """

    def __call__(self, recording) -> list:
        ...


def _peak_search(fs_hz):
    """:data:`PEAK_SEARCH_US` in whole samples (at least 1)."""
    return to_samples(PEAK_SEARCH_US * 1e-6, fs_hz, minimum=1)


def peak_time_points(segments_v, fs_hz, noise_power_v2):
    """Built-in ``peak`` estimator: parabolic-interpolated maximum near the centre."""
    from ..analysis.timing import peak_positions
    return peak_positions(segments_v, _peak_search(fs_hz))[0]


def level_time_points(segments_v, fs_hz, noise_power_v2):
    """Built-in ``level`` estimator: where the rising phase crosses 50 % of the peak."""
    from ..analysis.timing import level_positions
    return level_positions(segments_v, LEVEL_FRACTION, _peak_search(fs_hz))


def template_time_points(segments_v, fs_hz, noise_power_v2):
    """Built-in ``template`` estimator: noise-weighted Fourier template fit."""
    from ..analysis.timing import fit_template
    return fit_template(segments_v, noise_power_v2).positions


def _sfemg_analyser(method, joint_timing=True):
    def analyse(recording):
        from ..analysis import AnalysisParams, analyze_recording
        params = AnalysisParams(method=method, joint_timing=joint_timing, muscle=recording.muscle)
        return list(analyze_recording(recording, params).pairs)  # (for the recording's electrode)
    variant = "" if joint_timing else ", each potential timed on its own segment (no joint timing)"
    analyse.__name__ = analyse.__qualname__ = f"sfemg_{method}_analyser"
    analyse.__doc__ = f"Built-in analyser: the sfemg analysis, {method} time points{variant}."
    return analyse


#: Registered time-point estimators, by name.
TIME_POINT_ESTIMATORS = {}
#: Registered analysers, by name.
ANALYSERS = {}


def register_time_point_estimator(name: str, estimator) -> None:
    """Make ``estimator`` (a :class:`TimePointEstimator`) available as ``name``."""
    _register(TIME_POINT_ESTIMATORS, name, estimator)


def register_analyser(name: str, analyser) -> None:
    """Make ``analyser`` (an :class:`Analyser`) available as ``name``."""
    _register(ANALYSERS, name, analyser)


def _register(registry, name, fn):
    if not isinstance(name, str) or not name or ":" in name:
        raise SfemgInputError(f"plug-in name must be a non-empty string without ':', got {name!r}")
    if not callable(fn):
        raise SfemgInputError(f"plug-in {name!r} is not callable")
    kind = "timepoint" if registry is TIME_POINT_ESTIMATORS else "analyser"
    if f"{kind}:{name}" in BUILTIN_METHODS:  # (its scores were filed under sfemg's method)
        raise SfemgInputError(f"{name!r} is sfemg's own {kind}: register yours under another name")
    registry[name] = fn


TIME_POINT_ESTIMATORS.update(peak=peak_time_points, level=level_time_points, template=template_time_points)
ANALYSERS.update({f"sfemg-{method}": _sfemg_analyser(method) for method in ("template", "peak", "level")})
ANALYSERS["sfemg-template-single"] = _sfemg_analyser("template", joint_timing=False)
#: The methods sfemg itself provides; every other one is the user's code (its failures are
#: reported as the plug-in's, with where they happened).
BUILTIN_METHODS = frozenset([f"timepoint:{name}" for name in TIME_POINT_ESTIMATORS]
                            + [f"analyser:{name}" for name in ANALYSERS])


def plugin_fingerprint(method: str) -> str:
    """What a user's method is: ``module:qualname`` and a hash of its code.

    Stored with a sweep, so that a sweep resumed on other code is refused rather than
    mixing two versions' scores under one method name. The hash covers the code of the
    plug-in's module as parsed (so not its comments, docstrings or layout: a comment added
    to a driver script blocked a resume when the source text was hashed; any other change to
    that module, the driver script's when the plug-in is defined there, does), or the
    compiled code where there is no source; and the values the callable carries: a
    ``functools.partial``'s arguments, a closure's values, a callable object's
    attributes. Not code it imports from other modules, nor state it reads at run time.
    """
    kind, _, spec = method.partition(":")
    fn = load_plugin(spec, kind)
    digest = hashlib.sha256()
    target = _carried(fn, digest)
    module = inspect.getmodule(target)
    try:
        digest.update(ast.dump(_without_docstrings(ast.parse(inspect.getsource(module)))).encode())
    except (OSError, TypeError, SyntaxError):  # (defined interactively, or compiled: its code)
        code = getattr(target, "__code__", None)
        digest.update(_code_text(code).encode() if code is not None else type(target).__qualname__.encode())
    name = getattr(target, "__qualname__", type(target).__qualname__)
    return f"{getattr(target, '__module__', None) or '?'}:{name} ({digest.hexdigest()[:12]})"


def _without_docstrings(tree):
    """``tree`` with the docstrings of its module, classes and functions taken out (words,
    not code: a docstring edited refused a resume)."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree


def _carried(fn, digest):
    """Add the values ``fn`` carries to ``digest``; return the function or class whose
    module holds its code."""
    if isinstance(fn, functools.partial):
        digest.update(_stable_repr((fn.args, sorted(fn.keywords.items()))).encode())
        return _carried(fn.func, digest)
    if inspect.ismethod(fn):  # (a bound method: its object's attributes, and its function)
        digest.update(_stable_repr(getattr(fn.__self__, "__dict__", {})).encode())
        return _carried(fn.__func__, digest)
    fn = inspect.unwrap(getattr(fn, "py_func", fn))  # (numba's Python function; under decorators)
    if inspect.isfunction(fn):
        digest.update(_stable_repr((fn.__defaults__, fn.__kwdefaults__)).encode())
        for cell in fn.__closure__ or ():
            try:
                digest.update(_stable_repr(cell.cell_contents).encode())
            except ValueError:  # (a cell not yet filled)
                digest.update(b"<empty>")
        return fn
    digest.update(_stable_repr(getattr(fn, "__dict__", {})).encode())  # (a callable object)
    return type(fn)


def _code_text(code):
    """A compiled function's code and constants, nested code included, as text."""
    parts = [code.co_code.hex(), repr(code.co_names)]
    parts += [_code_text(c) if inspect.iscode(c) else _stable_repr(c) for c in code.co_consts]
    return "|".join(parts)


def _stable_repr(value):
    """``value`` as text that is the same from run to run: numbers, text and containers
    of them as such, a function by its qualified name; otherwise only its type (an
    object's repr may hold its address)."""
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        return repr(value)
    if isinstance(value, np.generic):
        return f"{type(value).__name__}({value.item()!r})"
    if isinstance(value, (tuple, list)):
        return f"{type(value).__name__}({', '.join(_stable_repr(v) for v in value)})"
    if isinstance(value, (set, frozenset)):
        return f"{type(value).__name__}({', '.join(sorted(_stable_repr(v) for v in value))})"
    if isinstance(value, dict):
        return f"dict({', '.join(f'{_stable_repr(k)}: {_stable_repr(v)}' for k, v in value.items())})"
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:  # (its bytes are the elements' addresses)
            return f"ndarray(object, {_stable_repr(value.tolist())})"
        return f"ndarray({value.dtype}, {value.shape}, {hashlib.sha256(value.tobytes()).hexdigest()[:12]})"
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '?')}.{value.__qualname__}"
    return type(value).__qualname__


def load_plugin(spec: str, kind: str):
    """The callable a plug-in spec names.

    Parameters
    ----------
    spec : str
        A registered name or ``"module:function"``.
    kind : {"timepoint", "analyser"}

    Returns
    -------
    callable

    Raises
    ------
    SfemgInputError
        Unknown name, module that cannot be imported, missing or non-callable attribute.
    """
    if kind not in KINDS:
        raise SfemgInputError(f"plug-in kind must be one of {KINDS}, got {kind!r}")
    registry = TIME_POINT_ESTIMATORS if kind == "timepoint" else ANALYSERS
    if spec in registry:
        return registry[spec]
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise SfemgInputError(f"unknown {kind} {spec!r}: use one of {', '.join(registry)} or 'module:function' "
                              "(a name registered in another process, the client of a Dask worker say, is "
                              "not known here)")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as exc:
        raise SfemgInputError(f"plug-in {spec!r}: cannot import {module_name!r} ({exc}); install it, or put "
                              "the folder that holds it on PYTHONPATH (PYTHONPATH=. sfemg validate ...)") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SfemgInputError(f"plug-in {spec!r}: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise SfemgInputError(f"plug-in {spec!r} is not callable")
    return obj


def method_analyser(method: str):
    """The analyser a method name ``"<kind>:<spec>"`` stands for.

    Time-point estimators are wrapped by :func:`estimator_analyser`.
    """
    kind, _, spec = method.partition(":")
    if kind not in KINDS or not spec:
        raise SfemgInputError(f"method must be 'timepoint:<spec>' or 'analyser:<spec>', got {method!r}")
    fn = load_plugin(spec, kind)
    return estimator_analyser(fn) if kind == "timepoint" else fn


def _rows(recording):
    """The recording as rows of samples and each row's start time: (data (n_rows, n), start_s (n_rows,))."""
    if recording.is_sweeps:
        return recording.sweeps_v, recording.sweep_start_times_s
    return recording.signal_v[None, :], np.zeros(1)


def _locate(recording, event_times_s, discharges):
    """Row and (rounded) sample index of the given discharges' events, shape (n,) each."""
    data, start = _rows(recording)
    rows = np.zeros(discharges.size, dtype=np.int64) if data.shape[0] == 1 else discharges  # sweep k: discharge k
    return rows, np.round((event_times_s[discharges] - start[rows]) * recording.fs_hz).astype(np.int64)


def _segments(data, rows, centres, half):
    """Segments ``data[row, centre-half : centre+half+1]``, zero-padded at the edges."""
    padded = np.pad(data, ((0, 0), (half, half)))
    return padded[rows[:, None], centres[:, None] + np.arange(2 * half + 1)[None, :]]


def _noise_power(data, fs_hz, length):
    """Noise power per DFT bin of a length-``length`` segment, V², away from every peak."""
    from ..analysis.detect import detect_both_polarities, estimate_noise_sd, estimate_noise_spectrum
    from ..analysis.timing import fit_taper
    half_width = to_samples(_BUSY_HALF_WIDTH_US * 1e-6, fs_hz, minimum=1)
    busy_rows, busy_cols = detect_both_polarities(data, _BUSY_THRESHOLD_SD * estimate_noise_sd(data), half_width)
    return estimate_noise_spectrum(data, busy_rows, busy_cols, length, length // 2, fit_taper(length))[0]


def _time_fibre(estimator, recording, event_times_s, half, noise_power):
    """Estimated times of one fibre's potentials, s, shape (n_discharges,); NaN where blocked."""
    data, start = _rows(recording)
    fs = recording.fs_hz
    fired = np.flatnonzero(np.isfinite(event_times_s))
    times = np.full(event_times_s.size, np.nan)
    if fired.size < 2:
        return times
    rows, idx = _locate(recording, event_times_s, fired)
    lo, hi = (to_samples(t * 1e-6, fs) for t in MAIN_PHASE_AFTER_EVENT_US)
    mean = _segments(data, rows, idx + (lo + hi) // 2, (hi - lo) // 2).mean(axis=0)
    peak = int(np.argmax(np.abs(mean)))
    polarity = 1.0 if mean[peak] >= 0 else -1.0
    # each segment centred on the potential's coarse peak: its largest sample within
    # PEAK_SEARCH_US of where the truth puts its main phase (centred on the truth itself,
    # a segment gave it away to the sample: returning the centre beat the template fit)
    truth = idx + (lo + hi) // 2 - (hi - lo) // 2 + peak
    search = _peak_search(fs)
    centres = truth - search + np.argmax(polarity * _segments(data, rows, truth, search), axis=1)
    segs = polarity * _segments(data, rows, centres, half)
    pos = np.asarray(estimator(segs, fs, noise_power), dtype=np.float64)
    if pos.shape != (fired.size,):
        raise ValueError(f"time-point estimator returned shape {pos.shape}, expected ({fired.size},)")
    if np.isinf(pos).any():  # (the IPIs' statistics refused them, and the recording was counted as missed)
        raise ValueError(f"time-point estimator returned {int(np.isinf(pos).sum())} infinite position(s) "
                         "(NaN marks a discharge it finds blocked)")
    times[fired] = start[rows] + (centres - half + pos) / fs
    return times


def estimator_analyser(estimator):
    """An :class:`Analyser` that times the true potentials with ``estimator``.

    Every fibre's potential is cut out around its true position in each discharge where
    it fired (ground truth: detection, matching and blocking are perfect), timed by the
    estimator, and the pair's MCD, MSD and reported jitter computed from the resulting
    intervals, as the analysis does. Voluntary: IPIs against the estimated trigger
    times, MSD sorted by the IDIs of the estimated trigger times. Stimulated: latencies
    from the stimulus (the reference is the stimulus itself, exact; the estimator is
    given the endplate's potential only), MSD NaN and the reported jitter the MCD.
    Its ``technical_jitter_us`` is *measured*: the MCD of the interval errors
    (estimated − true IPI or latency, discharge by discharge), i.e. the jitter the time
    points add.

    An estimator's positions have an arbitrary origin (only differences between
    discharges matter); it cancels in an IPI but not in a latency, so a stimulated
    endplate's ``mean_ipi_us`` is its true mean latency (over the discharges where it
    fired): detection is the oracle's anyway.

    Parameters
    ----------
    estimator : TimePointEstimator

    Returns
    -------
    Analyser
        Needs recordings with ground truth (voluntary or stimulated).
    """
    def analyse(recording):
        from ..analysis.jitter import compute_mcd, compute_msd, reported_jitter
        gt = recording.ground_truth
        if gt is None:
            raise SfemgInputError(f"{recording.name}: a time-point estimator is scored on recordings "
                                  "with ground truth")
        stimulated = gt.trigger_fibre < 0
        base = gt.discharge_times_s if stimulated else gt.event_times_s[gt.trigger_fibre]
        seen = [d[np.isfinite(d)] for d in gt.event_times_s - base]  # (a fibre that never fired: none)
        offsets = np.sort([d.mean() for d in seen if d.size])
        half_s = min(SEGMENT_HALF_US * 1e-6, 0.5 * np.nanmin(np.diff(offsets), initial=np.inf))
        half = to_samples(half_s, recording.fs_hz, minimum=2)
        data, _ = _rows(recording)
        noise_power = _noise_power(data, recording.fs_hz, 2 * half + 1)
        if stimulated:
            reference = gt.discharge_times_s  # the stimulus times
        else:
            reference = _time_fibre(estimator, recording, gt.event_times_s[gt.trigger_fibre], half, noise_power)
            idis = np.concatenate([[np.nan], np.diff(reference)])
        pairs = []
        for f in range(gt.n_fibres):
            if f == gt.trigger_fibre or not seen[f].size:  # (never with its reference: no pair to find)
                continue
            ipis = _time_fibre(estimator, recording, gt.event_times_s[f], half, noise_power) - reference
            true_ipis = gt.event_times_s[f] - base
            blocked = ~np.isfinite(ipis)
            mcd = compute_mcd(ipis)
            msd = math.nan if stimulated else compute_msd(ipis, idis)
            jitter, ratio = reported_jitter(mcd, msd)
            if (~blocked).any():
                mean_ipi_us = float(np.mean(true_ipis[~blocked]) if stimulated else np.nanmean(ipis)) * 1e6
            else:  # not a single time point: the pair the oracle detected, blocked throughout (found by
                # a developer's review: its NaN mean IPI matched nothing, a false and a missed pair)
                mean_ipi_us = float(seen[f].mean()) * 1e6
            pairs.append({"mean_ipi_us": mean_ipi_us,
                          "mcd_us": mcd * 1e6, "msd_us": msd * 1e6,
                          "mcd_msd_ratio": ratio, "jitter_us": jitter * 1e6,
                          "blocking_percent": 100.0 * blocked.mean(), "accepted": True,
                          "technical_jitter_us": compute_mcd(ipis - true_ipis) * 1e6,
                          "blocked": blocked, "reference_times_s": reference})
        return pairs

    analyse.__name__ = f"estimator_analyser({getattr(estimator, '__name__', 'estimator')})"
    return analyse
