"""Single-fibre action potentials at a needle electrode: the line-source model.

The intracellular action potential along the fibre is Rosenfalck's (1969)
``Vm(λ) = 96 λ³ e^(−λ) − 90`` mV, λ in mm behind the wavefront. The transmembrane current
density is proportional to ``∂²Vm/∂z²``; in an anisotropic volume conductor
(σ_r radial, σ_z axial) the potential at radial distance r and axial offset Δz is the
current weighted by ``1 / (4π σ_r √((σ_z/σ_r) r² + Δz²))`` (Nandedkar & Stålberg 1983;
Andreassen & Rosenfalck 1980). For a wave travelling at velocity v past the electrode this
is a convolution in space, evaluated by FFT once per fibre on a fine time grid;
:mod:`sfemg.synthesis.render` then places copies at continuous times by cubic
interpolation on that grid.

Only the travelling wave near the electrode is modelled (a fibre long compared with the
pick-up range): the generation at the endplate and the extinction at the tendon lie
several millimetres away, where a single-fibre electrode sees almost nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import fftconvolve

from .._validation import check_number
from ..errors import SfemgInputError

__all__ = ["Conductor", "FibrePotential", "compute_fibre_potential", "conduction_velocity_m_s",
           "FINE_STEP_S"]

#: Time step of the precomputed waveform grid, s. Cubic interpolation on it places a
#: potential at any continuous time with an error far below 0.05 µs.
FINE_STEP_S = 1.0e-6


@dataclass(frozen=True)
class Conductor:
    """Volume-conductor and membrane constants (Andreassen & Rosenfalck 1980).

    Attributes
    ----------
    sigma_radial_s_m, sigma_axial_s_m, sigma_intracellular_s_m : float
        Conductivities, S/m.
    iap_length_scale_mm : float
        Spatial scale of the intracellular action potential: ``Vm = 96 (λ/s)³ e^(−λ/s)``
        mV with ``s`` this scale. Rosenfalck's profile is ``s = 1`` mm; the default 0.5 mm
        gives single-fibre potentials whose rise time (positive to negative peak, after
        the amplifier's 500 Hz high-pass) lies in the clinical 100–250 µs range instead
        of ~360 µs (see docs/physiology.md).
    """

    sigma_radial_s_m: float = 0.063
    sigma_axial_s_m: float = 0.33
    sigma_intracellular_s_m: float = 1.01
    iap_length_scale_mm: float = 0.5

    def __post_init__(self):
        for name in ("sigma_radial_s_m", "sigma_axial_s_m", "sigma_intracellular_s_m",
                     "iap_length_scale_mm"):
            check_number(self, name, 0.0, low_open=True)


def conduction_velocity_m_s(diameter_m):
    """Muscle-fibre conduction velocity from diameter: 0.05 d[µm] + 0.95 m/s.

    As quoted by Blijham et al., J Appl Physiol 2006;100:1837–1841.

    Parameters
    ----------
    diameter_m : float or ndarray
        Fibre diameter, m.

    Returns
    -------
    float or ndarray
        Velocity, m/s.
    """
    return 0.05 * np.asarray(diameter_m) * 1e6 + 0.95


def _rosenfalck_second_derivative(lam_mm, scale_mm):
    """∂²Vm/∂λ² of Rosenfalck's IAP with spatial scale ``scale_mm``, V/mm², λ >= 0."""
    lam = np.maximum(lam_mm, 0.0) / scale_mm
    return 96e-3 * (6 * lam - 6 * lam ** 2 + lam ** 3) * np.exp(-lam) / scale_mm ** 2


@dataclass(frozen=True)
class FibrePotential:
    """A fibre's potential at the electrode on a fine, uniform time grid.

    Attributes
    ----------
    waveform_v : ndarray, shape (n_fine,)
        Potential, V; sample ``i`` is at ``start_s + i * step_s`` relative to the time
        the wavefront passes the electrode (the event time).
    start_s : float
        Time of the first sample relative to the event, s (negative).
    step_s : float
        Grid step, s.
    """

    waveform_v: np.ndarray
    start_s: float
    step_s: float

    @property
    def time_s(self) -> np.ndarray:
        """Time axis relative to the event, s, shape (n_fine,)."""
        return self.start_s + self.step_s * np.arange(self.waveform_v.size)

    def __call__(self, t_s):
        """Evaluate the potential at times ``t_s`` relative to the event (cubic interpolation)."""
        from scipy.interpolate import CubicSpline
        return CubicSpline(self.time_s, self.waveform_v, extrapolate=False)(t_s)


def compute_fibre_potential(diameter_m, radial_distance_m, velocity_m_s=None, *,
                            electrode_points_m=None, conductor=Conductor(),
                            before_s=1.5e-3, after_s=4.0e-3, taper_s=0.5e-3,
                            step_s=FINE_STEP_S) -> FibrePotential:
    """Potential of one fibre's travelling action potential at a needle electrode.

    Parameters
    ----------
    diameter_m : float
        Fibre diameter, m (25–80 µm in human muscle).
    radial_distance_m : float
        Distance from the fibre axis to the electrode's recording point, m (> radius).
    velocity_m_s : float, optional
        Conduction velocity; by default from the diameter.
    electrode_points_m : ndarray, shape (n_points, 2), optional
        Recording surface as points (axial offset, extra radial offset) averaged over, m;
        a single point (the single-fibre electrode's 25 µm side port) by default.
    conductor : Conductor
    before_s, after_s : float
        Extent of the grid before and after the wavefront passes, s.
    taper_s : float
        The first and last ``taper_s`` are tapered to zero with a raised cosine, so the
        far-field tails end smoothly (the amplifier's high-pass removes them anyway).
    step_s : float
        Grid step, s.

    Returns
    -------
    FibrePotential
    """
    radius = 0.5 * diameter_m
    if not (np.isfinite(diameter_m) and diameter_m > 0):
        raise SfemgInputError(f"fibre diameter must be positive, got {diameter_m!r}")
    if not (np.isfinite(radial_distance_m) and radial_distance_m > radius):
        raise SfemgInputError(
            f"radial distance {radial_distance_m!r} m must exceed the fibre radius {radius} m")
    v = conduction_velocity_m_s(diameter_m) if velocity_m_s is None else float(velocity_m_s)
    if not v > 0:
        raise SfemgInputError(f"conduction velocity must be positive, got {v!r}")
    points = np.zeros((1, 2)) if electrode_points_m is None else np.asarray(electrode_points_m, float)
    dz_m = v * step_s
    # Source: ∂²Vm/∂z² along the wave (λ behind the front); 20 spatial scales hold the whole IAP.
    lam_m = np.arange(0.0, 20e-3 * conductor.iap_length_scale_mm, dz_m)
    source = _rosenfalck_second_derivative(lam_m * 1e3, conductor.iap_length_scale_mm) * 1e6  # V/m²
    scale = conductor.sigma_intracellular_s_m * radius ** 2 / (4.0 * conductor.sigma_radial_s_m)
    anis = conductor.sigma_axial_s_m / conductor.sigma_radial_s_m
    # Electrode weight as a function of the front's axial position relative to the
    # electrode, u = v t; the wave occupies z = u - λ, so φ(u) = Σ_λ source(λ) W(u - λ).
    n_before = int(round(before_s / step_s))
    n_after = int(round(after_s / step_s))
    u_m = dz_m * np.arange(-n_before - lam_m.size, n_after + 1)
    weight = np.zeros_like(u_m)
    for dz_e, dr_e in points:
        r = radial_distance_m + dr_e
        weight += 1.0 / np.sqrt(anis * r * r + (u_m - dz_e) ** 2)
    weight /= len(points)
    phi = fftconvolve(weight, source, mode="full")[: u_m.size] * dz_m * scale
    # phi[j] = Σ_i source[i] weight[j - i] → front position u_m[j] (shift by lam grid origin)
    wave = phi[lam_m.size: lam_m.size + n_before + n_after + 1].copy()
    n_taper = min(int(round(taper_s / step_s)), wave.size // 2)
    if n_taper > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(n_taper) / n_taper)
        wave[:n_taper] *= ramp
        wave[-n_taper:] *= ramp[::-1]
    return FibrePotential(waveform_v=wave, start_s=-n_before * step_s, step_s=step_s)
