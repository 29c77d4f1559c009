"""Pristina-like CEM acquisition rules and a primary-only dose model.

Beams (assumptions, see physics.md section 3 and reference/dicom.md):

* LE: Rh anode, 30 um Ag filter (GE Pristina dose reports show Rh/Ag), kVp rising
  linearly from 26 kV at 20 mm to 33 kV at 90 mm (reported CEM LE range 26-33 kVp),
  rounded to 1 kV and clamped outside that range.
* HE: Rh anode, 0.3 mm Cu filter (GE: 0.3 mm Cu), 45 -> 49 kV over 20 -> 90 mm
  (reported HE 45-49 kVp, all systems <= 49 kV), rounded to 1 kV.

Dose (primary-only, stated): the glandular dose is the energy the primary beam
deposits in glandular tissue, averaged over the depth of the interior, behind 1.5 mm
of skin, with the incident fluence scaled by inverse square from the detector plane
to the breast entrance surface (source at SID, breast support 20 mm above the
detector).  Scatter, which adds a few tens of percent in Dance's Monte Carlo factors,
is ignored, as in physics.md's "MGD/K (primary-only)" column.

AEC (assumption): mAs is set to reach a target mean glandular dose per view, at 5 cm
1.3 mGy (LE) and 0.5 mGy (HE) (physics.md section 3), rising by a factor
exp(0.2 per cm) with thickness like a DM AEC (0.7/0.27 mGy at 2 cm, 2.9/1.1 at 9 cm);
the per-view total at 6 cm, 2.2 mGy, is close to the 2.3-2.5 mGy median of Gennaro
et al. 2022, with HE ~28 % of it (reported 23-36 %).
"""

from __future__ import annotations

import math

import numpy as np

from cemrecon.errors import PhysicsError
from cemrecon.physics import _constants as C
from cemrecon.physics.spectra import Beam, is_high_energy, spectrum

__all__ = [
    "le_beam_for_thickness",
    "he_beam_for_thickness",
    "aec_mas",
    "mean_glandular_dose_mGy",
    "default_target_mgd_mGy",
    "incident_air_kerma_uGy_per_mAs",
]

#: LE rule: Rh/Ag 30 um, 26 -> 33 kV over 20 -> 90 mm
LE_ANODE, LE_FILTER, LE_FILTER_MM, LE_KVP_RANGE = "Rh", "Ag", 0.030, (26.0, 33.0)
#: HE rule: Rh/Cu 0.3 mm, 45 -> 49 kV over 20 -> 90 mm
HE_ANODE, HE_FILTER, HE_FILTER_MM, HE_KVP_RANGE = "Rh", "Cu", 0.3, (45.0, 49.0)
#: thickness range over which kVp ramps
KVP_RAMP_MM = (20.0, 90.0)
#: target MGD per view at 50 mm (physics.md section 3: "at 5 cm about LE 1.3 + HE 0.5 mGy")
TARGET_MGD_AT_50MM_MGY = {"LE": 1.3, "HE": 0.5}
#: relative MGD increase per cm of thickness of the AEC rule (assumption, DM-like)
TARGET_MGD_GROWTH_PER_CM = 0.2


def _check_thickness(thickness_mm) -> float:
    t = float(thickness_mm)
    if not (math.isfinite(t) and 2 * C.SKIN_MM < t <= 200.0):
        raise PhysicsError(f"thickness_mm={thickness_mm!r} must be in ({2 * C.SKIN_MM:g}, 200] mm")
    return t


def _ramp(thickness_mm: float, kv_range: tuple[float, float]) -> float:
    t = _check_thickness(thickness_mm)
    f = min(max((t - KVP_RAMP_MM[0]) / (KVP_RAMP_MM[1] - KVP_RAMP_MM[0]), 0.0), 1.0)
    # round half up (Python's round() would send 28.5 to 28 but 29.5 to 30)
    return float(math.floor(kv_range[0] + f * (kv_range[1] - kv_range[0]) + 0.5))


def le_beam_for_thickness(thickness_mm: float) -> Beam:
    """Low-energy beam for a compressed thickness: Rh/Ag 30 um, 26-33 kV.

    Examples
    --------
    >>> le_beam_for_thickness(55.0)
    Beam(anode='Rh', filter_material='Ag', filter_mm=0.03, kvp=30.0)
    """
    return Beam(LE_ANODE, LE_FILTER, LE_FILTER_MM, _ramp(thickness_mm, LE_KVP_RANGE))


def he_beam_for_thickness(thickness_mm: float) -> Beam:
    """High-energy beam for a compressed thickness: Rh/Cu 0.3 mm, 45-49 kV.

    Examples
    --------
    >>> he_beam_for_thickness(55.0)
    Beam(anode='Rh', filter_material='Cu', filter_mm=0.3, kvp=47.0)
    """
    return Beam(HE_ANODE, HE_FILTER, HE_FILTER_MM, _ramp(thickness_mm, HE_KVP_RANGE))


