"""Energy-integrating CsI(Tl) detector model.

Approximation (stated): a photon of energy E that undergoes a photoelectric
interaction in the 0.2 mm CsI layer deposits all of E; Compton and Rayleigh
interactions, K-fluorescence escape (Cs/I K edges at 36.0/33.2 keV), optical
spread and electronic noise are ignored.  The signal is proportional to the
deposited energy, so the expected absorbed energy per incident photon is

    e(E) = E * (1 - exp(-mu_pe,CsI(E) * t))

in keV.  Columnar CsI packing is ignored (bulk density 4.51 g/cm^3).
"""

from __future__ import annotations

import numpy as np

from cemrecon.physics import _constants as C

__all__ = ["absorbed_energy_keV", "absorption_efficiency", "pixel_area_mm2"]


def absorption_efficiency(energies_keV, *, csi_mm: float = C.CSI_THICKNESS_MM) -> np.ndarray:
    """Fraction of incident photons absorbed photoelectrically in ``csi_mm`` of CsI."""
    from cemrecon.physics.materials import get_material, photoelectric_mass_atten_cm2_g

    csi = get_material("csi")
    mu = photoelectric_mass_atten_cm2_g(csi, energies_keV) * csi.density_g_cm3
    return -np.expm1(-mu * csi_mm / 10.0)


def absorbed_energy_keV(energies_keV, *, csi_mm: float = C.CSI_THICKNESS_MM) -> np.ndarray:
    """Expected energy (keV) deposited in the CsI per incident photon of energy E."""
    e = np.asarray(energies_keV, dtype=np.float64)
    return e * absorption_efficiency(e, csi_mm=csi_mm)


def pixel_area_mm2(pixel_mm: float) -> float:
    """Area of a square pixel of pitch ``pixel_mm`` (fill factor taken as 1)."""
    return float(pixel_mm) ** 2
