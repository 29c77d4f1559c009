"""Scan DICOM files, classify each one, normalise vendor spellings, and pair LE with HE.

This is the reader's edge: everything vendor-specific (Image Type token
positions, GE private tags, coded views, DICOM spellings of filter materials) is
turned into the enums of :mod:`cemrecon.io.enums` and the element symbols used
everywhere else here, and nowhere deeper.

Reading is two-phase.  :func:`read_exams` parses headers only (``stop_before_pixels``)
and checks, without decoding, that the pixel data of every LE/HE file is complete;
pixels are decoded later, only for the pairs used (:meth:`SourceImage.read_pixels`,
:meth:`cemrecon.io.pair.Pair.load`).

Classification rules (first match wins), see ``shared/reference/dicom.md`` section 6:

1. Not a DICOM file -> ``NOT_DICOM``; a parse error or a truncated file -> ``UNREADABLE``.
2. No pixel matrix (SR, dose report, DICOMDIR, KOS...) -> ``NON_IMAGE``.
3. Modality other than ``MG``, tomosynthesis, multi-frame, or a SOP class other than
   DM / Breast Projection / Secondary Capture -> ``OTHER_IMAGE``.
4. Image Type (0008,0008) tokens, *anywhere* in the value (GE puts them in value 4,
   CP-1342 in value 5): ``RECOMBINED`` / ``SUBTRACTION`` / ``ADDITION`` -> ``VENDOR_RC``;
   ``HIGH_ENERGY`` -> ``HE``; ``LOW_ENERGY`` -> ``LE``.
5. Fallbacks when no token: GE Processing Code ``GEMS_CESM_1`` -> ``VENDOR_RC``;
   filter Cu or Ti, or kVp >= 40 -> ``HE``; kVp <= 35 -> ``LE`` *only if* it then pairs
   with an HE (otherwise it is a non-contrast mammogram, ``OTHER_IMAGE``).
6. LE/HE that are ``DERIVED``, For Presentation, ``LOG``, sign -1, not monochrome or multi-frame
   -> ``OTHER_IMAGE`` (recombination needs the raw For Processing ``LIN`` exposure).
7. LE/HE whose pixel data is truncated -> ``UNREADABLE``; LE/HE kept with a reason
   (not paired) when the transfer syntax has no decoder plugin, pixels are signed, or
   laterality / study is unknown; then duplicates (same SOP Instance UID) and orphans.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import struct
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian
from pydicom.valuerep import DA, DT, TM

from cemrecon.errors import CemreconError, DicomReadError, PairingError
from cemrecon.io import pixels as _pixels
from cemrecon.io.enums import Energy, FileRole, Laterality, Strictness, View
from cemrecon.io.pair import Exam, Pair, pair_images
from cemrecon.physics._constants import DICOM_MATERIAL_TERMS

__all__ = [
    "AcquisitionMeta",
    "SourceImage",
    "ManifestEntry",
    "ReadResult",
    "Pair",
    "Exam",
    "ReaderWarning",
    "read_exams",
    "acquisition_meta",
    "scan_file",
    "image_type_tokens",
    "normalise_laterality",
    "normalise_view",
    "material_symbol",
]

logger = logging.getLogger(__name__)


class ReaderWarning(UserWarning):
    """An inconsistency in the input found with ``strictness="warn"``."""


# --------------------------------------------------------------------------------------
# Constants (sources: shared/reference/dicom.md; DICOM PS3.3, PS3.16; CP-1342)
# --------------------------------------------------------------------------------------

#: LE exposures are at most this many kVp (dicom.md section 6: "LE <~ 35").
LE_MAX_KVP = 35.0
#: HE exposures are at least this many kVp (dicom.md section 6: "HE >~ 40").
HE_MIN_KVP = 40.0
#: Plausible extremes of any mammography tube voltage; outside is an inconsistency.
MG_KVP_RANGE = (20.0, 50.0)
#: LE and HE of one compression are seconds apart; beyond this gap (s) the pair is reported.
WARN_GAP_S = 10.0
#: Never pair images further apart than this (s): a late-phase repeat is a new pair.
MAX_GAP_S = 90.0

_SOP_DM_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
_SOP_DM_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.2.1"
_SOP_BPX_PRESENTATION = "1.2.840.10008.5.1.4.1.1.13.1.4"
_SOP_BPX_PROCESSING = "1.2.840.10008.5.1.4.1.1.13.1.5"
_SOP_BREAST_TOMO = "1.2.840.10008.5.1.4.1.1.13.1.3"
_SOP_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
_MG_IMAGE_CLASSES = {
    _SOP_DM_PRESENTATION,
    _SOP_DM_PROCESSING,
    _SOP_BPX_PRESENTATION,
    _SOP_BPX_PROCESSING,
    _SOP_SECONDARY_CAPTURE,
}
_PRESENTATION_CLASSES = {_SOP_DM_PRESENTATION, _SOP_BPX_PRESENTATION}
_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"

_RC_TOKENS = ("RECOMBINED", "SUBTRACTION", "ADDITION")
# prefixes: CS values are at most 16 characters and some writers truncate
_LE_TOKEN_PREFIX = "LOW_ENER"
_HE_TOKEN_PREFIX = "HIGH_ENER"

_GE_CESM_RC_CODE = "GEMS_CESM_1"
_GE_SENO_CREATOR = "GEMS_SENO_02"
_GE_CLINICAL_VIEW = 0x1B  # (0045,xx1B) Clinical View, e.g. "RCC", "LMLO"
_GE_COMPRESSION_THICKNESS = 0x07  # (0045,xx07), mm
_PHANTOM_CREATOR = "CEMRECON PHANTOM"
_PHANTOM_DARK_OFFSET = 0x10  # (0029,xx10) DS, DN
_PHANTOM_GAIN = 0x11  # (0029,xx11) DS, DN per keV absorbed
_PHANTOM_SPR = 0x12  # (0029,xx12) DS, simulated scatter-to-primary ratio (0: primary only)

#: DICOM spellings of anode / filter materials (and element symbols, any case) -> element symbols;
#: the defined terms live with the physics (one list for the whole library).
_MATERIALS = {**DICOM_MATERIAL_TERMS, **{v.upper(): v for v in DICOM_MATERIAL_TERMS.values()}}
_HE_FILTERS = {"Cu", "Ti"}

#: View codes of CID 4014 by code value; SCT and SRT/SNM3 spellings are equivalent
#: (dicom.md section 2; SCT<->SRT from pydicom.sr._snomed_dict).
_VIEW_CODES = {
    "399162004": View.CC,
    "R-10242": View.CC,
    "399368009": View.MLO,
    "R-10226": View.MLO,
    "399260004": View.ML,
    "R-10224": View.ML,
    "399352003": View.LM,
    "R-10228": View.LM,
    "399192008": View.XCCL,
    "R-1024A": View.XCCL,
    "399101009": View.XCCM,
    "R-1024B": View.XCCM,
}
_VIEW_CODE_BYTES = tuple((code.encode("ascii"), view) for code, view in _VIEW_CODES.items())
_VIEW_MEANINGS = {
    "cranio-caudal": View.CC,
    "medio-lateral oblique": View.MLO,
    "medio-lateral": View.ML,
    "medial-lateral": View.ML,
    "latero-medial": View.LM,
    "cranio-caudal exaggerated laterally": View.XCCL,
    "cranio-caudal exaggerated medially": View.XCCM,
}
_VIEW_WORDS = {v.value: v for v in View if v is not View.OTHER}


# --------------------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AcquisitionMeta:
    """Normalised acquisition parameters of one image (units in the names).

    Materials are element symbols (``"Mo"``, ``"Rh"``, ``"W"``, ``"Ag"``, ``"Cu"``,
    ``"Al"``, ``"Ti"``); ``None`` means absent or not understood.

    Sources: KVP; Anode Target Material; Filter Material and Filter Thickness
    Minimum/Maximum (the Cu/Ti one if several, thickness = mean of min and max);
    Body Part Thickness (else GE 0045,xx07); Compression Force; Exposure in uAs / 1000
    (else Exposure, else tube current x time); Acquisition DateTime (else Acquisition
    Date + Time, else Content Date + Time; naive local time); Imager Pixel Spacing
    (else Pixel Spacing), (row, column) in mm; ``energy`` from Image Type (else HIGH for
    a Cu/Ti filter or kVp >= 40); ``dark_offset_dn`` / ``gain_dn_per_kev`` /
    ``simulated_spr`` from the phantom private block ``CEMRECON PHANTOM``
    (0029,xx10 / xx11 / xx12), else None (real systems carry none of them).
    """

    kvp: float | None = None
    anode: str | None = None
    filter_material: str | None = None
    filter_mm: float | None = None
    thickness_mm: float | None = None
    compression_force_n: float | None = None
    exposure_mas: float | None = None
    acquisition_datetime: datetime | None = None
    pixel_spacing_mm: tuple[float, float] | None = None
    rows: int | None = None
    columns: int | None = None
    bits_stored: int | None = None
    photometric: str | None = None
    pixel_intensity_relationship: str | None = None
    presentation_intent: str | None = None
    energy: Energy | None = None
    dark_offset_dn: float | None = None
    manufacturer: str | None = None
    model: str | None = None
    gain_dn_per_kev: float | None = None
    simulated_spr: float | None = None


@dataclass(eq=False)
class SourceImage:
    """One LE or HE file found by a header scan (pixels not loaded).

    Attributes
    ----------
    path : pathlib.Path
    sop_instance_uid, sop_class_uid : str
    header : pydicom.dataset.Dataset
        Read with ``stop_before_pixels=True``.
    meta : AcquisitionMeta
    study_uid, series_uid, frame_of_reference_uid : str or None
    laterality : Laterality or None
    view : View or None
    transfer_syntax_uid : str
    """

    path: Path
    sop_instance_uid: str
    sop_class_uid: str
    header: Dataset
    meta: AcquisitionMeta
    study_uid: str = ""
    series_uid: str | None = None
    frame_of_reference_uid: str | None = None
    laterality: Laterality | None = None
    view: View | None = None
    transfer_syntax_uid: str = ImplicitVRLittleEndian
    patient_orientation: tuple[str, ...] | None = None
    field_of_view: tuple[Any, ...] | None = None

    def read_pixels(self) -> np.ndarray:
        """Decode this file's pixel data.

        Returns
        -------
        numpy.ndarray
            ``(rows, columns)`` ``uint16`` raw detector values, checked against the
            header (shape, Bits Stored).

        Raises
        ------
        UnsupportedDicomError
            No decoder plugin for the transfer syntax (the message names the package).
        DicomReadError
            Decoding failed or the array does not match the header (names the file).
        """
        return _pixels.decode_pixels(
            self.path, rows=self.meta.rows, columns=self.meta.columns, bits_stored=self.meta.bits_stored
        )

    @property
    def is_compressed(self) -> bool:
        return _pixels.is_compressed(self.transfer_syntax_uid)

    def __repr__(self) -> str:
        energy = self.meta.energy.value if self.meta.energy else "?"
        return f"SourceImage({str(self.path)!r}, {energy}, {self.laterality}, {self.view})"


@dataclass(frozen=True)
class ManifestEntry:
    """What happened to one scanned file.

    ``pair_key`` is set when the file is used in a pair; otherwise ``reason`` says why
    it was excluded.  ``notes`` lists inconsistencies found (also for used files).
    """

    path: str
    sop_instance_uid: str | None
    role: FileRole
    pair_key: str | None = None
    reason: str | None = None
    notes: tuple[str, ...] = ()
    study_uid: str | None = None
    laterality: Laterality | None = None
    view: View | None = None

    @property
    def used(self) -> bool:
        return self.pair_key is not None


@dataclass
class ReadResult:
    """Result of :func:`read_exams`."""

    exams: list[Exam]
    pairs: list[Pair]
    manifest: list[ManifestEntry]
    issues: list[str] = field(default_factory=list)

    @property
    def excluded(self) -> list[ManifestEntry]:
        """Manifest entries not used in any pair (each has a reason)."""
        return [m for m in self.manifest if m.pair_key is None]

    def entry(self, path: str | os.PathLike[str]) -> ManifestEntry:
        """The manifest entry of one path (as scanned)."""
        wanted = str(Path(path))
        for m in self.manifest:
            if m.path == wanted:
                return m
        raise KeyError(f"{wanted} was not scanned")


# --------------------------------------------------------------------------------------
# Normalisation helpers (the only place vendor spellings are looked at)
# --------------------------------------------------------------------------------------


def _str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1", "replace")
    text = str(value).strip().strip("\x00").strip()
    return text or None


def _float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) else None


def _int(value: Any) -> int | None:
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None


def _multi(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)):
        return [value]
    try:
        return list(value)
    except TypeError:
        return [value]


_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"})


@functools.lru_cache(maxsize=None)
def _tag_vr(keyword: str) -> tuple[int, str]:
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(f"not a DICOM keyword: {keyword!r}")
    return tag, dictionary_VR(tag)


def _split_text(raw: bytes) -> str | list[str]:
    parts = [p.strip(" \x00") for p in raw.decode("latin-1").split("\\")]
    return parts[0] if len(parts) == 1 else parts


class _Fields:
    """Memoising, read-only view of a header for the classifier.

    Text and US values are decoded straight from pydicom's raw elements (the codes
    and numbers the reader needs are ASCII), which is several times cheaper than
    pydicom's full element conversion when thousands of headers are scanned.
    Anything else (sequences, odd VRs) goes through pydicom.
    """

    __slots__ = ("ds", "_cache", "_creators")

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds
        self._cache: dict[str, Any] = {}
        self._creators: dict[int, dict[str, int]] = {}

    @property
    def file_meta(self) -> Dataset | None:
        return getattr(self.ds, "file_meta", None)

    def __contains__(self, keyword: str) -> bool:
        return keyword in self.ds

    def get(self, keyword: str, default: Any = None) -> Any:
        try:
            value = self._cache[keyword]
        except KeyError:
            value = self._cache[keyword] = self._read(keyword)
        return default if value is None else value

    def _read(self, keyword: str) -> Any:
        tag, vr = _tag_vr(keyword)
        elem = self.ds.get_item(tag)
        if elem is None:
            return None
        raw = getattr(elem, "value", None) if isinstance(elem, RawDataElement) else None
        if isinstance(raw, bytes):
            if vr in _TEXT_VRS:
                return _split_text(raw)
            if vr == "US" and raw and len(raw) % 2 == 0:
                values = struct.unpack(("<" if elem.is_little_endian else ">") + "H" * (len(raw) // 2), raw)
                return values[0] if len(values) == 1 else list(values)
        return self.ds[tag].value

    def raw_bytes(self, keyword: str) -> bytes | None:
        """The undecoded value of an element when pydicom has not converted it yet, else None."""
        elem = self.ds.get_item(_tag_vr(keyword)[0])
        if isinstance(elem, RawDataElement) and isinstance(elem.value, bytes):
            return elem.value
        return None

    def private(self, group: int, creator: str, offset: int) -> Any:
        """Value of private element ``offset`` of ``creator``'s block in ``group`` (None if absent)."""
        slots = self._creators.get(group)
        if slots is None:
            slots = {}
            for tag in self.ds.keys():
                if (tag >> 16) == group and 0x10 <= (tag & 0xFFFF) <= 0xFF:
                    name = _str(self._raw_text(tag))
                    if name:
                        slots.setdefault(name, tag & 0xFF)
            self._creators[group] = slots
        slot = slots.get(creator)
        if slot is None:
            return None
        return self._raw_text((group << 16) | (slot << 8) | offset)

    def _raw_text(self, tag: int) -> Any:
        elem = self.ds.get_item(tag)
        if elem is None:
            return None
        if isinstance(elem, RawDataElement) and isinstance(elem.value, bytes):
            return _split_text(elem.value)
        return elem.value


