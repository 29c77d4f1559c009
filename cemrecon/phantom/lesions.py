"""Iodine and calcification content of the phantom: BPE, masses, non-mass enhancement (NME),
calcification clusters and iodine inserts.

Iodine is an areal density in mg/cm^2 (what recombination measures).  Sources: physics.md
sections 5 (iodine concentrations), 7 (calcifications) and 8 (BPE extent classes).

* **BPE**: iodine in fibroglandular tissue (FGT).  The level is set by the *extent* (share of
  the FGT mask that enhances, CEM proposal, Cancers 2025: minimal < 10 %, mild 10-25 %,
  moderate 25-50 %, marked > 50 %) and the concentration (0.05-0.5 mg I/mL, physics.md 5,
  rising with the level).  Iodine = concentration x glandular path.
* **Mass**: compact convex ellipsoid, 5-20 mm, peak iodine excess 0.5-3 mg/cm^2 (chord
  profile), displacing adipose tissue with gland-like tissue.
* **NME**: segmental (a wedge pointing to the nipple), linear (a duct-like line, possibly
  branching) or clustered (clumped blobs), patchy, 0.3-1.5 mg/cm^2 peak.
* **Calcifications**: clusters of 5-30 specks of 0.1-0.5 mm (hydroxyapatite, some calcium
  oxalate), rendered by area-averaging the ellipsoid chord on a supersampled grid (partial
  volume), placed (a) in enhancing lesions (label ``enhancement``), (b) in non-enhancing
  tissue (``no_enhancement``), (c) on a weak enhancement (0.1-0.3 mg/cm^2 peak, below the
  0.3 mg/cm^2 clinical threshold), placed inside enhancing BPE (moderate/marked views) or FGT
  (otherwise) when such a place exists.  Its label comes from the site, not from the view:

  **Masking truth rule** (:func:`site_bpe_masking`, :func:`expected_call`).  A reader (or any
  detector) calls enhancement by comparing the site with the tissue around it, so a site is
  *masked by BPE* when the BPE around it varies by at least as much as what is to be told apart:
  threshold-level enhancement (``MASKING_THRESHOLD_MG_CM2`` = 0.3 mg/cm^2: its absence cannot be
  established) and the site's own enhancement (its presence cannot be told from BPE).  The
  phantom knows the noise-free BPE and lesion iodine exactly, so the label uses them directly:
  with ``b`` the BPE iodine (mg/cm^2) over the breast pixels within ``MASKING_RADIUS_MM`` (10 mm:
  the site plus the ~5 mm surrounding a reader compares it with) of the calcification box's
  centre, ``spread = P90(b) - P10(b)``, and ``E`` the site's own enhancement (the 90th
  percentile, over the calcification box, of the iodine of all findings, BPE excluded), the
  site is masked when ``spread >= max(0.3, E)``.  Masked -> ``indeterminate`` (any finding: a
  mass, an NME, or a cluster with or without a weak enhancement); otherwise a mass or NME is
  ``enhancement``, and a calcification cluster is ``enhancement`` when ``E >= 0.3`` (it lies on
  another finding) or ``no_enhancement`` (no or sub-threshold iodine in a background that would
  have revealed threshold-level enhancement).  For ``E < 0.3`` this is the rule of session 2
  (BPE spread >= threshold); ``E`` in the comparison extends it to enhancing findings no
  brighter than the BPE texture around them.  The rule uses no noise and none of the analysis
  code (quantum noise after the analysis' smoothing is ~0.02 mg/cm^2, an order of magnitude
  below the threshold).  ``Lesion.background_bpe_spread_mg_cm2`` and
  ``Lesion.site_iodine_excess_mg_cm2`` store ``spread`` and ``E`` for every finding (centred
  on the finding itself, ``E`` = its peak, when it has no calcifications).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = [
    "BPE_LEVELS",
    "BPE_EXTENT_BANDS",
    "bpe_category",
    "Speck",
    "Lesion",
    "draw_lesion_specs",
    "resolve_spec",
    "render_bpe",
    "render_lesion",
    "render_insert",
    "CALC_MORPHOLOGIES",
    "MASKING_THRESHOLD_MG_CM2",
    "expected_call",
    "MASKING_RADIUS_MM",
    "site_bpe_masking",
]

BPE_LEVELS = ("minimal", "mild", "moderate", "marked")
#: Extent bands (fraction of FGT enhancing), CEM proposal (physics.md section 8).
BPE_EXTENT_BANDS = {"none": (0.0, 0.0), "minimal": (0.0, 0.10), "mild": (0.10, 0.25),
                    "moderate": (0.25, 0.50), "marked": (0.50, 1.0)}
#: Extents are drawn inside each band, away from its edges, so the category is unambiguous.
_BPE_EXTENT_DRAW = {"minimal": (0.03, 0.08), "mild": (0.13, 0.22), "moderate": (0.29, 0.46),
                    "marked": (0.56, 0.85)}
#: Mean BPE concentration in mg I/mL per level (physics.md 5: 0.05-0.5 mg I/mL).
_BPE_CONC_MG_ML = {"minimal": (0.05, 0.10), "mild": (0.08, 0.20), "moderate": (0.15, 0.35),
                   "marked": (0.25, 0.50)}
#: Population of BPE levels (Radiol Med 2024: 47.5 / 32 / 12.5 / 8 %).
_BPE_LEVEL_P = (0.475, 0.32, 0.125, 0.08)
CALC_MORPHOLOGIES = ("amorphous", "fine_pleomorphic", "coarse_heterogeneous", "fine_linear")
NME_SUBTYPES = ("segmental", "linear", "clustered")
#: Weak enhancement under an "indeterminate" cluster (mg/cm^2 peak).
WEAK_IODINE_RANGE = (0.10, 0.30)
#: Threshold-level enhancement that BPE must be able to hide for a site to be masked (mg/cm^2;
#: the clinical enhancement threshold, SenoBright residual-tissue limit, physics.md section 8).
MASKING_THRESHOLD_MG_CM2 = 0.3
#: Radius of the site's neighbourhood for the masking truth rule (mm): site + reader's surround.
MASKING_RADIUS_MM = 10.0
#: Sub-sample pitch for calcification partial volume (mm); a 0.1 mm speck spans >= 8 samples.
CALC_SUBSAMPLE_MM = 0.0125


def bpe_category(level: str) -> int:
    """BPE category number: 0 none, 1 minimal, 2 mild, 3 moderate, 4 marked."""
    if level == "none":
        return 0
    try:
        return BPE_LEVELS.index(level) + 1
    except ValueError:
        raise ValueError(f"bpe_level must be one of none, {', '.join(BPE_LEVELS)}; got {level!r}") from None


def category_of_fraction(fraction: float) -> str:
    """BPE level whose extent band contains ``fraction``."""
    if fraction < 0.10:
        return "minimal"
    if fraction < 0.25:
        return "mild"
    if fraction < 0.50:
        return "moderate"
    return "marked"


def draw_bpe(rng: np.random.Generator, level: str | None) -> tuple[str, float, float]:
    """Draw (level, extent fraction, concentration mg/mL) for a patient."""
    lv = str(rng.choice(BPE_LEVELS, p=_BPE_LEVEL_P))
    if level is not None:
        bpe_category(level)
        lv = level
    u1, u2 = rng.uniform(size=2)
    if lv == "none":
        return lv, 0.0, 0.0
    lo, hi = _BPE_EXTENT_DRAW[lv]
    clo, chi = _BPE_CONC_MG_ML[lv]
    return lv, lo + u1 * (hi - lo), clo + u2 * (chi - clo)


# ----------------------------------------------------------------------------- truth
@dataclass
class Speck:
    """One calcification speck as rendered (pixel coordinates of the view)."""

    row: float
    col: float
    diameter_mm: float  # largest in-plane extent
    width_mm: float  # smallest in-plane extent
    material: str
    peak_path_mm: float

    def to_json(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass
class Lesion:
    """Ground truth of one finding in one view."""

    id: str
    type: str  # "mass" | "nme" | "calcifications"
    expected_enhancement: str  # "enhancement" | "no_enhancement" | "indeterminate"
    bbox: list[int]  # [row0, col0, row1, col1], row1/col1 exclusive
    center_rc: tuple[float, float]
    iodine_excess_mg_cm2: float  # peak excess iodine of the lesion itself
    iodine_mean_mg_cm2: float  # mean excess over the lesion mask
    size_mm: float
    nme_subtype: str | None = None
    calcification_morphology: str | None = None
    calcification_material: str | None = None
    calcification_bbox: list[int] | None = None
    specks: list[Speck] = field(default_factory=list)
    background_bpe_mg_cm2: float = 0.0  # mean BPE iodine around the lesion
    site_iodine_excess_mg_cm2: float = 0.0  # P90 of lesion iodine (BPE excluded) in the calcification box
    background_bpe_spread_mg_cm2: float = 0.0  # P90 - P10 of BPE iodine within 10 mm of the site

    def to_json(self) -> dict:
        d = asdict(self)
        d["specks"] = [s.to_json() for s in self.specks]
        d["n_specks"] = len(self.specks)
        d["center_rc"] = [round(float(v), 2) for v in self.center_rc]
        for k in ("iodine_excess_mg_cm2", "iodine_mean_mg_cm2", "size_mm", "background_bpe_mg_cm2",
                  "background_bpe_spread_mg_cm2", "site_iodine_excess_mg_cm2"):
            d[k] = round(float(d[k]), 5)
        return d


# ----------------------------------------------------------------------------- specs
def draw_lesion_specs(rng: np.random.Generator) -> list[dict]:
    """Random findings for one breast (the seed-study mix: calcifications with or without
    enhancement, masses, NME)."""
    specs: list[dict] = []
    r = rng.uniform(size=4)
    if r[0] < 0.30:
        specs.append({"type": "mass", "calcifications": bool(r[1] < 0.6)})
    elif r[0] < 0.60:
        specs.append({"type": "nme", "calcifications": bool(r[1] < 0.7)})
    if r[2] < 0.55:
        specs.append({"type": "calcifications", "enhancement": "none"})
    if r[3] < 0.35:
        specs.append({"type": "calcifications", "enhancement": "weak"})
    return specs


def resolve_spec(spec: dict, rng: np.random.Generator) -> dict:
    """Fill every missing parameter of a finding (shared by the CC and MLO views of a breast).

    Keys (all optional except ``type``): ``position`` (depth fraction 0-1 from the chest wall,
    u, v in -0.5..0.5), ``diameter_mm``, ``iodine_mg_cm2``, ``subtype``, ``calcifications``
    (bool or morphology name), ``enhancement`` ("none" | "weak", calcification-only),
    ``n_specks``, ``morphology``, ``material``.
    """
    if not isinstance(spec, dict) or spec.get("type") not in ("mass", "nme", "calcifications"):
        raise ValueError(f"lesion spec must be a dict with type mass/nme/calcifications, got {spec!r}")
    s = dict(spec)
    t = s["type"]
    # draw everything in a fixed order, then apply the user's values
    pos = (float(rng.uniform(0.3, 0.75)), float(rng.uniform(-0.4, 0.4)), float(rng.uniform(-0.4, 0.4)))
    diameter = float(rng.uniform(5.0, 20.0)) if t == "mass" else float(rng.uniform(20.0, 45.0))
    iod = float(rng.uniform(0.5, 3.0)) if t == "mass" else float(rng.uniform(0.3, 1.5))
    subtype = str(rng.choice(NME_SUBTYPES))
    axis_ratio = float(rng.uniform(0.65, 1.0))
    angle = float(rng.uniform(0, math.pi))
    morph = str(rng.choice(CALC_MORPHOLOGIES, p=(0.33, 0.37, 0.13, 0.17)))
    n_specks = int(rng.integers(5, 31))
    weak = float(rng.uniform(*WEAK_IODINE_RANGE))
    oxalate = bool(rng.uniform() < 0.25)
    lesion_seed = int(rng.integers(0, 2**31 - 1))
    s.setdefault("position", pos)
    s.setdefault("diameter_mm", diameter)
    s.setdefault("iodine_mg_cm2", iod if t != "calcifications" else 0.0)
    s.setdefault("subtype", subtype)
    s.setdefault("axis_ratio", axis_ratio)
    s.setdefault("angle_rad", angle)
    s.setdefault("weak_iodine_mg_cm2", weak)
    s.setdefault("seed", lesion_seed)
    calc = s.get("calcifications", t == "calcifications")
    if calc:
        s.setdefault("morphology", calc if isinstance(calc, str) else morph)
        s.setdefault("n_specks", n_specks)
        default_mat = "calcium_oxalate" if (t == "calcifications" and s.get("enhancement", "none") == "none"
                                            and oxalate) else "hydroxyapatite"
        s.setdefault("material", default_mat)
        s["calcifications"] = True
        s["speck_offsets"] = _speck_offsets(np.random.default_rng(s["seed"]), s["morphology"], s["n_specks"])
    else:
        s["calcifications"] = False
    if t == "calcifications":
        s.setdefault("enhancement", "none")
        if s["enhancement"] not in ("none", "weak"):
            raise ValueError(f"calcification enhancement must be 'none' or 'weak', got {s['enhancement']!r}")
    if t == "nme" and s["subtype"] not in NME_SUBTYPES:
        raise ValueError(f"NME subtype must be one of {NME_SUBTYPES}, got {s['subtype']!r}")
    if t == "mass" and not 2.0 <= float(s["diameter_mm"]) <= 40.0:
        raise ValueError(f"mass diameter_mm must be in [2, 40], got {s['diameter_mm']!r}")
    return s


def _speck_offsets(rng: np.random.Generator, morphology: str, n: int) -> list[tuple]:
    """3-D speck offsets (mm, in breast axes depth/u/v) and sizes; shared by both views.

    Returns tuples (dx, du, dv, length_mm, width_mm, angle) where ``angle`` is the in-plane
    orientation (rad) of a round-ish speck, or a 3-tuple unit direction (depth, u, v) of the
    duct for fine-linear specks (projected into each view, so both views agree)."""
    out = []
    radius = rng.uniform(3.0, 8.0)  # grouped: within ~1-2 cm
    if morphology == "fine_linear":
        # specks along 1-2 duct-like lines through the cluster
        n_lines = 1 + int(rng.uniform() < 0.5)
        dirs = [rng.normal(size=3) for _ in range(n_lines)]
        dirs = [d / np.linalg.norm(d) for d in dirs]
    for k in range(n):
        if morphology == "fine_linear":
            d = dirs[k % len(dirs)]
            p = d * rng.uniform(-radius, radius) + rng.normal(0, 0.3, size=3)
            length = rng.uniform(0.4, 1.2)
            width = rng.uniform(0.1, 0.25)
            ang = (float(d[0]), float(d[1]), float(d[2]))
        else:
            p = rng.normal(0, radius / 2.0, size=3)
            if morphology == "amorphous":
                length = rng.uniform(0.1, 0.22)
            elif morphology == "coarse_heterogeneous":
                length = rng.uniform(0.3, 0.5)
            else:  # fine pleomorphic
                length = rng.uniform(0.1, 0.45)
            width = length * rng.uniform(0.6, 1.0)
            ang = rng.uniform(0, math.pi)
        out.append((float(p[0]), float(p[1]), float(p[2]), float(length), float(max(width, 0.1)),
                    ang if isinstance(ang, tuple) else float(ang)))
    return out


# ----------------------------------------------------------------------------- BPE
def render_bpe(anat, level: str, extent: float, conc_mg_ml: float,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """BPE iodine map (mg/cm^2), enhancing-FGT mask, and the realised extent fraction."""
    from cemrecon.phantom.anatomy import noise_on_grid

    shape = anat.image_shape
    iodine = np.zeros(shape)
    enh = np.zeros(shape, dtype=bool)
    # always draw the fields, so lesion placement does not depend on the BPE level
    r0, r1, c0, c1 = anat.window
    win = np.s_[r0:r1, c0:c1]
    field_a = noise_on_grid(shape, anat.pixel_mm, rng=rng, smooth_mm=1.0, grid_mm=0.5, window=anat.window)
    field_b = noise_on_grid(shape, anat.pixel_mm, rng=rng, smooth_mm=2.0, grid_mm=0.5, window=anat.window)
    fgt = anat.fgt_mask[win]
    n_fgt = int(fgt.sum())
    if level == "none" or extent <= 0 or n_fgt == 0:
        return iodine, enh, 0.0
    vals = field_a[fgt]
    k = int(round(extent * n_fgt))
    if k <= 0:
        return iodine, enh, 0.0
    thr = np.partition(vals, n_fgt - k)[n_fgt - k]
    enh_w = fgt & (field_a >= thr)
    # concentration varies smoothly (x0.5-1.5) around the patient's mean
    modul = 1.0 + 0.5 * np.tanh(field_b)
    gland_cm = anat.glandular_fraction[win] * anat.tissue_mm[win] / 10.0
    iodine[win] = np.where(enh_w, conc_mg_ml * modul * gland_cm, 0.0)
    enh[win] = enh_w
    return iodine, enh, float(enh_w.sum()) / n_fgt


# ----------------------------------------------------------------------------- lesions
def lesion_center_mm(anat, spec: dict) -> tuple[float, float]:
    """Canonical (x from chest wall, y) in mm of a finding in this view."""
    depth, u, v = spec["position"]
    a = anat.geometry["depth_mm"] if anat.view == "CC" else anat.geometry["depth_mm"] / 1.12
    a = min(a, anat.shape.depth_mm)
    lateral = u if anat.view == "CC" else (u + v) / math.sqrt(2.0)
    b = anat.shape.half_width_mm
    x = depth * a
    yc = anat.geometry["center_y_mm"]  # the nipple axis
    y = yc + lateral * b * math.sqrt(max(1.0 - depth**2, 0.05))
    px, py = anat.geometry.get("pectoral_x_mm", 0.0), anat.geometry.get("pectoral_y_mm", 0.0)
    if px > 0 and py > 0 and x / px + y / py < 1.0:  # keep findings out of the pectoral muscle
        x = px * (1.0 - y / py) + 10.0
    return x, y


def _local_grid(anat, center_rc, half_mm: float):
    r0 = max(0, int(math.floor(center_rc[0] - half_mm / anat.pixel_mm)) - 1)
    r1 = min(anat.image_shape[0], int(math.ceil(center_rc[0] + half_mm / anat.pixel_mm)) + 2)
    c0 = max(0, int(math.floor(center_rc[1] - half_mm / anat.pixel_mm)) - 1)
    c1 = min(anat.image_shape[1], int(math.ceil(center_rc[1] + half_mm / anat.pixel_mm)) + 2)
    rr = np.arange(r0, r1)[:, None]
    cc = np.arange(c0, c1)[None, :]
    dy = (rr - center_rc[0]) * anat.pixel_mm
    dx = (cc - center_rc[1]) * anat.pixel_mm
    return (slice(r0, r1), slice(c0, c1)), dy, dx


def _bbox(mask: np.ndarray, offset=(0, 0)) -> list[int]:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return [int(offset[0]), int(offset[1]), int(offset[0]), int(offset[1])]
    return [int(rows[0] + offset[0]), int(cols[0] + offset[1]), int(rows[-1] + 1 + offset[0]),
            int(cols[-1] + 1 + offset[1])]


def render_lesion(anat, spec: dict, maps: dict, *, lesion_id: str, bpe_level: str,
                  bpe_iodine: np.ndarray, bpe_mask: np.ndarray) -> Lesion:
    """Render one finding into ``maps`` (modified in place) and return its truth.

    ``maps`` holds ``iodine`` (mg/cm^2), ``adipose``, ``glandular`` (mm), ``hydroxyapatite``,
    ``calcium_oxalate`` (mm) and ``lesion_label`` (int).
    """
    rng = np.random.default_rng([spec["seed"], 0 if anat.view == "CC" else 1])
    x, y = lesion_center_mm(anat, spec)
    center = anat.to_display(x, y)
    t = spec["type"]
    if t == "calcifications":
        center = _place_cluster(anat, spec, center, maps, bpe_iodine, bpe_mask, bpe_level, rng)
    p = anat.pixel_mm
    iodine_excess = np.zeros(0)
    sl = None
    if t == "mass":
        dmm = float(spec["diameter_mm"])
        ra, rb = dmm / 2.0, dmm / 2.0 * float(spec["axis_ratio"])
        sl, dy, dx = _local_grid(anat, center, ra + p)
        ang = float(spec["angle_rad"])
        xr = dx * math.cos(ang) + dy * math.sin(ang)
        yr = -dx * math.sin(ang) + dy * math.cos(ang)
        rho2 = (xr / ra) ** 2 + (yr / rb) ** 2
        profile = np.sqrt(np.clip(1.0 - rho2, 0.0, 1.0))
        iodine_excess = float(spec["iodine_mg_cm2"]) * profile
        # the mass displaces adipose tissue with gland-like tissue along its chord
        chord_mm = np.minimum(profile * math.sqrt(ra * rb) * 2.0, maps["adipose"][sl])
        maps["adipose"][sl] -= chord_mm
        maps["glandular"][sl] += chord_mm
        size = dmm
    elif t == "nme":
        iodine_excess, size = _nme_pattern(anat, spec, center, rng)
        sl, iodine_excess = iodine_excess
    else:
        size = 0.0
    if t == "calcifications" and spec["enhancement"] == "weak":
        sigma = 3.0
        sl, dy, dx = _local_grid(anat, center, 3.5 * sigma)
        iodine_excess = float(spec["weak_iodine_mg_cm2"]) * np.exp(-0.5 * (dx**2 + dy**2) / sigma**2)
        iodine_excess = np.where(iodine_excess > 0.02 * float(spec["weak_iodine_mg_cm2"]), iodine_excess, 0.0)
        size = 2.355 * sigma
    if sl is not None and np.size(iodine_excess):
        # keep the lesion inside the breast
        iodine_excess = np.where(anat.breast_mask[sl] & (anat.tissue_mm[sl] > 0), iodine_excess, 0.0)
        maps["iodine"][sl] += iodine_excess
        lmask = iodine_excess > 0
        maps["lesion_label"][sl][lmask] = int(lesion_id.rsplit("-", 1)[-1])
        bbox = _bbox(lmask, (sl[0].start, sl[1].start))
        peak = float(iodine_excess.max()) if lmask.any() else 0.0
        mean = float(iodine_excess[lmask].mean()) if lmask.any() else 0.0
        ring = bpe_iodine[sl]
        bg = float(ring.mean())
    else:
        bbox, peak, mean, bg = [0, 0, 0, 0], 0.0, 0.0, float(_local_mean(bpe_iodine, center, 10.0 / p))
    # expected_enhancement, site_iodine_excess and background_bpe_spread are set below, once the
    # site (the calcifications, or the finding itself when it has none) is known
    les = Lesion(id=lesion_id, type=t, expected_enhancement="", bbox=bbox, center_rc=center,
                 iodine_excess_mg_cm2=peak, iodine_mean_mg_cm2=mean, size_mm=size,
                 nme_subtype=spec["subtype"] if t == "nme" else None, background_bpe_mg_cm2=bg)
    site_centre, site_excess = center, peak
    if spec.get("calcifications"):
        _render_specks(anat, spec, center, maps, les)
        cb = les.calcification_bbox
        if cb[2] > cb[0] and cb[3] > cb[1]:
            # the call is made at the calcifications: what enhances there is the lesion iodine of
            # all findings (BPE excluded; a cluster may lie on a mass or NME drawn earlier)
            site_io = (maps["iodine"] - bpe_iodine)[cb[0]:cb[2], cb[1]:cb[3]]
            site_excess = max(float(np.percentile(site_io, 90)), 0.0)
            site_centre = ((cb[0] + cb[2] - 1) / 2.0, (cb[1] + cb[3] - 1) / 2.0)
        if t == "calcifications" and spec["enhancement"] == "none":
            les.bbox = list(les.calcification_bbox)
        elif t == "calcifications":
            les.bbox = [min(les.bbox[0], les.calcification_bbox[0]), min(les.bbox[1], les.calcification_bbox[1]),
                        max(les.bbox[2], les.calcification_bbox[2]), max(les.bbox[3], les.calcification_bbox[3])]
    spread = site_bpe_masking(bpe_iodine, site_centre, pixel_mm=p,
                              breast_mask=anat.breast_mask & (anat.tissue_mm > 0))[1]
    les.site_iodine_excess_mg_cm2 = site_excess
    les.background_bpe_spread_mg_cm2 = spread
    les.expected_enhancement = expected_call(t, site_excess, spread)
    return les


def expected_call(finding_type: str, site_excess_mg_cm2: float, spread_mg_cm2: float, *,
                  threshold_mg_cm2: float = MASKING_THRESHOLD_MG_CM2) -> str:
    """Expected enhancement call at a site (the masking truth rule, module docstring).

    Parameters
    ----------
    finding_type : {"mass", "nme", "calcifications"}
    site_excess_mg_cm2 : float
        ``E``: the finding's own iodine at the site (BPE excluded).
    spread_mg_cm2 : float
        P90 - P10 of the noise-free BPE within ``MASKING_RADIUS_MM`` of the site.
    threshold_mg_cm2 : float
        Threshold-level enhancement (0.3 mg/cm^2).

    Returns
    -------
    str
        ``"indeterminate"`` when ``spread >= max(threshold, E)``; else ``"enhancement"`` for a
        mass or NME, and for a cluster ``"enhancement"`` if ``E >= threshold`` else
        ``"no_enhancement"``.
    """
    if spread_mg_cm2 >= max(threshold_mg_cm2, site_excess_mg_cm2):
        return "indeterminate"
    if finding_type in ("mass", "nme") or site_excess_mg_cm2 >= threshold_mg_cm2:
        return "enhancement"
    return "no_enhancement"


def site_bpe_masking(bpe_iodine_mg_cm2: np.ndarray, center_rc, *, pixel_mm: float,
                     breast_mask: np.ndarray | None = None,
                     radius_mm: float = MASKING_RADIUS_MM,
                     threshold_mg_cm2: float = MASKING_THRESHOLD_MG_CM2) -> tuple[bool, float]:
    """Whether the noise-free BPE around a site hides a threshold-level enhancement.

    Parameters
    ----------
    bpe_iodine_mg_cm2 : ndarray, shape (H, W)
        Noise-free BPE iodine (mg/cm^2), lesions not included.
    center_rc : (float, float)
        Site centre (pixel row, column).
    pixel_mm : float
        Pixel size (mm).
    breast_mask : ndarray of bool, optional
        Pixels that count (breast tissue); all pixels when None.
    radius_mm, threshold_mg_cm2 : float
        Neighbourhood radius (10 mm) and threshold-level enhancement (0.3 mg/cm^2).

    Returns
    -------
    masked : bool
        ``P90(b) - P10(b) >= threshold`` over the neighbourhood (module docstring).
    spread_mg_cm2 : float
        ``P90(b) - P10(b)``.
    """
    b = np.asarray(bpe_iodine_mg_cm2, dtype=np.float64)
    half = math.ceil(radius_mm / pixel_mm)
    r, c = int(round(center_rc[0])), int(round(center_rc[1]))  # noqa: RUF046 (numpy floats)
    r0, r1 = max(0, r - half), min(b.shape[0], r + half + 1)
    c0, c1 = max(0, c - half), min(b.shape[1], c + half + 1)
    rr = (np.arange(r0, r1)[:, None] - center_rc[0]) * pixel_mm
    cc = (np.arange(c0, c1)[None, :] - center_rc[1]) * pixel_mm
    disk = rr**2 + cc**2 <= radius_mm**2
    if breast_mask is not None:
        disk &= np.asarray(breast_mask, dtype=bool)[r0:r1, c0:c1]
    vals = b[r0:r1, c0:c1][disk]
    if vals.size == 0:
        return False, 0.0
    p10, p90 = np.percentile(vals, [10.0, 90.0])
    spread = float(p90 - p10)
    return bool(spread >= threshold_mg_cm2), spread


def _place_cluster(anat, spec, center, maps, bpe_iodine, bpe_mask, bpe_level, rng):
    """Move a calcification-only cluster to tissue that matches its label.

    ``enhancement="none"``: no iodine at all within the cluster extent + 3 mm;
    ``"weak"``: inside enhancing BPE (moderate/marked) or FGT (otherwise).  Falls back to the
    drawn position when no such place is found; for ``"none"`` the BPE there is then removed
    from the rendered iodine *and* from the BPE truth (``bpe_iodine``, ``bpe_mask``, modified in
    place), so the truth BPE map stays the BPE that is rendered (the site's label is computed
    from it).  Iodine of findings drawn earlier is kept: such a site is labelled by what
    enhances there.  The
    placement only shapes the experiment: the weak site's label is decided afterwards from the
    BPE actually around it (:func:`site_bpe_masking`), so a fallback site outside BPE is not
    labelled masked.
    """
    p = anat.pixel_mm
    rows, cols = anat.image_shape
    ext = max([math.sqrt(o[1] ** 2 + o[2] ** 2 + o[0] ** 2) for o in spec["speck_offsets"]] + [2.0])
    half = int(math.ceil((ext + 3.0) / p))
    want = spec["enhancement"]

    def window(c):
        r, q = int(round(c[0])), int(round(c[1]))
        return np.s_[max(r - half, 0):r + half + 1, max(q - half, 0):q + half + 1]

    def ok(c):
        r, q = int(round(c[0])), int(round(c[1]))
        if not (0 <= r < rows and 0 <= q < cols) or anat.edge_distance_mm[r, q] < ext + 8.0:
            return False
        if anat.pectoral_mask[r, q]:
            return False
        w = window(c)
        if want == "none":
            return float(maps["iodine"][w].max()) == 0.0
        if bpe_level in ("moderate", "marked"):
            return float(bpe_mask[w].mean()) > 0.4
        return float(anat.fgt_mask[w].mean()) > 0.3

    if ok(center):
        return center
    inner = np.flatnonzero((anat.edge_distance_mm > ext + 8.0).reshape(-1))
    if inner.size:
        for k in rng.choice(inner, size=min(300, inner.size), replace=False):
            c = (float(k // cols), float(k % cols))
            if ok(c):
                return c
    if want == "none":
        w = window(center)
        maps["iodine"][w] -= bpe_iodine[w]
        bpe_iodine[w] = 0.0
        bpe_mask[w] = False
    return center


def _local_mean(img: np.ndarray, center, half_px: float) -> float:
    r0, c0 = int(max(0, center[0] - half_px)), int(max(0, center[1] - half_px))
    r1, c1 = int(center[0] + half_px) + 1, int(center[1] + half_px) + 1
    patch = img[r0:r1, c0:c1]
    return float(patch.mean()) if patch.size else 0.0


def _nme_pattern(anat, spec, center, rng):
    """Return ((slice, iodine excess patch), size_mm) of a non-mass enhancement."""
    sub = spec["subtype"]
    length = float(spec["diameter_mm"])
    peak = float(spec["iodine_mg_cm2"])
    sl, dy, dx = _local_grid(anat, center, length * 0.75 + 3.0)
    # direction towards the nipple in the display frame
    nip = anat.nipple_rc
    vy, vx = nip[0] - center[0], nip[1] - center[1]
    nrm = math.hypot(vx, vy) or 1.0
    ux, uy = vx / nrm, vy / nrm
    along = dx * ux + dy * uy  # + towards the nipple
    across = -dx * uy + dy * ux
    if sub == "segmental":
        # wedge: apex towards the nipple, half-angle 15-25 deg, length ~ diameter
        half = math.radians(rng.uniform(15, 25))
        apex = length / 2.0
        dist = apex - along
        pattern = (dist > 0) & (dist < length) & (np.abs(across) <= np.tan(half) * np.maximum(dist, 0))
        pattern = pattern.astype(float)
    elif sub == "linear":
        width = rng.uniform(1.5, 3.0)
        curv = rng.uniform(-0.01, 0.01)
        off = across - curv * along**2
        pattern = np.exp(-0.5 * (off / (width / 2.355)) ** 2) * (np.abs(along) < length / 2.0)
        if rng.uniform() < 0.5:  # one branch
            bang = rng.uniform(0.4, 0.8) * rng.choice([-1, 1])
            ca, sa = math.cos(bang), math.sin(bang)
            a2 = along * ca + across * sa
            c2 = -along * sa + across * ca
            pattern = np.maximum(pattern, np.exp(-0.5 * (c2 / (width / 2.355)) ** 2)
                                 * (a2 > 0) * (a2 < length / 3.0))
    else:  # clustered: clumped blobs
        pattern = np.zeros_like(dx + dy)
        for _ in range(int(rng.integers(6, 15))):
            cy, cx = rng.normal(0, length / 5.0, size=2)
            r = rng.uniform(1.0, 2.5)
            pattern = np.maximum(pattern, np.exp(-0.5 * ((dx - cx) ** 2 + (dy - cy) ** 2) / r**2))
        pattern = np.where(pattern > 0.1, pattern, 0.0)
    patch_noise = rng.uniform(0.5, 1.0, size=pattern.shape)
    from scipy.ndimage import gaussian_filter

    patch_noise = gaussian_filter(patch_noise, 1.0 / anat.pixel_mm)
    patch_noise = 0.5 + 0.5 * (patch_noise - patch_noise.min()) / max(np.ptp(patch_noise), 1e-9)
    iod = peak * pattern * patch_noise
    iod = np.where(iod > 0.03 * peak, iod, 0.0)
    return (sl, iod), length


def _render_specks(anat, spec, center, maps, les: Lesion) -> None:
    """Partial-volume rendering of the cluster's specks (path length of calcium salt, mm)."""
    p = anat.pixel_mm
    mat = spec["material"]
    sign = -1.0 if anat.laterality == "R" else 1.0  # canonical x runs right-to-left for R
    specks: list[Speck] = []
    allmask_rows, allmask_cols = [], []
    for dx3, du, dv, length, width, ang in spec["speck_offsets"]:
        lateral = du if anat.view == "CC" else (du + dv) / math.sqrt(2.0)
        rc = (center[0] + lateral / p, center[1] + sign * dx3 / p)
        if isinstance(ang, (tuple, list)):  # duct direction -> its projection in this view
            d_lat = ang[1] if anat.view == "CC" else (ang[1] + ang[2]) / math.sqrt(2.0)
            ang = math.atan2(d_lat, sign * ang[0])  # angle from the column axis towards rows
        elif anat.view == "MLO":
            ang = ang + math.pi / 4
        ra, rb = length / 2.0, width / 2.0
        rc3 = rb  # depth semi-axis = the smaller in-plane one
        half = ra + p
        ss = int(min(64, max(4, math.ceil(p / min(CALC_SUBSAMPLE_MM, width / 8.0)))))
        r0 = int(math.floor(rc[0] - half / p))
        c0 = int(math.floor(rc[1] - half / p))
        r1 = int(math.ceil(rc[0] + half / p)) + 1
        c1 = int(math.ceil(rc[1] + half / p)) + 1
        r0c, c0c = max(r0, 0), max(c0, 0)
        r1c, c1c = min(r1, anat.image_shape[0]), min(c1, anat.image_shape[1])
        if r1c <= r0c or c1c <= c0c:
            continue
        sub = (np.arange(ss) + 0.5) / ss - 0.5  # sub-sample offsets within a pixel
        yy = (np.arange(r0c, r1c)[:, None] + sub[None, :]).reshape(-1)  # sub-row positions
        xx = (np.arange(c0c, c1c)[:, None] + sub[None, :]).reshape(-1)
        dy = (yy - rc[0])[:, None] * p
        dx = (xx - rc[1])[None, :] * p
        ca, sa = math.cos(ang), math.sin(ang)
        xr = dx * ca + dy * sa
        yr = -dx * sa + dy * ca
        chord = 2.0 * rc3 * np.sqrt(np.clip(1.0 - (xr / ra) ** 2 - (yr / rb) ** 2, 0.0, None))
        nr, nc = r1c - r0c, c1c - c0c
        path = chord.reshape(nr, ss, nc, ss).mean(axis=(1, 3))
        slc = (slice(r0c, r1c), slice(c0c, c1c))
        tissue = maps["adipose"][slc] + maps["glandular"][slc]
        path = np.minimum(path, tissue)
        if path.max() <= 0:
            continue
        # the speck replaces soft tissue, adipose and glandular in proportion
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(tissue > 0, path / tissue, 0.0)
        maps["adipose"][slc] *= 1.0 - frac
        maps["glandular"][slc] *= 1.0 - frac
        maps[mat][slc] += path
        m = path > 0
        maps["calc_mask"][slc] |= m
        rr, cc = np.nonzero(m)
        allmask_rows += [int(rr.min() + r0c), int(rr.max() + r0c)]
        allmask_cols += [int(cc.min() + c0c), int(cc.max() + c0c)]
        specks.append(Speck(row=float(rc[0]), col=float(rc[1]), diameter_mm=float(length),
                            width_mm=float(width), material=mat, peak_path_mm=float(path.max())))
    les.specks = specks
    les.calcification_morphology = spec["morphology"]
    les.calcification_material = mat
    if allmask_rows:
        les.calcification_bbox = [min(allmask_rows), min(allmask_cols), max(allmask_rows) + 1,
                                  max(allmask_cols) + 1]
    else:
        les.calcification_bbox = [0, 0, 0, 0]


