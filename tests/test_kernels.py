"""Kernels against the NumPy oracle (tests/reference.py), every uint16 value class.

CI also runs this file with NUMBA_DISABLE_JIT=1 (kernel bodies as Python), so the
arrays stay small.

Tolerance: the issue's 2e-6 absolute, plus a tighter bound derived per pixel for
the float32-table kernels.  Where they come from: the scalar-weight uint16 kernels
read two float32 tables, ``float32(ln(he))`` and ``float32(w ln(le))``, each
evaluated in float64 and rounded once (error <= half an ulp of the entry), and
round their difference once more.  So ``|RC - ref| <= (ulp(T_he) + ulp(T_lew) +
ulp(RC)) / 2`` pixel by pixel (checked below with ``np.spacing``); with
|entries|, |RC| < 16 for w <= 1 that is <= 3 x 4.8e-7 = 1.43e-6 < 2e-6.  The
float64-table and libm kernels round once: <= half an ulp of RC (<= 4.8e-7).
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from cemrecon import kernels as K
from cemrecon._numba import resolve_threads, run_kernel
from tests.reference import log_signal, recombine_reference

ATOL = 2e-6

# value classes of raw uint16 detector data
VALUE_CLASSES = {
    "zero": [0],
    "one": [1, 2],
    "low": [3, 7, 49, 50, 51, 100, 255],
    "mid": [1000, 4095, 12345, 16383, 16384],
    "high": [32767, 50000, 65534, 65535],
}
ALL_VALUES = np.array(sorted({v for vs in VALUE_CLASSES.values() for v in vs}), dtype=np.uint16)


def _class_pairs() -> tuple[np.ndarray, np.ndarray]:
    """Every (LE, HE) combination of the class values, as two 1-D uint16 arrays."""
    le, he = np.meshgrid(ALL_VALUES, ALL_VALUES, indexing="ij")
    return le.ravel().copy(), he.ravel().copy()


@pytest.fixture(scope="module")
def pairs() -> tuple[np.ndarray, np.ndarray]:
    return _class_pairs()


def _table_bound(t_he, t_lew, he, le, out):
    """Per-pixel rounding bound of the float32-table kernels (see the module docstring)."""
    a = np.abs(t_he[he]).astype(np.float32)
    b = np.abs(t_lew[le]).astype(np.float32)
    # + 1e-12: float64 reference and float64 w*ln products (~1e-15), not float32 roundings
    return 0.5 * (np.spacing(a) + np.spacing(b) + np.spacing(np.abs(out))).astype(np.float64) + 1e-12


@pytest.mark.parametrize("offsets", [(0.0, 0.0), (50.0, 50.0), (49.5, 60.25)])
@pytest.mark.parametrize("weight", [0.0, 0.245, 1.0])
def test_rc_lut_all_value_classes(pairs, offsets, weight):
    le, he = pairs
    le_off, he_off = offsets
    out = np.empty(le.shape, np.float32)
    t_he = K.weighted_log_table(he_off, 0.5, 1.0)
    t_lew = K.weighted_log_table(le_off, 0.5, weight)
    K.rc_lut.serial(he, le, t_he, t_lew, out)
    ref = recombine_reference(le, he, weight, le_offset=le_off, he_offset=he_off, floor_dn=0.5)
    assert out.dtype == np.float32
    assert np.all(np.isfinite(out))
    assert_allclose(out, ref, rtol=0, atol=ATOL)
    assert np.all(np.abs(out - ref) <= _table_bound(t_he, t_lew, he, le, out))


@pytest.mark.parametrize("weight", [0.0, 0.245, 1.0])
def test_rc_lut_words_every_uint16_value(weight):
    # all 65536 values as LE, reversed as HE: every table entry is read once
    le = np.arange(65536, dtype=np.uint16)
    he = le[::-1].copy()
    out = np.empty(le.shape, np.float32)
    t_he = K.weighted_log_table(50.0, 0.5, 1.0)
    t_lew = K.weighted_log_table(50.0, 0.5, weight)
    K.rc_lut_words.serial(he.view(np.uint64), le.view(np.uint64), t_he, t_lew, out)
    ref = recombine_reference(le, he, weight, le_offset=50.0, he_offset=50.0)
    assert np.all(np.isfinite(out))
    assert_allclose(out, ref, rtol=0, atol=ATOL)
    assert np.all(np.abs(out - ref) <= _table_bound(t_he, t_lew, he, le, out))


def test_rc_lut_words_float64_tables_round_once():
    # the same kernel with float64 tables: one rounding, at the float32 store
    le = np.arange(65536, dtype=np.uint16)
    he = le[::-1].copy()
    out = np.empty(le.shape, np.float32)
    t = K.log_table(50.0, 0.5)
    K.rc_lut_words.serial(he.view(np.uint64), le.view(np.uint64), t, 0.7 * t, out)
    ref = recombine_reference(le, he, 0.7, le_offset=50.0, he_offset=50.0)
    half_ulp = 0.5 * np.spacing(np.abs(out)).astype(np.float64) + 1e-12
    assert np.all(np.abs(out - ref) <= half_ulp)


def test_words_kernel_is_bit_identical_to_simple_kernel(pairs):
    le, he = pairs
    n4 = le.size - le.size % 4
    le, he = le[:n4].copy(), he[:n4].copy()
    t_he, t_lew = K.weighted_log_table(10.0, 0.5, 1.0), K.weighted_log_table(20.0, 0.5, 0.3)
    a = np.empty(n4, np.float32)
    b = np.empty(n4, np.float32)
    K.rc_lut.serial(he, le, t_he, t_lew, a)
    K.rc_lut_words.serial(he.view(np.uint64), le.view(np.uint64), t_he, t_lew, b)
    assert_array_equal(a, b)


def test_rc_lut_uint8_images():
    le = np.arange(256, dtype=np.uint8)
    he = le[::-1].copy()
    out = np.empty(le.shape, np.float32)
    t_he = K.weighted_log_table(3.0, 0.5, 1.0)
    t_lew = K.weighted_log_table(3.0, 0.5, 0.4)
    K.rc_lut.serial(he, le, t_he, t_lew, out)
    ref = recombine_reference(le, he, 0.4, le_offset=3.0, he_offset=3.0)
    assert_allclose(out, ref, rtol=0, atol=ATOL)


def test_map_kernel_stack_reuses_frame_map(pairs):
    le, he = pairs
    rows, cols = 4, le.size // 4
    le2 = le[: rows * cols].reshape(rows, cols)
    he2 = he[: rows * cols].reshape(rows, cols)
    # a stack of 3 frames of (rows, cols); one (rows, cols) map for all frames
    le3 = np.concatenate([le2, le2[::-1], le2], axis=0)
    he3 = np.concatenate([he2, he2, he2[::-1]], axis=0)
    rng = np.random.default_rng(0)
    wmap = rng.uniform(0.0, 1.0, (rows, cols)).astype(np.float32)
    offmap = rng.normal(0.0, 0.5, (rows, cols)).astype(np.float32)
    out = np.empty(le3.shape, np.float32)
    t = K.log_table(50.0, 0.5)
    K.rc_lut_map.serial(he3, le3, t, t, wmap, offmap, out)
    ref = recombine_reference(
        le3.reshape(3, rows, cols), he3.reshape(3, rows, cols), wmap, le_offset=50.0, he_offset=50.0,
        offset_map=offmap,
    ).reshape(out.shape)
    assert_allclose(out, ref, rtol=0, atol=ATOL)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_float_kernels_match_reference(pairs, dtype):
    le, he = pairs
    cols = 8
    n = le.size - le.size % cols
    le2 = le[:n].reshape(-1, cols).astype(dtype)
    he2 = he[:n].reshape(-1, cols).astype(dtype)
    out = np.empty(le2.shape, np.float32)
    K.rc_float.serial(he2, le2, 30.5, 20.0, 0.5, 0.25, out)
    ref = recombine_reference(le2, he2, 0.25, le_offset=20.0, he_offset=30.5)
    assert np.all(np.isfinite(out))
    assert_allclose(out, ref, rtol=0, atol=ATOL)
    wmap = np.full((1, cols), 0.25, np.float32)
    offmap = np.full((1, cols), -1.5, np.float32)
    K.rc_float_map.serial(he2, le2, 30.5, 20.0, 0.5, wmap, offmap, out)
    assert_allclose(out, ref - 1.5, rtol=0, atol=ATOL)


def test_float_kernel_clamps_non_positive_and_tiny_values():
    le = np.array([[-5.0, 0.0, 0.25, 1e-300, 3.0]])
    he = np.array([[0.0, -1e9, 0.5, 2.0, 1e30]])
    out = np.empty(le.shape, np.float32)
    K.rc_float.serial(he, le, 0.0, 0.0, 0.5, 0.3, out)
    ref = recombine_reference(le, he, 0.3)
    assert np.all(np.isfinite(out))
    assert_allclose(out, ref, rtol=0, atol=ATOL * 4)  # |RC| ~ 69 at 1e30: half-ulp 3.8e-6


def test_log_table_is_cached_read_only_and_exact():
    t = K.log_table(50.0, 0.5)
    assert t is K.log_table(50.0, 0.5)
    assert not t.flags.writeable
    assert t.shape == (K.UINT16_VALUES,) and t.dtype == np.float64
    assert_array_equal(t, log_signal(np.arange(65536), 50.0, 0.5))
    assert t[0] == np.log(0.5) and t[50] == np.log(0.5)


def test_weighted_log_table_is_cached_read_only_float32():
    t = K.weighted_log_table(50.0, 0.5, 0.245)
    assert t is K.weighted_log_table(50.0, 0.5, 0.245)
    assert not t.flags.writeable
    assert t.shape == (K.UINT16_VALUES,) and t.dtype == np.float32
    # rounded once from float64: exactly float32(w * ln(...))
    assert_array_equal(t, (0.245 * log_signal(np.arange(65536), 50.0, 0.5)).astype(np.float32))


def test_parallel_twin_equals_serial_twin(pairs):
    le, he = pairs
    n4 = le.size - le.size % 4
    t_he, t_lew = K.weighted_log_table(0.0, 0.5, 1.0), K.weighted_log_table(0.0, 0.5, 0.2)
    a = np.empty(n4, np.float32)
    b = np.empty(n4, np.float32)
    run_kernel(K.rc_lut_words, he[:n4].view(np.uint64), le[:n4].view(np.uint64), t_he, t_lew, a, threads=1)
    run_kernel(K.rc_lut_words, he[:n4].view(np.uint64), le[:n4].view(np.uint64), t_he, t_lew, b,
               threads=max(2, resolve_threads(None)))
    assert_array_equal(a, b)


def test_several_blocks_and_uneven_last_block():
    # more than one prange block of words (BLOCK_WORDS words = 4 * BLOCK_WORDS pixels)
    # with a short last block: every pixel written once, by the right block
    n = 4 * (K.BLOCK_WORDS + 5)
    rng = np.random.default_rng(1)
    le = rng.integers(0, 65536, n, dtype=np.uint16)
    he = rng.integers(0, 65536, n, dtype=np.uint16)
    t_he, t_lew = K.weighted_log_table(50.0, 0.5, 1.0), K.weighted_log_table(50.0, 0.5, 0.3)
    out = np.full(n, np.nan, np.float32)
    run_kernel(K.rc_lut_words, he.view(np.uint64), le.view(np.uint64), t_he, t_lew, out, threads=2)
    ref = recombine_reference(le, he, 0.3, le_offset=50.0, he_offset=50.0)
    assert_allclose(out, ref, rtol=0, atol=ATOL)
