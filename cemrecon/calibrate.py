"""Iodine (and weight) calibration: a versioned JSON model of mg I/cm^2 from LE/HE signals.

Model
-----
Signals enter as *normalised log signals*

    lnS = ln((DN - dark_offset_dn) / (gain_dn_per_keV * mAs * pixel_mm^2)),

the log of the absorbed energy per mAs per mm^2 of detector (keV), so exposures
with different mAs, pixel pitch or detector gain are comparable and the spectral
model (:class:`cemrecon.physics.SignalModel`) predicts them directly.

1. **Physics polynomial per beam pair.**  For each (LE beam, HE beam) the iodine
   areal density is a polynomial of total degree 2 in the standardised
   ``(lnL, lnH, T_mm)``, fitted to noise-free primary-only slabs of the spectral
   model (thickness every 5 mm over 15-100 mm, skin 1.5 mm per side,
   glandularity 0-100 %, iodine 0-5 mg/cm^2).  physics.md Table 3: this form
   reaches 0.012 mg/cm^2 RMS / 0.028 max, where a model in (lnL, lnH) alone
   leaves 0.73 RMS.  Per beam pair because AEC steps kVp with thickness (the
   Pristina-like rule changes LE and HE kVp every ~10 mm), so no fixed-beam
   group would span the thickness range; the spectral model carries the kVp,
   filter and thickness dependence of both the iodine conversion and the
   tissue-cancelling weight.
2. **Measured correction** (:func:`fit_calibration`, a site's exposures):
   ``I = c0 + c1 P + c2 T + c3 P T`` applied to the physics polynomial ``P``,
   and ``w = w_phys(T) (a0 + a1 T)`` for the weight, fitted to insert ROIs of
   known iodine on slabs of known thickness.  When the headers carry no
   detector gain, ``ln gain`` is fitted too (one value per system).  The
   physics-predicted calibration is the identity correction.

JSON schema (``schema_version`` 1)
----------------------------------
::

    {
      "format": "cemrecon-iodine-calibration",
      "schema_version": 1,
      "calibration_id": "sha1 of the model part, 12 hex digits",
      "source": "measured" | "physics",
      "created": "ISO 8601 UTC", "cemrecon_version": "...",
      "system": {"manufacturer", "model", "station", ...},
      "signal": {"definition": "ln((DN - dark_offset_dn) / (gain * mAs * pixel_mm^2))",
                 "unit": "keV per mAs per mm^2",
                 "ln_gain_dn_per_kev": null | float, "gain_source": "header" | "fitted" | ...},
      "model_form": "...",
      "correction": {"form": "c0 + c1*P + c2*T_mm + c3*P*T_mm", "coefficients": [c0, c1, c2, c3]},
      "weight_correction": {"form": "w = w_phys(T_mm) * (a0 + a1*T_mm)", "coefficients": [a0, a1]},
      "thickness_range_mm": [lo, hi],
      "beam_qualities": {"kvp": [lo, hi], "anodes": [...], "filters": [...]},
      "residuals_mg_cm2": {"rms", "max", "n"},
      "inputs": [... one entry per exposure or grid used ...],
      "groups": [            # physics polynomials of the beam pairs seen (cache; others
        {"le": {"anode", "filter_material", "filter_mm", "kvp"}, "he": {...},   # are computed
         "thickness_range_mm": [lo, hi],                                         # on demand)
         "exponents": [[a, b, t], ...], "center": [3], "scale": [3], "coefficients": [...],
         "weight": {"form": "polynomial in T_mm", "coefficients": [...], "source": "physics"},
         "residuals_mg_cm2": {"rms", "max", "n"}}
      ]
    }

Readers accept ``schema_version`` <= theirs; unknown top-level keys are kept
(``Calibration.extra``) and written back.

Calibration inputs (:func:`fit_calibration`)
--------------------------------------------
* Phantom calibration mode: folders written by
  :func:`cemrecon.phantom.write_calibration` (each exposure's truth JSON next to
  it gives the insert ROIs and values).
* A site's exposures: LE/HE DICOM files plus an *inserts file* (JSON)::

      {"format": "cemrecon-calibration-inserts", "version": 1,
       "exposures": [
         {"le": "path/LE.dcm", "he": "path/HE.dcm",          # relative to the JSON file
          "thickness_mm": 45.0,                                # optional: default header
          "glandularity": 0.5,                                 # optional, of the background
          "rois": [{"row": 120, "col": 300, "radius_mm": 4.0,  # centre in pixels
                    "iodine_mg_cm2": 1.0, "glandularity": 0.5}, ...]}]}

  Every ROI is a disc; ``iodine_mg_cm2`` is the insert's areal density (0 for a
  background ROI).
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import itertools
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cemrecon import __version__
from cemrecon._fileio import write_json_atomic
from cemrecon.errors import CalibrationError, CemreconError, OutputError

__all__ = [
    "SCHEMA_VERSION",
    "FORMAT",
    "INSERTS_FORMAT",
    "BeamGroup",
    "Calibration",
    "CalibrationSample",
    "fit_calibration",
    "fit_samples",
    "beam_to_dict",
    "normalised_log_signal",
]
# fit_calibration is defined at the end of the module (after the sample collection helpers)

logger = logging.getLogger(__name__)

FORMAT = "cemrecon-iodine-calibration"
INSERTS_FORMAT = "cemrecon-calibration-inserts"
SCHEMA_VERSION = 1
SIGNAL_DEFINITION = "ln((DN - dark_offset_dn) / (gain_dn_per_kev * mAs * pixel_mm^2))"
SIGNAL_UNIT = "keV per mAs per mm^2"
MODEL_FORM = (
    "I = c0 + c1*P + c2*T_mm + c3*P*T_mm; P = physics polynomial of total degree 2 in "
    "standardised (lnL, lnH, T_mm) per beam pair"
)
CORRECTION_FORM = "c0 + c1*P + c2*T_mm + c3*P*T_mm"
WEIGHT_CORRECTION_FORM = "w = w_phys(T_mm) * (a0 + a1*T_mm)"
IDENTITY_CORRECTION = (0.0, 1.0, 0.0, 0.0)
IDENTITY_WEIGHT_CORRECTION = (1.0, 0.0)
#: polynomial degree of the iodine model (physics.md Table 3: degree 2 in (lnL, lnH, T)
#: reaches 0.012 RMS / 0.028 max noise-free; degree 3 gains nothing)
POLY_DEGREE = 2
#: beams match a stored group when the kVp agrees within this (kV); DICOM KVP is
#: written to 0.1-1 kV resolution
KVP_MATCH_TOL = 0.05
#: filter thickness match tolerance in mm (headers give 0.001 mm resolution)
FILTER_MATCH_TOL_MM = 0.0005
#: thickness range the physics model is offered for, mm (physics.md section 6: 21-102 mm
#: in a UK screening cohort)
PHYSICS_THICKNESS_RANGE_MM = (15.0, 100.0)
#: each physics polynomial is fitted over a window of +-15 mm around a centre on a 5 mm
#: grid (the header thickness rounded): one polynomial over 15-100 mm leaves 0.28 mg/cm^2
#: at 20 mm (the thin end is the most curved), a +-20 mm window 0.028 max (physics.md
#: Table 3's figure), +-10 mm 0.019; +-15 mm keeps a header error of a few mm inside it
PHYSICS_WINDOW_HALF_MM = 15.0
PHYSICS_WINDOW_STEP_MM = 5.0
#: lower end of any window: above the 2 x 1.5 mm of skin, with room for some tissue
PHYSICS_MIN_THICKNESS_MM = 8.0
#: grid of the physics fit (physics.md Table 3 grid: T every 5 mm, 6 glandular steps,
#: I = 0, .5, 1, 2, 3, 4; we add 5 mg/cm^2 to cover strong lesions on top of BPE)
PHYSICS_T_STEP_MM = 2.5
PHYSICS_GLANDULARITY = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
PHYSICS_IODINE_MG_CM2 = (0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0)


def _now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def beam_to_dict(beam: Any) -> dict[str, Any]:
    """Beam (or mapping) -> ``{"anode", "filter_material", "filter_mm", "kvp"}``."""
    if isinstance(beam, Mapping):
        def get(k):
            return beam[k]
    else:
        def get(k):
            return getattr(beam, k)
    try:
        return {
            "anode": str(get("anode")),
            "filter_material": str(get("filter_material")),
            "filter_mm": round(float(get("filter_mm")), 4),
            "kvp": round(float(get("kvp")), 2),
        }
    except (KeyError, AttributeError, TypeError, ValueError) as exc:
        raise CalibrationError(f"beam {beam!r} lacks anode/filter_material/filter_mm/kvp ({exc})") from None


def _beam_obj(beam: Any):
    from cemrecon.physics import Beam

    if isinstance(beam, Beam):
        return beam
    d = beam_to_dict(beam)
    return Beam(d["anode"], d["filter_material"], float(d["filter_mm"]), float(d["kvp"]))


def _beams_match(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return (
        a["anode"] == b["anode"]
        and a["filter_material"] == b["filter_material"]
        and abs(float(a["filter_mm"]) - float(b["filter_mm"])) <= FILTER_MATCH_TOL_MM
        and abs(float(a["kvp"]) - float(b["kvp"])) <= KVP_MATCH_TOL
    )


def _beam_label(d: Mapping[str, Any]) -> str:
    return f"{d['anode']}/{d['filter_material']} {float(d['filter_mm']) * 1000:g} um {float(d['kvp']):g} kV"


def normalised_log_signal(dn, *, dark_offset_dn: float, gain_dn_per_kev: float, mas: float,
                          pixel_mm: float, floor_kev: float = 1e-3) -> np.ndarray:
    """``ln((DN - dark) / (gain * mAs * pixel_mm^2))`` as float64 (keV per mAs per mm^2).

    Values at or below the dark offset (dead or saturated-dark pixels) are floored
    at ``floor_kev`` keV per mAs per mm^2 before the log, so the result is finite.
    """
    for name, v in (("gain_dn_per_kev", gain_dn_per_kev), ("mas", mas), ("pixel_mm", pixel_mm)):
        if not (isinstance(v, (int, float, np.floating)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name}={v!r} must be a finite number > 0")
    scale = float(gain_dn_per_kev) * float(mas) * float(pixel_mm) ** 2
    s = (np.asarray(dn, dtype=np.float64) - float(dark_offset_dn)) / scale
    return np.log(np.maximum(s, floor_kev))


# --------------------------------------------------------------------------------------
# polynomial machinery
# --------------------------------------------------------------------------------------
def _exponents(degree: int, max_t_power: int) -> list[tuple[int, int, int]]:
    out = []
    for total in range(degree + 1):
        for a, b in itertools.product(range(total + 1), repeat=2):
            t = total - a - b
            if t < 0 or t > max_t_power:
                continue
            out.append((a, b, t))
    return out


def _eval_poly(
    zl: np.ndarray, zh: np.ndarray, zt: np.ndarray, exponents: Sequence[Sequence[int]], coef: Sequence[float]
) -> np.ndarray:
    """Evaluate sum_k c_k zl^a zh^b zt^t in float64 (zl, zh, zt broadcastable)."""
    shape = np.broadcast_shapes(np.shape(zl), np.shape(zh), np.shape(zt))
    out = np.zeros(shape, dtype=np.float64)
    powers: dict[tuple[int, int], np.ndarray] = {}

    def pw(i: int, arr: np.ndarray, p: int):
        if p == 0:
            return None
        key = (i, p)
        if key not in powers:
            powers[key] = arr if p == 1 else arr**p
        return powers[key]

    for (a, b, t), c in zip(exponents, coef):
        term = float(c)
        for i, arr, p in ((0, zl, a), (1, zh, b), (2, zt, t)):
            v = pw(i, arr, p)
            if v is not None:
                term = term * v
        out += term
    return out


def _design(z: np.ndarray, exponents: Sequence[Sequence[int]]) -> np.ndarray:
    cols = [np.prod([z[:, i] ** e[i] for i in range(3)], axis=0) for e in exponents]
    return np.stack(cols, axis=1)


@dataclass
class BeamGroup:
    """The calibrated model for one (LE beam, HE beam) quality.

    Attributes
    ----------
    le, he : dict
        Beam descriptions (``anode``, ``filter_material``, ``filter_mm``, ``kvp``).
    thickness_range_mm : (float, float)
    exponents : list of (a, b, t)
        Powers of the standardised lnL, lnH and T of each coefficient.
    center, scale : list of 3 floats
        Standardisation of (lnL, lnH, T_mm).
    coefficients : list of float
        mg/cm^2.
    weight_coefficients : list of float
        ``w(T) = sum_j a_j T_mm^j``.
    weight_source : str
        ``"measured"`` or ``"physics"``.
    residuals : dict
        ``rms``, ``max`` (mg/cm^2), ``n`` (points) of the fit.
    """

    le: dict[str, Any]
    he: dict[str, Any]
    thickness_range_mm: tuple[float, float]
    exponents: list[tuple[int, int, int]]
    center: list[float]
    scale: list[float]
    coefficients: list[float]
    weight_coefficients: list[float]
    weight_source: str = "measured"
    residuals: dict[str, float] = field(default_factory=dict)

    def matches(self, le_beam: Any, he_beam: Any) -> bool:
        """True when both beams match this group (tolerances: kVp 0.5 kV, filter 5 um)."""
        return _beams_match(self.le, beam_to_dict(le_beam)) and _beams_match(self.he, beam_to_dict(he_beam))

    def predict(self, ln_le, ln_he, thickness_mm) -> np.ndarray:
        """Iodine in mg/cm^2 (float64) from normalised log signals and thickness."""
        c, s = self.center, self.scale
        zl = (np.asarray(ln_le, dtype=np.float64) - c[0]) / s[0]
        zh = (np.asarray(ln_he, dtype=np.float64) - c[1]) / s[1]
        zt = (np.asarray(thickness_mm, dtype=np.float64) - c[2]) / s[2]
        return _eval_poly(zl, zh, zt, self.exponents, self.coefficients)

    def gradient(self, ln_le, ln_he, thickness_mm) -> tuple[np.ndarray, np.ndarray]:
        """dI/dlnL and dI/dlnH (mg/cm^2 per ln unit) at the given point(s)."""
        c, s = self.center, self.scale
        zl = (np.asarray(ln_le, dtype=np.float64) - c[0]) / s[0]
        zh = (np.asarray(ln_he, dtype=np.float64) - c[1]) / s[1]
        zt = (np.asarray(thickness_mm, dtype=np.float64) - c[2]) / s[2]
        gl = np.zeros(np.broadcast_shapes(zl.shape, zh.shape, zt.shape))
        gh = np.zeros_like(gl)
        for (a, b, t), k in zip(self.exponents, self.coefficients):
            if a:
                gl = gl + k * a * zl ** (a - 1) * zh**b * zt**t
            if b:
                gh = gh + k * b * zl**a * zh ** (b - 1) * zt**t
        return gl / s[0], gh / s[1]

    def weight(self, thickness_mm) -> np.ndarray | float:
        """Tissue-cancelling weight at ``thickness_mm``."""
        t = np.asarray(thickness_mm, dtype=np.float64)
        w = np.polynomial.polynomial.polyval(t, self.weight_coefficients)
        return float(w) if np.ndim(w) == 0 else w

    def to_dict(self) -> dict[str, Any]:
        return {
            "le": dict(self.le),
            "he": dict(self.he),
            "thickness_range_mm": [float(v) for v in self.thickness_range_mm],
            "exponents": [list(map(int, e)) for e in self.exponents],
            "center": [float(v) for v in self.center],
            "scale": [float(v) for v in self.scale],
            "coefficients": [float(v) for v in self.coefficients],
            "weight": {
                "form": "polynomial in T_mm",
                "coefficients": [float(v) for v in self.weight_coefficients],
                "source": self.weight_source,
            },
            "residuals_mg_cm2": {k: (int(v) if k == "n" else float(v)) for k, v in self.residuals.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "calibration") -> "BeamGroup":
        try:
            exps = [tuple(int(x) for x in e) for e in d["exponents"]]
            coef = [float(x) for x in d["coefficients"]]
            center = [float(x) for x in d["center"]]
            scale = [float(x) for x in d["scale"]]
            weight = d.get("weight", {})
            group = cls(
                le=beam_to_dict(d["le"]),
                he=beam_to_dict(d["he"]),
                thickness_range_mm=tuple(float(x) for x in d["thickness_range_mm"]),
                exponents=exps,
                center=center,
                scale=scale,
                coefficients=coef,
                weight_coefficients=[float(x) for x in weight.get("coefficients", [])],
                weight_source=str(weight.get("source", "measured")),
                residuals=dict(d.get("residuals_mg_cm2", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CalibrationError(f"{where}: malformed group ({type(exc).__name__}: {exc})") from None
        if len(exps) != len(coef) or any(len(e) != 3 for e in exps):
            raise CalibrationError(
                f"{where}: group has {len(coef)} coefficients for {len(exps)} exponent triples"
            )
        if len(center) != 3 or len(scale) != 3 or not all(s > 0 for s in scale):
            raise CalibrationError(f"{where}: center/scale must be 3 numbers with scale > 0, got {center}/{scale}")
        return group


# --------------------------------------------------------------------------------------
# the calibration object
# --------------------------------------------------------------------------------------
def _apply_correction(p: np.ndarray, t: np.ndarray, c: Sequence[float]) -> np.ndarray:
    c0, c1, c2, c3 = c
    if (c0, c1, c2, c3) == IDENTITY_CORRECTION:
        return p
    return c0 + c1 * p + c2 * t + c3 * p * t


class Calibration:
    """A thickness-aware iodine calibration (see the module docstring).

    Build one with :meth:`physics_predicted` (spectral model only),
    :func:`fit_calibration` (measured) or :meth:`load`.

    Examples
    --------
    >>> from cemrecon.physics import Beam
    >>> cal = Calibration.physics_predicted()
    >>> le, he = Beam("Rh", "Ag", 0.03, 30), Beam("Rh", "Cu", 0.3, 47)
    >>> 0.2 < cal.weight(le, he, 50.0) < 0.35
    True
    """

    def __init__(
        self,
        groups: Sequence[BeamGroup] = (),
        *,
        source: str = "physics",
        correction: Sequence[float] = IDENTITY_CORRECTION,
        weight_correction: Sequence[float] = IDENTITY_WEIGHT_CORRECTION,
        ln_gain_dn_per_kev: float | None = None,
        gain_source: str | None = None,
        residuals: Mapping[str, float] | None = None,
        system: Mapping[str, Any] | None = None,
        created: str | None = None,
        cemrecon_version: str | None = None,
        inputs: Sequence[Any] | None = None,
        extra: Mapping[str, Any] | None = None,
    ):
        if source not in ("measured", "physics"):
            raise CalibrationError(f"calibration source {source!r} not accepted; use 'measured' or 'physics'")
        correction = tuple(float(v) for v in correction)
        weight_correction = tuple(float(v) for v in weight_correction)
        if len(correction) != 4 or len(weight_correction) != 2:
            raise CalibrationError(
                f"correction needs 4 coefficients and weight_correction 2; got {len(correction)} and "
                f"{len(weight_correction)}"
            )
        if not all(math.isfinite(v) for v in correction + weight_correction):
            raise CalibrationError(f"non-finite correction coefficients {correction} / {weight_correction}")
        self.groups = list(groups)
        self.source = source
        self.correction = correction
        self.weight_correction = weight_correction
        self.ln_gain_dn_per_kev = None if ln_gain_dn_per_kev is None else float(ln_gain_dn_per_kev)
        self.gain_source = gain_source
        self._residuals = dict(residuals) if residuals else None
        self.system = dict(system or {})
        self.created = created or _now_iso()
        self.cemrecon_version = cemrecon_version or __version__
        self.inputs = list(inputs or [])
        self.extra = dict(extra or {})

    # ---- description ----------------------------------------------------------------
    def __repr__(self) -> str:
        return (f"<Calibration {self.calibration_id} source={self.source} groups={len(self.groups)} "
                f"correction={self.correction}>")

    @property
    def gain_dn_per_kev(self) -> float | None:
        """The system gain fitted with this calibration (None: take it from each header)."""
        return None if self.ln_gain_dn_per_kev is None else math.exp(self.ln_gain_dn_per_kev)

    @property
    def thickness_range_mm(self) -> tuple[float, float]:
        """Range of validity: the measured thicknesses, or the physics grid."""
        rng = self.extra.get("_fit_thickness_range_mm")
        if rng:
            return (float(rng[0]), float(rng[1]))
        return PHYSICS_THICKNESS_RANGE_MM

    @property
    def residuals(self) -> dict[str, float]:
        """Fit residuals (mg/cm^2): of the measured fit, else pooled over the physics groups."""
        if self._residuals:
            return dict(self._residuals)
        n = sum(int(g.residuals.get("n", 0)) for g in self.groups)
        if n == 0:
            return {"rms": None, "max": None, "n": 0}
        ss = sum(float(g.residuals["rms"]) ** 2 * int(g.residuals["n"]) for g in self.groups)
        return {"rms": float(np.sqrt(ss / n)), "max": max(float(g.residuals["max"]) for g in self.groups), "n": n}

    @property
    def beam_qualities(self) -> dict[str, Any]:
        beams = [g.le for g in self.groups] + [g.he for g in self.groups]
        if not beams:
            return {"kvp": None, "anodes": [], "filters": []}
        kv = [float(b["kvp"]) for b in beams]
        return {
            "kvp": [min(kv), max(kv)],
            "anodes": sorted({b["anode"] for b in beams}),
            "filters": sorted({f"{b['filter_material']} {float(b['filter_mm']):g} mm" for b in beams}),
        }

    def _model_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "ln_gain_dn_per_kev": self.ln_gain_dn_per_kev,
            "correction": list(self.correction),
            "weight_correction": list(self.weight_correction),
        }

    @property
    def calibration_id(self) -> str:
        """Content hash (12 hex digits) of the fitted part of the model."""
        text = json.dumps(self._model_dict(), sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    # ---- model --------------------------------------------------------------------------
    def group(self, le_beam: Any, he_beam: Any, thickness_mm: float = 50.0) -> BeamGroup:
        """The physics polynomial for these beams around ``thickness_mm``.

        Stored groups are used first; otherwise the window (``+-15 mm`` around the
        thickness rounded to 5 mm) is fitted to the spectral model and kept.
        """
        le_d, he_d = beam_to_dict(le_beam), beam_to_dict(he_beam)
        t = float(thickness_mm)
        if not math.isfinite(t):
            raise CalibrationError(f"thickness_mm={thickness_mm!r} must be finite")
        centre = round(t / PHYSICS_WINDOW_STEP_MM) * PHYSICS_WINDOW_STEP_MM
        lo = max(centre - PHYSICS_WINDOW_HALF_MM, PHYSICS_MIN_THICKNESS_MM)
        hi = max(centre + PHYSICS_WINDOW_HALF_MM, lo + 2 * PHYSICS_WINDOW_HALF_MM)
        for g in self.groups:
            if (_beams_match(g.le, le_d) and _beams_match(g.he, he_d)
                    and abs(g.thickness_range_mm[0] - lo) < 1e-6 and abs(g.thickness_range_mm[1] - hi) < 1e-6):
                return g
        try:
            g = _physics_group(_beam_obj(le_d), _beam_obj(he_d), float(lo), float(hi))
        except Exception as exc:  # PhysicsError for unknown beams
            raise CalibrationError(
                f"calibration {self.calibration_id}: no model for LE {_beam_label(le_d)} + HE "
                f"{_beam_label(he_d)} at {t:g} mm: {exc}"
            ) from exc
        self.groups.append(g)
        return g

    def predict(self, ln_le, ln_he, thickness_mm, beams: tuple[Any, Any]) -> np.ndarray:
        """Iodine areal density (mg/cm^2, float64) from normalised log signals.

        Parameters
        ----------
        ln_le, ln_he : array_like
            Normalised log signals, keV per mAs per mm^2 (:func:`normalised_log_signal`).
        thickness_mm : float or array_like
            Compressed thickness (skin included), broadcastable with the signals.
        beams : (le_beam, he_beam)
            :class:`cemrecon.physics.Beam` or mappings.

        Notes
        -----
        Thicknesses outside :attr:`thickness_range_mm` are extrapolated with a
        log warning; results there carry no accuracy claim.
        """
        le_beam, he_beam = beams
        t = np.asarray(thickness_mm, dtype=np.float64)
        g = self.group(le_beam, he_beam, float(np.median(t)) if t.size else 50.0)
        lo, hi = self.thickness_range_mm
        if t.size and (float(np.min(t)) < lo - 1e-9 or float(np.max(t)) > hi + 1e-9):
            logger.warning(
                "thickness %.1f-%.1f mm outside the calibrated %.1f-%.1f mm (calibration %s): extrapolating",
                float(np.min(t)), float(np.max(t)), lo, hi, self.calibration_id,
            )
        return _apply_correction(g.predict(ln_le, ln_he, t), t, self.correction)

    def sensitivity(self, ln_le, ln_he, thickness_mm, beams: tuple[Any, Any]) -> tuple[np.ndarray, np.ndarray]:
        """dI/dlnL and dI/dlnH (mg/cm^2 per ln unit) at the given signals."""
        t = np.asarray(thickness_mm, dtype=np.float64)
        g = self.group(*beams, float(np.median(t)))
        gl, gh = g.gradient(ln_le, ln_he, t)
        c0, c1, c2, c3 = self.correction
        f = c1 + c3 * t
        return gl * f, gh * f

    def weight(self, le_beam: Any, he_beam: Any, thickness_mm) -> float | np.ndarray:
        """Tissue-cancelling recombination weight w(T) for these beams."""
        t = np.asarray(thickness_mm, dtype=np.float64)
        a0, a1 = self.weight_correction
        w = self.group(le_beam, he_beam, float(np.median(t))).weight(t) * (a0 + a1 * t)
        return float(w) if np.ndim(w) == 0 else w

    # ---- constructors ----------------------------------------------------------------
    @classmethod
    def physics_predicted(cls, le_beam: Any = None, he_beam: Any = None) -> "Calibration":
        """The calibration predicted by the spectral model alone (identity correction).

        Polynomials are computed on first use for every beam pair and thickness
        window met (with beams given, the 50 mm window is computed now, which
        validates the beams).  Signals must be gain-normalised with
        the detector gain from the headers (or an open-field estimate).
        """
        cal = cls(source="physics", system={"manufacturer": "cemrecon physics model",
                                            "model": "SignalModel (primary only)"},
                  inputs=[{"kind": "physics grid", "thickness_mm": [*PHYSICS_THICKNESS_RANGE_MM, PHYSICS_T_STEP_MM],
                           "glandularity": list(PHYSICS_GLANDULARITY),
                           "iodine_mg_cm2": list(PHYSICS_IODINE_MG_CM2)}])
        if (le_beam is None) != (he_beam is None):
            raise TypeError("give both le_beam and he_beam, or neither")
        if le_beam is not None:
            cal.group(le_beam, he_beam, 50.0)  # validates the beams now
        return cal

    # ---- persistence --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.extra.items() if not k.startswith("_")}
        d.update(
            {
                "format": FORMAT,
                "schema_version": SCHEMA_VERSION,
                "calibration_id": self.calibration_id,
                "source": self.source,
                "created": self.created,
                "cemrecon_version": self.cemrecon_version,
                "system": self.system,
                "signal": {"definition": SIGNAL_DEFINITION, "unit": SIGNAL_UNIT,
                           "ln_gain_dn_per_kev": self.ln_gain_dn_per_kev, "gain_source": self.gain_source},
                "model_form": MODEL_FORM,
                "correction": {"form": CORRECTION_FORM, "coefficients": list(self.correction)},
                "weight_correction": {"form": WEIGHT_CORRECTION_FORM, "coefficients": list(self.weight_correction)},
                "thickness_range_mm": list(self.thickness_range_mm),
                "beam_qualities": self.beam_qualities,
                "residuals_mg_cm2": self.residuals,
                "inputs": self.inputs,
                "groups": [g.to_dict() for g in self.groups],
            }
        )
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "calibration") -> "Calibration":
        """Build from the JSON structure (module docstring); raises CalibrationError."""
        if not isinstance(d, Mapping):
            raise CalibrationError(f"{where}: top level must be a JSON object, got {type(d).__name__}")
        if d.get("format") != FORMAT:
            raise CalibrationError(f"{where}: 'format' is {d.get('format')!r}; expected {FORMAT!r}")
        version = d.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= SCHEMA_VERSION:
            raise CalibrationError(
                f"{where}: schema_version {version!r} not supported; this cemrecon reads 1-{SCHEMA_VERSION}"
            )
        groups_raw = d.get("groups", [])
        if not isinstance(groups_raw, list):
            raise CalibrationError(f"{where}: 'groups' must be a list, got {type(groups_raw).__name__}")
        groups = [BeamGroup.from_dict(g, where=f"{where} group {i}") for i, g in enumerate(groups_raw)]
        try:
            signal = d.get("signal") or {}
            corr = d.get("correction") or {}
            wcorr = d.get("weight_correction") or {}
            cal = cls(
                groups,
                source=str(d.get("source", "measured")),
                correction=corr.get("coefficients", IDENTITY_CORRECTION),
                weight_correction=wcorr.get("coefficients", IDENTITY_WEIGHT_CORRECTION),
                ln_gain_dn_per_kev=signal.get("ln_gain_dn_per_kev"),
                gain_source=signal.get("gain_source"),
                residuals=d.get("residuals_mg_cm2") if d.get("source") == "measured" else None,
                system=d.get("system") or {},
                created=d.get("created"),
                cemrecon_version=d.get("cemrecon_version"),
                inputs=d.get("inputs") or [],
                extra={k: v for k, v in d.items() if k not in _KNOWN_KEYS},
            )
        except (AttributeError, TypeError, ValueError) as exc:
            if isinstance(exc, CalibrationError):
                raise
            raise CalibrationError(f"{where}: malformed calibration ({type(exc).__name__}: {exc})") from None
        rng = d.get("thickness_range_mm")
        if d.get("source") == "measured" and rng:
            cal.extra["_fit_thickness_range_mm"] = [float(rng[0]), float(rng[1])]
        stored = d.get("calibration_id")
        if stored is not None and stored != cal.calibration_id:
            logger.warning("%s: calibration_id %s does not match its content (%s): the file was edited",
                           where, stored, cal.calibration_id)
        return cal

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Calibration":
        """Read a calibration JSON file.

        Raises
        ------
        CalibrationError
            Unreadable file, not JSON, wrong format or unsupported schema version.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CalibrationError(f"cannot read calibration file {str(path)!r}: {exc}") from exc
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CalibrationError(f"calibration file {str(path)!r} is not valid JSON: {exc}") from exc
        return cls.from_dict(d, where=f"calibration file {str(path)!r}")

    def save(self, path: str | os.PathLike) -> Path:
        """Write the calibration as JSON, atomically (temp file in the same folder + rename)."""
        path = Path(path)
        if not path.parent.is_dir():
            raise OutputError(f"cannot write calibration {str(path)!r}: folder {str(path.parent)!r} does not exist")
        return write_json_atomic(self.to_dict(), path, what="calibration", indent=1)


