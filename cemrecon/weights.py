"""Tissue-cancelling weights for ``RC = ln(HE - d) - w ln(LE - d)``.

Four ways to choose ``w`` (the ``weight=`` argument of :func:`cemrecon.recombine`):

``float``
    Explicit, e.g. from a calibration.
``None`` (default): physics-predicted
    :func:`physics_weight` -- ``cemrecon.physics.predicted_weight`` for the pair's
    own beams (kVp, anode, filter) and compressed thickness, i.e. the weight that
    cancels a glandular/adipose swap in a slab of that thickness (reference
    physics.md section 1, Table 2).  Cached on the beams and the thickness rounded
    to :data:`THICKNESS_ROUND_MM`, so a repeat costs a dictionary look-up.
``"thickness"``: thickness-aware map
    :func:`thickness_maps` -- a local thickness ``T(x, y)`` from the compressed
    thickness and the LE signal across the peripheral roll-off, then a per-pixel
    weight ``w(T)`` and the model's thickness term, which removes the rim
    ("breast-within-breast") artefact.  See that function for the model.
``"image"``: image-based
    :func:`image_weight` -- the least-squares ``w`` that minimises band-passed
    anatomical texture of RC inside the breast; for data whose headers cannot be
    trusted.

All functions here work on natural-log images (float) and know nothing of DICOM.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from cemrecon.errors import PhysicsError

__all__ = [
    "GLANDULARITY_DEFAULT",
    "ROLLOFF_FULL_MM",
    "ROLLOFF_NONE_MM",
    "THICKNESS_ROUND_MM",
    "ThicknessMaps",
    "WeightCurve",
    "block_mean",
    "breast_mask_lowres",
    "image_weight",
    "physics_weight",
    "thickness_maps",
    "weight_curve",
]

logger = logging.getLogger(__name__)

#: Thickness rounding of the weight cache.  dw/dT is about 0.009 per cm
#: (physics.md Table 2), so rounding to 0.5 mm changes w by <= 2.3e-4, which
#: leaves < 0.004 mg I/cm^2 per cm of glandular/adipose swap (0.14 per 0.01 of w).
THICKNESS_ROUND_MM = 0.5

#: Glandular fraction at which weights are evaluated when none is given: the
#: midpoint of the model; w varies with it far less than with thickness.
GLANDULARITY_DEFAULT = 0.5

#: Thickness-aware mode: the LE-derived thickness is used fully within this
#: distance of the skin line ...
ROLLOFF_FULL_MM = 20.0
#: ... and not at all beyond this one (linear taper between).  A compressed
#: breast rolls off over its last 10-20 mm (the phantom uses 0.3 T clipped to
#: 10-20 mm); further in, LE variations are composition, not thickness.
ROLLOFF_NONE_MM = 30.0

#: Low-resolution pixel for thickness estimation (mm): averages quantum noise and
#: makes the distance transform and smoothing cheap.
_THICKNESS_PIXEL_MM = 0.8
#: Gaussian smoothing of ln LE before reading it as thickness (mm).
_THICKNESS_SMOOTH_MM = 1.5
#: ln LE drop below the open-field level that marks tissue (about 1 mm of tissue at LE).
_TISSUE_DROP = 0.05
#: Thinnest tissue the slab model accepts (mm): twice the 1.5 mm skin plus a margin.
_MIN_MODEL_THICKNESS_MM = 3.5

#: Image-based weight: low-resolution pixel (mm) and band-pass scales (mm).
_IMAGE_PIXEL_MM = 0.4
_IMAGE_BAND_MM = (0.8, 4.0)
#: Image-based weight: exclude this margin (mm) from the skin line (roll-off).
_IMAGE_MARGIN_MM = 20.0
#: Accepted range of an image-based weight (outside it the fit has failed).
_IMAGE_WEIGHT_RANGE = (0.02, 0.8)


def _physics():
    # imported lazily: spekpy/xraylib load on first use
    from cemrecon.physics import weights as pw

    return pw


@functools.lru_cache(maxsize=512)
def _predicted_weight_cached(le_beam: Any, he_beam: Any, thickness_mm: float, glandularity: float) -> float:
    return float(_physics().predicted_weight(le_beam, he_beam, thickness_mm, glandularity))


def physics_weight(
    le_beam: Any, he_beam: Any, thickness_mm: float, *, glandularity: float = GLANDULARITY_DEFAULT
) -> float:
    """Physics-predicted tissue-cancelling weight, cached.

    Parameters
    ----------
    le_beam, he_beam : cemrecon.physics.Beam
    thickness_mm : float
        Compressed breast thickness; rounded to :data:`THICKNESS_ROUND_MM`.
    glandularity : float, optional
        Glandular volume fraction at which w is evaluated (rounded to 0.01).

    Returns
    -------
    float

    Raises
    ------
    PhysicsError
        Thickness or beams outside the model.

    Examples
    --------
    >>> from cemrecon.physics import Beam
    >>> w = physics_weight(Beam("Rh", "Rh", 0.025, 31), Beam("Rh", "Cu", 0.3, 49), 50.0)
    >>> round(w, 2)
    0.24
    """
    t = round(float(thickness_mm) / THICKNESS_ROUND_MM) * THICKNESS_ROUND_MM
    return _predicted_weight_cached(le_beam, he_beam, t, round(float(glandularity), 2))


@dataclass(frozen=True)
class WeightCurve:
    """Slab-model curves over thickness for one beam pair (read-only arrays).

    ``thickness_mm`` grid, cancelling ``weight``, and ``ln_le`` / ``ln_he``: ln of the
    expected signal of a slab of that thickness (model units; only differences are used).
    """

    thickness_mm: np.ndarray
    weight: np.ndarray
    ln_le: np.ndarray
    ln_he: np.ndarray

    def at(self, thickness_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(weight, ln_le, ln_he)`` interpolated at ``thickness_mm``."""
        t = self.thickness_mm
        return (
            np.interp(thickness_mm, t, self.weight),
            np.interp(thickness_mm, t, self.ln_le),
            np.interp(thickness_mm, t, self.ln_he),
        )


