"""Simulated CEM views and exams: :func:`simulate_view` (in memory) and :func:`write_exams`
(DICOM LE/HE + ground truth on disk).

Random streams (all from ``seed``, so one seed is one reproducible patient):

* patient stream ``[seed, 0]``: both breasts (size, thickness, glandularity), the BPE level,
  the findings of each breast (positions shared by its CC and MLO views);
* view stream ``[seed, 1, side, view]``: texture and BPE pattern of one view;
* noise stream ``[seed, 2, side, view]``: quantum and electronic noise, motion direction.

``simulate_view(seed=s, laterality=..., view=...)`` therefore reproduces exactly the same view
of exam seed ``s`` written by :func:`write_exams` (its truth JSON records ``seed``).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cemrecon._fileio import atomic_write
from cemrecon.phantom import anatomy as _anat
from cemrecon.phantom import lesions as _les
from cemrecon.phantom import render as _render

logger = logging.getLogger(__name__)

__all__ = ["ViewTruth", "ViewSimulation", "ExamTruth", "simulate_view", "write_exams", "exam_seed",
           "LATERALITIES", "VIEWS"]

LATERALITIES = ("R", "L")
VIEWS = ("CC", "MLO")
#: Time from injection to the first view and between views (CEM protocol: start at ~2 min,
#: four views within ~5 min), and from LE to HE of one view (SenoBright: ~1-2 s).
FIRST_VIEW_AFTER_STUDY_S = 120.0
BETWEEN_VIEWS_S = 55.0
LE_TO_HE_S = 1.5
#: Nominal tube current (mA) of the phantom's generator for LE / HE (plausible values for a
#: Rh anode; only the header's split of mAs into current and time depends on them).
TUBE_CURRENT_MA = {"LE": 100.0, "HE": 150.0}
#: Compression force (N) drawn around 100 N (typical 60-150 N).
COMPRESSION_FORCE_N = (70.0, 140.0)
#: Fixed study date of the phantom exams (determinism).
STUDY_DATETIME = _dt.datetime(2025, 1, 6, 9, 0, 0)


#: What the truth arrays and values mean (written into every truth JSON).
TRUTH_DEFINITIONS = {
    "coordinates": "pixel (row, column) of the stored LE image; bbox = [row0, col0, row1, col1], end exclusive",
    "iodine_mg_cm2": "total iodine areal density along the ray (BPE + lesions + inserts), mg/cm^2",
    "bpe_iodine_mg_cm2": "background parenchymal enhancement part of iodine_mg_cm2",
    "thickness_mm": "total tissue path (skin + breast tissue + muscle) along the ray, mm; "
                    "0 outside the breast; equals the compressed thickness in the flat part",
    "glandular_fraction": "glandular share of the breast-tissue path (adipose + glandular, skin and "
                          "pectoral muscle excluded), 0-1",
    "fgt_mask": f"glandular_fraction >= {_anat.FGT_MASK_THRESHOLD} inside the breast",
    "enhancing_fgt_mask": "FGT pixels carrying BPE iodine; enhancing_fraction_of_fgt = its share of fgt_mask",
    "calcification_path_mm": "hydroxyapatite + calcium oxalate path per pixel (partial volume), mm",
    "lesion_label": "number N of finding '<LAT>-N' where its own iodine excess > 0, else 0",
    "iodine_excess_mg_cm2": "peak iodine areal density of the finding itself (BPE excluded)",
    "bpe_category": "0 none, 1 minimal (<10 % of FGT enhancing), 2 mild (10-25 %), 3 moderate (25-50 %), "
                    "4 marked (>50 %)",
    "expected_enhancement": "masking truth rule at the calcification site (cemrecon.phantom.lesions."
                            "expected_call): indeterminate when the noise-free BPE within 10 mm spans "
                            "(P90 - P10) >= max(0.3 mg/cm^2, E), E = the finding's own iodine at the site; "
                            "else enhancement for a mass or NME, and for a cluster enhancement if E >= 0.3 "
                            "else no_enhancement",
    "site_iodine_excess_mg_cm2": "E: P90 over the calcification box of the iodine of all findings, BPE excluded",
    "background_bpe_spread_mg_cm2": "P90 - P10 of the noise-free BPE within 10 mm of the calcification box centre",
    "DN": "stored value = dark_offset_dn + gain_dn_per_keV x absorbed energy (keV) + noise, 14 bits",
}


@dataclass
class ViewTruth:
    """Ground truth of one view, exactly as rendered (arrays in the LE pixel frame)."""

    iodine_mg_cm2: np.ndarray
    bpe_iodine_mg_cm2: np.ndarray
    thickness_mm: np.ndarray
    glandular_fraction: np.ndarray
    breast_mask: np.ndarray
    pectoral_mask: np.ndarray
    fgt_mask: np.ndarray
    enhancing_fgt_mask: np.ndarray
    calcification_mask: np.ndarray
    calcification_path_mm: np.ndarray
    lesion_label: np.ndarray
    lesions: list
    bpe_level: str
    bpe_category: int
    enhancing_fraction: float
    bpe_concentration_mg_ml: float
    compressed_thickness_mm: float
    glandularity: float
    nipple_rc: tuple
    inserts: list = field(default_factory=list)
    motion_mm: tuple = (0.0, 0.0)
    spr: float | None = None

    @property
    def calcification_specks(self) -> list:
        return [s for les in self.lesions for s in les.specks]

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "iodine_mg_cm2": self.iodine_mg_cm2.astype(np.float32),
            "bpe_iodine_mg_cm2": self.bpe_iodine_mg_cm2.astype(np.float32),
            "thickness_mm": self.thickness_mm.astype(np.float32),
            "glandular_fraction": self.glandular_fraction.astype(np.float32),
            "breast_mask": self.breast_mask,
            "pectoral_mask": self.pectoral_mask,
            "fgt_mask": self.fgt_mask,
            "enhancing_fgt_mask": self.enhancing_fgt_mask,
            "calcification_mask": self.calcification_mask,
            "calcification_path_mm": self.calcification_path_mm.astype(np.float32),
            "lesion_label": self.lesion_label,
        }


@dataclass
class ViewSimulation:
    """One simulated view: LE and HE detector images plus truth and acquisition parameters."""

    le: np.ndarray
    he: np.ndarray
    truth: ViewTruth
    le_beam: object
    he_beam: object
    mas_le: float
    mas_he: float
    dark_offset_dn: float
    gain_dn_per_keV: float
    pixel_mm: float
    thickness_mm: float
    laterality: str
    view: str
    seed: int
    scale: float
    compression_force_n: float = 100.0
    le_mean_keV: np.ndarray | None = None
    le_second_keV2: np.ndarray | None = None
    he_mean_keV: np.ndarray | None = None
    he_second_keV2: np.ndarray | None = None
    timings_s: dict = field(default_factory=dict)

    def exposure_json(self) -> dict:
        beam = dataclasses.asdict

        return {"LE": {**beam(self.le_beam), "mas": round(self.mas_le, 4)},
                "HE": {**beam(self.he_beam), "mas": round(self.mas_he, 4)},
                "dark_offset_dn": self.dark_offset_dn, "gain_dn_per_keV": self.gain_dn_per_keV,
                "electronic_noise_dn": _render.ELECTRONIC_NOISE_DN,
                "compressed_thickness_mm": round(self.thickness_mm, 3),
                "compression_force_n": round(self.compression_force_n, 1),
                "pixel_mm": self.pixel_mm}

    def truth_json(self) -> dict:
        t = self.truth
        return {
            "seed": self.seed, "scale": self.scale, "laterality": self.laterality, "view": self.view,
            "rows": int(self.le.shape[0]), "columns": int(self.le.shape[1]),
            "bpe_level": t.bpe_level, "bpe_category": t.bpe_category,
            "enhancing_fraction_of_fgt": round(t.enhancing_fraction, 5),
            "bpe_concentration_mg_ml": round(t.bpe_concentration_mg_ml, 5),
            "glandularity": round(t.glandularity, 5),
            "fgt_mask_threshold": _anat.FGT_MASK_THRESHOLD,
            "nipple_rc": [round(float(v), 2) for v in t.nipple_rc],
            "motion_mm": [round(float(v), 4) for v in t.motion_mm],
            "scatter_spr": t.spr,
            "exposure": self.exposure_json(),
            "lesions": [les.to_json() for les in t.lesions],
            "inserts": t.inserts,
            "definitions": TRUTH_DEFINITIONS,
        }


@dataclass
class ExamTruth:
    """What :func:`write_exams` wrote for one exam."""

    exam_id: str
    seed: int
    directory: Path
    study_uid: str
    dicom_files: dict  # "R_CC_LE" -> Path
    truth_files: dict  # "R_CC" -> (npz Path, json Path)
    views: dict  # "R_CC" -> truth json dict
    timings_s: dict = field(default_factory=dict)  # anatomy/physics/detector/write_dicom/write_truth


# ----------------------------------------------------------------------------- patient
def _patient(seed: int, *, thickness_mm, glandularity, bpe_level, lesions, target_lat="R"):
    rng = np.random.default_rng([int(seed), 0])
    shapes = {lat: _anat.draw_breast_shape(rng, thickness_mm=thickness_mm, glandularity=glandularity)
              for lat in LATERALITIES}
    # both breasts of a woman have about the same size, thickness and density (+-7 %, +-10 %)
    r_shape = shapes["R"]
    j = rng.uniform(0.93, 1.07, size=4)
    lo_t, hi_t = _anat.THICKNESS_RANGE_MM
    g_l = r_shape.glandularity if glandularity is not None else float(
        np.clip(r_shape.glandularity * rng.uniform(0.9, 1.1), *_anat.GLANDULARITY_RANGE))
    if glandularity is not None:
        rng.uniform()
    shapes["L"] = _replace(
        shapes["L"], depth_mm=r_shape.depth_mm * j[0], half_width_mm=r_shape.half_width_mm * j[1],
        thickness_cc_mm=(r_shape.thickness_cc_mm if thickness_mm is not None
                         else float(np.clip(r_shape.thickness_cc_mm * j[2], lo_t, hi_t))),
        thickness_mlo_mm=(r_shape.thickness_mlo_mm if thickness_mm is not None
                          else float(np.clip(r_shape.thickness_mlo_mm * j[3], lo_t, hi_t))),
        glandularity=g_l)
    level, ext, conc = _les.draw_bpe(rng, bpe_level)
    ext_side = {lat: ext for lat in LATERALITIES}
    if level != "none":
        lo, hi = _les._BPE_EXTENT_DRAW[level]
        ext_side["L"] = float(np.clip(ext * rng.uniform(0.9, 1.1), lo, hi))
    else:
        rng.uniform()
    specs = {}
    for k, lat in enumerate(LATERALITIES):
        drawn = _les.draw_lesion_specs(rng)
        if lesions == "random":
            chosen = drawn
        elif lesions is None:
            chosen = []
        elif isinstance(lesions, dict):
            chosen = list(lesions.get(lat, []))
        else:
            chosen = list(lesions) if lat == target_lat else []
        srng = np.random.default_rng([int(seed), 3, k])
        specs[lat] = [_les.resolve_spec(s, srng) for s in chosen]
    force = float(rng.uniform(*COMPRESSION_FORCE_N))
    return shapes, (level, ext_side, conc), specs, force


def _replace(obj, **kw):
    from dataclasses import replace

    return replace(obj, **kw)


def exam_seed(seed: int, index: int) -> int:
    """Seed of exam ``index`` of a :func:`write_exams` run with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0] & 0x7FFFFFFF)


