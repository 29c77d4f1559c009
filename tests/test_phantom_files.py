"""Phantom exams on disk: layout, DICOM read-back, headers, dciodvfy, determinism, CLI."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pydicom
import pytest

from tests.helpers import dciodvfy_errors

SCALE = 0.1  # 285 x 239 pixels of 1 mm: every header path, a fraction of the time


@pytest.fixture(scope="module")
def exam_dir(tmp_path_factory):
    from cemrecon.phantom import write_exams

    out = tmp_path_factory.mktemp("phantom")
    exams = write_exams(out, 1, seed=11, scale=SCALE)
    return out, exams


def test_layout_and_truth_files(exam_dir):
    out, exams = exam_dir
    assert len(exams) == 1
    ex = exams[0]
    names = sorted(p.name for p in (out / ex.exam_id / "dicom").iterdir())
    assert names == sorted(f"{lat}_{view}_{e}.dcm" for lat in "RL" for view in ("CC", "MLO") for e in ("LE", "HE"))
    truth = sorted(p.name for p in (out / ex.exam_id / "truth").iterdir())
    assert truth == sorted(f"{lat}_{view}.{ext}" for lat in "RL" for view in ("CC", "MLO") for ext in ("npz", "json"))
    # no temporary files left behind
    assert not list(out.rglob(".tmp-*"))


@pytest.mark.parametrize("lat", ["R", "L"])
@pytest.mark.parametrize("view", ["CC", "MLO"])
def test_dicom_reads_back_and_matches_truth(exam_dir, lat, view):
    out, exams = exam_dir
    ex = exams[0]
    tj = json.loads((out / ex.exam_id / "truth" / f"{lat}_{view}.json").read_text())
    npz = np.load(out / ex.exam_id / "truth" / f"{lat}_{view}.npz")
    dss = {e: pydicom.dcmread(out / ex.exam_id / "dicom" / f"{lat}_{view}_{e}.dcm") for e in ("LE", "HE")}
    for energy, ds in dss.items():
        px = ds.pixel_array
        assert px.dtype == np.uint16
        assert px.shape == npz["iodine_mg_cm2"].shape == (tj["rows"], tj["columns"])
        assert int(px.max()) <= 2**14 - 1  # 14 bits stored
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1.2.1"
        assert ds.PresentationIntentType == "FOR PROCESSING"
        assert ds.BitsStored == 14 and ds.HighBit == 13 and ds.PixelRepresentation == 0
        assert ("LOW_ENERGY" if energy == "LE" else "HIGH_ENERGY") in list(ds.ImageType)
        assert list(ds.ImageType)[3] == ("LOW_ENERGY" if energy == "LE" else "HIGH_ENERGY")  # GE position
        assert ds.ImageLaterality == lat and ds.ViewPosition == view
        assert ds.Manufacturer == "GE Healthcare" and ds.ManufacturerModelName == "Senographe Pristina"
        exp = tj["exposure"][energy]
        assert float(ds.KVP) == pytest.approx(exp["kvp"])
        assert ds.AnodeTargetMaterial == "RHODIUM"
        assert ds.FilterMaterial == ("SILVER" if energy == "LE" else "COPPER")
        assert int(ds.ExposureInuAs) == round(exp["mas"] * 1000)
        assert int(ds.Exposure) == round(exp["mas"])
        # current x time = mAs (the current is rounded to 1 mA in XRayTubeCurrent)
        assert float(ds.XRayTubeCurrentInuA) * float(ds.ExposureTimeInuS) * 1e-9 == pytest.approx(exp["mas"], rel=1e-4)
        assert int(ds.XRayTubeCurrent) * int(ds.ExposureTime) / 1000 == pytest.approx(exp["mas"], rel=0.02)
        assert float(ds.BodyPartThickness) == pytest.approx(tj["exposure"]["compressed_thickness_mm"], abs=0.1)
        assert float(ds.ImagerPixelSpacing[0]) == pytest.approx(0.1 / SCALE)
        block = ds.private_block(0x0029, "CEMRECON PHANTOM")
        assert float(block[0x10].value) == pytest.approx(tj["exposure"]["dark_offset_dn"])
        assert float(block[0x11].value) == pytest.approx(tj["exposure"]["gain_dn_per_keV"], rel=1e-8)
        assert ds.private_block(0x0045, "GEMS_SENO_02")[0x1B].value == f"{lat}{view}"
        expected_orientation = {("R", "CC"): ["P", "L"], ("L", "CC"): ["A", "R"],
                                ("R", "MLO"): ["P", "FL"], ("L", "MLO"): ["A", "FR"]}[(lat, view)]
        assert list(ds.PatientOrientation) == expected_orientation
        assert ds.ViewCodeSequence[0].CodeValue == ("399162004" if view == "CC" else "399368009")
        assert len(ds.ViewCodeSequence[0].ViewModifierCodeSequence) == 0
    le, he = dss["LE"], dss["HE"]
    assert le.FrameOfReferenceUID == he.FrameOfReferenceUID
    assert le.StudyInstanceUID == he.StudyInstanceUID == ex.study_uid
    assert le.SOPInstanceUID != he.SOPInstanceUID
    t_le = dt.datetime.strptime(le.AcquisitionDateTime, "%Y%m%d%H%M%S.%f")
    t_he = dt.datetime.strptime(he.AcquisitionDateTime, "%Y%m%d%H%M%S.%f")
    assert 1.0 <= (t_he - t_le).total_seconds() <= 2.0
    # chest wall side: the breast touches the right edge for R, the left edge for L
    mask = npz["breast_mask"]
    mid = mask.shape[0] // 2
    assert mask[mid, -1 if lat == "R" else 0] and not mask[mid, 0 if lat == "R" else -1]


def test_frames_of_reference_differ_between_views(exam_dir):
    out, exams = exam_dir
    fors = {pydicom.dcmread(p, stop_before_pixels=True).FrameOfReferenceUID
            for p in (out / exams[0].exam_id / "dicom").glob("*_LE.dcm")}
    assert len(fors) == 4


@pytest.mark.external
@pytest.mark.parametrize("stem", ["R_CC", "L_MLO"])
@pytest.mark.parametrize("energy", ["LE", "HE"])
def test_dciodvfy_no_errors(exam_dir, stem, energy):
    out, exams = exam_dir
    assert dciodvfy_errors(out / exams[0].exam_id / "dicom" / f"{stem}_{energy}.dcm") == []


@pytest.mark.external
def test_dciodvfy_standard_image_type(tmp_path):
    from cemrecon.phantom import write_exams

    ex = write_exams(tmp_path, 1, seed=3, scale=0.05, image_type_style="standard", lesions=None,
                     thickness_mm=50.0)[0]
    path = ex.dicom_files["L_CC_HE"]
    assert list(pydicom.dcmread(path).ImageType) == ["ORIGINAL", "PRIMARY", "", "", "HIGH_ENERGY"]
    assert dciodvfy_errors(path) == []


def test_determinism_same_seed_identical_bytes(exam_dir, tmp_path):
    from cemrecon.phantom import write_exams

    out, exams = exam_dir
    again = write_exams(tmp_path / "a", 1, seed=11, scale=SCALE)[0]
    for key, path in exams[0].dicom_files.items():
        assert path.read_bytes() == again.dicom_files[key].read_bytes(), key
    for key, (npz, js) in exams[0].truth_files.items():
        assert npz.read_bytes() == again.truth_files[key][0].read_bytes(), key
        assert js.read_bytes() == again.truth_files[key][1].read_bytes(), key
    other = write_exams(tmp_path / "b", 1, seed=12, scale=0.05, thickness_mm=50.0)[0]
    assert other.study_uid != exams[0].study_uid
    third = write_exams(tmp_path / "c", 1, seed=13, scale=0.05, thickness_mm=50.0)[0]
    a = pydicom.dcmread(third.dicom_files["R_CC_LE"]).pixel_array
    b = pydicom.dcmread(other.dicom_files["R_CC_LE"]).pixel_array
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_truth_json_content(exam_dir):
    out, exams = exam_dir
    for key, tj in exams[0].views.items():
        assert tj["bpe_level"] in ("minimal", "mild", "moderate", "marked")
        assert 1 <= tj["bpe_category"] <= 4
        assert set(tj["exposure"]) >= {"LE", "HE", "dark_offset_dn", "gain_dn_per_keV"}
        for les in tj["lesions"]:
            assert les["type"] in ("mass", "nme", "calcifications")
            assert les["expected_enhancement"] in ("enhancement", "no_enhancement", "indeterminate")
            r0, c0, r1, c1 = les["bbox"]
            assert 0 <= r0 < r1 <= tj["rows"] and 0 <= c0 < c1 <= tj["columns"]
            assert les["n_specks"] == len(les["specks"])


def test_cli_and_tool(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from cemrecon.cli import main

    assert main(["phantom", str(tmp_path / "cli"), "--exams", "1", "--seed", "4", "--scale", "0.05",
                 "--no-lesions", "--thickness-mm", "50"]) == 0
    assert len(list((tmp_path / "cli").rglob("*.dcm"))) == 8
    assert main(["phantom", str(tmp_path / "bad"), "--scale", "3"]) == 2
    tool = Path(__file__).resolve().parents[1] / "tools" / "make_phantom.py"
    proc = subprocess.run([sys.executable, str(tool), str(tmp_path / "tool"), "--exams", "1", "--seed", "4",
                           "--scale", "0.05", "--no-lesions", "--thickness-mm", "50"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # same code, same seed: same files
    for p in (tmp_path / "cli").rglob("*.dcm"):
        assert p.read_bytes() == (tmp_path / "tool" / p.relative_to(tmp_path / "cli")).read_bytes()


def test_simulate_view_reproduces_written_view(exam_dir):
    """The truth JSON's seed regenerates the written view exactly (in memory)."""
    from cemrecon.phantom import simulate_view

    out, exams = exam_dir
    ex = exams[0]
    tj = ex.views["L_MLO"]
    sim = simulate_view(seed=tj["seed"], scale=tj["scale"], laterality="L", view="MLO")
    np.testing.assert_array_equal(sim.le, pydicom.dcmread(ex.dicom_files["L_MLO_LE"]).pixel_array)
    np.testing.assert_array_equal(sim.he, pydicom.dcmread(ex.dicom_files["L_MLO_HE"]).pixel_array)
    npz = np.load(ex.truth_files["L_MLO"][0])
    np.testing.assert_allclose(npz["iodine_mg_cm2"], sim.truth.iodine_mg_cm2.astype(np.float32))


