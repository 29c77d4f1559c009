"""Numba kernels of the physics forward model (no validation; see signal.py).

The inner loops run over energy bins and are written so LLVM can vectorise them:
``exp`` is a branch-free inline implementation (:func:`_exp_neg`), because the libm
call numba emits for ``math.exp`` is scalar and dominated the run time.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

#: kernel settings in one place (STYLE: settings, not scattered literals)
JIT_OPTIONS = {"cache": True, "fastmath": True, "nogil": True}
#: pixels per parallel work item (amortises the per-block scratch allocation)
BLOCK_PIXELS = 512

_LOG2E = 1.4426950408889634
# ln 2 split in a high part with trailing zero bits and a low correction (Cody-Waite)
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
#: exp(-x) is flushed to 0 beyond this (exp(-700) ~ 1e-304)
_EXP_NEG_MAX = 700.0


#: 1.5 * 2**52: adding it to an integer-valued double |k| < 2**51 puts k (two's complement)
#: in the low mantissa bits, so 2**k is built with integer add/shift only (no float->int
#: conversion, which AVX2 cannot vectorise)
_SHIFT = 6755399441055744.0


@intrinsic
def _bits_to_float64(typingctx, bits):  # pragma: no cover - compile-time
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


@intrinsic
def _float64_to_bits(typingctx, x):  # pragma: no cover - compile-time
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


@numba.njit(inline="always", **JIT_OPTIONS)
def _exp_neg(x):  # pragma: no cover - jitted
    """exp(-x) for x >= 0 to ~3e-14 relative (Cody-Waite reduction, degree-12 Taylor).

    ``np.floor`` (a float result, vectorisable) rather than ``math.floor`` (an int64 in
    numba, which blocks vectorisation); 2**k from the bits of ``k + 1.5 * 2**52``.
    """
    y = -min(x, _EXP_NEG_MAX)
    k = np.floor(y * _LOG2E + 0.5)
    r = (y - k * _LN2_HI) - k * _LN2_LO  # |r| <= 0.347
    # Estrin's scheme: the degree-12 Taylor polynomial with a dependency depth of ~5 FMAs
    # instead of 12 (Horner), so the vectorised lanes are less latency bound (~12 % faster)
    r2 = r * r
    r4 = r2 * r2
    r8 = r4 * r4
    q0 = (1.0 + r) + (0.5 + r * (1.0 / 6.0)) * r2
    q1 = (1.0 / 24.0 + r * (1.0 / 120.0)) + (1.0 / 720.0 + r * (1.0 / 5040.0)) * r2
    q2 = (1.0 / 40320.0 + r * (1.0 / 362880.0)) + (1.0 / 3628800.0 + r * (1.0 / 39916800.0)) * r2
    p = (q0 + q1 * r4) + (q2 + (1.0 / 479001600.0) * r4) * r8
    scale = _bits_to_float64((_float64_to_bits(k + _SHIFT) + 1023) << 52)
    return p * scale


if numba.config.DISABLE_JIT:  # pure-Python mode (coverage runs): the bitcast intrinsic needs LLVM

    def _exp_neg(x):  # noqa: F811
        return math.exp(-min(x, _EXP_NEG_MAX))


@numba.njit(inline="always", **JIT_OPTIONS)
def _block_moments(paths, mu, a1, a2, out_mean, out_second, p0, p1, s):  # pragma: no cover - jitted
    """Moments of pixels p0..p1-1; ``s`` is an (n_e,) scratch array."""
    n_mat = paths.shape[0]
    n_e = a1.shape[0]
    for p in range(p0, p1):
        for e in range(n_e):
            s[e] = 0.0
        for m in range(n_mat):
            t = paths[m, p]
            for e in range(n_e):
                s[e] += mu[m, e] * t
        m1 = 0.0
        m2 = 0.0
        for e in range(n_e):
            tr = _exp_neg(s[e])
            m1 += a1[e] * tr
            m2 += a2[e] * tr
        out_mean[p] = m1
        out_second[p] = m2


@numba.njit(parallel=True, **JIT_OPTIONS)
def moments_kernel(paths, mu, a1, a2, out_mean, out_second):  # pragma: no cover - jitted
    """Polyenergetic transmitted moments for each pixel (multi-threaded).

    paths : (n_mat, n_pix) float64 path lengths (cm or mg/cm^2)
    mu    : (n_mat, n_e) float64 attenuation per unit path
    a1,a2 : (n_e,) photons x eta E, photons x eta E^2 per bin (no object)
    out_* : (n_pix,) float64
    """
    n_pix = paths.shape[1]
    n_blocks = (n_pix + BLOCK_PIXELS - 1) // BLOCK_PIXELS
    for b in numba.prange(n_blocks):
        s = np.empty(a1.shape[0])
        p0 = b * BLOCK_PIXELS
        _block_moments(paths, mu, a1, a2, out_mean, out_second, p0, min(p0 + BLOCK_PIXELS, n_pix), s)


@numba.njit(**JIT_OPTIONS)
def moments_kernel_serial(paths, mu, a1, a2, out_mean, out_second):  # pragma: no cover - jitted
    """Single-threaded :func:`moments_kernel`, for callers outside the main thread.

    Python threads (e.g. dask's threaded scheduler) then run kernels concurrently
    (the GIL is released) without nesting numba's thread pool inside theirs.
    """
    s = np.empty(a1.shape[0])
    _block_moments(paths, mu, a1, a2, out_mean, out_second, 0, paths.shape[1], s)
