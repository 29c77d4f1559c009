"""Exception hierarchy for cemrecon.

Domain failures that a batch job must be able to catch per item derive from
:class:`CemreconError`.  Plain ``ValueError`` / ``TypeError`` are still used for
bad arguments to a function (the usual Python contract); the domain errors below
subclass them where that makes ``except ValueError`` keep working.
"""

from __future__ import annotations

__all__ = [
    "CemreconError",
    "DicomReadError",
    "UnsupportedDicomError",
    "PairingError",
    "CalibrationError",
    "PhysicsError",
    "OutputError",
]


class CemreconError(Exception):
    """Base class of every error raised by cemrecon on purpose."""


class DicomReadError(CemreconError, ValueError):
    """A file could not be read as the DICOM object it claims to be (names the file)."""


class UnsupportedDicomError(CemreconError, ValueError):
    """A DICOM object is valid but not usable here (intent, transfer syntax, photometric...)."""


class PairingError(CemreconError, ValueError):
    """LE/HE images could not be paired consistently (matrix, spacing, laterality, time...)."""


class CalibrationError(CemreconError, ValueError):
    """A calibration file or calibration data set is missing, malformed or out of range."""


class PhysicsError(CemreconError, ValueError):
    """A beam or material the physics model does not know, or a value outside its validity."""


class OutputError(CemreconError, OSError):
    """Writing a derived object failed; nothing partial was left behind."""
