"""Calibration mode of the phantom: flat slabs with an iodine step wedge.

Each exposure is a uniform slab (no roll-off) of thickness ``T`` (1.5 mm skin-equivalent on
each side around a glandular/adipose mixture, the slab model of
:func:`cemrecon.physics.slab_paths`) covering the whole detector, with a row of square iodine
inserts (areal densities ``iodine_steps_mg_cm2``) along the middle row.  Insert edges are
rendered with exact pixel-area coverage; the truth ROIs are the fully covered pixels shrunk by
a margin.  Iodine inserts on a breast: ``simulate_view(..., inserts=[...])``.

:func:`write_calibration` writes one LE/HE pair per (thickness, glandularity) as its own study,
in the exam layout: ``OUTDIR/CAL_T050_G050/dicom/R_CC_{LE,HE}.dcm`` and
``OUTDIR/CAL_T050_G050/truth/R_CC.json`` (+ ``.npz``).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cemrecon.phantom import anatomy as _anat
from cemrecon.phantom import lesions as _les
from cemrecon.phantom import render as _render

__all__ = ["SlabSimulation", "simulate_slab", "write_calibration", "DEFAULT_THICKNESSES_MM",
           "DEFAULT_GLANDULARITIES", "DEFAULT_IODINE_STEPS_MG_CM2"]

DEFAULT_THICKNESSES_MM = (20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0)
DEFAULT_GLANDULARITIES = (0.0, 0.5, 1.0)
DEFAULT_IODINE_STEPS_MG_CM2 = (0.0, 0.5, 1.0, 2.0, 3.0, 4.0)
#: Side of a square insert (mm) and margin removed from each ROI side (mm).
INSERT_SIZE_MM = 15.0
ROI_MARGIN_MM = 2.0


@dataclass
class SlabSimulation:
    """One slab exposure (same fields as :class:`~cemrecon.phantom.exam.ViewSimulation`
    where they apply)."""

    le: np.ndarray
    he: np.ndarray
    iodine_mg_cm2: np.ndarray
    inserts: list  # dicts: iodine_mg_cm2, roi [r0, c0, r1, c1], center_rc, size_mm
    background_roi: list
    le_beam: object
    he_beam: object
    mas_le: float
    mas_he: float
    dark_offset_dn: float
    gain_dn_per_keV: float
    pixel_mm: float
    thickness_mm: float
    glandularity: float
    paths_cm: dict
    seed: int
    scale: float
    spr: float | None = None
    compression_force_n: float = 0.0
    le_mean_keV: np.ndarray | None = None
    le_second_keV2: np.ndarray | None = None
    he_mean_keV: np.ndarray | None = None
    he_second_keV2: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def truth_json(self) -> dict:
        beam = dataclasses.asdict

        return {
            "kind": "calibration_slab", "seed": self.seed, "scale": self.scale,
            "thickness_mm": self.thickness_mm, "glandularity": self.glandularity,
            "paths_cm": {k: round(float(v), 6) for k, v in self.paths_cm.items()},
            "rows": int(self.le.shape[0]), "columns": int(self.le.shape[1]),
            "inserts": self.inserts, "background_roi": self.background_roi, "scatter_spr": self.spr,
            "exposure": {"LE": {**beam(self.le_beam), "mas": round(self.mas_le, 4)},
                         "HE": {**beam(self.he_beam), "mas": round(self.mas_he, 4)},
                         "dark_offset_dn": self.dark_offset_dn, "gain_dn_per_keV": self.gain_dn_per_keV,
                         "electronic_noise_dn": _render.ELECTRONIC_NOISE_DN, "pixel_mm": self.pixel_mm},
        }


def simulate_slab(*, thickness_mm: float, glandularity: float,
                  iodine_steps_mg_cm2=DEFAULT_IODINE_STEPS_MG_CM2, insert_size_mm: float = INSERT_SIZE_MM,
                  scale: float = 1.0, noise: bool = True, scatter: float | None = None, seed: int = 0,
                  rng: np.random.Generator | None = None, mas_le: float | None = None,
                  mas_he: float | None = None, keep_moments: bool = False) -> SlabSimulation:
    """Simulate one flat-slab LE/HE exposure with a row of square iodine inserts.

    Parameters
    ----------
    thickness_mm : float
        Slab thickness, 20-90 mm (skin 1.5 mm each side included).
    glandularity : float
        Glandular fraction of the interior (0-1).
    iodine_steps_mg_cm2 : sequence of float
        Areal densities of the inserts, left to right (0 gives a blank reference insert).
    scale, noise, scatter, seed, rng
        As in :func:`~cemrecon.phantom.exam.simulate_view`.
    mas_le, mas_he : float, optional
        Exposures; default the AEC rule of :func:`cemrecon.physics.aec_mas`.
    """
    from cemrecon import physics
    from cemrecon.phantom.exam import _model

    t = float(thickness_mm)
    if not _anat.THICKNESS_RANGE_MM[0] <= t <= _anat.THICKNESS_RANGE_MM[1]:
        raise ValueError(f"thickness_mm must be within {_anat.THICKNESS_RANGE_MM} mm, got {thickness_mm!r}")
    steps = [float(v) for v in iodine_steps_mg_cm2]
    if any(not (0.0 <= v <= 20.0) for v in steps):
        raise ValueError(f"iodine_steps_mg_cm2 must be within [0, 20] mg/cm^2, got {iodine_steps_mg_cm2!r}")
    image_shape, pixel_mm = _anat.detector_shape(scale)
    rows, cols = image_shape
    paths = physics.slab_paths(t, float(glandularity))
    iodine_bg = float(paths.pop("iodine", 0.0))
    # inserts: a row along the middle, evenly spaced
    iodine = np.full(image_shape, iodine_bg)
    inserts = []
    n = len(steps)
    width_mm = cols * pixel_mm
    spacing = width_mm / (n + 1)
    if n and spacing < insert_size_mm * 1.2:
        raise ValueError(f"{n} inserts of {insert_size_mm} mm do not fit across {width_mm:.0f} mm")
    margin = ROI_MARGIN_MM / pixel_mm
    for k, v in enumerate(steps):
        center = (rows / 2.0 - 0.5, (k + 1) * spacing / pixel_mm - 0.5)
        roi = _les.render_insert(iodine, center_rc=center, size_mm=insert_size_mm, iodine_mg_cm2=v,
                                 pixel_mm=pixel_mm)
        m = int(np.ceil(margin))
        roi = [roi[0] + m, roi[1] + m, roi[2] - m, roi[3] - m]
        inserts.append({"iodine_mg_cm2": v, "size_mm": insert_size_mm, "center_rc": [round(c, 3) for c in center],
                        "roi": roi})
    half = int(round(insert_size_mm / 2.0 / pixel_mm))
    r_bg = int(rows * 0.25)
    background_roi = [r_bg - half, int(cols * 0.25) - half, r_bg + half, int(cols * 0.75) + half]

    le_beam = physics.le_beam_for_thickness(t)
    he_beam = physics.he_beam_for_thickness(t)
    mas_le = float(physics.aec_mas(le_beam, t)) if mas_le is None else float(mas_le)
    mas_he = float(physics.aec_mas(he_beam, t)) if mas_he is None else float(mas_he)
    le_model, he_model = _model(le_beam, pixel_mm), _model(he_beam, pixel_mm)
    paths_cm = dict(paths)
    full = {**{k: np.float64(v) for k, v in paths_cm.items()}, "iodine": iodine}
    le_mean, le_second = le_model.moments(full, mas_le)
    he_mean, he_second = he_model.moments(full, mas_he)
    if scatter:
        for a in (le_mean, le_second, he_mean, he_second):
            a += physics.scatter_field(a, spr=float(scatter), pixel_mm=pixel_mm)
    gain = _render.choose_gain(max(float(le_model.moments({}, mas_le)[0]), float(he_model.moments({}, mas_he)[0])))
    nrng = rng if rng is not None else np.random.default_rng([int(seed), 7, int(round(t * 10)),
                                                               int(round(float(glandularity) * 1000))])
    le = _render.readout(le_mean, le_second, gain_dn_per_keV=gain, noise=noise, rng=nrng)
    he = _render.readout(he_mean, he_second, gain_dn_per_keV=gain, noise=noise, rng=nrng)
    sim = SlabSimulation(le=le, he=he, iodine_mg_cm2=iodine, inserts=inserts, background_roi=background_roi,
                         le_beam=le_beam, he_beam=he_beam, mas_le=mas_le, mas_he=mas_he,
                         dark_offset_dn=_render.DARK_OFFSET_DN, gain_dn_per_keV=gain, pixel_mm=pixel_mm,
                         thickness_mm=t, glandularity=float(glandularity), paths_cm=paths_cm, seed=int(seed),
                         scale=float(scale), spr=None if scatter is None else float(scatter))
    if keep_moments:
        sim.le_mean_keV, sim.le_second_keV2 = le_mean, le_second
        sim.he_mean_keV, sim.he_second_keV2 = he_mean, he_second
    return sim


def write_calibration(outdir, *, thicknesses_mm=DEFAULT_THICKNESSES_MM, glandularities=DEFAULT_GLANDULARITIES,
                      iodine_steps_mg_cm2=DEFAULT_IODINE_STEPS_MG_CM2, scale: float = 1.0, seed: int = 0,
                      noise: bool = True, scatter: float | None = None,
                      image_type_style: str = "ge") -> list[Path]:
    """Write one LE/HE slab pair per (thickness, glandularity); return the study folders.

    See the module docstring for the layout.  Each pair is its own study (patient
    ``CALIBRATION^T050G050``) so readers pair it like any exam.
    """
    from cemrecon.phantom import dicom as _dcm
    from cemrecon.phantom.exam import (
        STUDY_DATETIME,
        _write_json,
        _write_npz,
        write_pair_dicom,
    )

    if not noise:
        raise ValueError("write_calibration needs noise=True: DICOM stores quantised uint16 DN")
    outdir = Path(outdir)
    written = []
    k = 0
    for t in thicknesses_mm:
        for g in glandularities:
            name = f"CAL_T{int(round(float(t))):03d}_G{int(round(float(g) * 100)):03d}"
            sim = simulate_slab(thickness_mm=t, glandularity=g, iodine_steps_mg_cm2=iodine_steps_mg_cm2,
                                scale=scale, noise=True, scatter=scatter, seed=seed)
            es = int(np.random.SeedSequence([int(seed), 99, k]).generate_state(1)[0] & 0x7FFFFFFF)
            edir = outdir / name
            files = write_pair_dicom(edir / "dicom", "R_CC", sim, exam_seed_=es, index=9000 + k, lat="R",
                                     view="CC", study_uid=_dcm.uid_from(es, "cal-study"),
                                     series_uid=_dcm.uid_from(es, "cal-series"),
                                     for_uid=_dcm.uid_from(es, "cal-for"), first_instance=1,
                                     acquisition_start=STUDY_DATETIME + _dt.timedelta(seconds=60.0 * k),
                                     image_type_style=image_type_style)
            tj = sim.truth_json()
            tj["name"] = name
            tj["files"] = {k2: str(v.relative_to(edir)) for k2, v in files.items()}
            _write_json(edir / "truth" / "R_CC.json", tj)
            _write_npz(edir / "truth" / "R_CC.npz", {"iodine_mg_cm2": sim.iodine_mg_cm2.astype(np.float32)})
            written.append(edir)
            k += 1
    return written
