"""Public recombine()/recombine_pair(): inputs, dtypes, shapes, errors, threads, provenance."""

from __future__ import annotations

import concurrent.futures
import json
import os

import numpy as np
import pydicom
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from cemrecon import recombine, recombine_pair
from cemrecon._numba import max_threads, resolve_threads
from cemrecon.errors import UnsupportedDicomError
from cemrecon.recombination import SIGNAL_FLOOR_DN, RecombineResult
from tests.reference import recombine_reference

# float32 rounding of RC (|RC| < 16): half an ulp is 4.8e-7; see test_kernels.py
ATOL = 2e-6


def _images(shape, seed=0, lo=0, hi=65536):
    rng = np.random.default_rng(seed)
    return (rng.integers(lo, hi, shape).astype(np.uint16), rng.integers(lo, hi, shape).astype(np.uint16))


@pytest.mark.parametrize("shape", [(7, 5), (1, 1), (33, 65), (64, 64), (3, 9, 11), (2, 16, 16)])
def test_uint16_shapes_and_stacks(shape):
    le, he = _images(shape)
    le_copy, he_copy = le.copy(), he.copy()
    rc = recombine(le, he, weight=0.25, dark_offset=(40, 60.5))
    assert rc.dtype == np.float32 and rc.shape == shape
    assert np.all(np.isfinite(rc))
    assert_allclose(rc, recombine_reference(le, he, 0.25, le_offset=40, he_offset=60.5), rtol=0, atol=ATOL)
    assert_array_equal(le, le_copy)  # inputs never modified
    assert_array_equal(he, he_copy)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32, np.uint32, np.float32, np.float64])
def test_dtypes(dtype):
    le, he = _images((12, 10), seed=1, lo=0, hi=200)
    le, he = le.astype(dtype), he.astype(dtype)
    rc = recombine(le, he, weight=0.3, dark_offset=5)
    assert rc.dtype == np.float32
    assert_allclose(rc, recombine_reference(le, he, 0.3, le_offset=5, he_offset=5), rtol=0, atol=ATOL)


def test_mixed_dtypes_and_non_contiguous_views():
    le, he = _images((20, 30), seed=2)
    rc = recombine(le[:, ::2], he[:, ::2].astype(np.float64), weight=0.2)
    ref = recombine_reference(le[:, ::2], he[:, ::2], 0.2)
    assert_allclose(rc, ref, rtol=0, atol=ATOL)


def test_no_nan_or_inf_with_zeros_and_large_offset():
    le = np.zeros((8, 8), np.uint16)
    he = np.full((8, 8), 65535, np.uint16)
    he[0] = 0
    rc = recombine(le, he, weight=1.0, dark_offset=65535)
    assert np.all(np.isfinite(rc))
    # everything is at or below the offset: both logs are ln(floor)
    assert_allclose(rc, np.log(SIGNAL_FLOOR_DN) * (1 - 1.0), atol=ATOL)
    neg = -np.ones((4, 4))
    assert np.all(np.isfinite(recombine(neg, neg, weight=0.25)))


def test_weight_map_applies_to_every_frame():
    le, he = _images((3, 6, 7), seed=3, lo=100)
    wmap = np.linspace(0.1, 0.4, 42).reshape(6, 7)
    rc = recombine(le, he, weight=wmap)
    assert_allclose(rc, recombine_reference(le, he, wmap.astype(np.float32)), rtol=0, atol=ATOL)


