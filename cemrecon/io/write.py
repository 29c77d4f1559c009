"""Derived CEM DICOM objects: the recombined (RC) image and an iodine image.

Both are written as **Digital Mammography X-Ray Image, For Presentation**
(SOP class ``1.2.840.10008.5.1.4.1.1.1.2``, Modality ``MG``) so any PACS and
viewer can show them next to the LE image.  The DM IOD fixes Rescale Slope/
Intercept at 1/0 and wants unsigned pixels, so the float RC (ln units) or
iodine map (mg I/cm^2) is mapped linearly into unsigned integers::

    stored = round(offset_dn + scale_dn_per_unit * value), clipped to [0, 2**bits_stored - 1]
    value  = (stored - offset_dn) / scale_dn_per_unit

The RC uses a *negative* scale, so iodine (which lowers RC) is bright, the
usual display convention (``-RC + offset``, physics.md section 1).  The mapping
is recorded in Derivation Description (human readable) and in a private block
(creator ``CEMRECON``, group 0x0029, machine readable), so the float values are
recoverable within half a quantisation step: see :func:`read_mapping`.

What is set follows ``shared/reference/dicom.md`` section 7 and the
dicom-output-checklist: same study, new series and instance UIDs (deterministic
from the inputs and parameters, so a rerun gives the same UIDs), both sources in
Source Image Sequence with purpose (121322, DCM), Derivation Code (113062, DCM),
Image Type ``DERIVED\\PRIMARY\\\\SUBTRACTION\\``, acquisition date/time copied
from LE (dose-tracking tools must not count the RC as an exposure), content
date/time = creation time, cemrecon named in Contributing Equipment and
Software Versions, vendor private groups and dose attributes dropped.

Files are written atomically (temporary file in the destination folder, then
:func:`os.replace`): a crash never leaves a partial ``.dcm`` behind.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterable
from copy import deepcopy
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import Dataset, Sequence
from pydicom.dataset import FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

from cemrecon import __version__, _fileio

__all__ = [
    "DM_FOR_PRESENTATION_SOP_CLASS",
    "PRIVATE_CREATOR",
    "PRIVATE_GROUP",
    "RC_SCALE_DN_PER_LN",
    "IODINE_SCALE_DN_PER_MG_CM2",
    "PixelMapping",
    "WrittenImage",
    "rc_mapping",
    "iodine_mapping",
    "derived_uid",
    "build_rc_dataset",
    "build_iodine_dataset",
    "write_rc",
    "write_iodine_image",
    "write_dataset_atomic",
    "write_bytes_atomic",
    "read_mapping",
    "decode_pixels",
]

logger = logging.getLogger(__name__)

DM_FOR_PRESENTATION_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.1.2"

#: Private block holding the pixel mapping (machine readable).
PRIVATE_GROUP = 0x0029
PRIVATE_CREATOR = "CEMRECON"
# element offsets inside the block (0x0029,xx10...)
_P_QUANTITY = 0x10  # LO: "RC_LN" or "IODINE_MG_CM2"
_P_OFFSET = 0x11  # FD: offset_dn
_P_SCALE = 0x12  # FD: scale_dn_per_unit
_P_WEIGHT = 0x13  # FD: recombination weight w
_P_CLIP = 0x14  # FD: fraction of finite pixels clipped
_P_NONFINITE = 0x15  # FD: fraction of non-finite pixels (stored as 0)
_P_FINGERPRINT = 0x16  # LO: hash of inputs + parameters (rerun detection)
_P_VERSION = 0x17  # LO: cemrecon version

#: Default RC quantisation: 10 000 DN per ln unit, i.e. a step of 1e-4 ln.
#: An iodine areal density of 1 mg/cm^2 changes RC by about -0.016 ln
#: (physics.md table 1), so one step is ~0.006 mg I/cm^2, far below the
#: quantum noise of a CEM image (~0.1-0.3 mg I/cm^2 per pixel).  With 16 bits
#: the stored range spans 6.5 ln units; breast-vs-air RC differs by ~0.1 ln per
#: cm of tissue (table 1, last column x 0.016), so the whole image fits.
RC_SCALE_DN_PER_LN = 10_000.0

#: Default iodine quantisation: 1000 DN per mg I/cm^2 (step 0.001 mg/cm^2),
#: offset 30 000 DN so negative values down to -30 mg/cm^2 are kept (noise, and
#: the thickness roll-off at the skin line, which reads as strongly negative
#: iodine, physics.md section 1); 16 bits then reach +35.5 mg/cm^2, far above
#: any clinical areal density (< ~5 mg/cm^2).
IODINE_SCALE_DN_PER_MG_CM2 = 1000.0
IODINE_OFFSET_DN = 30_000.0

_RESEARCH_NOTE = "research use only"
_RC_SERIES_NUMBER = 9001
_IODINE_SERIES_NUMBER = 9002
_RC_SERIES_DESCRIPTION = "cemrecon recombined CEM - research use only"
_IODINE_SERIES_DESCRIPTION = "cemrecon iodine mg/cm2 - research use only"
_WINDOW_PERCENTILES = (1.0, 99.0)

# Code items (value, scheme, meaning)
_CODE_SOURCE_FOR_PROCESSING = ("121322", "DCM", "Source image for image processing operation")
_CODE_PIXEL_SUBTRACTION = ("113062", "DCM", "Pixel by pixel subtraction")
_CODE_MULTI_ENERGY_WEIGHTING = ("113097", "DCM", "Multi-energy proportional weighting")
_CODE_PROCESSING_EQUIPMENT = ("109102", "DCM", "Processing Equipment")
_CODE_BREAST = ("76752008", "SCT", "Breast")
_VIEW_CODES = {"CC": ("399162004", "SCT", "cranio-caudal"), "MLO": ("399368009", "SCT", "medio-lateral oblique")}

# Patient Orientation (row\\column direction) for the usual mammography display
# (chest wall at the side of the screen, PS3.3 C.8.11.7 / C.7.6.1.1.1); used
# only when the LE header lacks it (Type 1C in the DX Image module).
_DEFAULT_ORIENTATION = {
    ("R", "CC"): ["P", "L"], ("L", "CC"): ["A", "R"],
    ("R", "MLO"): ["P", "FL"], ("L", "MLO"): ["A", "FR"],
}

# Attributes copied from the LE header when present (checklist "copied from LE"
# + patient / study / equipment modules).  Dose, exposure and vendor-private
# attributes are deliberately *not* copied: the RC is not an exposure.
_COPY_FROM_LE = (
    # patient
    "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex", "PatientAge",
    "PatientSize", "PatientWeight", "PatientIdentityRemoved", "DeidentificationMethod",
    # study
    "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID",
    "AccessionNumber", "StudyDescription",
    # frame of reference (compression not released between LE, HE and RC)
    "FrameOfReferenceUID", "PositionReferenceIndicator",
    # equipment (the acquisition device; cemrecon is added as contributing equipment)
    "Manufacturer", "InstitutionName", "InstitutionAddress", "StationName",
    "ManufacturerModelName", "DeviceSerialNumber", "InstitutionalDepartmentName",
    # acquisition time: copied so dose tools do not count the RC as an exposure
    "AcquisitionDate", "AcquisitionTime", "AcquisitionDateTime",
    # breast, view, orientation, geometry
    "ImageLaterality", "ViewPosition", "ViewCodeSequence", "PatientOrientation",
    "AnatomicRegionSequence", "BodyPartExamined", "PositionerType", "PositionerPrimaryAngle",
    "PositionerSecondaryAngle", "OrganExposed", "BreastImplantPresent", "PartialView",
    "PartialViewDescription", "BodyPartThickness", "CompressionForce",
    "ImagerPixelSpacing", "PixelSpacing", "PixelSpacingCalibrationType", "PixelSpacingCalibrationDescription",
    "EstimatedRadiographicMagnificationFactor",
    "DistanceSourceToDetector", "DistanceSourceToPatient",
    "FieldOfViewShape", "FieldOfViewDimensions", "FieldOfViewOrigin", "FieldOfViewRotation",
    "FieldOfViewHorizontalFlip",
    # detector
    "DetectorType", "DetectorConfiguration", "DetectorDescription", "DetectorID",
    "DetectorBinning", "DetectorElementPhysicalSize", "DetectorElementSpacing",
    "DetectorActiveShape", "DetectorActiveDimensions", "DetectorActiveOrigin",
    # contrast agent (optional module; LE is post-contrast)
    "ContrastBolusAgent", "ContrastBolusAgentSequence", "ContrastBolusRoute",
    "ContrastBolusVolume", "ContrastBolusStartTime", "ContrastBolusTotalDose",
    "ContrastBolusIngredient", "ContrastBolusIngredientConcentration",
)


# ---------------------------------------------------------------------------
# pixel mapping


@dataclass(frozen=True)
class PixelMapping:
    """Linear float -> unsigned integer mapping of a derived image.

    ``stored = round(offset_dn + scale_dn_per_unit * value)`` clipped to
    ``[0, 2**bits_stored - 1]``; :meth:`decode` inverts it exactly up to the
    rounding (``|error| <= step / 2`` for unclipped pixels).

    Parameters
    ----------
    offset_dn : float
        Stored value of ``value == 0``.
    scale_dn_per_unit : float
        Stored DN per unit of the quantity (negative for the RC, so iodine is bright).
    bits_stored : int
        12 to 16.
    quantity : str
        ``"RC_LN"`` (recombined image, ln units) or ``"IODINE_MG_CM2"``.
    """

    offset_dn: float
    scale_dn_per_unit: float
    bits_stored: int = 16
    quantity: str = "RC_LN"

    def __post_init__(self) -> None:
        if not 12 <= int(self.bits_stored) <= 16:
            raise ValueError(f"bits_stored must be 12..16, got {self.bits_stored!r}")
        if not np.isfinite(self.scale_dn_per_unit) or self.scale_dn_per_unit == 0:
            raise ValueError(f"scale_dn_per_unit must be finite and non-zero, got {self.scale_dn_per_unit!r}")
        if not np.isfinite(self.offset_dn):
            raise ValueError(f"offset_dn must be finite, got {self.offset_dn!r}")

    @property
    def max_stored(self) -> int:
        """Largest storable value, ``2**bits_stored - 1``."""
        return (1 << int(self.bits_stored)) - 1

    @property
    def step(self) -> float:
        """Quantisation step in units of the quantity (``1 / |scale|``)."""
        return 1.0 / abs(self.scale_dn_per_unit)

    def encode(self, values: np.ndarray) -> tuple[np.ndarray, float, float]:
        """Map float values to stored uint16.

        Returns
        -------
        stored : ndarray of uint16
        clip_fraction : float
            Fraction of finite pixels that fell outside the stored range.
        nonfinite_fraction : float
            Fraction of NaN/inf pixels (stored as 0).
        """
        values = np.asarray(values)
        n = values.size
        # one float64 work array, updated in place (full-field images: ~7e6 pixels)
        work = values.astype(np.float64, copy=True)
        finite = np.isfinite(work)
        n_finite = int(np.count_nonzero(finite))
        if n_finite < n:
            work[~finite] = 0.0
        work *= self.scale_dn_per_unit
        work += self.offset_dn
        np.rint(work, out=work)
        n_clipped = int(np.count_nonzero(work < 0)) + int(np.count_nonzero(work > self.max_stored))
        if n_finite < n:  # non-finite pixels sit at offset_dn, counted above only if that is out of range
            outside = (self.offset_dn < -0.5) or (self.offset_dn >= self.max_stored + 0.5)
            n_clipped -= (n - n_finite) if outside else 0
        np.clip(work, 0, self.max_stored, out=work)
        stored = work.astype(np.uint16)
        if n_finite < n:
            stored[~finite] = 0
        clip_fraction = n_clipped / max(n_finite, 1)
        nonfinite_fraction = (n - n_finite) / n if n else 0.0
        return stored, float(clip_fraction), float(nonfinite_fraction)

    def decode(self, stored: np.ndarray) -> np.ndarray:
        """Stored integers back to the float quantity (float64)."""
        return (np.asarray(stored, dtype=np.float64) - self.offset_dn) / self.scale_dn_per_unit

    def describe(self) -> str:
        """One-line text for Derivation Description."""
        unit = "ln" if self.quantity == "RC_LN" else "mg I/cm2"
        name = "RC" if self.quantity == "RC_LN" else "I"
        return (
            f"stored = round({self.offset_dn:.6g} + ({self.scale_dn_per_unit:.6g})*{name}) clipped to "
            f"[0,{self.max_stored}]; {name}[{unit}] = (stored - {self.offset_dn:.6g})/({self.scale_dn_per_unit:.6g})"
        )


def _region_values(values: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Finite values inside ``mask`` (whole image if None or empty), regularly subsampled, float64."""
    values = np.asarray(values)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != values.shape:
            raise ValueError(f"mask shape {mask.shape} does not match image shape {values.shape}")
    sub = _subsample(values).astype(np.float64)
    if mask is not None:
        region = sub[_subsample(mask)]
        region = region[np.isfinite(region)]
        if region.size:
            return region
    return sub[np.isfinite(sub)]  # no mask, or an empty / all non-finite one: the whole image


