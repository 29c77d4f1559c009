"""Plain NumPy oracles for the numba kernels (float64, no tricks).

Each function states the formula the matching kernel in :mod:`cemrecon.kernels`
must reproduce; tests compare with ``assert_allclose``.
"""

from __future__ import annotations

import numpy as np


def log_signal(image: np.ndarray, offset_dn: float, floor_dn: float) -> np.ndarray:
    """``ln(max(image - offset_dn, floor_dn))`` in float64."""
    return np.log(np.maximum(np.asarray(image, dtype=np.float64) - float(offset_dn), float(floor_dn)))


def recombine_reference(
    le: np.ndarray,
    he: np.ndarray,
    weight: float | np.ndarray,
    *,
    le_offset: float = 0.0,
    he_offset: float = 0.0,
    floor_dn: float = 0.5,
    offset_map: np.ndarray | None = None,
) -> np.ndarray:
    """``RC = ln(max(HE - d_he, floor)) - w ln(max(LE - d_le, floor)) [+ offset_map]`` (float64).

    ``weight`` and ``offset_map`` broadcast against the image (a map of one
    frame ``(H, W)`` applies to every frame of a stack).
    """
    rc = log_signal(he, he_offset, floor_dn) - np.asarray(weight, dtype=np.float64) * log_signal(
        le, le_offset, floor_dn
    )
    if offset_map is not None:
        rc = rc + np.asarray(offset_map, dtype=np.float64)
    return rc


def memory_floor_reference(le: np.ndarray, he: np.ndarray, weight: float) -> np.ndarray:
    """The benchmark's memory-traffic floor: ``float32(he) - w * float32(le)``."""
    return he.astype(np.float32) - np.float32(weight) * le.astype(np.float32)
