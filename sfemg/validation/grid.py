"""Grids of recording conditions, and the seeded simulation of one Monte Carlo repeat.

A :class:`Cell` is one recording condition: activation (voluntary fibre pairs or
stimulated endplates), noise (SNR), sampling rate, the AChR loss that sets the true
jitter (and, at high loss, blocking), firing irregularity (the IDI dependence of the
IPI; voluntary only), electrode and signal form. A :class:`Grid` is a named tuple of
cells. Repeat ``r`` of cell ``c`` in a sweep with global seed ``s`` is simulated from
``SeedSequence([s, c, r])`` alone, so it is the same bits wherever and in whatever order
it runs.

Jitter is not a free parameter of the simulator: it emerges from the physiology. The
grid's jitter axis is ``receptor_blockade`` (AChR loss without spread between
endplates): 0 gives ~20 µs pair jitter, 0.5 ~55 µs, 0.6 ~80 µs, 0.7 ~135 µs with
blocking (docs/physiology.md); a stimulated endplate's jitter is about the pair jitter
/ √2 (one endplate instead of two). Scores are always against the ground truth that
results.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from .._validation import check_number
from ..errors import SfemgInputError
from ..io import _json
from ..synthesis.presets import PRESETS

__all__ = ["Cell", "Grid", "GRIDS", "get_grid", "repeat_seed", "simulate_repeat"]


@dataclass(frozen=True)
class Cell:
    """One recording condition of a validation grid.

    Attributes
    ----------
    noise_rms_v : float
        Amplifier noise RMS, V (potentials are ~0.5-3 mV peak-to-peak; SFE default 10 µV).
    fs_hz : float
        Sampling rate, Hz (>= 25 kHz: the amplifier's 10 kHz low-pass needs fs > 22.2 kHz).
    receptor_blockade : float
        Fraction of AChRs blocked at every endplate (no spread): the true-jitter and
        blocking axis, in [0, 0.9].
    rate_cv : float
        Coefficient of variation of the inter-discharge intervals: firing irregularity,
        which makes the IPI depend on the IDI (and MSD differ from MCD), in [0, 0.5].
        Voluntary only: stimulation is regular, so a stimulated cell's ``rate_cv`` is
        set to 0 whatever is given.
    electrode : {"sfe", "concentric"}
    output : {"sweeps", "continuous"}
        10 ms sweeps per discharge, or a continuous recording.
    n_discharges : int
        Discharges per recording.
    rate_hz : float
        Mean firing rate (voluntary) or stimulation rate (stimulated), Hz.
    preset : str
        Healthy physiology the AChR loss is applied to.
    mode : {"voluntary", "stimulated"}
        Voluntary activation (one fibre pair per recording, IPIs against the trigger
        fibre) or axonal stimulation (one endplate per recording, latencies from the
        stimulus; jitter is the MCD of the latencies).
    stimulus_artefact : bool
        Stimulated cells: add the decaying stimulus artefact to the signal. Must stay
        True for voluntary cells (there is no stimulus).
    stimulator_clock : {"sampling", "own"}
        Stimulated cells: stimuli on the sampling clock (exact stimulus times) or on the
        stimulator's own (anywhere within a sample, marked at the next sample:
        ``sfemg.synthesis.StudyParams.stimulator_clock``). Must stay "sampling" for
        voluntary cells.

    ``mode``, ``stimulus_artefact`` and ``stimulator_clock`` were added after the grids
    were first used; they enter :meth:`to_dict` only when they differ from their
    defaults, so the cells are described (in sweep files, whose resume compares these
    dicts, and benchmark sets) exactly as before.
    """

    noise_rms_v: float = 10e-6
    fs_hz: float = 50_000.0
    receptor_blockade: float = 0.5
    rate_cv: float = 0.15
    electrode: Literal["sfe", "concentric"] = "sfe"
    output: Literal["sweeps", "continuous"] = "sweeps"
    n_discharges: int = 100
    rate_hz: float = 10.0
    preset: str = "healthy-edc"
    mode: Literal["voluntary", "stimulated"] = "voluntary"
    stimulus_artefact: bool = True
    stimulator_clock: Literal["sampling", "own"] = "sampling"

    def __post_init__(self):
        if self.mode not in ("voluntary", "stimulated"):
            raise SfemgInputError(f"Cell.mode must be 'voluntary' or 'stimulated', got {self.mode!r}")
        if not isinstance(self.stimulus_artefact, (bool, np.bool_)):
            raise SfemgInputError(f"Cell.stimulus_artefact must be True or False, got {self.stimulus_artefact!r}")
        if self.mode == "voluntary" and not self.stimulus_artefact:
            raise SfemgInputError("Cell.stimulus_artefact=False applies to stimulated cells only")
        if self.stimulator_clock not in ("sampling", "own"):
            raise SfemgInputError(f"Cell.stimulator_clock must be 'sampling' or 'own', got {self.stimulator_clock!r}")
        if self.mode == "voluntary" and self.stimulator_clock != "sampling":
            raise SfemgInputError("Cell.stimulator_clock='own' applies to stimulated cells only")
        if not isinstance(self.preset, str) or self.preset not in PRESETS:  # (not in a worker, after the file)
            raise SfemgInputError(f"Cell.preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        object.__setattr__(self, "stimulus_artefact", bool(self.stimulus_artefact))
        if self.mode == "stimulated":  # regular stimulation: no firing irregularity
            object.__setattr__(self, "rate_cv", 0.0)
        check_number(self, "noise_rms_v", 0.0)
        check_number(self, "fs_hz", 25_000.0)
        check_number(self, "receptor_blockade", 0.0, 0.9)
        check_number(self, "rate_cv", 0.0, 0.5)
        check_number(self, "rate_hz", 0.0, 50.0, low_open=True)
        if self.electrode not in ("sfe", "concentric"):
            raise SfemgInputError(f"Cell.electrode must be 'sfe' or 'concentric', got {self.electrode!r}")
        if self.output not in ("sweeps", "continuous"):
            raise SfemgInputError(f"Cell.output must be 'sweeps' or 'continuous', got {self.output!r}")
        if not isinstance(self.n_discharges, (int, np.integer)) or self.n_discharges < 2:
            raise SfemgInputError(f"Cell.n_discharges must be an integer >= 2, got {self.n_discharges!r}")

    def to_dict(self) -> dict:
        """The cell as a JSON-serialisable dict (``mode``, ``stimulus_artefact`` and
        ``stimulator_clock`` only when not at their defaults: a cell's dict is as it was
        before they were added)."""
        out = {k: (int(v) if isinstance(v, np.integer) else v) for k, v in dataclasses.asdict(self).items()}
        for name in _LATER_FIELDS:
            if out[name] == _LATER_FIELDS[name]:
                del out[name]
        return out

    def label(self) -> str:
        """Short human-readable description, e.g. ``"10µV 50kHz b0.50 cv0.15 sfe"``
        (voluntary) or ``"10µV 50kHz b0.50 sfe stim"`` (stimulated; ``stim-noart``
        without the stimulus artefact, ``stim-own`` with the stimulator on its own clock)."""
        text = f"{self.noise_rms_v * 1e6:g}µV {self.fs_hz / 1000:g}kHz b{self.receptor_blockade:.2f} "
        if self.mode == "voluntary":
            return text + f"cv{self.rate_cv:.2f} {self.electrode}"
        return (text + f"{self.electrode} stim" + ("" if self.stimulus_artefact else "-noart")
                + ("-own" if self.stimulator_clock == "own" else ""))


#: Cell fields added after grids were first stored, with the default that leaves them
#: out of :meth:`Cell.to_dict`.
_LATER_FIELDS = {"mode": "voluntary", "stimulus_artefact": True, "stimulator_clock": "sampling"}


@dataclass(frozen=True)
class Grid:
    """A named, ordered set of cells; a cell's index is its identity in seeds and files."""

    name: str
    cells: tuple

    def __post_init__(self):
        if not self.cells:
            raise SfemgInputError(f"grid {self.name!r} has no cells")
        if len(set(self.cells)) != len(self.cells):
            raise SfemgInputError(f"grid {self.name!r} repeats a cell")

    @classmethod
    def factorial(cls, name, base=Cell(), **axes):
        """Every combination of the values given per :class:`Cell` field, others from ``base``."""
        keys = list(axes)
        cells = tuple(dataclasses.replace(base, **dict(zip(keys, values)))
                      for values in itertools.product(*(axes[k] for k in keys)))
        return cls(name, cells)

    def __add__(self, other):
        """Cells of both grids, without duplicates, in order (named after the first)."""
        return Grid(self.name, tuple(dict.fromkeys(self.cells + other.cells)))

    def to_dict(self) -> dict:
        """``{"name": ..., "cells": [cell dicts]}``."""
        return {"name": self.name, "cells": [c.to_dict() for c in self.cells]}

    @classmethod
    def from_dict(cls, data) -> "Grid":
        """Inverse of :meth:`to_dict`."""
        expected = '{"name": ..., "cells": [{field: value}, ...]}'
        if not (isinstance(data, dict) and "name" in data and isinstance(data.get("cells"), list)):
            raise SfemgInputError(f"not a validation grid description: expected {expected}")
        try:
            return cls(str(data["name"]), tuple(Cell(**c) for c in data["cells"]))
        except (KeyError, TypeError, AttributeError) as exc:
            raise SfemgInputError(f"not a validation grid description: {exc}") from None


