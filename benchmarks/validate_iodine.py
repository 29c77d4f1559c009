"""Validate iodine maps against the issue-5 targets on phantoms with held-out seeds.

Prints one table (measured value, target, pass) for:

1. noise-free, no scatter: |bias| of flat slabs over thickness 20-90 mm, glandularity
   0-100 %, iodine 0-4 mg/cm^2 (insert ROI means vs truth), physics-predicted calibration
   and a calibration measured on phantom calibration slabs (seed 1000, not used below);
2. scatter (SPR 0.15) and clinical noise, breasts with inserts (10 mm, 0.5-4 mg/cm^2):
   excess over a 1-4 mm ring around the insert, against the same measure on the truth map,
   scatter-corrected with the system's SPR (known: declared by the phantom's DICOM header
   0029,xx12, which is what ``iodine_map`` uses by default on phantom files, or measured by
   a site), with the generic thickness rule (SPR 0.10-0.20 with a grid, not the true 0.15),
   and uncorrected; inserts on the thickness roll-off are left out;
3. residual tissue texture of breasts without iodine, noise-free, SPR 0.15 corrected with
   the thickness rule (std of the map over the flat part of the breast, 10 mm inside it);
4. RMS noise in a 1 cm^2 ROI (pixel std inside 1 cm^2 ROIs, flat slab, clinical dose).

Usage: ``python benchmarks/validate_iodine.py [--scale 0.25] [--quick]``
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
from scipy import ndimage

from cemrecon.calibrate import Calibration, fit_calibration
from cemrecon.iodine import iodine_map
from cemrecon.phantom import simulate_view
from cemrecon.phantom.calibration import simulate_slab, write_calibration


def kw(sim, **extra):
    d = dict(le_beam=sim.le_beam, he_beam=sim.he_beam, mas=(sim.mas_le, sim.mas_he), pixel_mm=sim.pixel_mm,
             thickness_mm=sim.thickness_mm, dark_offset=sim.dark_offset_dn, gain_dn_per_kev=sim.gain_dn_per_keV)
    d.update(extra)
    return d


def excess(img, roi, gap_px, ring_px):
    r0, c0, r1, c1 = roi
    inner = img[r0:r1, c0:c1].astype(np.float64).mean()
    ring = np.zeros(img.shape, bool)
    ring[r0 - gap_px - ring_px:r1 + gap_px + ring_px, c0 - gap_px - ring_px:c1 + gap_px + ring_px] = True
    ring[r0 - gap_px:r1 + gap_px, c0 - gap_px:c1 + gap_px] = False
    return inner - img[ring].astype(np.float64).mean()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.25, help="phantom scale (pixel 0.1/scale mm)")
    ap.add_argument("--quick", action="store_true", help="fewer thicknesses and seeds")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    rows = []
    thick = (20.0, 45.0, 70.0, 90.0) if args.quick else (20.0, 30.0, 45.0, 55.0, 70.0, 80.0, 90.0)
    glands = (0.0, 0.5, 1.0)
    steps = (0.0, 0.5, 1.0, 2.0, 3.0, 4.0)

    # --- measured calibration from phantom calibration slabs (seed 1000; validation uses others)
    with tempfile.TemporaryDirectory() as tmp:
        write_calibration(tmp, thicknesses_mm=(20.0, 40.0, 60.0, 80.0, 90.0), glandularities=(0.0, 0.5, 1.0),
                          scale=0.1, seed=1000)
        measured = fit_calibration([tmp], scatter_correction="none")
    cals = {"physics": Calibration.physics_predicted(), "measured": measured}

    # --- 1. noise-free, no scatter, flat slabs
    for name, cal in cals.items():
        errs = []
        for t in thick:
            for g in glands:
                sim = simulate_slab(thickness_mm=t, glandularity=g, iodine_steps_mg_cm2=steps, scale=0.1,
                                    noise=False, seed=7)
                m = iodine_map(sim.le, sim.he, **kw(sim, calibration=cal, scatter_correction="none",
                                                    smoothing_fwhm_mm=None))
                for ins in sim.inserts:
                    r0, c0, r1, c1 = ins["roi"]
                    errs.append(float(m[r0:r1, c0:c1].mean()) - ins["iodine_mg_cm2"])
        e = np.abs(errs)
        rows.append((f"noise-free |bias|, {name} cal (max over {len(e)} ROIs)", f"{e.max():.4f}", "<= 0.05",
                     e.max() <= 0.05))

    # --- 2. scatter + clinical noise, inserts on breasts, local excess
    seeds = (501, 502) if args.quick else (501, 502, 503, 504)
    ins_spec = [{"iodine_mg_cm2": v, "size_mm": 10.0} for v in (0.5, 1.0, 2.0, 4.0)]
    modes = {"known": dict(scatter_correction="kernel", spr=0.15),
             "rule": dict(scatter_correction="kernel"),
             "none": dict(scatter_correction="none")}
    worst = dict.fromkeys(modes, 0.0)
    worst_rel = dict.fromkeys(modes, 0.0)
    texture, noise_px = [], []
    n_used = dict.fromkeys(modes, 0)
    for s in seeds:
        v = simulate_view(seed=s, scale=args.scale, lesions=None, bpe_level="none", inserts=ins_spec,
                          noise=True, scatter=0.15)
        gap, ring = int(round(1.0 / v.pixel_mm)), int(round(3.0 / v.pixel_mm))
        flat_t = v.truth.thickness_mm >= v.thickness_mm - 1e-6
        for corr, opts in modes.items():
            m = iodine_map(v.le, v.he, **kw(v, **opts))
            for ins in v.truth.inserts:
                r0, c0, r1, c1 = ins["roi"]
                g = gap + ring
                if not flat_t[r0 - g:r1 + g, c0 - g:c1 + g].all():
                    continue  # insert on the thickness roll-off: not a flat-breast measurement
                n_used[corr] += 1
                # true excess: the same measure on the truth iodine map (partial-volume edges)
                target = excess(v.truth.iodine_mg_cm2, ins["roi"], gap, ring)
                err = abs(excess(m, ins["roi"], gap, ring) - target)
                worst[corr] = max(worst[corr], err - max(0.05, 0.05 * target))
                worst_rel[corr] = max(worst_rel[corr], err / target)
        # --- 3. texture: same breast without inserts, noise-free (texture, not noise)
        vt = simulate_view(seed=s, scale=args.scale, lesions=None, bpe_level="none", noise=False, scatter=0.15)
        m = iodine_map(vt.le, vt.he, **kw(vt))
        flat = ndimage.binary_erosion(vt.truth.thickness_mm >= vt.thickness_mm - 1e-6,
                                      iterations=int(round(10.0 / vt.pixel_mm)))
        texture.append(float(np.std(m[flat])))
    rows.append((f"scatter 0.15 + noise: excess over local bg, corrected, system SPR (worst of {n_used['known']})",
                 f"{worst_rel['known'] * 100:.1f} %", "<= max(0.05, 5 %)", worst["known"] <= 0))
    rows.append((f"  same, SPR from the generic thickness rule (worst of {n_used['rule']})",
                 f"{worst_rel['rule'] * 100:.1f} %", "(info)", worst["rule"] <= 0))
    rows.append((f"scatter 0.15 + noise: excess over local bg, uncorrected (worst of {n_used['none']})",
                 f"{worst_rel['none'] * 100:.1f} %", "(shows the dilution)", worst["none"] <= 0))
    rows.append(("texture, breast w/o iodine (scatter corrected): std over flat breast (max)",
                 f"{max(texture):.4f}", "<= 0.1", max(texture) <= 0.1))

    # --- 4. noise in 1 cm^2 ROIs (clinical AEC dose, 55 mm, default 0.5 mm smoothing)
    sim = simulate_slab(thickness_mm=55.0, glandularity=0.3, iodine_steps_mg_cm2=(0.0,), scale=args.scale,
                        noise=True, seed=77)
    m = iodine_map(sim.le, sim.he, **kw(sim, scatter_correction="none"))
    n = int(round(10.0 / sim.pixel_mm))
    r0, c0 = sim.le.shape[0] // 4, sim.le.shape[1] // 4
    for k in range(4):
        roi = m[r0 + (k // 2) * 2 * n: r0 + (k // 2) * 2 * n + n, c0 + (k % 2) * 2 * n: c0 + (k % 2) * 2 * n + n]
        noise_px.append(float(np.std(roi)))
    rows.append((f"pixel noise std in 1 cm^2 ROIs ({sim.pixel_mm:g} mm pixels, 0.5 mm smoothing)",
                 f"{max(noise_px):.4f}", "<= 0.1", max(noise_px) <= 0.1))
    m1 = iodine_map(sim.le, sim.he, **kw(sim, scatter_correction="none", smoothing_fwhm_mm=None))
    roi = m1[r0:r0 + n, c0:c0 + n]
    rows.append(("  same, no smoothing", f"{float(np.std(roi)):.4f}", "(info)", True))

    w = max(len(r[0]) for r in rows)
    print(f"{'measure'.ljust(w)}  {'value':>10}  {'target':<24} pass")
    for name, val, target, ok in rows:
        print(f"{name.ljust(w)}  {val:>10}  {target:<24} {'yes' if ok else 'NO'}")
    print(f"measured calibration {measured.calibration_id}: correction {tuple(round(c, 5) for c in measured.correction)}, "
          f"residual RMS {measured.residuals['rms']:.4f}; phantom scale {args.scale}; "
          f"total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
