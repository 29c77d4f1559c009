"""Materials and x-ray attenuation from xraylib.

Compositions (mass fractions) and densities follow the project's reference notes
(``physics.md`` section 2):

========================  =========================================================  =====
name                      composition (mass fraction)                                g/cm3
========================  =========================================================  =====
``adipose``               Hammerstein: H .112, C .619, N .017, O .251, P .001        0.93
``glandular``             Hammerstein: H .102, C .184, N .032, O .677, P .005        1.04
``skin``                  ICRU-44: H .100 C .204 N .042 O .645 Na .002 P .001        1.09
                          S .002 Cl .003 K .001
``muscle``                ICRU-44 skeletal muscle: H .102 C .143 N .034 O .710       1.05
                          Na .001 P .002 S .003 Cl .001 K .004
``hydroxyapatite``        Ca10(PO4)6(OH)2                                            3.16
``calcium_oxalate``       CaC2O4.H2O                                                 2.12
``pmma``                  C5H8O2                                                     1.19
``iodine``                I (element; in images it is an areal density, mg/cm2)     4.93
``cu``                    Cu                                                         8.96
``csi``                   CsI                                                        4.51
``carbon_fibre``          C (carbon-fibre composite modelled as carbon)              1.55
``air``                   dry air (NIST): N .755268 O .231781 Ar .012827 C .000124   0.001205
========================  =========================================================  =====

Attenuation is xraylib's total cross section *with* coherent scattering
(``CS_Total``), summed by mass fraction (mixture rule).  Energy absorption uses
``mu_en/rho ~ mu_pe/rho + mu_incoh/rho * E / (m_e c^2)`` (photoelectric absorption
plus the first-order Klein-Nishina mean energy transfer); it agrees with NIST's air
table to < 1 % at 15-40 keV.  (xraylib 4.3's ``CS_Energy`` is not used: for air at
20 keV it returns 0.36 cm2/g against NIST's 0.539.)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from cemrecon.errors import PhysicsError
from cemrecon.physics import _constants as C

__all__ = [
    "Material",
    "MATERIALS",
    "get_material",
    "mass_atten_cm2_g",
    "mu_linear_cm",
    "mass_energy_absorption_cm2_g",
    "photoelectric_mass_atten_cm2_g",
]


@dataclass(frozen=True)
class Material:
    """A material: name, mass fractions by element symbol, density in g/cm^3."""

    name: str
    mass_fractions: tuple[tuple[str, float], ...]
    density_g_cm3: float

    @classmethod
    def from_fractions(cls, name: str, fractions: Mapping[str, float], density_g_cm3: float) -> "Material":
        total = float(sum(fractions.values()))
        if not 0.98 <= total <= 1.02:
            raise PhysicsError(f"material {name!r}: mass fractions sum to {total:.4f}, expected 1")
        # renormalise the rounding of published compositions (e.g. Hammerstein sums to 1.000)
        return cls(name, tuple((el, w / total) for el, w in fractions.items()), float(density_g_cm3))

    @classmethod
    def from_formula(cls, name: str, formula: str, density_g_cm3: float) -> "Material":
        import xraylib

        parsed = xraylib.CompoundParser(formula)
        fractions = {
            xraylib.AtomicNumberToSymbol(z): w for z, w in zip(parsed["Elements"], parsed["massFractions"])
        }
        return cls.from_fractions(name, fractions, density_g_cm3)


_DEFINITIONS: dict[str, tuple[str, object, float]] = {
    # name: (kind, fractions or formula, density)
    "adipose": ("fractions", {"H": 0.112, "C": 0.619, "N": 0.017, "O": 0.251, "P": 0.001}, 0.93),
    "glandular": ("fractions", {"H": 0.102, "C": 0.184, "N": 0.032, "O": 0.677, "P": 0.005}, 1.04),
    "skin": (
        "fractions",
        {"H": 0.100, "C": 0.204, "N": 0.042, "O": 0.645, "Na": 0.002, "P": 0.001, "S": 0.002, "Cl": 0.003,
         "K": 0.001},
        1.09,
    ),
    "muscle": (
        "fractions",
        {"H": 0.102, "C": 0.143, "N": 0.034, "O": 0.710, "Na": 0.001, "P": 0.002, "S": 0.003, "Cl": 0.001,
         "K": 0.004},
        1.05,
    ),
    "hydroxyapatite": ("formula", "Ca10P6O26H2", 3.16),
    "calcium_oxalate": ("formula", "CaC2O5H2", 2.12),
    "pmma": ("formula", "C5H8O2", 1.19),
    "iodine": ("fractions", {"I": 1.0}, 4.93),
    "cu": ("fractions", {"Cu": 1.0}, 8.96),
    "csi": ("formula", "CsI", C.CSI_DENSITY_G_CM3),
    "carbon_fibre": ("fractions", {"C": 1.0}, C.CARBON_FIBRE_DENSITY_G_CM3),
    "air": ("fractions", {"N": 0.755268, "O": 0.231781, "Ar": 0.012827, "C": 0.000124}, 0.001205),
}

#: Names of the known materials.
MATERIALS: tuple[str, ...] = tuple(_DEFINITIONS)


@functools.lru_cache(maxsize=None)
def get_material(name: str) -> Material:
    """Return the :class:`Material` called ``name`` (see the module docstring).

    Raises
    ------
    PhysicsError
        If ``name`` is not a known material.
    """
    try:
        kind, spec, density = _DEFINITIONS[name]
    except (KeyError, TypeError):
        raise PhysicsError(
            f"unknown material {name!r}; known materials: {', '.join(MATERIALS)}"
        ) from None
    if kind == "formula":
        return Material.from_formula(name, spec, density)  # type: ignore[arg-type]
    return Material.from_fractions(name, spec, density)  # type: ignore[arg-type]


def _as_material(material: str | Material) -> Material:
    return material if isinstance(material, Material) else get_material(material)


def _mix(material: str | Material, energies_keV, cross_section) -> np.ndarray:
    import xraylib

    mat = _as_material(material)
    e = np.atleast_1d(np.asarray(energies_keV, dtype=np.float64))
    if e.size and (not np.all(np.isfinite(e)) or e.min() <= 1.0 or e.max() > 500.0):
        raise PhysicsError(f"energies_keV must lie in (1, 500] keV; got {e.min()}..{e.max()}")
    out = np.zeros(e.shape, dtype=np.float64)
    flat = out.reshape(-1)
    ef = e.reshape(-1)
    for symbol, w in mat.mass_fractions:
        z = xraylib.SymbolToAtomicNumber(symbol)
        flat += w * np.array([cross_section(z, float(x)) for x in ef])
    return out.reshape(np.shape(energies_keV)) if np.ndim(energies_keV) else out


def mass_atten_cm2_g(material: str | Material, energies_keV) -> np.ndarray:
    """Total mass attenuation coefficient mu/rho in cm^2/g, coherent scattering included.

    Parameters
    ----------
    material : str or Material
        A name from :data:`MATERIALS` or a :class:`Material`.
    energies_keV : array_like
        Photon energies in keV.

    Examples
    --------
    >>> round(float(mass_atten_cm2_g("iodine", [33.3])[0]), 1)
    35.5
    """
    import xraylib

    return _mix(material, energies_keV, xraylib.CS_Total)


def mu_linear_cm(material: str | Material, energies_keV) -> np.ndarray:
    """Linear attenuation coefficient mu in 1/cm (mass attenuation x density).

    Examples
    --------
    >>> round(float(mu_linear_cm("glandular", [20.0])[0]), 3)
    0.781
    """
    mat = _as_material(material)
    return mass_atten_cm2_g(mat, energies_keV) * mat.density_g_cm3


def photoelectric_mass_atten_cm2_g(material: str | Material, energies_keV) -> np.ndarray:
    """Photoelectric mass attenuation coefficient in cm^2/g (xraylib ``CS_Photo``)."""
    import xraylib

    return _mix(material, energies_keV, xraylib.CS_Photo)


def mass_energy_absorption_cm2_g(material: str | Material, energies_keV) -> np.ndarray:
    """Approximate mass energy-absorption coefficient mu_en/rho in cm^2/g.

    ``mu_pe/rho + mu_incoh/rho * E / (m_e c^2)``: photoelectric absorption (fluorescence
    assumed reabsorbed, right for low-Z tissue and air) plus the low-energy limit of the
    Klein-Nishina mean energy transferred to the Compton electron.  Within ~1 % of the
    NIST tables for air and water at 15-50 keV.
    """
    import xraylib

    e = np.asarray(energies_keV, dtype=np.float64)
    incoh = _mix(material, e, xraylib.CS_Compt)
    return photoelectric_mass_atten_cm2_g(material, e) + incoh * e / C.ELECTRON_REST_KEV
