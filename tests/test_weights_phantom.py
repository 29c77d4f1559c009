"""Weights on the phantom: texture suppression, rim artefact, image-based fit, registration.

One noise-free, scatter-free phantom view (scale 0.25: 0.4 mm pixels, ~7 s) is
shared by the module.  Regions: ``interior`` = breast more than 30 mm from the
skin line (pectoral muscle excluded), ``band`` = the 15 mm peripheral band.
Texture = standard deviation of the high-passed image (minus a 2 mm Gaussian) in
the interior; suppression = texture(ln LE) / texture(RC).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from cemrecon.physics import slab_derivatives
from cemrecon.recombination import recombine_pair
from cemrecon.weights import (
    _predicted_weight_cached,
    physics_weight,
    thickness_maps,
    weight_curve,
)


@pytest.fixture(scope="module")
def view():
    from cemrecon.phantom.exam import simulate_view

    sim = simulate_view(seed=3, scale=0.25, noise=False, bpe_level="none", lesions=None,
                        thickness_mm=55.0, glandularity=0.3)
    truth = sim.truth
    dist_mm = ndimage.distance_transform_edt(truth.breast_mask) * sim.pixel_mm
    body = truth.breast_mask & ~truth.pectoral_mask
    kw = {"dark_offset": sim.dark_offset_dn, "le_beam": sim.le_beam, "he_beam": sim.he_beam,
          "thickness_mm": sim.thickness_mm, "pixel_mm": sim.pixel_mm, "register": False}
    return {
        "sim": sim,
        "interior": body & (dist_mm > 30.0),
        "band": body & (dist_mm < 15.0),
        "kw": kw,
        "ln_le": np.log(sim.le - sim.dark_offset_dn),
    }


def _texture(img, view):
    x = img.astype(np.float64)
    hp = x - ndimage.gaussian_filter(x, 2.0 / view["sim"].pixel_mm)
    return float(hp[view["interior"]].std())


def _suppression(rc, view):
    return _texture(view["ln_le"], view) / _texture(rc, view)


def _rim(rc, view):
    return float(rc[view["band"]].mean() - rc[view["interior"]].mean())


@pytest.fixture(scope="module")
def results(view):
    sim = view["sim"]
    return {mode: recombine_pair((sim.le, sim.he), weight=mode, **view["kw"])
            for mode in (None, "thickness", "image")}


def test_physics_weight_suppresses_texture_30x(view, results):
    res = results[None]
    assert res.weight_mode == "physics"
    # the requirement on a noise-free, scatter-free phantom
    assert _suppression(res.rc, view) >= 30.0
    # A wrong weight leaves |dw| ln LE of texture, so suppression ~ 1/|dw|: with w 20 %
    # low that is 1/(0.2 w) ~ 18x < 30x -- the metric can fail, and follows the model.
    off = recombine_pair((view["sim"].le, view["sim"].he), weight=0.8 * res.weight, **view["kw"])
    s_off = _suppression(off.rc, view)
    assert s_off < 30.0
    assert s_off == pytest.approx(1.0 / (0.2 * res.weight), rel=0.15)


def test_physics_weight_is_cached(view):
    sim = view["sim"]
    physics_weight(sim.le_beam, sim.he_beam, 55.2)
    hits = _predicted_weight_cached.cache_info().hits
    assert physics_weight(sim.le_beam, sim.he_beam, 55.1) == physics_weight(sim.le_beam, sim.he_beam, 55.2)
    assert _predicted_weight_cached.cache_info().hits == hits + 2  # both rounded to 55.0 mm


def test_image_weight_recovers_physics_weight(view, results):
    w_img = results["image"].weight
    w_phys = results[None].weight
    # noise-free: the texture fit and the slab model describe the same physics; the
    # residual difference is the phantom's glandularity spread around the model's
    # g = 0.5 and thickness roll-off leaking into the band (allow 3 %)
    assert w_img == pytest.approx(w_phys, rel=0.03)
    assert _suppression(results["image"].rc, view) >= 30.0


def test_uncorrected_rim_matches_slab_model(view, results):
    sim = view["sim"]
    curve = weight_curve(sim.le_beam, sim.he_beam)
    w0, le0, he0 = curve.at(sim.thickness_mm)
    t_band = sim.truth.thickness_mm[view["band"]]
    _, le_t, he_t = curve.at(t_band)
    predicted = float(np.mean((he_t - he0) - w0 * (le_t - le0)))
    # physics.md: RC does not cancel thickness (+1 cm reads as +6-8 mg I/cm^2); the
    # band here is ~14 mm thinner on average.  Composition differences are cancelled
    # by w, so the measured rim is the slab model's within 10 % (skin, beam hardening).
    assert predicted > 0.05
    assert _rim(results[None].rc, view) == pytest.approx(predicted, rel=0.10)


def test_thickness_weight_reduces_rim(view, results):
    res = results["thickness"]
    assert res.weight_mode == "thickness" and res.offset_map is not None
    rim_plain = _rim(results[None].rc, view)
    rim_thick = _rim(res.rc, view)
    # Dual-energy thickness (ln HE - w0 ln LE is blind to the glandular mix to the slab
    # model's accuracy, Table 2: <= 0.05 mg/cm^2 per full swap ~ 0.001 RC), read on the
    # slab curve.  What is left is ring discretisation (0.8 mm) of the steep outer
    # 3 mm and the skin line; a factor 10 (0.145 -> <= 0.0145) leaves room for those.
    assert abs(rim_thick) <= abs(rim_plain) / 10.0
    # the interior is untouched: same texture suppression as the scalar weight
    assert _suppression(res.rc, view) >= 30.0
    w = res.weight
    assert w[view["interior"]].max() == pytest.approx(results[None].weight, abs=1e-3)
    assert w[view["band"]].min() < w[view["interior"]].min()  # thinner -> lower w (Table 2)


def test_le_only_thickness_reduces_rim(view, results):
    sim = view["sim"]
    tm = thickness_maps(view["ln_le"], thickness_mm=sim.thickness_mm, pixel_mm=sim.pixel_mm,
                        le_beam=sim.le_beam, he_beam=sim.he_beam)
    ln_he = np.log(sim.he - sim.dark_offset_dn)
    rc = ln_he - tm.weight_map * view["ln_le"] + tm.offset_map
    rim_plain = _rim(results[None].rc, view)
    # LE alone reads the fatty periphery (g ~ 0.05 vs the model's 0.5) through a slab
    # curve ~20 % too steep (mu_adipose < mu_50%), and the skin line adds attenuation
    # the slab lacks: the thinning is under-estimated, so expect >= 3x, not 10x.
    assert 0.0 < _rim(rc, view) <= rim_plain / 3.0


def test_thickness_weight_keeps_iodine_contrast_near_the_skin(view):
    """A 1 mg/cm^2, 6 mm disc 8 mm from the skin line: contrast is the physics one."""
    sim = view["sim"]
    truth = sim.truth
    dist_mm = ndimage.distance_transform_edt(truth.breast_mask) * sim.pixel_mm
    cand = np.argwhere(truth.breast_mask & ~truth.pectoral_mask & (np.abs(dist_mm - 8.0) < 0.3))
    centre = cand[len(cand) // 2]
    t_local = float(truth.thickness_mm[tuple(centre)])
    yy, xx = np.indices(truth.breast_mask.shape)
    r_mm = np.hypot(yy - centre[0], xx - centre[1]) * sim.pixel_mm
    disc = r_mm < 3.0
    ring = (r_mm > 5.0) & (r_mm < 8.0) & truth.breast_mask
    d_le = slab_derivatives(sim.le_beam, t_local)["d_iodine"]
    d_he = slab_derivatives(sim.he_beam, t_local)["d_iodine"]
    off = sim.dark_offset_dn
    le = (sim.le - off) * np.exp(d_le * disc) + off  # 1 mg I/cm^2 in the disc
    he = (sim.he - off) * np.exp(d_he * disc) + off
    res = recombine_pair((le, he), weight="thickness", **view["kw"])
    w_local = float(res.weight[tuple(centre)])
    expected = d_he - w_local * d_le  # d RC / d I at the local weight, ~ -0.017
    contrast = float(res.rc[disc].mean() - res.rc[ring].mean())
    # the rim gradient is gone, so disc-minus-ring is the iodine signal; 10 % covers
    # the residual gradient over the 8 mm ring (<= 0.0015 here, measured by the test
    # above's profile) -- with the scalar weight the gradient alone is ~ -0.04
    assert contrast == pytest.approx(expected, rel=0.10)
    plain = recombine_pair((le, he), weight=None, **view["kw"])
    assert abs(float(plain.rc[disc].mean() - plain.rc[ring].mean()) - expected) > 0.01


def test_registration_recovers_a_shift(view):
    sim = view["sim"]
    shift = (1.7, -2.3)
    he_moved = ndimage.shift(sim.he, shift, order=3, mode="nearest")
    kw = {**view["kw"], "register": "auto"}
    reg = recombine_pair((sim.le, he_moved), weight=None, **kw)
    prov = reg.provenance
    assert prov["registration"]["applied"] and prov["spatial_locations_preserved"] is False
    est = prov["registration"]["shift_px"][0]
    # 2x binning with 20x upsampled correlation: a 0.1-pixel grid; the skin line
    # (whose LE and HE profiles differ by beam hardening) is masked out, so 0.3 px
    # is three grid steps of margin
    assert est == pytest.approx([-shift[0], -shift[1]], abs=0.3)
    unreg = recombine_pair((sim.le, he_moved), weight=None, **{**kw, "register": False})
    assert _texture(reg.rc, view) < _texture(unreg.rc, view) / 3.0
    same = recombine_pair((sim.le, sim.he), weight=None, **kw)
    assert same.provenance["spatial_locations_preserved"] is True
