"""sfemg: single-fibre EMG synthesis from neuromuscular physiology, and jitter analysis."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sfemg")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

from .errors import SfemgInputError
from .recording import GroundTruth, Recording

__all__ = ["__version__", "SfemgInputError", "Recording", "GroundTruth"]