_KNOWN_KEYS = {
    "format", "schema_version", "calibration_id", "source", "created", "cemrecon_version", "system",
    "signal", "model_form", "correction", "weight_correction", "thickness_range_mm", "beam_qualities",
    "residuals_mg_cm2", "inputs", "groups",
}


@functools.lru_cache(maxsize=64)
def _physics_group(le_beam, he_beam, lo: float, hi: float) -> BeamGroup:
    """Fit the degree-2 polynomial to the spectral model's slabs for one beam pair (cached)."""
    from cemrecon.physics import SignalModel, predicted_weight, slab_paths

    n_t = int(round((hi - lo) / PHYSICS_T_STEP_MM)) + 1
    thicknesses = np.linspace(lo, hi, n_t)
    models = (SignalModel(le_beam, pixel_mm=1.0), SignalModel(he_beam, pixel_mm=1.0))
    le_d, he_d = beam_to_dict(le_beam), beam_to_dict(he_beam)
    x, y = [], []
    for t in thicknesses:
        for g in PHYSICS_GLANDULARITY:
            for i in PHYSICS_IODINE_MG_CM2:
                paths = slab_paths(float(t), g, iodine_mg_cm2=i)
                x.append((models[0].slab_log_signal(paths), models[1].slab_log_signal(paths), float(t)))
                y.append(i)
    group = _fit_poly(np.array(x), np.array(y), le_d, he_d)
    ts = np.linspace(lo, hi, 5)
    ws = [predicted_weight(le_beam, he_beam, float(t)) for t in ts]
    group.weight_coefficients = [float(c) for c in np.polynomial.polynomial.polyfit(ts, ws, 2)]
    group.weight_source = "physics"
    logger.info("physics polynomial %s + %s: RMS %.4f, max %.4f mg/cm^2 on %d slabs",
                _beam_label(le_d), _beam_label(he_d), group.residuals["rms"], group.residuals["max"], len(y))
    return group


