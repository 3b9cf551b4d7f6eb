"""``python -m sfemg``: the command line, as the ``sfemg`` script runs it (:func:`sfemg.cli.main`)."""

import sys

from .cli import main

sys.exit(main())
