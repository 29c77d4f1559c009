"""benchmarks/replay_sites.py: a call on the cropped inputs is the call on the whole image."""

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import replay_sites as rs  # noqa: E402

from cemrecon.quantify.enhancement import EnhancementConfig, measure_enhancement  # noqa: E402


def _scene(rng, lesion_mg_cm2):
    """600 x 600 px at 0.2 mm: textured background, a 3 mm-SD lesion under a 4 mm box with
    five specks, a second finding 15 mm away; the breast ends 20 mm right of the box."""
    n, px = 600, 0.2
    yy, xx = np.mgrid[:n, :n]
    texture = ndi.gaussian_filter(rng.normal(0, 1, (n, n)), 10) * 3.0  # BPE-like, ~0.1 mg/cm^2
    io = texture + 0.03 * rng.normal(0, 1, (n, n))
    io += lesion_mg_cm2 * np.exp(-((yy - 300) ** 2 + (xx - 300) ** 2) / (2 * (3 / px) ** 2))
    breast = xx < 400
    calc = np.zeros((n, n), bool)
    for dy, dx in ((0, 0), (4, 6), (-5, 3), (7, -4), (-3, -6)):
        calc[300 + dy, 300 + dx] = True
        io[300 + dy, 300 + dx] -= 0.7  # specks read opposite to iodine on RC
    gland = np.clip(0.5 + texture, 0, 1)
    return io, px, breast, calc, gland


@pytest.mark.parametrize("lesion", [0.0, 0.8])
def test_call_on_the_crop_equals_the_call_on_the_image(lesion):
    rng = np.random.default_rng(7)
    io, px, breast, calc, gland = _scene(rng, lesion)
    bbox = (290, 290, 311, 311)
    kw = dict(breast_mask=breast, calc_mask=calc, pixel_mm=px, source="user",
              n_calcifications=5, exclude_boxes=[(290, 365, 305, 380)], bpe_category="moderate",
              masking_level_mg_cm2=0.5, fgt_mask=gland > 0.5, glandular_index=gland,
              map_blur_mm=0.21)
    cfg = EnhancementConfig()
    full = measure_enhancement(io, bbox, config=cfg, **kw)
    site = rs.crop_site(io, bbox, kw, cfg)
    # the crop is smaller than the image on every side the window does not reach
    assert site["iodine"].shape[0] < io.shape[0] and site["origin"] != (0, 0)
    crop = rs.judge_site(site, cfg)
    assert crop.enhancement == full.enhancement and crop.type == full.type
    assert crop.reason == full.reason
    for a, b in ((crop.iodine_excess_mg_cm2, full.iodine_excess_mg_cm2),
                 (crop.detectability_limit_mg_cm2, full.detectability_limit_mg_cm2),
                 (crop.cnr, full.cnr)):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-12)
    if lesion:
        assert full.enhancement == "enhancement"  # the scene does exercise the region branch


def test_overrides_are_typed_and_checked():
    assert rs._overrides(["z_detect=2.5", "masking_check=false"]) == {
        "z_detect": 2.5, "masking_check": False}
    with pytest.raises(SystemExit, match="no field"):
        rs._overrides(["no_such_field=1"])
