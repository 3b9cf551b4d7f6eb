"""Decode JSON from a file or an HDF5 attribute that may be damaged or hostile."""

from __future__ import annotations

import json


def loads(text):
    """Decode JSON text (``str`` or ``bytes``).

    Raises
    ------
    ValueError
        Not text, not JSON, or nested too deeply for the decoder (Python raises RecursionError there,
        which is no input error and would escape the callers' checks).
    """
    if not isinstance(text, (str, bytes, bytearray)):
        raise ValueError(f"JSON expected as text, not {type(text).__name__}")
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