def _default_grid():
    """Noise × jitter, fully crossed at 50 kHz SFE; then sampling rate, firing
    irregularity and electrode one at a time around the base cell."""
    return (Grid.factorial("default", noise_rms_v=(2.5e-6, 10e-6, 40e-6, 80e-6),
                           receptor_blockade=(0.0, 0.5, 0.6, 0.7))
            + Grid.factorial("fs", fs_hz=(25_000.0, 100_000.0))
            + Grid.factorial("cv", rate_cv=(0.05, 0.3))
            + Grid.factorial("electrode", electrode=("concentric",)))


def _stimulated_grid():
    """The default grid's design for stimulated endplates: noise × jitter fully crossed
    at 50 kHz SFE; then sampling rate, electrode and no stimulus artefact one at a time
    around the base cell (no firing-irregularity axis: stimulation is regular)."""
    base = Cell(mode="stimulated")
    return (Grid.factorial("stimulated", base=base, noise_rms_v=(2.5e-6, 10e-6, 40e-6, 80e-6),
                           receptor_blockade=(0.0, 0.5, 0.6, 0.7))
            + Grid.factorial("fs", base=base, fs_hz=(25_000.0, 100_000.0))
            + Grid.factorial("electrode", base=base, electrode=("concentric",))
            + Grid.factorial("artefact", base=base, stimulus_artefact=(False,)))


