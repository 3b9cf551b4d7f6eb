"""Parameters of the neuromuscular junction and of the damage done to it.

:class:`NMJParams` describes a healthy muscle's endplates (transmitter release, quantal
size, firing threshold, endplate-potential time course, conduction); :class:`Disease`
describes what a disorder does to them, one combinable field per mechanism. Together
with the endplate-to-endplate spread they give each endplate its own state
(:func:`draw_endplates`), from which the transmission kernel makes jitter and blocking
discharge by discharge.

Units are SI (s, V, m/s); counts are in quanta.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .._validation import check_number
from ..errors import SfemgInputError

__all__ = ["NMJParams", "Disease", "EndplateState", "draw_endplates"]


@dataclass(frozen=True)
class NMJParams:
    """Healthy endplate physiology of one muscle (mean values and spreads).

    Attributes
    ----------
    quantal_content : float
        Mean quanta released by an impulse at rest (first of a train).
    quantal_content_spread_cv : float
        Coefficient of variation of the resting quantal content across endplates
        (log-normal).
    pool_size_quanta : float
        Readily releasable pool at rest; release probability = quantal_content / pool.
    refill_time_constant_s : float
        Time constant with which the pool refills from the mobilisation store, s.
    mobilisation_gain : float
        Increase of the refill rate per unit fraction of the pool released (the
        secondary store mobilises after a few seconds of activity), dimensionless.
    mobilisation_time_constant_s : float
        Decay time constant of mobilisation, s.
    facilitation_increment : float
        Fractional increase of release probability added by each impulse.
    facilitation_time_constant_s : float
        Decay time constant of facilitation (paired-pulse range 20–30 ms), s.
    quantal_size_v : float
        Miniature endplate potential with all receptors functional, V.
    quantal_size_cv : float
        Per-quantum coefficient of variation of the quantal size.
    driving_force_v : float
        Endplate-current driving force used for the nonlinear-summation correction
        (Martin 1955), V.
    threshold_v : float
        Depolarisation from rest needed to fire the fibre (E_AP − E_M), V.
    threshold_spread_cv : float
        Coefficient of variation of the threshold across endplates.
    threshold_na_exponent : float
        Threshold scales as ``na_fraction ** -threshold_na_exponent`` when voltage-gated
        Na⁺ channels are lost with the junctional folds.
    epp_rise_time_constant_s, epp_decay_time_constant_s : float
        Time constants of the endplate potential ``e^(−t/τ_decay) − e^(−t/τ_rise)``
        (endplate current filtered by the membrane), s.
    epp_time_scale_spread_cv : float
        Coefficient of variation across endplates of a common scale of both constants.
    axonal_jitter_s : float
        SD of the terminal-axon conduction and synaptic delay per discharge, s.
    synaptic_delay_s : float
        Fixed nerve-terminal to endplate delay, s.
    velocity_recovery_gain : float
        Fractional increase of the muscle-fibre conduction velocity just after a
        discharge (velocity recovery), decaying with ``velocity_recovery_time_constant_s``.
    velocity_recovery_time_constant_s : float
        Decay time constant of the velocity recovery, s.
    """

    quantal_content: float = 50.0
    quantal_content_spread_cv: float = 0.1
    pool_size_quanta: float = 400.0
    refill_time_constant_s: float = 3.0
    mobilisation_gain: float = 5.0
    mobilisation_time_constant_s: float = 10.0
    facilitation_increment: float = 0.15
    facilitation_time_constant_s: float = 0.025
    quantal_size_v: float = 0.4e-3
    quantal_size_cv: float = 0.3
    driving_force_v: float = 0.080
    threshold_v: float = 3.8e-3
    threshold_spread_cv: float = 0.1
    threshold_na_exponent: float = 1.0
    epp_rise_time_constant_s: float = 0.3e-3
    epp_decay_time_constant_s: float = 6e-3
    epp_time_scale_spread_cv: float = 0.1
    axonal_jitter_s: float = 5e-6
    synaptic_delay_s: float = 0.5e-3
    velocity_recovery_gain: float = 0.10
    velocity_recovery_time_constant_s: float = 0.05

    def __post_init__(self):
        for name in ("quantal_content", "pool_size_quanta", "refill_time_constant_s",
                     "mobilisation_time_constant_s", "facilitation_time_constant_s",
                     "quantal_size_v", "driving_force_v", "threshold_v", "epp_rise_time_constant_s",
                     "epp_decay_time_constant_s",
                     "velocity_recovery_time_constant_s"):
            check_number(self, name, 0.0, low_open=True)
        for name in ("quantal_content_spread_cv", "mobilisation_gain", "facilitation_increment",
                     "quantal_size_cv", "threshold_spread_cv", "threshold_na_exponent",
                     "epp_time_scale_spread_cv", "axonal_jitter_s", "synaptic_delay_s",
                     "velocity_recovery_gain"):
            check_number(self, name, 0.0)
        for name, high in _NMJ_AT_MOST.items():
            check_number(self, name, 0.0, high)
        if self.epp_rise_time_constant_s >= self.epp_decay_time_constant_s:
            raise SfemgInputError(
                "NMJParams.epp_rise_time_constant_s must be shorter than epp_decay_time_constant_s")
        if self.quantal_content >= self.pool_size_quanta:
            raise SfemgInputError(
                "NMJParams.quantal_content must be smaller than pool_size_quanta "
                f"({self.quantal_content} >= {self.pool_size_quanta})")


#: Upper bounds of NMJParams fields that a value in the wrong unit would pass otherwise
#: (threshold_v=3.8 for 3.8e-3 V: every discharge blocked; axonal_jitter_s=0.05: action
#: potentials before the stimulus; a researcher's review): a membrane depolarises by
#: ~0.1 V at most, and these times are of µs to ms.
_NMJ_AT_MOST = {"quantal_size_v": 0.1, "threshold_v": 0.1, "driving_force_v": 0.2,
                "axonal_jitter_s": 1e-3, "synaptic_delay_s": 5e-3, "epp_rise_time_constant_s": 5e-3,
                "epp_decay_time_constant_s": 0.05}


@dataclass(frozen=True)
class Disease:
    """What a disorder does to the endplates; every mechanism is a separate field.

    Mechanisms act on the endplates marked as affected (``affected_fraction`` of them);
    on each affected endplate the damage is scaled by a random severity with mean 1 and
    coefficient of variation ``severity_spread_cv``, so a muscle shows a mixture of normal,
    mildly and severely affected endplates. A loss ``L`` of a mechanism is applied as the
    fraction ``1 - (1 - L) ** severity`` of what it removes.

    Attributes
    ----------
    complement_lysis : float
        Complement-mediated lysis: fraction of AChRs lost, with the junctional folds and
        their Na⁺ channels (``na_loss_per_lysis`` of that fraction), in [0, 1).
    na_loss_per_lysis : float
        Fraction of Na⁺ channels lost per unit of complement lysis, in [0, 1].
    receptor_blockade : float
        Fraction of AChRs whose binding site is blocked by antibodies, in [0, 1).
    antigenic_modulation : float
        Fraction of AChRs removed by cross-linking and internalisation, in [0, 1).
    musk_clustering_loss : float
        MuSK-antibody loss of AChR clustering (no complement): fraction of AChRs that
        disperse from the endplate, in [0, 1).
    release_probability_factor : float
        Presynaptic disorder (LEMS-like): release probability multiplied by this, in (0, 1].
    facilitation_factor : float
        Facilitation increment multiplied by this (LEMS: strong facilitation at high
        rates), >= 0.
    affected_fraction : float
        Fraction of the muscle's endplates the disorder reaches, in [0, 1].
    severity_spread_cv : float
        Endplate-to-endplate coefficient of variation of the damage, >= 0.
    """

    complement_lysis: float = 0.0
    na_loss_per_lysis: float = 0.5
    receptor_blockade: float = 0.0
    antigenic_modulation: float = 0.0
    musk_clustering_loss: float = 0.0
    release_probability_factor: float = 1.0
    facilitation_factor: float = 1.0
    affected_fraction: float = 1.0
    severity_spread_cv: float = 0.5

    def __post_init__(self):
        for name in ("complement_lysis", "receptor_blockade", "antigenic_modulation",
                     "musk_clustering_loss"):
            check_number(self, name, 0.0, 1.0, high_open=True)
        check_number(self, "na_loss_per_lysis", 0.0, 1.0)
        check_number(self, "release_probability_factor", 0.0, 1.0, low_open=True)
        check_number(self, "facilitation_factor", 0.0)
        check_number(self, "affected_fraction", 0.0, 1.0)
        check_number(self, "severity_spread_cv", 0.0, 3.0)


@dataclass(frozen=True)
class EndplateState:
    """Per-endplate physiological state, each field an array of shape (n_endplates,).

    Built by :func:`draw_endplates`; passed to the transmission kernel.
    """

    pool_size_quanta: np.ndarray
    release_probability: np.ndarray
    refill_time_constant_s: np.ndarray
    mobilisation_gain: np.ndarray
    mobilisation_time_constant_s: np.ndarray
    facilitation_increment: np.ndarray
    facilitation_time_constant_s: np.ndarray
    quantal_size_v: np.ndarray
    quantal_size_cv: np.ndarray
    driving_force_v: np.ndarray
    threshold_v: np.ndarray
    epp_rise_time_constant_s: np.ndarray
    epp_decay_time_constant_s: np.ndarray
    axonal_jitter_s: np.ndarray
    achr_fraction: np.ndarray
    na_fraction: np.ndarray
    affected: np.ndarray

    @property
    def n_endplates(self) -> int:
        """Number of endplates."""
        return self.pool_size_quanta.shape[0]

    def resting_safety_factor(self) -> np.ndarray:
        """Mean EPP of a first impulse at rest divided by threshold, shape (n_endplates,)."""
        a_lin = self.pool_size_quanta * self.release_probability * self.quantal_size_v
        return a_lin / (1.0 + a_lin / self.driving_force_v) / self.threshold_v

    def as_dict(self) -> dict:
        """Fields as a dict of arrays (for storage as per-fibre ground truth)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def subset(self, index) -> "EndplateState":
        """The endplates selected by ``index`` (any numpy index)."""
        return EndplateState(**{k: np.asarray(v)[index] for k, v in self.as_dict().items()})


