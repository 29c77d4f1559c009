"""Public recombination: ``RC = ln(HE - d_HE) - w ln(LE - d_LE)``.

Sign convention
---------------
RC is the natural-log recombination of Lewin et al. (Radiology 2003) on raw
detector values: ``RC = ln(HE - d_HE) - w * ln(LE - d_LE)`` with ``d`` the
detector dark offsets (DN) and ``w`` the tissue-cancelling weight.  Iodine
attenuates HE more than ``w`` times LE, so **iodine lowers RC** (about -0.016
per mg I/cm^2); displays show ``-RC`` plus an offset.  RC on raw DN differs from
RC on flat-field-normalised images only by the constant
``ln I0_HE - w ln I0_LE``; quantification works on differences or calibrates it.

Dark offset and non-positive pixels
-----------------------------------
The dark offset is subtracted explicitly (``dark_offset=``; default: the value
the reader found in the header, else 0).  A pixel at or below the offset (dead
pixel, collimator shadow, or noise in a fully attenuated area) has no signal;
it is clamped to :data:`SIGNAL_FLOOR_DN` before the log, so RC is always finite:
no NaN, no inf.  :func:`recombine_pair` reports how many pixels were clamped.

Dtype policy
------------
Raw detector data stay integer until the kernel: uint16 (and uint8) images go
through 65,536-entry float32 log tables with the weight folded into the LE table
(:func:`cemrecon.kernels.weighted_log_table`), at about 1.4 cycles per pixel; other
integer and float images through a float64 libm kernel. The output is always float32
(error <= 1.5e-6 against float64 for |RC| < 16 by analysis; 1.06e-6 measured over
every uint16 value).

Threads
-------
``threads=None`` follows :mod:`cemrecon._numba`: all of ``NUMBA_NUM_THREADS``
(or ``CEMRECON_NUM_THREADS``) in the main thread, one thread inside thread
pools, Dask workers and process-pool children, so a pool never oversubscribes
the cores.  An explicit ``threads=n`` is honoured (capped at the numba pool).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cemrecon import kernels as K
from cemrecon._numba import resolve_threads, run_kernel
from cemrecon._validation import (
    check_image,
    check_offset,
    check_positive,
    check_same_shape,
    check_weight,
    check_weight_map,
)
from cemrecon.errors import UnsupportedDicomError
from cemrecon.io.inputs import LoadedImage, beam_from_meta, load_pair

__all__ = [
    "SIGNAL_FLOOR_DN",
    "WEIGHT_MODES",
    "RecombineResult",
    "recombine",
    "recombine_pair",
]

logger = logging.getLogger(__name__)

#: Signal (DN, after the dark offset) that a pixel at or below the offset is
#: clamped to before the log: half a quantisation step, the expected value of a
#: signal that reads 0 or 1 DN with equal chance.  ln(0.5) = -0.69, finite.
SIGNAL_FLOOR_DN = 0.5

#: Weight modes reported in :class:`RecombineResult` and provenance.
WEIGHT_MODES = ("explicit", "explicit_map", "physics", "thickness", "image")

#: Images with fewer pixels run on one thread: a parallel launch costs tens of
#: microseconds (milliseconds when another process holds a core), more than
#: the ~0.1 ms the serial kernel needs for 256 k pixels.
PARALLEL_MIN_PIXELS = 262_144

_LITTLE_ENDIAN = sys.byteorder == "little"
_LUT_DTYPES = (np.dtype(np.uint16), np.dtype(np.uint8))


@dataclass
class RecombineResult:
    """Recombined image and how it was made.

    Attributes
    ----------
    rc : ndarray of float32
        Same shape as the inputs (``(H, W)`` or ``(N, H, W)``).
    weight : float or ndarray
        The weight used: a scalar, or a float32 per-pixel map (``"thickness"``
        mode, explicit maps) of shape ``(H, W)`` / ``(N*H, W)``.
    weight_mode : str
        One of :data:`WEIGHT_MODES`.
    provenance : dict
        JSON-serialisable record: sign convention, weight and mode, dark offsets,
        signal floor, clamped pixel counts, beams, thickness, registration shift and
        ``spatial_locations_preserved``, threads, kernel, cemrecon version, sources.
    timings : dict
        Seconds per stage: ``read_s``, ``register_s``, ``weight_s``, ``kernel_s``,
        ``total_s``.
    offset_map : ndarray or None
        Additive float32 map of the ``"thickness"`` mode (None otherwise).
    """

    rc: np.ndarray
    weight: float | np.ndarray
    weight_mode: str
    provenance: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    offset_map: np.ndarray | None = None


# ------------------------------------------------------------------------------------
# public API
# ------------------------------------------------------------------------------------


def recombine(
    le: Any,
    he: Any = None,
    *,
    weight: float | str | np.ndarray | None = None,
    dark_offset: float | tuple[float, float] | None = None,
    threads: int | None = None,
    le_beam: Any = None,
    he_beam: Any = None,
    thickness_mm: float | None = None,
    pixel_mm: float | None = None,
    glandularity: float = 0.5,
    register: bool | str = False,
    floor_dn: float = SIGNAL_FLOOR_DN,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Recombine a low-energy / high-energy pair into ``RC = ln HE - w ln LE`` (float32).

    Parameters
    ----------
    le, he : ndarray, pydicom Dataset, path, or reader image
        LE and HE images: NumPy arrays ``(H, W)`` or stacks ``(N, H, W)`` (raw
        uint16 or float DN), pydicom Datasets, DICOM file paths, or objects with
        ``read_pixels()`` and ``meta`` (``cemrecon.io.read.SourceImage``).
        Alternatively pass a reader ``Pair`` (anything with ``.le`` and ``.he``) as
        ``le`` and leave ``he`` out.
    weight : float, ndarray, None, "thickness" or "image", optional
        Tissue-cancelling weight (see :mod:`cemrecon.weights`): a number in
        ``[0, 1]``; a per-pixel map ``(H, W)``; ``None`` (default) for the
        physics-predicted weight of the pair's beams and compressed thickness
        (needs DICOM headers or ``le_beam``, ``he_beam`` and ``thickness_mm``:
        with plain arrays and none of these a ``ValueError`` says so);
        ``"thickness"`` for the thickness-aware map that removes the rim
        artefact (also needs ``pixel_mm``); ``"image"`` for the texture-minimising
        weight fitted on the images (needs ``pixel_mm``; no headers).
    dark_offset : float or (float, float), optional
        Detector dark offset in DN, one value or ``(le, he)``.  Default: the
        header's (phantom private tag) else 0.
    threads : int, optional
        Numba threads; default per the module's thread policy.
    le_beam, he_beam : cemrecon.physics.Beam, optional
        Override the beams read from the headers.
    thickness_mm : float, optional
        Override the compressed thickness from the headers.
    pixel_mm : float, optional
        Override the pixel spacing from the headers.
    glandularity : float, optional
        Glandular fraction at which the physics weight is evaluated.
    register : bool or "auto", optional
        Register HE onto LE (rigid translation, :mod:`cemrecon.registration`);
        ``"auto"`` corrects only a detected shift >= 0.5 pixel.  Default False.
    floor_dn : float, optional
        Signal floor (DN after the offset) for non-positive pixels.
    out : ndarray, optional
        Preallocated C-contiguous float32 output of the input shape.

    Returns
    -------
    ndarray of float32
        RC, same shape as the inputs.  Iodine lowers RC.

    Raises
    ------
    TypeError, ValueError
        Bad arguments (wrong type, shape mismatch, weight out of range...).
    DicomReadError, UnsupportedDicomError
        A file cannot be read, or its headers lack what the weight mode needs.

    Examples
    --------
    >>> import numpy as np
    >>> le = np.full((4, 4), 1050, np.uint16); he = np.full((4, 4), 2050, np.uint16)
    >>> rc = recombine(le, he, weight=0.25, dark_offset=50)
    >>> float(rc[0, 0]) == np.float32(np.log(2000) - 0.25 * np.log(1000))
    True
    """
    return _recombine(
        le, he, weight=weight, dark_offset=dark_offset, threads=threads, le_beam=le_beam,
        he_beam=he_beam, thickness_mm=thickness_mm, pixel_mm=pixel_mm, glandularity=glandularity,
        register=register, floor_dn=floor_dn, out=out, count_clamped=False,
    ).rc


