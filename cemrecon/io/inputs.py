"""One way to turn what a user passes (arrays, Datasets, paths, reader images, pairs) into pixels + metadata.

:func:`cemrecon.recombine`, :func:`cemrecon.iodine_map` and :func:`cemrecon.analyze`
accept the same inputs; they all come through here, so the rules (and the error
messages) are the same everywhere:

* a NumPy array: pixels only, no metadata;
* a DICOM path or a pydicom ``Dataset``: pixels decoded by pydicom, metadata from
  :func:`cemrecon.io.read.acquisition_meta`;
* a reader image (:class:`cemrecon.io.read.SourceImage`, anything with
  ``read_pixels()`` and ``meta``);
* a pair (:class:`cemrecon.io.pair.Pair`, anything with ``.le`` and ``.he``) passed as
  the first argument with no second one.

Beams are built from normalised metadata by :func:`beam_from_meta`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from cemrecon.errors import DicomReadError, UnsupportedDicomError

__all__ = ["LoadedImage", "beam_from_meta", "is_pair", "load_image", "load_pair", "DEFAULT_FILTER_MM"]

logger = logging.getLogger(__name__)

#: Filter thickness (mm) assumed when a header names the filter material but not its
#: thickness (Filter Thickness Minimum/Maximum absent): the usual mammography values
#: (Mo 30 um, Rh 25 um (50 um with a W anode), Ag 30 um, Cu 0.3 mm for CEM HE, Ti 1 mm,
#: Al 0.7 mm; physics.md section 1, Table 1).
DEFAULT_FILTER_MM = {"Mo": 0.03, "Rh": 0.025, "Ag": 0.03, "Cu": 0.3, "Ti": 1.0, "Al": 0.7}
_DEFAULT_FILTER_MM_W_ANODE = {"Rh": 0.05}


@dataclass
class LoadedImage:
    """Pixels (as stored) with their normalised metadata and where they came from."""

    pixels: np.ndarray
    meta: Any = None
    path: str | None = None
    sop_instance_uid: str | None = None

    def read_pixels(self) -> np.ndarray:
        """The pixels already decoded (so a LoadedImage can be passed on without decoding again)."""
        return self.pixels

    def describe(self) -> dict[str, Any]:
        """Provenance entry: path and SOP Instance UID (None for arrays)."""
        return {"path": self.path, "sop_instance_uid": self.sop_instance_uid}


def is_pair(obj: Any) -> bool:
    """True for an LE/HE pair (an object with ``.le`` and ``.he``), not for an array."""
    return hasattr(obj, "le") and hasattr(obj, "he") and not isinstance(obj, np.ndarray)


def _from_dataset(ds: Any, path: str | None) -> LoadedImage:
    from cemrecon.io.read import acquisition_meta

    where = path or "<dataset>"
    try:
        pixels = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for undecodable data
        raise DicomReadError(f"{where}: cannot decode Pixel Data (7FE0,0010): {exc}") from exc
    uid = ds.get("SOPInstanceUID")
    return LoadedImage(np.asarray(pixels), acquisition_meta(ds, path), path, None if uid is None else str(uid))


def load_image(obj: Any, name: str) -> LoadedImage:
    """Pixels + metadata of one image; ``name`` (``"le"``, ``"pair.he"``...) is used in errors.

    Raises
    ------
    DicomReadError
        A path that is not readable DICOM, or pixel data that cannot be decoded (names the file).
    TypeError
        An object of another kind (names what is accepted).
    """
    if isinstance(obj, np.ndarray):
        return LoadedImage(obj)
    if isinstance(obj, str | os.PathLike):
        import pydicom

        path = os.fspath(obj)
        try:
            ds = pydicom.dcmread(path)
        except (OSError, pydicom.errors.InvalidDicomError) as exc:
            raise DicomReadError(f"{path}: cannot read {name} as DICOM: {exc}") from exc
        return _from_dataset(ds, path)
    from pydicom.dataset import Dataset

    if isinstance(obj, Dataset):
        return _from_dataset(obj, getattr(obj, "filename", None) or None)
    if hasattr(obj, "read_pixels") and hasattr(obj, "meta"):
        path = getattr(obj, "path", None)
        return LoadedImage(np.asarray(obj.read_pixels()), obj.meta, None if path is None else str(path),
                           getattr(obj, "sop_instance_uid", None))
    raise TypeError(
        f"{name} must be a numpy array, a pydicom Dataset, a DICOM path, or a reader image "
        f"(with read_pixels() and meta); got {type(obj).__name__}"
    )


def load_pair(le: Any, he: Any, *, caller: str = "recombine") -> tuple[LoadedImage, LoadedImage]:
    """LE and HE as :class:`LoadedImage`; ``he=None`` means ``le`` is a pair.

    A reader :class:`~cemrecon.io.pair.Pair` is decoded through its own ``load()``
    (integrity-checked, codec-aware).
    """
    if he is None:
        if not is_pair(le):
            raise TypeError(f"{caller}(le, he): he is required unless le is a Pair (with .le and .he)")
        pair = le
        if hasattr(pair, "load") and hasattr(pair.le, "meta"):
            le_px, he_px = pair.load()
            return (
                LoadedImage(np.asarray(le_px), pair.le.meta, str(getattr(pair.le, "path", "")) or None,
                            getattr(pair.le, "sop_instance_uid", None)),
                LoadedImage(np.asarray(he_px), pair.he.meta, str(getattr(pair.he, "path", "")) or None,
                            getattr(pair.he, "sop_instance_uid", None)),
            )
        return load_image(pair.le, "pair.le"), load_image(pair.he, "pair.he")
    return load_image(le, "le"), load_image(he, "he")


def beam_from_meta(meta: Any, *, where: str, which: str) -> Any:
    """:class:`cemrecon.physics.Beam` from normalised metadata, or None without metadata.

    A missing filter thickness falls back to :data:`DEFAULT_FILTER_MM` (logged).

    Raises
    ------
    UnsupportedDicomError
        kVp, anode or filter material missing (names the attributes and the file).
    """
    from cemrecon.physics import Beam

    if meta is None:
        return None
    missing = [
        label
        for label, attr in (
            ("KVP (0018,0060)", "kvp"),
            ("AnodeTargetMaterial (0018,1191)", "anode"),
            ("FilterMaterial (0018,7050)", "filter_material"),
        )
        if getattr(meta, attr, None) is None
    ]
    if missing:
        raise UnsupportedDicomError(
            f"{where}: the {which} beam needs {', '.join(missing)}, which the header lacks; "
            f"pass the beam explicitly ({which}_beam=) or an explicit weight"
        )
    filter_mm = meta.filter_mm
    if filter_mm is None:
        table = dict(DEFAULT_FILTER_MM)
        if meta.anode == "W":
            table.update(_DEFAULT_FILTER_MM_W_ANODE)
        filter_mm = table.get(meta.filter_material)
        logger.warning("%s: no filter thickness in the header; assuming %s mm of %s",
                       where, filter_mm, meta.filter_material)
    return Beam(meta.anode, meta.filter_material, filter_mm, meta.kvp)