def _lognormal(rng, mean, cv, n):
    """``n`` log-normal draws with the given mean and coefficient of variation."""
    if cv == 0:
        return np.full(n, float(mean))
    s2 = np.log1p(cv * cv)
    return mean * np.exp(rng.normal(-0.5 * s2, np.sqrt(s2), n))


def draw_endplates(nmj: NMJParams, disease: Disease, n_endplates: int, rng) -> EndplateState:
    """Give each of ``n_endplates`` endplates its own healthy state and damage.

    Parameters
    ----------
    nmj : NMJParams
        The muscle's healthy physiology.
    disease : Disease
        The disorder (``Disease()`` for none).
    n_endplates : int
        Number of endplates, >= 1.
    rng : numpy.random.Generator
        Source of the endplate-to-endplate spread.

    Returns
    -------
    EndplateState
    """
    n = int(n_endplates)
    m0 = _lognormal(rng, nmj.quantal_content, nmj.quantal_content_spread_cv, n)
    pool = np.full(n, nmj.pool_size_quanta)
    threshold0 = _lognormal(rng, nmj.threshold_v, nmj.threshold_spread_cv, n)
    time_scale = _lognormal(rng, 1.0, nmj.epp_time_scale_spread_cv, n)
    affected = rng.random(n) < disease.affected_fraction
    if disease.severity_spread_cv > 0:
        k = 1.0 / disease.severity_spread_cv ** 2
        severity = rng.gamma(k, 1.0 / k, n)
    else:
        severity = np.ones(n)
    severity = np.where(affected, severity, 0.0)

    def kept(loss):
        """Fraction of what a mechanism with mean loss ``loss`` leaves, per endplate."""
        return (1.0 - loss) ** severity

    lysis_kept = kept(disease.complement_lysis)
    achr = lysis_kept * kept(disease.receptor_blockade) * kept(disease.antigenic_modulation) \
        * kept(disease.musk_clustering_loss)
    na = 1.0 - disease.na_loss_per_lysis * (1.0 - lysis_kept)
    p_factor = np.where(affected, disease.release_probability_factor, 1.0)
    f_factor = np.where(affected, disease.facilitation_factor, 1.0)
    return EndplateState(
        pool_size_quanta=pool,
        release_probability=np.clip(m0 / pool * p_factor, 1e-6, 1.0),
        refill_time_constant_s=np.full(n, nmj.refill_time_constant_s),
        mobilisation_gain=np.full(n, nmj.mobilisation_gain),
        mobilisation_time_constant_s=np.full(n, nmj.mobilisation_time_constant_s),
        facilitation_increment=nmj.facilitation_increment * f_factor,
        facilitation_time_constant_s=np.full(n, nmj.facilitation_time_constant_s),
        quantal_size_v=nmj.quantal_size_v * achr,
        quantal_size_cv=np.full(n, nmj.quantal_size_cv),
        driving_force_v=np.full(n, nmj.driving_force_v),
        threshold_v=threshold0 * na ** (-nmj.threshold_na_exponent),
        epp_rise_time_constant_s=nmj.epp_rise_time_constant_s * time_scale,
        epp_decay_time_constant_s=nmj.epp_decay_time_constant_s * time_scale,
        axonal_jitter_s=np.full(n, nmj.axonal_jitter_s),
        achr_fraction=achr,
        na_fraction=na,
        affected=affected,
    )