# ----------------------------------------------------------------------------- view
def simulate_view(*, seed: int, scale: float = 1.0, laterality: str = "R", view: str = "CC",
                  thickness_mm: float | None = None, glandularity: float | None = None,
                  bpe_level: str | None = None, lesions="random", inserts: list | None = None,
                  noise: bool = True, scatter: float | None = None, motion_mm: float = 0.0,
                  rng: np.random.Generator | None = None, keep_moments: bool = False) -> ViewSimulation:
    """Simulate one CEM view (LE and HE) of the phantom patient ``seed``.

    Parameters
    ----------
    seed : int
        Patient seed (breasts, BPE, findings, texture, noise).
    scale : float
        Pixel-grid scale: ``pixel_mm = 0.1 / scale``; the breast keeps its size in mm.
    laterality, view : {"R","L"}, {"CC","MLO"}
    thickness_mm : float, optional
        Compressed thickness (20-90 mm); default drawn (59 +- 16 mm).
    glandularity : float, optional
        Volumetric glandular fraction (0-1); default drawn (mean 19 %).
    bpe_level : {"none", "minimal", "mild", "moderate", "marked"}, optional
        Default drawn from the population (47.5/32/12.5/8 %).
    lesions : "random", list of dict, dict {"R": [...], "L": [...]}, or None
        Findings; a list applies to the breast of ``laterality`` (so, in :func:`write_exams`, to
        both breasts; use the dict form for one side).  See
        :func:`cemrecon.phantom.lesions.resolve_spec` for the keys.
    inserts : list of dict, optional
        Iodine inserts placed on the breast: ``{"iodine_mg_cm2", "size_mm", "center_rc"}``
        (``center_rc`` in pixels; default: along the breast centre line).
    noise : bool
        False: ``le``/``he`` are float64 expected DN (no noise, no quantisation).
    scatter : float, optional
        Scatter-to-primary ratio (physics.md: 0.1-0.2 with grid); None = primary only.
    motion_mm : float
        Patient motion between LE and HE: the HE object is shifted by this distance (random
        direction, sub-pixel, linear interpolation of the path maps).  Truth is in the LE frame.
    rng : numpy Generator, optional
        Noise generator (default: derived from ``seed``).

    Returns
    -------
    ViewSimulation
    """
    from cemrecon import physics

    if laterality not in LATERALITIES:
        raise ValueError(f"laterality must be one of {LATERALITIES}, got {laterality!r}")
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    if scatter is not None and not (0.0 <= float(scatter) <= 2.0):
        raise ValueError(f"scatter (SPR) must be in [0, 2] or None, got {scatter!r}")
    timings = {}
    t0 = time.perf_counter()
    shapes, (level, ext_side, conc), specs, force = _patient(
        seed, thickness_mm=thickness_mm, glandularity=glandularity, bpe_level=bpe_level, lesions=lesions,
        target_lat=laterality)
    side, vidx = LATERALITIES.index(laterality), VIEWS.index(view)
    vrng = np.random.default_rng([int(seed), 1, side, vidx])
    nrng = rng if rng is not None else np.random.default_rng([int(seed), 2, side, vidx])
    image_shape, pixel_mm = _anat.detector_shape(scale)
    anat = _anat.make_anatomy(shapes[laterality], laterality=laterality, view=view, image_shape=image_shape,
                              pixel_mm=pixel_mm, rng=vrng)
    bpe_iodine, enh, frac = _les.render_bpe(anat, level, ext_side[laterality], conc, vrng)
    maps = {
        "iodine": bpe_iodine.copy(),
        "adipose": (1.0 - anat.glandular_fraction) * anat.tissue_mm,
        "glandular": anat.glandular_fraction * anat.tissue_mm,
        "hydroxyapatite": np.zeros(image_shape),
        "calcium_oxalate": np.zeros(image_shape),
        "lesion_label": np.zeros(image_shape, dtype=np.uint8),
        "calc_mask": np.zeros(image_shape, dtype=bool),
    }
    found = []
    order = sorted(range(len(specs[laterality])), key=lambda i: specs[laterality][i]["type"] == "calcifications")
    for i in order:
        spec = specs[laterality][i]
        found.append(_les.render_lesion(anat, spec, maps, lesion_id=f"{laterality}-{i + 1}", bpe_level=level,
                                        bpe_iodine=bpe_iodine, bpe_mask=enh))
    found.sort(key=lambda les: les.id)
    insert_truth = []
    for k, ins in enumerate(inserts or []):
        size = float(ins.get("size_mm", 10.0))
        if "center_rc" in ins:
            center = tuple(float(v) for v in ins["center_rc"])
        else:
            x = anat.geometry["depth_mm"] * (0.25 + 0.5 * k / max(len(inserts) - 1, 1))
            center = anat.to_display(x, anat.geometry["center_y_mm"])
        roi = _les.render_insert(maps["iodine"], center_rc=center, size_mm=size,
                                 iodine_mg_cm2=float(ins["iodine_mg_cm2"]), pixel_mm=pixel_mm)
        insert_truth.append({"iodine_mg_cm2": float(ins["iodine_mg_cm2"]), "size_mm": size,
                             "center_rc": [round(c, 3) for c in center], "roi": roi})
    timings["anatomy"] = time.perf_counter() - t0

    # --- physics
    t1 = time.perf_counter()
    T = anat.thickness_mm
    le_beam = physics.le_beam_for_thickness(T)
    he_beam = physics.he_beam_for_thickness(T)
    mas_le = float(physics.aec_mas(le_beam, T))
    mas_he = float(physics.aec_mas(he_beam, T))
    le_model = _model(le_beam, pixel_mm)
    he_model = _model(he_beam, pixel_mm)
    gland = np.where(anat.tissue_mm > 0, maps["glandular"] / np.where(anat.tissue_mm > 0, anat.tissue_mm, 1), 0)
    paths_mm = {"adipose": maps["adipose"], "glandular": maps["glandular"], "skin": anat.skin_mm,
                "muscle": anat.muscle_mm, "hydroxyapatite": maps["hydroxyapatite"],
                "calcium_oxalate": maps["calcium_oxalate"]}
    paths_mm["iodine"] = maps["iodine"]  # mg/cm^2
    mask = anat.breast_mask | (maps["iodine"] > 0)
    motion = (0.0, 0.0)
    if motion_mm:
        ang = float(nrng.uniform(0, 2 * math.pi))
        motion = (float(motion_mm) * math.sin(ang), float(motion_mm) * math.cos(ang))  # (rows, cols) mm
        he_paths = {k: _shift(v, motion, pixel_mm) for k, v in paths_mm.items() if np.any(v)}
        he_mask = _shift(mask.astype(float), motion, pixel_mm) > 0
        le_mean, le_second = _render.expected_moments(le_model, paths_mm, mas_le, mask=mask)
        he_mean, he_second = _render.expected_moments(he_model, he_paths, mas_he, mask=he_mask)
    else:
        he_mask = mask
        (le_mean, le_second), (he_mean, he_second) = _render.expected_moments_multi(
            [(le_model, mas_le), (he_model, mas_he)], paths_mm, mask=mask)
    if scatter:
        spr = float(scatter)
        for arrs, msk in (((le_mean, le_second), anat.breast_mask), ((he_mean, he_second), anat.breast_mask)):
            for a in arrs:
                a += physics.scatter_field(a, spr=spr, pixel_mm=pixel_mm, mask=msk)
    timings["physics"] = time.perf_counter() - t1

    # --- detector
    t2 = time.perf_counter()
    open_le = float(le_model.moments({}, mas_le)[0]) * (1.0 + 0.0)
    open_he = float(he_model.moments({}, mas_he)[0])
    gain = _render.choose_gain(max(open_le, open_he))
    # exact compound-Poisson sampling wherever there is an object (or its scatter)
    exact = _dilate_box(mask | he_mask, 0 if not scatter else int(60.0 / pixel_mm))
    le = _render.readout(le_mean, le_second, gain_dn_per_keV=gain, noise=noise, rng=nrng, exact_mask=exact)
    he = _render.readout(he_mean, he_second, gain_dn_per_keV=gain, noise=noise, rng=nrng, exact_mask=exact)
    timings["detector"] = time.perf_counter() - t2

    truth = ViewTruth(
        iodine_mg_cm2=maps["iodine"], bpe_iodine_mg_cm2=bpe_iodine, thickness_mm=anat.thickness_map_mm,
        glandular_fraction=gland, breast_mask=anat.breast_mask, pectoral_mask=anat.pectoral_mask,
        fgt_mask=anat.fgt_mask, enhancing_fgt_mask=enh, calcification_mask=maps["calc_mask"],
        calcification_path_mm=maps["hydroxyapatite"] + maps["calcium_oxalate"],
        lesion_label=maps["lesion_label"], lesions=found, bpe_level=level,
        bpe_category=_les.bpe_category(level), enhancing_fraction=frac, bpe_concentration_mg_ml=conc,
        compressed_thickness_mm=T, glandularity=shapes[laterality].glandularity, nipple_rc=anat.nipple_rc,
        inserts=insert_truth, motion_mm=motion, spr=None if scatter is None else float(scatter))
    sim = ViewSimulation(le=le, he=he, truth=truth, le_beam=le_beam, he_beam=he_beam, mas_le=mas_le,
                         mas_he=mas_he, dark_offset_dn=_render.DARK_OFFSET_DN, gain_dn_per_keV=gain,
                         pixel_mm=pixel_mm, thickness_mm=T, laterality=laterality, view=view, seed=int(seed),
                         scale=float(scale), compression_force_n=force, timings_s=timings)
    if keep_moments:
        sim.le_mean_keV, sim.le_second_keV2 = le_mean, le_second
        sim.he_mean_keV, sim.he_second_keV2 = he_mean, he_second
    logger.debug("simulated %s%s seed %d scale %g: %s", laterality, view, seed, scale, timings)
    return sim