#: Percentiles (mapping offset, VOI window) are estimated from at most this many
#: values (a regular stride through the pixels): a full-field mammogram has ~7e6
#: pixels; with 2**20 samples the 1st/99th percentile is off by ~0.01 % in rank
#: (binomial standard error sqrt(p(1-p)/n)), ample for an offset or a window.
_MAX_STATISTIC_SAMPLES = 1 << 20


def _subsample(values: np.ndarray) -> np.ndarray:
    flat = values.ravel()
    step = -(-flat.size // _MAX_STATISTIC_SAMPLES)
    return flat[::step] if step > 1 else flat


def rc_mapping(
    rc: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    scale_dn_per_ln: float = RC_SCALE_DN_PER_LN,
    bits_stored: int = 16,
) -> PixelMapping:
    """Choose the stored-value mapping of an RC image (iodine bright).

    The scale is fixed (``-scale_dn_per_ln``, so equal stored differences mean
    equal RC differences across images) unless the image's 0.05-99.95 percentile
    span would not fit in ``bits_stored`` bits, in which case it is reduced to
    fit (logged).  The offset puts the median of the region (``mask``, default
    the whole image) at mid-range and is rounded to an integer DN.

    Parameters
    ----------
    rc : ndarray
        Float RC image, ln units.
    mask : ndarray of bool, optional
        Breast region; the offset is centred on its median.
    scale_dn_per_ln : float
        Magnitude of DN per ln unit (default :data:`RC_SCALE_DN_PER_LN`).
    bits_stored : int
        12 to 16.
    """
    if scale_dn_per_ln <= 0 or not np.isfinite(scale_dn_per_ln):
        raise ValueError(f"scale_dn_per_ln must be a positive finite number, got {scale_dn_per_ln!r}")
    max_stored = (1 << int(bits_stored)) - 1
    region = _region_values(rc, mask)
    if region.size == 0:
        return PixelMapping(float(max_stored // 2 + 1), -float(scale_dn_per_ln), int(bits_stored), "RC_LN")
    everything = _region_values(rc, None)
    lo, hi = np.percentile(everything, [0.05, 99.95])
    scale = float(scale_dn_per_ln)
    span = float(hi - lo)
    if span * scale > 0.98 * max_stored:
        new_scale = 0.98 * max_stored / span
        logger.info(
            "RC span %.4g ln does not fit %d bits at %.6g DN/ln; using %.6g DN/ln", span, bits_stored, scale, new_scale
        )
        scale = new_scale
    median = float(np.median(region))
    centre = (lo + hi) / 2.0 if span * scale > 0.5 * max_stored else median
    offset = float(np.rint((max_stored + 1) / 2.0 + scale * centre))  # stored = offset - scale*rc
    return PixelMapping(offset, -scale, int(bits_stored), "RC_LN")


def iodine_mapping(
    *,
    scale_dn_per_mg_cm2: float = IODINE_SCALE_DN_PER_MG_CM2,
    offset_dn: float = IODINE_OFFSET_DN,
    bits_stored: int = 16,
) -> PixelMapping:
    """The (fixed) mapping of an iodine map in mg I/cm^2 (iodine bright)."""
    return PixelMapping(float(offset_dn), float(scale_dn_per_mg_cm2), int(bits_stored), "IODINE_MG_CM2")


def _window(stored: np.ndarray, mask: np.ndarray | None) -> tuple[float, float]:
    region = _region_values(stored, mask)
    if region.size == 0:
        top = float(stored.max()) if stored.size else 1.0
        return (top + 1.0) / 2.0, max(top, 1.0)
    lo, hi = np.percentile(region, _WINDOW_PERCENTILES)
    width = max(float(hi - lo), 1.0)
    centre = float(lo + hi) / 2.0
    return round(centre, 1), round(width, 1)


# ---------------------------------------------------------------------------
# UIDs


#: Namespace of cemrecon's name-based (version 5) UUIDs.
_UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://cemrecon.invalid/dicom-uid")


def derived_uid(*parts: object) -> str:
    """A deterministic UID from ``parts``: same parts, same UID.

    A name-based (version 5) UUID of the parts written as a ``2.25.<integer>``
    UID (PS3.5 B.2, ISO/IEC 9834-8), so no registered root is needed.
    """
    name = "\x1f".join(str(p) for p in parts)
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, name).int}"


def _header(obj: Any, name: str) -> Dataset:
    ds = getattr(obj, "header", obj)
    if not isinstance(ds, Dataset):
        raise TypeError(f"{name} must be a pydicom Dataset (or a SourceImage), got {type(obj).__name__}")
    for attr in ("StudyInstanceUID", "SOPInstanceUID", "SOPClassUID"):
        if attr not in ds or not str(ds.get(attr, "")):
            raise ValueError(f"{name} has no {attr}; a derived image must reference its sources")
    return ds


# ---------------------------------------------------------------------------
# dataset building


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _source_item(src: Dataset, *, spatial_locations_preserved: bool) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = src.SOPClassUID
    item.ReferencedSOPInstanceUID = src.SOPInstanceUID
    item.PurposeOfReferenceCodeSequence = Sequence([_code(*_CODE_SOURCE_FOR_PROCESSING)])
    item.SpatialLocationsPreserved = "YES" if spatial_locations_preserved else "NO"
    return item


def _default_instance_number(le: Dataset) -> int:
    lat = str(le.get("ImageLaterality", "")).upper()
    view = str(le.get("ViewPosition", "")).upper()
    order = {"CC": 0, "MLO": 2}.get(view, 4)
    return 1 + order + (1 if lat == "L" else 0)


def _fmt_dt(when: datetime) -> tuple[str, str]:
    return when.strftime("%Y%m%d"), when.strftime("%H%M%S.%f")


def _base_dataset(
    values: np.ndarray,
    le: Dataset,
    he: Dataset,
    *,
    mapping: PixelMapping,
    window_mask: np.ndarray | None,
    series_uid: str,
    sop_instance_uid: str,
    series_number: int,
    series_description: str,
    instance_number: int | None,
    derivation_description: str,
    derivation_codes: Iterable[tuple[str, str, str]],
    spatial_locations_preserved: bool,
    content_datetime: datetime | None,
    window_explanation: str,
) -> tuple[Dataset, float, float]:
    values = np.asarray(values)
    if values.ndim != 2:
        raise ValueError(f"derived image must be 2-D (rows, columns), got shape {values.shape}")
    if not np.issubdtype(values.dtype, np.floating):
        raise TypeError(f"derived image must be floating point, got dtype {values.dtype}")
    rows, cols = values.shape
    for name, src in (("le_header", le), ("he_header", he)):
        src_shape = (src.get("Rows"), src.get("Columns"))
        if None not in src_shape and tuple(int(v) for v in src_shape) != (rows, cols):
            raise ValueError(
                f"image shape {(rows, cols)} does not match {name} Rows/Columns {src_shape} "
                f"({src.get('SOPInstanceUID')})"
            )
    if str(le.StudyInstanceUID) != str(he.StudyInstanceUID):
        raise ValueError(
            f"LE and HE are from different studies: {le.StudyInstanceUID} != {he.StudyInstanceUID}"
        )

    stored, clip_fraction, nonfinite_fraction = mapping.encode(values)
    if clip_fraction > 0.001:
        logger.warning(
            "%.3f%% of pixels clipped when storing %s (mapping %s)", 100 * clip_fraction, mapping.quantity, mapping
        )
    created = content_datetime or datetime.now()
    cdate, ctime = _fmt_dt(created)

    ds = Dataset()
    for keyword in _COPY_FROM_LE:
        if keyword in le:
            ds[keyword] = deepcopy(le[keyword])  # never alias (and later mutate) the caller's header
    # --- SOP common
    ds.SOPClassUID = DM_FOR_PRESENTATION_SOP_CLASS
    ds.SOPInstanceUID = sop_instance_uid
    ds.SpecificCharacterSet = le.get("SpecificCharacterSet", "ISO_IR 100")
    ds.InstanceCreationDate, ds.InstanceCreationTime = cdate, ctime
    # --- patient / study type-2 attributes (may be empty)
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                    "ReferringPhysicianName", "StudyID", "AccessionNumber", "Manufacturer"):
        if keyword not in ds:
            setattr(ds, keyword, "")
    # --- series
    ds.Modality = "MG"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = int(series_number)
    ds.SeriesDescription = series_description
    ds.SeriesDate, ds.SeriesTime = cdate, ctime
    ds.PresentationIntentType = "FOR PRESENTATION"
    if "ImageLaterality" in ds and "Laterality" in ds:
        del ds.Laterality
    # --- equipment: cemrecon as processing equipment
    versions = list(le.get("SoftwareVersions", []) if le.get("SoftwareVersions") else [])
    if isinstance(versions, str):
        versions = [versions]
    ds.SoftwareVersions = [str(v) for v in versions] + [f"cemrecon {__version__}"]
    contrib = Dataset()
    contrib.PurposeOfReferenceCodeSequence = Sequence([_code(*_CODE_PROCESSING_EQUIPMENT)])
    contrib.Manufacturer = "cemrecon"
    contrib.ManufacturerModelName = "cemrecon"
    contrib.SoftwareVersions = __version__
    contrib.ContributionDateTime = created.strftime("%Y%m%d%H%M%S.%f")
    contrib.ContributionDescription = "CEM dual-energy recombination (research use only)"
    ds.ContributingEquipmentSequence = Sequence([contrib])
    # --- general image
    ds.InstanceNumber = int(instance_number if instance_number is not None else _default_instance_number(le))
    ds.ContentDate, ds.ContentTime = cdate, ctime
    ds.ImageType = ["DERIVED", "PRIMARY", "", "SUBTRACTION", ""]
    ds.DerivationDescription = derivation_description[:1024]
    ds.DerivationCodeSequence = Sequence([_code(*c) for c in derivation_codes])
    ds.SourceImageSequence = Sequence(
        [_source_item(s, spatial_locations_preserved=spatial_locations_preserved) for s in (le, he)]
    )
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.QualityControlImage = "NO"
    if "PatientOrientation" not in ds or not ds.PatientOrientation:
        laterality = str(ds.get("ImageLaterality", le.get("Laterality", ""))).upper()
        key = (laterality, str(le.get("ViewPosition", "")).upper())
        ds.PatientOrientation = _DEFAULT_ORIENTATION.get(key, "")
        logger.info("LE header has no Patient Orientation; using %r for %s", ds.PatientOrientation, key)
    if "PixelSpacingCalibrationType" in ds and "PixelSpacingCalibrationDescription" not in ds:
        ds.PixelSpacingCalibrationDescription = "as in the source LE image"  # Type 1C with the Type
    if "FrameOfReferenceUID" in ds and "PositionReferenceIndicator" not in ds:
        ds.PositionReferenceIndicator = ""  # type 2 in the Frame of Reference module
    # --- breast / view (defaults if the LE header lacks them)
    if "AnatomicRegionSequence" not in ds:
        ds.AnatomicRegionSequence = Sequence([_code(*_CODE_BREAST)])
    ds.PositionerType = "MAMMOGRAPHIC"
    ds.OrganExposed = "BREAST"
    if "ImageLaterality" not in ds:
        ds.ImageLaterality = str(le.get("Laterality", "U")) or "U"
    if "ViewCodeSequence" not in ds:
        view = str(le.get("ViewPosition", "")).upper()
        ds.ViewCodeSequence = Sequence([_code(*_VIEW_CODES[view])] if view in _VIEW_CODES else [])
    for item in ds.ViewCodeSequence:
        if "ViewModifierCodeSequence" not in item:
            item.ViewModifierCodeSequence = Sequence([])
    if "DetectorType" not in ds:
        ds.DetectorType = "SCINTILLATOR"
    if "ImagerPixelSpacing" not in ds and "PixelSpacing" in le:
        ds.ImagerPixelSpacing = le.PixelSpacing
    ds.AcquisitionContextSequence = Sequence([])
    # --- image pixel / DX image
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated = 16
    ds.BitsStored = int(mapping.bits_stored)
    ds.HighBit = int(mapping.bits_stored) - 1
    ds.PixelRepresentation = 0
    ds.PixelIntensityRelationship = "LOG"
    # Sign -1: a higher stored value means *less* X-ray intensity reached the
    # detector (more attenuation, e.g. more iodine); this holds for the RC with
    # its negative scale and for the iodine map with its positive one.
    ds.PixelIntensityRelationshipSign = -1
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.PresentationLUTShape = "IDENTITY"
    centre, width = _window(stored, window_mask)
    ds.WindowCenter = centre
    ds.WindowWidth = width
    ds.VOILUTFunction = "LINEAR"
    ds.WindowCenterWidthExplanation = window_explanation[:64]
    ds.PixelData = stored.tobytes()
    # --- machine-readable mapping
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    block.add_new(_P_QUANTITY, "LO", mapping.quantity)
    block.add_new(_P_OFFSET, "FD", float(mapping.offset_dn))
    block.add_new(_P_SCALE, "FD", float(mapping.scale_dn_per_unit))
    block.add_new(_P_CLIP, "FD", float(clip_fraction))
    block.add_new(_P_NONFINITE, "FD", float(nonfinite_fraction))
    block.add_new(_P_VERSION, "LO", f"cemrecon {__version__}")
    # --- file meta
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "CEMRECON_" + __version__.replace(".", "")[:6]
    ds.file_meta = meta
    return ds, clip_fraction, nonfinite_fraction


