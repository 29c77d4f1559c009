"""Derived RC / iodine DICOM (cemrecon.io.write): every object is read back and validated."""

from __future__ import annotations

import os
import stat
from copy import deepcopy
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import Dataset, Sequence
from pydicom.uid import generate_uid

from cemrecon.errors import OutputError
from cemrecon.io.write import (
    DM_FOR_PRESENTATION_SOP_CLASS,
    PixelMapping,
    build_rc_dataset,
    decode_pixels,
    iodine_mapping,
    rc_mapping,
    read_mapping,
    write_dataset_atomic,
    write_iodine_image,
    write_rc,
)
from tests.helpers import dciodvfy_errors

ROWS, COLS = 96, 64


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _source(energy: str, study_uid: str, for_uid: str) -> Dataset:
    """A DM For Processing LE/HE header as the reader hands it over (no pixels)."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2.1"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, generate_uid(), for_uid
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "PHANTOM^ONE", "P1", "19700101", "F"
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.StudyID = "20260101", "101010", "A1", "1"
    ds.ReferringPhysicianName = ""
    ds.Modality, ds.Manufacturer, ds.ManufacturerModelName = "MG", "GE MEDICAL SYSTEMS", "Senographe Pristina"
    ds.SoftwareVersions = ["ADS_54.11"]
    ds.ImageType = ["ORIGINAL", "PRIMARY", "", "", energy]
    ds.ImageLaterality, ds.ViewPosition, ds.PatientOrientation = "L", "MLO", ["A", "FR"]
    ds.ViewCodeSequence = Sequence([_code("399368009", "SCT", "medio-lateral oblique")])
    ds.AcquisitionDate, ds.AcquisitionTime = "20260101", "101500.000000" if energy == "LOW_ENERGY" else "101501"
    ds.ImagerPixelSpacing, ds.DetectorType = [0.1, 0.1], "SCINTILLATOR"
    ds.Rows, ds.Columns = ROWS, COLS
    ds.KVP, ds.OrganDose, ds.EntranceDoseInmGy = 31 if energy == "LOW_ENERGY" else 49, 1.2, 3.4
    ds.PresentationIntentType = "FOR PROCESSING"
    block = ds.private_block(0x0045, "GEMS_SENO_02", create=True)
    block.add_new(0x1B, "CS", "LMLO")
    return ds


@pytest.fixture(scope="module")
def sources() -> tuple[Dataset, Dataset]:
    study, frame = generate_uid(), generate_uid()
    return _source("LOW_ENERGY", study, frame), _source("HIGH_ENERGY", study, frame)


@pytest.fixture(scope="module")
def rc_image() -> tuple[np.ndarray, np.ndarray]:
    """RC-like float32 image: air at -0.9 ln, breast at -1.5 ln with a -0.032 ln (2 mg I/cm^2) lesion."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:ROWS, :COLS]
    breast = (xx - 0) ** 2 / 50.0**2 + (yy - ROWS / 2) ** 2 / 45.0**2 < 1
    rc = np.where(breast, -1.5, -0.9) + 0.005 * rng.standard_normal((ROWS, COLS))
    lesion = (xx - 20) ** 2 + (yy - 48) ** 2 < 36
    rc = rc - 0.0161 * 2.0 * lesion  # physics.md table 1: dRC = -0.0161 per mg I/cm^2
    return rc.astype(np.float32), breast


@pytest.fixture(scope="module")
def written(tmp_path_factory, sources, rc_image):
    le, he = sources
    rc, breast = rc_image
    out = tmp_path_factory.mktemp("rc") / "L_MLO_0_RC.dcm"
    info = write_rc(out, rc, le, he, weight=0.245, weight_description="physics, T=50 mm", breast_mask=breast,
                    fingerprint="abc123")
    return out, info, pydicom.dcmread(out)


# --- mapping --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mapping_round_trip_within_half_step(dtype):
    rng = np.random.default_rng(1)
    values = (rng.uniform(-2.0, 1.0, size=(50, 40))).astype(dtype)
    mapping = rc_mapping(values)
    stored, clip, nonfinite = mapping.encode(values)
    assert stored.dtype == np.uint16
    assert clip == 0.0 and nonfinite == 0.0
    # rounding to the nearest integer DN: error <= step/2 (+ float32 representation error of the input)
    err = np.abs(mapping.decode(stored) - values.astype(np.float64))
    assert err.max() <= mapping.step / 2 + 1e-6