def _dilate_box(mask: np.ndarray, radius_px: int) -> np.ndarray:
    """``mask`` grown to its bounding box plus ``radius_px`` (cheap and conservative)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return mask
    cols = np.flatnonzero(mask.any(axis=0))
    out = np.zeros_like(mask)
    r0, c0 = max(rows[0] - radius_px, 0), max(cols[0] - radius_px, 0)
    out[r0:rows[-1] + radius_px + 1, c0:cols[-1] + radius_px + 1] = True
    return out


_MODELS: dict = {}


def _model(beam, pixel_mm: float):
    from cemrecon.physics import SignalModel

    key = (beam, float(pixel_mm))
    m = _MODELS.get(key)
    if m is None:
        m = _MODELS[key] = SignalModel(beam, pixel_mm=pixel_mm)
    return m


def _shift(arr, motion_mm, pixel_mm):
    from scipy.ndimage import shift

    a = np.asarray(arr, dtype=np.float64)
    if a.ndim == 0:
        return a
    out = shift(a, (motion_mm[0] / pixel_mm, motion_mm[1] / pixel_mm), order=1, mode="constant", cval=0.0)
    return np.maximum(out, 0.0)


# ----------------------------------------------------------------------------- exams
def _atomic_bytes(path: Path, writer) -> None:
    atomic_write(path, writer, what="phantom file")


def _write_npz(path: Path, arrays: dict) -> None:
    """A compressed ``.npz`` (readable by ``np.load``) with fixed zip timestamps, so the same
    seed gives byte-identical files (``np.savez_compressed`` stamps the current time)."""
    import io
    import zipfile

    def writer(fh):
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name in sorted(arrays):
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.asanyarray(arrays[name]), allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(2025, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, buf.getvalue(), compresslevel=1)

    _atomic_bytes(path, writer)


def _write_json(path: Path, obj: dict) -> None:
    data = (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()
    _atomic_bytes(path, lambda fh: fh.write(data))


def _simulated_spr(sim) -> float:
    """The scatter-to-primary ratio a simulation used (0.0 for primary only)."""
    spr = getattr(getattr(sim, "truth", None), "spr", None)
    if spr is None:
        spr = getattr(sim, "spr", None)
    return float(spr or 0.0)


def write_pair_dicom(dicom_dir: Path, stem: str, sim, *, exam_seed_: int, index: int, lat: str, view: str,
                     study_uid: str, series_uid: str, for_uid: str, first_instance: int,
                     acquisition_start: _dt.datetime, image_type_style: str = "ge",
                     out: dict | None = None) -> dict:
    """Write the LE and HE DICOM files of one simulated view (``<stem>_LE.dcm``, ``_HE.dcm``)."""
    from cemrecon.phantom import dicom as _dcm

    out = {} if out is None else out
    exam_id = f"PHANTOM{index + 1:04d}"
    for k, (energy, pixels, beam, mas, dt_s) in enumerate((
            ("LE", sim.le, sim.le_beam, sim.mas_le, 0.0),
            ("HE", sim.he, sim.he_beam, sim.mas_he, LE_TO_HE_S))):
        exp_s = mas / TUBE_CURRENT_MA[energy]
        header = _dcm.ImageHeader(
            energy=energy, laterality=lat, view=view, patient_name=f"PHANTOM^{index + 1:04d}",
            patient_id=exam_id, study_uid=study_uid, series_uid=series_uid,
            sop_uid=_dcm.uid_from(exam_seed_, stem, energy), frame_of_reference_uid=for_uid,
            study_id=f"{index + 1}", accession_number=f"CEMPH{index + 1:06d}",
            instance_number=first_instance + k,
            acquisition_datetime=acquisition_start + _dt.timedelta(seconds=dt_s), study_datetime=STUDY_DATETIME,
            kvp=beam.kvp, anode=beam.anode, filter_material=beam.filter_material,
            filter_mm=beam.filter_mm, mas=mas, exposure_time_ms=exp_s * 1000.0,
            thickness_mm=sim.thickness_mm, compression_force_n=sim.compression_force_n,
            pixel_mm=sim.pixel_mm, dark_offset_dn=sim.dark_offset_dn,
            gain_dn_per_kev=sim.gain_dn_per_keV, scatter_spr=_simulated_spr(sim),
            image_type_style=image_type_style, seed=exam_seed_)
        path = dicom_dir / f"{stem}_{energy}.dcm"
        _dcm.write_dataset(_dcm.build_dataset(pixels, header), path)
        out[f"{stem}_{energy}"] = path
    return out


def write_exams(outdir, n_exams: int = 1, *, seed: int = 0, scale: float = 1.0,
                image_type_style: str = "ge", first_index: int = 0, **options) -> list[ExamTruth]:
    """Write ``n_exams`` phantom CEM exams (R/L x CC/MLO, LE + HE each) under ``outdir``.

    Layout: ``OUTDIR/<exam_id>/dicom/<LAT>_<VIEW>_<LE|HE>.dcm`` and
    ``OUTDIR/<exam_id>/truth/<LAT>_<VIEW>.npz`` / ``.json``.  ``exam_id`` is
    ``PHANTOM<index+1:04d>``; exam ``i`` uses seed :func:`exam_seed(seed, i) <exam_seed>`.

    Parameters
    ----------
    outdir : path
    n_exams : int
    seed, scale : see :func:`simulate_view`
    image_type_style : {"ge", "standard"}
        Energy token in Image Type value 4 (GE) or 5 (CP-1342).
    **options
        Passed to :func:`simulate_view` (thickness_mm, glandularity, bpe_level, lesions,
        noise must stay True, scatter, motion_mm, inserts).

    Returns
    -------
    list of ExamTruth
    """
    from cemrecon.phantom import dicom as _dcm

    if int(n_exams) < 0:
        raise ValueError(f"n_exams must be >= 0, got {n_exams!r}")
    if options.get("noise") is False:
        raise ValueError("write_exams needs noise=True: DICOM stores quantised uint16 DN")
    outdir = Path(outdir)
    results = []
    for i in range(first_index, first_index + int(n_exams)):
        es = exam_seed(seed, i)
        exam_id = f"PHANTOM{i + 1:04d}"
        edir = outdir / exam_id
        study_uid = _dcm.uid_from(es, "study")
        series_uid = _dcm.uid_from(es, "series")
        dicom_files, truth_files, views = {}, {}, {}
        timings = {"anatomy": 0.0, "physics": 0.0, "detector": 0.0, "write_dicom": 0.0, "write_truth": 0.0}
        inst = 0
        for vi, (lat, view) in enumerate([(lat, v) for v in VIEWS for lat in LATERALITIES]):
            sim = simulate_view(seed=es, scale=scale, laterality=lat, view=view, **options)
            for k, v in sim.timings_s.items():
                timings[k] = timings.get(k, 0.0) + v
            tw = time.perf_counter()
            for_uid = _dcm.uid_from(es, lat, view, "frame-of-reference")
            t_le = STUDY_DATETIME + _dt.timedelta(seconds=FIRST_VIEW_AFTER_STUDY_S + vi * BETWEEN_VIEWS_S)
            write_pair_dicom(edir / "dicom", f"{lat}_{view}", sim, exam_seed_=es, index=i, lat=lat, view=view,
                             study_uid=study_uid, series_uid=series_uid, for_uid=for_uid,
                             first_instance=inst + 1, acquisition_start=t_le,
                             image_type_style=image_type_style, out=dicom_files)
            inst += 2
            timings["write_dicom"] += time.perf_counter() - tw
            tw = time.perf_counter()
            tj = sim.truth_json()
            tj.update({"exam_id": exam_id, "exam_index": i, "run_seed": int(seed), "study_uid": study_uid,
                       "frame_of_reference_uid": for_uid,
                       "sop_instance_uids": {e: _dcm.uid_from(es, f"{lat}_{view}", e) for e in ("LE", "HE")}})
            npz = edir / "truth" / f"{lat}_{view}.npz"
            js = edir / "truth" / f"{lat}_{view}.json"
            _write_npz(npz, sim.truth.arrays())
            _write_json(js, tj)
            truth_files[f"{lat}_{view}"] = (npz, js)
            views[f"{lat}_{view}"] = tj
            timings["write_truth"] += time.perf_counter() - tw
            logger.info("exam %s view %s%s written (%s)", exam_id, lat, view, sim.timings_s)
        results.append(ExamTruth(exam_id=exam_id, seed=es, directory=edir, study_uid=study_uid,
                                 dicom_files=dicom_files, truth_files=truth_files, views=views,
                                 timings_s=timings))
    return results
