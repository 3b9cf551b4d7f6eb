"""Read and write recordings (with ground truth, parameters and provenance) in HDF5.

h5py objects never leave this package: callers get :class:`~sfemg.recording.Recording`
objects and plain dicts.
"""

from __future__ import annotations

import contextlib
import json

import h5py
import numpy as np

from ..errors import SfemgInputError
from ..recording import GroundTruth, Recording
from . import _json
from . import schema as S
from ._atomic import atomic_h5
from ._h5 import mark, text
from ._h5 import open_hdf5 as _open

__all__ = ["save_recordings", "open_study_writer", "StudyWriter", "load_recordings", "iter_recordings",
           "list_recordings", "has_recordings", "load_parameters", "load_provenance"]

_GT_ARRAYS = {
    "discharge_times_s": S.GT_DISCHARGE_TIMES,
    "event_times_s": S.GT_EVENT_TIMES,
    "endplate_latency_s": S.GT_LATENCIES,
    "blocked": S.GT_BLOCKED,
    "epp_amplitude_v": S.GT_EPP_AMPLITUDE,
    "threshold_v": S.GT_THRESHOLD,
    "safety_factor": S.GT_SAFETY_FACTOR,
    "quantal_content": S.GT_QUANTAL_CONTENT,
}


def _mark(group, encoding_type):
    mark(group, encoding_type, S.GROUP_VERSION)


class StudyWriter:
    """Adds recordings to a study file being written (see :func:`open_study_writer`).

    Whole recordings go in with :meth:`add`; a long continuous signal can instead be
    streamed: :meth:`begin_signal`, then :meth:`write_chunk` in any order, then
    :meth:`add_ground_truth`. Methods may be called from several threads (h5py
    serialises access to the library), each thread writing its own recordings.
    """

    def __init__(self, group):
        self._group = group

    def _create(self, name, *, mode, electrode, muscle, stimulus_times_s):
        g = self._group.create_group(name)
        _mark(g, S.RECORDING_TYPE)
        g.attrs[S.MODE_ATTR] = mode
        if electrode is not None:
            g.attrs[S.ELECTRODE_ATTR] = electrode
        if muscle is not None:
            g.attrs[S.MUSCLE_ATTR] = muscle
        if stimulus_times_s is not None:
            g.create_dataset(S.STIMULUS_TIMES, data=stimulus_times_s)
        return g

    @staticmethod
    def _describe(dataset, fs_hz):
        dataset.attrs[S.SAMPLING_RATE_ATTR] = fs_hz
        dataset.attrs["units"] = "V"

    def add(self, rec: Recording):
        """Write a whole recording (signal or sweeps, stimuli, ground truth)."""
        g = self._create(rec.name, mode=rec.mode, electrode=rec.electrode, muscle=rec.muscle,
                         stimulus_times_s=rec.stimulus_times_s)
        if rec.signal_v is not None:
            d = g.create_dataset(S.SIGNAL, data=rec.signal_v.astype(np.float32))
        else:
            d = g.create_dataset(S.SWEEPS, data=rec.sweeps_v.astype(np.float32))
            g.create_dataset(S.SWEEP_START_TIMES, data=rec.sweep_start_times_s)
        self._describe(d, rec.fs_hz)
        if rec.ground_truth is not None:
            self.add_ground_truth(rec.name, rec.ground_truth)

    def begin_signal(self, name, fs_hz, n_samples, *, mode, electrode=None, muscle=None,
                     stimulus_times_s=None, chunk_samples=1 << 18):
        """Create a recording whose continuous signal of ``n_samples`` will be streamed."""
        g = self._create(name, mode=mode, electrode=electrode, muscle=muscle,
                         stimulus_times_s=stimulus_times_s)
        d = g.create_dataset(S.SIGNAL, shape=(int(n_samples),), dtype=np.float32,
                             chunks=(min(int(chunk_samples), int(n_samples)),))
        self._describe(d, float(fs_hz))

    def write_chunk(self, name, first_sample, chunk_v):
        """Store ``chunk_v`` (V) at ``first_sample`` of recording ``name``'s signal."""
        self._group[name][S.SIGNAL][first_sample:first_sample + len(chunk_v)] = chunk_v.astype(np.float32)

    def add_ground_truth(self, name, gt: GroundTruth):
        """Store a synthetic recording's ground truth."""
        t = self._group[name].create_group(S.GROUND_TRUTH)
        _mark(t, S.GROUND_TRUTH_TYPE)
        t.attrs[S.GT_TRIGGER_FIBRE_ATTR] = int(gt.trigger_fibre)
        for attr, key in _GT_ARRAYS.items():
            t.create_dataset(key, data=getattr(gt, attr))
        f = t.create_group(S.GT_FIBRE_PROPERTIES)
        _mark(f, S.FIBRE_PROPERTIES_TYPE)
        for key, value in gt.fibres.items():
            f.create_dataset(key, data=np.asarray(value))