def build_rc_dataset(
    rc: np.ndarray,
    le_header: Dataset,
    he_header: Dataset,
    *,
    weight: float,
    weight_description: str | None = None,
    mapping: PixelMapping | None = None,
    breast_mask: np.ndarray | None = None,
    series_uid: str | None = None,
    sop_instance_uid: str | None = None,
    instance_number: int | None = None,
    fingerprint: str | None = None,
    calibration_id: str | None = None,
    spatial_locations_preserved: bool = True,
    content_datetime: datetime | None = None,
) -> Dataset:
    """Build a DM For Presentation dataset holding a recombined image.

    Parameters
    ----------
    rc : ndarray, float, shape (rows, columns)
        ``RC = ln HE - w ln LE`` in ln units (as returned by
        :func:`cemrecon.recombination.recombine`).
    le_header, he_header : pydicom.Dataset (or SourceImage)
        Headers of the low- and high-energy sources (pixel data not needed).
    weight : float
        The recombination weight w used.
    weight_description : str, optional
        How w was chosen (e.g. ``"physics, T=52 mm"``); goes into Derivation Description.
    mapping : PixelMapping, optional
        Float -> stored mapping; default :func:`rc_mapping` (``rc``, ``breast_mask``).
    breast_mask : ndarray of bool, optional
        Breast region, used to centre the mapping and to choose the VOI window
        (1st-99th percentile of stored values inside it).
    series_uid, sop_instance_uid : str, optional
        Default: deterministic (:func:`derived_uid`) from the study UID, both
        source SOP Instance UIDs, the weight, the mapping and ``fingerprint``.
    instance_number : int, optional
        Default from laterality and view (R CC 1, L CC 2, R MLO 3, L MLO 4, others 5/6).
    fingerprint : str, optional
        Text identifying inputs and parameters (stored in the private block;
        the batch layer uses it to detect what is already done).
    calibration_id : str, optional
        Recorded in Derivation Description.
    spatial_locations_preserved : bool
        ``False`` when LE and HE were registered/resampled before recombination.
    content_datetime : datetime, optional
        Creation time (default now).

    Returns
    -------
    pydicom.Dataset
        With ``file_meta`` set; ready for :func:`write_dataset_atomic`.

    Raises
    ------
    ValueError
        Wrong shape, sources from different studies, missing source UIDs.
    TypeError
        Non-float RC or headers that are not Datasets.
    """
    le = _header(le_header, "le_header")
    he = _header(he_header, "he_header")
    weight = float(weight)
    if not np.isfinite(weight):
        raise ValueError(f"weight must be finite, got {weight!r}")
    rc = np.asarray(rc)
    if mapping is None:
        mapping = rc_mapping(rc, mask=breast_mask)
    elif mapping.quantity != "RC_LN":
        raise ValueError(f"mapping.quantity must be 'RC_LN' for an RC image, got {mapping.quantity!r}")
    if series_uid is None:
        series_uid = derived_uid("cemrecon-rc-series", __version__, le.StudyInstanceUID)
    if sop_instance_uid is None:
        sop_instance_uid = derived_uid(
            "cemrecon-rc", __version__, le.StudyInstanceUID, le.SOPInstanceUID, he.SOPInstanceUID,
            repr(weight), mapping, fingerprint or "",
        )
    how = f" ({weight_description})" if weight_description else ""
    cal = f"; calibration {calibration_id}" if calibration_id else ""
    description = (
        f"CEM recombination RC = ln(HE) - w*ln(LE), w = {weight:.6g}{how}{cal}; "
        f"{mapping.describe()}; iodine bright; cemrecon {__version__}; {_RESEARCH_NOTE}"
    )
    ds, _clip, _nonfinite = _base_dataset(
        rc, le, he,
        mapping=mapping, window_mask=breast_mask, series_uid=series_uid, sop_instance_uid=sop_instance_uid,
        series_number=_RC_SERIES_NUMBER, series_description=_RC_SERIES_DESCRIPTION,
        instance_number=instance_number, derivation_description=description,
        derivation_codes=(_CODE_PIXEL_SUBTRACTION, _CODE_MULTI_ENERGY_WEIGHTING),
        spatial_locations_preserved=spatial_locations_preserved, content_datetime=content_datetime,
        window_explanation="breast 1-99 percentile" if breast_mask is not None else "image 1-99 percentile",
    )
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR)
    block.add_new(_P_WEIGHT, "FD", weight)
    if fingerprint:
        block.add_new(_P_FINGERPRINT, "LO", str(fingerprint)[:64])
    return ds