@pytest.mark.external
def test_write_calibration_layout_truth_and_dciodvfy(tmp_path):
    from cemrecon.phantom import write_calibration

    dirs = write_calibration(tmp_path, thicknesses_mm=(40.0,), glandularities=(0.0, 1.0),
                             iodine_steps_mg_cm2=(0.0, 1.0, 2.0), scale=0.05, seed=2)
    assert [d.name for d in dirs] == ["CAL_T040_G000", "CAL_T040_G100"]
    for d in dirs:
        tj = json.loads((d / "truth" / "R_CC.json").read_text())
        assert [ins["iodine_mg_cm2"] for ins in tj["inserts"]] == [0.0, 1.0, 2.0]
        le = pydicom.dcmread(d / "dicom" / "R_CC_LE.dcm")
        he = pydicom.dcmread(d / "dicom" / "R_CC_HE.dcm")
        assert float(le.BodyPartThickness) == 40.0
        assert le.StudyInstanceUID == he.StudyInstanceUID and le.FrameOfReferenceUID == he.FrameOfReferenceUID
        means = []
        for ins in tj["inserts"]:
            r0, c0, r1, c1 = ins["roi"]
            assert r1 > r0 and c1 > c0
            means.append(le.pixel_array[r0:r1, c0:c1].mean())
        assert means[0] > means[1] > means[2]  # more iodine, less LE signal
        assert dciodvfy_errors(d / "dicom" / "R_CC_HE.dcm") == []
    # the two studies are distinct
    uids = {pydicom.dcmread(d / "dicom" / "R_CC_LE.dcm").StudyInstanceUID for d in dirs}
    assert len(uids) == 2