#: Built-in grids: ``default`` (21 voluntary cells), ``stimulated`` (20 stimulated
#: cells) and ``tiny`` (2 voluntary cells, for tests and smoke runs). ``default`` is
#: unchanged since it was first used (sweep files of it resume); :func:`get_grid`
#: also takes sums of names, ``"default+stimulated"``.
GRIDS = {
    "default": _default_grid(),
    "tiny": Grid.factorial("tiny", base=Cell(n_discharges=40), noise_rms_v=(10e-6, 40e-6)),
    "stimulated": _stimulated_grid(),
}


def get_grid(grid) -> Grid:
    """A :class:`Grid` from itself, a built-in name, a sum of built-in names
    (``"default+stimulated"``: the cells of each in turn, so the first grid's cells keep
    their indices and seeds), or a JSON file (path ending ``.json``) holding
    :meth:`Grid.to_dict` output: ``{"name": ..., "cells": [{field: value}, ...]}``."""
    if isinstance(grid, Grid):
        return grid
    if str(grid).endswith(".json"):
        try:
            data = _json.loads(Path(grid).read_text())
        except (OSError, ValueError) as exc:
            raise SfemgInputError(f"{grid}: not a readable JSON grid ({exc})") from None
        return Grid.from_dict(data)
    names = str(grid).split("+")
    for name in names:
        if name not in GRIDS:
            raise SfemgInputError(f"unknown grid {name!r}; built-in grids: {', '.join(GRIDS)} "
                                  "(or a sum such as default+stimulated), or a .json file")
    if len(names) == 1:
        return GRIDS[grid]
    cells = tuple(c for name in names for c in GRIDS[name].cells)
    if len(set(cells)) != len(cells):
        raise SfemgInputError(f"grid {grid!r} repeats a cell (a grid named twice?)")
    return Grid(str(grid), cells)


def repeat_seed(seed: int, cell_index: int, repeat: int) -> int:
    """The simulation seed of one repeat: from ``SeedSequence([seed, cell_index, repeat])``.

    Returns
    -------
    int
        In [0, 2**63).
    """
    state = np.random.SeedSequence([int(seed), int(cell_index), int(repeat)]).generate_state(1, np.uint64)
    return int(state[0] >> np.uint64(1))


def simulate_repeat(cell: Cell, n_recordings: int, seed: int):
    """Simulate the recordings of one repeat of a cell (single-threaded).

    Parameters
    ----------
    cell : Cell
    n_recordings : int
        Fibre pairs (voluntary) or endplates (stimulated), one recording each.
    seed : int
        From :func:`repeat_seed`.

    Returns
    -------
    sfemg.synthesis.Study
        Stimulated recordings carry ``stimulus_times_s`` and ground truth with
        ``trigger_fibre == -1``.
    """
    from ..synthesis import Disease, simulate_study
    from ..synthesis.study import ELECTRODE_AMPLIFIERS

    amplifier = dataclasses.replace(ELECTRODE_AMPLIFIERS[cell.electrode], noise_rms_v=cell.noise_rms_v)
    # the stimulus's only for stimulated cells, so voluntary study parameters (and bits) are as before
    extra = ({"stimulus_artefact": cell.stimulus_artefact, "stimulator_clock": cell.stimulator_clock}
             if cell.mode == "stimulated" else {})
    return simulate_study(cell.preset, mode=cell.mode, n_recordings=n_recordings,
                          n_discharges=cell.n_discharges, rate_hz=cell.rate_hz, fs_hz=cell.fs_hz,
                          electrode=cell.electrode, output=cell.output, seed=seed, n_jobs=1,
                          disease=Disease(receptor_blockade=cell.receptor_blockade, severity_spread_cv=0.0),
                          amplifier=amplifier, rate_cv=cell.rate_cv, **extra)
