"""Exceptions that mean *the input is wrong*, as opposed to a bug in sfemg.

The command line turns :class:`SfemgInputError` into one line on stderr and exit code 2;
any other exception is an internal error (exit code 1).
"""

from __future__ import annotations

__all__ = ["SfemgInputError"]


class SfemgInputError(ValueError):
    """Invalid parameters, data or files supplied by the user.

    The message is a single line that names the offending parameter or file.
    """
