"""Enums for coded DICOM values.

Vendor spellings are normalised into these once, at the reader's edge
(:mod:`cemrecon.io.read`); nothing deeper in the library looks at raw strings.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["Laterality", "View", "Energy", "FileRole", "Strictness"]


class Laterality(str, Enum):
    """Breast laterality (DICOM Image Laterality, 0020,0062)."""

    R = "R"
    L = "L"

    def __str__(self) -> str:  # 'R', not 'Laterality.R', in tables and file names
        return self.value


class View(str, Enum):
    """Mammographic view; CEM pairs are read on CC and MLO, the others are kept for tolerance."""

    CC = "CC"
    MLO = "MLO"
    ML = "ML"
    LM = "LM"
    XCCL = "XCCL"
    XCCM = "XCCM"
    OTHER = "OTHER"

    def __str__(self) -> str:
        return self.value


class Energy(str, Enum):
    """Which exposure of a dual-energy pair an image is."""

    LOW = "LOW_ENERGY"
    HIGH = "HIGH_ENERGY"

    def __str__(self) -> str:
        return self.value


class FileRole(str, Enum):
    """What the reader decided a file is (every scanned file gets exactly one role)."""

    LE = "LE"
    HE = "HE"
    VENDOR_RC = "VENDOR_RC"
    OTHER_IMAGE = "OTHER_IMAGE"
    NON_IMAGE = "NON_IMAGE"
    NOT_DICOM = "NOT_DICOM"
    UNREADABLE = "UNREADABLE"

    def __str__(self) -> str:
        return self.value


class Strictness(str, Enum):
    """How the reader treats inconsistencies (pydicom-style user setting)."""

    IGNORE = "ignore"
    WARN = "warn"
    RAISE = "raise"

    def __str__(self) -> str:
        return self.value
