"""A site's calibration: LE/HE DICOM files plus an inserts JSON (no phantom truth folder).

The phantom's calibration exposures are copied without their truth, the insert discs
are described in a ``cemrecon-calibration-inserts`` file as a site would measure them,
and the fitted calibration must agree with the one fitted from the phantom truth.
"""

from __future__ import annotations

import json
import shutil

import pytest

from cemrecon.calibrate import fit_calibration
from cemrecon.errors import CalibrationError


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from cemrecon.phantom.calibration import write_calibration

    src = tmp_path_factory.mktemp("phantom")
    write_calibration(src, thicknesses_mm=(30.0, 60.0), glandularities=(0.0, 1.0), scale=0.1, seed=21)
    site = tmp_path_factory.mktemp("site")
    exposures = []
    for k, truth_path in enumerate(sorted(src.glob("CAL_*/truth/R_CC.json"))):
        truth = json.loads(truth_path.read_text())
        d = site / f"exposure{k}"
        d.mkdir()
        for energy in ("LE", "HE"):  # DICOM only: the site has no truth folder
            shutil.copy(truth_path.parent.parent / "dicom" / f"R_CC_{energy}.dcm", d / f"{energy}.dcm")
        exposures.append({
            "le": f"exposure{k}/LE.dcm", "he": f"exposure{k}/HE.dcm",
            "glandularity": truth["glandularity"],
            # discs of 4 mm radius well inside the 15 mm square inserts
            "rois": [{"row": ins["center_rc"][0], "col": ins["center_rc"][1], "radius_mm": 4.0,
                      "iodine_mg_cm2": ins["iodine_mg_cm2"], "glandularity": truth["glandularity"]}
                     for ins in truth["inserts"]],
        })
    inserts = site / "inserts.json"
    inserts.write_text(json.dumps({"format": "cemrecon-calibration-inserts", "version": 1,
                                   "exposures": exposures}))
    return src, site, inserts


def test_inserts_file_fit_matches_the_phantom_truth_fit(site):
    src, _site_dir, inserts = site
    from_truth = fit_calibration([src], scatter_correction="none")
    from_file = fit_calibration([], inserts=inserts, scatter_correction="none")
    assert from_file.source == "measured"
    # Same exposures, same inserts, smaller discs (fewer pixels: ROI means differ by noise of
    # ~0.003 mg/cm^2 at 1 mm pixels); the polynomial's error (Table 3, <= 0.028) is common to both.
    assert from_file.residuals["rms"] <= 0.03
    assert from_file.correction[1] == pytest.approx(from_truth.correction[1], abs=0.01)
    assert from_file.correction[0] == pytest.approx(from_truth.correction[0], abs=0.02)


def test_inserts_file_errors_name_the_file(site, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "cemrecon-calibration-inserts", "version": 1,
                               "exposures": [{"le": "missing/LE.dcm", "he": "missing/HE.dcm", "rois": []}]}))
    with pytest.raises(CalibrationError, match="bad.json"):
        fit_calibration([], inserts=bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(CalibrationError, match="wrong.json"):
        fit_calibration([], inserts=wrong)
