"""Quantitative iodine maps (mg I/cm^2) from LE/HE exposures.

Pipeline per view (details in :mod:`cemrecon.calibrate` and :mod:`cemrecon.scatter`):

1. raw DN -> energy signal per mAs per mm^2: ``(DN - dark) / (gain * mAs * pixel_mm^2)``
   (gain from the header, else from the calibration, else estimated from the
   direct-exposure region against the spectral model's open-field signal);
2. scatter removal (kernel model, SPR given or estimated from thickness);
3. optional Gaussian smoothing of both signals (``smoothing_fwhm_mm``: quantum
   noise at 0.1 mm pixels is ~0.3 mg/cm^2 per pixel, physics.md section 3);
4. ``I = calibration.predict(ln LE, ln HE, T)`` inside the breast, 0 outside.  ``T`` is the
   compressed thickness, or, with a :class:`RolloffReference`, a thickness map that follows the
   breast's roll-off towards the skin line (:func:`fit_rolloff_thickness`).

Without a calibration the physics-predicted one is used and the provenance says so.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cemrecon.calibrate import Calibration, beam_to_dict
from cemrecon.errors import CalibrationError
from cemrecon.io.inputs import beam_from_meta, load_pair

__all__ = [
    "Exposure",
    "IodineResult",
    "load_exposure",
    "primary_signals",
    "iodine_map",
    "iodine_map_result",
    "iodine_map_pair",
    "RolloffReference",
    "fit_rolloff_thickness",
    "signal_blur_mm",
    "DEFAULT_SMOOTHING_FWHM_MM",
]

logger = logging.getLogger(__name__)

#: default Gaussian smoothing of the LE/HE signals before the log (FWHM, mm).  At 0.1 mm
#: pixels the per-pixel iodine noise is ~0.3 mg/cm^2 (sigma_RC ~ 0.005 over 0.016 per
#: mg/cm^2, physics.md section 3); a 0.5 mm FWHM Gaussian averages ~28 pixels (noise
#: / 5.3) and keeps 3 mm lesions' contrast.
DEFAULT_SMOOTHING_FWHM_MM = 0.5
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
#: fraction of brightest pixels taken as the direct-exposure (open-field) region when the
#: gain must be estimated from the image
_OPEN_FIELD_QUANTILE = 0.99


@dataclass
class Exposure:
    """One LE/HE pair with what the iodine model needs (pixels not modified)."""

    le_dn: np.ndarray
    he_dn: np.ndarray
    le_beam: Any
    he_beam: Any
    mas_le: float
    mas_he: float
    pixel_mm: float
    thickness_mm: float | None
    dark_le: float
    dark_he: float
    gain_le: float | None
    gain_he: float | None
    sources: dict = field(default_factory=dict)
    #: scatter-to-primary ratio declared by a synthetic system (phantom header), else None
    simulated_spr: float | None = None


@dataclass
class IodineResult:
    """An iodine map and how it was made.

    Attributes
    ----------
    iodine_mg_cm2 : ndarray of float32
        Iodine areal density; 0 outside ``mask``.
    mask : ndarray of bool
        Pixels attenuated by the breast (where the model applies).
    provenance : dict
        Calibration id and source, gain, thickness, beams, scatter correction...
    """

    iodine_mg_cm2: np.ndarray
    mask: np.ndarray
    provenance: dict


# ------------------------------------------------------------------------------ inputs
def load_exposure(
    le,
    he=None,
    *,
    le_beam=None,
    he_beam=None,
    mas: tuple[float, float] | None = None,
    pixel_mm: float | None = None,
    thickness_mm: float | None = None,
    dark_offset: float | tuple[float, float] | None = None,
    gain_dn_per_kev: float | None = None,
) -> Exposure:
    """Gather pixels and acquisition parameters from arrays, Datasets, paths, SourceImages or a Pair.

    Keywords override header values.  For plain arrays ``le_beam``, ``he_beam``,
    ``mas`` (LE, HE) and ``pixel_mm`` are required.
    """
    src_le, src_he = load_pair(le, he, caller="iodine_map")
    le_px, he_px = src_le.pixels, src_he.pixels
    le_meta, he_meta = src_le.meta, src_he.meta
    sources: dict = {}
    if le_meta is None or he_meta is None:
        if le_beam is None or he_beam is None or mas is None or pixel_mm is None:
            raise TypeError("for array inputs give le_beam=, he_beam=, mas=(le, he) and pixel_mm=")
    else:
        sources = {"le": src_le.describe(), "he": src_he.describe()}
    if le_px.shape != he_px.shape or le_px.ndim != 2:
        raise ValueError(f"le and he must be 2-D images of one shape; got {le_px.shape} and {he_px.shape}")
    le_beam = le_beam if le_beam is not None else beam_from_meta(le_meta, where=src_le.path or "LE image", which="le")
    he_beam = he_beam if he_beam is not None else beam_from_meta(he_meta, where=src_he.path or "HE image", which="he")
    if mas is None:
        mas = (getattr(le_meta, "exposure_mas", None), getattr(he_meta, "exposure_mas", None))
    if any(m is None or not m > 0 for m in mas):
        raise CalibrationError(f"exposure mAs (LE, HE) = {mas!r}: both must be known and > 0; pass mas=")
    if pixel_mm is None:
        sp = getattr(le_meta, "pixel_spacing_mm", None)
        if not sp:
            raise CalibrationError("pixel spacing unknown (no ImagerPixelSpacing); pass pixel_mm=")
        pixel_mm = float(sp[0])
    if thickness_mm is None and le_meta is not None:
        thickness_mm = getattr(le_meta, "thickness_mm", None)
    if dark_offset is None:
        dark = (getattr(le_meta, "dark_offset_dn", None), getattr(he_meta, "dark_offset_dn", None))
        dark = tuple(0.0 if d is None else float(d) for d in dark)
    elif np.ndim(dark_offset) == 0:
        dark = (float(dark_offset), float(dark_offset))
    else:
        dark = tuple(float(d) for d in dark_offset)
    if gain_dn_per_kev is not None:
        gains = (float(gain_dn_per_kev), float(gain_dn_per_kev))
    else:
        gains = (getattr(le_meta, "gain_dn_per_kev", None), getattr(he_meta, "gain_dn_per_kev", None))
    return Exposure(le_dn=le_px, he_dn=he_px, le_beam=le_beam, he_beam=he_beam, mas_le=float(mas[0]),
                    mas_he=float(mas[1]), pixel_mm=float(pixel_mm),
                    thickness_mm=None if thickness_mm is None else float(thickness_mm),
                    dark_le=dark[0], dark_he=dark[1], gain_le=gains[0], gain_he=gains[1], sources=sources,
                    simulated_spr=getattr(le_meta, "simulated_spr", None))


# ------------------------------------------------------------------------------ model
def _open_field_kev(beam) -> float:
    """Open-field (no object) absorbed energy per mAs per mm^2 of the spectral model."""
    from cemrecon.physics import SignalModel

    return float(SignalModel(beam, pixel_mm=1.0).moments({}, 1.0)[0])


def _resolve_gain(exp: Exposure, calibration: Calibration) -> tuple[float, float, str]:
    if exp.gain_le and exp.gain_he:
        return exp.gain_le, exp.gain_he, "header"
    if calibration.gain_dn_per_kev is not None:
        g = calibration.gain_dn_per_kev
        return g, g, f"calibration {calibration.calibration_id}"
    # estimate from the direct-exposure region of the LE image
    dn = exp.le_dn.astype(np.float64) - exp.dark_le
    hi = np.quantile(dn, _OPEN_FIELD_QUANTILE)
    open_dn = float(np.median(dn[dn >= hi]))
    g = open_dn / (_open_field_kev(exp.le_beam) * exp.mas_le * exp.pixel_mm**2)
    if not (math.isfinite(g) and g > 0):
        raise CalibrationError("detector gain unknown (no header gain, no calibration gain) and the image "
                               "has no usable direct-exposure region; pass gain_dn_per_kev=")
    logger.warning("detector gain estimated from the direct-exposure region: %.4g DN/keV "
                   "(absolute iodine depends on it; lesion-minus-background does not)", g)
    return g, g, "open-field estimate"


def _signals(exp: Exposure, gain_le: float, gain_he: float) -> tuple[np.ndarray, np.ndarray]:
    s_le = (exp.le_dn.astype(np.float64) - exp.dark_le) / (gain_le * exp.mas_le * exp.pixel_mm**2)
    s_he = (exp.he_dn.astype(np.float64) - exp.dark_he) / (gain_he * exp.mas_he * exp.pixel_mm**2)
    return s_le, s_he


def primary_signals(
    exp: Exposure,
    gain_le: float,
    gain_he: float,
    *,
    scatter_correction: str | None = "kernel",
    spr: float | tuple[float, float] | None = None,
    grid: bool = True,
    smoothing_fwhm_mm: float | None = DEFAULT_SMOOTHING_FWHM_MM,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Gain-normalised, scatter-corrected, smoothed LE/HE signals, the breast mask and a
    description of the scatter step (steps 1-3 of the module docstring)."""
    t_mm = exp.thickness_mm
    s_le, s_he = _signals(exp, gain_le, gain_he)
    mask = s_le < 0.95 * _open_field_kev(exp.le_beam)
    method = "none" if scatter_correction in (None, False, "none") else str(scatter_correction)
    scatter_info: dict = {"method": method}
    if method == "kernel":
        from cemrecon.scatter import estimate_primary, spr_for_thickness

        if spr is None and exp.simulated_spr is not None:
            # a phantom declares the scatter it simulated: correct exactly that (0: none)
            spr_le = spr_he = float(exp.simulated_spr)
            spr_source = "phantom header (0029,xx12)"
        elif spr is None:
            if t_mm is None:
                raise CalibrationError("scatter correction needs the thickness (for the SPR) or spr=")
            spr_le = spr_he = spr_for_thickness(t_mm, grid=grid)
            spr_source = f"thickness rule ({'grid' if grid else 'no grid'})"
        elif np.ndim(spr) == 0:
            spr_le = spr_he = float(spr)
            spr_source = "given"
        else:
            spr_le, spr_he = (float(v) for v in spr)
            spr_source = "given"
        if spr_le > 0.0 or spr_he > 0.0:
            s_le = estimate_primary(s_le, spr=spr_le, pixel_mm=exp.pixel_mm, mask=mask)
            s_he = estimate_primary(s_he, spr=spr_he, pixel_mm=exp.pixel_mm, mask=mask)
        scatter_info.update(spr_le=round(spr_le, 4), spr_he=round(spr_he, 4), spr_source=spr_source,
                            kernel="Gaussian FWHM 50 mm, normalised in the breast mask")
    elif method != "none":
        raise ValueError(f"scatter_correction={scatter_correction!r} not accepted; use 'kernel' or 'none'")
    blur_mm = signal_blur_mm(smoothing_fwhm_mm, exp.pixel_mm)
    if blur_mm > 0.0:
        from scipy import ndimage

        s_le = ndimage.gaussian_filter(s_le, blur_mm / exp.pixel_mm, mode="nearest")
        s_he = ndimage.gaussian_filter(s_he, blur_mm / exp.pixel_mm, mode="nearest")
    return s_le, s_he, mask, scatter_info


