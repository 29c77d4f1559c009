"""Kernels against the NumPy oracle (tests/reference.py), every uint16 value class.

CI also runs this file with NUMBA_DISABLE_JIT=1 (kernel bodies as Python), so the
arrays stay small.

Tolerance: the issue's 2e-6 absolute.  Where it comes from: the kernels evaluate
in float64 (exact table values or libm) and round once to float32, an error of at
most half an ulp of RC; |RC| <= ln(65535) * (1 + w) < 22.2 for w <= 1, where
half an ulp is 9.5e-7.  So 2e-6 has a 2x margin and still catches any float32
intermediate (a float32 log alone is off by up to 1e-6 at ln 65535).
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


@pytest.mark.parametrize("offsets", [(0.0, 0.0), (50.0, 50.0), (49.5, 60.25)])
@pytest.mark.parametrize("weight", [0.0, 0.245, 1.0])
def test_rc_lut_all_value_classes(pairs, offsets, weight):
    le, he = pairs
    le_off, he_off = offsets
    out = np.empty(le.shape, np.float32)
    K.rc_lut.serial(he, le, K.log_table(he_off, 0.5), K.log_table(le_off, 0.5), weight, out)
    ref = recombine_reference(le, he, weight, le_offset=le_off, he_offset=he_off, floor_dn=0.5)
    assert out.dtype == np.float32
    assert np.all(np.isfinite(out))
    assert_allclose(out, ref, rtol=0, atol=ATOL)


@pytest.mark.parametrize("weight", [0.0, 0.245, 1.0])
def test_rc_lut_words_every_uint16_value(weight):
    # all 65536 values as LE, reversed as HE: every table entry is read once
    le = np.arange(65536, dtype=np.uint16)
    he = le[::-1].copy()
    out = np.empty(le.shape, np.float32)
    t = K.log_table(50.0, 0.5)
    K.rc_lut_words.serial(he.view(np.uint64), le.view(np.uint64), t, t, weight, out)
    ref = recombine_reference(le, he, weight, le_offset=50.0, he_offset=50.0)
    assert np.all(np.isfinite(out))
    assert_allclose(out, ref, rtol=0, atol=ATOL)


def test_words_kernel_is_bit_identical_to_simple_kernel(pairs):
    le, he = pairs
    n4 = le.size - le.size % 4
    le, he = le[:n4].copy(), he[:n4].copy()
    t_he, t_le = K.log_table(10.0, 0.5), K.log_table(20.0, 0.5)
    a = np.empty(n4, np.float32)
    b = np.empty(n4, np.float32)
    K.rc_lut.serial(he, le, t_he, t_le, 0.3, a)
    K.rc_lut_words.serial(he.view(np.uint64), le.view(np.uint64), t_he, t_le, 0.3, b)
    assert_array_equal(a, b)


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


def test_parallel_twin_equals_serial_twin(pairs):
    le, he = pairs
    n4 = le.size - le.size % 4
    t = K.log_table(0.0, 0.5)
    a = np.empty(n4, np.float32)
    b = np.empty(n4, np.float32)
    run_kernel(K.rc_lut_words, he[:n4].view(np.uint64), le[:n4].view(np.uint64), t, t, 0.2, a, threads=1)
    run_kernel(K.rc_lut_words, he[:n4].view(np.uint64), le[:n4].view(np.uint64), t, t, 0.2, b,
               threads=max(2, resolve_threads(None)))
    assert_array_equal(a, b)
