"""Reader: classification, normalisation, acquisition metadata, pixel integrity and decoding.

Small hand-built datasets (tests/_messy.py); the phantom-based messy folder is in
tests/test_io_read_messy.py.
"""

from __future__ import annotations

import datetime as dt
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from cemrecon.errors import DicomReadError, UnsupportedDicomError
from cemrecon.io import pixels as px
from cemrecon.io.enums import Energy, FileRole, Laterality, View
from cemrecon.io.read import (
    ReaderWarning,
    acquisition_meta,
    material_symbol,
    normalise_laterality,
    normalise_view,
    read_exams,
    scan_file,
)
from tests._messy import T0, make_image, make_non_image, pixels_of, truncate_copy, write

SECOND = dt.timedelta(seconds=1)


def _pair_files(root: Path, **kw) -> tuple[Path, Path]:
    le = write(make_image("LE", time=T0, **kw), root / "le.dcm")
    he = write(make_image("HE", time=T0 + 2 * SECOND, **kw), root / "he.dcm")
    return le, he


# ----------------------------------------------------------------------------- classification


@pytest.mark.parametrize("style", ["ge", "standard"])
def test_energy_token_anywhere_in_image_type(tmp_path, style):
    # GE writes the token in value 4, CP-1342 in value 5: both must pair
    le, he = _pair_files(tmp_path, style=style)
    result = read_exams(tmp_path)
    assert [(Path(p.le.path), Path(p.he.path)) for p in result.pairs] == [(le, he)]
    assert result.entry(le).role is FileRole.LE and result.entry(he).role is FileRole.HE
    assert result.pairs[0].le.meta.energy is Energy.LOW and result.pairs[0].he.meta.energy is Energy.HIGH


def test_non_ge_header_with_sct_codes_only(tmp_path):
    # no ViewPosition, no Image Laterality, no private tags: Laterality + SCT View Code Sequence
    _pair_files(tmp_path, vendor="other", lat="L", view="MLO", style="standard")
    result = read_exams(tmp_path)
    (pair,) = result.pairs
    assert (pair.laterality, pair.view) == (Laterality.L, View.MLO)
    assert "ViewPosition" not in pair.le.header and "ImageLaterality" not in pair.le.header
    assert pair.le.meta.dark_offset_dn is None


def test_fallback_kvp_and_filter_without_tokens(tmp_path):
    le, he = _pair_files(tmp_path, style="none")
    result = read_exams(tmp_path)
    assert len(result.pairs) == 1
    assert any("no energy token" in n for n in result.entry(le).notes)
    assert result.entry(he).role is FileRole.HE


def test_lone_low_kvp_image_is_a_plain_mammogram(tmp_path):
    # 29 kVp, Rh/Ag, no token and no HE partner: a non-contrast mammogram, never an LE
    path = write(make_image(None, style="none"), tmp_path / "plain.dcm")
    result = read_exams(tmp_path)
    entry = result.entry(path)
    assert entry.role is FileRole.OTHER_IMAGE and "non-contrast" in entry.reason
    assert result.pairs == []


def test_for_presentation_is_reported_not_recombined(tmp_path):
    le = write(make_image("LE", intent="FOR PRESENTATION"), tmp_path / "le.dcm")
    write(make_image("HE", time=T0 + SECOND), tmp_path / "he.dcm")
    result = read_exams(tmp_path)
    assert result.pairs == []
    entry = result.entry(le)
    assert entry.role is FileRole.OTHER_IMAGE
    assert "For Presentation" in entry.reason and "LOG" in entry.reason and "LOW_ENERGY" in entry.reason
    assert "orphan HE" in result.entry(tmp_path / "he.dcm").reason


@pytest.mark.parametrize(
    ("image_type", "processing_code"),
    [
        (["DERIVED", "PRIMARY", "", "RECOMBINED"], None),  # GE
        (["DERIVED", "PRIMARY", "POST_CONTRAST", "SUBTRACTION", ""], None),  # CP-1342
        (["DERIVED", "PRIMARY"], "GEMS_CESM_1"),  # GE processing code only
    ],
)
def test_vendor_recombined_images(tmp_path, image_type, processing_code):
    ds = make_image("LE", image_type=image_type)
    if processing_code:
        ds.AcquisitionDeviceProcessingCode = processing_code
    path = write(ds, tmp_path / "rc.dcm")
    entry = read_exams(tmp_path).entry(path)
    assert entry.role is FileRole.VENDOR_RC and "recombined" in entry.reason