def signal_blur_mm(smoothing_fwhm_mm: float | None, pixel_mm: float) -> float:
    """Gaussian SD (mm) of the signal smoothing :func:`primary_signals` applies: the FWHM as an
    SD, or 0 when it is off or below 0.3 px (then skipped).  The iodine map carries this blur."""
    if not smoothing_fwhm_mm:
        return 0.0
    sigma_mm = float(smoothing_fwhm_mm) / _FWHM_PER_SIGMA
    return sigma_mm if sigma_mm / pixel_mm >= 0.3 else 0.0


@dataclass(frozen=True)
class RolloffReference:
    """Tissue that holds no iodine, to fit the thickness of the roll-off (see
    :func:`fit_rolloff_thickness`).

    Attributes
    ----------
    mask : ndarray of bool (LE shape)
        Reference pixels (e.g. fat: glandular index below 0.15), inside the breast.
    distance_mm : ndarray (LE shape)
        Distance from the skin line (mm).
    extent_mm : float
        The thickness is fitted out to this distance from the skin line (the roll-off and a
        margin); beyond it the compressed thickness holds.
    """

    mask: np.ndarray
    distance_mm: np.ndarray
    extent_mm: float

    def __post_init__(self) -> None:
        if np.shape(self.mask) != np.shape(self.distance_mm):
            raise ValueError(f"RolloffReference: mask {np.shape(self.mask)} and distance_mm "
                             f"{np.shape(self.distance_mm)} differ in shape")
        if not (np.isfinite(self.extent_mm) and self.extent_mm >= 0.0):
            raise ValueError(f"RolloffReference.extent_mm must be a finite number >= 0, "
                             f"got {self.extent_mm!r}")