def test_mapping_is_iodine_bright():
    mapping = rc_mapping(np.array([[-1.5, -1.6]]))
    stored, *_ = mapping.encode(np.array([-1.5, -1.5 - 0.0161]))  # second pixel: +1 mg I/cm^2
    assert stored[1] > stored[0]
    assert mapping.scale_dn_per_unit < 0


def test_mapping_reports_clipping_and_nonfinite():
    mapping = PixelMapping(offset_dn=100.0, scale_dn_per_unit=-10.0, bits_stored=12)
    values = np.array([0.0, 11.0, -410.0, np.nan])  # 11 -> -10 DN (below 0); -410 -> 4200 > 4095
    stored, clip, nonfinite = mapping.encode(values)
    assert stored.tolist() == [100, 0, 4095, 0]
    assert clip == pytest.approx(2 / 3)
    assert nonfinite == pytest.approx(1 / 4)


def test_mapping_nonfinite_not_counted_as_clipped_with_out_of_range_offset():
    # RC offsets are often above 2**16 (RC itself is ~ +6..+10 ln on raw DN): NaN must not count as clipped
    mapping = PixelMapping(offset_dn=70000.0, scale_dn_per_unit=-10000.0, bits_stored=16)
    stored, clip, nonfinite = mapping.encode(np.array([7.0, np.nan, 0.0]))
    assert stored.tolist() == [0, 0, 65535]
    assert clip == pytest.approx(1 / 2) and nonfinite == pytest.approx(1 / 3)


def test_mapping_shrinks_scale_when_span_does_not_fit():
    values = np.linspace(-5.0, 5.0, 1000)  # 10 ln units > 6.55 ln at 10 000 DN/ln in 16 bits
    mapping = rc_mapping(values)
    _, clip, _ = mapping.encode(values)
    assert abs(mapping.scale_dn_per_unit) < 10_000
    # only the 0.05% tails on each side may clip
    assert clip <= 0.002


def test_mapping_rejects_bad_parameters():
    with pytest.raises(ValueError, match="bits_stored must be 12..16"):
        PixelMapping(0.0, 1.0, bits_stored=8)
    with pytest.raises(ValueError, match="scale_dn_per_unit"):
        PixelMapping(0.0, 0.0)


# --- RC dataset -------------------------------------------------------------------------------


def test_rc_read_back_identity_and_references(written, sources):
    out, info, ds = written
    le, he = sources
    assert ds.SOPClassUID == DM_FOR_PRESENTATION_SOP_CLASS
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID == info.sop_instance_uid
    assert ds.StudyInstanceUID == le.StudyInstanceUID
    assert ds.SeriesInstanceUID not in (le.SeriesInstanceUID, he.SeriesInstanceUID)
    assert ds.SOPInstanceUID not in (le.SOPInstanceUID, he.SOPInstanceUID)
    assert ds.FrameOfReferenceUID == le.FrameOfReferenceUID
    assert list(ds.ImageType) == ["DERIVED", "PRIMARY", "", "SUBTRACTION", ""]
    assert ds.Modality == "MG" and ds.PresentationIntentType == "FOR PRESENTATION"
    refs = {item.ReferencedSOPInstanceUID: item for item in ds.SourceImageSequence}
    assert set(refs) == {le.SOPInstanceUID, he.SOPInstanceUID}
    for item in ds.SourceImageSequence:
        assert item.ReferencedSOPClassUID == le.SOPClassUID
        assert item.PurposeOfReferenceCodeSequence[0].CodeValue == "121322"
        assert item.PurposeOfReferenceCodeSequence[0].CodingSchemeDesignator == "DCM"
        assert item.SpatialLocationsPreserved == "YES"
    assert ds.DerivationCodeSequence[0].CodeValue == "113062"
    assert "0.245" in ds.DerivationDescription and "ln(HE)" in ds.DerivationDescription
    assert "physics, T=50 mm" in ds.DerivationDescription
    assert "research use" in ds.SeriesDescription.lower()
    assert any("cemrecon" in v for v in ds.SoftwareVersions)
    assert ds.ContributingEquipmentSequence[0].Manufacturer == "cemrecon"
    assert ds.ContributingEquipmentSequence[0].PurposeOfReferenceCodeSequence[0].CodeValue == "109102"


