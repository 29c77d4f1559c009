"""Pixel data: codec availability, integrity checks without decoding, and decoding.

Three jobs, kept apart from header parsing (:mod:`cemrecon.io.read`):

* :func:`decoder_problem` says whether pydicom's plugin ecosystem can decode a
  transfer syntax here, and if not, which plugin is missing (a reason string for
  the manifest, never an exception).
* :func:`pixel_data_problem` checks, *without decoding*, that the Pixel Data
  element a header scan stopped in front of is complete: the file is long enough
  for native pixel data, and encapsulated fragments are all present, end with a
  Sequence Delimiter, and (for the JPEG family) the last fragment ends with an
  End-Of-Image / End-Of-Codestream marker.  A truncated JPEG 2000 file reads as a
  perfectly plausible header with ``stop_before_pixels``; this catches it before
  the file is paired.
* :func:`decode_pixels` decodes one file to a validated ``uint16`` array.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
)

from cemrecon.errors import DicomReadError, UnsupportedDicomError

__all__ = [
    "LOSSLESS_SYNTAXES",
    "LOSSY_SYNTAXES",
    "decoder_problem",
    "pixel_data_problem",
    "decode_pixels",
    "is_compressed",
]

logger = logging.getLogger(__name__)

#: Transfer syntaxes whose pixel data is bit-exact (uncompressed and lossless codecs).
LOSSLESS_SYNTAXES: frozenset[str] = frozenset(
    {
        "1.2.840.10008.1.2",  # Implicit VR Little Endian
        "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
        "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
        "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired)
        "1.2.840.10008.1.2.4.57",  # JPEG Lossless (process 14)
        "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
        "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
        "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless only
        "1.2.840.10008.1.2.4.201",  # HTJ2K Lossless
        "1.2.840.10008.1.2.4.202",  # HTJ2K Lossless RPCL
        "1.2.840.10008.1.2.5",  # RLE Lossless
    }
)

#: Syntaxes that are (or may be) lossy: decodable, but raw detector values are not preserved.
LOSSY_SYNTAXES: frozenset[str] = frozenset(
    {
        "1.2.840.10008.1.2.4.50",  # JPEG Baseline
        "1.2.840.10008.1.2.4.51",  # JPEG Extended
        "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
        "1.2.840.10008.1.2.4.91",  # JPEG 2000 (lossy allowed)
        "1.2.840.10008.1.2.4.203",  # HTJ2K (lossy allowed)
    }
)

# Which pip packages provide a decoder for a family of syntaxes (shown in reasons).
_INSTALL_HINT = {
    "1.2.840.10008.1.2.4.90": "pylibjpeg + pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.91": "pylibjpeg + pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.201": "pylibjpeg + pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.202": "pylibjpeg + pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.203": "pylibjpeg + pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.57": "pylibjpeg + pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.70": "pylibjpeg + pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.50": "pylibjpeg + pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.51": "pylibjpeg + pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.80": "pyjpegls (or pylibjpeg + pylibjpeg-libjpeg)",
    "1.2.840.10008.1.2.4.81": "pyjpegls (or pylibjpeg + pylibjpeg-libjpeg)",
}

# JPEG, JPEG-LS and JPEG 2000 codestreams all end with the marker FF D9 (EOI / EOC).
_JPEG_FAMILY_PREFIX = "1.2.840.10008.1.2.4."
_END_MARKER = b"\xff\xd9"

_PIXEL_DATA_TAG = 0x7FE00010
_FLOAT_PIXEL_TAGS = {0x7FE00008: "Float Pixel Data", 0x7FE00009: "Double Float Pixel Data"}
_ITEM_TAG = 0xFFFEE000
_SEQ_DELIM_TAG = 0xFFFEE0DD
_UNDEFINED_LENGTH = 0xFFFFFFFF


def is_compressed(transfer_syntax_uid: str) -> bool:
    """True for encapsulated (compressed) transfer syntaxes."""
    return bool(UID(transfer_syntax_uid).is_compressed)


def _syntax_label(transfer_syntax_uid: str) -> str:
    uid = UID(transfer_syntax_uid)
    name = uid.name if uid.is_transfer_syntax else "unknown transfer syntax"
    return f"{name} ({transfer_syntax_uid})"


def decoder_problem(transfer_syntax_uid: str | None) -> str | None:
    """Say why pixel data in this transfer syntax cannot be decoded here, or None if it can.

    Parameters
    ----------
    transfer_syntax_uid : str or None
        Transfer Syntax UID (0002,0010). ``None`` (no file meta) is read as
        Implicit VR Little Endian, as pydicom does.

    Returns
    -------
    str or None
        ``None`` when a pydicom pixel decoder with an installed plugin exists, else a
        reason naming the syntax and the package(s) to install.

    Examples
    --------
    >>> decoder_problem("1.2.840.10008.1.2.1") is None
    True
    >>> decoder_problem("1.2.3.4")
    'unsupported transfer syntax 1.2.3.4: not a DICOM transfer syntax pydicom knows'
    """
    from pydicom.pixels import get_decoder

    tsuid = str(transfer_syntax_uid or ImplicitVRLittleEndian)
    uid = UID(tsuid)
    if not uid.is_transfer_syntax:
        return f"unsupported transfer syntax {tsuid}: not a DICOM transfer syntax pydicom knows"
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        return f"unsupported transfer syntax {_syntax_label(tsuid)}: pydicom has no pixel decoder for it"
    if decoder.is_available:
        return None
    hint = _INSTALL_HINT.get(tsuid, "a pydicom pixel data plugin")
    missing = "; ".join(decoder.missing_dependencies) or "no plugin registered"
    return (
        f"cannot decode {_syntax_label(tsuid)}: no pixel data plugin installed "
        f"(install {hint}, e.g. pip install 'cemrecon[dicom-codecs]'; pydicom reports: {missing})"
    )


def _expected_native_bytes(header: Mapping[str, int]) -> int:
    rows = int(header.get("rows") or 0)
    cols = int(header.get("columns") or 0)
    spp = int(header.get("samples_per_pixel") or 1)
    frames = int(header.get("number_of_frames") or 1)
    bits = int(header.get("bits_allocated") or 16)
    if bits == 1:
        return (rows * cols * spp * frames + 7) // 8
    return rows * cols * spp * frames * ((bits + 7) // 8)


def pixel_data_problem(
    fp: BinaryIO,
    offset: int,
    file_size: int,
    *,
    transfer_syntax_uid: str | None,
    rows: int | None,
    columns: int | None,
    bits_allocated: int | None,
    samples_per_pixel: int | None = 1,
    number_of_frames: int | None = 1,
) -> str | None:
    """Check the Pixel Data element starting at ``offset`` is complete, without decoding it.

    Parameters
    ----------
    fp : binary file object
        The open DICOM file (its position is changed).
    offset : int
        Byte offset of the Pixel Data element's tag, i.e. where a
        ``stop_before_pixels`` read stopped.
    file_size : int
        Size of the file in bytes.
    transfer_syntax_uid, rows, columns, bits_allocated, samples_per_pixel, number_of_frames
        From the header; they give the expected size of native pixel data and the
        number of compressed frames.

    Returns
    -------
    str or None
        ``None`` if the element is complete, else a reason ("truncated: ...").
    """
    tsuid = str(transfer_syntax_uid or ImplicitVRLittleEndian)
    if tsuid == DeflatedExplicitVRLittleEndian:
        return None  # the caller checks deflated files by a full read (offsets are in the inflated stream)
    little = tsuid != ExplicitVRBigEndian
    implicit = tsuid == ImplicitVRLittleEndian
    endian = "<" if little else ">"
    if offset >= file_size:
        return f"truncated: the file ends ({file_size} bytes) before the Pixel Data element"
    fp.seek(offset)
    head = fp.read(12)
    if len(head) < 8:
        return f"truncated: the file ends ({file_size} bytes) inside the Pixel Data element header"
    group, elem = struct.unpack(endian + "HH", head[:4])
    tag = (group << 16) | elem
    if tag in _FLOAT_PIXEL_TAGS:
        return f"{_FLOAT_PIXEL_TAGS[tag]} (float images) is not raw detector data"
    if tag != _PIXEL_DATA_TAG:
        return f"expected the Pixel Data element (7FE0,0010) at byte {offset}, found ({group:04X},{elem:04X})"
    if implicit:
        (length,) = struct.unpack(endian + "I", head[4:8])
        value_start = offset + 8
    else:
        if len(head) < 12:
            return f"truncated: the file ends ({file_size} bytes) inside the Pixel Data element header"
        (length,) = struct.unpack(endian + "I", head[8:12])
        value_start = offset + 12
    header = {
        "rows": rows,
        "columns": columns,
        "bits_allocated": bits_allocated,
        "samples_per_pixel": samples_per_pixel,
        "number_of_frames": number_of_frames,
    }
    if not UID(tsuid).is_compressed:
        if length == _UNDEFINED_LENGTH:
            return f"native Pixel Data with undefined length is invalid in {_syntax_label(tsuid)}"
        expected = _expected_native_bytes(header)
        if length < expected:
            return (
                f"Pixel Data holds {length} bytes but Rows x Columns x frames x Bits Allocated "
                f"({rows} x {columns} x {number_of_frames or 1} x {bits_allocated}) needs {expected}"
            )
        if value_start + length > file_size:
            return (
                f"truncated: Pixel Data needs {length} bytes from byte {value_start} "
                f"but the file has {file_size} bytes ({value_start + length - file_size} missing)"
            )
        return None
    return _encapsulated_problem(fp, value_start, file_size, length, tsuid, int(number_of_frames or 1))


def _encapsulated_problem(
    fp: BinaryIO, start: int, file_size: int, length: int, tsuid: str, n_frames: int
) -> str | None:
    if length != _UNDEFINED_LENGTH:
        return f"encapsulated Pixel Data must have undefined length, found {length} bytes"
    pos = start
    n_items = 0
    last_item: tuple[int, int] | None = None  # (value start, length) of the last fragment
    while True:
        if pos + 8 > file_size:
            return (
                f"truncated: encapsulated Pixel Data ends without a Sequence Delimiter after "
                f"{max(n_items - 1, 0)} fragment(s) (file has {file_size} bytes)"
            )
        fp.seek(pos)
        group, elem, item_len = struct.unpack("<HHI", fp.read(8))
        tag = (group << 16) | elem
        if tag == _SEQ_DELIM_TAG:
            break
        if tag != _ITEM_TAG:
            return f"corrupt encapsulated Pixel Data: expected an item tag at byte {pos}, found ({group:04X},{elem:04X})"
        if item_len == _UNDEFINED_LENGTH or pos + 8 + item_len > file_size:
            return (
                f"truncated: fragment {n_items} claims {item_len} bytes at byte {pos + 8} "
                f"but the file ends at {file_size}"
            )
        if n_items > 0 and item_len > 0:
            last_item = (pos + 8, item_len)
        n_items += 1
        pos += 8 + item_len
    n_fragments = n_items - 1  # the first item is the Basic Offset Table
    if n_fragments < n_frames:
        return f"encapsulated Pixel Data has {n_fragments} fragment(s) for {n_frames} frame(s)"
    if tsuid.startswith(_JPEG_FAMILY_PREFIX) and last_item is not None:
        value_start, item_len = last_item
        tail_len = min(item_len, 4)
        fp.seek(value_start + item_len - tail_len)
        tail = fp.read(tail_len)
        # fragments are padded to even length, so the marker may be followed by one 0x00
        if _END_MARKER not in tail:
            return (
                "truncated codestream: the last fragment does not end with the JPEG "
                f"end marker FF D9 (last bytes {tail.hex(' ')})"
            )
    return None


def decode_pixels(
    path: str | os.PathLike[str],
    *,
    rows: int | None = None,
    columns: int | None = None,
    bits_stored: int | None = None,
) -> np.ndarray:
    """Decode the single frame of one file to a validated ``uint16`` array.

    Parameters
    ----------
    path : path-like
        The DICOM file.
    rows, columns, bits_stored : int, optional
        Expected values (from a header scan); checked against the decoded array.

    Returns
    -------
    numpy.ndarray
        ``(rows, columns)`` ``uint16``.

    Raises
    ------
    UnsupportedDicomError
        No decoder plugin, signed, colour or multi-frame pixel data.
    DicomReadError
        The file cannot be decoded or the array does not match the header.
    """
    from pydicom import dcmread

    path = Path(path)
    try:
        ds = dcmread(path)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a read error for this file
        raise DicomReadError(f"{path}: cannot read DICOM file: {exc}") from exc
    file_meta = getattr(ds, "file_meta", None)
    tsuid = str(file_meta.get("TransferSyntaxUID", "") or ImplicitVRLittleEndian) if file_meta is not None else None
    problem = decoder_problem(tsuid)
    if problem is not None:
        raise UnsupportedDicomError(f"{path}: {problem}")
    if "PixelData" not in ds:
        raise DicomReadError(f"{path}: no Pixel Data element (7FE0,0010)")
    if int(ds.get("PixelRepresentation", 0)) != 0:
        raise UnsupportedDicomError(
            f"{path}: Pixel Representation {ds.PixelRepresentation} (signed); raw detector data must be unsigned (0)"
        )
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise UnsupportedDicomError(f"{path}: Samples per Pixel {ds.SamplesPerPixel}; only monochrome is supported")
    if int(ds.get("NumberOfFrames", 1) or 1) != 1:
        raise UnsupportedDicomError(f"{path}: Number of Frames {ds.NumberOfFrames}; only single-frame images are supported")
    try:
        arr = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - codec errors come in many types
        raise DicomReadError(f"{path}: cannot decode Pixel Data ({_syntax_label(tsuid or ImplicitVRLittleEndian)}): {exc}") from exc
    return validate_pixels(arr, path, rows=rows, columns=columns, bits_stored=bits_stored)


def validate_pixels(
    arr: np.ndarray,
    path: str | os.PathLike[str],
    *,
    rows: int | None = None,
    columns: int | None = None,
    bits_stored: int | None = None,
) -> np.ndarray:
    """Check a decoded array against its header and return it as ``uint16``."""
    if arr.ndim != 2:
        raise DicomReadError(f"{path}: decoded Pixel Data has shape {arr.shape}; expected a 2-D image")
    if (rows is not None and arr.shape[0] != rows) or (columns is not None and arr.shape[1] != columns):
        raise DicomReadError(
            f"{path}: decoded Pixel Data has shape {arr.shape} but the header says Rows x Columns = {rows} x {columns}"
        )
    if arr.dtype.kind not in "ub" or arr.dtype.itemsize > 2:
        raise DicomReadError(f"{path}: decoded Pixel Data has dtype {arr.dtype}; expected unsigned 8 or 16 bit")
    arr = np.ascontiguousarray(arr, dtype=np.uint16)
    if bits_stored is not None and 0 < bits_stored < 16 and arr.size:
        vmax = int(arr.max())
        if vmax >= (1 << bits_stored):
            raise DicomReadError(
                f"{path}: pixel value {vmax} does not fit Bits Stored = {bits_stored} (max {(1 << bits_stored) - 1})"
            )
    return arr
