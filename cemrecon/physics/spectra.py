"""X-ray beams and their spectra (spekpy), at the detector plane.

The tube model is spekpy's default (``spekpy-v2-casim`` physics, PENELOPE attenuation
data) with a 12 degree anode and a 1 mm Be window (physics.md).  The added filter is
applied by spekpy; the compression paddle (PMMA) and the detector cover (carbon fibre)
are applied here with the xraylib attenuation of :mod:`cemrecon.physics.materials`,
so the breast, paddle and detector use one attenuation data set.

Geometry and the values used (see :mod:`cemrecon.physics._constants`):
source-to-detector distance 650 mm, 0.5 keV bins, paddle 2.5 mm PMMA (a parameter),
1 mm carbon-fibre cover (1.55 g/cm^3, a parameter).  Air along the beam path is
ignored (65 cm of air would attenuate 17 keV photons by ~8 %; physics.md's tables
ignore it too).
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass, field

import numpy as np

from cemrecon.errors import PhysicsError
from cemrecon.physics import _constants as C

__all__ = ["Beam", "Spectrum", "spectrum", "air_kerma_uGy_per_mAs", "is_high_energy"]

log = logging.getLogger(__name__)


def checked_mm(name: str, value, lo: float, hi: float, *, open_low: bool = False) -> float:
    """``float(value)`` if it lies in [lo, hi] (or (lo, hi]); else PhysicsError naming it."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise PhysicsError(f"{name} must be a number, got {value!r}") from None
    ok = math.isfinite(v) and (v > lo if open_low else v >= lo) and v <= hi
    if not ok:
        raise PhysicsError(f"{name}={value!r} outside {'(' if open_low else '['}{lo:g}, {hi:g}] mm")
    return v


