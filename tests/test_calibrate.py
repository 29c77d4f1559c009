"""Iodine calibration: known answers from the spectral model, JSON round trip, fit from
phantom calibration exposures, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

import cemrecon.physics as physics
from cemrecon.calibrate import FORMAT, SCHEMA_VERSION, Calibration, fit_calibration
from cemrecon.errors import CalibrationError

# physics.md Table 3: the degree-2 polynomial in (lnL, lnH, T) has max error 0.028 mg/cm^2
# noise-free over T 2-9 cm, glandularity 0-100 %, I 0-4; 0.05 leaves room for the
# off-grid points below and is the noise-free target.
NOISE_FREE_TOL_MG_CM2 = 0.05


@pytest.mark.parametrize("thickness_mm", [23.0, 47.0, 68.0, 87.0])
def test_physics_calibration_recovers_held_out_slabs(thickness_mm):
    # held-out points: none of T, g, I is on the fitting grid (T every 2.5 mm from a
    # 5 mm-grid centre, g in steps of 0.2, I in {0, .5, 1, 2, 3, 4, 5})
    le = physics.le_beam_for_thickness(thickness_mm)
    he = physics.he_beam_for_thickness(thickness_mm)
    m_le = physics.SignalModel(le, pixel_mm=1.0)
    m_he = physics.SignalModel(he, pixel_mm=1.0)
    cal = Calibration.physics_predicted()
    errors = []
    for g in (0.05, 0.55, 0.95):
        for iodine in (0.0, 0.25, 1.7, 3.6):
            paths = physics.slab_paths(thickness_mm, g, iodine_mg_cm2=iodine)
            est = cal.predict(m_le.slab_log_signal(paths), m_he.slab_log_signal(paths), thickness_mm, (le, he))
            errors.append(float(est) - iodine)
    assert np.max(np.abs(errors)) <= NOISE_FREE_TOL_MG_CM2, errors


def test_weight_follows_physics():
    le, he = physics.le_beam_for_thickness(50.0), physics.he_beam_for_thickness(50.0)
    cal = Calibration.physics_predicted()
    # the stored w(T) is a quadratic fit to predicted_weight over the window: it must
    # reproduce it to well below the 0.009-per-cm slope of w (physics.md Table 2)
    for t in (40.0, 50.0, 60.0):
        assert cal.weight(le, he, t) == pytest.approx(physics.predicted_weight(le, he, t), abs=1e-3)


def test_json_round_trip(tmp_path):
    le, he = physics.le_beam_for_thickness(50.0), physics.he_beam_for_thickness(50.0)
    cal = Calibration.physics_predicted(le, he)
    path = cal.save(tmp_path / "cal.json")
    assert [p.name for p in tmp_path.iterdir()] == ["cal.json"]  # no temp file left behind
    d = json.loads(path.read_text())
    assert d["format"] == FORMAT and d["schema_version"] == SCHEMA_VERSION
    for key in ("calibration_id", "created", "cemrecon_version", "system", "beam_qualities",
                "thickness_range_mm", "residuals_mg_cm2", "model_form", "correction", "groups"):
        assert key in d
    back = Calibration.load(path)
    assert back.calibration_id == cal.calibration_id
    x = np.array([[3.1, 4.2], [3.0, 4.0]])
    y = np.array([[4.9, 5.0], [5.1, 4.95]])
    # stored groups are reused, so predictions agree to float64 round-off
    np.testing.assert_allclose(back.predict(x, y, 50.0, (le, he)), cal.predict(x, y, 50.0, (le, he)),
                               rtol=0, atol=1e-9)
    assert len(back.groups) == len(cal.groups)


def test_load_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CalibrationError, match="not valid JSON"):
        Calibration.load(bad)
    bad.write_text(json.dumps({"format": "something-else", "schema_version": 1}))
    with pytest.raises(CalibrationError, match="'format'"):
        Calibration.load(bad)
    bad.write_text(json.dumps({"format": FORMAT, "schema_version": SCHEMA_VERSION + 1, "groups": []}))
    with pytest.raises(CalibrationError, match="schema_version"):
        Calibration.load(bad)
    with pytest.raises(CalibrationError, match="cannot read"):
        Calibration.load(tmp_path / "missing.json")


@pytest.fixture(scope="module")
def calibration_dir(tmp_path_factory):
    from cemrecon.phantom.calibration import write_calibration

    out = tmp_path_factory.mktemp("calib")
    write_calibration(out, thicknesses_mm=(30.0, 50.0, 70.0), glandularities=(0.0, 1.0), scale=0.1, seed=11)
    return out


def test_fit_from_phantom_calibration_files(calibration_dir, tmp_path):
    from cemrecon.iodine import iodine_map_result
    from cemrecon.phantom.calibration import simulate_slab

    cal = fit_calibration([calibration_dir], scatter_correction="none")
    assert cal.source == "measured"
    assert cal.gain_source == "header"
    # the phantom obeys the same spectral model, so the measured correction must be close to
    # the identity: its residuals are ROI noise (~0.003 mg/cm^2 at 1 mm pixels) plus the
    # polynomial's own error (Table 3: <= 0.028)
    assert cal.residuals["rms"] <= 0.03
    assert cal.correction[1] == pytest.approx(1.0, abs=0.02)
    # held-out exposure: another seed, a thickness and glandularity not calibrated
    sim = simulate_slab(thickness_mm=40.0, glandularity=0.4, scale=0.1, seed=99)
    res = iodine_map_result(sim.le, sim.he, calibration=cal, le_beam=sim.le_beam, he_beam=sim.he_beam,
                            mas=(sim.mas_le, sim.mas_he), pixel_mm=sim.pixel_mm, thickness_mm=40.0,
                            dark_offset=sim.dark_offset_dn, gain_dn_per_kev=sim.gain_dn_per_keV,
                            scatter_correction="none", smoothing_fwhm_mm=None)
    for ins in sim.inserts:
        r0, c0, r1, c1 = ins["roi"]
        roi = res.iodine_mg_cm2[r0:r1, c0:c1].astype(np.float64)
        sem = roi.std(ddof=1) / np.sqrt(roi.size)
        # model error (0.05, the noise-free target) plus 4 standard errors of the ROI mean
        assert abs(roi.mean() - ins["iodine_mg_cm2"]) <= NOISE_FREE_TOL_MG_CM2 + 4 * sem, ins
    path = cal.save(tmp_path / "measured.json")
    assert Calibration.load(path).correction == pytest.approx(cal.correction)


def test_fit_needs_two_iodine_levels():
    from cemrecon.calibrate import CalibrationSample, fit_samples

    b = {"anode": "Rh", "filter_material": "Ag", "filter_mm": 0.03, "kvp": 30.0}
    h = {"anode": "Rh", "filter_material": "Cu", "filter_mm": 0.3, "kvp": 47.0}
    samples = [CalibrationSample(b, h, 50.0, 3.0 + k * 0.01, 5.0, 1.0) for k in range(8)]
    with pytest.raises(CalibrationError, match="two iodine levels"):
        fit_samples(samples)
    with pytest.raises(CalibrationError, match="no calibration samples"):
        fit_samples([])


def test_cli_calibrate(calibration_dir, tmp_path):
    from cemrecon.cli import EXIT_NOTHING, EXIT_OK, main

    out = tmp_path / "cal.json"
    assert main(["calibrate", str(calibration_dir), "--out", str(out), "--scatter-correction", "none"]) == EXIT_OK
    assert Calibration.load(out).source == "measured"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["calibrate", str(empty), "--out", str(tmp_path / "x.json")]) == EXIT_NOTHING
    assert not (tmp_path / "x.json").exists()