@contextlib.contextmanager
def open_study_writer(path, *, parameters=None, provenance=None, force=False, expected_bytes=0):
    """Write a new study file atomically, recording by recording.

    Parameters
    ----------
    path : str or os.PathLike
        Output file; refused if it exists unless ``force``. Nothing appears at ``path``
        until the block ends without an exception.
    parameters : dict, optional
        The complete parameter set (JSON-serialisable), stored in ``/parameters``.
    provenance : dict, optional
        Package version, seed, command, ...: stored as attributes of ``/provenance``.
    force : bool
        Replace an existing file.
    expected_bytes : float
        About how large the file will be: refused at once if its disk has not that much
        free.

    Yields
    ------
    StudyWriter
    """
    with atomic_h5(path, mode="w", force=force, expected_bytes=expected_bytes) as h5:
        h5.attrs[S.ROOT_SCHEMA_VERSION_ATTR] = S.SCHEMA_VERSION
        _mark(h5, S.FILE_TYPE)
        grp = h5.create_group(S.RECORDINGS)
        _mark(grp, S.RECORDINGS_TYPE)
        if parameters is not None:
            p = h5.create_group(S.PARAMETERS)
            _mark(p, S.PARAMETERS_TYPE)
            p.attrs[S.PARAMETERS_JSON_ATTR] = json.dumps(parameters, sort_keys=True)
        if provenance is not None:
            p = h5.create_group(S.PROVENANCE)
            _mark(p, S.PROVENANCE_TYPE)
            for key, value in provenance.items():
                p.attrs[key] = value
        yield StudyWriter(grp)


def save_recordings(path, recordings, *, parameters=None, provenance=None, force=False):
    """Write recordings to a new HDF5 file, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Output file; refused if it exists unless ``force``.
    recordings : sequence of Recording
        Written under ``/recordings/<name>``.
    parameters, provenance, force
        As for :func:`open_study_writer`.
    """
    names = [r.name for r in recordings]
    if len(set(names)) != len(names):
        raise SfemgInputError("recording names must be unique")
    with open_study_writer(path, parameters=parameters, provenance=provenance, force=force) as writer:
        for rec in recordings:
            writer.add(rec)


def _read_signal(path, name, ds, group):
    """Read a signal or sweeps dataset as volts, applying an ADC scale if needed (an
    attribute of the dataset or, like ``sampling_rate_hz``, of its recording ``group``)."""
    try:
        data = ds[()]
    except OSError:
        raise SfemgInputError(f"{path}: recording {name!r}: data cannot be read (truncated file?)") from None
    if np.ndim(data) == 0 and np.asarray(data).dtype.kind in "fiu":
        raise SfemgInputError(f"{path}: recording {name!r}: {ds.name} is a single number, not samples")
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "fiu":
        raise SfemgInputError(f"{path}: recording {name!r}: {ds.name} is not numeric")
    if data.dtype.kind in "iu":
        scale = next((where.attrs[key] for where in (ds, group) for key in ("scale_v_per_count", "scale")
                      if key in where.attrs), None)
        if scale is None:
            raise SfemgInputError(
                f"{path}: recording {name!r}: integer ADC data without a 'scale_v_per_count' attribute")
        try:
            scale = float(np.asarray(scale).reshape(()))
        except (TypeError, ValueError):
            raise SfemgInputError(f"{path}: recording {name!r}: 'scale_v_per_count' is not a number") from None
        if not (np.isfinite(scale) and scale != 0):
            raise SfemgInputError(f"{path}: recording {name!r}: 'scale_v_per_count' is {scale!r}")
        data = data.astype(np.float64) * scale
    return data


