"""Builders of small, messy DICOM inputs for the reader / pairing tests.

Two levels:

* :func:`make_image` builds one tiny MG dataset (GE-like by default, or a non-GE
  header with only SCT codes) with every knob the classifier looks at;
  :func:`write` saves it, optionally compressed.
* :func:`build_messy_folder` turns phantom exams into a PACS-export-like mess
  (shuffled names, nested folders, duplicates, truncations, distractors...) and
  returns the expected fate of every file it wrote.
"""

from __future__ import annotations

import copy
import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

DM_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.2.1"
DM_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
XRAY_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"
T0 = dt.datetime(2026, 3, 2, 10, 15, 0)

_VIEW_SCT = {"CC": ("399162004", "cranio-caudal"), "MLO": ("399368009", "medio-lateral oblique")}
_VIEW_SRT = {"CC": ("R-10242", "cranio-caudal"), "MLO": ("R-10226", "medio-lateral oblique")}
_ORIENT = {("R", "CC"): ["P", "L"], ("L", "CC"): ["A", "R"], ("R", "MLO"): ["P", "FL"], ("L", "MLO"): ["A", "FR"]}


def uid(*parts: object) -> str:
    return str(generate_uid(entropy_srcs=["cemrecon-test", *map(str, parts)]))


def make_image(
    energy: str | None = "LE",
    *,
    lat: str | None = "R",
    view: str | None = "CC",
    study: str = "1",
    time: dt.datetime = T0,
    name: str | None = None,
    rows: int = 40,
    cols: int = 32,
    spacing_mm: float = 0.1,
    kvp: float | None = None,
    filter_material: str | None = None,
    style: str = "ge",
    vendor: str = "ge",
    intent: str = "FOR PROCESSING",
    modality: str = "MG",
    frame_of_reference: str | None = "auto",
    image_type: list[str] | None = None,
    seed: int = 0,
) -> Dataset:
    """One tiny MG image.

    ``energy`` in {"LE", "HE", None}; ``style``: "ge" (token in value 4), "standard"
    (CP-1342, value 5), "none" (no token).  ``vendor="other"``: no private tags, view only
    as an SCT-coded View Code Sequence (no View Position), Laterality not Image Laterality.
    """
    name = name or f"{study}-{lat}-{view}-{energy}-{time.isoformat()}"
    sop = uid("sop", name)
    meta = FileMetaDataset()
    sop_class = DM_PROCESSING if intent == "FOR PROCESSING" else DM_PRESENTATION
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    token = {"LE": "LOW_ENERGY", "HE": "HIGH_ENERGY", None: ""}[energy]
    if image_type is None:
        image_type = {
            "ge": ["ORIGINAL", "PRIMARY", "", token],
            "standard": ["ORIGINAL", "PRIMARY", "", "", token],
            "none": ["ORIGINAL", "PRIMARY"],
        }[style]
    ds.ImageType = image_type
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop
    ds.Modality = modality
    ds.PresentationIntentType = intent
    ds.StudyInstanceUID = uid("study", study)
    ds.SeriesInstanceUID = uid("series", study, energy)
    ds.PatientID = f"P{study}"
    ds.PatientName = f"Test^{study}"
    ds.StudyDate, ds.StudyTime, ds.StudyID = T0.strftime("%Y%m%d"), "101000", study
    ds.SeriesNumber, ds.InstanceNumber = 1 if energy == "LE" else 2, 1
    ds.AcquisitionDate = time.strftime("%Y%m%d")
    ds.AcquisitionTime = time.strftime("%H%M%S.%f")
    if kvp is None:
        kvp = {"LE": 28.0, "HE": 45.0, None: 29.0}[energy]
    if kvp:
        ds.KVP = f"{kvp:g}"
    ds.AnodeTargetMaterial = "RHODIUM"
    if filter_material is None:
        filter_material = {"LE": "SILVER", "HE": "COPPER", None: "SILVER"}[energy]
    ds.FilterMaterial = filter_material
    ds.FilterThicknessMinimum = "0.3" if filter_material == "COPPER" else "0.03"
    ds.FilterThicknessMaximum = ds.FilterThicknessMinimum
    ds.BodyPartThickness = "52"
    ds.CompressionForce = "98"
    ds.ExposureInuAs = "56000" if energy == "LE" else "32000"
    ds.ImagerPixelSpacing = [f"{spacing_mm:g}", f"{spacing_mm:g}"]
    if frame_of_reference == "auto":
        frame_of_reference = uid("for", study, lat, view, time.strftime("%H%M"))
    if frame_of_reference:
        ds.FrameOfReferenceUID = frame_of_reference
    if vendor == "ge":
        ds.Manufacturer = "GE Healthcare"
        if lat:
            ds.ImageLaterality = lat
        if view:
            ds.ViewPosition = view
            code, meaning = _VIEW_SRT[view]
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code, "SNM3", meaning
            ds.ViewCodeSequence = Sequence([item])
            block = ds.private_block(0x0045, "GEMS_SENO_02", create=True)
            block.add_new(0x1B, "LO", f"{lat or ''}{view}")
        if lat and view:
            ds.PatientOrientation = _ORIENT[(lat, view)]
        block = ds.private_block(0x0029, "CEMRECON PHANTOM", create=True)
        block.add_new(0x10, "DS", "50")
    else:
        ds.Manufacturer = "Other Vendor"
        if lat:
            ds.Laterality = lat
        if view:
            code, meaning = _VIEW_SCT[view]
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code, "SCT", meaning
            ds.ViewCodeSequence = Sequence([item])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 14, 13, 0
    ds.PixelIntensityRelationship = "LIN" if intent == "FOR PROCESSING" else "LOG"
    ds.PixelIntensityRelationshipSign = 1
    rng = np.random.default_rng(seed)
    ds.PixelData = rng.integers(0, 1 << 14, size=(rows, cols), dtype=np.uint16).tobytes()
    return ds