def test_rc_copies_le_view_and_acquisition_time(written, sources):
    _, _, ds = written
    le, _ = sources
    for keyword in ("ImageLaterality", "ViewPosition", "PatientOrientation", "ImagerPixelSpacing",
                    "AcquisitionDate", "AcquisitionTime", "PatientID", "PatientName", "AccessionNumber"):
        assert ds[keyword].value == le[keyword].value, keyword
    assert ds.ViewCodeSequence[0].CodeValue == "399368009"
    assert "ViewModifierCodeSequence" in ds.ViewCodeSequence[0]
    # not an exposure: no dose, kVp or vendor private groups
    for keyword in ("KVP", "OrganDose", "EntranceDoseInmGy", "Laterality"):
        assert keyword not in ds, keyword
    assert not any(elem.tag.group == 0x0045 for elem in ds)


def test_rc_content_time_is_creation_time(sources, rc_image):
    le, he = sources
    created = datetime(2030, 1, 2, 3, 4, 5)
    ds = build_rc_dataset(rc_image[0], le, he, weight=0.2, content_datetime=created)
    assert (ds.ContentDate, ds.ContentTime[:6]) == ("20300102", "030405")
    assert (ds.AcquisitionDate, ds.AcquisitionTime) == (le.AcquisitionDate, le.AcquisitionTime)


def test_rc_pixels_unsigned_and_reversible(written, rc_image):
    _, info, ds = written
    rc, breast = rc_image
    assert ds.PixelRepresentation == 0 and ds.BitsAllocated == 16
    assert ds.HighBit == ds.BitsStored - 1
    assert int(ds.pixel_array.max()) <= 2**ds.BitsStored - 1
    assert ds.RescaleSlope == 1 and ds.RescaleIntercept == 0 and ds.RescaleType == "US"
    assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.PresentationLUTShape == "IDENTITY"
    mapping, meta = read_mapping(ds, with_info=True)
    assert mapping == info.mapping
    assert meta["weight"] == pytest.approx(0.245)
    assert meta["fingerprint"] == "abc123"
    assert meta["clip_fraction"] == 0.0
    # reversible within half a quantisation step (plus float32 representation of the RC)
    err = np.abs(decode_pixels(ds) - rc.astype(np.float64))
    assert err.max() <= mapping.step / 2 + 1e-6
    # the mapping text in Derivation Description states the same numbers
    assert f"{mapping.offset_dn:.6g}" in ds.DerivationDescription


def test_rc_window_covers_breast(written, rc_image):
    _, _, ds = written
    rc, breast = rc_image
    stored = ds.pixel_array
    lo, hi = ds.WindowCenter - ds.WindowWidth / 2, ds.WindowCenter + ds.WindowWidth / 2
    inside = (stored[breast] >= lo) & (stored[breast] <= hi)
    # window = 1st..99th percentile of the breast region: ~98% of breast pixels inside it
    assert 0.95 <= inside.mean() <= 1.0
    assert ds.WindowWidth >= 1


def test_rc_uids_are_deterministic(tmp_path, sources, rc_image, written):
    le, he = sources
    rc, breast = rc_image
    _, first, _ = written
    again = write_rc(tmp_path / "again.dcm", rc, le, he, weight=0.245, weight_description="physics, T=50 mm",
                     breast_mask=breast, fingerprint="abc123")
    assert (again.sop_instance_uid, again.series_instance_uid) == (first.sop_instance_uid, first.series_instance_uid)
    other = write_rc(tmp_path / "other.dcm", rc, le, he, weight=0.25, breast_mask=breast, fingerprint="abc123")
    assert other.sop_instance_uid != first.sop_instance_uid
    assert other.series_instance_uid == first.series_instance_uid  # same study, same cemrecon series


@pytest.mark.external
def test_rc_passes_dciodvfy(written):
    out, _, _ = written
    assert dciodvfy_errors(out) == []


@pytest.mark.external
def test_rc_without_optional_le_attributes_still_valid(tmp_path, sources, rc_image):
    le, he = deepcopy(sources)
    for keyword in ("ViewCodeSequence", "PatientOrientation", "FrameOfReferenceUID", "DetectorType"):
        del le[keyword]
    le.ViewPosition = "CC"
    rc, _ = rc_image
    ds = build_rc_dataset(rc, le, he, weight=0.2)
    assert ds.ViewCodeSequence[0].CodeValue == "399162004"
    assert ds.AnatomicRegionSequence[0].CodeValue == "76752008"
    out = write_dataset_atomic(ds, tmp_path / "minimal.dcm")
    assert dciodvfy_errors(out) == []