def _fields(ds: Dataset | _Fields) -> _Fields:
    if isinstance(ds, _Fields):
        return ds
    if not isinstance(ds, Dataset):
        raise TypeError(f"expected a pydicom Dataset, got {type(ds).__name__}")
    return _Fields(ds)


def image_type_tokens(ds: Dataset) -> tuple[str, ...]:
    """Upper-case, stripped Image Type (0008,0008) values (empty values dropped)."""
    return tuple(t.upper() for t in (_str(v) for v in _multi(_fields(ds).get("ImageType"))) if t)


def material_symbol(name: Any) -> str | None:
    """DICOM material spelling (``"RHODIUM"``, ``"COPPER"``, ``"Mo"``...) -> element symbol or None."""
    text = _str(name)
    return None if text is None else _MATERIALS.get(text.upper())


def _private_value(ds: Dataset | _Fields, group: int, creator: str, offset: int) -> Any:
    return _fields(ds).private(group, creator, offset)


def _strip_side(text: str) -> tuple[Laterality | None, str]:
    """``"RCC"`` -> (R, "CC"); ``"CC"`` -> (None, "CC")."""
    up = text.upper().replace(" ", "")
    if len(up) > 2 and up[0] in "RL" and up[1:] in _VIEW_WORDS:
        return Laterality(up[0]), up[1:]
    return None, up