# ----------------------------------------------------------------------------- inserts
def render_insert(iodine: np.ndarray, *, center_rc: tuple[float, float], size_mm: float,
                  iodine_mg_cm2: float, pixel_mm: float) -> list[int]:
    """Add a square iodine insert (uniform areal density, exact pixel-area coverage) to
    ``iodine``; return its ROI [row0, col0, row1, col1] of fully covered pixels."""
    half = size_mm / 2.0 / pixel_mm
    rows, cols = iodine.shape
    r = np.arange(rows)
    c = np.arange(cols)
    # fractional coverage of each pixel [i-0.5, i+0.5] by [center-half, center+half]
    cov_r = np.clip(np.minimum(r + 0.5, center_rc[0] + half) - np.maximum(r - 0.5, center_rc[0] - half), 0, 1)
    cov_c = np.clip(np.minimum(c + 0.5, center_rc[1] + half) - np.maximum(c - 0.5, center_rc[1] - half), 0, 1)
    ir = np.flatnonzero(cov_r)
    ic = np.flatnonzero(cov_c)
    if ir.size and ic.size:
        iodine[ir[0]:ir[-1] + 1, ic[0]:ic[-1] + 1] += iodine_mg_cm2 * np.outer(cov_r[ir], cov_c[ic])
    full_r = np.flatnonzero(cov_r >= 1.0)
    full_c = np.flatnonzero(cov_c >= 1.0)
    if full_r.size == 0 or full_c.size == 0:
        return [0, 0, 0, 0]
    return [int(full_r[0]), int(full_c[0]), int(full_r[-1] + 1), int(full_c[-1] + 1)]
