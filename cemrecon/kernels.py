"""Numba kernels for recombination.  Private: no DICOM, no validation, no allocation.

The public wrapper (:mod:`cemrecon.recombine`) validates, casts, allocates the
float32 output and picks the kernel; every kernel here has a plain NumPy oracle
in ``tests/reference.py``.  The scalar-weight uint16 kernels take flattened
1-D C-contiguous images and loop ``prange`` over blocks of pixels; the kernels
with per-pixel maps and the float kernels take 2-D arrays (a stack ``(N, H, W)``
is passed as ``(N*H, W)``) and loop ``prange`` over rows.

Why a lookup table
------------------
Raw detector data are uint16, so ``ln(v - offset)`` takes at most 65,536
values.  :func:`log_table` evaluates them once per dark offset in float64
(512 KiB, cached); the recombination is then two gathers, a multiply-add and a
float32 store per pixel, ``RC = T_he[he] - w * T_le[le]``, exact to float32
rounding (error <= half an ulp of the result, < 5e-7 for |RC| < 16).  Real
images touch a few thousand neighbouring values, so the hot part of the tables
sits in L1/L2.

Measured on the reference machine (benchmarks/bench_recombine.py, full field):
about 2 cycles per pixel per thread, i.e. 2-2.5x the memory-traffic floor
(the floor streams 8 bytes/pixel at ~1 cycle/pixel) and 7-8x faster than NumPy
float32 (whose ``np.log`` is itself SIMD-vectorised), 11-25x faster than two
libm ``log`` calls per pixel.  The scalar gathers, not memory, bound it: LLVM
emits no vector gathers for this loop, and a vectorisable float32 polynomial
log (tried: bit-manipulated exponent + degree-8 mantissa polynomial, float64
recombination) was 1.4-2x slower than the table here.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import prange

from cemrecon._numba import kernel

__all__ = [
    "BLOCK_WORDS",
    "UINT16_VALUES",
    "log_table",
    "rc_float",
    "rc_float_map",
    "rc_lut",
    "rc_lut_map",
    "rc_lut_words",
]

#: Number of distinct uint16 values: the length of a log table.
UINT16_VALUES = 65536


@functools.lru_cache(maxsize=32)
def log_table(offset_dn: float, floor_dn: float) -> np.ndarray:
    """``ln(max(v - offset_dn, floor_dn))`` for every uint16 value ``v`` (float64, read-only).

    Cached on ``(offset_dn, floor_dn)``: building it costs ~1 ms once per offset.
    """
    values = np.arange(UINT16_VALUES, dtype=np.float64) - float(offset_dn)
    table = np.log(np.maximum(values, float(floor_dn)))
    table.setflags(write=False)
    return table


#: Pixels per ``prange`` task in the 1-D kernels (256 KiB of uint16 input per image).
BLOCK_WORDS = 32768


@kernel
def rc_lut(he, le, t_he, t_le, weight, out):
    """``out = t_he[he] - weight * t_le[le]`` over 1-D uint16 images (scalar weight).

    The simple form of :func:`rc_lut_words`; used for tails and odd layouts.
    """
    n = he.shape[0]
    nblocks = (n + BLOCK_WORDS - 1) // BLOCK_WORDS
    for b in prange(nblocks):
        start = b * BLOCK_WORDS
        stop = min(start + BLOCK_WORDS, n)
        for p in range(start, stop):
            out[p] = t_he[he[p]] - weight * t_le[le[p]]
    return out


@kernel
def rc_lut_words(he4, le4, t_he, t_le, weight, out):
    """:func:`rc_lut` reading four little-endian uint16 pixels per uint64 word.

    ``he4`` / ``le4`` are uint64 views of the 1-D uint16 images (length a
    multiple of 4) and ``out`` the float32 output of length ``4 * len(he4)``.
    One 8-byte load per four pixels instead of four 2-byte loads frees the load
    ports for the table gathers (about 20 % faster than :func:`rc_lut` on the
    reference machine; same arithmetic, bit-identical result).
    """
    n = he4.shape[0]
    nblocks = (n + BLOCK_WORDS - 1) // BLOCK_WORDS
    for b in prange(nblocks):
        start = b * BLOCK_WORDS
        stop = min(start + BLOCK_WORDS, n)
        for j in range(start, stop):
            h = he4[j]
            v = le4[j]
            k = 4 * j
            out[k] = t_he[h & 0xFFFF] - weight * t_le[v & 0xFFFF]
            out[k + 1] = t_he[(h >> 16) & 0xFFFF] - weight * t_le[(v >> 16) & 0xFFFF]
            out[k + 2] = t_he[(h >> 32) & 0xFFFF] - weight * t_le[(v >> 32) & 0xFFFF]
            out[k + 3] = t_he[h >> 48] - weight * t_le[v >> 48]
    return out


@kernel
def rc_lut_map(he, le, t_he, t_le, wmap, offmap, out):
    """``out = t_he[he] - wmap * t_le[le] + offmap`` with per-pixel maps.

    ``wmap`` / ``offmap`` have shape ``(H, W)`` and are reused for every image
    of a stack: row ``i`` of the flattened stack uses map row ``i % H``.
    """
    rows, cols = he.shape
    mrows = wmap.shape[0]
    for i in prange(rows):
        k = i % mrows
        for j in range(cols):
            out[i, j] = t_he[he[i, j]] - wmap[k, j] * t_le[le[i, j]] + offmap[k, j]
    return out


@kernel
def rc_float(he, le, he_offset, le_offset, floor, weight, out):
    """``out = ln(max(he - he_offset, floor)) - weight * ln(max(le - le_offset, floor))``.

    Float (or wide-integer) images; evaluated in float64 with libm ``log``.
    """
    rows, cols = he.shape
    for i in prange(rows):
        for j in range(cols):
            h = he[i, j] - he_offset
            if h < floor:
                h = floor
            v = le[i, j] - le_offset
            if v < floor:
                v = floor
            out[i, j] = math.log(h) - weight * math.log(v)
    return out


@kernel
def rc_float_map(he, le, he_offset, le_offset, floor, wmap, offmap, out):
    """:func:`rc_float` with per-pixel weight and offset maps (see :func:`rc_lut_map`)."""
    rows, cols = he.shape
    mrows = wmap.shape[0]
    for i in prange(rows):
        k = i % mrows
        for j in range(cols):
            h = he[i, j] - he_offset
            if h < floor:
                h = floor
            v = le[i, j] - le_offset
            if v < floor:
                v = floor
            out[i, j] = math.log(h) - wmap[k, j] * math.log(v) + offmap[k, j]
    return out