def test_out_argument_is_filled_and_returned():
    le, he = _images((10, 12))
    out = np.empty((10, 12), np.float32)
    rc = recombine(le, he, weight=0.25, out=out)
    assert rc is out
    with pytest.raises(ValueError, match="out must be a C-contiguous float32 array of shape"):
        recombine(le, he, weight=0.25, out=np.empty((10, 12), np.float64))


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"weight": -0.1}, ValueError, r"weight must be a finite number in \[0, 1.0\].*-0.1"),
        ({"weight": 1.5}, ValueError, r"weight must be a finite number in \[0, 1.0\]"),
        ({"weight": float("nan")}, ValueError, "weight must be a finite number"),
        ({"weight": "texture"}, ValueError, "weight must be a number, an array, None, 'thickness' or 'image'"),
        ({"weight": [0.2]}, TypeError, "weight must be a float, an array"),
        ({"weight": np.full((3, 3), 0.2)}, ValueError, r"weight map has shape \(3, 3\)"),
        ({"weight": 0.2, "dark_offset": -1}, ValueError, "dark_offset must be finite and in"),
        ({"weight": 0.2, "dark_offset": (1, 2, 3)}, ValueError, "dark_offset must be a number or a"),
        ({"weight": 0.2, "threads": 0}, ValueError, "threads must be >= 1"),
        ({"weight": 0.2, "register": "maybe"}, ValueError, "register must be True, False or 'auto'"),
        ({"weight": 0.2, "floor_dn": 0}, ValueError, "floor_dn must be finite and > 0"),
        ({}, ValueError, "plain arrays do not carry: pass weight=<float>"),
        ({"weight": "image"}, ValueError, "needs the pixel spacing: pass pixel_mm="),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    le, he = _images((8, 8), lo=100)
    with pytest.raises(exc, match=match):
        recombine(le, he, **kwargs)


def test_bad_images():
    le, he = _images((8, 8))
    with pytest.raises(ValueError, match=r"same shape, got le \(8, 8\) and he \(8, 9\)"):
        recombine(le, np.zeros((8, 9), np.uint16), weight=0.2)
    with pytest.raises(TypeError, match="dtype bool; accepted"):
        recombine(le.astype(bool), he, weight=0.2)
    with pytest.raises(TypeError, match="dtype complex128; accepted"):
        recombine(le.astype(complex), he, weight=0.2)
    with pytest.raises(ValueError, match=r"must be 2-D \(H, W\) or a 3-D stack"):
        recombine(le.ravel(), he.ravel(), weight=0.2)
    bad = le.astype(np.float64)
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match=r"le has 1 non-finite pixel\(s\)"):
        recombine(bad, he, weight=0.2)
    with pytest.raises(TypeError, match="he is required unless le is a Pair"):
        recombine(le, weight=0.2)
    with pytest.raises(TypeError, match="le must be a numpy array, a pydicom Dataset"):
        recombine([[1, 2]], he, weight=0.2)


# --------------------------------------------------------------------------------------
# headers: Datasets, paths, reader pairs, physics weight
# --------------------------------------------------------------------------------------

BEAMS = {"LE": (31.0, "RHODIUM", "RHODIUM", 0.025), "HE": (49.0, "RHODIUM", "COPPER", 0.3)}


def _dataset(pixels: np.ndarray, energy: str, *, thickness_mm: float | None = 50.0) -> pydicom.Dataset:
    kvp, anode, filt, filt_mm = BEAMS[energy]
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2.1"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "MG"
    ds.KVP = kvp
    ds.AnodeTargetMaterial = anode
    ds.FilterMaterial = filt
    ds.FilterThicknessMinimum = filt_mm
    ds.FilterThicknessMaximum = filt_mm
    if thickness_mm is not None:
        ds.BodyPartThickness = thickness_mm
    ds.ImagerPixelSpacing = [0.1, 0.1]
    ds.ImageType = ["ORIGINAL", "PRIMARY", "", "LOW_ENERGY" if energy == "LE" else "HIGH_ENERGY"]
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.astype("<u2").tobytes()
    return ds


@pytest.fixture(scope="module")
def header_pair():
    le, he = _images((16, 20), seed=4, lo=1000, hi=20000)
    return le, he, _dataset(le, "LE"), _dataset(he, "HE")


def _expected_physics_weight():
    from cemrecon.physics import Beam
    from cemrecon.weights import physics_weight

    le_beam = Beam.from_dicom_terms(*BEAMS["LE"])
    he_beam = Beam.from_dicom_terms(*BEAMS["HE"])
    return physics_weight(le_beam, he_beam, 50.0)


def test_datasets_use_physics_weight_from_headers(header_pair):
    le, he, ds_le, ds_he = header_pair
    w = _expected_physics_weight()
    assert 0.22 < w < 0.27  # physics.md Table 1, Rh/Rh 31 + Rh/Cu 49 at 5 cm: 0.245
    rc = recombine(ds_le, ds_he)
    assert_allclose(rc, recombine_reference(le, he, w), rtol=0, atol=ATOL)