def test_rc_rejects_bad_inputs(sources, rc_image):
    le, he = sources
    rc, _ = rc_image
    with pytest.raises(ValueError, match="does not match le_header Rows/Columns"):
        build_rc_dataset(rc[:10], le, he, weight=0.2)
    with pytest.raises(TypeError, match="must be floating point"):
        build_rc_dataset(rc.astype(np.int32), le, he, weight=0.2)
    other = deepcopy(he)
    other.StudyInstanceUID = generate_uid()
    with pytest.raises(ValueError, match="different studies"):
        build_rc_dataset(rc, le, other, weight=0.2)
    with pytest.raises(ValueError, match="weight must be finite"):
        build_rc_dataset(rc, le, he, weight=float("nan"))
    with pytest.raises(TypeError, match="le_header must be a pydicom Dataset"):
        build_rc_dataset(rc, "le.dcm", he, weight=0.2)


def test_registered_sources_mark_spatial_locations_not_preserved(sources, rc_image):
    le, he = sources
    ds = build_rc_dataset(rc_image[0], le, he, weight=0.2, spatial_locations_preserved=False)
    assert {item.SpatialLocationsPreserved for item in ds.SourceImageSequence} == {"NO"}


# --- iodine image ------------------------------------------------------------------------------


def test_iodine_image_read_back(tmp_path, sources, rc_image):
    le, he = sources
    _, breast = rc_image
    rng = np.random.default_rng(3)
    iodine = (breast * 0.3 + 0.05 * rng.standard_normal(breast.shape)).astype(np.float32)
    iodine[40:50, 10:20] += 2.0
    info = write_iodine_image(tmp_path / "I.dcm", iodine, le, he, weight=0.245, calibration_id="cal-1",
                              breast_mask=breast)
    ds = pydicom.dcmread(info.path)
    mapping = read_mapping(ds)
    assert mapping == iodine_mapping()
    assert np.abs(decode_pixels(ds) - iodine).max() <= mapping.step / 2 + 1e-6
    assert "mg/cm2" in ds.DerivationDescription and "cal-1" in ds.DerivationDescription
    assert "mg/cm2" in ds.SeriesDescription
    assert ds.SeriesInstanceUID != build_rc_dataset(iodine, le, he, weight=0.245).SeriesInstanceUID


@pytest.mark.external
def test_iodine_image_passes_dciodvfy(tmp_path, sources, rc_image):
    le, he = sources
    info = write_iodine_image(tmp_path / "I.dcm", rc_image[1].astype(np.float32), le, he, calibration_id="cal-1")
    assert dciodvfy_errors(info.path) == []


# --- atomic writing ---------------------------------------------------------------------------


def test_atomic_write_leaves_nothing_on_failure(tmp_path, sources, rc_image):
    le, he = sources
    ds = build_rc_dataset(rc_image[0], le, he, weight=0.2)
    target = tmp_path / "is_a_dir.dcm"
    target.mkdir()  # os.replace onto a directory fails
    with pytest.raises(OutputError, match="is_a_dir.dcm"):
        write_dataset_atomic(ds, target)
    assert [p.name for p in tmp_path.iterdir()] == ["is_a_dir.dcm"]


def test_atomic_write_replaces_existing_file(tmp_path, sources, rc_image):
    le, he = sources
    target = tmp_path / "x.dcm"
    target.write_bytes(b"old")
    write_dataset_atomic(build_rc_dataset(rc_image[0], le, he, weight=0.2), target)
    assert pydicom.dcmread(target).Modality == "MG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.dcm"]
    assert not list(Path(tmp_path).glob("*.tmp"))


def test_written_files_get_normal_permissions(tmp_path, sources, rc_image):
    le, he = sources
    umask = os.umask(0o022)
    os.umask(umask)
    info = write_rc(tmp_path / "perm.dcm", rc_image[0], le, he, weight=0.2)
    # 0666 minus the umask, like any file the user creates (not mkstemp's 0600)
    assert stat.S_IMODE(info.path.stat().st_mode) == 0o666 & ~umask
