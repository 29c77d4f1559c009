"""DICOMDIR support: list the files a DICOMDIR references (PS3.10 media index)."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

__all__ = ["is_dicomdir", "referenced_files"]

logger = logging.getLogger(__name__)

_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"


def is_dicomdir(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is a DICOMDIR (by name, or by its Media Storage SOP Class)."""
    path = Path(path)
    if path.name.upper() == "DICOMDIR":
        return True
    try:
        with open(path, "rb") as fp:
            fp.seek(128)
            if fp.read(4) != b"DICM":
                return False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            meta = dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"]).file_meta
    except (OSError, InvalidDicomError, ValueError, EOFError):
        return False
    return str(meta.get("MediaStorageSOPClassUID", "")) == _DICOMDIR_CLASS


def referenced_files(path: str | os.PathLike[str]) -> tuple[list[Path], list[Path]]:
    """Files referenced by the directory records of a DICOMDIR.

    Parameters
    ----------
    path : path-like
        The DICOMDIR file; Referenced File IDs are relative to its folder.

    Returns
    -------
    present, missing : list of pathlib.Path
        Referenced files that exist and those that do not.  An unreadable DICOMDIR
        yields two empty lists (the file itself is then reported by the scan).
    """
    path = Path(path)
    root = path.parent
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dcmread(path, force=True)
        records = list(ds.get("DirectoryRecordSequence", []))
    except Exception as exc:  # noqa: BLE001 - a broken index must not stop the scan
        logger.warning("cannot read DICOMDIR %s: %s", path, exc)
        return [], []
    present: list[Path] = []
    missing: list[Path] = []
    seen: set[Path] = set()
    for rec in records:
        ref = rec.get("ReferencedFileID")
        if not ref:
            continue
        parts = [ref] if isinstance(ref, str) else list(ref)
        target = root.joinpath(*[str(p) for p in parts])
        if not target.exists():  # media are often case-folded (ISO 9660)
            alt = root.joinpath(*[str(p).lower() for p in parts])
            target = alt if alt.exists() else target
        if target in seen:
            continue
        seen.add(target)
        (present if target.is_file() else missing).append(target)
    return present, missing