@functools.lru_cache(maxsize=64)
def weight_curve(le_beam: Any, he_beam: Any, *, glandularity: float = GLANDULARITY_DEFAULT,
                 max_thickness_mm: float = 120.0) -> WeightCurve:
    """Cancelling weight and slab log-signals on a 1 mm thickness grid (cached, ~10 ms)."""
    pw = _physics()
    grid = np.arange(_MIN_MODEL_THICKNESS_MM, max_thickness_mm + 0.5, 1.0)
    ln_le = np.empty_like(grid)
    ln_he = np.empty_like(grid)
    weight = np.empty_like(grid)
    for i, t in enumerate(grid):
        d_le = pw.slab_derivatives(le_beam, t, glandularity)
        d_he = pw.slab_derivatives(he_beam, t, glandularity)
        ln_le[i] = d_le["ln_signal"]
        ln_he[i] = d_he["ln_signal"]
        weight[i] = d_he["d_glandularity"] / d_le["d_glandularity"]
    for a in (grid, weight, ln_le, ln_he):
        a.setflags(write=False)
    return WeightCurve(grid, weight, ln_le, ln_he)


# ------------------------------------------------------------------------------------
# low-resolution helpers
# ------------------------------------------------------------------------------------


def block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor x factor`` blocks (float64), partial edge blocks dropped.

    Block ``(i, j)`` covers full-resolution pixels ``[i f, (i + 1) f) x [j f, (j + 1) f)``;
    :func:`_upsample` maps back and replicates the edge for the dropped margin.
    """
    img = np.asarray(image)
    if factor <= 1:
        return img.astype(np.float64)
    h, w = img.shape
    hc, wc = max(factor, h - h % factor), max(factor, w - w % factor)
    if hc > h or wc > w:  # image smaller than one block
        return np.full((1, 1), float(img.mean(dtype=np.float64)))
    return img[:hc, :wc].reshape(hc // factor, factor, wc // factor, factor).mean(axis=(1, 3), dtype=np.float64)


def _upsample(low: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """Separable bilinear upsampling of a block-mean grid back to ``shape`` (float32)."""
    if factor <= 1:
        return np.ascontiguousarray(low[: shape[0], : shape[1]], dtype=np.float32)

    def axis(n_full: int, n_low: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # block centres sit at (k + 0.5) * factor - 0.5 in full-resolution pixels
        pos = np.clip((np.arange(n_full) + 0.5) / factor - 0.5, 0, n_low - 1)
        i0 = np.minimum(pos.astype(np.intp), max(n_low - 2, 0))
        i1 = np.minimum(i0 + 1, n_low - 1)
        return i0, i1, (pos - i0).astype(np.float32)

    low32 = np.asarray(low, dtype=np.float32)
    c0, c1, fc = axis(shape[1], low.shape[1])
    cols = low32[:, c0] * (1 - fc) + low32[:, c1] * fc  # (h, W): small
    r0, r1, fr = axis(shape[0], low.shape[0])
    fr = fr[:, None]
    return np.ascontiguousarray(cols[r0] * (1 - fr) + cols[r1] * fr, dtype=np.float32)


def _factor(pixel_mm: float, target_mm: float) -> int:
    return max(1, round(target_mm / pixel_mm))


def breast_mask_lowres(ln_le_low: np.ndarray) -> np.ndarray:
    """Breast (tissue) mask on a low-resolution ln LE image.

    Tissue is where ln LE is at least :data:`_TISSUE_DROP` below the open-field
    level (99.5th percentile); holes are filled and the largest component kept.
    If there is no open field (the breast fills the detector), everything is tissue.
    """
    open_field = float(np.percentile(ln_le_low, 99.5))
    mask = ln_le_low < open_field - _TISSUE_DROP
    if mask.mean() > 0.985:  # no air in view: percentile is tissue, mask everything
        return np.ones_like(mask)
    labels, n = ndimage.label(mask)
    if n > 1:
        sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1))
        mask = labels == (1 + int(np.argmax(sizes)))
    return ndimage.binary_fill_holes(mask)


def _masked_smooth(values: np.ndarray, mask: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian smoothing restricted to ``mask`` (normalised convolution)."""
    m = mask.astype(np.float64)
    num = ndimage.gaussian_filter(values * m, sigma_px, mode="nearest")
    den = ndimage.gaussian_filter(m, sigma_px, mode="nearest")
    out = np.where(den > 1e-6, num / np.maximum(den, 1e-6), values)
    return np.where(mask, out, values)


