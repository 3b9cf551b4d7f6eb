"""What every reader and writer of this package does with HDF5 alike: mark a group with
its encoding, open a file for reading with a one-line error for any file that cannot be,
ask whether a file holds a group."""

from __future__ import annotations

import os
import re
from pathlib import Path

import h5py
import numpy as np

from ..errors import SfemgInputError
from . import schema as S


def mark(group, encoding_type, version):
    """Give ``group`` its ``encoding-type`` and ``encoding-version`` attributes."""
    group.attrs[S.ENCODING_TYPE] = encoding_type
    group.attrs[S.ENCODING_VERSION] = version


def text(value):
    """A text attribute as ``str`` (bytes not in UTF-8, as older tools write accents,
    replaced, not an error; one text in a one-element array, as R's rhdf5 and MATLAB
    write it, read as that text: it was read as ``"[b'edc']"``)."""
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "OSU":
        value = value.reshape(()).item()
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def open_hdf5(path):
    """``path`` open for reading.

    Raises
    ------
    SfemgInputError
        Missing, not a file, not readable, not HDF5, or truncated or damaged (with what
        HDF5 says of it).
    """
    path = Path(path)
    if not path.exists():
        raise SfemgInputError(f"{path}: no such file")
    if not path.is_file():
        raise SfemgInputError(f"{path}: not a file")
    if not os.access(path, os.R_OK):
        raise SfemgInputError(f"{path}: not readable (permission denied)")
    if not h5py.is_hdf5(path):
        raise SfemgInputError(f"{path}: not an HDF5 file")
    try:
        return h5py.File(path, "r")
    except OSError as exc:  # truncated or damaged; HDF5 says which in its parentheses
        detail = re.search(r"\((.*)\)", str(exc))
        raise SfemgInputError(f"{path}: cannot be read as HDF5 "
                              f"({detail.group(1) if detail else exc.__class__.__name__})") from None


def holds(path, name) -> bool:
    """Whether ``path`` is an HDF5 file with an object ``name`` (False for any other file)."""
    try:
        with h5py.File(path, "r") as h5:
            return name in h5
    except OSError:
        return False
