"""One-view analysis: masks, BPE, calcification clusters, and the enhancement call of every ROI.

:func:`analyze` is the public entry point (``cemrecon.analyze``); :func:`load_rois` reads the
user-ROI JSON file.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cemrecon.quantify.bpe import (
    DEFAULT_CATEGORY_EDGES,
    DEFAULT_ENHANCING_THRESHOLD_MG_CM2,
    DEFAULT_LOCAL_LEVEL_MM,
    DEFAULT_RELATIVE_THRESHOLD,
    BpeResult,
    measure_bpe,
    relative_iodine,
)
from cemrecon.quantify.breast import BreastSegmentation, segment_breast
from cemrecon.quantify.calcifications import CalcificationResult, detect_calcifications
from cemrecon.quantify.enhancement import (
    EnhancementConfig,
    RoiEnhancement,
    measure_enhancement,
)

__all__ = ["AnalyzeConfig", "UserRoi", "ViewAnalysis", "analyze", "load_rois", "validate_rois"]

logger = logging.getLogger(__name__)

_LATERALITIES = ("R", "L")
_VIEWS = ("CC", "MLO", "ML", "LM", "XCCL", "XCCM", "OTHER")


#: Coarsest pixel (mm) at which calcification detection runs at its measured operating point.
CALC_DESIGN_PIXEL_MM = 0.15


@dataclass(frozen=True)
class AnalyzeConfig:
    """All settings of :func:`analyze` (defaults documented in the modules that use them).

    Attributes
    ----------
    fgt_fraction_threshold : float
        Glandular index above which a pixel is FGT (0.25, the phantom's FGT definition: a quarter
        of the tissue path glandular).
    rim_mm : float
        Band along the skin line left out of FGT, BPE and the enhancement background.
    bpe_enhancing_threshold_mg_cm2 : float
        See :data:`cemrecon.quantify.bpe.DEFAULT_ENHANCING_THRESHOLD_MG_CM2`.
    bpe_category_edges : tuple of 3 floats
        Enhancing-fraction edges of minimal / mild / moderate / marked.
    bpe_smooth_mm : float
        Smoothing of the iodine map before the BPE threshold.
    bpe_relative_threshold, bpe_local_level_mm : float
        An FGT pixel enhances above max(``bpe_enhancing_threshold_mg_cm2``,
        ``bpe_relative_threshold`` x the highest enhancing level within ``bpe_local_level_mm``)
        (0.5 and 2 mm: a blurred patch edge crosses half its height at the true edge); see
        :func:`cemrecon.quantify.bpe.measure_bpe`.  ``bpe_relative_threshold=0`` is the plain
        absolute threshold.
    calc_k_sigma : float
        Seed-speck threshold in local-noise units (noise from 3 mm blocks): a cluster needs a
        speck at this z; fainter specks at z >= 4.5 count towards it as members, and its five
        strongest specks must carry 5 sigma of contrast above z = 5 in total (see
        :func:`cemrecon.quantify.calcifications.detect_calcifications`).  Specks of >= 0.2 mm
        hydroxyapatite reach z = 6-15 at full scale; faint calcium-oxalate specks in dense
        breasts 2-8.
    calc_skin_margin_mm : float
        No calcification search within this distance of the skin line: the skin (1.5 mm) and the
        kink of the thickness roll-off behind it respond like specks, and dermal calcifications
        are benign and not worked up.
    detect_calcifications : bool
        Whether to search for calcification clusters (user ROIs are analysed either way).
    rolloff_thickness : bool
        When the iodine map is made here (no ``iodine_mg_cm2`` given): fit the thickness of the
        roll-off towards the skin line so that fat reads no iodine
        (:func:`cemrecon.iodine.fit_rolloff_thickness`), out to ``rolloff_margin_mm`` (5 mm)
        past the distance where the breast reaches its compressed thickness
        (``BreastSegmentation.rolloff_mm``).  With the compressed thickness everywhere, phantoms
        read fat at 5-10 mm from the skin as -3 to -11 mg/cm^2 (33-69 mm breasts) and, after
        the fat baseline of the relative map, glandular tissue as +0.1 to +0.2 mg/cm^2 of
        iodine at 5-15 mm (up to +0.04 at 15-25 mm); with the fitted roll-off, +0.004 to
        +0.010 (seeds 20000, 22019; the interior's +0.008).
    fat_fraction_max : float
        Glandular index below which a pixel is fat: the roll-off fit's reference tissue and the
        relative map's baseline (0.15).
    enhancement : EnhancementConfig
        Settings of the per-ROI call.
    """

    fgt_fraction_threshold: float = 0.25
    rim_mm: float = 4.0
    bpe_enhancing_threshold_mg_cm2: float = DEFAULT_ENHANCING_THRESHOLD_MG_CM2
    bpe_category_edges: tuple[float, float, float] = DEFAULT_CATEGORY_EDGES
    bpe_smooth_mm: float = 0.5
    bpe_relative_threshold: float = DEFAULT_RELATIVE_THRESHOLD
    bpe_local_level_mm: float = DEFAULT_LOCAL_LEVEL_MM
    calc_k_sigma: float = 6.0
    calc_skin_margin_mm: float = 4.0
    detect_calcifications: bool = True
    rolloff_thickness: bool = True
    rolloff_margin_mm: float = 5.0
    fat_fraction_max: float = 0.15
    enhancement: EnhancementConfig = field(default_factory=EnhancementConfig)

    def __post_init__(self) -> None:
        if not (np.isfinite(self.rolloff_margin_mm) and self.rolloff_margin_mm >= 0.0):
            raise ValueError(f"AnalyzeConfig.rolloff_margin_mm must be a finite number >= 0, "
                             f"got {self.rolloff_margin_mm!r}")
        if not 0.0 < self.fat_fraction_max < self.fgt_fraction_threshold:
            raise ValueError(f"AnalyzeConfig.fat_fraction_max must be in (0, fgt_fraction_threshold="
                             f"{self.fgt_fraction_threshold}), got {self.fat_fraction_max!r}")


@dataclass(frozen=True)
class UserRoi:
    """A user ROI: ``bbox = (row0, col0, row1, col1)`` in LE pixels (end exclusive)."""

    laterality: str
    view: str
    bbox: tuple[int, int, int, int]
    study_uid: str | None = None

    def matches(self, *, study_uid: str | None, laterality: str, view: str) -> bool:
        if self.laterality != laterality or self.view != view:
            return False
        return self.study_uid is None or study_uid is None or self.study_uid == study_uid


@dataclass
class ViewAnalysis:
    """Everything measured on one view; :meth:`to_dict` gives the analysis.json entry."""

    study_uid: str | None
    laterality: str | None
    view: str | None
    acquisition_index: int
    pixel_mm: float
    bpe: BpeResult
    rois: list[RoiEnhancement]
    segmentation: BreastSegmentation
    calcifications: CalcificationResult
    le: np.ndarray = field(repr=False)
    iodine_mg_cm2: np.ndarray = field(repr=False)
    iodine_rel_mg_cm2: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready entry (schema: :mod:`cemrecon.report.schema`)."""
        return {
            "study_uid": self.study_uid,
            "laterality": self.laterality,
            "view": self.view,
            "acquisition_index": int(self.acquisition_index),
            "bpe": self.bpe.to_dict(),
            "rois": [r.to_dict() for r in self.rois],
        }


# ----------------------------------------------------------------------------- user ROIs
def validate_rois(obj: Any, *, source: str = "rois") -> list[UserRoi]:
    """Validate a parsed user-ROI list.

    Parameters
    ----------
    obj : list of dict
        ``[{"laterality": "R", "view": "CC", "bbox": [row0, col0, row1, col1],
        "study_uid": "1.2.3" (optional)}, ...]``.
    source : str
        Name used in error messages (the file name).

    Raises
    ------
    ValueError
        Naming ``source``, the entry index and the field, the offending value and what is accepted.
    """
    if not isinstance(obj, list):
        raise ValueError(f"{source}: the top level must be a JSON list of ROI objects, "
                         f"got {type(obj).__name__}")
    out: list[UserRoi] = []
    for i, item in enumerate(obj):
        where = f"{source}: ROI #{i}"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: must be an object with laterality, view, bbox; "
                             f"got {type(item).__name__}")
        unknown = set(item) - {"laterality", "view", "bbox", "study_uid"}
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}; accepted: laterality, "
                             f"view, bbox, study_uid")
        for key in ("laterality", "view", "bbox"):
            if key not in item:
                raise ValueError(f"{where}: missing field {key!r}")
        lat = item["laterality"]
        if not isinstance(lat, str) or lat.upper() not in _LATERALITIES:
            raise ValueError(f"{where}: field 'laterality' must be one of {list(_LATERALITIES)}, "
                             f"got {lat!r}")
        view = item["view"]
        if not isinstance(view, str) or view.upper() not in _VIEWS:
            raise ValueError(f"{where}: field 'view' must be one of {list(_VIEWS)}, got {view!r}")
        bbox = item["bbox"]
        if (not isinstance(bbox, list) or len(bbox) != 4
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in bbox)):
            raise ValueError(f"{where}: field 'bbox' must be a list of 4 integers "
                             f"[row0, col0, row1, col1], got {bbox!r}")
        r0, c0, r1, c1 = bbox
        if min(bbox) < 0 or not (r0 < r1 and c0 < c1):
            raise ValueError(f"{where}: field 'bbox' must satisfy 0 <= row0 < row1 and "
                             f"0 <= col0 < col1, got {bbox!r}")
        uid = item.get("study_uid")
        if uid is not None and not isinstance(uid, str):
            raise ValueError(f"{where}: field 'study_uid' must be a string, got {uid!r}")
        out.append(UserRoi(laterality=lat.upper(), view=view.upper(),
                           bbox=(r0, c0, r1, c1), study_uid=uid))
    return out