def fit_rolloff_thickness(
    ln_le: np.ndarray,
    ln_he: np.ndarray,
    calibration: Calibration,
    beams: tuple[Any, Any],
    thickness_mm: float,
    reference: RolloffReference,
    *,
    bin_mm: float = 1.0,
    min_pixels: int = 50,
    max_pixels: int = 5000,
) -> tuple[np.ndarray, dict]:
    """Thickness map of the roll-off: per distance from the skin, the ``T`` at which the
    reference tissue reads no iodine.

    Towards the skin line the breast thins from the compressed thickness to nothing.  The
    iodine model with the compressed thickness there reads tissue as large negative iodine
    (phantoms: -10 mg/cm^2 at 5-10 mm from the skin of a 69 mm breast, -3 at 10-15 mm), and a
    per-distance fat baseline subtracted afterwards (:func:`cemrecon.quantify.bpe.relative_iodine`)
    leaves a composition-dependent residual, glandular tissue reading as iodine: +0.1 to
    +0.2 mg/cm^2 at 5-15 mm, +0.04 at 15-25 mm.  The thickness of a ray is one of the model's
    inputs, so it is fitted where it is unknown: in each ``bin_mm`` band of distance from the
    skin out to ``reference.extent_mm``, the median iodine of the reference pixels (at most
    ``max_pixels``, evenly strided) is a monotonic function of ``T``, solved for zero (Brent)
    within the calibration's thickness range and up to the compressed thickness.  The band
    values are interpolated along the distance (a band's ~1 mm holds rays of different
    thickness; the map follows the distance continuously); bands with fewer than ``min_pixels``
    reference pixels or no root (the skin, where ``T`` is below the calibrated range) take their
    neighbours' value.  Beyond the fitted extent the compressed thickness holds.

    Returns
    -------
    thickness : ndarray of float64 (LE shape)
    profile : dict
        ``distance_mm`` and ``thickness_mm`` of the fitted bands (JSON-ready, for provenance).
    """
    from scipy.optimize import brentq

    t0 = float(thickness_mm)
    dist = np.asarray(reference.distance_mm, dtype=np.float64)
    ref = np.asarray(reference.mask, dtype=bool) & np.isfinite(ln_le) & np.isfinite(ln_he)
    lo_cal, _ = calibration.thickness_range_mm
    lo_t = max(float(lo_cal), 1.0)
    edges = np.arange(0.0, float(reference.extent_mm) + bin_mm, bin_mm)
    centres, values = [], []
    for a, b in zip(edges[:-1], edges[1:]):
        idx = np.flatnonzero((ref & (dist >= a) & (dist < b)).ravel())
        if idx.size < min_pixels or lo_t >= t0:
            continue
        idx = idx[:: max(1, idx.size // max_pixels)]
        ll, lh = ln_le.ravel()[idx], ln_he.ravel()[idx]

        def median_iodine(t: float) -> float:
            return float(np.median(calibration.predict(ll, lh, np.full(ll.shape, t), beams)))

        f_lo, f_hi = median_iodine(lo_t), median_iodine(t0)
        if f_hi >= 0.0:
            t_fit = t0  # the full thickness already reads no iodine (or some): keep it
        elif f_lo <= 0.0:
            continue  # no root in the calibrated range (thinner than it: the skin)
        else:
            t_fit = brentq(median_iodine, lo_t, t0, xtol=0.05)
        centres.append(0.5 * (a + b))
        values.append(float(t_fit))
    thickness = np.full(dist.shape, t0)
    if centres:
        c, v = np.asarray(centres), np.asarray(values)
        inside = dist < edges[-1]
        thickness[inside] = np.interp(dist[inside], c, v)
    profile = {"distance_mm": [round(float(x), 2) for x in centres],
               "thickness_mm": [round(float(x), 2) for x in values]}
    return thickness, profile


def iodine_map_result(
    le,
    he=None,
    *,
    calibration: Calibration | str | os.PathLike | None = None,
    thickness_mm: float | None = None,
    scatter_correction: str | None = "kernel",
    spr: float | tuple[float, float] | None = None,
    grid: bool = True,
    smoothing_fwhm_mm: float | None = DEFAULT_SMOOTHING_FWHM_MM,
    rolloff_reference: RolloffReference | None = None,
    **exposure_options: Any,
) -> IodineResult:
    """Iodine map and its provenance; see :func:`iodine_map` for the parameters."""
    if calibration is None:
        cal = Calibration.physics_predicted()
        cal_note = "physics-predicted calibration (spectral model; no site calibration given)"
    elif isinstance(calibration, Calibration):
        cal, cal_note = calibration, f"{calibration.source} calibration"
    else:
        cal = Calibration.load(calibration)
        cal_note = f"{cal.source} calibration from {os.fspath(calibration)}"
    exp = load_exposure(le, he, thickness_mm=thickness_mm, **exposure_options)
    if exp.thickness_mm is None:
        raise CalibrationError("compressed thickness unknown (no BodyPartThickness in the header); pass "
                               "thickness_mm=")
    t_mm = exp.thickness_mm
    gain_le, gain_he, gain_source = _resolve_gain(exp, cal)
    s_le, s_he, mask, scatter_info = primary_signals(
        exp, gain_le, gain_he, scatter_correction=scatter_correction, spr=spr, grid=grid,
        smoothing_fwhm_mm=smoothing_fwhm_mm)
    method = scatter_info["method"]
    floor = 1e-6
    ln_le = np.log(np.maximum(s_le, floor))
    ln_he = np.log(np.maximum(s_he, floor))
    iodine = np.zeros(exp.le_dn.shape, dtype=np.float32)
    beams = (exp.le_beam, exp.he_beam)
    t_used: float | np.ndarray = t_mm
    profile = None
    if rolloff_reference is not None:
        ref = rolloff_reference
        for name in ("mask", "distance_mm"):
            if np.shape(getattr(ref, name)) != exp.le_dn.shape:
                raise ValueError(f"rolloff_reference.{name} has shape {np.shape(getattr(ref, name))}, "
                                 f"the image {exp.le_dn.shape}")
        t_used, profile = fit_rolloff_thickness(
            ln_le, ln_he, cal, beams, t_mm,
            RolloffReference(np.asarray(ref.mask, dtype=bool) & mask, ref.distance_mm, ref.extent_mm))
    if mask.any():
        if isinstance(t_used, np.ndarray):
            # one physics window per 5 mm of thickness (Calibration.group picks it from the
            # median): thin roll-off rays are read by the polynomial fitted around their own
            # thickness, as in the fit, not extrapolated from the compressed thickness's window
            from cemrecon.calibrate import PHYSICS_WINDOW_STEP_MM

            t_px = t_used[mask]
            ll, lh = ln_le[mask], ln_he[mask]
            band = np.round(t_px / PHYSICS_WINDOW_STEP_MM)
            out = np.empty(t_px.shape)
            for b in np.unique(band):
                sel = band == b
                out[sel] = cal.predict(ll[sel], lh[sel], t_px[sel], beams)
            iodine[mask] = out
        else:
            iodine[mask] = cal.predict(ln_le[mask], ln_he[mask], t_used, beams)
    provenance = {
        "quantity": "iodine areal density",
        "unit": "mg/cm2",
        "calibration_id": cal.calibration_id,
        "calibration_source": cal.source,
        "calibration_note": cal_note,
        "gain_dn_per_kev": [round(gain_le, 6), round(gain_he, 6)],
        "gain_source": gain_source,
        "thickness_mm": t_mm,
        "thickness_profile": None if profile is None else dict(
            profile, method="roll-off fitted: reference tissue reads no iodine "
                            "(cemrecon.iodine.fit_rolloff_thickness)"),
        "le_beam": beam_to_dict(exp.le_beam),
        "he_beam": beam_to_dict(exp.he_beam),
        "mas": [exp.mas_le, exp.mas_he],
        "pixel_mm": exp.pixel_mm,
        "dark_offset_dn": [exp.dark_le, exp.dark_he],
        "scatter_correction": scatter_info,
        "smoothing_fwhm_mm": smoothing_fwhm_mm or 0.0,
        "weight": round(float(cal.weight(exp.le_beam, exp.he_beam, t_mm)), 5),
        "sources": exp.sources,
    }
    logger.info("iodine map: %s, T %.1f mm, gain %s, scatter %s", cal_note, t_mm, gain_source, method)
    return IodineResult(iodine_mg_cm2=iodine, mask=mask, provenance=provenance)


def iodine_map(le, he=None, **options: Any) -> np.ndarray:
    """Iodine areal density map (float32, mg/cm^2) of one LE/HE pair.

    Parameters
    ----------
    le, he : array, pydicom Dataset, path, SourceImage; or a Pair as ``le`` alone
        The low- and high-energy raw images (as for :func:`cemrecon.recombine`).
    calibration : Calibration or path, optional
        Default: :meth:`Calibration.physics_predicted` (the provenance says so).
    thickness_mm : float, optional
        Compressed thickness; default from the header.
    scatter_correction : {"kernel", "none"}
        Kernel scatter removal (default) or none.
    spr : float or (float, float), optional
        Scatter-to-primary ratio (LE, HE); default from thickness
        (:func:`cemrecon.scatter.spr_for_thickness`, ``grid=``).
    smoothing_fwhm_mm : float or None
        Gaussian smoothing of the signals before the log (default 0.5 mm).
    rolloff_reference : RolloffReference, optional
        Tissue without iodine (e.g. fat) and the distance from the skin line: the thickness of
        the roll-off is then fitted (:func:`fit_rolloff_thickness`) instead of taken as the
        compressed thickness everywhere; the provenance records the fitted profile.
    le_beam, he_beam, mas, pixel_mm, dark_offset, gain_dn_per_kev
        Override or supply acquisition parameters (required for plain arrays).

    Returns
    -------
    ndarray of float32
        0 outside the breast.

    Examples
    --------
    >>> from cemrecon.phantom import simulate_view  # doctest: +SKIP
    >>> v = simulate_view(seed=1, scale=0.1, lesions=None)  # doctest: +SKIP
    >>> m = iodine_map(v.le, v.he, le_beam=v.le_beam, he_beam=v.he_beam,  # doctest: +SKIP
    ...                mas=(v.mas_le, v.mas_he), pixel_mm=v.pixel_mm, thickness_mm=v.thickness_mm,
    ...                dark_offset=v.dark_offset_dn, gain_dn_per_kev=v.gain_dn_per_keV)
    """
    return iodine_map_result(le, he, **options).iodine_mg_cm2


def iodine_map_pair(pair, **options: Any) -> IodineResult:
    """:func:`iodine_map_result` for a :class:`cemrecon.io.pair.Pair` (map + provenance)."""
    return iodine_map_result(pair, None, **options)
