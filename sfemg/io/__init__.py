"""HDF5 storage: the only package that touches h5py. Layout in :mod:`sfemg.io.schema`."""

from ._atomic import atomic_path
from .recordings import (
                         StudyWriter,
                         has_recordings,
                         iter_recordings,
                         list_recordings,
                         load_parameters,
                         load_provenance,
                         load_recordings,
                         open_study_writer,
                         save_recordings,
)

__all__ = ["atomic_path", "save_recordings", "open_study_writer", "StudyWriter", "load_recordings", "iter_recordings",
           "list_recordings",
           "has_recordings", "load_parameters", "load_provenance"]