def load_rois(path: str | os.PathLike) -> list[UserRoi]:
    """Read and validate a user-ROI JSON file (see :func:`validate_rois`).

    Raises
    ------
    ValueError
        Unreadable JSON or an invalid entry; the message names the file (and field).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{p}: cannot read the ROI file ({exc.strerror or exc})") from exc
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p}: not valid JSON (line {exc.lineno}, column {exc.colno}: "
                         f"{exc.msg})") from exc
    return validate_rois(obj, source=str(p))


# ----------------------------------------------------------------------------- inputs
def _enum_str(v: Any) -> str | None:
    if v is None:
        return None
    return str(getattr(v, "value", v)).upper()


@dataclass
class _Inputs:
    le: np.ndarray
    he: np.ndarray | None
    pixel_mm: float | None
    dark_offset_dn: float
    study_uid: str | None
    laterality: str | None
    view: str | None
    acquisition_index: int
    source: Any  # what to hand to iodine_map


def _unpack(data: Any) -> _Inputs:
    """Accept a Pair, an in-memory simulation (``.le``/``.he`` arrays) or an ``(le, he)`` tuple."""
    if hasattr(data, "load") and hasattr(data, "le") and hasattr(data.le, "meta"):
        le, he = data.load()
        meta = data.le.meta
        dark = getattr(meta, "dark_offset_dn", None)
        return _Inputs(
            le=np.asarray(le), he=np.asarray(he),
            pixel_mm=getattr(meta, "pixel_spacing_mm", None) and float(
                np.mean(np.atleast_1d(meta.pixel_spacing_mm))),
            dark_offset_dn=float(dark) if dark is not None else 0.0,
            study_uid=getattr(data, "study_uid", None),
            laterality=_enum_str(getattr(data, "laterality", None)),
            view=_enum_str(getattr(data, "view", None)),
            acquisition_index=int(getattr(data, "acquisition_index", 0) or 0),
            source=data,
        )
    if isinstance(data, tuple | list) and len(data) == 2:
        le, he = data
        return _Inputs(np.asarray(le), None if he is None else np.asarray(he), None, 0.0, None,
                       None, None, 0, (le, he))
    if hasattr(data, "le") and hasattr(data, "he"):
        truth = getattr(data, "truth", None)
        lat = getattr(data, "laterality", None) or getattr(truth, "laterality", None)
        view = getattr(data, "view", None) or getattr(truth, "view", None)
        dark = getattr(data, "dark_offset_dn", None)
        return _Inputs(np.asarray(data.le), np.asarray(data.he), getattr(data, "pixel_mm", None),
                       float(dark) if dark is not None else 0.0, getattr(data, "study_uid", None),
                       _enum_str(lat), _enum_str(view), 0, data)
    raise TypeError("analyze() expects a Pair, an object with .le and .he images, or an (le, he) "
                    f"tuple; got {type(data).__name__}")


def _iodine(inp: _Inputs, calibration: Any, options: dict) -> np.ndarray:
    """Iodine map (mg/cm^2) from :func:`cemrecon.iodine.iodine_map` (calibrated, scatter-corrected)."""
    if inp.he is None:
        raise ValueError("no HE image: pass iodine_mg_cm2= or give an (le, he) pair")
    from cemrecon.iodine import iodine_map

    opts = dict(options)
    if calibration is not None:
        opts.setdefault("calibration", calibration)
    src = inp.source
    if hasattr(src, "load") and hasattr(src, "le") and hasattr(src.le, "meta"):
        # hand over the pixels _unpack already decoded, with the pair's metadata (decode once)
        from cemrecon.io.inputs import LoadedImage

        le, he = (LoadedImage(px, img.meta, str(getattr(img, "path", "")) or None,
                              getattr(img, "sop_instance_uid", None))
                  for px, img in ((inp.le, src.le), (inp.he, src.he)))
        return np.asarray(iodine_map(le, he, **opts), dtype=np.float32)
    if not isinstance(src, tuple | list):
        # an in-memory acquisition (e.g. a phantom ViewSimulation) carries its own parameters
        for key, attr in (("le_beam", "le_beam"), ("he_beam", "he_beam"), ("pixel_mm", "pixel_mm"),
                          ("thickness_mm", "thickness_mm"), ("dark_offset", "dark_offset_dn"),
                          ("gain_dn_per_kev", "gain_dn_per_keV")):
            if getattr(src, attr, None) is not None:
                opts.setdefault(key, getattr(src, attr))
        if getattr(src, "mas_le", None) is not None and getattr(src, "mas_he", None) is not None:
            opts.setdefault("mas", (src.mas_le, src.mas_he))
    return np.asarray(iodine_map(inp.le, inp.he, **opts), dtype=np.float32)


# ----------------------------------------------------------------------------- analyze
def analyze(
    data: Any,
    *,
    rois: list[UserRoi] | str | os.PathLike | None = None,
    calibration: Any = None,
    iodine_mg_cm2: np.ndarray | None = None,
    iodine_options: dict | None = None,
    pixel_mm: float | None = None,
    dark_offset_dn: float | None = None,
    study_uid: str | None = None,
    laterality: str | None = None,
    view: str | None = None,
    acquisition_index: int | None = None,
    config: AnalyzeConfig | None = None,
) -> ViewAnalysis:
    """Analyse one CEM view: breast/FGT masks, BPE, calcification clusters, ROI enhancement calls.

    Parameters
    ----------
    data : Pair, object with ``.le``/``.he``, or (le, he)
        The LE/HE pair.  A :class:`cemrecon.io.read.Pair` supplies pixel size, dark offset,
        laterality, view and study UID from its headers.
    rois : list of UserRoi, or path to a ROI JSON file, optional
        User ROIs; those matching this view's laterality/view (and study UID if given) are analysed
        besides the detected clusters.
    calibration : optional
        Passed to :func:`cemrecon.iodine.iodine_map`.
    iodine_mg_cm2 : ndarray, optional
        A precomputed iodine map (LE shape); skips :func:`cemrecon.iodine.iodine_map`.
    iodine_options : dict, optional
        Keywords for :func:`cemrecon.iodine.iodine_map` (e.g. ``scatter_correction``, and for bare
        arrays ``le_beam``, ``he_beam``, ``mas``, ``thickness_mm``).
    pixel_mm, dark_offset_dn, study_uid, laterality, view, acquisition_index : optional
        Override (or supply, for bare arrays) what the input does not say.  ``pixel_mm`` is required
        for bare arrays.
    config : AnalyzeConfig, optional

    Returns
    -------
    ViewAnalysis
    """
    cfg = config or AnalyzeConfig()
    inp = _unpack(data)
    px = pixel_mm if pixel_mm is not None else inp.pixel_mm
    if px is None or not np.isfinite(px) or px <= 0:
        raise ValueError(f"pixel_mm must be a positive number (required for bare arrays), got {px!r}")
    dark = float(dark_offset_dn) if dark_offset_dn is not None else inp.dark_offset_dn
    lat = _enum_str(laterality) if laterality is not None else inp.laterality
    vw = _enum_str(view) if view is not None else inp.view
    uid = study_uid if study_uid is not None else inp.study_uid
    acq = int(acquisition_index) if acquisition_index is not None else inp.acquisition_index
    le = inp.le
    if le.ndim != 2:
        raise ValueError(f"LE must be a 2-D image, got shape {le.shape}")
    iod = None
    map_blur_mm = 0.0  # blur the iodine map carries (its signal smoothing), undone at the sites
    if iodine_mg_cm2 is not None:
        iod = np.asarray(iodine_mg_cm2, dtype=np.float32)
        if iod.shape != le.shape:
            raise ValueError(f"iodine map shape {iod.shape} differs from the LE shape {le.shape}")
    elif inp.he is None:
        raise ValueError("no HE image: pass iodine_mg_cm2= or give an (le, he) pair")
    if isinstance(rois, str | os.PathLike):
        rois = load_rois(rois)

    seg = segment_breast(le, pixel_mm=px, view=vw or "CC", dark_offset_dn=dark,
                         fgt_fraction_threshold=cfg.fgt_fraction_threshold, rim_mm=cfg.rim_mm)
    if cfg.detect_calcifications:
        if px > CALC_DESIGN_PIXEL_MM:
            logger.warning(
                "calcification detection is designed for full-resolution images (~0.1 mm pixels); "
                "at %.2f mm it reports many false clusters (phantoms at 0.2 mm: ~19 per view), "
                "whose ROIs are judged too: give user ROIs, or detect_calcifications=False", px)
        calc = detect_calcifications(le, seg.breast_mask & (seg.distance_mm >= cfg.calc_skin_margin_mm),
                                     pixel_mm=px,
                                     dark_offset_dn=dark, k_sigma=cfg.calc_k_sigma)
    else:
        calc = CalcificationResult(specks=(), clusters=(), mask=np.zeros(le.shape, dtype=bool))
    from scipy import ndimage as ndi

    calc_excl = ndi.binary_dilation(calc.mask, iterations=cfg.enhancement.calc_dilation_px) \
        if calc.mask.any() else calc.mask
    if iod is None:
        opts = dict(iodine_options or {})
        if cfg.rolloff_thickness and "rolloff_reference" not in opts:
            # the roll-off's thickness, fitted so that fat reads no iodine (the fat of
            # relative_iodine's baseline), out to 5 mm past the plateau's start
            from cemrecon.quantify.breast import rolloff_reference

            opts["rolloff_reference"] = rolloff_reference(
                le, pixel_mm=px, segmentation=seg, fat_fraction_max=cfg.fat_fraction_max,
                margin_mm=cfg.rolloff_margin_mm, exclude=calc_excl)
        iod = _iodine(inp, calibration, opts)
        from cemrecon.iodine import DEFAULT_SMOOTHING_FWHM_MM, signal_blur_mm

        map_blur_mm = signal_blur_mm(opts.get("smoothing_fwhm_mm", DEFAULT_SMOOTHING_FWHM_MM), px)
        if iod.shape != le.shape:
            raise ValueError(f"iodine map shape {iod.shape} differs from the LE shape {le.shape}")
    # the per-distance fat baseline, like the fat references before it, uses exact distances only
    rel = relative_iodine(iod, seg.breast_mask, seg.glandular_index, seg.distance_mm,
                          fat_fraction_max=cfg.fat_fraction_max,
                          exclude=calc_excl | ~seg.distance_reliable, pixel_mm=px)
    # the skin rim carries the thickness roll-off artefact: not a usable background
    usable = seg.breast_mask & (seg.distance_mm >= cfg.rim_mm)
    # BPE is read where the breast has its full compressed thickness: in the roll-off the iodine
    # map keeps a composition-dependent residual (the weight fits the full thickness; physics.md
    # section 1, Table 2) that reads glandular tissue as iodine.  The enhancing *fraction* of the
    # interior FGT estimates that of all FGT.
    bpe_fgt = seg.fgt_mask & (seg.distance_mm >= seg.rolloff_mm)
    if bpe_fgt.sum() < 0.2 * seg.fgt_mask.sum():
        bpe_fgt = seg.fgt_mask
    bpe = measure_bpe(rel, bpe_fgt, seg.breast_mask, pixel_mm=px, smooth_mm=cfg.bpe_smooth_mm,
                      enhancing_threshold_mg_cm2=cfg.bpe_enhancing_threshold_mg_cm2,
                      category_edges=cfg.bpe_category_edges, exclude=calc_excl,
                      relative_threshold=cfg.bpe_relative_threshold, local_level_mm=cfg.bpe_local_level_mm)
    # a group wider than 2 cm none of whose <= 2 cm parts is a cluster (detect_calcifications
    # cuts wider groups) is a regional distribution, not a grouped cluster (BI-RADS): it is
    # kept in the detection result (flagged) but is not a site, nor another site's exclusion
    regional = [cl for cl in calc.clusters if cl.regional]
    if regional:
        logger.info("%d calcification group(s) wider than 2 cm (regional distribution) not "
                    "judged as cluster ROIs: %s", len(regional), [list(cl.bbox) for cl in regional])
    sites: list[tuple[tuple[int, int, int, int], str, int]] = [
        (tuple(cl.bbox), "detected", cl.n_calcifications) for cl in calc.clusters
        if not cl.regional]
    for roi in rois or ():
        if lat is not None and vw is not None and not roi.matches(study_uid=uid, laterality=lat,
                                                                   view=vw):
            continue
        r0, c0, r1, c1 = roi.bbox
        if r0 >= le.shape[0] or c0 >= le.shape[1]:
            logger.warning("user ROI %s lies outside the %s image; skipped", list(roi.bbox), le.shape)
            continue
        n_in = sum(1 for s in calc.specks if r0 <= s.row < r1 and c0 <= s.col < c1)
        sites.append((roi.bbox, "user", n_in))
    smoothed: list[np.ndarray] = []  # the map smoothed as the calls read it, made once if needed

    def judge(view_bpe: BpeResult) -> list[RoiEnhancement]:
        """Enhancement calls of every site against the view's BPE (category and brightness)."""
        masking_level = None
        if view_bpe.category in cfg.enhancement.masking_bpe and view_bpe.enhancing_mask.any():
            if not smoothed:
                from cemrecon.quantify.bpe import _masked_smooth

                smoothed.append(_masked_smooth(
                    rel, usable, max(0.5, cfg.enhancement.stat_smooth_mm / px)))
            masking_level = float(np.nanpercentile(smoothed[0][view_bpe.enhancing_mask], 90))
        calls = []
        for k, (box, source, n_in) in enumerate(sites):
            others = [b for j, (b, _, _) in enumerate(sites) if j != k]
            calls.append(measure_enhancement(
                rel, box, breast_mask=usable, calc_mask=calc.mask, pixel_mm=px, source=source,
                n_calcifications=n_in, exclude_boxes=others, bpe_category=view_bpe.category,
                masking_level_mg_cm2=masking_level, fgt_mask=seg.fgt_mask,
                glandular_index=seg.glandular_index, map_blur_mm=map_blur_mm,
                config=cfg.enhancement))
        return calls

    first_category = bpe.category
    results = judge(bpe)
    # BPE is background: enhancing findings are not part of it (second pass without them), with
    # their borders (a 2 mm margin: the half-maximum region is smaller than the finding).  Non-mass
    # regions that would take more than a quarter of the FGT are kept (a region grown over a BPE
    # network is BPE, not a finding); a mass is one compact blob, never BPE, and is always left
    # out: in a fatty breast a 15-20 mm mass, whose gland-like tissue is FGT on LE, can be a
    # third of the FGT and read as moderate BPE on its own.
    margin = max(1, round(2.0 / px))

    def grown(regions: list[np.ndarray]) -> np.ndarray | None:
        return ndi.binary_dilation(np.logical_or.reduce(regions), iterations=margin) \
            if regions else None

    masses = grown([r.enhancing_mask for r in results
                    if r.enhancing_mask is not None and r.type == "mass"])
    others = grown([r.enhancing_mask for r in results
                    if r.enhancing_mask is not None and r.type != "mass"])
    left_out = [] if masses is None else [masses]
    if others is not None and (others & bpe_fgt).sum() <= 0.25 * bpe_fgt.sum():
        left_out.append(others)
    if left_out:
        lesion_px = np.logical_or.reduce(left_out)
        bpe = measure_bpe(rel, bpe_fgt & ~lesion_px, seg.breast_mask, pixel_mm=px,
                          smooth_mm=cfg.bpe_smooth_mm,
                          enhancing_threshold_mg_cm2=cfg.bpe_enhancing_threshold_mg_cm2,
                          category_edges=cfg.bpe_category_edges, exclude=calc_excl,
                          relative_threshold=cfg.bpe_relative_threshold,
                          local_level_mm=cfg.bpe_local_level_mm)
        if bpe.category != first_category:
            # the findings' own enhancement had raised the first category: judge the sites again
            # against the BPE that is reported (a call's masking reason refers to that category)
            logger.info("BPE %s without the enhancing findings (%s with them): sites judged "
                        "again", bpe.category, first_category)
            results = judge(bpe)
    return ViewAnalysis(
        study_uid=uid, laterality=lat, view=vw, acquisition_index=acq, pixel_mm=float(px),
        bpe=bpe, rois=results, segmentation=seg, calcifications=calc, le=le,
        iodine_mg_cm2=iod, iodine_rel_mg_cm2=rel.astype(np.float32),
    )
