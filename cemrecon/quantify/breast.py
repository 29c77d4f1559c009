"""Breast, pectoral-muscle and fibroglandular-tissue (FGT) segmentation from the LE image.

Everything here works on the low-energy image alone, as a radiologist reads density on LE:

* **Breast mask (skin line).** Attenuation ``A = -ln(LE - dark)`` is bimodal (direct exposure
  behind the breast vs. tissue); Otsu's threshold on ``A`` separates them, the largest connected
  region is kept and its holes filled.  The chest-wall side is the image edge the mask touches most.
* **Pectoral muscle (MLO only).** The muscle is a band of full-thickness, muscle-dense tissue in the
  upper chest-wall corner, bounded by a nearly straight edge where attenuation drops.  Along each row
  of the upper half, the strongest attenuation drop close to the chest wall is taken as an edge point;
  a straight line is fitted robustly (RANSAC) and the corner behind it is the muscle.  In dense
  breasts parenchymal edges can be the strongest drop on most rows (phantom seed 8106 R MLO: 25 of
  102 rows on the muscle edge, no line found, the whole muscle searched for calcifications); if no
  plausible line is found, the 3 strongest drops of each row are tried (the muscle edge is among
  them, the parenchymal ones do not line up).  If still no line with a plausible slope is found the
  muscle mask is empty and a warning is logged (the analysis goes on).
  The muscle is a rounded body: its path length grows as the square root of the distance from its
  edge (a chord), and the gradient extremum of such an edge, smoothed with sigma, lies
  ``_ROUNDED_EDGE_OFFSET_SIGMA`` = 0.76 sigma *inside* the muscle, so the fitted line is moved out by
  that much (see the constant).
* **FGT, thickness-aware.** Near the skin line the compressed breast rolls off, so raw attenuation
  mixes thickness with composition.  The local *fat reference* ``A_fat(d)`` is the low percentile of
  smoothed attenuation among pixels at the same distance ``d`` from the skin line (an all-fat ray of
  that thickness).  The glandular index is the excess attenuation relative to that reference, scaled
  by the glandular/adipose contrast ``KAPPA_GLANDULAR_LE`` so that it approximates the glandular
  fraction of the ray: ``g = (A - A_fat(d)) / (KAPPA * A_fat(d))``.  Pixels with ``g`` above
  ``fgt_fraction_threshold`` and at least ``rim_mm`` from the skin line are FGT.
* **Exact distances only.**  The reference assumes that the rays at one distance from the skin
  share one thickness.  Where an image edge other than the chest wall's cuts the breast (the
  axilla at the top of an MLO), the skin may lie just beyond it: a pixel nearer that edge than
  the visible skin line may be much closer to the skin than its distance says, and the rays
  there can be thinner than their band.  A 2nd-percentile reference is set by as few as 2 % of a band's
  pixels, so such a corner took over whole bands: on phantom seed 27017 L MLO (72 mm) the
  reference of the 12.5-15 mm bands came from 4 % of their pixels, at the top edge near the
  pectoral muscle (true thickness 48-68 mm against 69 mm), so the band's fat read glandular
  (index 0.16-0.17), the iodine map's roll-off fit took its thickness from that corner (62 mm),
  and the fat of the whole band read +5 to +7.6 mg/cm^2 of iodine, a false ring of
  enhancement.  Pixels whose visible skin is farther than the nearest such image edge
  (``BreastSegmentation.distance_reliable``) are therefore left out of the fat reference, the
  roll-off fit's reference (:func:`rolloff_reference`) and the relative map's fat baseline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import ndimage as ndi

__all__ = [
    "KAPPA_GLANDULAR_LE",
    "BreastSegmentation",
    "breast_mask",
    "pectoral_mask",
    "rolloff_reference",
    "segment_breast",
]

logger = logging.getLogger(__name__)

#: Relative attenuation contrast of glandular vs adipose tissue at low energy,
#: (mu_g - mu_a) / mu_a.  Hammerstein tissues (physics.md section 2): 0.53 at 20 keV,
#: 0.42 at 25 keV; the detected LE mean energy behind 5 cm is 20.5-22.8 keV, hence 0.5.
KAPPA_GLANDULAR_LE = 0.5

#: Smoothing of ln LE before the fat-reference / glandular estimate (mm): removes quantum noise
#: (sigma ln LE ~ 0.01 per 100 um pixel) while keeping FGT structures of a few mm.
_FGT_SMOOTH_MM = 0.5

#: Width of the distance-from-skin bins used for the fat reference (mm).
_FAT_BIN_MM = 1.0

#: Percentile of attenuation taken as the all-fat ray at a given distance from the skin.
_FAT_PERCENTILE = 2.0

#: The roll-off ends where the fat reference is within 2 % of its value 10 mm further in.
_PLATEAU_FRACTION = 0.98

#: Offset (in units of the smoothing sigma) of the pectoral edge from the extremum of the smoothed
#: attenuation gradient.  Near the edge of a rounded body the path through it is a chord,
#: ``t(u) ~ sqrt(u)`` at a distance ``u`` inside the edge (as the breast's own edge roll-off); the
#: derivative of the Gaussian-smoothed profile, ``int_0^inf G(x - u) / (2 sqrt(u)) du``, peaks at
#: ``x = 0.76 sigma`` inside the edge (numerically), not at the edge.  Without this correction the
#: muscle mask stopped ~0.9 mm short of the muscle on full-scale phantom MLO views (seeds 8100-8101),
#: which put the muscle edge on the border of the calcification search region (1 mm inside the
#: mask), where it was cut into speck-sized pieces that grouped into false clusters along the
#: edge.  A sharp (step) edge has its extremum at the edge, so for it the mask reaches 0.76 sigma
#: (0.76 mm) past the muscle: a thin strip of breast left out, never muscle left in.
_ROUNDED_EDGE_OFFSET_SIGMA = 0.76


@dataclass(frozen=True)
class BreastSegmentation:
    """Masks and maps derived from one LE image (all arrays have the LE shape).

    Attributes
    ----------
    breast_mask : ndarray of bool
        Breast tissue (inside the skin line), pectoral muscle *excluded*.
    pectoral_mask : ndarray of bool
        Pectoral muscle (empty on CC views or when none is found).
    fgt_mask : ndarray of bool
        Fibroglandular tissue (``glandular_index >= fgt_fraction_threshold``) inside ``breast_mask``.
    glandular_index : ndarray of float32
        Approximate glandular fraction of each ray (0 = fat, 1 = all glandular); NaN outside the breast.
    distance_mm : ndarray of float32
        Distance from the skin line (mm), 0 outside the breast.
    chest_wall : str
        ``"left"`` or ``"right"``: the image edge the breast is attached to.
    pixel_mm : float
        Pixel size used.
    rolloff_mm : float
        Estimated width of the thickness roll-off (distance from the skin line where the all-fat
        attenuation reaches its plateau).
    distance_reliable : ndarray of bool (derived, cached)
        Where ``distance_mm`` is the distance to the skin: the visible skin line is no farther
        than the nearest image edge other than the chest wall's.  Beyond an edge that cuts the
        breast (the axilla at the top of an MLO, a large breast) the skin may lie just outside
        the field, so a pixel nearer that edge than the visible skin is at most ``distance_mm``
        from the skin, and the rays there need not share the thickness of their distance band.
        Such pixels are left out of the per-distance fat references (module docstring).
    """

    breast_mask: np.ndarray
    pectoral_mask: np.ndarray
    fgt_mask: np.ndarray
    glandular_index: np.ndarray
    distance_mm: np.ndarray
    chest_wall: str
    pixel_mm: float
    rolloff_mm: float = 0.0

    @cached_property
    def distance_reliable(self) -> np.ndarray:
        return _distance_reliable(self.distance_mm, self.pixel_mm, self.chest_wall)


def _attenuation(le: np.ndarray, dark_offset_dn: float) -> np.ndarray:
    """``-ln(LE - dark)`` in float64, with non-positive signal clipped to 1 DN."""
    sig = np.asarray(le, dtype=np.float64) - float(dark_offset_dn)
    return -np.log(np.maximum(sig, 1.0))


def _otsu(values: np.ndarray) -> float:
    from skimage.filters import threshold_otsu

    return float(threshold_otsu(values))


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, n = ndi.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def breast_mask(le: np.ndarray, *, dark_offset_dn: float = 0.0) -> np.ndarray:
    """Mask of the breast (tissue inside the skin line) from the raw LE image.

    Parameters
    ----------
    le : ndarray, shape (H, W)
        Raw low-energy image (DN, integer or float); larger values mean less attenuation.
    dark_offset_dn : float, optional
        Detector dark offset subtracted before taking the logarithm.

    Returns
    -------
    ndarray of bool
        The largest attenuating region, holes filled.  If the image has no direct-exposure region
        (breast fills the field), every pixel is breast.

    Examples
    --------
    >>> import numpy as np
    >>> le = np.full((40, 40), 4000, np.uint16); le[:, :25] = 1500
    >>> int(breast_mask(le).sum())  # 40 x 25 = 1000, less the 4 corners the 3x3 opening trims
    996
    """
    a = _attenuation(le, dark_offset_dn)
    lo, hi = np.percentile(a, [1, 99])
    # A breast image with direct exposure has two populations separated by far more than noise
    # (ln units: 1-3); if the spread is tiny the breast fills the field.
    if hi - lo < 0.2:
        return np.ones(a.shape, dtype=bool)
    small = a[:: max(1, a.shape[0] // 256), :: max(1, a.shape[1] // 256)]
    otsu = _otsu(small)
    # Otsu splits "air" from "thick tissue" and misses the thin rim; the skin line is where the
    # attenuation leaves the direct-exposure level: air median + max(8 sigma_air, 0.02 ln units)
    # (0.02 = ~0.4 mm of tissue at LE energies).
    air = a[a < otsu]
    a_air = float(np.median(air))
    sigma_air = 1.4826 * float(np.median(np.abs(air - a_air)))
    thr = min(otsu, a_air + max(8.0 * sigma_air, 0.02))
    mask = ndi.binary_opening(ndi.median_filter(a, size=3) > thr, iterations=1)
    mask = _largest_component(mask)
    return ndi.binary_fill_holes(mask)


def _chest_wall_side(mask: np.ndarray) -> str:
    left = int(mask[:, 0].sum())
    right = int(mask[:, -1].sum())
    return "left" if left >= right else "right"


def _edge_candidates(gx: np.ndarray, b_c: np.ndarray, rows: np.ndarray, n_per_row: int) -> np.ndarray:
    """(row, column) of the ``n_per_row`` strongest attenuation drops (local minima of ``gx``) of
    each scanned row, within the 60 % of the breast nearest the chest wall (canonical frame)."""
    pts = []
    for r in rows:
        inside = np.flatnonzero(b_c[r])
        if inside.size < 10:
            continue
        lim = max(3, int(0.6 * inside[-1]))
        seg = gx[r, 2:lim]
        if seg.size < 3:
            continue
        if n_per_row == 1:
            c = int(np.argmin(seg))
            if seg[c] < 0:
                pts.append((r, c + 2))
            continue
        mid = seg[1:-1]
        mins = np.flatnonzero((mid < seg[:-2]) & (mid <= seg[2:]) & (mid < 0)) + 1
        for c in mins[np.argsort(seg[mins])[:n_per_row]]:
            pts.append((r, int(c) + 2))
    return np.asarray(pts, dtype=np.float64).reshape(-1, 2)


def _fit_straight_edge(data: np.ndarray, *, pixel_mm: float):
    """RANSAC line through edge candidates: the inlier mask, or None when fewer than 40 % of the
    rows with candidates (or fewer than 8) have a point on the line."""
    from skimage.measure import LineModelND, ransac

    try:
        model, inliers = ransac(
            data, LineModelND, min_samples=2, residual_threshold=max(2.0, 1.5 / pixel_mm),
            max_trials=200, rng=0,
        )
    except Exception:  # noqa: BLE001 - a failed fit is a "no muscle found" answer
        return None
    if model is None or inliers is None:
        return None
    n_rows = np.unique(data[:, 0]).size
    n_in = np.unique(data[inliers, 0]).size
    if n_in < max(8, 0.4 * n_rows):
        return None
    return inliers


def pectoral_mask(
    le: np.ndarray,
    breast: np.ndarray,
    *,
    dark_offset_dn: float = 0.0,
    pixel_mm: float,
    chest_wall: str | None = None,
    top: bool = True,
) -> np.ndarray:
    """Pectoral muscle in the upper chest-wall corner of an MLO view.

    Parameters
    ----------
    le : ndarray, shape (H, W)
        Raw LE image.
    breast : ndarray of bool
        Breast mask (with the muscle still inside).
    dark_offset_dn : float, optional
        Detector dark offset.
    pixel_mm : float
        Pixel size in mm.
    chest_wall : {"left", "right"}, optional
        Side of the chest wall; found from ``breast`` when omitted.
    top : bool, optional
        Whether the muscle is at the top (row 0) of the image (the usual MLO orientation).

    Returns
    -------
    ndarray of bool
        Muscle pixels (subset of ``breast``); empty if no plausible edge is found.
    """
    if chest_wall is None:
        chest_wall = _chest_wall_side(breast)
    a = _attenuation(le, dark_offset_dn)
    # Work in a canonical orientation: chest wall at column 0, muscle at the top.
    flip_c = chest_wall == "right"
    flip_r = not top
    a_c = a[::-1] if flip_r else a
    b_c = breast[::-1] if flip_r else breast
    if flip_c:
        a_c, b_c = a_c[:, ::-1], b_c[:, ::-1]
    h, w = a_c.shape
    sigma_px = max(1.0, 1.0 / pixel_mm)
    sm = ndi.gaussian_filter(a_c, sigma_px)
    # column gradient: attenuation *drop* going away from the chest wall is a negative derivative
    gx = ndi.sobel(sm, axis=1)
    rows = np.arange(0, h // 2, max(1, h // 200))
    # the strongest drop of each row; in dense breasts parenchymal edges may be stronger than the
    # muscle edge on most rows, and then the straight edge is sought among the 3 strongest drops
    # of each row (the muscle edge is among them; the parenchymal ones do not line up)
    line = None
    for n_per_row in (1, 3):
        data = _edge_candidates(gx, b_c, rows, n_per_row)
        inliers = _fit_straight_edge(data, pixel_mm=pixel_mm) if len(data) >= 8 else None
        if inliers is None:
            reason = "no straight edge found"
            continue
        # fit col = c0 + s * row on the inliers (least squares)
        s, c0 = np.polyfit(data[inliers, 0], data[inliers, 1], 1)
        # plausible pectoral: edge moves toward the chest wall going down (s < 0), starts away from it
        if s < -0.05 and c0 > 5:
            line = (s, c0)
            break
        reason = f"implausible edge (slope {s:.2f}, intercept {c0:.1f} px)"
    if line is None:
        logger.warning("pectoral muscle: %s; muscle not excluded", reason)
        return np.zeros_like(breast)
    s, c0 = line
    # the gradient extremum lies inside a rounded muscle: move the line out (perpendicular to it)
    c0 = c0 + _ROUNDED_EDGE_OFFSET_SIGMA * sigma_px * float(np.hypot(1.0, s))
    rr, cc = np.mgrid[0:h, 0:w]
    muscle = (cc < c0 + s * rr) & b_c
    if flip_c:
        muscle = muscle[:, ::-1]
    if flip_r:
        muscle = muscle[::-1]
    return muscle


def _distance_mm(mask: np.ndarray, pixel_mm: float, chest_wall: str) -> np.ndarray:
    """Distance from the skin line; the chest-wall image edge is not skin."""
    # pad the chest-wall edge with breast so that it does not count as a boundary
    pad = ((0, 0), (1, 0)) if chest_wall == "left" else ((0, 0), (0, 1))
    padded = np.pad(mask, pad, mode="edge")
    d = ndi.distance_transform_edt(padded) * pixel_mm
    d = d[:, 1:] if chest_wall == "left" else d[:, :-1]
    return d.astype(np.float32)


def _distance_reliable(distance_mm: np.ndarray, pixel_mm: float, chest_wall: str) -> np.ndarray:
    """Pixels whose visible skin line is no farther than the nearest non-chest-wall image edge.

    The true distance to the skin is ``min(visible, beyond the field)``, and the skin beyond an
    edge is at least that edge's distance away, so where the visible skin is nearer than every
    such edge the distance is exact; elsewhere it is an upper bound.
    """
    h, w = distance_mm.shape
    rows = (np.arange(h, dtype=np.float64) + 0.5) * pixel_mm
    cols = (np.arange(w, dtype=np.float64) + 0.5) * pixel_mm
    to_row_edge = np.minimum(rows, rows[::-1])[:, None]
    # the edge opposite the chest wall; the chest-wall edge is not skin
    to_col_edge = (cols[::-1] if chest_wall == "left" else cols)[None, :]
    return distance_mm <= np.minimum(to_row_edge, to_col_edge)


def glandular_index(
    le: np.ndarray,
    breast: np.ndarray,
    distance_mm: np.ndarray,
    *,
    dark_offset_dn: float = 0.0,
    pixel_mm: float,
    kappa: float = KAPPA_GLANDULAR_LE,
    reference: np.ndarray | None = None,
) -> np.ndarray:
    """Approximate glandular fraction per ray, relative to a fat reference at the same thickness.

    See the module docstring.  ``reference`` (default: the whole breast) restricts the pixels
    whose attenuation percentiles make the fat reference (e.g. to those whose distance from
    the skin is exact, :func:`segment_breast`); the index is computed for the whole breast.

    Returns
    -------
    glandular_index : ndarray of float32
        NaN outside ``breast``.
    plateau_mm : float
        Distance from the skin line where the fat reference stops rising (within 2 % over 10 mm): the end
        of the thickness roll-off.
    """
    a = _attenuation(le, dark_offset_dn)
    # normalised smoothing inside the breast (no bleeding of direct exposure into the edge)
    sig = max(0.5, _FGT_SMOOTH_MM / pixel_mm)
    m = breast.astype(np.float64)
    num = ndi.gaussian_filter(np.where(breast, a, 0.0), sig)
    den = ndi.gaussian_filter(m, sig)
    a_s = np.where(breast, num / np.maximum(den, 1e-6), np.nan)
    d = distance_mm[breast]
    vals = a_s[breast]
    # shift so that attenuation is measured from the direct-exposure level (A = mu * t >= 0)
    outside = ~breast
    if outside.any():
        a0 = float(np.median(a[outside]))
    else:
        a0 = float(np.nanmin(vals)) - 0.1  # no air: an arbitrary but safe zero
    vals = vals - a0
    d_max = float(d.max()) if d.size else 0.0
    edges = np.arange(0.0, d_max + _FAT_BIN_MM, _FAT_BIN_MM)
    if edges.size < 2:
        edges = np.array([0.0, d_max + 1e-3])
    idx = np.clip(np.digitize(d, edges) - 1, 0, edges.size - 2)
    n_bins = edges.size - 1

    def fat_reference(use: np.ndarray) -> np.ndarray:
        """Low attenuation percentile of the ``use`` pixels per distance bin (NaN under 20)."""
        ref = np.full(n_bins, np.nan)
        counts = np.bincount(idx[use], minlength=n_bins)
        order = np.argsort(idx[use], kind="stable")
        for b, chunk in enumerate(np.split(vals[use][order], np.cumsum(counts)[:-1])):
            if chunk.size >= 20:
                ref[b] = np.percentile(chunk, _FAT_PERCENTILE)
        return ref

    ref = fat_reference(np.ones(d.shape, dtype=bool) if reference is None
                        else np.asarray(reference, dtype=bool)[breast])
    if reference is not None and not np.isfinite(ref).any():
        ref = fat_reference(np.ones(d.shape, dtype=bool))
    # bins too small (deep interior with few pixels) inherit the last reliable value; the
    # reference is made non-decreasing in d (thickness only grows away from the skin)
    good = np.isfinite(ref)
    if not good.any():
        return np.where(breast, 0.0, np.nan).astype(np.float32), 0.0
    ref = np.interp(np.arange(n_bins), np.flatnonzero(good), ref[good])
    ref = np.maximum.accumulate(ref)
    centres = 0.5 * (edges[:-1] + edges[1:])
    # end of the thickness roll-off: the fat reference is flat, i.e. within 2 % of its value
    # 10 mm further in (the deep bins hold few, often glandular pixels: no global maximum)
    ahead = ref[np.minimum(np.arange(n_bins) + round(10.0 / _FAT_BIN_MM), n_bins - 1)]
    flat = ref >= _PLATEAU_FRACTION * ahead
    plateau_mm = float(centres[int(np.argmax(flat))]) if flat.any() else 0.0
    a_fat = np.interp(d, centres, ref)
    a_fat = np.maximum(a_fat, 1e-3)
    g = (vals - a_fat) / (kappa * a_fat)
    out = np.full(breast.shape, np.nan, dtype=np.float32)
    out[breast] = g.astype(np.float32)
    return out, plateau_mm


def segment_breast(
    le: np.ndarray,
    *,
    pixel_mm: float,
    view: str = "CC",
    dark_offset_dn: float = 0.0,
    fgt_fraction_threshold: float = 0.25,
    rim_mm: float = 4.0,
) -> BreastSegmentation:
    """Segment breast, pectoral muscle (MLO) and FGT from one raw LE image.

    Parameters
    ----------
    le : ndarray, shape (H, W)
        Raw low-energy image (DN).
    pixel_mm : float
        Pixel size (mm).
    view : str, optional
        ``"CC"``, ``"MLO"``...; the pectoral muscle is searched on MLO and ML views.
    dark_offset_dn : float, optional
        Detector dark offset (DN).
    fgt_fraction_threshold : float, optional
        Glandular index above which a pixel counts as FGT.
    rim_mm : float, optional
        No FGT within this distance of the skin line: the skin (1.5 mm) and the steepest part of
        the thickness roll-off, where a 1 mm distance bin spans rays of very different thickness
        and the fat reference fails (there is no gland in the skin anyway).

    Returns
    -------
    BreastSegmentation
    """
    le = np.asarray(le)
    if le.ndim != 2:
        raise ValueError(f"le must be a 2-D image, got shape {le.shape}")
    if not pixel_mm > 0:
        raise ValueError(f"pixel_mm must be > 0, got {pixel_mm!r}")
    full = breast_mask(le, dark_offset_dn=dark_offset_dn)
    side = _chest_wall_side(full)
    if str(view).upper() in ("MLO", "ML"):
        pect = pectoral_mask(le, full, dark_offset_dn=dark_offset_dn, pixel_mm=pixel_mm,
                             chest_wall=side)
    else:
        pect = np.zeros_like(full)
    breast = full & ~pect
    dist = _distance_mm(full, pixel_mm, side)
    exact = _distance_reliable(dist, pixel_mm, side)
    g, plateau = glandular_index(le, breast, dist, dark_offset_dn=dark_offset_dn, pixel_mm=pixel_mm,
                                 reference=breast & exact)
    fgt = breast & (np.nan_to_num(g, nan=-1.0) >= fgt_fraction_threshold) & (dist >= rim_mm)
    return BreastSegmentation(
        breast_mask=breast, pectoral_mask=pect, fgt_mask=fgt, glandular_index=g,
        distance_mm=dist, chest_wall=side, pixel_mm=float(pixel_mm), rolloff_mm=plateau,
    )


def rolloff_reference(
    le: np.ndarray,
    *,
    pixel_mm: float,
    view: str = "CC",
    dark_offset_dn: float | None = None,
    segmentation: BreastSegmentation | None = None,
    fat_fraction_max: float = 0.15,
    margin_mm: float = 5.0,
    exclude: np.ndarray | None = None,
    downsample: int = 1,
):
    """Fat and distance from the skin line, to fit the iodine map's roll-off thickness.

    Returns a :class:`cemrecon.iodine.RolloffReference`: the breast's fat (glandular index below
    ``fat_fraction_max``, minus ``exclude``) out to ``margin_mm`` past the distance where the
    breast reaches its compressed thickness (``BreastSegmentation.rolloff_mm``).  Without a
    ``segmentation`` the LE is segmented here, on ``downsample`` x ``downsample`` block means
    (the fit works on 1 mm distance bands, so 2 x 2 blocks of 0.1 mm pixels lose nothing and
    take a quarter of the time); mask and distance come back at the LE's shape.
    """
    from cemrecon.iodine import RolloffReference

    le = np.asarray(le)
    k = int(downsample)
    if k < 1:
        raise ValueError(f"downsample must be a positive integer, got {downsample!r}")
    if segmentation is None:
        small = le
        if k > 1:
            h, w = (le.shape[0] // k) * k, (le.shape[1] // k) * k
            small = le[:h, :w].astype(np.float64).reshape(h // k, k, w // k, k).mean(axis=(1, 3))
        segmentation = segment_breast(small, pixel_mm=pixel_mm * k, view=view,
                                      dark_offset_dn=dark_offset_dn or 0.0)
    seg = segmentation
    # the fit is per distance band: exact distances only
    fat = (seg.breast_mask & seg.distance_reliable
           & (np.nan_to_num(seg.glandular_index, nan=np.inf) < fat_fraction_max))
    dist = seg.distance_mm
    if fat.shape != le.shape:  # back to the LE grid: nearest block, edge rows/columns repeated
        rows = np.minimum(np.arange(le.shape[0]) // k, fat.shape[0] - 1)
        cols = np.minimum(np.arange(le.shape[1]) // k, fat.shape[1] - 1)
        fat, dist = fat[np.ix_(rows, cols)], dist[np.ix_(rows, cols)]
    if exclude is not None:
        fat = fat & ~np.asarray(exclude, dtype=bool)
    return RolloffReference(fat, dist, seg.rolloff_mm + float(margin_mm))