def recombine_pair(
    pair: Any,
    *,
    weight: float | str | np.ndarray | None = None,
    dark_offset: float | tuple[float, float] | None = None,
    threads: int | None = None,
    glandularity: float = 0.5,
    register: bool | str = False,
    floor_dn: float = SIGNAL_FLOOR_DN,
    **overrides: Any,
) -> RecombineResult:
    """Recombine a reader ``Pair`` and return the RC with weight, provenance and timings.

    Parameters
    ----------
    pair : cemrecon.io.pair.Pair or (le, he)
        Anything with ``.le`` / ``.he`` reader images (``read_pixels()``, ``meta``),
        or a 2-tuple accepted by :func:`recombine`.
    weight, dark_offset, threads, glandularity, floor_dn
        As in :func:`recombine`.
    register : bool or "auto", optional
        ``"auto"``: a detected LE/HE shift of half a pixel or more (with a reliable
        correlation peak) is corrected; ``True``: always register.  When HE is moved,
        ``provenance["spatial_locations_preserved"]`` is False.  Default False:
        detection costs ~0.5 s per full-field pair (100x the kernel), so it is opt-in.
    **overrides
        ``le_beam``, ``he_beam``, ``thickness_mm``, ``pixel_mm`` (as in :func:`recombine`).

    Returns
    -------
    RecombineResult
    """
    unknown = set(overrides) - {"le_beam", "he_beam", "thickness_mm", "pixel_mm", "out"}
    if unknown:
        raise TypeError(f"recombine_pair got unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    if isinstance(pair, tuple) and len(pair) == 2:
        le, he = pair
    else:
        le, he = pair, None
    return _recombine(
        le, he, weight=weight, dark_offset=dark_offset, threads=threads, glandularity=glandularity,
        register=register, floor_dn=floor_dn, count_clamped=True, **overrides,
    )


# ------------------------------------------------------------------------------------
# inputs
# ------------------------------------------------------------------------------------


def _meta_value(src: LoadedImage, attr: str) -> Any:
    return None if src.meta is None else getattr(src.meta, attr, None)


def _resolve_offsets(dark_offset: Any, le: LoadedImage, he: LoadedImage) -> tuple[float, float]:
    if dark_offset is None:
        d_le = _meta_value(le, "dark_offset_dn")
        d_he = _meta_value(he, "dark_offset_dn")
        return (
            0.0 if d_le is None else check_offset(d_le, f"{le.path or 'le'}: dark offset"),
            0.0 if d_he is None else check_offset(d_he, f"{he.path or 'he'}: dark offset"),
        )
    if isinstance(dark_offset, tuple | list):
        if len(dark_offset) != 2:
            raise ValueError(f"dark_offset must be a number or a (le, he) pair, got {dark_offset!r}")
        return check_offset(dark_offset[0], "dark_offset[0] (LE)"), check_offset(dark_offset[1], "dark_offset[1] (HE)")
    d = check_offset(dark_offset, "dark_offset")
    return d, d


# ------------------------------------------------------------------------------------
# kernel dispatch
# ------------------------------------------------------------------------------------


def _lut_ok(le: np.ndarray, he: np.ndarray) -> bool:
    return le.dtype in _LUT_DTYPES and he.dtype in _LUT_DTYPES


def _as_index(img: np.ndarray) -> np.ndarray:
    """uint16 (or uint8) C-contiguous 1-D view/copy of an image for the LUT kernels."""
    return np.ascontiguousarray(img).reshape(-1)


def _compute(
    le: np.ndarray,
    he: np.ndarray,
    *,
    weight: float | None,
    wmap: np.ndarray | None,
    offmap: np.ndarray | None,
    le_offset: float,
    he_offset: float,
    floor_dn: float,
    threads: int | None,
    out: np.ndarray,
) -> str:
    """Run the right kernel into ``out`` (float32, C-contiguous); return its name."""
    if out.size < PARALLEL_MIN_PIXELS:
        threads = 1
    flat_out = out.reshape(-1)
    if _lut_ok(le, he):
        if wmap is None:
            # float32 tables, weight folded into the LE table (see cemrecon.kernels)
            t_he = K.weighted_log_table(float(he_offset), float(floor_dn), 1.0)
            t_lew = K.weighted_log_table(float(le_offset), float(floor_dn), float(weight))
            he1, le1 = _as_index(he), _as_index(le)
            n = he1.size
            n4 = n - n % 4
            words = (
                _LITTLE_ENDIAN and he1.dtype == np.uint16 and le1.dtype == np.uint16 and n4 > 0
                and he1.ctypes.data % 8 == 0 and le1.ctypes.data % 8 == 0
            )
            if words:
                run_kernel(K.rc_lut_words, he1[:n4].view(np.uint64), le1[:n4].view(np.uint64),
                           t_he, t_lew, flat_out[:n4], threads=threads)
                if n4 < n:
                    K.rc_lut.serial(he1[n4:], le1[n4:], t_he, t_lew, flat_out[n4:])
                return "rc_lut_words"
            run_kernel(K.rc_lut, he1, le1, t_he, t_lew, flat_out, threads=threads)
            return "rc_lut"
        t_he = K.log_table(he_offset, floor_dn)
        t_le = K.log_table(le_offset, floor_dn)
        cols = le.shape[-1]
        run_kernel(K.rc_lut_map, np.ascontiguousarray(he).reshape(-1, cols),
                   np.ascontiguousarray(le).reshape(-1, cols), t_he, t_le, wmap, offmap,
                   out.reshape(-1, cols), threads=threads)
        return "rc_lut_map"
    cols = le.shape[-1]
    he2 = np.ascontiguousarray(he).reshape(-1, cols)
    le2 = np.ascontiguousarray(le).reshape(-1, cols)
    out2 = out.reshape(-1, cols)
    if wmap is None:
        run_kernel(K.rc_float, he2, le2, he_offset, le_offset, floor_dn, weight, out2, threads=threads)
        return "rc_float"
    run_kernel(K.rc_float_map, he2, le2, he_offset, le_offset, floor_dn, wmap, offmap, out2, threads=threads)
    return "rc_float_map"


def _log_image(img: np.ndarray, offset: float, floor_dn: float, threads: int | None) -> np.ndarray:
    """``ln(max(img - offset, floor))`` as float32 (the kernel with w = 0)."""
    out = np.empty(img.shape, np.float32)
    _compute(img, img, weight=0.0, wmap=None, offmap=None, le_offset=offset, he_offset=offset,
             floor_dn=floor_dn, threads=threads, out=out)
    return out


def _check_out(out: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=np.float32)
    if not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != shape or not out.flags.c_contiguous:
        got = f"{type(out).__name__}" if not isinstance(out, np.ndarray) else f"{out.dtype} {out.shape}"
        raise ValueError(f"out must be a C-contiguous float32 array of shape {shape}, got {got}")
    return out


# ------------------------------------------------------------------------------------
# the whole recombination
# ------------------------------------------------------------------------------------


def _recombine(
    le: Any,
    he: Any,
    *,
    weight: Any,
    dark_offset: Any,
    threads: int | None,
    glandularity: float,
    register: bool | str,
    floor_dn: float,
    count_clamped: bool,
    le_beam: Any = None,
    he_beam: Any = None,
    thickness_mm: float | None = None,
    pixel_mm: float | None = None,
    out: np.ndarray | None = None,
) -> RecombineResult:
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    n_threads = resolve_threads(threads)  # validates threads early
    floor_dn = check_positive(floor_dn, "floor_dn", "DN")
    if register not in (True, False, "auto"):
        raise ValueError(f"register must be True, False or 'auto', got {register!r}")
    if isinstance(weight, str) and weight not in ("thickness", "image"):
        raise ValueError(f"weight must be a number, an array, None, 'thickness' or 'image'; got {weight!r}")

    src_le, src_he = load_pair(le, he)
    timings["read_s"] = time.perf_counter() - t_start
    le_px = check_image(src_le.pixels, src_le.path or "le")
    he_px = check_image(src_he.pixels, src_he.path or "he")
    check_same_shape(le_px, he_px)
    shape = le_px.shape
    out = _check_out(out, shape)
    le_off, he_off = _resolve_offsets(dark_offset, src_le, src_he)
    frames = 1 if le_px.ndim == 2 else shape[0]

    provenance: dict[str, Any] = {
        "formula": "RC = ln(max(HE - dark_offset_he, floor)) - w * ln(max(LE - dark_offset_le, floor))",
        "sign_convention": "iodine lowers RC",
        "dark_offset_le_dn": le_off,
        "dark_offset_he_dn": he_off,
        "signal_floor_dn": floor_dn,
        "sources": {"le": src_le.path, "he": src_he.path},
        "shape": list(shape),
        "threads": n_threads,
    }

    # ---- registration (HE moved onto LE) --------------------------------------------
    t0 = time.perf_counter()
    shifts: list[list[float]] = []
    correlations: list[float] = []
    registered = False
    if register:
        from cemrecon.registration import (
            MIN_CORRELATION,
            SHIFT_THRESHOLD_PX,
            estimate_shift,
            shift_image,
            shift_magnitude,
        )

        le_frames = le_px.reshape((-1,) + shape[-2:])
        he_frames = he_px.reshape((-1,) + shape[-2:])
        moved = []
        for i in range(frames):
            s, corr = estimate_shift(_log_image(le_frames[i], le_off, floor_dn, threads),
                                     _log_image(he_frames[i], he_off, floor_dn, threads))
            shifts.append([round(s[0], 3), round(s[1], 3)])
            correlations.append(round(corr, 3))
            if register is True or (corr >= MIN_CORRELATION and shift_magnitude(s) >= SHIFT_THRESHOLD_PX):
                moved.append(shift_image(he_frames[i], s))
                registered = True
            else:
                moved.append(he_frames[i])
        if registered:
            he_px = np.stack([m.astype(np.float32, copy=False) for m in moved]).reshape(shape)
    timings["register_s"] = time.perf_counter() - t0
    provenance["registration"] = {"requested": register, "shift_px": shifts or None,
                                  "correlation": correlations or None, "applied": registered}
    provenance["spatial_locations_preserved"] = not registered

    # ---- weight -------------------------------------------------------------------
    t0 = time.perf_counter()
    wmap = offmap = None
    scalar: float | None = None
    per_frame: list[float] | None = None
    mode: str
    extra: dict[str, Any] = {}
    needs_physics = weight is None or (isinstance(weight, str) and weight == "thickness")
    if isinstance(weight, np.ndarray) and weight.ndim > 0:
        wmap = check_weight_map(weight, shape)
        offmap = np.zeros_like(wmap)
        mode = "explicit_map"
    elif weight is not None and not isinstance(weight, str):
        scalar = check_weight(weight)
        mode = "explicit"
    elif needs_physics:
        lb = le_beam if le_beam is not None else beam_from_meta(src_le.meta, where=src_le.path or "LE image", which="le")
        hb = he_beam if he_beam is not None else beam_from_meta(src_he.meta, where=src_he.path or "HE image", which="he")
        t_mm = thickness_mm
        if t_mm is None:
            t_mm = _meta_value(src_le, "thickness_mm")
            if t_mm is None:
                t_mm = _meta_value(src_he, "thickness_mm")
        if lb is None or hb is None or t_mm is None:
            what = "arrays" if src_le.meta is None else "headers"
            if src_le.meta is not None and t_mm is None:
                raise UnsupportedDicomError(
                    f"{src_le.path or 'le'}: weight={weight!r} needs the compressed thickness "
                    "(BodyPartThickness (0018,11A0)), which the header lacks; pass thickness_mm= "
                    "or weight=<float>"
                )
            raise ValueError(
                f"weight={weight!r} predicts w from the beams and the compressed thickness, which "
                f"plain {what} do not carry: pass weight=<float>, weight='image', or le_beam=, "
                "he_beam= and thickness_mm= (or DICOM inputs)"
            )
        t_mm = check_positive(t_mm, "thickness_mm", "mm")
        extra.update(le_beam=_beam_repr(lb), he_beam=_beam_repr(hb), thickness_mm=t_mm,
                     glandularity=float(glandularity))
        from cemrecon.weights import physics_weight, thickness_maps

        if weight is None:
            scalar = physics_weight(lb, hb, t_mm, glandularity=glandularity)
            mode = "physics"
        else:
            px = _pixel_mm(pixel_mm, src_le, "thickness")
            maps_w, maps_o = [], []
            le_frames = le_px.reshape((-1,) + shape[-2:])
            he_frames = he_px.reshape((-1,) + shape[-2:])
            for i in range(frames):
                tm = thickness_maps(_log_image(le_frames[i], le_off, floor_dn, threads),
                                    _log_image(he_frames[i], he_off, floor_dn, threads), thickness_mm=t_mm,
                                    pixel_mm=px, le_beam=lb, he_beam=hb, glandularity=glandularity)
                maps_w.append(tm.weight_map)
                maps_o.append(tm.offset_map)
                extra.setdefault("weight_interior", []).append(round(tm.weight_interior, 6))
                extra.setdefault("ln_le_reference", []).append(round(tm.ln_le_reference, 6))
            wmap = np.ascontiguousarray(np.concatenate(maps_w, axis=0), dtype=np.float32)
            offmap = np.ascontiguousarray(np.concatenate(maps_o, axis=0), dtype=np.float32)
            mode = "thickness"
    else:  # "image"
        from cemrecon.weights import image_weight

        px = _pixel_mm(pixel_mm, src_le, "image")
        le_frames = le_px.reshape((-1,) + shape[-2:])
        he_frames = he_px.reshape((-1,) + shape[-2:])
        per_frame = [
            image_weight(_log_image(le_frames[i], le_off, floor_dn, threads),
                         _log_image(he_frames[i], he_off, floor_dn, threads), pixel_mm=px)
            for i in range(frames)
        ]
        mode = "image"
        scalar = per_frame[0] if frames == 1 else None
    timings["weight_s"] = time.perf_counter() - t0

    # ---- kernel -------------------------------------------------------------------
    t0 = time.perf_counter()
    common: dict[str, Any] = {"le_offset": le_off, "he_offset": he_off, "floor_dn": floor_dn, "threads": threads}
    if per_frame is not None and frames > 1:
        le_frames = le_px.reshape((-1,) + shape[-2:])
        he_frames = he_px.reshape((-1,) + shape[-2:])
        out_frames = out.reshape((-1,) + shape[-2:])
        for i in range(frames):
            kernel_name = _compute(le_frames[i], he_frames[i], weight=per_frame[i], wmap=None, offmap=None,
                                   out=out_frames[i], **common)
        used_weight: float | np.ndarray = np.asarray(per_frame, dtype=np.float64)
    else:
        kernel_name = _compute(le_px, he_px, weight=scalar, wmap=wmap, offmap=offmap, out=out, **common)
        used_weight = scalar if wmap is None else wmap
    timings["kernel_s"] = time.perf_counter() - t0

    if count_clamped:
        provenance["clamped_pixels_le"] = _count_clamped(le_px, le_off, floor_dn)
        provenance["clamped_pixels_he"] = _count_clamped(he_px, he_off, floor_dn)
    provenance.update(extra)
    provenance["weight_mode"] = mode
    provenance["weight"] = _weight_summary(used_weight)
    provenance["kernel"] = kernel_name
    from cemrecon import __version__

    provenance["cemrecon_version"] = __version__
    timings["total_s"] = time.perf_counter() - t_start
    logger.debug("recombined %s with %s weight %s in %.3f s", shape, mode, provenance["weight"], timings["total_s"])
    return RecombineResult(rc=out, weight=used_weight, weight_mode=mode, provenance=provenance,
                           timings=timings, offset_map=offmap if mode == "thickness" else None)


def _pixel_mm(pixel_mm: float | None, src: LoadedImage, mode: str) -> float:
    if pixel_mm is not None:
        return check_positive(pixel_mm, "pixel_mm", "mm")
    spacing = _meta_value(src, "pixel_spacing_mm")
    if spacing:
        return check_positive(spacing[0], f"{src.path or 'le'}: pixel spacing", "mm")
    raise ValueError(f"weight={mode!r} needs the pixel spacing: pass pixel_mm= (or DICOM inputs)")


def _beam_repr(beam: Any) -> dict[str, Any]:
    return {
        "anode": beam.anode,
        "filter_material": beam.filter_material,
        "filter_mm": float(beam.filter_mm),
        "kvp": float(beam.kvp),
    }


def _weight_summary(weight: float | np.ndarray | None) -> Any:
    if weight is None:
        return None
    if np.ndim(weight) == 0:
        return float(weight)  # type: ignore[arg-type]
    arr = np.asarray(weight, dtype=np.float64)
    if arr.ndim == 1:
        return [float(v) for v in arr]
    return {"min": float(arr.min()), "max": float(arr.max()), "mean": float(arr.mean())}


def _count_clamped(img: np.ndarray, offset: float, floor_dn: float) -> int:
    """Pixels whose offset-corrected signal is below the floor (and so were clamped)."""
    limit = offset + floor_dn
    if img.dtype.kind in "ui":
        # integer v < limit  <=>  v < ceil(limit): compare in the image's own dtype
        threshold = math.ceil(limit)
        if threshold > np.iinfo(img.dtype).max:
            return int(img.size)
        if threshold <= 0:
            return 0
        return int(np.count_nonzero(img < img.dtype.type(threshold)))
    return int(np.count_nonzero(img < limit))
