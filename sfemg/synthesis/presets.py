"""Named physiological states: a muscle's healthy endplates, optionally a disorder.

Muscles differ in their healthy endplate physiology (calibrated so that each muscle's
jitter lands in its published normal range, see docs/physiology.md); disorders are
:class:`~sfemg.synthesis.physiology.Disease` settings applied to any muscle.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import SfemgInputError
from .physiology import Disease, NMJParams

__all__ = ["Preset", "PRESETS", "MUSCLES", "get_preset", "get_muscle", "MUSCLE_ALIASES"]

#: Healthy endplate physiology per muscle.
MUSCLES: dict[str, NMJParams] = {
    "edc": NMJParams(),
    "frontalis": NMJParams(threshold_v=3.6e-3),
    "orbicularis-oculi": NMJParams(),
}

MUSCLE_ALIASES = {
    "extensor-digitorum": "edc", "extensor-digitorum-communis": "edc", "ed": "edc",
    "oo": "orbicularis-oculi", "orbicularis_oculi": "orbicularis-oculi", "fr": "frontalis",
}


@dataclass(frozen=True)
class Preset:
    """A named state: muscle plus disorder.

    Attributes
    ----------
    name : str
    description : str
        One line for ``sfemg presets``.
    muscle : str
        Key of :data:`MUSCLES`.
    disease : Disease
    """

    name: str
    description: str
    muscle: str
    disease: Disease = Disease()


PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset("healthy-edc", "healthy extensor digitorum communis", "edc"),
    Preset("healthy-frontalis", "healthy frontalis", "frontalis"),
    Preset("healthy-orbicularis-oculi", "healthy orbicularis oculi", "orbicularis-oculi"),
    Preset("achr-mg-mild", "AChR-antibody MG, mild (ocular-like): modulation and some lysis in part of the endplates",
           "orbicularis-oculi",
           Disease(complement_lysis=0.12, antigenic_modulation=0.15, receptor_blockade=0.03,
                   affected_fraction=0.6, severity_spread_cv=0.6)),
    Preset("achr-mg-moderate", "AChR-antibody MG, moderate (generalised): lysis, modulation and blockade",
           "edc",
           Disease(complement_lysis=0.27, antigenic_modulation=0.23, receptor_blockade=0.06,
                   affected_fraction=0.8, severity_spread_cv=0.6)),
    Preset("achr-mg-severe", "AChR-antibody MG, severe: extensive lysis with Na+-channel loss, frequent blocking",
           "edc",
           Disease(complement_lysis=0.35, antigenic_modulation=0.3, receptor_blockade=0.1,
                   affected_fraction=0.95, severity_spread_cv=0.5)),
    Preset("musk-mg", "MuSK-antibody MG: loss of AChR clustering, no complement, patchy",
           "frontalis",
           Disease(musk_clustering_loss=0.45, affected_fraction=0.6, severity_spread_cv=0.6)),
    Preset("lems", "Lambert-Eaton-like presynaptic disorder: low release probability, strong facilitation",
           "edc",
           Disease(release_probability_factor=0.5, facilitation_factor=3.0, affected_fraction=1.0,
                   severity_spread_cv=0.3)),
]}


def get_muscle(name: str) -> str:
    """Canonical muscle key for ``name`` (aliases accepted) or raise SfemgInputError."""
    if not isinstance(name, str):
        raise SfemgInputError(f"muscle must be a name (text), got {name!r}")
    key = MUSCLE_ALIASES.get(name.lower(), name.lower())
    if key not in MUSCLES:
        raise SfemgInputError(f"unknown muscle {name!r}; choose from {', '.join(MUSCLES)}")
    return key


def get_preset(name: str, muscle: str | None = None) -> tuple[Preset, NMJParams]:
    """The preset called ``name`` and its muscle's physiology (``muscle`` overrides).

    Raises
    ------
    SfemgInputError
        For an unknown preset or muscle.
    """
    if not isinstance(name, str) or name not in PRESETS:
        raise SfemgInputError(f"unknown preset {name!r}; `sfemg presets` lists them")
    preset = PRESETS[name]
    if muscle is not None:
        preset = replace(preset, muscle=get_muscle(muscle))
    return preset, MUSCLES[preset.muscle]
