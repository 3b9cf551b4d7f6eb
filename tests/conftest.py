"""Test-wide settings: the Agg backend for plots, warnings as errors (pyproject)."""

import matplotlib

matplotlib.use("Agg")