def build_iodine_dataset(
    iodine_mg_cm2: np.ndarray,
    le_header: Dataset,
    he_header: Dataset,
    *,
    weight: float | None = None,
    calibration_id: str | None = None,
    mapping: PixelMapping | None = None,
    breast_mask: np.ndarray | None = None,
    series_uid: str | None = None,
    sop_instance_uid: str | None = None,
    instance_number: int | None = None,
    fingerprint: str | None = None,
    spatial_locations_preserved: bool = True,
    content_datetime: datetime | None = None,
) -> Dataset:
    """Build a DM For Presentation dataset holding an iodine map (mg I/cm^2, iodine bright).

    The same conventions as :func:`build_rc_dataset`; the default mapping is
    :func:`iodine_mapping` (1000 DN per mg/cm^2, 0 mg/cm^2 at 30 000 DN).  A
    float-exact map belongs in a Parametric Map object instead.
    """
    le = _header(le_header, "le_header")
    he = _header(he_header, "he_header")
    iodine_mg_cm2 = np.asarray(iodine_mg_cm2)
    if mapping is None:
        mapping = iodine_mapping()
    elif mapping.quantity != "IODINE_MG_CM2":
        raise ValueError(f"mapping.quantity must be 'IODINE_MG_CM2' for an iodine map, got {mapping.quantity!r}")
    if series_uid is None:
        series_uid = derived_uid("cemrecon-iodine-series", __version__, le.StudyInstanceUID)
    if sop_instance_uid is None:
        sop_instance_uid = derived_uid(
            "cemrecon-iodine", __version__, le.StudyInstanceUID, le.SOPInstanceUID, he.SOPInstanceUID,
            repr(weight), mapping, calibration_id or "", fingerprint or "",
        )
    w = f", w = {float(weight):.6g}" if weight is not None else ""
    cal = f", calibration {calibration_id}" if calibration_id else ""
    description = (
        f"CEM iodine areal density I [mg/cm2] from LE/HE{w}{cal}; {mapping.describe()}; "
        f"cemrecon {__version__}; {_RESEARCH_NOTE}"
    )
    ds, _clip, _nonfinite = _base_dataset(
        iodine_mg_cm2, le, he,
        mapping=mapping, window_mask=breast_mask, series_uid=series_uid, sop_instance_uid=sop_instance_uid,
        series_number=_IODINE_SERIES_NUMBER, series_description=_IODINE_SERIES_DESCRIPTION,
        instance_number=instance_number, derivation_description=description,
        derivation_codes=(_CODE_PIXEL_SUBTRACTION, _CODE_MULTI_ENERGY_WEIGHTING),
        spatial_locations_preserved=spatial_locations_preserved, content_datetime=content_datetime,
        window_explanation="breast 1-99 percentile" if breast_mask is not None else "image 1-99 percentile",
    )
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR)
    if weight is not None:
        block.add_new(_P_WEIGHT, "FD", float(weight))
    if fingerprint:
        block.add_new(_P_FINGERPRINT, "LO", str(fingerprint)[:64])
    return ds


