"""Iodine maps as DICOM Parametric Map objects (float pixels, mg/cm^2).

A float-exact iodine map does not fit the Digital Mammography IOD (whose
Rescale is fixed at 1/0 on unsigned pixels), so cemrecon writes it as a
Parametric Map (PS3.3 A.75) with highdicom: 32-bit ``FloatPixelData``, one
Real World Value Mapping (slope 1, intercept 0) whose unit is UCUM ``mg/cm2``
and whose quantity is "Iodine areal density", and references to both source
images (LE as the derivation source, HE as a further source).

Known validator findings
------------------------
``dciodvfy`` reports, for every Parametric Map made from a projection
mammogram, that the Plane Position / Plane Orientation (Patient) and Plane
Position (Slide) functional groups are missing (:data:`KNOWN_DCIODVFY_ERRORS`).
The Parametric Map IOD presumes a patient or slide coordinate system; a 2-D
projection image (Digital Mammography X-Ray) has none, so there is no
truthful position or orientation to write. We leave them out rather than
fabricate a geometry, and the tests check that these are the *only* errors.

highdicom 0.28 does not fill the frame's Dimension Index Values when the
source image has no coordinate system (it indexes the frame by Frame Label
but leaves the per-frame value empty, then fails its own consistency
check); :class:`_ProjectionParametricMap` fills the single frame's index
(value 1, Frame Label ``IODINE``) before highdicom builds its look-up
tables, which is what the standard asks for.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import generate_uid

from cemrecon import __version__
from cemrecon._fileio import write_dataset_atomic
from cemrecon.errors import DicomReadError, OutputError

__all__ = [
    "IODINE_UNIT",
    "KNOWN_DCIODVFY_ERRORS",
    "ParametricMapInfo",
    "build_parametric_map",
    "read_parametric_map",
    "write_parametric_map",
]

logger = logging.getLogger(__name__)

#: UCUM unit of the iodine map (code value, scheme, meaning)
IODINE_UNIT = ("mg/cm2", "UCUM", "mg/cm2")
#: quantity definition: no standard code exists for iodine areal density, so a
#: private "99CEMRECON" code names it (PS3.16 allows private coding schemes)
IODINE_QUANTITY = ("IODINE-AREAL-DENSITY", "99CEMRECON", "Iodine areal density")
_FRAME_LABEL = "IODINE"
_DEFAULT_SERIES_NUMBER = 950

#: Substrings of the dciodvfy ``Error`` lines expected for a projection image
#: (see the module docstring); anything else is a real defect.
KNOWN_DCIODVFY_ERRORS = (
    "PlanePositionSequence",
    "PlaneOrientationSequence",
    "PlanePositionSlideSequence",
)


@dataclass(frozen=True)
class ParametricMapInfo:
    """What :func:`read_parametric_map` found besides the pixels."""

    unit: str
    slope: float
    intercept: float
    source_sop_instance_uids: tuple[str, ...]
    content_label: str
    content_description: str
    sop_instance_uid: str


def _header(source: Any, name: str) -> Dataset:
    """Return a pydicom header for a path, Dataset or SourceImage-like object."""
    if isinstance(source, Dataset):
        return source
    header = getattr(source, "header", None)
    if isinstance(header, Dataset):
        return header
    if isinstance(source, (str, os.PathLike)):
        try:
            return pydicom.dcmread(source, stop_before_pixels=True)
        except Exception as exc:  # pydicom raises several types
            raise DicomReadError(f"{name}: cannot read DICOM file {os.fspath(source)!r}: {exc}") from exc
    raise TypeError(
        f"{name} must be a pydicom Dataset, a path or a SourceImage, not {type(source).__name__}"
    )


def _source_copy(ds: Dataset) -> Dataset:
    """A pixel-less copy of a source header with the attributes highdicom reads."""
    out = Dataset()
    for elem in ds:
        if elem.tag.group in (0x7FE0,) or elem.keyword in ("PixelData", "FloatPixelData"):
            continue
        out.add(elem)
    # highdicom's person-name check warns on single-component names; it is a
    # style hint about the source, not something we may change, so keep it in the log
    return out


class _ProjectionParametricMap:
    """Factory for the highdicom class with the single-frame index filled in."""

    _cls = None

    @classmethod
    def get(cls):
        if cls._cls is None:
            import highdicom as hd

            class ProjectionParametricMap(hd.pm.ParametricMap):
                def _build_luts(self) -> None:  # noqa: D401 - highdicom hook
                    dis = self.get("DimensionIndexSequence")
                    if (
                        dis is not None
                        and len(dis) == 1
                        and Tag(dis[0].DimensionIndexPointer) == Tag("FrameLabel")
                    ):
                        for item in self.get("PerFrameFunctionalGroupsSequence", []):
                            content = item.FrameContentSequence[0]
                            if not content.get("DimensionIndexValues"):
                                content.DimensionIndexValues = [1]
                                content.FrameLabel = _FRAME_LABEL
                    super()._build_luts()

            cls._cls = ProjectionParametricMap
        return cls._cls


def build_parametric_map(
    iodine_mg_cm2: np.ndarray,
    le: Any,
    he: Any,
    *,
    series_number: int = _DEFAULT_SERIES_NUMBER,
    instance_number: int = 1,
    series_description: str = "CEM iodine map (mg/cm2), cemrecon, research use only",
    content_description: str = "Iodine areal density",
    provenance: Mapping[str, Any] | None = None,
    window_mg_cm2: tuple[float, float] | None = None,
):
    """Build a Parametric Map of an iodine map, referencing its LE and HE images.

    Parameters
    ----------
    iodine_mg_cm2 : ndarray, shape (Rows, Columns)
        Iodine areal density in mg/cm^2 (cast to float32); must match the
        source images' matrix.
    le, he : pydicom.Dataset, path or SourceImage
        The low- and high-energy source images (headers suffice).
    series_number, instance_number : int
        Numbers of the new series / instance.
    series_description, content_description : str
        Free text (content description is cut to 64 characters).
    provenance : mapping, optional
        Calibration id, weight, scatter correction...; written, as
        ``key=value`` pairs, into the LUT explanation (<= 64 characters) and
        logged in full.
    window_mg_cm2 : (center, width), optional
        Display window; default centre 0.5, width 3 mg/cm^2.

    Returns
    -------
    highdicom.pm.ParametricMap

    Raises
    ------
    ValueError
        If the map is not 2-D, not finite, or does not match the sources.
    """
    import highdicom as hd
    from highdicom.sr.coding import CodedConcept

    arr = np.asarray(iodine_mg_cm2)
    if arr.ndim != 2:
        raise ValueError(f"iodine_mg_cm2 must be 2-D (Rows, Columns), got shape {arr.shape}")
    arr = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError("iodine_mg_cm2 holds NaN or infinite values; a Parametric Map needs finite floats")
    le_ds = _source_copy(_header(le, "le"))
    he_ds = _source_copy(_header(he, "he"))
    for name, ds in (("le", le_ds), ("he", he_ds)):
        shape = (int(ds.get("Rows", -1)), int(ds.get("Columns", -1)))
        if shape != arr.shape:
            raise ValueError(
                f"{name} image is {shape[0]}x{shape[1]} (Rows x Columns) but iodine_mg_cm2 is "
                f"{arr.shape[0]}x{arr.shape[1]}; the map must be on the source pixel grid"
            )
    explanation = "iodine areal density"
    if provenance:
        text = ";".join(f"{k}={v}" for k, v in provenance.items() if not isinstance(v, (dict, list)))
        explanation = (explanation + " " + text)[:64]
        logger.debug("parametric map provenance: %s", dict(provenance))
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        hi = lo + 1.0
    mapping = hd.pm.RealWorldValueMapping(
        lut_label=_FRAME_LABEL,
        lut_explanation=explanation,
        unit=CodedConcept(*IODINE_UNIT),
        value_range=(lo, hi),
        slope=1.0,
        intercept=0.0,
        quantity_definition=CodedConcept(*IODINE_QUANTITY),
    )
    center, width = window_mg_cm2 if window_mg_cm2 is not None else (0.5, 3.0)
    cls = _ProjectionParametricMap.get()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pm = cls(
            [le_ds],
            arr,
            series_instance_uid=generate_uid(),
            series_number=int(series_number),
            sop_instance_uid=generate_uid(),
            instance_number=int(instance_number),
            manufacturer="cemrecon",
            manufacturer_model_name="cemrecon",
            software_versions=f"cemrecon {__version__}",
            device_serial_number="0",
            contains_recognizable_visual_features=False,
            real_world_value_mappings=[mapping],
            voi_lut_transformations=[hd.VOILUTTransformation(window_center=center, window_width=width)],
            further_source_images=[he_ds],
            content_description=content_description[:64],
            content_label=_FRAME_LABEL,
        )
    for w in caught:
        logger.info("highdicom: %s", w.message)
    pm.SeriesDescription = series_description[:64]
    # Series-level laterality: the Parametric Map has no Image Laterality, and
    # the breast is a paired organ (General Series: type 2C)
    laterality = le_ds.get("ImageLaterality") or le_ds.get("Laterality")
    if laterality in ("R", "L"):
        pm.Laterality = laterality
    return pm


def write_parametric_map(
    iodine_mg_cm2: np.ndarray,
    le: Any,
    he: Any,
    path: str | os.PathLike,
    **options: Any,
) -> Path:
    """Write an iodine map as a Parametric Map file, atomically.

    Parameters are those of :func:`build_parametric_map`, plus ``path``, the
    output file (its folder must exist). Returns the path written.

    Raises
    ------
    OutputError
        If the file cannot be written (nothing partial is left behind).
    """
    pm = build_parametric_map(iodine_mg_cm2, le, he, **options)
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f"cannot write parametric map {str(path)!r}: folder {str(path.parent)!r} does not exist")
    return write_dataset_atomic(pm, path, what="parametric map")


def read_parametric_map(path: str | os.PathLike | Dataset) -> tuple[np.ndarray, ParametricMapInfo]:
    """Read an iodine Parametric Map back: (float32 mg/cm^2 array, info).

    Real-world values are applied (slope, intercept), so the array is in the
    mapping's unit, which ``info.unit`` names.
    """
    import highdicom as hd

    ds = path if isinstance(path, Dataset) else pydicom.dcmread(path)
    try:
        pm = hd.pm.ParametricMap.from_dataset(ds)
    except Exception as exc:
        raise DicomReadError(f"{getattr(ds, 'filename', path)!r} is not a readable Parametric Map: {exc}") from exc
    frame = pm.get("PerFrameFunctionalGroupsSequence", [None])[0]
    rwvm = None
    if frame is not None and "RealWorldValueMappingSequence" in frame:
        rwvm = frame.RealWorldValueMappingSequence[0]
    else:
        rwvm = pm.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
    slope = float(rwvm.RealWorldValueSlope)
    intercept = float(rwvm.RealWorldValueIntercept)
    raw = np.asarray(pm.pixel_array, dtype=np.float64)
    if raw.ndim == 3:
        raw = raw[0]
    values = (raw * slope + intercept).astype(np.float32)
    uids = tuple(str(item.ReferencedSOPInstanceUID) for item in pm.get("SourceImageSequence", []))
    info = ParametricMapInfo(
        unit=str(rwvm.MeasurementUnitsCodeSequence[0].CodeValue),
        slope=slope,
        intercept=intercept,
        source_sop_instance_uids=uids,
        content_label=str(pm.get("ContentLabel", "")),
        content_description=str(pm.get("ContentDescription", "")),
        sop_instance_uid=str(pm.SOPInstanceUID),
    )
    return values, info