def normalise_view(ds: Dataset) -> tuple[View | None, list[str]]:
    """View from View Code Sequence (SCT/SRT/SNM3), View Position, or GE Clinical View.

    Returns
    -------
    view : View or None
        ``None`` if no source names a view.
    notes : list of str
        Contradictions between sources (the first source in the order above wins).
    """
    ds = _fields(ds)
    found: list[tuple[str, View]] = []
    # fast path: the sequence's raw bytes name exactly one known view code (no parsing)
    raw = ds.raw_bytes("ViewCodeSequence")
    hits = {view for code, view in _VIEW_CODE_BYTES if code in raw} if raw else set()
    items = [] if len(hits) == 1 else _multi(ds.get("ViewCodeSequence"))
    if len(hits) == 1:
        found.append(("View Code Sequence", hits.pop()))
    for item in items:
        code = _str(item.get("CodeValue"))
        meaning = (_str(item.get("CodeMeaning")) or "").lower()
        if code in _VIEW_CODES:
            found.append(("View Code Sequence", _VIEW_CODES[code]))
        elif meaning in _VIEW_MEANINGS:
            found.append(("View Code Sequence", _VIEW_MEANINGS[meaning]))
        elif code or meaning:
            found.append(("View Code Sequence", View.OTHER))
        break
    vp = _str(ds.get("ViewPosition"))
    if vp:
        _, word = _strip_side(vp)
        found.append(("View Position", _VIEW_WORDS.get(word, View.OTHER)))
    ge = _str(_private_value(ds, 0x0045, _GE_SENO_CREATOR, _GE_CLINICAL_VIEW))
    if ge:
        _, word = _strip_side(ge)
        found.append(("GE Clinical View (0045,xx1B)", _VIEW_WORDS.get(word, View.OTHER)))
    if not found:
        return None, []
    view = found[0][1]
    notes = [
        f"view contradiction: {found[0][0]} says {view}, {src} says {other}"
        for src, other in found[1:]
        if other is not view
    ]
    return view, notes