def _read_ground_truth(path, name, t):
    """A recording's ground truth, checked for completeness and consistent shapes."""
    where = f"{path}: recording {name!r}: ground truth"
    missing = [key for key in _GT_ARRAYS.values() if not isinstance(t.get(key), h5py.Dataset)]
    if missing:
        raise SfemgInputError(f"{where} incomplete (missing {', '.join(missing)})")
    arrays = {attr: np.asarray(t[key][()]) for attr, key in _GT_ARRAYS.items()}
    shape = arrays["event_times_s"].shape
    bad = [key for attr, key in _GT_ARRAYS.items()
           if attr != "discharge_times_s" and arrays[attr].shape != shape]
    if len(shape) != 2 or bad or arrays["discharge_times_s"].shape != shape[1:]:
        raise SfemgInputError(f"{where} has inconsistent shapes ({', '.join(bad) or 'discharge_times_s'})")
    props = t.get(S.GT_FIBRE_PROPERTIES)
    fibres = {k: props[k][()] for k in props} if isinstance(props, h5py.Group) else {}
    return GroundTruth(**arrays, trigger_fibre=int(t.attrs.get(S.GT_TRIGGER_FIBRE_ATTR, 0)), fibres=fibres)


def _read_recording(path, name, g, *, with_ground_truth):
    if not isinstance(g, h5py.Group):
        raise SfemgInputError(f"{path}: /{S.RECORDINGS}/{name} is not a group")
    if S.SIGNAL in g:
        ds = g[S.SIGNAL]
        kind = "signal"
    elif S.SWEEPS in g:
        ds = g[S.SWEEPS]
        kind = "sweeps"
    else:
        raise SfemgInputError(f"{path}: recording {name!r} has no '{S.SIGNAL}' or '{S.SWEEPS}' dataset")
    if not isinstance(ds, h5py.Dataset):
        raise SfemgInputError(f"{path}: recording {name!r}: {kind} is not a dataset")
    stated = [where.attrs[S.SAMPLING_RATE_ATTR] for where in (ds, g) if S.SAMPLING_RATE_ATTR in where.attrs]
    if not stated:
        hint = " (found as a dataset: store it as an attribute)" if S.SAMPLING_RATE_ATTR in g else ""
        raise SfemgInputError(f"{path}: recording {name!r}: missing attribute '{S.SAMPLING_RATE_ATTR}'{hint}")
    try:
        rates = [float(np.asarray(value).reshape(())) for value in stated]
    except (TypeError, ValueError):
        raise SfemgInputError(f"{path}: recording {name!r}: '{S.SAMPLING_RATE_ATTR}' is not a number") from None
    if len(rates) > 1 and not np.isclose(rates[0], rates[1], rtol=1e-6, atol=0.0):  # (float32 beside float64)
        raise SfemgInputError(f"{path}: recording {name!r}: '{S.SAMPLING_RATE_ATTR}' is {rates[0]:.10g} on the "
                              f"{kind} and {rates[1]:.10g} on its group; keep the right one")
    fs = rates[0]
    data = _read_signal(path, name, ds, g)

    def opt(key):
        if key not in g:
            return None
        if not isinstance(g[key], h5py.Dataset):
            raise SfemgInputError(f"{path}: recording {name!r}: {key} is not a dataset")
        return g[key][()]

    def attr(key):
        v = g.attrs.get(key)
        return text(v) if v is not None else None

    gt = _read_ground_truth(path, name, g[S.GROUND_TRUTH]) \
        if with_ground_truth and S.GROUND_TRUTH in g else None
    kwargs = dict(name=name, fs_hz=fs, stimulus_times_s=opt(S.STIMULUS_TIMES),
                  mode=attr(S.MODE_ATTR), electrode=attr(S.ELECTRODE_ATTR),
                  muscle=attr(S.MUSCLE_ATTR), ground_truth=gt)
    if kind == "signal":
        kwargs["signal_v"] = data
    else:
        kwargs["sweeps_v"] = data
        kwargs["sweep_start_times_s"] = opt(S.SWEEP_START_TIMES)
    return Recording(**kwargs)


def has_recordings(path) -> bool:
    """True if ``path`` is an HDF5 file with a non-empty ``/recordings`` group."""
    with _open(path) as h5:
        try:
            grp = h5.get(S.RECORDINGS)
        except (KeyError, OSError, RuntimeError):  # a dangling or looping link: none to read
            return False
        return isinstance(grp, h5py.Group) and len(grp) > 0


