"""HDF5 storage: the only package that touches h5py. Layout in :mod:`sfemg.io.schema`."""

from .recordings import (has_recordings, list_recordings, load_parameters, load_provenance,
                         load_recordings, save_recordings)

__all__ = ["save_recordings", "load_recordings", "list_recordings", "has_recordings",
           "load_parameters", "load_provenance"]