def normalise_laterality(ds: Dataset) -> tuple[Laterality | None, list[str], bool]:
    """Laterality from Image Laterality, Laterality, GE Clinical View, or Patient Orientation.

    Returns
    -------
    laterality : Laterality or None
    notes : list of str
        Contradictions, or how a weak source was used.
    inferred : bool
        True when it came only from Patient Orientation (standard hanging assumed:
        row direction P for a right breast, A for a left one, e.g. ``P\\FL`` = right MLO).
    """
    ds = _fields(ds)
    found: list[tuple[str, Laterality]] = []
    for kw, label in (("ImageLaterality", "Image Laterality"), ("Laterality", "Laterality")):
        text = (_str(ds.get(kw)) or "").upper()
        if text in ("R", "L"):
            found.append((label, Laterality(text)))
    for text, label in (
        (_str(_private_value(ds, 0x0045, _GE_SENO_CREATOR, _GE_CLINICAL_VIEW)), "GE Clinical View (0045,xx1B)"),
        (_str(ds.get("ViewPosition")), "View Position"),
    ):
        if text:
            side, _ = _strip_side(text)
            if side is not None:
                found.append((label, side))
    if found:
        lat = found[0][1]
        notes = [
            f"laterality contradiction: {found[0][0]} says {lat}, {src} says {other}"
            for src, other in found[1:]
            if other is not lat
        ]
        return lat, notes, False
    orient = [(_str(v) or "").upper() for v in _multi(ds.get("PatientOrientation"))]
    if orient and orient[0] in ("P", "A"):
        lat = Laterality.R if orient[0] == "P" else Laterality.L
        shown = "\\".join(orient)
        return lat, [f"laterality {lat} inferred from Patient Orientation {shown} (Image Laterality and Laterality missing; standard hanging assumed)"], True
    return None, [], False


def _acquisition_datetime(ds: Dataset) -> datetime | None:
    adt = _str(ds.get("AcquisitionDateTime"))
    if adt:
        try:
            value = DT(adt)
            if isinstance(value, datetime):  # a plain naive datetime, local time of the modality
                return datetime.combine(value.date(), value.time())
        except ValueError:
            pass
    for date_kw, time_kw in (("AcquisitionDate", "AcquisitionTime"), ("ContentDate", "ContentTime")):
        d, t = _str(ds.get(date_kw)), _str(ds.get(time_kw))
        if d and t:
            try:
                dd, tt = DA(d), TM(t)
            except ValueError:
                continue
            if dd is not None and tt is not None:
                return datetime.combine(dd, tt.replace(tzinfo=None))
    return None


def _token_energy(tokens: Sequence[str]) -> Energy | None:
    low = any(t.startswith(_LE_TOKEN_PREFIX) for t in tokens)
    high = any(t.startswith(_HE_TOKEN_PREFIX) for t in tokens)
    if low and not high:
        return Energy.LOW
    if high and not low:
        return Energy.HIGH
    return None


def _filters(ds: Dataset) -> tuple[str | None, float | None]:
    names = _multi(ds.get("FilterMaterial"))
    symbols = [material_symbol(n) for n in names]
    tmin = [_float(v) for v in _multi(ds.get("FilterThicknessMinimum"))]
    tmax = [_float(v) for v in _multi(ds.get("FilterThicknessMaximum"))]
    if not symbols:
        return None, None
    # several filters (e.g. COPPER\ALUMINUM): the K-edge / hardening one characterises the beam
    idx = next((i for i, s in enumerate(symbols) if s in _HE_FILTERS), 0)
    lo = tmin[idx] if idx < len(tmin) else None
    hi = tmax[idx] if idx < len(tmax) else None
    thick = lo if hi is None else hi if lo is None else 0.5 * (lo + hi)
    return symbols[idx], thick


