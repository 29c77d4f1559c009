"""Atomic file output: the one place where cemrecon writes a file.

Every output (DICOM, JSON, PNG, calibration) goes through :func:`atomic_write`:
the data are written to a temporary file ``.<name>.<random>.tmp`` in the
destination folder, flushed and fsynced, then renamed over the destination with
:func:`os.replace`. A crash or an exception leaves either the old file or the new
one, never a partial file; the temporary file is removed on failure. Batch reruns
delete stale ``.*.tmp`` files left by a killed process (:func:`stale_temp_files`).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from cemrecon.errors import OutputError

__all__ = [
    "atomic_write",
    "write_bytes_atomic",
    "write_text_atomic",
    "write_json_atomic",
    "write_dataset_atomic",
    "stale_temp_files",
    "TEMP_SUFFIX",
]

TEMP_SUFFIX = ".tmp"


def _open_temp(path: Path) -> tuple[int, Path]:
    """Create a new, exclusive temporary file next to ``path``."""
    for _ in range(16):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}{TEMP_SUFFIX}"
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file next to {path}")


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], Any], *, what: str = "file") -> Path:
    """Call ``write(fh)`` on a binary temp file, then rename it to ``path`` atomically.

    Parameters
    ----------
    path : path-like
        Destination. Its folder is created if missing.
    write : callable
        Receives an open binary file object and writes the content.
    what : str, optional
        What is being written, for error messages (``"RC image"``, ``"calibration"``...).

    Returns
    -------
    pathlib.Path
        The destination path.

    Raises
    ------
    OutputError
        The folder is not writable or ``write`` failed (the message names the path);
        nothing partial is left behind.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _open_temp(path)
    except OSError as exc:
        raise OutputError(f"cannot write {what} {str(path)!r}: {exc}") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, (OSError, ValueError, TypeError, AttributeError)):
            raise OutputError(f"cannot write {what} {str(path)!r}: {exc}") from exc
        raise
    return path


def write_bytes_atomic(data: bytes, path: str | os.PathLike[str], *, what: str = "file") -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda fh: fh.write(data), what=what)


def write_text_atomic(text: str, path: str | os.PathLike[str], *, what: str = "file") -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return write_bytes_atomic(text.encode("utf-8"), path, what=what)


def write_json_atomic(doc: Any, path: str | os.PathLike[str], *, what: str = "JSON file", indent: int = 2) -> Path:
    """Serialise ``doc`` as strict JSON (no NaN/inf) and write it atomically, newline-terminated."""
    text = json.dumps(doc, indent=indent, allow_nan=False) + "\n"
    return write_text_atomic(text, path, what=what)


def write_dataset_atomic(ds: Any, path: str | os.PathLike[str], *, what: str = "DICOM file") -> Path:
    """Write a pydicom ``Dataset`` (or highdicom object) as a DICOM file, atomically."""
    return atomic_write(path, lambda fh: ds.save_as(fh, enforce_file_format=True), what=what)


def stale_temp_files(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Temporary files left in ``folder`` (recursively) by an interrupted :func:`atomic_write`."""
    yield from Path(folder).rglob(f".*{TEMP_SUFFIX}")
