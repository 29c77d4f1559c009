"""Numba kernels for recombination.  Private: no DICOM, no validation, no allocation.

The public wrapper (:mod:`cemrecon.recombination`) validates, casts, allocates the
float32 output and picks the kernel; every kernel here has a plain NumPy oracle
in ``tests/reference.py``.  The scalar-weight uint16 kernels take flattened
1-D C-contiguous images and loop ``prange`` over blocks of pixels; the kernels
with per-pixel maps and the float kernels take 2-D arrays (a stack ``(N, H, W)``
is passed as ``(N*H, W)``) and loop ``prange`` over rows.

Why a lookup table
------------------
Raw detector data are uint16, so ``ln(v - offset)`` takes at most 65,536
values.  :func:`log_table` evaluates them once per dark offset in float64
(cached); :func:`weighted_log_table` rounds ``w * ln`` once to float32 (256 KiB,
cached per offset and weight).  The scalar-weight recombination is then two
table loads, one float32 subtraction and a store per pixel,
``RC = T_he[he] - T_lew[le]`` with ``T_he = f32(ln)``, ``T_lew = f32(w ln)``.
Error: three roundings of at most half an ulp each (two entries, the result),
<= 1.43e-6 for |entries|, |RC| < 16 (any w <= 1); measured 1.06e-6 at most over
all 65,536 values at w = 0.245 (issue limit 2e-6).  The same kernels accept
float64 tables (one rounding, <= 4.8e-7, the previous default) at ~15 % more
cycles.  Real images touch a few thousand neighbouring values, so the hot part
of the tables sits in L1/L2.

Speed (``benchmarks/bench_recombine.py``; reference machine: AMD EPYC Zen 3,
2 vCPUs, AVX2, 2.45 GHz TSC, cores at ~3.2 GHz; "cycles" are TSC cycles):

* 1 Mpx, cache resident, 1 thread: 1.4 cycles/pixel (floor 0.4).  The loop is
  issue-bound: ~6.5 instructions/pixel (a uint64 word load per four pixels,
  index shifts, two scalar table loads, subtract, store).  The previous form
  took 1.95: numba's negative-index wraparound code in the loop (removed by
  slicing each block and looping ``range(m)``) and float64 tables with a
  ``cvtsd2ss``.
* Full field 2850 x 2394, 2 threads: see the README's benchmark section for the
  latest table (ratios to the floor and to NumPy float32 in one interleaved run).

Why not 1.2x the memory floor (issue 4's target): on this CPU the floor kernel
streams a full field at 0.6-0.76 cycles/pixel/thread, and no formulation of two
float32-accurate logarithms per pixel we could find comes close to that.
``benchmarks/c/rc_bounds.c`` measures the candidates in hand-written AVX2 C
(full field, 1 thread, minima; 2026-12-01): floor 0.60, this table kernel 1.73
(the numba kernel: 1.74, against a numba floor of 0.76), AVX2 ``vgatherdps``
tables 2.17 (Zen 3 gathers ~1 element/cycle), and a vectorised log stripped of
its accuracy work -- 8-entry ``vpermps`` range reduction, degree-3 polynomial,
even/odd 16-bit split to avoid lane-crossing unpacks, ~24 vector ops per 8
pixels -- 1.16, i.e. 1.6-1.9x the floor (1.65x with 2 threads) before it is
made accurate.  An exact ``k ln 2`` split, the offset and floor in float and
error control under 2e-6 add ~7 ops per 8 pixels (an estimate from the op count,
not measured), which would put it at about the table kernel's cost.
``llvm-mca -mcpu=znver3`` reproduces these numbers from the generated code: the
vector forms are bound by the FP pipes, the table forms by issue width and load
ports.

Also tried and lost (``bench_recombine.py --variants`` re-measures them): a
vectorised float32 log in numba (exponent and mantissa by bit casts, degree-7
minimax polynomial on [sqrt(1/2), sqrt(2)), exact split of ``k ln 2``; LLVM emits
8-wide AVX2 FMA code, ~83 instructions per 8 pixels, error 8.6e-7) runs at
2.2-2.3 cycles/pixel; with bit casts through NumPy ``.view`` buffers 3.0; degree
8 took 2.4.  LLVM emits no AVX2 gathers for the table loop on this CPU.
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
    "weighted_log_table",
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


@functools.lru_cache(maxsize=16)
def weighted_log_table(offset_dn: float, floor_dn: float, weight: float) -> np.ndarray:
    """``float32(weight * ln(max(v - offset_dn, floor_dn)))`` for every uint16 ``v`` (read-only).

    Evaluated in float64 and rounded once to float32 (error <= half an ulp of
    the entry, <= 4.8e-7 for ``|entry| < 16``).  ``weight=1.0`` gives the HE
    table, the recombination weight the LE table of :func:`rc_lut_words`.
    256 KiB; cached on ``(offset_dn, floor_dn, weight)`` (16 entries, 4 MiB at
    most), building one costs ~0.1 ms.
    """
    table = (float(weight) * log_table(offset_dn, floor_dn)).astype(np.float32)
    table.setflags(write=False)
    return table


#: Pixels per ``prange`` task in the 1-D kernels (256 KiB of uint16 input per image).
BLOCK_WORDS = 32768


@kernel
def rc_lut(he, le, t_he, t_lew, out):
    """``out = t_he[he] - t_lew[le]`` over 1-D uint16 (or uint8) images.

    ``t_lew`` is the LE table with the scalar weight folded in
    (:func:`weighted_log_table`).  The simple form of :func:`rc_lut_words`;
    used for tails and odd layouts.  The tables may be float32 (the default
    dispatch) or float64 (one rounding, at the float32 store).
    """
    n = he.shape[0]
    nblocks = (n + BLOCK_WORDS - 1) // BLOCK_WORDS
    for b in prange(nblocks):
        start = b * BLOCK_WORDS
        m = min(BLOCK_WORDS, n - start)
        # slices + range(m): indices provably >= 0, so numba emits no
        # negative-index wraparound code in the hot loop
        hb = he[start:start + m]
        lb = le[start:start + m]
        ob = out[start:start + m]
        for p in range(m):
            ob[p] = t_he[hb[p]] - t_lew[lb[p]]
    return out


@kernel
def rc_lut_words(he4, le4, t_he, t_lew, out):
    """:func:`rc_lut` reading four little-endian uint16 pixels per uint64 word.

    ``he4`` / ``le4`` are uint64 views of the 1-D uint16 images (length a
    multiple of 4) and ``out`` the float32 output of length ``4 * len(he4)``.
    One 8-byte load per four pixels instead of four 2-byte loads frees the load
    ports for the table gathers; same arithmetic as :func:`rc_lut`, bit-identical.
    """
    n = he4.shape[0]
    nblocks = (n + BLOCK_WORDS - 1) // BLOCK_WORDS
    for b in prange(nblocks):
        start = b * BLOCK_WORDS
        m = min(BLOCK_WORDS, n - start)
        hb = he4[start:start + m]
        lb = le4[start:start + m]
        ob = out[4 * start:4 * (start + m)]
        for j in range(m):
            h = hb[j]
            v = lb[j]
            ob[4 * j] = t_he[h & 0xFFFF] - t_lew[v & 0xFFFF]
            ob[4 * j + 1] = t_he[(h >> 16) & 0xFFFF] - t_lew[(v >> 16) & 0xFFFF]
            ob[4 * j + 2] = t_he[(h >> 32) & 0xFFFF] - t_lew[(v >> 32) & 0xFFFF]
            ob[4 * j + 3] = t_he[h >> 48] - t_lew[v >> 48]
    return out


@kernel
def rc_lut_map(he, le, t_he, t_le, wmap, offmap, out):
    """``out = t_he[he] - wmap * t_le[le] + offmap`` with per-pixel maps (float64 tables).

    ``wmap`` / ``offmap`` have shape ``(H, W)`` and are reused for every image
    of a stack: row ``i`` of the flattened stack uses map row ``i % H``.
    """
    rows, cols = he.shape
    mrows = wmap.shape[0]
    for i in prange(rows):
        k = i % mrows
        hr = he[i]
        lr = le[i]
        wr = wmap[k]
        orow = offmap[k]
        outr = out[i]
        for j in range(cols):
            outr[j] = t_he[hr[j]] - wr[j] * t_le[lr[j]] + orow[j]
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
            h = max(h, floor)
            v = le[i, j] - le_offset
            v = max(v, floor)
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
            h = max(h, floor)
            v = le[i, j] - le_offset
            v = max(v, floor)
            out[i, j] = math.log(h) - wmap[k, j] * math.log(v) + offmap[k, j]
    return out
