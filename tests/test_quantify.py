"""Known-answer tests of cemrecon.quantify: synthetic arrays (fast) and phantom views (small scale)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cemrecon.quantify import (
    AnalyzeConfig,
    EnhancementConfig,
    UserRoi,
    analyze,
    bpe_category,
    load_rois,
    validate_rois,
)
from cemrecon.quantify.calcifications import (
    Speck,
    cluster_specks,
    detect_calcifications,
)
from cemrecon.quantify.enhancement import measure_enhancement


# ----------------------------------------------------------------------------- synthetic
def test_bpe_category_edges():
    # CEM extent scale: minimal < 10 %, mild 10-25 %, moderate 25-50 %, marked > 50 %
    assert [bpe_category(f) for f in (0.0, 0.0999, 0.10, 0.2499, 0.25, 0.4999, 0.5, 1.0)] == [
        "minimal", "minimal", "mild", "mild", "moderate", "moderate", "marked", "marked"]
    assert bpe_category(0.3, edges=(0.25, 0.5, 0.75)) == "mild"  # the MRI scale, configurable
    with pytest.raises(ValueError, match="3 increasing fractions"):
        bpe_category(0.3, edges=(0.5, 0.25, 0.75))


def _flat_iodine(shape=(200, 200), sigma=0.05, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, sigma, shape)


def test_enhancement_disc_on_flat_background():
    # a 1.0 mg/cm^2 disc (r = 4 mm) filling the ROI; white noise sigma 0.05 per pixel.
    # Smoothing (0.5 mm = 2.5 px sigma) leaves 0.05 / (2 sqrt(pi) 2.5) = 0.006 noise, so the 90th
    # percentile of the disc reads 1.0 within 0.05 (edge pixels of the disc blur down: the
    # percentile is taken in the box, whose core is the plateau).
    px = 0.2
    io = _flat_iodine()
    rr, cc = np.mgrid[:200, :200]
    io[np.hypot(rr - 100, cc - 100) * px < 4.0] += 1.0
    res = measure_enhancement(io, (84, 84, 117, 117), breast_mask=np.ones(io.shape, bool),
                              calc_mask=None, pixel_mm=px)
    assert (res.enhancement, res.reason) == ("enhancement", "above_local_background")
    assert res.iodine_excess_mg_cm2 == pytest.approx(1.0, abs=0.05)
    assert res.type == "mass"
    # the limit is 3 x the spread of background windows: noise only, far below the threshold
    assert res.detectability_limit_mg_cm2 < 0.05


def test_site_excess_noise_bias_is_removed_on_flat_and_on_peaked_boxes():
    # The site statistic is a 90th percentile, which noise pushes up.  On a flat box the push is
    # the background's own P90 offset; on a box holding a lesion profile it is smaller (the
    # percentile sits on the profile's slope), and subtracting the flat offset there biased
    # faint lesions low (SIMEX estimate, step 6).  Known answer: P90 over the box of the
    # noise-free map filtered as the method filters (0.5 mm = 2.5 px Gaussian G, then the
    # first-order deconvolution 2 G - G * G of step 3).
    # Noise: white, 0.3 mg/cm^2 per 0.2 mm pixel -> 0.3 / (2 sqrt(pi) 2.5) = 0.034 after
    # smoothing, x sqrt(11/6) = 0.046 after the deconvolution (correlation area ~79 px, so the
    # 625 px box holds ~8 independent samples); SD of a P90 from 8 samples =
    # sqrt(0.09 / 8) / phi(1.28) x 0.046 = 0.028 per seed, 0.007 for the mean of 16 seeds;
    # 3 x 0.007 + 0.005 for the lesion's tail in the ring lifting the fitted plane (Gaussian
    # 1.5 mm sigma, ring from ~4 mm out: < 0.02 x peak) -> tolerance 0.026.  The old
    # flat-offset correction sits 1.28 x 0.046 - (the peaked box's smaller push) ~ 0.05 low:
    # outside it.
    from scipy import ndimage as ndi

    px, n, c = 0.2, 300, 150
    rr, cc = np.mgrid[:n, :n]
    lesion = 0.5 * np.exp(-0.5 * ((rr - c) ** 2 + (cc - c) ** 2) / (1.5 / px) ** 2)
    box = (c - 12, c - 12, c + 13, c + 13)  # 5 mm
    g = ndi.gaussian_filter(lesion, 2.5)
    ref = float(np.percentile((2 * g - ndi.gaussian_filter(g, 2.5))[box[0]:box[2], box[1]:box[3]],
                              90))
    bm = np.ones((n, n), bool)
    peaked, flat = [], []
    for seed in range(16):
        noise = _flat_iodine((n, n), sigma=0.3, seed=100 + seed)
        peaked.append(measure_enhancement(lesion + noise, box, breast_mask=bm, calc_mask=None,
                                          pixel_mm=px).iodine_excess_mg_cm2)
        flat.append(measure_enhancement(noise, box, breast_mask=bm, calc_mask=None,
                                        pixel_mm=px).iodine_excess_mg_cm2)
    assert np.mean(peaked) == pytest.approx(ref, abs=0.026)
    assert np.mean(flat) == pytest.approx(0.0, abs=0.02)


@pytest.mark.parametrize("s_mm", [1.0, 1.5, 2.5])
def test_site_excess_is_not_lowered_by_the_smoothing(s_mm):
    # A noise-free Gaussian lesion (peak 0.5 mg/cm^2, SD s) read at the 90th percentile of its
    # 5 mm box.  Smoothing with G (sigma 0.5 mm) lowers the profile by the factor
    # s^2 / (s^2 + sigma^2) at the top: u = sigma^2 / s^2 = 0.25 / 0.11 / 0.04 -> 20 / 10 / 4 %
    # low.  The first-order deconvolution 2 G - G * G leaves 1 - 2 / (1 + u) + 1 / (1 + 2 u)
    # (~ 2 u^2 for small u): 6.7 / 1.8 / 0.3 %.  Tolerance: that residual of the peak (0.033 /
    # 0.009 / 0.0015 mg/cm^2) + 0.006 for the plane fitted to the lesion's tail in the ring
    # (the ring starts 1 mm outside the half-height region; the Gaussian there is < 2 % of the
    # peak for s <= 1.5, < 6 % x 1/5 of it across the plane's median for s = 2.5).  Without the
    # deconvolution the read is low by more than half of the smoothing loss (checks that the
    # test can fail).
    px, n, c = 0.2, 300, 150
    rr, cc = np.mgrid[:n, :n]
    lesion = 0.5 * np.exp(-0.5 * ((rr - c) ** 2 + (cc - c) ** 2) / (s_mm / px) ** 2)
    box = (c - 12, c - 12, c + 13, c + 13)  # 5 mm
    truth = float(np.percentile(lesion[box[0]:box[2], box[1]:box[3]], 90))
    u = 0.5 ** 2 / s_mm ** 2
    kw = dict(breast_mask=np.ones((n, n), bool), calc_mask=None, pixel_mm=px)
    got = measure_enhancement(lesion, box, **kw).iodine_excess_mg_cm2
    assert got == pytest.approx(truth, abs=0.5 * (1 - 2 / (1 + u) + 1 / (1 + 2 * u)) + 0.006)
    plain = measure_enhancement(lesion, box, config=EnhancementConfig(site_deconvolve=False),
                                **kw).iodine_excess_mg_cm2
    assert truth - plain > 0.5 * truth * u / (1 + u)


@pytest.mark.parametrize("s_mm", [1.0, 1.5])
def test_site_excess_undoes_the_blur_the_map_already_carries(s_mm):
    # The iodine map is made from signals smoothed at 0.5 mm FWHM (m = 0.21 mm SD), and the
    # analysis smooths again (a = 0.5 mm): the lesion is seen through a Gaussian of SD
    # t = sqrt(a^2 + m^2) = 0.54 mm.  Told the map's blur (map_blur_mm), the first-order
    # deconvolution uses t and leaves 1 - 2 / (1 + u) + 1 / (1 + 2 u) of the peak, u = (t / s)^2
    # (7.6 / 2.1 % for s = 1 / 1.5 mm), + 0.006 for the plane on the lesion's tail (as in the
    # test above).  Not told, it deconvolves with a: the peak of 2 y - G_k y (y = G_t f) is
    # P s^2 (2 / (s^2 + t^2) - 1 / (s^2 + t^2 + k^2)), so it reads lower by
    # P s^2 (1 / (s^2 + t^2 + a^2) - 1 / (s^2 + 2 t^2)) (0.009 / 0.005 mg/cm^2); at least half
    # of that is asked (the test can fail).
    from scipy import ndimage as ndi

    px, n, c = 0.2, 300, 150
    m_mm = 0.5 / 2.3548
    rr, cc = np.mgrid[:n, :n]
    lesion = 0.5 * np.exp(-0.5 * ((rr - c) ** 2 + (cc - c) ** 2) / (s_mm / px) ** 2)
    box = (c - 12, c - 12, c + 13, c + 13)
    truth = float(np.percentile(lesion[box[0]:box[2], box[1]:box[3]], 90))
    blurred = ndi.gaussian_filter(lesion, m_mm / px)
    kw = dict(breast_mask=np.ones((n, n), bool), calc_mask=None, pixel_mm=px)

    def residual(sigma_mm):
        u = (sigma_mm / s_mm) ** 2
        return 1 - 2 / (1 + u) + 1 / (1 + 2 * u)

    told = measure_enhancement(blurred, box, map_blur_mm=m_mm, **kw).iodine_excess_mg_cm2
    t_mm = float(np.hypot(0.5, m_mm))
    assert told == pytest.approx(truth, abs=0.5 * residual(t_mm) + 0.006)
    untold = measure_enhancement(blurred, box, **kw).iodine_excess_mg_cm2
    s2, t2, a2 = s_mm ** 2, t_mm ** 2, 0.25
    assert told - untold > 0.5 * 0.5 * s2 * (1 / (s2 + t2 + a2) - 1 / (s2 + 2 * t2))
    with pytest.raises(ValueError, match="map_blur_mm"):
        measure_enhancement(blurred, box, map_blur_mm=-1.0, **kw)


@pytest.mark.parametrize("s_mm", [1.5, 2.5])
def test_calcifications_on_a_lesion_top_are_filled_not_just_cut_out(s_mm):
    # Six 0.4 mm specks (-0.7 mg/cm^2 on RC) within 1 mm of the top of a Gaussian lesion (peak
    # 0.5, SD s), as a cluster sits in its enhancing DCIS; dilated by 2 px they cover 20 % of
    # the 5 mm box, its brightest part.  Cut out, the 90th percentile falls to the lesion's
    # flank: the Gaussian at the holes' rim (~1.2 mm) is exp(-0.5 (1.2 / s)^2) = 73 / 89 % of
    # the peak.  Filled with a quadratic fitted to the rim, the top comes back up to the
    # quadratic's error over the hole: the Gaussian's fourth-order term, (r / s)^4 / 8 of the
    # peak at the hole's ~1 mm half-width = 2.5 / 0.3 % (0.012 / 0.002 mg/cm^2), plus the
    # smoothing's reach into that error; tolerance 0.03 / 0.01.  The reference is the same
    # lesion without calcifications, read the same way.
    px, n, c = 0.2, 300, 150
    rr, cc = np.mgrid[:n, :n]
    lesion = 0.5 * np.exp(-0.5 * ((rr - c) ** 2 + (cc - c) ** 2) / (s_mm / px) ** 2)
    calc = np.zeros((n, n), bool)
    for dy, dx in ((-3, -2), (2, 3), (0, -5), (4, -1), (-4, 4), (1, 1)):
        calc[c + dy:c + dy + 2, c + dx:c + dx + 2] = True
    io = lesion.copy()
    io[calc] -= 0.7
    box = (c - 12, c - 12, c + 13, c + 13)
    kw = dict(breast_mask=np.ones((n, n), bool), pixel_mm=px)
    ref = measure_enhancement(lesion, box, calc_mask=None, **kw).iodine_excess_mg_cm2
    filled = measure_enhancement(io, box, calc_mask=calc, **kw).iodine_excess_mg_cm2
    cut = measure_enhancement(io, box, calc_mask=calc, config=EnhancementConfig(calc_fill=False),
                              **kw).iodine_excess_mg_cm2
    assert filled == pytest.approx(ref, abs=0.03 if s_mm < 2 else 0.01)
    assert ref - cut > 2 * (ref - filled) and ref - cut > 0.04


def test_no_enhancement_on_flat_background_and_calcifications_excluded():
    px = 0.2
    io = _flat_iodine(seed=1)
    calc = np.zeros(io.shape, bool)
    calc[95:97, 95:97] = True
    calc[103:105, 101:103] = True
    io[calc] = -0.7  # calcifications read as negative iodine on RC (physics.md section 7)
    res = measure_enhancement(io, (88, 88, 112, 112), breast_mask=np.ones(io.shape, bool),
                              calc_mask=calc, pixel_mm=px)
    assert (res.enhancement, res.reason) == ("no_enhancement", "below_threshold")
    # with the specks excluded the site reads as background: |excess| within 4 noise sigmas of
    # the smoothed map's 90th percentile spread (~0.01: 0.006 smoothed noise)
    assert abs(res.iodine_excess_mg_cm2) < 0.04


def test_roi_outside_the_breast_is_indeterminate_with_no_background():
    io = _flat_iodine(seed=4)
    breast = np.zeros(io.shape, bool)
    breast[:, :100] = True
    res = measure_enhancement(io, (90, 150, 110, 170), breast_mask=breast, calc_mask=None,
                              pixel_mm=0.2)
    assert (res.enhancement, res.reason) == ("indeterminate", "no_background")
    assert res.to_dict()["iodine_excess_mg_cm2"] is None  # not measured: null, not a number


def test_textured_background_is_indeterminate_never_no_enhancement():
    # BPE-like texture: 2 mm blobs of +-0.6 mg/cm^2; a weak 0.2 mg/cm^2 lesion is masked
    from scipy import ndimage as ndi

    rng = np.random.default_rng(2)
    px = 0.2
    tex = ndi.gaussian_filter(rng.standard_normal((300, 300)), 2.0 / px)
    io = 0.6 * tex / tex.std()
    io[140:160, 140:160] += 0.2
    res = measure_enhancement(io, (138, 138, 162, 162), breast_mask=np.ones(io.shape, bool),
                              calc_mask=None, pixel_mm=px)
    assert res.detectability_limit_mg_cm2 > 0.3
    assert (res.enhancement, res.reason) == ("indeterminate", "background_too_variable")


def test_distant_bpe_patches_do_not_make_a_clean_site_indeterminate():
    # A non-enhancing site judged against its own surroundings: bright 1.5 mg/cm^2 patches (BPE)
    # lie >= 9 mm from the box (>= 15 mm from its centre), beyond the local ring (1-6 mm) and
    # the 10 mm neighbourhood of the spread rule, which hold noise only.  The smoothed noise is
    # 0.05 / (2 sqrt(pi) 2.5) = 0.006, so the limit (3 robust SDs, or the ring's 90th-percentile
    # residual) stays far below 0.1 and a threshold-level enhancement would show.
    px = 0.2
    io = _flat_iodine((300, 300), seed=4)
    rr, cc = np.mgrid[:300, :300]
    for r0, c0 in ((60, 60), (60, 240), (240, 60), (240, 240), (150, 40), (40, 150)):
        io[np.hypot(rr - r0, cc - c0) * px < 4.0] += 1.5
    res = measure_enhancement(io, (135, 135, 165, 165), breast_mask=np.ones(io.shape, bool),
                              calc_mask=None, pixel_mm=px, bpe_category="moderate")
    assert res.enhancement == "no_enhancement"
    assert res.detectability_limit_mg_cm2 < 0.1
    assert abs(res.iodine_excess_mg_cm2) < 0.04  # 4 x the ~0.01 spread of a 90th percentile


def test_bpe_within_ten_mm_blocks_no_enhancement():
    # The local ring (1-6 mm from a 3 mm box, i.e. out to 7.5 mm from its centre) holds noise
    # only, but an annulus of 0.5 mg/cm^2 BPE lies 8.5-10 mm from the centre: 28 % of the 10 mm
    # neighbourhood, so its 90th percentile reads 0.5 and its 10th ~0 (smoothed noise 0.006):
    # spread 0.5 >= 0.3, a threshold-level enhancement would be no brighter than tissue a reader
    # compares the site with -> indeterminate (never no_enhancement).  Without the annulus the
    # same noise gives no_enhancement.  0.5 mm smoothing spreads the annulus edge by ~1 mm (2
    # sigma: < 3 % of 0.5 at 7.5 mm), so the local limit stays below 0.1 in both cases.
    px = 0.2
    quiet = _flat_iodine((300, 300), seed=6)
    rr, cc = np.mgrid[:300, :300]
    d_mm = np.hypot(rr - 150, cc - 150) * px
    bpe = quiet + np.where((d_mm >= 8.5) & (d_mm <= 10.0), 0.5, 0.0)
    box = (143, 143, 158, 158)  # 3 mm, centred on (150, 150)
    kw = {"breast_mask": np.ones(quiet.shape, bool), "calc_mask": None, "pixel_mm": px}
    clean = measure_enhancement(quiet, box, **kw)
    masked = measure_enhancement(bpe, box, **kw)
    assert clean.enhancement == "no_enhancement"
    assert masked.enhancement == "indeterminate"
    assert masked.detectability_limit_mg_cm2 < 0.1  # the ring alone would have said "no"
    assert abs(masked.iodine_excess_mg_cm2) < 0.04


def test_enhancement_larger_than_the_box_is_not_its_own_background():
    # a 0.8 mg/cm^2 disc of radius 10 mm around a 6 mm box: the ring around the box alone would
    # sit on the disc (excess ~0); the grown region (half height) is excluded and the ring lies
    # outside it, so the excess reads the disc level within 0.05 (smoothed noise ~0.003, the
    # 1 mm blur does not reach the box 7 mm inside the edge)
    px = 0.2
    io = _flat_iodine((300, 300), seed=5)
    rr, cc = np.mgrid[:300, :300]
    io[np.hypot(rr - 150, cc - 150) * px < 10.0] += 0.8
    res = measure_enhancement(io, (135, 135, 165, 165), breast_mask=np.ones(io.shape, bool),
                              calc_mask=None, pixel_mm=px)
    assert res.enhancement == "enhancement"
    assert res.iodine_excess_mg_cm2 == pytest.approx(0.8, abs=0.05)
    assert res.type == "mass"


def _gland_scene(seed, px=0.2, n=300):
    """A textured gland (LE glandular index, 1 mm correlation length, denser under the centre) on
    an n x n grid, white iodine noise SD 0.05, and three enhancements around the centre: a BPE-like
    patch (iodine 1.6 x the glandular index where the gland exceeds 0.6, within 12 mm: BPE scales
    with the glandular path), a lesion with its own pattern (a flat 1.0 mg/cm^2 cross, 4 x 20 mm
    arms: non-mass) and an 8 mm dome (chord profile, peak 1).  Returns (noise, gland, patch,
    cross, dome, a 4 mm box on the centre, measure_enhancement keywords: whole image breast and
    FGT, view BPE brightness 1.5 mg/cm^2)."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    io = rng.normal(0.0, 0.05, (n, n))
    rr, cc = np.mgrid[:n, :n]
    d_mm = np.hypot(rr - n // 2, cc - n // 2) * px
    f = ndi.gaussian_filter(rng.normal(size=io.shape), 1.0 / px)
    f = f / f.std() + 2.0 * np.exp(-0.5 * (d_mm / 2.0) ** 2)
    gland = np.clip(0.5 + 0.2 * f, 0.0, 1.0)
    patch = 1.6 * gland * ((gland > 0.6) & (d_mm < 12.0))
    ar, ac = np.abs(rr - n // 2) * px, np.abs(cc - n // 2) * px
    cross = ((ar < 2.0) & (ac < 10.0)) | ((ac < 2.0) & (ar < 10.0))
    dome = np.sqrt(np.clip(1 - (d_mm / 4.0) ** 2, 0, 1))
    c = n // 2
    kw = {"breast_mask": np.ones(io.shape, bool), "calc_mask": None, "pixel_mm": px,
          "masking_level_mg_cm2": 1.5, "fgt_mask": np.ones(io.shape, bool)}
    return io, gland, patch, cross.astype(float), dome, (c - 10, c - 10, c + 10, c + 10), kw


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("level", ["moderate", "mild"])
def test_masking_model_tells_a_bpe_like_patch_from_a_lesion(seed, level):
    # BPE is enhancement *of* FGT: its iodine follows the LE gland texture (here r ~ 0.95 over
    # the patch, coarse and 2 mm fine texture alike, seeds 0-3), so the masking model calls the
    # patch masked in a mild view as in a moderate one.  A lesion's iodine follows its own
    # pattern (the cross: |r| <= 0.3, seeds 0-3): enhancement.  Both reach the threshold and
    # their limit by far; only the model separates them, so switching it off or withholding the
    # glandular index (no texture evidence: the two correlation terms are 0) turns the patch
    # into an enhancement.  A masked site keeps its numbers and its masking probability.
    io, gland, patch, cross, _, box, kw = _gland_scene(seed)
    kw |= {"bpe_category": level}
    thr = EnhancementConfig().masking_probability
    lesion = measure_enhancement(io + cross, box, glandular_index=gland, **kw)
    assert (lesion.enhancement, lesion.type) == ("enhancement", "nme")
    assert lesion.masking_probability < thr
    bpe = measure_enhancement(io + patch, box, glandular_index=gland, **kw)
    assert (bpe.enhancement, bpe.reason, bpe.type) == ("indeterminate", "bpe_like", None)
    assert bpe.masking_probability >= thr
    assert bpe.masking_terms["gland_corr_fine"] > 0.8
    assert bpe.iodine_excess_mg_cm2 > 1.0  # well above threshold: masked, not faint
    off = measure_enhancement(io + patch, box, glandular_index=gland,
                              config=EnhancementConfig(masking_check=False), **kw)
    assert off.enhancement == "enhancement"
    assert off.masking_probability == pytest.approx(bpe.masking_probability)
    no_texture = measure_enhancement(io + patch, box, **kw)
    assert no_texture.enhancement == "enhancement"
    assert no_texture.masking_terms["gland_corr"] == no_texture.masking_terms["gland_corr_fine"] == 0


@pytest.mark.parametrize("seed", [0, 1])
def test_masking_model_does_not_take_a_region_in_fat_for_bpe(seed):
    # The same gland-following patch, but the LE FGT mask is empty under it: an enhancement in
    # fatty tissue cannot be BPE (fraction on FGT 0: the model's strongest term), enhancement.
    io, gland, patch, _, _, box, kw = _gland_scene(seed)
    kw |= {"bpe_category": "moderate", "fgt_mask": np.zeros(io.shape, bool)}
    res = measure_enhancement(io + patch, box, glandular_index=gland, **kw)
    assert res.masking_terms["logit_on_fgt"] < -4  # log(0.01 / 1.01)
    assert res.enhancement == "enhancement"


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_masking_model_keeps_a_mass_that_is_dense_on_le(seed):
    # An 8 mm mass (1.6 mg/cm^2 dome) that displaces fat with gland-like tissue: its LE glandular
    # index rises by 0.4 x the same dome, so the *coarse* iodine-gland correlation is high, as for
    # BPE (r 0.64-0.80, seeds 0-3, checked > 0.5); the fine 2 mm texture of the dome is not the
    # gland's (r <= 0.53), and one compact blob fits it (residual ~3 % of its peak).  In a moderate
    # view whose BPE reaches 1.5 mg/cm^2 it stays an enhancing mass.
    io, gland, _, _, dome, box, kw = _gland_scene(seed)
    res = measure_enhancement(io + 1.6 * dome, box, bpe_category="moderate",
                              glandular_index=np.clip(gland + 0.4 * dome, 0, 1), **kw)
    assert res.masking_terms["gland_corr"] > 0.5
    assert (res.enhancement, res.type) == ("enhancement", "mass")


@pytest.mark.parametrize(("iterations", "expected"), [(1, 0.905), (2, 0.946), (3, 0.964)])
def test_van_cittert_restores_a_line_by_its_transfer_function(iterations, expected):
    # A Gaussian line of SD s under a Gaussian smoothing of SD sigma keeps (1 + u)^-1/2 of its
    # peak (u = (sigma / s)^2); n Van Cittert iterations give 1 - (1 - g)^(n + 1) in frequency,
    # i.e. sum_k (-1)^k C(n + 1, k + 1) (1 + (k + 1) u)^-1/2 at the peak: s = 0.64 mm (1.5 mm
    # FWHM), sigma = 0.5 mm -> 0.905, 0.946, 0.964.  Tolerance: the 0.1 mm sampling, 0.002.
    from scipy import ndimage as ndi

    from cemrecon.quantify.enhancement import _deconvolve_van_cittert

    x = np.arange(-100, 101) * 0.1
    line = np.tile(np.exp(-0.5 * (x / 0.64) ** 2), (60, 1))
    sm = ndi.gaussian_filter(line, 5.0)
    assert _deconvolve_van_cittert(sm, 5.0, iterations)[30, 100] == pytest.approx(expected, abs=0.002)


@pytest.mark.parametrize("seed", [0, 1])
def test_gland_ratio_is_one_over_bpe_and_high_over_a_lesion(seed):
    # BPE = concentration x glandular path: iodine / glandular index is the same over a BPE site
    # as over the enhancing FGT around it (ratio 1 within the texture's scatter: noise 0.05 on
    # ~0.5 mg/cm^2, so the medians of hundreds of pixels agree to a few %; 0.85-1.15 allowed).
    # An 8 mm mass (1.6 mg/cm^2 dome displacing fat with gland-like tissue, +0.4 x the dome on
    # the index) on the same BPE carries far more iodine per unit of LE density: at its top
    # (1.6 + 0.8 g) / (g + 0.4) over 0.8 is ~2.6 for g ~ 0.6; > 2 asserted.  No enhancing FGT
    # beyond 10 mm: no reference (NaN), and the model's terms say so.
    from cemrecon.quantify.enhancement import _gland_ratio

    px, n = 0.2, 181
    rng = np.random.default_rng(seed)
    from scipy import ndimage as ndi

    tex = ndi.gaussian_filter(rng.normal(size=(n, n)), 1.0 / px)
    gland = np.clip(0.6 + 0.15 * (tex - tex.mean()) / tex.std(), 0.2, 1.0)
    bpe = 0.8 * gland + rng.normal(0.0, 0.05, (n, n))
    rr, cc = np.mgrid[:n, :n]
    c = n // 2
    d_mm = np.hypot(rr - c, cc - c) * px
    dome = np.sqrt(np.clip(1 - (d_mm / 4.0) ** 2, 0, 1))
    site = np.zeros((n, n), bool)
    site[c - 10:c + 10, c - 10:c + 10] = True
    far = d_mm > 10.0
    fgt = np.ones((n, n), bool)
    cfg = EnhancementConfig()
    q = cfg.site_percentile
    on_bpe = _gland_ratio(bpe, gland, fgt, site, far, q, cfg)
    assert 0.85 <= on_bpe <= 1.15
    lesion = _gland_ratio(bpe + 1.6 * dome, np.clip(gland + 0.4 * dome, 0, 1), fgt, site, far, q, cfg)
    assert lesion > 2.0
    quiet = np.where(far, rng.normal(0.0, 0.02, (n, n)), bpe + 1.6 * dome)
    assert np.isnan(_gland_ratio(quiet, gland, fgt, site, far, q, cfg))
    assert np.isnan(_gland_ratio(bpe, None, fgt, site, far, q, cfg))


@pytest.mark.parametrize("seed", range(6))
def test_clustered_nme_whose_clumps_fill_the_ring_is_enhancement(seed):
    # A clustered NME: 14 clumps (hemispherical profile 0.9 mg/cm^2, radius 3 mm) within 14 mm
    # of the site, on a flat background.  The ring around the site's own clump lies on the other
    # clumps, so the local limit can exceed the local excess (seed 4: 0.04 against 1.13, was
    # indeterminate); the site then stands out of the breast's windows by ~0.8 mg/cm^2.
    # Known answer: P90 over the 6.2 mm box of a clump centred in it = the profile at the radius
    # holding 10 % of the box (1.1 mm): 0.9 sqrt(1 - (1.1 / 3)^2) = 0.84, less ~0.03 from the
    # 0.5 mm smoothing of the dome -> 0.81; white noise 0.05 -> 0.006 after smoothing; +-0.06.
    px, n, c = 0.2, 400, 200
    rr, cc = np.mgrid[:n, :n]
    rng = np.random.default_rng(seed)
    io = rng.normal(0.0, 0.05, (n, n))
    clumps = np.zeros((n, n))
    centres = [(c, c)]
    while len(centres) < 14:
        ang, rad = rng.uniform(0, 2 * np.pi), rng.uniform(4.0, 14.0) / px
        centres.append((c + rad * np.sin(ang), c + rad * np.cos(ang)))
    for y, x in centres:
        r_mm = np.hypot(rr - y, cc - x) * px
        clumps = np.maximum(clumps, 0.9 * np.sqrt(np.clip(1 - (r_mm / 3.0) ** 2, 0, 1)))
    res = measure_enhancement(io + clumps, (c - 15, c - 15, c + 16, c + 16),
                              breast_mask=np.ones((n, n), bool), calc_mask=None, pixel_mm=px)
    assert (res.enhancement, res.type) == ("enhancement", "nme")
    assert res.iodine_excess_mg_cm2 == pytest.approx(0.81, abs=0.06)
    if seed == 4:  # the case the ring alone could not judge
        assert res.reason == "above_breast_background"


def _dome_scene(seed, n=300, px=0.2):
    """An 8 mm dome (chord profile, peak 1) centred on an n x n grid of 0.2 mm pixels, white noise
    SD 0.05: (rng, noise, row and column offsets from the centre in mm, dome,
    measure_enhancement keywords, a 5 mm box on the centre)."""
    c = n // 2
    rr, cc = np.mgrid[:n, :n]
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 0.05, (n, n))
    dy, dx = (rr - c) * px, (cc - c) * px
    dome = np.sqrt(np.clip(1 - (np.hypot(dy, dx) / 4.0) ** 2, 0, 1))
    kw = {"breast_mask": np.ones((n, n), bool), "calc_mask": None, "pixel_mm": px}
    return rng, noise, dy, dx, dome, kw, (c - 12, c - 12, c + 13, c + 13)


@pytest.mark.parametrize("seed", [0, 3])
def test_mass_touched_by_a_strand_is_typed_by_its_blob_fit(seed):
    # An 8 mm dome (1.6 mg/cm^2 chord profile) touched by a 1.5 mm x 10 mm strand of 1.2 mg/cm^2
    # (a BPE strand or duct).  After the 0.5 mm smoothing the strand keeps ~80 % (0.96), above the
    # half-height level (~0.78), so the half-height region is a disc with a tail: not convex
    # (shape rule alone: nme, checked).  The compact-blob model fits the dome with an RMS
    # residual of ~6 % of its amplitude (8 seeds: 0.062-0.067; the model's edge differs from the
    # blurred chord edge, and the strand's root lies inside the ellipse), below the 8 % of
    # ``blob_fit_accept``: a mass.
    _, io, dy, dx, dome, kw, box = _dome_scene(seed)
    strand = (np.hypot(dy, dx) > 3.8) & (np.abs(dy) < 0.75) & (dx > 0) & (dx < 14)
    im = io + 1.6 * dome + 1.2 * strand
    shape_only = EnhancementConfig(blob_fit=False)
    assert measure_enhancement(im, box, config=shape_only, **kw).type == "nme"
    res = measure_enhancement(im, box, **kw)
    assert (res.enhancement, res.type) == ("enhancement", "mass")


@pytest.mark.parametrize("seed", [0, 2])
def test_compact_but_textured_plateau_is_not_a_mass(seed):
    # An 8 x 8 mm plateau of 1.0 mg/cm^2 carrying a gland-like texture (1 mm correlation length,
    # SD 0.3: a BPE patch).  Its half-height region is the square (solidity 1, ellipse fill 0.95:
    # shape rule alone says mass, checked), but no compact blob fits it: RMS residual ~0.2 of the
    # amplitude (seeds 0-7: 0.13-0.29; seed 1's fit absorbs part of the texture), above the 15 %
    # of ``blob_fit_reject``: nme.
    from scipy import ndimage as ndi

    rng, io, dy, dx, _, kw, box = _dome_scene(seed)
    square = (np.abs(dy) < 4) & (np.abs(dx) < 4)
    tex = ndi.gaussian_filter(rng.normal(size=io.shape), 1.0 / kw["pixel_mm"])
    im = io + square * (1.0 + 0.3 * tex / tex.std())
    shape_only = EnhancementConfig(blob_fit=False)
    assert measure_enhancement(im, box, config=shape_only, **kw).type == "mass"
    res = measure_enhancement(im, box, **kw)
    assert (res.enhancement, res.type) == ("enhancement", "nme")


@pytest.mark.parametrize(("kw", "match"), [
    ({"blob_fit_loss": "l2"}, "blob_fit_loss must be one of"),
    ({"blob_fit_exponent": (3.0, 0.2)}, "blob_fit_exponent must be"),
    ({"threshold_mg_cm2": 0.0}, "threshold_mg_cm2 must be > 0"),
    ({"masking_weights": (1.0, 2.0)}, "masking_weights must be 12 finite numbers"),
    ({"masking_weights": (float("nan"),) * 12}, "masking_weights must be 12 finite numbers"),
    ({"masking_probability": 1.0}, r"masking_probability must be in \(0, 1\)"),
    ({"site_deconvolve_iterations": 0}, "site_deconvolve_iterations and gland_ratio_min_px"),
    ({"gland_ratio_min_px": 0}, "site_deconvolve_iterations and gland_ratio_min_px"),
])
def test_enhancement_config_rejects_bad_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        EnhancementConfig(**kw)


def test_nme_wedge_is_not_a_mass():
    # a wedge (triangle) of enhancement: convex but not elliptical (ellipse fill 0.83 < 0.9)
    px = 0.2
    io = _flat_iodine((300, 300), seed=3)
    rr, cc = np.mgrid[:300, :300]
    wedge = (cc > 80) & (cc < 220) & (np.abs(rr - 150) < (cc - 80) * 0.45)
    io[wedge] += 1.0
    res = measure_enhancement(io, (130, 150, 170, 190), breast_mask=np.ones(io.shape, bool),
                              calc_mask=None, pixel_mm=px)
    assert res.enhancement == "enhancement"
    assert res.type == "nme"


def test_masking_truth_rule_from_the_bpe_around_the_site():
    # Phantom truth (cemrecon.phantom.lesions.site_bpe_masking): a site is masked when the
    # noise-free BPE within 10 mm spans >= 0.3 mg/cm^2 between its 10th and 90th percentiles.
    # 0.1 mm pixels; a 10 mm disk holds ~31 400 pixels, so the percentiles of a two-level map are
    # exact and the spread is the level difference (or 0) to float precision.
    from cemrecon.phantom.lesions import site_bpe_masking

    px = 0.1
    rr, cc = np.indices((401, 401))
    centre = (200.0, 200.0)
    flat = np.full((401, 401), 0.8)  # uniform strong BPE: no texture, a bump would show
    assert site_bpe_masking(flat, centre, pixel_mm=px) == (False, 0.0)
    half = np.where(cc >= 200, 0.5, 0.0)  # half of the neighbourhood enhances by 0.5
    masked, spread = site_bpe_masking(half, centre, pixel_mm=px)
    assert masked and spread == pytest.approx(0.5, abs=1e-9)
    faint = np.where(cc >= 200, 0.2, 0.0)  # BPE texture of 0.2 cannot hide 0.3
    masked, spread = site_bpe_masking(faint, centre, pixel_mm=px)
    assert not masked and spread == pytest.approx(0.2, abs=1e-9)
    # a bright patch 15 mm away is outside the 10 mm neighbourhood: not masking
    far = np.where(np.hypot(rr - 200, cc - 350) * px <= 3.0, 1.0, 0.0)
    assert site_bpe_masking(far, centre, pixel_mm=px) == (False, 0.0)
    # only the breast counts: the same half map with the enhancing half outside the breast
    masked, spread = site_bpe_masking(half, centre, pixel_mm=px, breast_mask=cc < 200)
    assert not masked and spread == 0.0


def test_speck_detection_and_birads_grouping():
    rng = np.random.default_rng(0)
    px = 0.1
    le = rng.normal(3000.0, 15.0, (300, 300))  # ln noise 0.005 per pixel
    pos = [(140, 140), (146, 152), (152, 141), (158, 156), (150, 165), (135, 160)]
    for r, c in pos:
        le[r:r + 2, c:c + 2] *= 0.85  # 0.2 mm speck, d ln LE = -0.16 (physics.md: -0.28..-0.49)
    le[40:42, 40:42] *= 0.85  # an isolated speck is not a cluster
    res = detect_calcifications(le, np.ones(le.shape, bool), pixel_mm=px)
    assert len(res.specks) == 7
    assert len(res.clusters) == 1
    cl = res.clusters[0]
    assert cl.n_calcifications == 6
    r0, c0, r1, c1 = cl.bbox
    assert r0 <= 135 and c0 <= 140 and r1 >= 160 and c1 >= 167  # box holds every speck


def test_grouping_rule_needs_five_within_one_centimetre():
    def sp(r, c):
        return Speck(row=r, col=c, area_px=4, diameter_mm=0.2, contrast=10.0)

    four = [sp(100, 100 + 10 * k) for k in range(4)]
    assert cluster_specks(four, pixel_mm=0.1, shape=(500, 500)) == []
    spread = [sp(100, 100 + 150 * k) for k in range(5)]  # 15 mm apart
    assert cluster_specks(spread, pixel_mm=0.1, shape=(500, 1000)) == []
    five = four + [sp(110, 120)]
    assert len(cluster_specks(five, pixel_mm=0.1, shape=(500, 500))) == 1


# ----------------------------------------------------------------------------- user ROIs
def test_validate_rois_accepts_and_normalises():
    rois = validate_rois([{"laterality": "r", "view": "cc", "bbox": [1, 2, 30, 40]},
                          {"laterality": "L", "view": "MLO", "bbox": [0, 0, 5, 5],
                           "study_uid": "1.2.3"}])
    assert rois[0] == UserRoi("R", "CC", (1, 2, 30, 40))
    assert rois[1].study_uid == "1.2.3"


@pytest.mark.parametrize("obj, match", [
    ({"laterality": "R"}, "top level must be a JSON list"),
    ([{"laterality": "R", "view": "CC"}], r"ROI #0: missing field 'bbox'"),
    ([{"laterality": "X", "view": "CC", "bbox": [0, 0, 1, 1]}], r"ROI #0: field 'laterality'.*'X'"),
    ([{"laterality": "R", "view": "CC", "bbox": [0, 0, 1]}], r"field 'bbox' must be a list of 4"),
    ([{"laterality": "R", "view": "CC", "bbox": [5, 0, 1, 1]}], r"row0 < row1"),
    ([{"laterality": "R", "view": "CC", "bbox": [0, 0, 1, 1], "colour": 1}], r"unknown field"),
])
def test_validate_rois_errors(obj, match):
    with pytest.raises(ValueError, match=match):
        validate_rois(obj, source="rois.json")


def test_load_rois_bad_json_names_file(tmp_path):
    p = tmp_path / "my_rois.json"
    p.write_text('[{"laterality": "R", "view": "CC", "bbox": [0, 0, 1, 1],}]')
    with pytest.raises(ValueError, match=r"my_rois\.json: not valid JSON \(line 1"):
        load_rois(p)
    p.write_text(json.dumps([{"laterality": "R", "view": "CC", "bbox": [0, 0, "a", 1]}]))
    with pytest.raises(ValueError, match=r"my_rois\.json: ROI #0: field 'bbox'"):
        load_rois(p)
    with pytest.raises(ValueError, match="cannot read"):
        load_rois(tmp_path / "missing.json")


def test_analyze_rejects_bad_inputs():
    le = np.full((50, 50), 1000, np.uint16)
    with pytest.raises(ValueError, match="pixel_mm must be a positive number"):
        analyze((le, le), iodine_mg_cm2=np.zeros((50, 50)))
    with pytest.raises(ValueError, match="iodine map shape"):
        analyze((le, le), iodine_mg_cm2=np.zeros((40, 50)), pixel_mm=0.1)
    with pytest.raises(TypeError, match="expects a Pair"):
        analyze(le, pixel_mm=0.1)


# ----------------------------------------------------------------------------- phantom
_NO_SCATTER = {"scatter_correction": "none"}  # simulate_view renders primary only


def _phantom(level, lesions, *, seed=11, scale=0.25):
    from cemrecon.phantom.exam import simulate_view

    return simulate_view(seed=seed, scale=scale, laterality="R", view="CC", bpe_level=level,
                         lesions=lesions)


_LESIONS = [
    {"type": "mass", "calcifications": "coarse_heterogeneous", "iodine_mg_cm2": 1.5,
     "diameter_mm": 12.0, "position": (0.45, -0.25, 0.0)},
    {"type": "calcifications", "enhancement": "none", "position": (0.45, 0.25, 0.0)},
    {"type": "calcifications", "enhancement": "weak", "weak_iodine_mg_cm2": 0.2,
     "position": (0.6, 0.0, 0.0)},
]


def _analyze_truth_rois(sim):
    rois = [UserRoi("R", "CC", tuple(les.calcification_bbox)) for les in sim.truth.lesions]
    res = analyze(sim, rois=rois, iodine_options=_NO_SCATTER,
                  config=AnalyzeConfig(detect_calcifications=False))
    return {les.id: (les, roi) for les, roi in zip(sim.truth.lesions, res.rois)}, res


@pytest.fixture(scope="module")
def minimal_view():
    sim = _phantom("minimal", _LESIONS)
    return sim, *_analyze_truth_rois(sim)


@pytest.fixture(scope="module")
def marked_view():
    sim = _phantom("marked", _LESIONS)
    return sim, *_analyze_truth_rois(sim)


def test_bpe_minimal_vs_marked(minimal_view, marked_view):
    # The phantom draws extents inside each band away from its edges (minimal 3-8 %, marked
    # 56-85 %), so the category must be exact.  The measured fraction may differ from the truth
    # by up to 0.1: 0.5 mm smoothing widens enhancing patches (~1 mm across at the field's 1 mm
    # smoothing) and the LE-based FGT mask differs from the phantom's at the 0.25 glandular edge.
    for sim, _, res in (minimal_view, marked_view):
        assert res.bpe.category == sim.truth.bpe_level
        assert res.bpe.enhancing_fraction == pytest.approx(sim.truth.enhancing_fraction, abs=0.1)
    assert minimal_view[2].bpe.mean_fgt_iodine_mg_cm2 < marked_view[2].bpe.mean_fgt_iodine_mg_cm2


def test_enhancing_cluster_called_enhancement(minimal_view):
    _, sites, _ = minimal_view
    les, roi = next(v for v in sites.values() if v[0].type == "mass")
    assert roi.enhancement == "enhancement"
    assert roi.type == "mass"
    # the site statistic (90th percentile, 1 mm smoothing) of a 1.5 mg/cm^2 ellipsoid (chord
    # profile) reads between half its peak and its peak plus one limit
    assert 0.5 * les.iodine_excess_mg_cm2 <= roi.iodine_excess_mg_cm2
    assert roi.iodine_excess_mg_cm2 <= les.iodine_excess_mg_cm2 + roi.detectability_limit_mg_cm2


def test_a_box_enclosing_the_site_does_not_blank_its_background(minimal_view):
    # A user ROI on the non-enhancing cluster, and a second 30 mm ROI enclosing it (a regional
    # group, or a reader's coarse box).  Other findings' boxes are not background; one that
    # overlaps the site is the same finding and must not take the site's ring and windows away
    # (it did: the site read "no_background").  The site keeps its call on its own.
    sim, sites, _ = minimal_view
    les, alone = next(v for v in sites.values() if v[0].type == "calcifications"
                      and v[0].expected_enhancement == "no_enhancement"
                      and v[0].iodine_excess_mg_cm2 == 0)
    r0, c0, r1, c1 = les.calcification_bbox
    half = round(15.0 / sim.pixel_mm)
    cy, cx = (r0 + r1) // 2, (c0 + c1) // 2
    big = (max(0, cy - half), max(0, cx - half), cy + half, cx + half)
    res = analyze(sim, rois=[UserRoi("R", "CC", (r0, c0, r1, c1)), UserRoi("R", "CC", big)],
                  iodine_options=_NO_SCATTER, config=AnalyzeConfig(detect_calcifications=False))
    assert alone.enhancement == "no_enhancement"
    assert (res.rois[0].enhancement, res.rois[0].reason) == (alone.enhancement, alone.reason)


def test_regional_calcifications_are_not_cluster_rois(minimal_view, monkeypatch):
    # BI-RADS grouped calcifications span <= 2 cm; a wider group is a regional distribution.
    # It stays in the detection result (flagged) but is neither judged as a cluster ROI nor
    # another site's exclusion box.
    import importlib

    from cemrecon.quantify.calcifications import CalcificationResult, Cluster, Speck

    sim, sites, _ = minimal_view
    mod = importlib.import_module("cemrecon.quantify.analyze")
    les = next(v[0] for v in sites.values() if v[0].type == "mass")
    r0, c0, r1, c1 = les.calcification_bbox
    specks = tuple(Speck(row=r0 + 2 + k, col=c0 + 2 + k, area_px=2, diameter_mm=0.2,
                         contrast=8.0) for k in range(5))
    grouped = Cluster(specks=specks, bbox=(r0, c0, r1, c1), extent_mm=1.0)
    half = round(20.0 / sim.pixel_mm)
    regional = Cluster(specks=specks, bbox=(max(0, r0 - half), max(0, c0 - half), r1 + half,
                                            c1 + half), extent_mm=35.0, regional=True)
    fake = CalcificationResult(specks=specks, clusters=(grouped, regional),
                               mask=np.zeros(sim.le.shape, bool))
    monkeypatch.setattr(mod, "detect_calcifications", lambda *a, **k: fake)
    res = analyze(sim, iodine_options=_NO_SCATTER)
    assert [tuple(r.bbox) for r in res.rois] == [grouped.bbox]
    assert res.rois[0].enhancement == "enhancement"
    assert res.calcifications.clusters == (grouped, regional)


def test_non_enhancing_cluster_minimal_bpe(minimal_view):
    _, sites, _ = minimal_view
    _, roi = next(v for v in sites.values() if v[0].expected_enhancement == "no_enhancement")
    assert roi.enhancement == "no_enhancement"
    assert roi.detectability_limit_mg_cm2 <= EnhancementConfig().threshold_mg_cm2


def test_weak_lesion_under_marked_bpe_is_indeterminate(marked_view):
    _, sites, _ = marked_view
    _, roi = next(v for v in sites.values() if v[0].expected_enhancement == "indeterminate")
    assert roi.enhancement != "no_enhancement"  # the study's point: never a false "no"
    assert roi.enhancement == "indeterminate"
    assert roi.detectability_limit_mg_cm2 > EnhancementConfig().threshold_mg_cm2


def test_segmentation_matches_phantom(marked_view):
    sim, _, res = marked_view
    seg, tr = res.segmentation, sim.truth
    # skin line: the thin rim (< 0.4 mm tissue) may be missed, nothing outside is taken
    assert (seg.breast_mask & ~tr.breast_mask).sum() == 0
    assert seg.breast_mask.sum() >= 0.97 * tr.breast_mask.sum()
    # FGT: most of the phantom's FGT found, little outside it
    inter = (seg.fgt_mask & tr.fgt_mask).sum()
    assert inter >= 0.6 * tr.fgt_mask.sum()
    assert inter >= 0.8 * seg.fgt_mask.sum()


def test_pectoral_muscle_excluded_on_mlo():
    from cemrecon.phantom.exam import simulate_view
    from cemrecon.quantify.breast import segment_breast

    sim = simulate_view(seed=5, scale=0.2, laterality="L", view="MLO", lesions=None)
    seg = segment_breast(sim.le, pixel_mm=sim.pixel_mm, view="MLO", dark_offset_dn=sim.dark_offset_dn)
    truth = sim.truth.pectoral_mask
    found = seg.pectoral_mask
    # the muscle share rises from 0 at the pectoral line (phantom): its first mm is ambiguous,
    # so require 85 % of the muscle and almost nothing beyond it
    assert (found & truth).sum() >= 0.85 * truth.sum()
    assert (found & ~truth).sum() <= 0.05 * truth.sum()
    assert not (seg.breast_mask & found).any()


def test_cluster_detected_at_half_scale():
    # coarse hydroxyapatite specks (0.3-0.5 mm) at 0.2 mm pixels: a detected ROI over the truth
    sim = _phantom("mild", [{"type": "calcifications", "enhancement": "none",
                             "morphology": "coarse_heterogeneous", "material": "hydroxyapatite",
                             "n_specks": 12}], seed=21, scale=0.5)
    res = analyze(sim, iodine_options=_NO_SCATTER)
    tb = sim.truth.lesions[0].calcification_bbox
    hits = [r for r in res.rois if r.source == "detected" and not (
        r.bbox[2] <= tb[0] or tb[2] <= r.bbox[0] or r.bbox[3] <= tb[1] or tb[3] <= r.bbox[1])]
    assert len(hits) == 1
    assert hits[0].n_calcifications >= 5
    # (false clusters are not asserted here: the detector threshold is set for full-scale 0.1 mm
    # images, where benchmarks/validate_quantify.py measures the false-cluster rate; at 0.2 mm
    # pixels the phantom's parenchymal texture reaches the pixel scale and yields a few)


def test_calls_are_judged_against_the_reported_bpe():
    # Phantom seed 14021, mild BPE (extent 0.19), with an NME of 0.55 mg/cm^2 (no BPE within
    # 10 mm: not masked).  With the NME's own enhancement counted, the first BPE pass reads the
    # view as moderate; without the findings the view is mild (the category reported).  The calls
    # are judged again against that BPE, so the masking model of every enhancing region saw a
    # mild view (its ``masked_view`` term is 0, and the BPE-brightness terms are 0), and the NME
    # is enhancement.
    rng = np.random.default_rng(14021)
    enh_type = "mass" if rng.uniform() < 0.5 else "nme"  # the validator's draw for this seed
    lesions = [{"type": enh_type, "calcifications": True},
               {"type": "calcifications", "enhancement": "none"},
               {"type": "calcifications", "enhancement": "weak"}]
    sim = _phantom("mild", lesions, seed=14021, scale=0.5)
    by_id, res = _analyze_truth_rois(sim)
    assert res.bpe.category not in EnhancementConfig().masking_bpe
    terms = [roi.masking_terms for roi in res.rois if roi.masking_terms is not None]
    assert terms and all(t["masked_view"] == 0 and t["site_below_bpe"] == 0 for t in terms)
    nme = [roi for les, roi in by_id.values() if les.type == "nme"]
    assert enh_type == "nme" and len(nme) == 1
    assert nme[0].enhancement == "enhancement"


def test_a_large_mass_in_a_fatty_breast_is_not_read_as_bpe():
    # Phantom seed 18003 (the validator's draw: a mass), minimal BPE (true extent 0.069): a fatty
    # breast (mean glandular fraction 0.04) with an 18 mm mass of 1.9 mg/cm^2.  The mass displaces
    # fat with gland-like tissue, so on LE it is FGT, and it covers about as many pixels as the
    # breast's own FGT.  The second BPE pass left enhancing findings out only while they covered
    # <= 25 % of the FGT (a region grown over a BPE network is BPE), so this mass stayed in and
    # read as BPE: extent 0.34, moderate.  A mass is never BPE and is now always left out.
    # Tolerance: 0.1 on the extent, ~2 SD of the BPE extent error on development seeds (0.047).
    rng = np.random.default_rng(18003)
    enh_type = "mass" if rng.uniform() < 0.5 else "nme"
    lesions = [{"type": enh_type, "calcifications": True},
               {"type": "calcifications", "enhancement": "none"},
               {"type": "calcifications", "enhancement": "weak"}]
    sim = _phantom("minimal", lesions, seed=18003, scale=0.5)
    by_id, res = _analyze_truth_rois(sim)
    mass = [roi for les, roi in by_id.values() if les.type == "mass"]
    assert enh_type == "mass" and len(mass) == 1
    assert (mass[0].enhancement, mass[0].type) == ("enhancement", "mass")
    assert res.bpe.category == "minimal"
    assert abs(res.bpe.enhancing_fraction - sim.truth.enhancing_fraction) < 0.1


def test_calcification_detection_warns_off_its_design_pixel(caplog):
    """Detection was measured at 0.1 mm pixels; on a 0.4 mm grid analyze says so (a warning
    naming the pixel size), and with detection off it does not."""
    import logging

    from cemrecon.quantify import AnalyzeConfig
    from cemrecon.quantify.analyze import CALC_DESIGN_PIXEL_MM

    rng = np.random.default_rng(0)
    le = rng.normal(3000.0, 5.0, (120, 100))
    iod = np.zeros(le.shape, np.float32)
    assert 0.4 > CALC_DESIGN_PIXEL_MM
    with caplog.at_level(logging.WARNING, logger="cemrecon.quantify.analyze"):
        analyze((le, le), iodine_mg_cm2=iod, pixel_mm=0.4, view="CC")
    assert any("full-resolution" in r.message and "0.40 mm" in r.message for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cemrecon.quantify.analyze"):
        analyze((le, le), iodine_mg_cm2=iod, pixel_mm=0.4, view="CC",
                config=AnalyzeConfig(detect_calcifications=False))
    assert not any("full-resolution" in r.message for r in caplog.records)