# ---------------------------------------------------------------------------
# writing


@dataclass(frozen=True)
class WrittenImage:
    """What :func:`write_rc` / :func:`write_iodine_image` wrote."""

    path: Path
    sop_instance_uid: str
    series_instance_uid: str
    mapping: PixelMapping
    clip_fraction: float
    nonfinite_fraction: float
    window_center: float
    window_width: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready description (for summary.json)."""
        return {
            "path": str(self.path),
            "sop_instance_uid": self.sop_instance_uid,
            "series_instance_uid": self.series_instance_uid,
            "offset_dn": self.mapping.offset_dn,
            "scale_dn_per_unit": self.mapping.scale_dn_per_unit,
            "bits_stored": self.mapping.bits_stored,
            "quantity": self.mapping.quantity,
            "clip_fraction": self.clip_fraction,
            "nonfinite_fraction": self.nonfinite_fraction,
            "window_center": self.window_center,
            "window_width": self.window_width,
        }


def write_bytes_atomic(data: bytes, path: str | os.PathLike[str]) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`cemrecon._fileio.atomic_write`).

    Raises
    ------
    OutputError
        The folder is not writable (names the path); nothing partial is left behind.
    """
    return _fileio.write_bytes_atomic(data, path)


def write_dataset_atomic(ds: Dataset, path: str | os.PathLike[str]) -> Path:
    """Write ``ds`` to ``path`` atomically: temp file ``.<name>.<random>.tmp`` in the same
    folder, fsync, then :func:`os.replace` (:func:`cemrecon._fileio.atomic_write`).

    The final file gets the usual permissions (0666 minus the umask).

    Raises
    ------
    OutputError
        The folder is not writable or the dataset could not be encoded (names the path);
        nothing partial is left behind.
    """
    return _fileio.write_dataset_atomic(ds, path, what="derived DICOM image")