def pixels_of(ds: Dataset) -> np.ndarray:
    return np.frombuffer(ds.PixelData, dtype="<u2").reshape(ds.Rows, ds.Columns)


def write(ds: Dataset, path: Path, *, syntax: str | None = None) -> Path:
    """Save ``ds`` (a copy, compressed to ``syntax`` when given) to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if syntax is not None:
        ds = dcmread_copy(ds)
        kwargs = {}
        if syntax == JPEG2000Lossless:
            kwargs["encoding_plugin"] = "pylibjpeg"
        ds.compress(syntax, **kwargs)
    ds.save_as(path, enforce_file_format=True)
    return path


def dcmread_copy(ds: Dataset) -> Dataset:
    return copy.deepcopy(ds)


def make_non_image(path: Path, *, study: str = "1") -> Path:
    """An X-Ray Radiation Dose SR (no pixels)."""
    meta = FileMetaDataset()
    sop = uid("sr", path.name)
    meta.MediaStorageSOPClassUID = XRAY_DOSE_SR
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = XRAY_DOSE_SR, sop
    ds.Modality = "SR"
    ds.StudyInstanceUID = uid("study", study)
    ds.ValueType = "CONTAINER"
    return write(ds, path)


def make_ct(path: Path, *, study: str = "1") -> Path:
    """A tiny CT image (unrelated modality)."""
    ds = make_image("LE", study=study, name=f"ct-{path.name}")
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = CT_IMAGE
    ds.Modality = "CT"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    return write(ds, path)


def truncate_copy(src: Path, dst: Path, *, drop_bytes: int) -> Path:
    data = Path(src).read_bytes()
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(data[: len(data) - drop_bytes])
    return dst


def reuid(src: Path, dst: Path, *, shift_s: float = 0.0, tag: str = "copy") -> Path:
    """Copy a file with a new SOP Instance UID (and FoR UID) and acquisition times shifted."""
    ds = dcmread(src)
    new = uid("reuid", tag, ds.SOPInstanceUID)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = new
    if "FrameOfReferenceUID" in ds:
        ds.FrameOfReferenceUID = uid("reuid-for", tag, ds.FrameOfReferenceUID)
    for date_kw, time_kw in (("AcquisitionDate", "AcquisitionTime"), ("ContentDate", "ContentTime")):
        if time_kw in ds and date_kw in ds:
            t = dt.datetime.strptime(ds[date_kw].value + ds[time_kw].value.split(".")[0][:6], "%Y%m%d%H%M%S")
            t += dt.timedelta(seconds=shift_s)
            ds[date_kw].value = t.strftime("%Y%m%d")
            ds[time_kw].value = t.strftime("%H%M%S")
    if "AcquisitionDateTime" in ds:
        t = dt.datetime.strptime(str(ds.AcquisitionDateTime)[:14], "%Y%m%d%H%M%S") + dt.timedelta(seconds=shift_s)
        ds.AcquisitionDateTime = t.strftime("%Y%m%d%H%M%S")
    dst.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dst, enforce_file_format=True)
    return dst


@dataclass
class Fate:
    """Expected outcome of one file: role, and the pair key when used or a reason fragment."""

    role: str
    pair: str | None = None  # full pair key "<study_uid>/<LAT>/<VIEW>/<index>" when used
    reason: str | None = None  # substring expected in the reason when excluded


def to_other_vendor(src: Path, dst: Path, *, study_uid: str) -> Path:
    """Copy a GE-like phantom file as a CP-1342 / non-GE header in another study.

    Token in Image Type value 5, no private tags, no View Position / Image Laterality:
    only Laterality and an SCT View Code Sequence.  New SOP / FoR UIDs.
    """
    ds = dcmread(src)
    token = next(t for t in ds.ImageType if t.endswith("_ENERGY"))
    ds.ImageType = ["ORIGINAL", "PRIMARY", "", "", token]
    ds.remove_private_tags()
    ds.Manufacturer, ds.ManufacturerModelName = "Other Vendor", "Model X"
    lat = ds.ImageLaterality
    del ds.ImageLaterality, ds.ViewPosition, ds.PatientOrientation
    ds.Laterality = lat
    code, meaning = _VIEW_SCT["CC" if "cranio" in ds.ViewCodeSequence[0].CodeMeaning.lower() else "MLO"]
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code, "SCT", meaning
    ds.ViewCodeSequence = Sequence([item])
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = uid("other-series", study_uid, token)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid("other", ds.SOPInstanceUID)
    ds.FrameOfReferenceUID = uid("other-for", ds.FrameOfReferenceUID)
    dst.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dst, enforce_file_format=True)
    return dst


def build_messy_folder(exam_dir: Path, root: Path) -> dict[Path, Fate]:
    """Make a PACS-export-like mess from one phantom exam folder (``<exam>/dicom/*.dcm``).

    Returns ``{path: Fate}`` for every file written under ``root``.
    """
    fates: dict[Path, Fate] = {}
    rng = np.random.default_rng(7)
    counter = iter(range(10_000))

    def shuffled(sub: str) -> Path:
        (root / sub).mkdir(parents=True, exist_ok=True)
        return root / sub / f"IM{next(counter):05d}_{int(rng.integers(1e6)):06d}"

    srcs = sorted((exam_dir / "dicom").glob("*.dcm"))
    by_name = {p.stem: p for p in srcs}
    study = str(dcmread(srcs[0], stop_before_pixels=True).StudyInstanceUID)
    study2 = uid("second study", study)

    # 1. the exam, shuffled names in nested folders; R_MLO_LE left out, so its HE is an orphan
    for src in srcs:
        lat, view, energy = src.stem.split("_")
        if src.stem == "R_MLO_LE":
            continue
        dst = shuffled(f"export/S0/SER{'1' if energy == 'LE' else '2'}")
        shutil.copyfile(src, dst)
        fates[dst] = (Fate("HE", reason="orphan HE") if src.stem == "R_MLO_HE"
                      else Fate(energy, pair=f"{study}/{lat}/{view}/0"))
    # 2. a second study written by another vendor: CP-1342 Image Type (value 5), SCT codes only
    for src in srcs:
        lat, view, energy = src.stem.split("_")
        dst = to_other_vendor(src, shuffled("export/S1/x"), study_uid=study2)
        fates[dst] = Fate(energy, pair=f"{study2}/{lat}/{view}/0")
    # 3. late-phase repeat of L CC: new UIDs, +5 min
    for energy in ("LE", "HE"):
        dst = reuid(by_name[f"L_CC_{energy}"], shuffled("export/late"), shift_s=300.0, tag="late")
        fates[dst] = Fate(energy, pair=f"{study}/L/CC/1")
    # 4. exact duplicate (same SOP Instance UID) of R_CC_LE; "dup" sorts after "S0", so it is the copy
    dst = shuffled("export/dup")
    shutil.copyfile(by_name["R_CC_LE"], dst)
    fates[dst] = Fate("LE", reason="duplicate of SOP Instance UID")
    # 5. truncated copy (new UIDs, so not a duplicate) of L_MLO_HE
    tmp = reuid(by_name["L_MLO_HE"], root / "_tmp.dcm", tag="trunc")
    fates[truncate_copy(tmp, shuffled("export/trunc"), drop_bytes=1000)] = Fate("UNREADABLE", reason="truncated")
    tmp.unlink()
    # 6. compressed repeats of R CC: JPEG 2000 lossless, JPEG-LS lossless, RLE (10, 20, 30 min later)
    for k, syntax in enumerate((JPEG2000Lossless, JPEGLSLossless, RLELossless)):
        for energy in ("LE", "HE"):
            tmp = reuid(by_name[f"R_CC_{energy}"], root / "_tmp.dcm", shift_s=600.0 * (k + 1), tag=f"c{k}")
            dst = write(dcmread(tmp), shuffled("export/compressed"), syntax=syntax)
            tmp.unlink()
            fates[dst] = Fate(energy, pair=f"{study}/R/CC/{k + 1}")
    # 7. truncated JPEG 2000 copy: its header alone looks fine
    tmp = reuid(by_name["L_CC_LE"], root / "_tmp.dcm", shift_s=1200.0, tag="j2k-trunc")
    full = write(dcmread(tmp), root / "_tmp2.dcm", syntax=JPEG2000Lossless)
    tmp.unlink()
    dst = truncate_copy(full, shuffled("export/trunc"), drop_bytes=full.stat().st_size // 3)
    full.unlink()
    fates[dst] = Fate("UNREADABLE", reason="truncated")
    # 8. For Presentation distractor and a vendor RC distractor
    ds = dcmread(by_name["L_CC_LE"])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid("forpres", ds.SOPInstanceUID)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = DM_PRESENTATION
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = -1
    fates[write(ds, shuffled("export/pres"))] = Fate("OTHER_IMAGE", reason="For Presentation")
    ds = dcmread(by_name["L_CC_LE"])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid("rc", ds.SOPInstanceUID)
    ds.ImageType = ["DERIVED", "PRIMARY", "", "RECOMBINED"]
    fates[write(ds, shuffled("export/rc"))] = Fate("VENDOR_RC", reason="recombined")
    # 9. unrelated modality, a dose SR, non-DICOM junk
    fates[make_ct(shuffled("export/other"))] = Fate("OTHER_IMAGE", reason="modality CT")
    fates[make_non_image(shuffled("export/other"))] = Fate("NON_IMAGE", reason="non-image")
    junk = shuffled("export")
    junk.write_text("PACS export log\nnothing to see\n")
    fates[junk] = Fate("NOT_DICOM", reason="not a DICOM")
    empty = root / "export" / "Thumbs.db"
    empty.write_bytes(b"")
    fates[empty] = Fate("NOT_DICOM", reason="empty")
    return fates