def incident_air_kerma_uGy_per_mAs(
    beam: Beam, thickness_mm: float, *, paddle_pmma_mm: float = C.PADDLE_PMMA_MM
) -> float:
    """Air kerma per mAs at the breast entrance surface (behind the paddle, no backscatter)."""
    t = _check_thickness(thickness_mm)
    spec = spectrum(beam, paddle_pmma_mm=paddle_pmma_mm)
    distance = spec.sid_mm - C.SUPPORT_TO_DETECTOR_MM - t
    return spec.air_kerma_uGy_per_mAs * (spec.sid_mm / distance) ** 2


def mean_glandular_dose_mGy(
    beam: Beam,
    thickness_mm: float,
    mas: float,
    *,
    glandularity: float = 0.5,
    paddle_pmma_mm: float = C.PADDLE_PMMA_MM,
    skin_mm: float = C.SKIN_MM,
) -> float:
    """Primary-only mean glandular dose in mGy (see the module docstring).

    ``D = sum_E Phi(E) exp(-mu_skin s) E (mu_en/rho)_g (1 - exp(-mu L)) / (mu L)``
    with ``Phi`` at the entrance surface, ``s`` one skin layer and ``L`` the interior.
    """
    from cemrecon.physics.materials import mass_energy_absorption_cm2_g
    from cemrecon.physics.weights import slab_paths

    t = _check_thickness(thickness_mm)
    if not (math.isfinite(float(mas)) and float(mas) >= 0):
        raise PhysicsError(f"mas={mas!r} must be >= 0")
    spec = spectrum(beam, paddle_pmma_mm=paddle_pmma_mm)
    e = spec.energies_keV
    paths = slab_paths(t, glandularity, skin_mm=skin_mm)
    from cemrecon.physics.materials import mu_linear_cm

    mu_mix = glandularity * mu_linear_cm("glandular", e) + (1 - glandularity) * mu_linear_cm("adipose", e)
    interior_cm = paths["adipose"] + paths["glandular"]
    depth_avg = -np.expm1(-mu_mix * interior_cm) / (mu_mix * interior_cm)
    skin = np.exp(-mu_linear_cm("skin", e) * skin_mm / 10.0)
    distance = spec.sid_mm - C.SUPPORT_TO_DETECTOR_MM - t
    phi_cm2 = spec.entrance_fluence_per_mm2_per_mAs * 100.0 * (spec.sid_mm / distance) ** 2
    muen = mass_energy_absorption_cm2_g("glandular", e)
    gray_per_mas = np.sum(phi_cm2 * skin * depth_avg * e * C.KEV_TO_J * muen) * 1000.0
    return float(gray_per_mas * 1000.0 * float(mas))


def default_target_mgd_mGy(thickness_mm: float, *, high_energy: bool) -> float:
    """AEC target MGD per view: 1.3 (LE) / 0.5 (HE) mGy at 50 mm, x exp(0.2/cm (T - 5 cm))."""
    t = _check_thickness(thickness_mm)
    base = TARGET_MGD_AT_50MM_MGY["HE" if high_energy else "LE"]
    return base * math.exp(TARGET_MGD_GROWTH_PER_CM * (t - 50.0) / 10.0)


def aec_mas(
    beam: Beam,
    thickness_mm: float,
    *,
    target_mgd_mGy: float | None = None,
    target_signal_keV: float | None = None,
    glandularity: float = 0.5,
    paddle_pmma_mm: float = C.PADDLE_PMMA_MM,
    pixel_mm: float = 0.1,
) -> float:
    """mAs an AEC would choose for a uniform breast of ``thickness_mm``.

    Either a dose target (default): the exposure giving ``target_mgd_mGy`` per view
    (default :func:`default_target_mgd_mGy`, LE or HE decided by
    :func:`~cemrecon.physics.spectra.is_high_energy`); or a detector target: the exposure
    giving a mean absorbed energy of ``target_signal_keV`` per pixel (of ``pixel_mm``)
    behind the breast, as a detector-driven AEC does.

    Raises
    ------
    PhysicsError
        Both targets given, or a target that is not positive.

    Examples
    --------
    >>> mas = aec_mas(le_beam_for_thickness(50.0), 50.0)
    >>> 20 < mas < 200
    True
    """
    t = _check_thickness(thickness_mm)
    if target_signal_keV is not None:
        if target_mgd_mGy is not None:
            raise PhysicsError("aec_mas: give target_mgd_mGy or target_signal_keV, not both")
        target = float(target_signal_keV)
        if not (math.isfinite(target) and target > 0):
            raise PhysicsError(f"target_signal_keV={target_signal_keV!r} must be > 0")
        from cemrecon.physics.signal import SignalModel
        from cemrecon.physics.weights import slab_paths

        model = SignalModel(beam, pixel_mm=pixel_mm, paddle_pmma_mm=paddle_pmma_mm)
        per_mas = math.exp(model.slab_log_signal(slab_paths(t, glandularity)))
        return target / per_mas
    if target_mgd_mGy is None:
        target_mgd_mGy = default_target_mgd_mGy(t, high_energy=is_high_energy(beam))
    target = float(target_mgd_mGy)
    if not (math.isfinite(target) and target > 0):
        raise PhysicsError(f"target_mgd_mGy={target_mgd_mGy!r} must be > 0")
    per_mas = mean_glandular_dose_mGy(beam, t, 1.0, glandularity=glandularity, paddle_pmma_mm=paddle_pmma_mm)
    return target / per_mas