def acquisition_meta(ds: Dataset, path: str | os.PathLike[str] | None = None) -> AcquisitionMeta:
    """Normalised acquisition parameters of one dataset.

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
        A header (pixels not needed).
    path : path-like, optional
        Only used in log messages.

    Returns
    -------
    AcquisitionMeta
        ``energy`` comes from Image Type tokens, else from an HE-only beam (Cu/Ti filter
        or kVp >= 40); a kVp <= 35 image without a token is *not* called LOW here,
        since a non-contrast mammogram looks the same (the pairing decides).
    """
    if not isinstance(ds, (Dataset, _Fields)):
        raise TypeError(f"acquisition_meta: expected a pydicom Dataset, got {type(ds).__name__}")
    ds = _fields(ds)
    kvp = _float(ds.get("KVP"))
    filt, filt_mm = _filters(ds)
    energy = _token_energy(image_type_tokens(ds))
    if energy is None and (filt in _HE_FILTERS or (kvp is not None and kvp >= HE_MIN_KVP)):
        energy = Energy.HIGH
    mas: float | None = None
    if ds.get("ExposureInuAs") not in (None, ""):
        mas = _float(ds.get("ExposureInuAs"))
        mas = None if mas is None else mas / 1000.0
    if mas is None:
        mas = _float(ds.get("Exposure"))
    if mas is None:
        current_ma, time_ms = _float(ds.get("XRayTubeCurrent")), _float(ds.get("ExposureTime"))
        if current_ma is not None and time_ms is not None:
            mas = current_ma * time_ms / 1000.0
    spacing_raw = ds.get("ImagerPixelSpacing") or ds.get("PixelSpacing")
    spacing = None
    vals = [_float(v) for v in _multi(spacing_raw)]
    if len(vals) == 2 and None not in vals:
        spacing = (float(vals[0]), float(vals[1]))  # type: ignore[arg-type]
    thickness = _float(ds.get("BodyPartThickness"))
    if thickness is None:
        thickness = _float(_private_value(ds, 0x0045, _GE_SENO_CREATOR, _GE_COMPRESSION_THICKNESS))
    dark = _private_value(ds, 0x0029, _PHANTOM_CREATOR, _PHANTOM_DARK_OFFSET)
    gain = _private_value(ds, 0x0029, _PHANTOM_CREATOR, _PHANTOM_GAIN)
    simulated_spr = _private_value(ds, 0x0029, _PHANTOM_CREATOR, _PHANTOM_SPR)
    return AcquisitionMeta(
        kvp=kvp,
        anode=material_symbol(_multi(ds.get("AnodeTargetMaterial"))[0]) if ds.get("AnodeTargetMaterial") else None,
        filter_material=filt,
        filter_mm=filt_mm,
        thickness_mm=thickness,
        compression_force_n=_float(ds.get("CompressionForce")),
        exposure_mas=mas,
        acquisition_datetime=_acquisition_datetime(ds),
        pixel_spacing_mm=spacing,
        rows=_int(ds.get("Rows")),
        columns=_int(ds.get("Columns")),
        bits_stored=_int(ds.get("BitsStored")),
        photometric=_str(ds.get("PhotometricInterpretation")),
        pixel_intensity_relationship=(_str(ds.get("PixelIntensityRelationship")) or "").upper() or None,
        presentation_intent=(_str(ds.get("PresentationIntentType")) or "").upper() or None,
        energy=energy,
        dark_offset_dn=_float(dark),
        manufacturer=_str(ds.get("Manufacturer")),
        model=_str(ds.get("ManufacturerModelName")),
        gain_dn_per_kev=_float(gain),
        simulated_spr=_float(simulated_spr),
    )


# --------------------------------------------------------------------------------------
# Scanning one file
# --------------------------------------------------------------------------------------


@dataclass
class _Scan:
    """Internal: the result of scanning one file (header + provisional role)."""

    path: Path
    role: FileRole
    reason: str | None = None
    sop_instance_uid: str | None = None
    image: SourceImage | None = None
    notes: list[str] = field(default_factory=list)  # inconsistencies (go through strictness)
    fallback_energy: bool = False  # LE/HE decided by kVp / filter, not by an Image Type token
    order: int = 0


def _sop_name(uid: str | None) -> str:
    if not uid:
        return "no SOP Class UID"
    u = UID(uid)
    return f"{u.name} ({uid})" if u.name != uid else uid


def _looks_like_raw_dicom(head: bytes) -> bool:
    # a DICOM data set without the 128-byte preamble usually starts with group 0002 or 0008
    return len(head) >= 8 and head[:2] in (b"\x02\x00", b"\x08\x00")