def test_derived_energy_image_is_not_raw(tmp_path):
    # the observed GE "DERIVED\SECONDARY\\LOW_ENER..." (truncated token): processed, not an input
    path = write(make_image("LE", image_type=["DERIVED", "SECONDARY", "", "LOW_ENER"]), tmp_path / "x.dcm")
    entry = read_exams(tmp_path).entry(path)
    assert entry.role is FileRole.OTHER_IMAGE and "LOW_ENERGY image is DERIVED" in entry.reason


def test_inverted_linear_sign_is_not_used(tmp_path):
    ds = make_image("LE")
    ds.PixelIntensityRelationshipSign = -1
    path = write(ds, tmp_path / "x.dcm")
    entry = read_exams(tmp_path).entry(path)
    assert entry.role is FileRole.OTHER_IMAGE and "Sign -1" in entry.reason


def test_contradictory_image_type(tmp_path):
    path = write(make_image("LE", image_type=["ORIGINAL", "PRIMARY", "LOW_ENERGY", "HIGH_ENERGY"]), tmp_path / "x.dcm")
    entry = read_exams(tmp_path).entry(path)
    assert entry.role is FileRole.OTHER_IMAGE and "contradictory" in entry.reason


def test_non_dicom_non_image_and_other_modality(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "fake.dcm").write_bytes(b"\x08\x00" + b"\xff" * 300)  # looks like a raw data set start
    make_non_image(tmp_path / "sr.dcm")
    result = read_exams(tmp_path)
    roles = {Path(m.path).name: m.role for m in result.manifest}
    assert roles == {
        "notes.txt": FileRole.NOT_DICOM,
        "empty": FileRole.NOT_DICOM,
        "fake.dcm": FileRole.NOT_DICOM,
        "sr.dcm": FileRole.NON_IMAGE,
    }
    assert all(m.reason for m in result.excluded) and len(result.excluded) == 4


def test_dicom_without_preamble_is_read(tmp_path):
    from pydicom.filewriter import dcmwrite

    ds = make_image("LE")
    del ds.file_meta  # a raw data set (implicit VR little endian, no preamble, no 'DICM')
    ds.preamble = None
    path = tmp_path / "raw.dcm"
    dcmwrite(path, ds, implicit_vr=True, little_endian=True, enforce_file_format=False)
    assert path.read_bytes()[128:132] != b"DICM"
    scan = scan_file(path)
    assert scan.role is FileRole.LE and scan.image is not None


def test_header_truncated_file_is_unreadable(tmp_path):
    full = write(make_image("LE"), tmp_path / "full.dcm")
    size = full.stat().st_size
    cut = truncate_copy(full, tmp_path / "cut.dcm", drop_bytes=size - 700)  # keep 700 bytes of header
    scan = scan_file(cut)
    assert scan.role is FileRole.UNREADABLE and scan.image is None, scan.reason


def test_truncated_native_pixels(tmp_path):
    full = write(make_image("LE"), tmp_path / "full.dcm")
    cut = truncate_copy(full, tmp_path / "cut.dcm", drop_bytes=10)
    scan = scan_file(cut)
    assert scan.role is FileRole.UNREADABLE
    assert "truncated" in scan.reason and "10 missing" in scan.reason


# ----------------------------------------------------------------------------- normalisation


