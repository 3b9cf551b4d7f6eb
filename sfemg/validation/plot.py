"""Error against noise (SNR) per method, with the Monte Carlo confidence intervals."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..errors import SfemgInputError
from ..plotting._style import new_axes
from .scoring import METRICS
from .sweep import summarize_sweep

__all__ = ["plot_error_vs_noise"]

#: Line styles cycled over methods (grey-scale safe: marker and dash differ).
_STYLES = [dict(marker=m, linestyle=ls) for ls, m in (("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"),
                                                        ((0, (5, 1)), "v"), ((0, (1, 3)), "x"))]


def plot_error_vs_noise(path, metric: str = "mcd_rmse_us", *, receptor_blockade=None, mode=None, ax=None):
    """Plot a metric against the noise RMS, one line per method, with 95 % CIs.

    Parameters
    ----------
    path : str or os.PathLike
        Validation file written by :func:`~sfemg.validation.run_sweep`.
    metric : str
        One of :data:`~sfemg.validation.METRICS` (default: MCD RMSE, µs); another name
        is an input error, and so are a ``mode`` or ``receptor_blockade`` no finished
        cell (of that mode) has.
    receptor_blockade : float, optional
        Jitter level (AChR loss) to show; default: that of the sweep's first cell (of
        ``mode``). Cells differing from it in anything but the noise are left out.
    mode : {"voluntary", "stimulated"}, optional
        Activation to show (e.g. in a ``default+stimulated`` sweep); default: that of
        the sweep's first cell.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    if metric not in METRICS:
        raise SfemgInputError(f"metric {metric!r} is not one of {', '.join(METRICS)}")
    rows = summarize_sweep(path)
    _, ax = new_axes(ax)
    if not rows:
        return ax
    base = next((r["cell"] for r in rows if mode is None or r["cell"].mode == mode), None)
    if base is None:
        raise SfemgInputError(f"no finished cell is {mode}; the sweep's: "
                              f"{', '.join(sorted({r['cell'].mode for r in rows}))}")
    if receptor_blockade is not None:
        levels = sorted({r["cell"].receptor_blockade for r in rows if r["cell"].mode == base.mode})
        same = [b for b in levels if math.isclose(b, receptor_blockade, rel_tol=1e-9, abs_tol=1e-12)]
        if not same:  # (0.1 + 0.2 is the grid's 0.3; 0.31 is not: said with every digit)
            raise SfemgInputError(f"no finished {base.mode} cell has receptor_blockade={receptor_blockade!r}; "
                                  f"the sweep's: {', '.join(repr(b) for b in levels)}")
        base = dataclasses.replace(base, receptor_blockade=same[0])
    base = dataclasses.replace(base, noise_rms_v=0.0)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for method, style in zip(methods, _STYLES * len(methods)):
        sel = sorted((r for r in rows if r["method"] == method
                      and dataclasses.replace(r["cell"], noise_rms_v=0.0) == base),
                     key=lambda r: r["cell"].noise_rms_v)
        if not sel:
            continue
        x = np.array([r["cell"].noise_rms_v * 1e6 for r in sel])
        s = [r["metrics"][metric] for r in sel]
        mean = np.array([v["mean"] for v in s])
        err = np.array([[v["mean"] - v["ci_low"] for v in s], [v["ci_high"] - v["mean"] for v in s]])
        ax.errorbar(x, mean, yerr=np.nan_to_num(err), label=method, capsize=3, color="black", mfc="none",
                    **style)
    from matplotlib.ticker import FormatStrFormatter, NullFormatter
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    noise_uv = sorted({r["cell"].noise_rms_v * 1e6 for r in rows
                       if dataclasses.replace(r["cell"], noise_rms_v=0.0) == base})
    ax.set_xticks(noise_uv)
    ax.set_xlabel("noise RMS (µV)")
    ax.set_ylabel(metric.replace("_us", " (µs)").replace("_", " "))
    ax.set_title(f"{base.receptor_blockade:g} AChR blockade, {base.fs_hz / 1000:g} kHz, {base.electrode}"
                 + (", stimulated" if base.mode == "stimulated" else ""))
    ax.legend(fontsize="small")
    return ax