def scan_file(path: str | os.PathLike[str], *, check_pixels: bool = True) -> _Scan:
    """Scan one file's header and classify it (no pixel decoding; never raises for bad input).

    This is the per-file step of :func:`read_exams`; LE candidates found only by kVp
    are confirmed or demoted by the pairing.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        return _Scan(path, FileRole.UNREADABLE, f"cannot stat file: {exc.strerror or exc}")
    if size == 0:
        return _Scan(path, FileRole.NOT_DICOM, "empty file (0 bytes)")
    try:
        with open(path, "rb") as fp, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = None
            try:
                ds = dcmread(fp, stop_before_pixels=True)
            except InvalidDicomError:
                fp.seek(0)
                if not _looks_like_raw_dicom(fp.read(8)):
                    return _Scan(path, FileRole.NOT_DICOM, "not a DICOM file (no 'DICM' prefix at byte 128)")
                fp.seek(0)
                try:
                    ds = dcmread(fp, stop_before_pixels=True, force=True)
                except Exception:  # noqa: BLE001 - garbage under force=True fails in many ways
                    ds = None
                if ds is None or "SOPClassUID" not in ds or "SOPInstanceUID" not in ds:
                    return _Scan(path, FileRole.NOT_DICOM, "not a DICOM file (no 'DICM' prefix, no SOP UIDs)")
            offset = fp.tell()
            scan = _classify(path, _Fields(ds), fp, offset, size, check_pixels=check_pixels)
            scan.notes.extend(f"pydicom: {w.message}" for w in caught if scan.role in (FileRole.LE, FileRole.HE))
            return scan
    except Exception as exc:  # noqa: BLE001 - a bad file must never crash the scan
        logger.debug("scan of %s failed", path, exc_info=True)
        return _Scan(path, FileRole.UNREADABLE, f"cannot parse DICOM header: {type(exc).__name__}: {exc}")


def _classify(path: Path, ds: _Fields, fp: Any, offset: int, size: int, *, check_pixels: bool) -> _Scan:
    meta_ds = ds.file_meta or Dataset()
    tsuid = str(meta_ds.get("TransferSyntaxUID") or ImplicitVRLittleEndian)
    sop_uid = _str(ds.get("SOPInstanceUID")) or _str(meta_ds.get("MediaStorageSOPInstanceUID"))
    sop_class = _str(ds.get("SOPClassUID")) or _str(meta_ds.get("MediaStorageSOPClassUID"))
    scan = _Scan(path, FileRole.OTHER_IMAGE, sop_instance_uid=sop_uid)

    if sop_class == _DICOMDIR_CLASS or "DirectoryRecordSequence" in ds:
        scan.role, scan.reason = FileRole.NON_IMAGE, "DICOMDIR (media index; the files it references are scanned)"
        return scan
    has_matrix = "Rows" in ds and "Columns" in ds
    at_pixels = offset < size
    if not has_matrix and not at_pixels:
        if sop_class and "Image" in UID(sop_class).name:
            scan.role = FileRole.UNREADABLE
            scan.reason = f"truncated or incomplete: {_sop_name(sop_class)} without Rows/Columns or Pixel Data"
        else:
            scan.role, scan.reason = FileRole.NON_IMAGE, f"non-image object: {_sop_name(sop_class)}"
        return scan
    if not sop_uid:
        scan.role, scan.reason = FileRole.UNREADABLE, "no SOP Instance UID (0008,0018)"
        return scan

    modality = (_str(ds.get("Modality")) or "").upper()
    frames = _int(ds.get("NumberOfFrames")) or 1
    if modality != "MG":
        scan.reason = f"modality {modality or '(missing)'} ({_sop_name(sop_class)}) is not mammography"
        return scan
    if sop_class == _SOP_BREAST_TOMO:
        scan.reason = "breast tomosynthesis image, not a 2-D exposure"
        return scan
    if sop_class not in _MG_IMAGE_CLASSES:
        scan.reason = f"SOP class {_sop_name(sop_class)} is not DM, Breast Projection or Secondary Capture"
        return scan

    tokens = image_type_tokens(ds)
    tokens_text = "\\".join(_str(v) or "" for v in _multi(ds.get("ImageType")))
    kvp = _float(ds.get("KVP"))
    filt, _ = _filters(ds)
    rc_tokens = [t for t in tokens if t in _RC_TOKENS]
    if rc_tokens:
        scan.role = FileRole.VENDOR_RC
        scan.reason = f"vendor recombined image (Image Type {tokens_text}): an output, not an input"
        return scan
    energy = _token_energy(tokens)
    if energy is None and any(t.startswith((_LE_TOKEN_PREFIX, _HE_TOKEN_PREFIX)) for t in tokens):
        scan.reason = f"contradictory Image Type {tokens_text}: both LOW_ENERGY and HIGH_ENERGY"
        return scan
    if energy is None:
        proc = (_str(ds.get("AcquisitionDeviceProcessingCode")) or "").upper()
        if proc == _GE_CESM_RC_CODE:
            scan.role = FileRole.VENDOR_RC
            scan.reason = f"vendor recombined image (GE Processing Code {proc}): an output, not an input"
            return scan
        if filt in _HE_FILTERS or (kvp is not None and kvp >= HE_MIN_KVP):
            energy = Energy.HIGH
        elif kvp is not None and kvp <= LE_MAX_KVP:
            energy = Energy.LOW
        else:
            scan.reason = (
                f"mammogram without a contrast-energy marker (Image Type {tokens_text or '(missing)'}, "
                f"kVp {kvp}, filter {filt})"
            )
            return scan
        scan.fallback_energy = True
    label = energy.value
    if tokens and tokens[0] == "DERIVED":
        scan.reason = (
            f"{label} image is DERIVED (Image Type {tokens_text}): processed, not the raw ORIGINAL exposure"
        )
        return scan
    intent = (_str(ds.get("PresentationIntentType")) or "").upper()
    pir = (_str(ds.get("PixelIntensityRelationship")) or "").upper()
    if intent == "FOR PRESENTATION" or sop_class in _PRESENTATION_CLASSES or pir == "LOG":
        what = []
        if intent == "FOR PRESENTATION" or sop_class in _PRESENTATION_CLASSES:
            what.append("For Presentation")
        if pir:
            what.append(pir)
        scan.reason = (
            f"{label} image is processed ({', '.join(what)}): not recombinable, "
            "recombination needs raw For Processing (LIN) data"
        )
        return scan
    photometric = (_str(ds.get("PhotometricInterpretation")) or "").upper()
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        scan.reason = f"{label} image has Photometric Interpretation {photometric or '(missing)'}; raw data is MONOCHROME1/2"
        return scan
    if frames != 1:
        scan.reason = f"{label} image has {frames} frames; single-frame images expected"
        return scan
    sign = _int(ds.get("PixelIntensityRelationshipSign"))
    if sign == -1:
        scan.reason = (
            f"{label} image has Pixel Intensity Relationship Sign -1 (values fall with exposure); "
            "raw LIN data with sign +1 is expected"
        )
        return scan

    scan.role = FileRole.LE if energy is Energy.LOW else FileRole.HE
    # ---- from here on the file is an LE/HE candidate: check it is complete and decodable
    if not at_pixels:
        scan.role, scan.reason = FileRole.UNREADABLE, f"truncated: no Pixel Data element (file ends at {size} bytes)"
        return scan
    if check_pixels:
        if tsuid == DeflatedExplicitVRLittleEndian:
            problem = _deflated_problem(path)
        else:
            problem = _pixels.pixel_data_problem(
                fp,
                offset,
                size,
                transfer_syntax_uid=tsuid,
                rows=_int(ds.get("Rows")),
                columns=_int(ds.get("Columns")),
                bits_allocated=_int(ds.get("BitsAllocated")),
                samples_per_pixel=_int(ds.get("SamplesPerPixel")) or 1,
                number_of_frames=frames,
            )
        if problem is not None:
            scan.role, scan.reason = FileRole.UNREADABLE, problem
            return scan
    if int(ds.get("PixelRepresentation", 0) or 0) != 0:
        scan.reason = f"{label} image has signed pixels (Pixel Representation 1); raw detector data is unsigned"
        return scan
    problem = _pixels.decoder_problem(tsuid)
    if problem is not None:
        scan.reason = problem
        return scan

    meta = acquisition_meta(ds, path)
    if meta.energy is not energy:
        meta = dataclasses.replace(meta, energy=energy)
    lat, lat_notes, inferred = normalise_laterality(ds)
    view, view_notes = normalise_view(ds)
    scan.notes.extend(lat_notes)
    scan.notes.extend(view_notes)
    if kvp is None:
        pass
    elif not (MG_KVP_RANGE[0] <= kvp <= MG_KVP_RANGE[1]):
        scan.notes.append(f"kVp {kvp:g} outside the mammography range {MG_KVP_RANGE[0]:g}-{MG_KVP_RANGE[1]:g}")
    elif energy is Energy.LOW and kvp > LE_MAX_KVP:
        scan.notes.append(f"kVp {kvp:g} out of range for a LOW_ENERGY image (expected <= {LE_MAX_KVP:g})")
    elif energy is Energy.HIGH and kvp < HE_MIN_KVP:
        scan.notes.append(f"kVp {kvp:g} out of range for a HIGH_ENERGY image (expected >= {HE_MIN_KVP:g})")
    if tsuid in _pixels.LOSSY_SYNTAXES or (_str(ds.get("LossyImageCompression")) or "") == "01":
        scan.notes.append(f"lossy compressed pixel data ({UID(tsuid).name}): raw values are not preserved")
    if meta.acquisition_datetime is None:
        scan.notes.append("no Acquisition Date/Time (or Content Date/Time)")
    if view is None:
        scan.notes.append("no view (View Position, View Code Sequence, GE Clinical View all missing)")
        view = View.OTHER
    fov = tuple(
        _str(ds.get(kw)) if not isinstance(ds.get(kw), (list, tuple)) else tuple(ds.get(kw))
        for kw in ("FieldOfViewOrigin", "FieldOfViewRotation", "FieldOfViewHorizontalFlip")
    )
    orient = tuple((_str(v) or "").upper() for v in _multi(ds.get("PatientOrientation"))) or None
    scan.image = SourceImage(
        path=path,
        sop_instance_uid=sop_uid,
        sop_class_uid=sop_class or "",
        header=ds.ds,
        meta=meta,
        study_uid=_str(ds.get("StudyInstanceUID")) or "",
        series_uid=_str(ds.get("SeriesInstanceUID")),
        frame_of_reference_uid=_str(ds.get("FrameOfReferenceUID")),
        laterality=lat,
        view=view,
        transfer_syntax_uid=tsuid,
        patient_orientation=orient,
        field_of_view=fov if any(v is not None for v in fov) else None,
    )
    if lat is None:
        scan.notes.append("no laterality (Image Laterality, Laterality, GE Clinical View, Patient Orientation)")
        scan.reason = "laterality unknown: cannot be paired"
    if not scan.image.study_uid:
        scan.reason = "no Study Instance UID: cannot be paired"
    return scan


def _deflated_problem(path: Path) -> str | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dcmread(path)
        if "PixelData" not in ds:
            return "truncated: no Pixel Data element"
        expected = _pixels._expected_native_bytes(
            {
                "rows": _int(ds.get("Rows")),
                "columns": _int(ds.get("Columns")),
                "bits_allocated": _int(ds.get("BitsAllocated")),
                "samples_per_pixel": _int(ds.get("SamplesPerPixel")) or 1,
                "number_of_frames": _int(ds.get("NumberOfFrames")) or 1,
            }
        )
        if len(ds.PixelData) < expected:
            return f"truncated: Pixel Data holds {len(ds.PixelData)} bytes, {expected} needed"
    except Exception as exc:  # noqa: BLE001
        return f"cannot inflate deflated data set: {exc}"
    return None


# --------------------------------------------------------------------------------------
# Collecting files
# --------------------------------------------------------------------------------------


def _collect(paths: Iterable[str | os.PathLike[str]], *, recursive: bool) -> tuple[list[Path], list[_Scan]]:
    """Expand files, folders and DICOMDIRs into a de-duplicated, sorted list of files."""
    from cemrecon.io import dicomdir as _dicomdir

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: dict[str, Path] = {}
    missing: list[_Scan] = []

    def add(p: Path) -> None:
        files.setdefault(os.path.normcase(os.path.abspath(p)), p)

    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            if recursive:
                for root, dirs, names in os.walk(p):
                    dirs.sort()
                    for name in sorted(names):
                        add(Path(root) / name)
            else:
                for child in sorted(p.iterdir()):
                    if child.is_file():
                        add(child)
        elif p.is_file():
            add(p)
            if _dicomdir.is_dicomdir(p):
                refs, absent = _dicomdir.referenced_files(p)
                for ref in refs:
                    add(ref)
                for ref in absent:
                    missing.append(_Scan(ref, FileRole.UNREADABLE, f"referenced by DICOMDIR {p} but missing"))
        else:
            raise FileNotFoundError(f"read_exams: path {str(p)!r} does not exist (give files, folders or a DICOMDIR)")
    ordered = sorted(files.values(), key=lambda q: str(q))
    return ordered, missing


# --------------------------------------------------------------------------------------
# Strictness
# --------------------------------------------------------------------------------------


class _Reporter:
    def __init__(self, strictness: Strictness) -> None:
        self.strictness = strictness
        self.issues: list[str] = []

    def __call__(self, path: Path | str, message: str, error: type[CemreconError] = DicomReadError) -> None:
        text = f"{path}: {message}"
        self.issues.append(text)
        if self.strictness is Strictness.RAISE:
            raise error(text + " (strictness='raise'; use 'warn' or 'ignore' to continue)")
        if self.strictness is Strictness.WARN:
            warnings.warn(text, ReaderWarning, stacklevel=4)
        logger.info("%s", text)


def _strictness(value: str | Strictness) -> Strictness:
    try:
        return Strictness(value)
    except ValueError:
        accepted = ", ".join(repr(s.value) for s in Strictness)
        raise ValueError(f"strictness must be one of {accepted}, got {value!r}") from None


# --------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------


def read_exams(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    strictness: str | Strictness = "warn",
    recursive: bool = True,
    check_pixels: bool = True,
    warn_gap_s: float = WARN_GAP_S,
    max_gap_s: float = MAX_GAP_S,
    progress: Callable[[int, int], None] | None = None,
) -> ReadResult:
    """Scan files, folders or DICOMDIRs, classify every file, and pair each LE with its HE.

    Parameters
    ----------
    paths : path-like or iterable of path-like
        Files, folders (walked recursively unless ``recursive=False``) or DICOMDIR files
        (their referenced files are scanned too).
    strictness : {"ignore", "warn", "raise"}
        What to do with inconsistencies (kVp out of range for the energy, missing
        laterality or time, contradictory view, long LE-HE gap, lossy compression):
        record them only, also emit a :class:`ReaderWarning`, or raise
        :class:`~cemrecon.errors.DicomReadError` / :class:`~cemrecon.errors.PairingError`.
        Unreadable or unusable files are always recorded, never raised.
    recursive : bool
        Walk sub-folders.
    check_pixels : bool
        Check, without decoding, that each LE/HE file's pixel data is complete (truncated
        files are marked ``UNREADABLE``).
    warn_gap_s : float
        An LE-HE acquisition time gap above this (s) is an inconsistency.
    max_gap_s : float
        Images further apart than this (s) are never paired.
    progress : callable, optional
        ``progress(n_scanned, n_files)`` after each file (e.g. to drive a progress bar).

    Returns
    -------
    ReadResult
        ``exams`` (one per study with at least one pair), ``pairs`` (flat), ``manifest``
        (one entry per scanned file) and ``excluded`` (entries not used, each with a reason).

    Raises
    ------
    FileNotFoundError
        A given path does not exist.
    DicomReadError, PairingError
        Only with ``strictness="raise"``, on the first inconsistency.

    Examples
    --------
    >>> result = read_exams("export/")  # doctest: +SKIP
    >>> for pair in result.pairs:  # doctest: +SKIP
    ...     le, he = pair.load()
    """
    mode = _strictness(strictness)
    if not (0 < warn_gap_s <= max_gap_s):
        raise ValueError(f"need 0 < warn_gap_s <= max_gap_s, got warn_gap_s={warn_gap_s}, max_gap_s={max_gap_s}")
    report = _Reporter(mode)
    files, scans = _collect(paths, recursive=recursive)
    for k, path in enumerate(files, 1):
        scans.append(scan_file(path, check_pixels=check_pixels))
        if progress is not None:
            progress(k, len(files))
    for i, s in enumerate(scans):
        s.order = i
    logger.info("scanned %d files", len(scans))

    # ---- duplicates: one copy per SOP Instance UID (an intact LE/HE copy is preferred)
    by_uid: dict[str, list[_Scan]] = {}
    for s in scans:
        if s.sop_instance_uid and s.role not in (FileRole.NOT_DICOM, FileRole.NON_IMAGE):
            by_uid.setdefault(s.sop_instance_uid, []).append(s)
    for uid, copies in by_uid.items():
        if len(copies) < 2:
            continue
        keep = min(copies, key=lambda c: (c.image is None or c.reason is not None, c.order))
        for c in copies:
            if c is not keep:
                dup = f"duplicate of SOP Instance UID {uid} (the copy at {keep.path} is used)"
                c.reason = dup if c.reason is None else f"{c.reason}; {dup}"
                c.image = None

    # ---- strictness on per-file inconsistencies, for the files that may be used
    for s in scans:
        if s.image is not None:
            for note in s.notes:
                if not note.startswith("pydicom:"):
                    report(s.path, note, DicomReadError)
            if s.reason is not None:
                s.image = None

    candidates = [s for s in scans if s.image is not None and s.reason is None]
    by_image = {id(s.image): s for s in candidates}
    les = [s.image for s in candidates if s.role is FileRole.LE]
    hes = [s.image for s in candidates if s.role is FileRole.HE]

    def pair_report(image: SourceImage, message: str) -> None:
        by_image[id(image)].notes.append(message)
        report(image.path, message, PairingError)

    pairs, unpaired = pair_images(
        les,  # type: ignore[arg-type]
        hes,  # type: ignore[arg-type]
        warn_gap_s=warn_gap_s,
        max_gap_s=max_gap_s,
        report=pair_report,
    )
    used: dict[int, str] = {}
    for p in pairs:
        used[id(p.le)] = p.key
        used[id(p.he)] = p.key
        for img in (p.le, p.he):
            s = by_image[id(img)]
            if s.fallback_energy:
                s.notes.append(f"{s.role.value} by kVp/filter: Image Type has no energy token")
    for img, why in unpaired.items():
        s = by_image[id(img)]
        if s.fallback_energy and s.role is FileRole.LE:
            s.role = FileRole.OTHER_IMAGE
            s.reason = (
                f"no LOW_ENERGY token; kVp {s.image.meta.kvp:g} <= {LE_MAX_KVP:g} but no HE exposure pairs with it: "
                "treated as a non-contrast mammogram"
            )
        else:
            s.reason = why

    manifest: list[ManifestEntry] = []
    for s in sorted(scans, key=lambda x: x.order):
        key = used.get(id(s.image)) if s.image is not None else None
        img = s.image
        manifest.append(
            ManifestEntry(
                path=str(s.path),
                sop_instance_uid=s.sop_instance_uid,
                role=s.role,
                pair_key=key,
                reason=None if key else (s.reason or "not used"),
                notes=tuple(s.notes),
                study_uid=img.study_uid if img is not None else None,
                laterality=img.laterality if img is not None else None,
                view=img.view if img is not None else None,
            )
        )
    exams: dict[str, Exam] = {}
    for p in pairs:
        exams.setdefault(p.study_uid, Exam(study_uid=p.study_uid, pairs=[])).pairs.append(p)
    n_used = sum(1 for m in manifest if m.pair_key)
    logger.info("%d pairs in %d studies; %d of %d files excluded", len(pairs), len(exams), len(manifest) - n_used, len(manifest))
    return ReadResult(exams=list(exams.values()), pairs=pairs, manifest=manifest, issues=report.issues)