# ------------------------------------------------------------------------------------
# thickness-aware weight
# ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThicknessMaps:
    """Per-pixel maps of the thickness-aware recombination (full resolution, float32).

    ``RC = ln HE - weight_map * ln LE + offset_map``.  ``thickness_mm`` is the local
    thickness estimate, ``mask`` the breast mask, ``weight_interior`` the weight at
    the compressed thickness and ``ln_le_reference`` the interior ln LE level.
    """

    weight_map: np.ndarray
    offset_map: np.ndarray
    thickness_mm: np.ndarray
    mask: np.ndarray
    weight_interior: float
    ln_le_reference: float


def thickness_maps(
    ln_le: np.ndarray,
    ln_he: np.ndarray | None = None,
    *,
    thickness_mm: float,
    pixel_mm: float,
    le_beam: Any,
    he_beam: Any,
    glandularity: float = GLANDULARITY_DEFAULT,
) -> ThicknessMaps:
    """Thickness-aware weight and offset maps that remove the rim artefact.

    Model (slab model of :mod:`cemrecon.physics.weights`; physics.md section 1):

    1. Images are averaged to ~0.8 mm pixels and smoothed (1.5 mm) inside the breast
       mask; ``d(x)`` is the distance to the skin line.  The *reference band*
       (20-30 mm from the skin line) is taken to be tissue of the compressed
       thickness ``T0`` (a compressed breast rolls off over its last 10-20 mm).
    2. Radial thickness profile ``T(d)``: for every 0.8 mm ring of ``d``, the median
       signal relative to the reference band is inverted on the polyenergetic slab
       curve (beam hardening included), then forced to rise monotonically inwards.

       * With ``ln_he`` (default in :func:`cemrecon.recombine`): the signal is the
         dual-energy combination ``ln HE - w0 ln LE``, which is blind to the
         glandular/adipose mix (that is what ``w0`` cancels), so the fatty
         periphery is not misread as thin tissue.  Medians over whole rings make
         it insensitive to focal enhancement near the skin.
       * LE only: ``ln LE``; a fatty periphery attenuates less than the model's
         ``g = 0.5`` slab, so the thinning is under-estimated (about 20 %).

       ``T(x) = T(d(x))``, clipped to ``[3.5 mm, T0]`` and blended back to ``T0``
       between 20 and 30 mm from the skin line.
    3. Per pixel: ``w(x) = w_slab(T(x))``, the cancelling weight at the local
       thickness (physics.md Table 2), and the slab model's RC change due to the
       thinning, ``dRC(T) = [lnHE(T) - lnHE(T0)] - w(T) [lnLE(T) - lnLE(T0)]``, is
       removed (RC of tissue at ``T`` then reads as tissue at ``T0``; uncorrected,
       +1 cm reads as +6-8 mg I/cm^2).  LE is referenced to its reference-band
       level ``L_ref`` so that a change of weight does not shift RC by
       ``dw * ln(DN)``:

       ``RC = ln HE - w(x) (ln LE - L_ref) - w0 L_ref - dRC(T(x))``,

       written as ``ln HE - w(x) ln LE + offset(x)``; beyond 30 mm ``w = w0`` and
       ``offset = 0``, identical to the scalar physics weight.

    Parameters
    ----------
    ln_le : ndarray, shape (H, W)
        Natural log of the offset-corrected LE image.
    ln_he : ndarray, shape (H, W), optional
        Natural log of the offset-corrected HE image (dual-energy thickness).
    thickness_mm : float
        Compressed thickness ``T0``.
    pixel_mm : float
        Pixel spacing at the detector.
    le_beam, he_beam : cemrecon.physics.Beam
    glandularity : float, optional

    Returns
    -------
    ThicknessMaps
    """
    t0 = float(thickness_mm)
    curve = weight_curve(le_beam, he_beam, glandularity=round(float(glandularity), 2),
                         max_thickness_mm=max(120.0, float(np.ceil(t0)) + 1.0))
    if not curve.thickness_mm[0] < t0 <= curve.thickness_mm[-1]:
        raise PhysicsError(f"thickness_mm={t0!r} outside the slab model's "
                           f"{curve.thickness_mm[0]:g}-{curve.thickness_mm[-1]:g} mm")
    if ln_he is not None and ln_he.shape != ln_le.shape:
        raise ValueError(f"ln_le and ln_he shapes differ: {ln_le.shape} vs {ln_he.shape}")
    factor = _factor(pixel_mm, _THICKNESS_PIXEL_MM)
    low_mm = factor * pixel_mm
    low_le = block_mean(ln_le, factor)
    mask = breast_mask_lowres(low_le)
    sigma = _THICKNESS_SMOOTH_MM / low_mm
    smooth_le = _masked_smooth(low_le, mask, sigma)
    w0, le_t0, he_t0 = (float(v) for v in curve.at(t0))
    if ln_he is not None:
        signal = _masked_smooth(block_mean(ln_he, factor), mask, sigma) - w0 * smooth_le
        slab = curve.ln_he - w0 * curve.ln_le
        slab_t0 = he_t0 - w0 * le_t0
    else:
        signal = smooth_le
        slab = curve.ln_le
        slab_t0 = le_t0

    dist_mm = ndimage.distance_transform_edt(mask) * low_mm
    ref_band = mask & (dist_mm >= ROLLOFF_FULL_MM) & (dist_mm <= ROLLOFF_NONE_MM)
    if np.count_nonzero(ref_band) < 25:
        # small breast (or small field): the innermost quarter stands in for the plateau
        cut = np.percentile(dist_mm[mask], 75) if mask.any() else 0.0
        ref_band = mask & (dist_mm >= cut)
        logger.info("thickness map: breast has no pixel %.0f mm from the skin line; "
                    "using the innermost quarter as reference", ROLLOFF_FULL_MM)
    pick = ref_band if ref_band.any() else np.ones_like(mask)
    l_ref = float(np.median(smooth_le[pick]))
    s_ref = float(np.median(signal[pick]))

    # slab curve relative to T0 on [Tmin, T0]; both signals fall with thickness
    sel = curve.thickness_mm < t0
    t_grid = np.append(curve.thickness_mm[sel], t0)
    d_grid = np.append(slab[sel], slab_t0) - slab_t0  # decreasing, ends at 0
    if np.any(np.diff(d_grid) >= 0):  # pragma: no cover - guards a physics change
        raise PhysicsError("slab signal is not monotonic in thickness; cannot invert it")

    # radial profile: median signal per distance-to-skin ring, read as thickness,
    # forced to rise monotonically towards the interior
    edges = np.arange(0.0, ROLLOFF_FULL_MM + low_mm, low_mm)
    d_mask = dist_mm[mask]
    ring = np.digitize(d_mask, edges) - 1
    vals = signal[mask]
    d_prof, t_prof = [], []
    for k in range(edges.size - 1):
        in_ring = ring == k
        if np.any(in_ring):  # (the innermost ring is empty: the EDT starts at one pixel)
            delta = float(np.median(vals[in_ring])) - s_ref
            d_prof.append(float(np.mean(d_mask[in_ring])))
            t_prof.append(float(np.interp(-delta, -d_grid, t_grid)))  # np.interp needs increasing x
    if t_prof:
        t_mono = np.maximum.accumulate(np.asarray(t_prof))
        t_est = np.interp(dist_mm, np.asarray(d_prof), t_mono, left=t_mono[0], right=t0)
    else:
        t_est = np.full(dist_mm.shape, t0)
    taper = np.clip((ROLLOFF_NONE_MM - dist_mm) / (ROLLOFF_NONE_MM - ROLLOFF_FULL_MM), 0.0, 1.0)
    t_loc = t0 - taper * (t0 - t_est)
    t_loc = np.where(mask, t_loc, t_grid[0])

    w_loc, le_loc, he_loc = curve.at(t_loc)
    d_rc = (he_loc - he_t0) - w_loc * (le_loc - le_t0)
    offset = (w_loc - w0) * l_ref - d_rc
    shape = ln_le.shape
    weight_map = np.clip(_upsample(w_loc, factor, shape), 0.0, 1.0)
    return ThicknessMaps(
        weight_map=weight_map,
        offset_map=_upsample(offset, factor, shape),
        thickness_mm=_upsample(t_loc, factor, shape),
        mask=_upsample(mask.astype(np.float32), factor, shape) >= 0.5,
        weight_interior=w0,
        ln_le_reference=l_ref,
    )