def test_paths_and_missing_thickness(header_pair, tmp_path):
    le, he, ds_le, ds_he = header_pair
    p_le, p_he = tmp_path / "le.dcm", tmp_path / "he.dcm"
    ds_le.save_as(p_le, enforce_file_format=True)
    ds_he.save_as(p_he, enforce_file_format=True)
    rc = recombine(str(p_le), p_he, weight=0.2)
    assert_allclose(rc, recombine_reference(le, he, 0.2), rtol=0, atol=ATOL)
    no_t = _dataset(le, "LE", thickness_mm=None)
    no_t_he = _dataset(he, "HE", thickness_mm=None)
    with pytest.raises(UnsupportedDicomError, match=r"BodyPartThickness \(0018,11A0\)"):
        recombine(no_t, no_t_he)
    with pytest.raises(Exception, match="cannot read le as DICOM"):
        recombine(tmp_path / "missing.dcm", p_he, weight=0.2)


class _FakeImage:
    def __init__(self, pixels, ds):
        from cemrecon.io.read import acquisition_meta

        self._pixels = pixels
        self.meta = acquisition_meta(ds)
        self.path = f"/fake/{ds.SOPInstanceUID}.dcm"

    def read_pixels(self):
        return self._pixels


class _FakePair:
    def __init__(self, le, he):
        self.le, self.he = le, he


def test_pair_duck_type_and_result(header_pair):
    le, he, ds_le, ds_he = header_pair
    pair = _FakePair(_FakeImage(le, ds_le), _FakeImage(he, ds_he))
    res = recombine_pair(pair)
    assert isinstance(res, RecombineResult)
    w = _expected_physics_weight()
    assert res.weight_mode == "physics" and res.weight == pytest.approx(w)
    assert_allclose(res.rc, recombine_reference(le, he, w), rtol=0, atol=ATOL)
    prov = res.provenance
    assert prov["spatial_locations_preserved"] is True  # texture-free noise: no shift found
    assert prov["le_beam"] == {"anode": "Rh", "filter_material": "Rh", "filter_mm": 0.025, "kvp": 31.0}
    assert prov["thickness_mm"] == 50.0 and prov["clamped_pixels_le"] == 0
    assert set(res.timings) >= {"read_s", "register_s", "weight_s", "kernel_s", "total_s"}
    assert json.loads(json.dumps(prov))["weight_mode"] == "physics"  # JSON-serialisable
    assert_array_equal(recombine(pair), res.rc)


def test_clamped_pixels_are_counted():
    le = np.array([[0, 10, 50, 51, 52]], np.uint16)
    res = recombine_pair((le, le), weight=0.2, dark_offset=50, register=False)
    # 0, 10, 50 are at or below the offset; 51 - 50 = 1 >= 0.5 is kept
    assert res.provenance["clamped_pixels_le"] == 3


# --------------------------------------------------------------------------------------
# threads
# --------------------------------------------------------------------------------------


def test_thread_policy_in_pools():
    assert resolve_threads(None) >= 1
    assert resolve_threads(10_000) == max_threads()  # capped, never more than the pool
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        assert pool.submit(resolve_threads, None).result() == 1  # worker thread: serial
        assert pool.submit(resolve_threads, 1).result() == 1


def test_thread_policy_in_process_pool_children():
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # fork after OpenMP start is unsafe anyway
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        assert pool.submit(resolve_threads, None).result() == 1  # child process: serial


def test_concurrent_calls_from_threads_agree():
    from cemrecon.recombination import PARALLEL_MIN_PIXELS

    le, he = _images((2, 384, 384), seed=5)
    assert le.size >= PARALLEL_MIN_PIXELS  # large enough to run the parallel twin
    ref = recombine(le, he, weight=0.25, threads=1)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(recombine, le, he, weight=0.25, threads=2) for _ in range(8)]
        for f in futures:
            assert_array_equal(f.result(), ref)


def test_cemrecon_num_threads_env(monkeypatch):
    import cemrecon._numba as N

    monkeypatch.setenv("CEMRECON_NUM_THREADS", "1")
    assert N.resolve_threads(None) == 1
    monkeypatch.setenv("CEMRECON_NUM_THREADS", str(max_threads() + 5))
    assert N.resolve_threads(None) == max_threads()
    assert os.environ.get("NUMBA_NUM_THREADS") is not None  # set by tests/conftest.py