def _symbol(value, *, what: str, accepted: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise PhysicsError(f"{what} must be a string (element symbol or DICOM term); got {value!r}")
    text = value.strip()
    upper = text.upper()
    if upper in C.DICOM_MATERIAL_TERMS:
        text = C.DICOM_MATERIAL_TERMS[upper]
    else:
        text = text.capitalize()
    if text not in accepted:
        raise PhysicsError(
            f"{what} {value!r} is not supported; accepted element symbols: {', '.join(accepted)} "
            f"(or DICOM terms {', '.join(k for k, v in C.DICOM_MATERIAL_TERMS.items() if v in accepted)})"
        )
    return text


@dataclass(frozen=True)
class Beam:
    """An x-ray beam: anode, added filter (material, thickness in mm) and tube voltage.

    Frozen and hashable, so spectra can be cached on it.  Materials are element
    symbols: anodes ``"Mo"``, ``"Rh"``, ``"W"``; filters ``"Mo"``, ``"Rh"``, ``"Ag"``,
    ``"Cu"``, ``"Al"``, ``"Ti"``.

    Raises
    ------
    PhysicsError
        Unknown anode or filter material, ``kvp`` outside 20-50 kV, or a filter
        thickness outside 0-5 mm.

    Examples
    --------
    >>> Beam("Rh", "Cu", 0.3, 49)
    Beam(anode='Rh', filter_material='Cu', filter_mm=0.3, kvp=49.0)
    """

    anode: str
    filter_material: str
    filter_mm: float
    kvp: float

    def __post_init__(self):
        if self.anode not in C.ANODES:
            raise PhysicsError(
                f"Beam anode {self.anode!r} is not supported; accepted: {', '.join(C.ANODES)} "
                "(use Beam.from_dicom_terms for DICOM spellings)"
            )
        if self.filter_material not in C.FILTERS:
            raise PhysicsError(
                f"Beam filter_material {self.filter_material!r} is not supported; accepted: "
                f"{', '.join(C.FILTERS)} (use Beam.from_dicom_terms for DICOM spellings)"
            )
        try:
            kvp = float(self.kvp)
            filter_mm = float(self.filter_mm)
        except (TypeError, ValueError):
            raise PhysicsError(
                f"Beam kvp and filter_mm must be numbers; got kvp={self.kvp!r}, filter_mm={self.filter_mm!r}"
            ) from None
        if not C.KVP_MIN <= kvp <= C.KVP_MAX:
            raise PhysicsError(f"Beam kvp={kvp!r} outside the supported {C.KVP_MIN:g}-{C.KVP_MAX:g} kV")
        if not 0.0 <= filter_mm <= C.FILTER_MM_MAX:
            raise PhysicsError(f"Beam filter_mm={filter_mm!r} outside 0-{C.FILTER_MM_MAX:g} mm")
        object.__setattr__(self, "kvp", kvp)
        object.__setattr__(self, "filter_mm", filter_mm)

    @classmethod
    def from_dicom_terms(cls, kvp, anode, filter_material, filter_mm) -> "Beam":
        """Build a beam from DICOM defined terms (``RHODIUM``, ``COPPER``...) or symbols.

        Examples
        --------
        >>> Beam.from_dicom_terms(49, "RHODIUM", "COPPER", 0.3)
        Beam(anode='Rh', filter_material='Cu', filter_mm=0.3, kvp=49.0)
        """
        return cls(
            _symbol(anode, what="anode", accepted=C.ANODES),
            _symbol(filter_material, what="filter material", accepted=C.FILTERS),
            filter_mm,
            kvp,
        )

    def __str__(self) -> str:
        return f"{self.anode}/{self.filter_material} {self.filter_mm * 1000:g} um {self.kvp:g} kV"


def is_high_energy(beam: Beam) -> bool:
    """True for a CEM high-energy beam (kVp >= 40, or a Cu/Ti/Al filter)."""
    return beam.kvp >= 40.0 or beam.filter_material in ("Cu", "Ti", "Al")


@dataclass(frozen=True, eq=False)
class Spectrum:
    """Photon spectrum at the detector plane (arrays are read-only; shared by the cache).

    Attributes
    ----------
    energies_keV : ndarray
        Bin centres in keV (0.5 keV bins; empty low-energy bins dropped).
    fluence_per_mm2_per_mAs : ndarray
        Photons per bin per mm^2 per mAs at the detector plane (SID), behind the
        paddle and the detector cover, with no breast.
    entrance_fluence_per_mm2_per_mAs : ndarray
        The same at the detector plane distance, behind the paddle but *before* the
        cover: the beam that enters the breast (for dose; scale by inverse square to
        the entrance surface).
    air_kerma_uGy_per_mAs : float
        Air kerma of ``entrance_fluence`` (behind the paddle, at SID, in air).
    beam, paddle_pmma_mm, cover_mm, sid_mm
        What was modelled.
    """

    energies_keV: np.ndarray
    fluence_per_mm2_per_mAs: np.ndarray
    entrance_fluence_per_mm2_per_mAs: np.ndarray
    air_kerma_uGy_per_mAs: float
    beam: Beam
    paddle_pmma_mm: float = C.PADDLE_PMMA_MM
    cover_mm: float = C.DETECTOR_COVER_MM
    sid_mm: float = C.SID_MM
    bin_keV: float = field(default=C.ENERGY_BIN_KEV)

    @property
    def mean_energy_keV(self) -> float:
        """Fluence-weighted mean energy at the detector plane (no breast)."""
        f = self.fluence_per_mm2_per_mAs
        return float(np.sum(f * self.energies_keV) / np.sum(f))


def air_kerma_uGy_per_mAs(energies_keV, fluence_per_mm2_per_mAs) -> float:
    """Air kerma in uGy from a binned fluence (photons per bin per mm^2).

    ``K = sum_E Phi(E) E (mu_en/rho)_air(E)``, with ``mu_en/rho`` from
    :func:`cemrecon.physics.materials.mass_energy_absorption_cm2_g`.
    """
    from cemrecon.physics.materials import mass_energy_absorption_cm2_g

    e = np.asarray(energies_keV, dtype=np.float64)
    phi_cm2 = np.asarray(fluence_per_mm2_per_mAs, dtype=np.float64) * 100.0  # per cm^2
    muen = mass_energy_absorption_cm2_g("air", e)  # cm^2/g
    gray = np.sum(phi_cm2 * e * C.KEV_TO_J * muen) * 1000.0  # J/g -> J/kg
    return float(gray * 1e6)


@functools.lru_cache(maxsize=64)
def _spekpy_spectrum(beam: Beam, sid_mm: float, bin_keV: float) -> tuple[np.ndarray, np.ndarray]:
    """Spekpy spectrum behind the Be window and the filter: (energies, photons/bin/mm^2/mAs)."""
    import spekpy

    try:
        spek = spekpy.Spek(kvp=beam.kvp, th=C.ANODE_ANGLE_DEG, targ=beam.anode, dk=bin_keV, z=sid_mm / 10.0)
        spek.filter("Be", C.BE_WINDOW_MM)
        if beam.filter_mm > 0:
            spek.filter(beam.filter_material, beam.filter_mm)
        energies, per_bin_cm2 = spek.get_spectrum(diff=False)
    except Exception as exc:  # spekpy raises bare Exceptions
        raise PhysicsError(f"spekpy could not model beam {beam}: {exc}") from exc
    return np.asarray(energies, dtype=np.float64), np.asarray(per_bin_cm2, dtype=np.float64) / 100.0


@functools.lru_cache(maxsize=256)
def _spectrum_cached(beam: Beam, paddle_pmma_mm: float, cover_mm: float, sid_mm: float) -> Spectrum:
    from cemrecon.physics.materials import mu_linear_cm

    energies, fluence = _spekpy_spectrum(beam, sid_mm, C.ENERGY_BIN_KEV)
    keep = fluence > C.FLUENCE_FLOOR_REL * fluence.max()
    first = int(np.argmax(keep))
    last = len(keep) - int(np.argmax(keep[::-1]))
    energies, fluence = energies[first:last].copy(), fluence[first:last].copy()
    entrance = fluence * np.exp(-mu_linear_cm("pmma", energies) * paddle_pmma_mm / 10.0)
    detector = entrance * np.exp(-mu_linear_cm("carbon_fibre", energies) * cover_mm / 10.0)
    kerma = air_kerma_uGy_per_mAs(energies, entrance)
    for a in (energies, entrance, detector):
        a.setflags(write=False)
    log.debug("spectrum %s: %d bins %.2f-%.2f keV, K=%.2f uGy/mAs", beam, len(energies), energies[0],
              energies[-1], kerma)
    return Spectrum(energies, detector, entrance, kerma, beam, paddle_pmma_mm, cover_mm, sid_mm)


def spectrum(
    beam: Beam,
    *,
    paddle_pmma_mm: float = C.PADDLE_PMMA_MM,
    cover_mm: float = C.DETECTOR_COVER_MM,
    sid_mm: float = C.SID_MM,
) -> Spectrum:
    """Spectrum of ``beam`` at the detector plane, behind paddle and detector cover (cached).

    Parameters
    ----------
    beam : Beam
    paddle_pmma_mm : float, optional
        PMMA compression paddle thickness in mm (default 2.5).
    cover_mm : float, optional
        Carbon-fibre detector cover thickness in mm (default 1.0).
    sid_mm : float, optional
        Source-to-detector distance in mm (default 650).

    Returns
    -------
    Spectrum
        Photons per 0.5 keV bin per mm^2 per mAs, and the air kerma per mAs.

    Examples
    --------
    >>> s = spectrum(Beam("Rh", "Rh", 0.025, 31))
    >>> 17 < s.mean_energy_keV < 21
    True
    """
    if not isinstance(beam, Beam):
        raise TypeError(f"beam must be a cemrecon.physics.Beam, got {type(beam).__name__}")
    paddle_pmma_mm = checked_mm("paddle_pmma_mm", paddle_pmma_mm, 0.0, 50.0)
    cover_mm = checked_mm("cover_mm", cover_mm, 0.0, 10.0)
    sid_mm = checked_mm("sid_mm", sid_mm, 300.0, 2000.0)
    return _spectrum_cached(beam, float(paddle_pmma_mm), float(cover_mm), float(sid_mm))