def test_acquisition_meta_values():
    ds = make_image("HE", time=T0)
    meta = acquisition_meta(ds)
    assert meta.kvp == 45.0 and meta.anode == "Rh" and meta.filter_material == "Cu"
    assert meta.filter_mm == pytest.approx(0.3) and meta.thickness_mm == 52.0
    assert meta.compression_force_n == 98.0 and meta.exposure_mas == pytest.approx(32.0)
    assert meta.pixel_spacing_mm == (0.1, 0.1) and (meta.rows, meta.columns) == (40, 32)
    assert meta.bits_stored == 14 and meta.photometric == "MONOCHROME1"
    assert meta.pixel_intensity_relationship == "LIN" and meta.presentation_intent == "FOR PROCESSING"
    assert meta.energy is Energy.HIGH and meta.dark_offset_dn == 50.0 and meta.gain_dn_per_kev is None
    assert meta.acquisition_datetime == T0 and meta.manufacturer == "GE Healthcare"
    with pytest.raises(TypeError, match="pydicom Dataset"):
        acquisition_meta("not a dataset")  # type: ignore[arg-type]


def test_acquisition_meta_fallbacks():
    ds = make_image(None, style="none", kvp=49, filter_material="TITANIUM")
    del ds.ExposureInuAs
    ds.XRayTubeCurrent, ds.ExposureTime = "100", "250"  # mA, ms -> 25 mAs
    ds.AcquisitionDateTime = "20260302101502.5"
    meta = acquisition_meta(ds)
    assert meta.energy is Energy.HIGH and meta.filter_material == "Ti"
    assert meta.exposure_mas == pytest.approx(25.0)
    assert meta.acquisition_datetime == dt.datetime(2026, 3, 2, 10, 15, 2, 500000)
    plain = acquisition_meta(make_image(None, style="none"))
    assert plain.energy is None  # a 29 kVp Rh/Ag image is not called LOW without a token


@pytest.mark.parametrize(
    ("name", "symbol"),
    [("MOLYBDENUM", "Mo"), ("RHODIUM", "Rh"), ("TUNGSTEN", "W"), ("SILVER", "Ag"), ("COPPER", "Cu"),
     ("ALUMINUM", "Al"), ("ALUMINIUM", "Al"), ("TITANIUM", "Ti"), (" copper ", "Cu"), ("Rh", "Rh"),
     ("UNOBTAINIUM", None), ("", None), (None, None)],
)
def test_material_symbol(name, symbol):
    assert material_symbol(name) == symbol


def _view_item(code, scheme, meaning):
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code, scheme, meaning
    return Sequence([item])


@pytest.mark.parametrize(
    ("code", "scheme", "expected"),
    [("399162004", "SCT", View.CC), ("R-10242", "SRT", View.CC), ("R-10242", "SNM3", View.CC),
     ("399368009", "SCT", View.MLO), ("R-10226", "SNM3", View.MLO), ("399192008", "SCT", View.XCCL),
     ("R-1024B", "SRT", View.XCCM), ("399260004", "SCT", View.ML), ("399196006", "SCT", View.OTHER)],
)
def test_view_codes(code, scheme, expected):
    ds = Dataset()
    ds.ViewCodeSequence = _view_item(code, scheme, "whatever")
    assert normalise_view(ds) == (expected, [])


def test_view_sources_and_contradiction():
    ds = Dataset()
    ds.ViewPosition = "MLO"
    assert normalise_view(ds) == (View.MLO, [])
    ge = Dataset()
    ge.private_block(0x0045, "GEMS_SENO_02", create=True).add_new(0x1B, "LO", "LXCCL")
    assert normalise_view(ge) == (View.XCCL, [])
    both = Dataset()
    both.ViewCodeSequence = _view_item("X", "99LOCAL", "cranio-caudal")  # meaning fallback
    both.ViewPosition = "MLO"
    view, notes = normalise_view(both)
    assert view is View.CC and len(notes) == 1 and "contradiction" in notes[0]
    assert normalise_view(Dataset()) == (None, [])


def test_laterality_sources():
    ds = Dataset()
    ds.ImageLaterality = "L"
    assert normalise_laterality(ds) == (Laterality.L, [], False)
    ds2 = Dataset()
    ds2.Laterality = "R"
    ds2.private_block(0x0045, "GEMS_SENO_02", create=True).add_new(0x1B, "LO", "LCC")
    lat, notes, inferred = normalise_laterality(ds2)
    assert lat is Laterality.R and "contradiction" in notes[0] and not inferred
    ds3 = Dataset()
    ds3.PatientOrientation = ["P", "FL"]  # right MLO in standard hanging
    lat, notes, inferred = normalise_laterality(ds3)
    assert lat is Laterality.R and inferred and "Patient Orientation" in notes[0]
    assert normalise_laterality(Dataset()) == (None, [], False)