def _fit_poly(x: np.ndarray, y: np.ndarray, le: dict, he: dict) -> BeamGroup:
    exps = _exponents(POLY_DEGREE, POLY_DEGREE)
    center = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale <= 0] = 1.0
    a = _design((x - center) / scale, exps)
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    resid = a @ coef - y
    return BeamGroup(
        le=dict(le), he=dict(he),
        thickness_range_mm=(float(x[:, 2].min()), float(x[:, 2].max())),
        exponents=exps, center=center.tolist(), scale=scale.tolist(), coefficients=coef.tolist(),
        weight_coefficients=[], weight_source="physics",
        residuals={"rms": float(np.sqrt(np.mean(resid**2))), "max": float(np.max(np.abs(resid))), "n": int(len(y))},
    )


# --------------------------------------------------------------------------------------
# fitting
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CalibrationSample:
    """One calibration measurement: an ROI of known iodine on a slab of known thickness.

    ``ln_le``/``ln_he`` are normalised log signals of the ROI mean signal (keV per
    mAs per mm^2 when ``gain_known``; with ``gain_known=False`` the gain used was 1
    DN/keV and the system gain is fitted).  ``glandularity`` may be None (it is
    only used to fit the weight).
    """

    le_beam: dict[str, Any]
    he_beam: dict[str, Any]
    thickness_mm: float
    ln_le: float
    ln_he: float
    iodine_mg_cm2: float
    glandularity: float | None = None
    gain_known: bool = True
    label: str = ""


