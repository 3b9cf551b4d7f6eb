"""HDF5 files of validation sweeps: configuration, per-cell scores, provenance apart.

Layout in :mod:`sfemg.io.schema` (validation section). Everything under ``/validation``
is a pure function of the configuration (bit-identical however the sweep ran); wall
times, hosts and the command line live only under ``/provenance``. Each finished cell is
added atomically (:func:`~sfemg.io._atomic.atomic_h5`), so an interrupted sweep leaves a
valid file holding every cell finished so far.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import SfemgInputError
from . import _json
from . import schema as S
from ._atomic import atomic_h5
from ._h5 import mark, open_hdf5

__all__ = ["create_validation_file", "read_validation_config", "write_validation_cell",
           "finished_validation_cells", "load_validation"]


def _mark(group, kind, version=S.VALIDATION_VERSION):
    mark(group, kind, version)


def _open(path):
    h5 = open_hdf5(path)
    if h5.attrs.get(S.ENCODING_TYPE) != S.VALIDATION_FILE_TYPE or S.VALIDATION not in h5:
        h5.close()
        raise SfemgInputError(f"{path}: not an sfemg validation file")
    return h5


def create_validation_file(path, config: dict, provenance: dict, *, force=False) -> None:
    """Start a validation file: the configuration and the sweep's provenance, no cells.

    Parameters
    ----------
    path : str or os.PathLike
    config : dict
        JSON-serialisable: everything the scores depend on.
    provenance : dict
        JSON-serialisable: command, package version, scheduler, ...
    force : bool
        Replace an existing file.
    """
    with atomic_h5(path, mode="w", force=force) as h5:
        h5.attrs[S.ROOT_SCHEMA_VERSION_ATTR] = S.SCHEMA_VERSION
        _mark(h5, S.VALIDATION_FILE_TYPE, S.GROUP_VERSION)
        grp = h5.create_group(S.VALIDATION)
        _mark(grp, S.VALIDATION_TYPE)
        grp.attrs[S.VALIDATION_CONFIG_ATTR] = json.dumps(config, sort_keys=True)
        grp.create_group(S.VALIDATION_CELLS)
        prov = h5.create_group(S.PROVENANCE)
        _mark(prov, S.PROVENANCE_TYPE, S.GROUP_VERSION)
        prov.attrs[S.VALIDATION_PROVENANCE_JSON_ATTR] = json.dumps(provenance, sort_keys=True)
        prov.create_group(S.VALIDATION_CELLS)


def read_validation_config(path) -> dict:
    """The configuration stored by :func:`create_validation_file`."""
    with _open(path) as h5:
        try:
            return _json.loads(h5[S.VALIDATION].attrs[S.VALIDATION_CONFIG_ATTR])
        except (KeyError, ValueError) as exc:
            raise SfemgInputError(f"{path}: the validation configuration is malformed ({exc})") from None


def write_validation_cell(path, index: int, metrics, provenance: dict, *, config: dict | None = None) -> None:
    """Add one finished cell's scores (atomically: the file is never half-updated).

    Parameters
    ----------
    path : str or os.PathLike
        A file made by :func:`create_validation_file`.
    index : int
        Cell index in the grid.
    metrics : ndarray, shape (n_methods, n_repeats, n_metrics)
    provenance : dict
        JSON-serialisable timings and hosts of this cell.
    config : dict, optional
        The sweep's configuration: the cell is refused (:class:`SfemgInputError`) by a
        file that now holds another's (replaced by another sweep meanwhile, whose
        configuration the cell's scores would have been filed under).
    """
    _open(path).close()
    name = S.validation_cell_name(index)
    with atomic_h5(path, mode="a") as h5:
        if config is not None and _json.loads(h5[S.VALIDATION].attrs.get(S.VALIDATION_CONFIG_ATTR, "null")) != config:
            raise SfemgInputError(f"{path} was replaced by another sweep while this one ran: cell {index} "
                                  "and the rest of this sweep not written")
        cells = h5[S.VALIDATION][S.VALIDATION_CELLS]
        if name in cells:
            del cells[name]
        grp = cells.create_group(name)
        _mark(grp, S.VALIDATION_CELL_TYPE)
        grp.create_dataset(S.VALIDATION_METRICS, data=np.asarray(metrics, dtype=np.float64))
        prov = h5[S.PROVENANCE][S.VALIDATION_CELLS]
        if name in prov:
            del prov[name]
        prov.create_group(name).attrs[S.VALIDATION_PROVENANCE_JSON_ATTR] = json.dumps(provenance, sort_keys=True)


def finished_validation_cells(path) -> set:
    """Indices of the cells stored in a validation file."""
    with _open(path) as h5:
        return {S.validation_cell_index(n) for n in h5[S.VALIDATION][S.VALIDATION_CELLS]}


def load_validation(path) -> dict:
    """Everything in a validation file.

    Returns
    -------
    dict
        ``config`` (dict), ``metrics`` (dict of cell index to ndarray, shape
        (n_methods, n_repeats, n_metrics)), ``provenance`` (dict, with ``cells``: per
        cell index its provenance dict).
    """
    if not Path(path).exists():
        raise SfemgInputError(f"{path}: no such file")
    with _open(path) as h5:
        try:
            # By name, not .items(): h5py's items view holds its global lock while it yields,
            # and an error raised inside it would keep the lock (and other threads) waiting.
            config = _json.loads(h5[S.VALIDATION].attrs[S.VALIDATION_CONFIG_ATTR])
            cells = h5[S.VALIDATION][S.VALIDATION_CELLS]
            metrics = {S.validation_cell_index(n): cells[n][S.VALIDATION_METRICS][()] for n in cells}
            provenance = _json.loads(h5[S.PROVENANCE].attrs[S.VALIDATION_PROVENANCE_JSON_ATTR])
            cells = h5[S.PROVENANCE][S.VALIDATION_CELLS]
            provenance["cells"] = {S.validation_cell_index(n):
                                   _json.loads(cells[n].attrs[S.VALIDATION_PROVENANCE_JSON_ATTR]) for n in cells}
        except (KeyError, TypeError, ValueError) as exc:
            raise SfemgInputError(f"{path}: the validation file is malformed ({exc})") from None
    return {"config": config, "metrics": metrics, "provenance": provenance}