def test_laterality_from_orientation_only_warns_but_pairs(tmp_path):
    for e, t in (("LE", T0), ("HE", T0 + SECOND)):
        ds = make_image(e, lat="L", view="CC", time=t)
        del ds.ImageLaterality
        ds.private_block(0x0045, "GEMS_SENO_02")[0x1B].value = "CC"
        write(ds, tmp_path / f"{e}.dcm")
    with pytest.warns(ReaderWarning, match="Patient Orientation"):
        result = read_exams(tmp_path, strictness="warn")
    assert [p.laterality for p in result.pairs] == [Laterality.L]


# ----------------------------------------------------------------------------- pixel data


@pytest.mark.parametrize("syntax", [JPEG2000Lossless, JPEGLSLossless, RLELossless])
def test_compressed_pair_decodes_bit_exact(tmp_path, syntax):
    le_ds, he_ds = make_image("LE", seed=1), make_image("HE", time=T0 + SECOND, seed=2)
    write(le_ds, tmp_path / "le.dcm", syntax=syntax)
    write(he_ds, tmp_path / "he.dcm", syntax=syntax)
    (pair,) = read_exams(tmp_path).pairs
    assert pair.le.is_compressed
    le, he = pair.load()
    assert le.dtype == np.uint16 and he.dtype == np.uint16
    np.testing.assert_array_equal(le, pixels_of(le_ds))  # lossless: exact
    np.testing.assert_array_equal(he, pixels_of(he_ds))
    le_t, he_t = pair.load(parallel=True)
    np.testing.assert_array_equal(le_t, le)
    np.testing.assert_array_equal(he_t, he)
    with ThreadPoolExecutor(2) as pool:  # any Executor (a process pool in real use)
        le_x, he_x = pair.load(executor=pool)
    np.testing.assert_array_equal(le_x, le)
    np.testing.assert_array_equal(he_x, he)


def _encapsulated(tmp_path: Path, syntax) -> Path:
    return write(make_image("LE", seed=3), tmp_path / "c.dcm", syntax=syntax)


def test_truncated_jpeg2000_reads_as_plausible_header_but_is_caught(tmp_path):
    full = _encapsulated(tmp_path, JPEG2000Lossless)
    cut = truncate_copy(full, tmp_path / "cut.dcm", drop_bytes=300)
    # the trap: the header alone looks fine
    hdr = dcmread(cut, stop_before_pixels=True)
    assert hdr.Rows == 40 and "LOW_ENERGY" in hdr.ImageType
    scan = scan_file(cut)
    assert scan.role is FileRole.UNREADABLE and scan.reason.startswith("truncated: fragment")