def _physics_values(samples: Sequence[CalibrationSample], cal: Calibration, ln_gain: float) -> np.ndarray:
    out = np.empty(len(samples))
    for k, s in enumerate(samples):
        g = cal.group(s.le_beam, s.he_beam, s.thickness_mm)
        out[k] = float(g.predict(s.ln_le - ln_gain, s.ln_he - ln_gain, s.thickness_mm))
    return out


def _fit_correction(p: np.ndarray, t: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    n_t = len(np.unique(np.round(t, 3)))
    cols = [np.ones_like(p), p] + ([t, p * t] if n_t >= 2 else [])
    a = np.stack(cols, axis=1)
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    c = list(coef) + [0.0] * (4 - len(coef))
    return tuple(float(v) for v in c)


def _fit_weight_correction(samples: Sequence[CalibrationSample], cal: Calibration) -> tuple[float, float] | None:
    """Ratio of the measured weight (slope d lnH / d lnL across glandularity, no iodine) to physics."""
    by_key: dict[tuple, list[CalibrationSample]] = {}
    for s in samples:
        if abs(s.iodine_mg_cm2) < 1e-9 and s.glandularity is not None:
            key = (round(s.thickness_mm, 3), json.dumps(s.le_beam, sort_keys=True), json.dumps(s.he_beam, sort_keys=True))
            by_key.setdefault(key, []).append(s)
    ts, ratios = [], []
    for (t, _, _), ss in sorted(by_key.items()):
        if len({round(s.glandularity, 4) for s in ss}) < 2:
            continue
        x = np.array([s.ln_le for s in ss])
        y = np.array([s.ln_he for s in ss])
        w_meas = float(np.polyfit(x, y, 1)[0])
        w_phys = float(cal.group(ss[0].le_beam, ss[0].he_beam, t).weight(t))
        ts.append(t)
        ratios.append(w_meas / w_phys)
    if not ts:
        return None
    if len(set(ts)) < 2:
        return (float(np.mean(ratios)), 0.0)
    a1, a0 = np.polyfit(ts, ratios, 1)
    return (float(a0), float(a1))


def fit_samples(
    samples: Iterable[CalibrationSample],
    *,
    system: Mapping[str, Any] | None = None,
    inputs: Sequence[Any] | None = None,
) -> Calibration:
    """Fit the measured correction (and, without header gains, the gain) to ROI samples.

    Raises
    ------
    CalibrationError
        No samples, fewer than two iodine levels, or mixed gain knowledge.
    """
    samples = list(samples)
    if not samples:
        raise CalibrationError("no calibration samples: no insert or background ROI was measured")
    y = np.array([s.iodine_mg_cm2 for s in samples], dtype=np.float64)
    t = np.array([s.thickness_mm for s in samples], dtype=np.float64)
    if len(np.unique(np.round(y, 4))) < 2:
        raise CalibrationError(
            f"all {len(samples)} calibration ROIs have the same iodine ({y[0]:g} mg/cm^2); "
            "at least two iodine levels are needed"
        )
    if len(samples) < 6:
        raise CalibrationError(f"{len(samples)} calibration ROIs; at least 6 are needed for a 4-coefficient fit")
    known = {s.gain_known for s in samples}
    if len(known) > 1:
        raise CalibrationError("some calibration exposures carry a detector gain and others do not; "
                               "calibrate each system separately")
    cal = Calibration(source="measured", system=system, inputs=inputs)
    if known == {True}:
        ln_gain, gain_source = 0.0, "header"
    else:
        from scipy.optimize import minimize_scalar

        def cost(lg: float) -> float:
            return float(np.sum((_physics_values(samples, cal, lg) - y) ** 2))

        grid = np.linspace(-12.0, 12.0, 49)
        costs = [cost(v) for v in grid]
        k = int(np.argmin(costs))
        res = minimize_scalar(cost, bracket=None, bounds=(grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]),
                              method="bounded", options={"xatol": 1e-6})
        ln_gain, gain_source = float(res.x), "fitted"
        logger.info("fitted detector gain %.4g DN/keV (ln %.4f)", math.exp(ln_gain), ln_gain)
    p = _physics_values(samples, cal, ln_gain)
    corr = _fit_correction(p, t, y)
    pred = _apply_correction(p, t, corr)
    resid = pred - y
    wcorr = _fit_weight_correction(samples, cal) or IDENTITY_WEIGHT_CORRECTION
    out = Calibration(
        cal.groups,
        source="measured",
        correction=corr,
        weight_correction=wcorr,
        ln_gain_dn_per_kev=None if gain_source == "header" else ln_gain,
        gain_source=gain_source,
        residuals={"rms": float(np.sqrt(np.mean(resid**2))), "max": float(np.max(np.abs(resid))), "n": len(y)},
        system=system,
        inputs=inputs,
    )
    out.extra["_fit_thickness_range_mm"] = [float(t.min()), float(t.max())]
    logger.info("calibration %s: %d ROIs, T %.0f-%.0f mm, correction %s, residual RMS %.4f max %.4f mg/cm^2",
                out.calibration_id, len(y), t.min(), t.max(), tuple(round(c, 5) for c in corr),
                out.residuals["rms"], out.residuals["max"])
    return out


