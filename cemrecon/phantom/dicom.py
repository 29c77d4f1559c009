"""DICOM writer of the phantom: Digital Mammography X-Ray Image, For Processing, LE and HE.

Headers follow what a GE Senographe Pristina (SenoBright HD) writes, as far as
``reference/dicom.md`` section 3 documents it, and pass ``dciodvfy`` without errors.

Choices (and why)
-----------------
* **SOP class** DM For Processing ``1.2.840.10008.5.1.4.1.1.1.2.1``: the raw, linear detector
  signal that recombination needs (no VOI LUT, which this intent forbids).
* **Image Type** ``ORIGINAL\\PRIMARY\\\\LOW_ENERGY`` / ``...HIGH_ENERGY`` with the energy token in
  **value 4**, as GE writes it (observed at one site, dicom.md section 3).  dciodvfy reports
  no error for it (only the warning "Unrecognized defined term" for value 4); the standard's
  CP-1342 position (value 5), which is warning-free, is available with
  ``image_type_style="standard"``.  Readers must match the token anywhere in the value, and the
  GE default makes sure they do.
* **Photometric** ``MONOCHROME1`` with Presentation LUT Shape ``INVERSE``, Pixel Intensity
  Relationship ``LIN`` sign ``+1``: GE's For Processing encoding (OpenREM DS sample).  The
  stored value still grows with the absorbed energy (``LIN``, sign +1); MONOCHROME1 only says
  how to display it (high = white... inverted, so attenuating tissue appears bright).
* **14 bits stored** (BitsStored 14, HighBit 13) in 16-bit words, unsigned.
* **Pixel spacing**: Imager Pixel Spacing = Pixel Spacing = the phantom pixel (0.1 mm / scale).
  The phantom breast is defined in the detector plane (no geometric magnification), so the
  two are equal and Estimated Radiographic Magnification Factor is 1.0 (Distance Source to
  Patient is therefore not written: it would contradict a magnification of 1).  GE's DS writes
  0.0941 (0.1/1.063, a reference plane 2 cm above the support); we do not imitate that
  because the phantom has no object plane other than the detector.
* **Private blocks**: GE ``GEMS_SENO_02`` (0045,xx1B) Clinical View (``RCC``...); the
  phantom's own ``CEMRECON PHANTOM`` (0029,xx10) dark offset DN and (0029,xx11) gain DN/keV.
* **Determinism**: every UID is ``generate_uid(entropy_srcs=...)`` of the seed and the image
  identity, dates are fixed, so one seed gives byte-identical files.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from cemrecon import __version__
from cemrecon._fileio import write_dataset_atomic

__all__ = [
    "DM_FOR_PROCESSING",
    "ImageHeader",
    "build_dataset",
    "write_dataset",
    "patient_orientation",
    "image_type",
    "uid_from",
    "PRIVATE_CREATOR",
    "PRIVATE_GROUP",
    "GE_PRIVATE_CREATOR",
]

DM_FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.2.1"
PRIVATE_CREATOR = "CEMRECON PHANTOM"
PRIVATE_GROUP = 0x0029
GE_PRIVATE_CREATOR = "GEMS_SENO_02"
GE_PRIVATE_GROUP = 0x0045
#: Stored bits of the detector (14-bit ADC).
BITS_STORED = 14
MAX_DN = (1 << BITS_STORED) - 1

#: DICOM spellings of the element symbols used inside the library.
DICOM_MATERIAL = {
    "Mo": "MOLYBDENUM", "Rh": "RHODIUM", "W": "TUNGSTEN", "Ag": "SILVER", "Cu": "COPPER",
    "Al": "ALUMINUM", "Ti": "TITANIUM",
}
#: View codes (CID 4014).  SCT is what dciodvfy checks against; GE sends SNM3 (R-10242,
#: R-10226), which readers treat as equivalent (dicom.md section 2).
VIEW_CODES = {
    "CC": ("399162004", "SCT", "cranio-caudal"),
    "MLO": ("399368009", "SCT", "medio-lateral oblique"),
}
#: Patient Orientation (row direction \\ column direction) in the hanging convention used by
#: the phantom (PS3.3 C.8.11.7 example: R CC ``P\\L``, L CC ``A\\R``, R MLO ``P\\FL``,
#: L MLO ``A\\FR``).
_ORIENTATION = {
    ("R", "CC"): ["P", "L"],
    ("L", "CC"): ["A", "R"],
    ("R", "MLO"): ["P", "FL"],
    ("L", "MLO"): ["A", "FR"],
}
#: Positioner primary angle in degrees (MLO tube arm rotation; sign by side).
_MLO_ANGLE_DEG = 45.0


def patient_orientation(laterality: str, view: str) -> list[str]:
    """DICOM Patient Orientation of a phantom image (see module docstring)."""
    try:
        return list(_ORIENTATION[(laterality, view)])
    except KeyError:
        raise ValueError(f"no orientation for laterality={laterality!r}, view={view!r}; "
                         "accepted: R/L x CC/MLO") from None


def image_type(energy: str, *, style: str = "ge") -> list[str]:
    """Image Type value for ``energy`` in {"LE", "HE"}.

    ``style="ge"``: ``ORIGINAL\\PRIMARY\\\\LOW_ENERGY`` (token in value 4, GE practice);
    ``style="standard"``: ``ORIGINAL\\PRIMARY\\\\\\LOW_ENERGY`` (value 5, CP-1342).
    """
    token = {"LE": "LOW_ENERGY", "HE": "HIGH_ENERGY"}.get(energy)
    if token is None:
        raise ValueError(f"energy must be 'LE' or 'HE', got {energy!r}")
    if style == "ge":
        return ["ORIGINAL", "PRIMARY", "", token]
    if style == "standard":
        return ["ORIGINAL", "PRIMARY", "", "", token]
    raise ValueError(f"image_type style must be 'ge' or 'standard', got {style!r}")


def uid_from(*parts: object) -> str:
    """Deterministic UID from the given parts (pydicom's hash-based ``generate_uid``)."""
    return str(generate_uid(entropy_srcs=["cemrecon-phantom", *[str(p) for p in parts]]))


@dataclass(frozen=True)
class ImageHeader:
    """Everything that varies between phantom images (one LE or HE exposure)."""

    energy: str  # "LE" | "HE"
    laterality: str
    view: str
    patient_name: str
    patient_id: str
    study_uid: str
    series_uid: str
    sop_uid: str
    frame_of_reference_uid: str
    study_id: str
    accession_number: str
    instance_number: int
    acquisition_datetime: _dt.datetime
    study_datetime: _dt.datetime
    kvp: float
    anode: str
    filter_material: str
    filter_mm: float
    mas: float
    exposure_time_ms: float
    thickness_mm: float
    compression_force_n: float
    pixel_mm: float
    dark_offset_dn: float
    gain_dn_per_kev: float
    scatter_spr: float = 0.0
    patient_birth_date: str = "19700101"
    patient_age: str = "055Y"
    series_number: int = 1
    image_type_style: str = "ge"
    entrance_dose_mgy: float | None = None
    seed: int | None = None


def _code_item(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _ds_str(value: float, ndigits: int = 6) -> str:
    """Format a float as a DICOM DS string (<= 16 characters)."""
    text = f"{value:.{ndigits}g}"
    if len(text) > 16:
        text = f"{value:.6e}"
    return text


def build_dataset(pixels: np.ndarray, header: ImageHeader) -> Dataset:
    """Build a DM For Processing dataset around ``pixels`` (uint16, values <= 16383).

    Raises
    ------
    ValueError
        If ``pixels`` is not a 2-D uint16 array within 14 bits.
    """
    if pixels.ndim != 2 or pixels.dtype != np.uint16:
        raise ValueError(f"pixels must be a 2-D uint16 array, got {pixels.dtype} {pixels.shape}")
    if int(pixels.max(initial=0)) > MAX_DN:
        raise ValueError(f"pixel value {int(pixels.max())} exceeds {BITS_STORED} bits ({MAX_DN})")
    h = header
    rows, cols = pixels.shape

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DM_FOR_PROCESSING
    meta.MediaStorageSOPInstanceUID = h.sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = uid_from("implementation", __version__)
    meta.ImplementationVersionName = f"CEMRECON_{__version__}"[:16]

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = image_type(h.energy, style=h.image_type_style)
    ds.SOPClassUID = DM_FOR_PROCESSING
    ds.SOPInstanceUID = h.sop_uid
    study_date = h.study_datetime.strftime("%Y%m%d")
    acq_date = h.acquisition_datetime.strftime("%Y%m%d")
    acq_time = h.acquisition_datetime.strftime("%H%M%S.%f")[:13]
    ds.StudyDate = study_date
    ds.SeriesDate = study_date
    ds.AcquisitionDate = acq_date
    ds.ContentDate = acq_date
    ds.AcquisitionDateTime = acq_date + acq_time
    ds.StudyTime = h.study_datetime.strftime("%H%M%S")
    ds.SeriesTime = h.study_datetime.strftime("%H%M%S")
    ds.AcquisitionTime = acq_time
    ds.ContentTime = acq_time
    ds.AccessionNumber = h.accession_number
    ds.Modality = "MG"
    ds.PresentationIntentType = "FOR PROCESSING"
    ds.Manufacturer = "GE Healthcare"
    ds.InstitutionName = "cemrecon synthetic phantom"
    ds.ReferringPhysicianName = ""
    ds.StationName = "PHANTOM"
    ds.StudyDescription = "CEM phantom (synthetic)"
    ds.SeriesDescription = "CEM LE/HE for processing (synthetic phantom)"
    ds.ManufacturerModelName = "Senographe Pristina"
    ds.PatientName = h.patient_name
    ds.PatientID = h.patient_id
    ds.PatientBirthDate = h.patient_birth_date
    ds.PatientSex = "F"
    ds.PatientAge = h.patient_age
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "synthetic phantom, no real patient"
    ds.BodyPartExamined = "BREAST"
    ds.DeviceSerialNumber = "CEMPHANTOM"
    ds.SoftwareVersions = f"cemrecon {__version__} phantom"
    # --- acquisition
    ds.KVP = _ds_str(h.kvp, 4)
    ds.DistanceSourceToDetector = "650"
    ds.ExposureTime = str(int(round(h.exposure_time_ms)))
    ds.XRayTubeCurrent = str(int(round(h.mas / (h.exposure_time_ms / 1000.0))))
    ds.Exposure = str(int(round(h.mas)))
    ds.ExposureInuAs = str(int(round(h.mas * 1000.0)))
    ds.ExposureTimeInuS = _ds_str(h.exposure_time_ms * 1000.0, 8)
    ds.XRayTubeCurrentInuA = _ds_str(h.mas / (h.exposure_time_ms / 1000.0) * 1000.0, 8)
    ds.FocalSpots = "0.3"
    ds.AnodeTargetMaterial = DICOM_MATERIAL[h.anode]
    ds.BodyPartThickness = _ds_str(h.thickness_mm, 4)
    ds.CompressionForce = _ds_str(h.compression_force_n, 4)
    ds.ExposureControlMode = "AUTOMATIC"
    ds.ExposureControlModeDescription = "CESM AOP (phantom AEC rule)"
    if h.entrance_dose_mgy is not None:
        ds.EntranceDoseInmGy = _ds_str(h.entrance_dose_mgy, 5)
    ds.ImagerPixelSpacing = [_ds_str(h.pixel_mm, 8)] * 2
    ds.DetectorType = "SCINTILLATOR"
    ds.DetectorConfiguration = "AREA"
    ds.DetectorID = "CEMPHANTOM-CSI"
    ds.DetectorBinning = [1, 1]
    # field of view: the whole detector, stored as displayed (no rotation, no flip)
    ds.FieldOfViewShape = "RECTANGLE"
    ds.FieldOfViewDimensions = [int(round(rows * h.pixel_mm)), int(round(cols * h.pixel_mm))]
    ds.FieldOfViewOrigin = ["0", "0"]
    ds.FieldOfViewRotation = "0"
    ds.FieldOfViewHorizontalFlip = "NO"
    ds.PositionerType = "MAMMOGRAPHIC"
    ds.PositionerPrimaryAngle = ("0" if h.view == "CC"
                                 else _ds_str(_MLO_ANGLE_DEG if h.laterality == "R" else -_MLO_ANGLE_DEG, 4))
    ds.PositionerSecondaryAngle = "0"
    ds.EstimatedRadiographicMagnificationFactor = "1.0"
    ds.FilterMaterial = DICOM_MATERIAL[h.filter_material]
    ds.FilterThicknessMinimum = _ds_str(h.filter_mm, 4)
    ds.FilterThicknessMaximum = _ds_str(h.filter_mm, 4)
    ds.ViewPosition = h.view
    ds.ContentQualification = "RESEARCH"
    # --- relationship
    ds.StudyInstanceUID = h.study_uid
    ds.SeriesInstanceUID = h.series_uid
    ds.StudyID = h.study_id
    ds.SeriesNumber = str(h.series_number)
    ds.AcquisitionNumber = str(h.instance_number)
    ds.InstanceNumber = str(h.instance_number)
    ds.PatientOrientation = patient_orientation(h.laterality, h.view)
    ds.FrameOfReferenceUID = h.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.ImageLaterality = h.laterality
    ds.ImageComments = (f"cemrecon synthetic CEM phantom, {h.energy}, seed {h.seed}"
                        if h.seed is not None else f"cemrecon synthetic CEM phantom, {h.energy}")
    # --- pixels
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.Rows = rows
    ds.Columns = cols
    ds.PixelSpacing = [_ds_str(h.pixel_mm, 8)] * 2
    ds.PixelSpacingCalibrationType = "GEOMETRY"
    ds.PixelSpacingCalibrationDescription = "phantom defined in the detector plane, magnification 1"
    ds.BitsAllocated = 16
    ds.BitsStored = BITS_STORED
    ds.HighBit = BITS_STORED - 1
    ds.PixelRepresentation = 0
    ds.PixelIntensityRelationship = "LIN"
    ds.PixelIntensityRelationshipSign = 1
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "1"
    ds.RescaleType = "US"
    ds.LossyImageCompression = "00"
    ds.BurnedInAnnotation = "NO"
    ds.PresentationLUTShape = "INVERSE"
    ds.BreastImplantPresent = "NO"
    ds.PartialView = "NO"
    ds.OrganExposed = "BREAST"
    ds.QualityControlImage = "NO"
    # --- sequences
    region = _code_item("76752008", "SCT", "Breast")
    ds.AnatomicRegionSequence = Sequence([region])
    code, scheme, meaning = VIEW_CODES[h.view]
    view_item = _code_item(code, scheme, meaning)
    view_item.ViewModifierCodeSequence = Sequence([])
    ds.ViewCodeSequence = Sequence([view_item])
    ds.AcquisitionContextSequence = Sequence([])
    # --- private blocks
    ge = ds.private_block(GE_PRIVATE_GROUP, GE_PRIVATE_CREATOR, create=True)
    ge.add_new(0x1B, "LO", f"{h.laterality}{h.view}")
    ph = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    ph.add_new(0x10, "DS", _ds_str(h.dark_offset_dn, 8))
    ph.add_new(0x11, "DS", _ds_str(h.gain_dn_per_kev, 10))
    # the simulated scatter-to-primary ratio (0: primary only), so that a scatter
    # correction knows what this synthetic system did (a real system has no such tag)
    ph.add_new(0x12, "DS", _ds_str(h.scatter_spr, 8))
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    return ds


def write_dataset(ds: Dataset, path: str | Path) -> Path:
    """Write ``ds`` atomically to ``path`` (temporary file in the same folder + ``os.replace``).

    Raises
    ------
    OutputError
        If the file cannot be written; no partial file is left behind.
    """
    return write_dataset_atomic(ds, path, what="DICOM file")