def _written(path: Path, ds: Dataset) -> WrittenImage:
    mapping, info = read_mapping(ds, with_info=True)
    return WrittenImage(
        path=path,
        sop_instance_uid=str(ds.SOPInstanceUID),
        series_instance_uid=str(ds.SeriesInstanceUID),
        mapping=mapping,
        clip_fraction=info["clip_fraction"],
        nonfinite_fraction=info["nonfinite_fraction"],
        window_center=float(ds.WindowCenter),
        window_width=float(ds.WindowWidth),
    )


def write_rc(
    path: str | os.PathLike[str],
    rc: np.ndarray,
    le_header: Dataset,
    he_header: Dataset,
    **options: Any,
) -> WrittenImage:
    """Build (:func:`build_rc_dataset`, same keyword options) and write an RC image atomically."""
    ds = build_rc_dataset(rc, le_header, he_header, **options)
    path = write_dataset_atomic(ds, path)
    return _written(path, ds)


def write_iodine_image(
    path: str | os.PathLike[str],
    iodine_mg_cm2: np.ndarray,
    le_header: Dataset,
    he_header: Dataset,
    **options: Any,
) -> WrittenImage:
    """Build (:func:`build_iodine_dataset`, same keyword options) and write an iodine image atomically."""
    ds = build_iodine_dataset(iodine_mg_cm2, le_header, he_header, **options)
    path = write_dataset_atomic(ds, path)
    return _written(path, ds)


