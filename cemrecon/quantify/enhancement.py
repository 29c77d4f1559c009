"""Enhancement at a calcification site: enhancement / no_enhancement / indeterminate, and its type.

Method (per ROI, on the baseline-corrected iodine map, mg/cm^2)
--------------------------------------------------------------
1. **Calcifications out.** Calcifications read *opposite* to iodine on RC (a 200 um speck is
   -0.6 to -0.8 mg/cm^2-equivalent, physics.md section 7): their pixels, dilated by
   ``calc_dilation_px`` (2 px), are excluded from every statistic.
2. **Smoothing.** The map is smoothed with a Gaussian of ``stat_smooth_mm`` (1 mm) over the usable
   pixels only (normalised convolution): quantum noise (~0.3 mg/cm^2 per 100 um pixel, physics.md
   section 3) drops ~35-fold, lesions of a few mm keep their level.
3. **Site statistic.** ``S`` = the ``site_percentile`` (90th) percentile of the smoothed map in the
   ROI box: close to the peak of an enhancement that fills part of the box (a mean over the box
   would dilute a small mass or patchy NME by the box/lesion area ratio), yet not a single pixel.
4. **Background ring and detectability limit.** The ROI box is translated over a grid around the
   site (from ``ring_gap_mm`` to ``search_mm`` away, never overlapping it, >= 80 % inside the
   breast); each copy gives the same statistic ``S_k``: what this background shows with no lesion.
   Windows touching the connected region above ``median + (S - median) / 2`` that contains the
   site (the finding itself, e.g. an NME larger than the calcification box) are left out, unless
   they are more than ``max_own_fraction`` (40 %) of the windows: then that region is the
   parenchymal enhancement itself.  ``iodine_excess = S - median(S_k)``.  The robust spread of
   ``S_k`` (IQR/1.349) is ``sigma_bg``: BPE texture plus noise at the ROI's own size.  The
   detectability limit is ``L = max(z_detect * sigma_bg, P90(S_k) - median(S_k))``: the site must
   stand 3 sigma out of the background *and* outshine the brighter 10 % of the background windows
   (BPE patches): a site that is not brighter than BPE elsewhere is masked.
5. **Call.** With ``T`` the clinical threshold (0.3 mg/cm^2, SenoBright residual-tissue limit,
   physics.md section 8) and ``L`` the limit:

   * ``enhancement`` if ``excess >= T`` and ``excess >= L``;
   * ``no_enhancement`` if ``excess < T`` and ``L <= T`` (the background would have revealed a
     threshold-level enhancement);
   * ``indeterminate`` otherwise (``L > T``: the background, e.g. moderate or marked BPE, is too
     variable to tell; such a site is never called ``no_enhancement``).

   BPE is a covariate of the call (seed study): in a view with moderate or marked BPE
   (``masking_bpe``), ``no_enhancement`` needs ``L <= T / 2`` (``masking_limit_fraction``): a
   background that would only just reveal threshold-level enhancement is not trusted there.
   Optionally (``masking_check=True``, off by default) ``enhancement`` also needs the site to
   outshine the view's BPE, ``S >= P90(enhancing FGT) + masking_margin * T``; on the phantom this
   turns most weak lesions on BPE patches from enhancement into indeterminate, but also half of the
   real enhancements under moderate/marked BPE (see benchmarks/validate_quantify.py).

   ``cnr = excess / sigma_bg``.  Too few background windows inside the breast -> indeterminate.
6. **Type.** When enhancing, the enhancing region is the smoothed map above
   ``bg + (S - bg) / 2`` (``bg`` = the median of the ring windows), connected components within
   ``near_mm`` of the site (it may extend beyond the box); ``mass`` if it is one compact convex
   component (solidity >= ``mass_min_solidity``, eccentricity <= ``mass_max_eccentricity``,
   elliptical: area >= ``mass_min_ellipse_fill`` x the area of its moment ellipse, which is 1 for
   an ellipse and 0.83 for a triangle such as a segmental wedge; no other component >=
   ``min_component_frac`` of the largest), else ``nme``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

__all__ = [
    "DEFAULT_THRESHOLD_MG_CM2",
    "ENHANCEMENT_CALLS",
    "ENHANCEMENT_TYPES",
    "EnhancementConfig",
    "RoiEnhancement",
    "measure_enhancement",
]

logger = logging.getLogger(__name__)

ENHANCEMENT_CALLS = ("enhancement", "no_enhancement", "indeterminate")
ENHANCEMENT_TYPES = ("mass", "nme")

#: Clinical enhancement threshold (mg I/cm^2): residual tissue signal of a calibrated system stays
#: below 0.3 mg/cm^2 (SenoBright HD QC, physics.md section 8), so less is not called enhancement.
DEFAULT_THRESHOLD_MG_CM2 = 0.3


@dataclass(frozen=True)
class EnhancementConfig:
    """Settings of the enhancement call (see the module docstring)."""

    threshold_mg_cm2: float = DEFAULT_THRESHOLD_MG_CM2
    z_detect: float = 3.0
    calc_dilation_px: int = 2
    ring_gap_mm: float = 1.0
    search_mm: float = 30.0
    stat_smooth_mm: float = 1.0
    site_percentile: float = 90.0
    min_windows: int = 8
    near_mm: float = 5.0
    max_own_fraction: float = 0.4
    masking_bpe: tuple[str, ...] = ("moderate", "marked")
    masking_limit_fraction: float = 0.5
    masking_check: bool = False
    masking_margin: float = 0.0
    masking_percentile: float = 90.0
    max_windows: int = 400
    mass_min_solidity: float = 0.85
    mass_max_eccentricity: float = 0.92
    mass_min_ellipse_fill: float = 0.9
    min_component_frac: float = 0.15

    def __post_init__(self) -> None:
        for name in ("threshold_mg_cm2", "z_detect", "search_mm", "stat_smooth_mm"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"EnhancementConfig.{name} must be > 0, got {v!r}")
        if self.calc_dilation_px < 0:
            raise ValueError(f"EnhancementConfig.calc_dilation_px must be >= 0, "
                             f"got {self.calc_dilation_px!r}")


@dataclass(frozen=True)
class RoiEnhancement:
    """Result for one ROI (see :mod:`cemrecon.report.schema` for the JSON form)."""

    bbox: tuple[int, int, int, int]
    source: str
    n_calcifications: int
    enhancement: str
    type: str | None
    iodine_excess_mg_cm2: float
    detectability_limit_mg_cm2: float
    cnr: float
    enhancing_mask: np.ndarray | None = None  # full-image mask of the enhancing region (or None)

    def to_dict(self) -> dict:
        def r(x: float) -> float | None:
            return None if not np.isfinite(x) else round(float(x), 4)

        return {
            "bbox": [int(v) for v in self.bbox],
            "source": self.source,
            "n_calcifications": int(self.n_calcifications),
            "enhancement": self.enhancement,
            "type": self.type,
            "iodine_excess_mg_cm2": r(self.iodine_excess_mg_cm2),
            "detectability_limit_mg_cm2": r(self.detectability_limit_mg_cm2),
            "cnr": r(self.cnr),
        }


def _box_means(values: np.ndarray, valid: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of valid values and valid fraction over every h x w box (indexed by top-left corner)."""
    v = np.where(valid, values, 0.0)
    s = np.pad(np.cumsum(np.cumsum(v, 0), 1), ((1, 0), (1, 0)))
    c = np.pad(np.cumsum(np.cumsum(valid.astype(np.float64), 0), 1), ((1, 0), (1, 0)))
    tot = s[h:, w:] - s[:-h, w:] - s[h:, :-w] + s[:-h, :-w]
    cnt = c[h:, w:] - c[:-h, w:] - c[h:, :-w] + c[:-h, :-w]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = tot / cnt
    return mean, cnt / float(h * w)