def list_recordings(path):
    """Names of the recordings in ``path``, in file order.

    Raises
    ------
    SfemgInputError
        If the file is missing, not HDF5, or has no ``/recordings`` group.
    """
    with _open(path) as h5:
        try:
            group = h5[S.RECORDINGS] if S.RECORDINGS in h5 else None
        except (KeyError, OSError, RuntimeError) as exc:  # a dangling or looping link
            raise SfemgInputError(f"{path}: '/{S.RECORDINGS}' cannot be opened ({exc})") from None
        if not isinstance(group, h5py.Group):
            raise SfemgInputError(f"{path}: no '/{S.RECORDINGS}' group (not a recording file; docs/hdf5.md: "
                                  f"/{S.RECORDINGS}/<name>/{S.SIGNAL} with a '{S.SAMPLING_RATE_ATTR}' attribute)")
        names = list(group.keys())
    if not names:
        raise SfemgInputError(f"{path}: '/{S.RECORDINGS}' holds no recordings")
    return names


def iter_recordings(path, names=None, *, with_ground_truth=True):
    """Read recordings one at a time, each as it is needed (the file stays open meanwhile).

    Parameters
    ----------
    path : str or os.PathLike
    names : sequence of str, optional
        Only these recordings (default: all, in file order).
    with_ground_truth : bool
        Also read ground truth where present.

    Yields
    ------
    name : str
    recording : Recording or SfemgInputError
        The recording, or the one-line reason it cannot be read.

    Raises
    ------
    SfemgInputError
        If the file is missing, not HDF5, or has no ``/recordings`` group: when the
        iteration starts (a generator runs nothing before); check with
        :func:`list_recordings` first to fail at once.
    """
    names = list_recordings(path) if names is None else list(names)
    with _open(path) as h5:
        grp = h5[S.RECORDINGS]
        for name in names:
            try:
                if name not in grp:
                    raise SfemgInputError(f"{path}: no recording named {name!r}")
                rec = _read_recording(path, name, grp[name], with_ground_truth=with_ground_truth)
            except SfemgInputError as exc:
                rec = exc
            except (KeyError, OSError, RuntimeError, UnicodeDecodeError) as exc:  # what h5py raises for a
                # damaged group (a dangling or looping link, unreadable data, text that is not
                # UTF-8): that recording only
                rec = SfemgInputError(f"{path}: recording {name!r} cannot be read "
                                      f"({exc.__class__.__name__}: {exc})")
            yield name, rec


def load_recordings(path, names=None, *, with_ground_truth=True, errors="raise"):
    """Read recordings from an HDF5 file (sfemg's own or any file following docs/hdf5.md).

    Parameters
    ----------
    path, names, with_ground_truth
        As for :func:`iter_recordings`.
    errors : {"raise", "collect"}
        With ``"collect"``, unreadable recordings are skipped and returned as messages.

    Returns
    -------
    list of Recording
        With ``errors="collect"``: a tuple ``(recordings, problems)`` where ``problems``
        maps recording name to a one-line message.
    """
    if errors not in ("raise", "collect"):
        raise ValueError(f"errors must be 'raise' or 'collect', not {errors!r}")
    recs, problems = [], {}
    for name, rec in iter_recordings(path, names, with_ground_truth=with_ground_truth):
        if not isinstance(rec, SfemgInputError):
            recs.append(rec)
        elif errors == "raise":
            raise rec
        else:
            problems[name] = str(rec)
    return (recs, problems) if errors == "collect" else recs


def load_parameters(path):
    """The parameter set stored with a synthetic file, as a dict (empty if none)."""
    with _open(path) as h5:
        if S.PARAMETERS not in h5:
            return {}
        try:
            return _json.loads(h5[S.PARAMETERS].attrs[S.PARAMETERS_JSON_ATTR])
        except (KeyError, ValueError) as exc:
            raise SfemgInputError(f"{path}: '/{S.PARAMETERS}' is malformed ({exc})") from None


def load_provenance(path):
    """Provenance attributes (package version, seed, ...) as a dict (empty if none)."""
    with _open(path) as h5:
        if S.PROVENANCE not in h5:
            return {}
        return {k: (v.item() if hasattr(v, "item") else v) for k, v in h5[S.PROVENANCE].attrs.items()}