# ---------------------------------------------------------------------------
# reading back


def read_mapping(ds: Dataset, *, with_info: bool = False) -> Any:
    """The :class:`PixelMapping` stored in a cemrecon-written dataset.

    With ``with_info=True`` returns ``(mapping, info)`` where ``info`` holds
    ``weight``, ``clip_fraction``, ``nonfinite_fraction``, ``fingerprint`` and
    ``version`` (``None`` when absent).

    Raises
    ------
    ValueError
        The dataset has no cemrecon private block.
    """
    try:
        block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR)
    except KeyError:
        raise ValueError(
            f"dataset {ds.get('SOPInstanceUID', '?')} has no {PRIVATE_CREATOR!r} private block "
            f"(group {PRIVATE_GROUP:04X}): not written by cemrecon"
        ) from None

    def get(offset: int) -> Any:
        try:
            value = block[offset].value
        except KeyError:
            return None
        if isinstance(value, bytes):  # read with implicit VR / unknown private dictionary
            return value
        return value

    def as_float(offset: int) -> float | None:
        value = get(offset)
        if value is None:
            return None
        if isinstance(value, bytes):
            return float(np.frombuffer(value, dtype="<f8")[0])
        return float(value)

    def as_text(offset: int) -> str | None:
        value = get(offset)
        if value is None:
            return None
        if isinstance(value, bytes):
            return value.decode("ascii", "replace").strip("\x00 ")
        return str(value)

    mapping = PixelMapping(
        offset_dn=as_float(_P_OFFSET),
        scale_dn_per_unit=as_float(_P_SCALE),
        bits_stored=int(ds.BitsStored),
        quantity=as_text(_P_QUANTITY) or "RC_LN",
    )
    if not with_info:
        return mapping
    info = {
        "weight": as_float(_P_WEIGHT),
        "clip_fraction": as_float(_P_CLIP) or 0.0,
        "nonfinite_fraction": as_float(_P_NONFINITE) or 0.0,
        "fingerprint": as_text(_P_FINGERPRINT),
        "version": as_text(_P_VERSION),
    }
    return mapping, info


def decode_pixels(ds: Dataset) -> np.ndarray:
    """Float values (RC in ln, or iodine in mg/cm^2) of a cemrecon-written dataset (float64)."""
    return read_mapping(ds).decode(ds.pixel_array)