def _classify_shape(region: np.ndarray, cfg: EnhancementConfig, pixel_mm: float) -> str:
    from skimage.measure import label, regionprops

    lab = label(region, connectivity=2)
    props = regionprops(lab)
    if not props:
        return "nme"
    areas = np.array([p.area for p in props], dtype=float)
    main = props[int(np.argmax(areas))]
    significant = int(np.sum(areas >= cfg.min_component_frac * areas.max()))
    if significant > 1:
        return "nme"
    if main.area * pixel_mm**2 < 4.0:  # < ~2 mm across: too small to judge a shape
        return "mass"
    # "ellipse fill": area over the area of the ellipse with the same second moments; affine
    # invariant, 1.0 for any ellipse, 0.83 for any triangle (a segmental wedge), 0.95 for a rectangle
    ellipse_area = np.pi / 4.0 * main.axis_major_length * main.axis_minor_length
    fill = main.area / ellipse_area if ellipse_area > 0 else 0.0
    if (main.solidity >= cfg.mass_min_solidity and main.eccentricity <= cfg.mass_max_eccentricity
            and fill >= cfg.mass_min_ellipse_fill):
        return "mass"
    return "nme"


def measure_enhancement(
    iodine_rel_mg_cm2: np.ndarray,
    bbox,
    *,
    breast_mask: np.ndarray,
    calc_mask: np.ndarray | None,
    pixel_mm: float,
    source: str = "detected",
    n_calcifications: int = 0,
    exclude_boxes=None,
    bpe_category: str | None = None,
    masking_level_mg_cm2: float | None = None,
    config: EnhancementConfig | None = None,
) -> RoiEnhancement:
    """Enhancement call for one ROI.

    Parameters
    ----------
    iodine_rel_mg_cm2 : ndarray, shape (H, W)
        Iodine map (mg/cm^2); an absolute map works too, only local differences are used.
    bbox : sequence of 4 int
        ``[row0, col0, row1, col1]`` (end exclusive) in image pixels.
    breast_mask : ndarray of bool
        Breast (background ring and reference windows stay inside it).
    calc_mask : ndarray of bool or None
        Calcification pixels (excluded after dilation).
    pixel_mm : float
        Pixel size (mm).
    source : {"detected", "user"}
        Where the ROI came from (copied to the result).
    n_calcifications : int
        Specks inside the ROI (copied to the result).
    exclude_boxes : list of bbox, optional
        Other findings (e.g. the view's other ROIs); background windows within ``near_mm`` of them
        are not used.
    bpe_category : str, optional
        The view's BPE category; under ``masking_bpe`` (moderate, marked) ``no_enhancement`` needs
        a limit of at most ``masking_limit_fraction`` x the threshold.
    masking_level_mg_cm2 : float, optional
        Brightness of the view's BPE (90th percentile of enhancing FGT, same scale as the map);
        when given, ``enhancement`` also needs the site statistic to exceed it by
        ``masking_margin`` x the threshold.
    config : EnhancementConfig, optional

    Returns
    -------
    RoiEnhancement
    """
    cfg = config or EnhancementConfig()
    io = np.asarray(iodine_rel_mg_cm2, dtype=np.float64)
    hh, ww = io.shape
    r0, c0, r1, c1 = (int(v) for v in bbox)
    r0, c0 = max(0, r0), max(0, c0)
    r1, c1 = min(hh, r1), min(ww, c1)
    if r1 - r0 < 1 or c1 - c0 < 1:
        raise ValueError(f"bbox {list(bbox)!r} does not overlap the image of shape {io.shape}")
    valid = breast_mask & np.isfinite(io)
    if calc_mask is not None and calc_mask.any():
        excl = ndi.binary_dilation(calc_mask, iterations=cfg.calc_dilation_px) \
            if cfg.calc_dilation_px > 0 else calc_mask
        valid &= ~excl
    io0 = np.where(valid, io, 0.0)

    # local working window: site + search radius (everything below stays local and cheap)
    pad = int(np.ceil((cfg.search_mm + cfg.ring_gap_mm) / pixel_mm))
    R0, C0 = max(0, r0 - pad), max(0, c0 - pad)
    R1, C1 = min(hh, r1 + pad), min(ww, c1 + pad)
    win_v = valid[R0:R1, C0:C1]
    win_i = io0[R0:R1, C0:C1]
    sr0, sc0, sr1, sc1 = r0 - R0, c0 - C0, r1 - R0, c1 - C0
    site = np.zeros_like(win_v)
    site[sr0:sr1, sc0:sc1] = True
    site_v = site & win_v
    nan = float("nan")
    if site_v.sum() < 3:
        logger.warning("ROI %s: fewer than 3 usable pixels (outside the breast or all "
                       "calcification); indeterminate", list(bbox))
        return RoiEnhancement(tuple(int(v) for v in (r0, c0, r1, c1)), source, n_calcifications,
                              "indeterminate", None, nan, nan, nan)
    gap = max(1, round(cfg.ring_gap_mm / pixel_mm))
    # smoothed map (normalised convolution over usable pixels): quantum noise down, lesions kept
    sig = max(0.5, cfg.stat_smooth_mm / pixel_mm)
    num = ndi.gaussian_filter(win_i, sig)
    den = ndi.gaussian_filter(win_v.astype(np.float64), sig)
    sm = np.where(win_v & (den > 0.2), num / np.maximum(den, 1e-6), np.nan)
    q = cfg.site_percentile

    def stat(block: np.ndarray) -> float:
        v = block[np.isfinite(block)]
        return float(np.percentile(v, q)) if v.size >= 3 else nan

    s_site = stat(np.where(site_v, sm, np.nan))
    # background ring of ROI-sized windows around the site (not overlapping it, >= 80 % breast)
    bh, bw = sr1 - sr0, sc1 - sc0
    _, frac = _box_means(win_i, win_v, bh, bw)
    tr = np.arange(frac.shape[0])[:, None]
    tc = np.arange(frac.shape[1])[None, :]
    no_overlap = ((tr + bh <= sr0 - gap) | (tr >= sr1 + gap) | (tc + bw <= sc0 - gap)
                  | (tc >= sc1 + gap))
    step = max(1, min(bh, bw) // 3)
    grid = ((tr - sr0) % step == 0) & ((tc - sc0) % step == 0)
    ok = no_overlap & grid & (frac >= 0.8)
    for ob in exclude_boxes or ():
        # other findings (the other ROIs of the view) are not background either
        pr = round(cfg.near_mm / pixel_mm)
        o0, o1 = ob[0] - R0 - pr, ob[2] - R0 + pr
        p0, p1 = ob[1] - C0 - pr, ob[3] - C0 + pr
        ok &= (tr + bh <= o0) | (tr >= o1) | (tc + bw <= p0) | (tc >= p1)
    cand = np.argwhere(ok)
    if len(cand) > cfg.max_windows:
        keep = np.linspace(0, len(cand) - 1, cfg.max_windows).astype(int)
        cand = cand[keep]
    null = np.array([stat(sm[a:a + bh, b:b + bw]) for a, b in cand]) if len(cand) else np.zeros(0)
    fin = np.isfinite(null)
    null, cand = null[fin], cand[fin]
    if null.size >= cfg.min_windows and np.isfinite(s_site):
        # windows touching the region that continues the site's own enhancement (a large NME around
        # the calcifications) are the finding, not its background: leave them out
        med0 = float(np.median(null))
        if s_site - med0 >= cfg.threshold_mg_cm2:
            level = med0 + 0.5 * (s_site - med0)
            above = np.nan_to_num(sm, nan=-np.inf) >= level
            lab, _ = ndi.label(above, structure=np.ones((3, 3), bool))
            own = np.unique(lab[site_v & above])
            own = own[own > 0]
            if own.size:
                region = np.isin(lab, own)
                cs = np.pad(np.cumsum(np.cumsum(region, 0), 1), ((1, 0), (1, 0)))
                a_, b_ = cand[:, 0], cand[:, 1]
                hit = (cs[a_ + bh, b_ + bw] - cs[a_, b_ + bw] - cs[a_ + bh, b_] + cs[a_, b_]) > 0
                # ... unless it is everywhere: then it is the parenchymal background (BPE)
                if hit.mean() <= cfg.max_own_fraction and (~hit).sum() >= cfg.min_windows:
                    null, cand = null[~hit], cand[~hit]
    if null.size < cfg.min_windows or not np.isfinite(s_site):
        logger.info("ROI %s: %d background windows inside the breast (need %d); indeterminate",
                    list(bbox), null.size, cfg.min_windows)
        return RoiEnhancement((r0, c0, r1, c1), source, n_calcifications, "indeterminate", None,
                              nan, nan, nan)
    med = float(np.median(null))
    excess = s_site - med
    q25, q75, q_hi = np.percentile(null, [25, 75, cfg.masking_percentile])
    sigma_bg = float(max((q75 - q25) / 1.349, 1e-6))
    # masking: a site is only told from BPE if it outshines the brighter background windows too
    limit = max(cfg.z_detect * sigma_bg, float(q_hi) - med)
    thr = cfg.threshold_mg_cm2
    outshines_bpe = (not cfg.masking_check or masking_level_mg_cm2 is None
                     or s_site >= masking_level_mg_cm2 + cfg.masking_margin * thr)
    if excess >= thr and excess >= limit and outshines_bpe:
        call = "enhancement"
    elif excess < thr and limit <= thr * (cfg.masking_limit_fraction
                                          if bpe_category in cfg.masking_bpe else 1.0):
        call = "no_enhancement"
    else:
        call = "indeterminate"
    cnr = excess / sigma_bg

    etype = None
    emask = None
    if call == "enhancement":
        # background level of the smoothed map in the window ring, then the connected region above
        # half the excess within near_mm of the site (it may extend well beyond the box)
        ring_pix = np.zeros_like(win_v)
        for a, b in cand:
            ring_pix[a:a + bh, b:b + bw] = True
        ring_pix &= np.isfinite(sm)
        bg = float(np.median(sm[ring_pix])) if ring_pix.any() else med
        above = np.nan_to_num(sm, nan=-np.inf) >= bg + 0.5 * (s_site - bg)
        lab, _ = ndi.label(above, structure=np.ones((3, 3), bool))
        near = ndi.binary_dilation(site, iterations=max(1, round(cfg.near_mm / pixel_mm)))
        touching = np.unique(lab[near & above])
        touching = touching[touching > 0]
        region = np.isin(lab, touching)
        etype = _classify_shape(region, cfg, pixel_mm)
        emask = np.zeros(io.shape, dtype=bool)
        emask[R0:R1, C0:C1] = region
    return RoiEnhancement(
        bbox=(r0, c0, r1, c1), source=source, n_calcifications=int(n_calcifications),
        enhancement=call, type=etype, iodine_excess_mg_cm2=excess,
        detectability_limit_mg_cm2=limit, cnr=cnr, enhancing_mask=emask,
    )