# --------------------------------------------------------------------------------------
# calibration exposures -> samples
# --------------------------------------------------------------------------------------
def _roi_box_mean(arr: np.ndarray, box: Sequence[float]) -> float:
    r0, c0, r1, c1 = (int(round(v)) for v in box)
    sub = arr[max(r0, 0):max(r1, 0), max(c0, 0):max(c1, 0)]
    if sub.size == 0:
        raise CalibrationError(f"ROI {list(box)} is empty or outside the {arr.shape} image")
    return float(np.mean(sub))


def _roi_disc_mean(arr: np.ndarray, row: float, col: float, radius_px: float) -> float:
    rr, cc = np.ogrid[: arr.shape[0], : arr.shape[1]]
    m = (rr - row) ** 2 + (cc - col) ** 2 <= radius_px**2
    if not m.any():
        raise CalibrationError(f"ROI at ({row}, {col}) radius {radius_px:.1f} px holds no pixel of the image")
    return float(arr[m].mean())


def _phantom_truth_for(le_path: Path) -> dict | None:
    """Truth JSON of a phantom exposure (``.../dicom/R_CC_LE.dcm`` -> ``.../truth/R_CC.json``)."""
    stem = le_path.stem
    for suffix in ("_LE", "_HE"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    cand = le_path.parent.parent / "truth" / f"{stem}.json"
    if not cand.is_file():
        return None
    try:
        return json.loads(cand.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CalibrationError(f"phantom truth file {str(cand)!r} unreadable: {exc}") from exc


def _load_inserts_file(path: str | os.PathLike) -> list[dict]:
    path = Path(path)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CalibrationError(f"inserts file {str(path)!r} unreadable: {exc}") from exc
    if not isinstance(d, Mapping) or d.get("format") != INSERTS_FORMAT:
        raise CalibrationError(f"inserts file {str(path)!r}: 'format' must be {INSERTS_FORMAT!r}")
    if d.get("version", 1) != 1:
        raise CalibrationError(f"inserts file {str(path)!r}: version {d.get('version')!r} not supported (1)")
    out = []
    for i, e in enumerate(d.get("exposures") or []):
        try:
            le, he = path.parent / e["le"], path.parent / e["he"]
            rois = [dict(r) for r in e["rois"]]
            for r in rois:
                float(r["row"]), float(r["col"]), float(r["iodine_mg_cm2"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CalibrationError(f"inserts file {str(path)!r}: exposure {i} malformed ({exc}); needs le, he "
                                   "and rois with row, col, iodine_mg_cm2") from None
        out.append({**e, "le": le, "he": he, "rois": rois})
    if not out:
        raise CalibrationError(f"inserts file {str(path)!r} lists no exposures")
    return out


def _exposure_samples(le, he, rois: list[dict], *, thickness_mm, glandularity, label: str,
                      scatter_correction, spr, grid) -> tuple[list[CalibrationSample], dict]:
    """ROI samples of one exposure, processed exactly as :func:`cemrecon.iodine.iodine_map` does."""
    from cemrecon.iodine import load_exposure, primary_signals

    exp = load_exposure(le, he, thickness_mm=thickness_mm)
    if exp.thickness_mm is None:
        raise CalibrationError(f"{label}: thickness unknown (header and description)")
    known = bool(exp.gain_le and exp.gain_he)
    g_le, g_he = (exp.gain_le, exp.gain_he) if known else (1.0, 1.0)
    # no smoothing: ROI means average far more pixels than any smoothing would
    s_le, s_he, _, scatter_info = primary_signals(exp, g_le, g_he, scatter_correction=scatter_correction,
                                                  spr=spr, grid=grid, smoothing_fwhm_mm=None)
    samples = []
    for r in rois:
        if "box" in r:
            ml, mh = _roi_box_mean(s_le, r["box"]), _roi_box_mean(s_he, r["box"])
        else:
            rad = float(r["radius_mm"]) / exp.pixel_mm if "radius_mm" in r else float(r.get("radius_px", 5))
            ml = _roi_disc_mean(s_le, float(r["row"]), float(r["col"]), rad)
            mh = _roi_disc_mean(s_he, float(r["row"]), float(r["col"]), rad)
        if not (ml > 0 and mh > 0):
            raise CalibrationError(f"{label}: ROI {r} has no signal above the dark offset")
        gl = r.get("glandularity", glandularity)
        samples.append(CalibrationSample(beam_to_dict(exp.le_beam), beam_to_dict(exp.he_beam), exp.thickness_mm,
                                         math.log(ml), math.log(mh), float(r["iodine_mg_cm2"]),
                                         None if gl is None else float(gl), known, label))
    info = {"label": label, "le": str(exp.sources.get("le", {}).get("path", "")),
            "thickness_mm": exp.thickness_mm, "le_beam": beam_to_dict(exp.le_beam),
            "he_beam": beam_to_dict(exp.he_beam), "rois": len(rois), "scatter_correction": scatter_info}
    return samples, info


def fit_calibration(
    pairs_or_paths,
    *,
    inserts: str | os.PathLike | None = None,
    system: Mapping[str, Any] | None = None,
    scatter_correction: str | None = "kernel",
    spr: float | None = None,
    grid: bool = True,
) -> Calibration:
    """Fit a calibration from calibration exposures.

    Parameters
    ----------
    pairs_or_paths : path, Pair, or sequence of them
        Phantom calibration folders (:func:`cemrecon.phantom.write_calibration`;
        each exposure's truth JSON gives its insert ROIs, iodine, thickness and
        glandularity) or LE/HE DICOM files/folders read with
        :func:`cemrecon.io.read.read_exams`.  Ignored when ``inserts`` is given.
    inserts : path, optional
        A site's inserts file (module docstring, ``cemrecon-calibration-inserts``).
    system : mapping, optional
        Manufacturer/model/station written into the calibration (default from
        the LE headers).
    scatter_correction, spr, grid
        As in :func:`cemrecon.iodine.iodine_map`; use the same settings there.

    Raises
    ------
    CalibrationError
        No usable exposure, no ROI description, or too few ROIs.
    """
    all_samples: list[CalibrationSample] = []
    inputs: list[dict] = []
    sys_info: dict[str, Any] = {}
    kw = dict(scatter_correction=scatter_correction, spr=spr, grid=grid)
    if inserts is not None:
        for k, e in enumerate(_load_inserts_file(inserts)):
            try:
                s, info = _exposure_samples(e["le"], e["he"], e["rois"], thickness_mm=e.get("thickness_mm"),
                                            glandularity=e.get("glandularity"), label=f"exposure {k}", **kw)
            except CemreconError as exc:
                if isinstance(exc, CalibrationError) and str(inserts) in str(exc):
                    raise
                raise CalibrationError(f"inserts file {str(inserts)!r}, exposures[{k}]: {exc}") from exc
            all_samples += s
            inputs.append(info)
    else:
        from cemrecon.io.read import read_exams

        items = pairs_or_paths if isinstance(pairs_or_paths, (list, tuple)) else [pairs_or_paths]
        pairs = [p for p in items if hasattr(p, "le") and hasattr(p, "he")]
        paths = [p for p in items if not (hasattr(p, "le") and hasattr(p, "he"))]
        if paths:
            pairs += list(read_exams(paths).pairs)
        if not pairs:
            raise CalibrationError(f"no LE/HE pair found in {[str(p) for p in paths]}")
        for pair in pairs:
            truth = _phantom_truth_for(Path(pair.le.path))
            if truth is None or not truth.get("inserts"):
                raise CalibrationError(
                    f"{pair.le.path}: no phantom truth JSON with inserts next to it; for a site's own "
                    "exposures give an inserts file (--inserts)")
            rois = [{"box": ins["roi"], "iodine_mg_cm2": ins["iodine_mg_cm2"]} for ins in truth["inserts"]]
            if truth.get("background_roi"):
                rois.append({"box": truth["background_roi"], "iodine_mg_cm2": 0.0})
            s, info = _exposure_samples(pair, None, rois, thickness_mm=truth.get("thickness_mm"),
                                        glandularity=truth.get("glandularity"),
                                        label=str(truth.get("name", pair.key)), **kw)
            all_samples += s
            inputs.append(info)
            meta = pair.le.meta
            sys_info.setdefault("manufacturer", getattr(meta, "manufacturer", None))
            sys_info.setdefault("model", getattr(meta, "model", None))
    if system:
        sys_info.update(dict(system))
    cal = fit_samples(all_samples, system=sys_info, inputs=inputs)
    cal.extra["processing"] = {"scatter_correction": scatter_correction or "none", "spr": spr, "grid": grid}
    return cal
