"""Input validation for recombination: one place, one style of message.

Every check names the argument, shows the offending value and says what would
be accepted.  ``TypeError`` for wrong types, ``ValueError`` for bad values (the
domain errors of :mod:`cemrecon.errors` are raised by the callers that know the
file or DICOM attribute involved).
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import numpy as np

__all__ = [
    "MAX_OFFSET_DN",
    "MAX_WEIGHT",
    "check_image",
    "check_offset",
    "check_positive",
    "check_same_shape",
    "check_weight",
    "check_weight_map",
]

#: Largest accepted tissue-cancelling weight.  Physical weights for CEM beam
#: pairs are 0.17-0.31 (reference/physics.md Table 1); 1.0 leaves room for
#: unusual beams and calibrations while keeping the kernel's float32 error
#: bound (half an ulp per table value, <= 1.5e-6 in all) valid.
MAX_WEIGHT = 1.0

#: Largest accepted dark offset: the uint16 range.
MAX_OFFSET_DN = 65535.0

_ACCEPTED_DTYPES = "unsigned/signed integer or float32/float64"


def check_image(arr: Any, name: str) -> np.ndarray:
    """Return ``arr`` as a 2-D or 3-D numeric ndarray, or raise.

    Integer arrays are accepted as they are (uint16 is the native detector
    type); float arrays must be finite.  The input is never modified.
    """
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(arr).__name__}")
    if arr.ndim not in (2, 3):
        raise ValueError(
            f"{name} must be 2-D (H, W) or a 3-D stack (N, H, W), got shape {arr.shape}"
        )
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    kind = arr.dtype.kind
    if kind not in "uif" or arr.dtype.itemsize > 8 or (kind == "f" and arr.dtype.itemsize < 4):
        raise TypeError(f"{name} has dtype {arr.dtype}; accepted: {_ACCEPTED_DTYPES}")
    if kind == "f":
        bad = arr.size - int(np.count_nonzero(np.isfinite(arr)))
        if bad:
            raise ValueError(f"{name} has {bad} non-finite pixel(s) (NaN or inf); pixels must be finite")
    return arr


def check_same_shape(le: np.ndarray, he: np.ndarray) -> None:
    """Raise if the LE and HE arrays differ in shape."""
    if le.shape != he.shape:
        raise ValueError(
            f"le and he must have the same shape, got le {le.shape} and he {he.shape}"
        )


def check_weight(weight: Any, name: str = "weight") -> float:
    """Return a scalar weight as float after range checks (0 <= w <= MAX_WEIGHT)."""
    if isinstance(weight, bool) or not isinstance(weight, Real | np.floating | np.integer):
        raise TypeError(
            f"{name} must be a float, an array, None, 'thickness' or 'image'; got {weight!r}"
        )
    value = float(weight)
    if not math.isfinite(value) or not 0.0 <= value <= MAX_WEIGHT:
        raise ValueError(
            f"{name} must be a finite number in [0, {MAX_WEIGHT}] (CEM weights are about "
            f"0.17-0.31), got {value!r}"
        )
    return value


def check_weight_map(wmap: Any, image_shape: tuple[int, ...], name: str = "weight") -> np.ndarray:
    """Return a per-pixel weight map as C-contiguous float32 of shape (H, W) or (N*H, W)."""
    arr = np.asarray(wmap)
    if arr.dtype.kind not in "uif":
        raise TypeError(f"{name} map has dtype {arr.dtype}; accepted: integer or float")
    frame = image_shape[-2:]
    if arr.shape != frame and arr.shape != tuple(image_shape):
        raise ValueError(
            f"{name} map has shape {arr.shape}; accepted: the image shape {tuple(image_shape)} "
            f"or one frame {frame}"
        )
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)) or arr.min() < 0.0 or arr.max() > MAX_WEIGHT:
        raise ValueError(
            f"{name} map values must be finite and in [0, {MAX_WEIGHT}], got range "
            f"[{np.nanmin(arr):.4g}, {np.nanmax(arr):.4g}]"
        )
    return np.ascontiguousarray(arr.reshape(-1, frame[-1]))


def check_offset(value: Any, name: str) -> float:
    """Return a dark offset (DN) as float: finite, 0 <= value <= MAX_OFFSET_DN."""
    if isinstance(value, bool) or not isinstance(value, Real | np.floating | np.integer):
        raise TypeError(f"{name} must be a number of DN, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or not 0.0 <= v <= MAX_OFFSET_DN:
        raise ValueError(f"{name} must be finite and in [0, {MAX_OFFSET_DN:g}] DN, got {v!r}")
    return v


def check_positive(value: Any, name: str, unit: str = "") -> float:
    """Return ``value`` as a finite float > 0, or raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Real | np.floating | np.integer):
        raise TypeError(f"{name} must be a positive number{unit and ' of ' + unit}, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v <= 0.0:
        raise ValueError(f"{name} must be finite and > 0{unit and ' ' + unit}, got {v!r}")
    return v