# ------------------------------------------------------------------------------------
# image-based weight
# ------------------------------------------------------------------------------------


def image_weight(ln_le: np.ndarray, ln_he: np.ndarray, *, pixel_mm: float) -> float:
    """Weight that minimises residual anatomical texture of RC inside the breast.

    With ``b_L``, ``b_H`` the band-passed (difference of Gaussians, 0.8-4 mm) ln LE
    and ln HE on ~0.4 mm pixels, restricted to the breast more than 20 mm from the
    skin line, the high-pass energy ``sum (b_H - w b_L)^2`` of RC is minimal at
    ``w = sum b_H b_L / sum b_L^2`` (least squares).  Texture is glandular/adipose
    composition, which is what ``w`` must cancel; the band excludes the thickness
    roll-off (low frequencies) and most quantum noise (block averaging + upper
    cut).  Iodine enhancement is a small part of the band energy; quantum noise in
    LE biases ``w`` low by ``var(noise)/var(b_L)`` (a few percent at clinical dose).

    Parameters
    ----------
    ln_le, ln_he : ndarray, shape (H, W)
        Natural logs of the offset-corrected images.
    pixel_mm : float

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Too little breast to fit, or a fitted weight outside 0.02-0.8 (the images
        are not an LE/HE pair of one breast, or hold no texture).
    """
    factor = _factor(pixel_mm, _IMAGE_PIXEL_MM)
    low_mm = factor * pixel_mm
    le_low = block_mean(ln_le, factor)
    he_low = block_mean(ln_he, factor)
    mask = breast_mask_lowres(le_low)
    region = ndimage.distance_transform_edt(mask) * low_mm > _IMAGE_MARGIN_MM
    if np.count_nonzero(region) < 100:
        region = ndimage.binary_erosion(mask, iterations=max(1, int(5.0 / low_mm)))
    if np.count_nonzero(region) < 100:
        raise ValueError(
            f"weight='image' needs at least 100 low-resolution breast pixels, found "
            f"{int(np.count_nonzero(region))}; pass an explicit weight instead"
        )
    s1, s2 = (s / low_mm for s in _IMAGE_BAND_MM)

    def band(x: np.ndarray) -> np.ndarray:
        filled = np.where(mask, x, np.median(x[mask]))
        return ndimage.gaussian_filter(filled, s1) - ndimage.gaussian_filter(filled, s2)

    b_le = band(le_low)[region]
    b_he = band(he_low)[region]
    denom = float(np.dot(b_le, b_le))
    w = float(np.dot(b_he, b_le) / denom) if denom > 0 else float("nan")
    lo, hi = _IMAGE_WEIGHT_RANGE
    if not lo <= w <= hi:
        raise ValueError(
            f"weight='image': fitted weight {w:.4g} is outside {lo}-{hi}; the images hold "
            "too little texture or are not an LE/HE pair; pass an explicit weight instead"
        )
    return w
