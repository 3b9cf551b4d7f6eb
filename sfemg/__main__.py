"""``python -m sfemg``: the command line, as the ``sfemg`` script runs it (:func:`sfemg.cli.run`)."""

from .cli import run

run()