def test_missing_sequence_delimiter_and_codestream_end(tmp_path):
    full = _encapsulated(tmp_path, JPEG2000Lossless)
    data = full.read_bytes()
    assert data.endswith(b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")  # sequence delimiter
    no_delim = tmp_path / "nodelim.dcm"
    no_delim.write_bytes(data[:-8])
    assert "without a Sequence Delimiter" in scan_file(no_delim).reason
    # re-wrap a cut codestream with consistent fragment lengths: only the end marker tells
    head_end = data.rfind(b"\xfe\xff\x00\xe0")  # last item tag = the one fragment
    (frag_len,) = struct.unpack("<I", data[head_end + 4 : head_end + 8])
    frag = data[head_end + 8 : head_end + 8 + frag_len]
    cut = frag[: len(frag) // 2]
    cut += b"\x00" * (len(cut) % 2)
    rewrapped = data[:head_end] + b"\xfe\xff\x00\xe0" + struct.pack("<I", len(cut)) + cut + data[-8:]
    bad = tmp_path / "cutstream.dcm"
    bad.write_bytes(rewrapped)
    reason = scan_file(bad).reason
    assert reason is not None and "end marker" in reason


def test_rle_truncation_caught(tmp_path):
    full = _encapsulated(tmp_path, RLELossless)
    cut = truncate_copy(full, tmp_path / "cut.dcm", drop_bytes=40)
    assert scan_file(cut).role is FileRole.UNREADABLE


def test_decoder_problem_names_plugin(monkeypatch):
    assert px.decoder_problem("1.2.840.10008.1.2.1") is None
    assert "not a DICOM transfer syntax" in px.decoder_problem("1.2.3.4")

    class _NoPlugin:
        is_available = False
        missing_dependencies = ["pylibjpeg - requires pylibjpeg>=2.0 and pylibjpeg-openjpeg>=2.0"]

    monkeypatch.setattr("pydicom.pixels.get_decoder", lambda uid: _NoPlugin())
    reason = px.decoder_problem(JPEG2000Lossless)
    assert "pylibjpeg-openjpeg" in reason and "JPEG 2000" in reason


def test_missing_plugin_excludes_file_with_reason(tmp_path, monkeypatch):
    write(make_image("LE"), tmp_path / "le.dcm", syntax=JPEG2000Lossless)
    write(make_image("HE", time=T0 + SECOND), tmp_path / "he.dcm")
    monkeypatch.setattr(
        px, "decoder_problem", lambda ts: None if ts == "1.2.840.10008.1.2.1" else "cannot decode: install pylibjpeg"
    )
    result = read_exams(tmp_path)
    assert result.pairs == []
    entry = result.entry(tmp_path / "le.dcm")
    assert entry.role is FileRole.LE and "install pylibjpeg" in entry.reason


def test_read_pixels_checks_the_scanned_header(tmp_path):
    # the file changes between the header scan and the decode: the mismatch is caught, naming the file
    path = write(make_image("LE"), tmp_path / "le.dcm")
    image = scan_file(path).image
    write(make_image("LE", rows=48), path)
    with pytest.raises(DicomReadError, match=r"le\.dcm.*\(48, 32\).*40 x 32"):
        image.read_pixels()


def test_high_bits_above_bits_stored_are_ignored(tmp_path):
    # PS3.5 8.1.1: bits above High Bit are not part of the pixel value (pydicom masks them)
    ds = make_image("LE")
    arr = pixels_of(ds).copy()
    arr[0, 0] = (1 << 15) | 123
    ds.PixelData = arr.tobytes()
    out = scan_file(write(ds, tmp_path / "le.dcm")).image.read_pixels()
    assert out[0, 0] == 123 and out.max() < (1 << 14)


def test_signed_pixels_unsupported(tmp_path):
    ds = make_image("LE")
    ds.PixelRepresentation = 1
    path = write(ds, tmp_path / "le.dcm")
    scan = scan_file(path)
    assert scan.image is None and "signed" in scan.reason
    with pytest.raises(UnsupportedDicomError, match="signed"):
        px.decode_pixels(path)


# ----------------------------------------------------------------------------- DICOMDIR


def test_dicomdir_input(tmp_path):
    from pydicom.fileset import FileSet

    src = tmp_path / "src"
    le, he = _pair_files(src)
    fs = FileSet()
    fs.add(dcmread(le))
    fs.add(dcmread(he))
    out = tmp_path / "media"
    fs.write(out)
    fs._stage["t"].cleanup()  # pydicom's staging TemporaryDirectory, else a ResourceWarning at exit
    result = read_exams([out / "DICOMDIR"])
    assert len(result.pairs) == 1
    assert result.entry(out / "DICOMDIR").role is FileRole.NON_IMAGE
    assert len(result.manifest) == 3
    # a file the index references but the medium lost is reported, not ignored
    lost = Path(result.pairs[0].he.path)
    lost.unlink()
    result = read_exams([out / "DICOMDIR"])
    assert result.pairs == []
    assert result.entry(lost).role is FileRole.UNREADABLE and "missing" in result.entry(lost).reason


def test_missing_path_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_exams(tmp_path / "nope")
    with pytest.raises(ValueError, match="strictness must be one of"):
        read_exams(tmp_path, strictness="loud")
