"""Optional LE/HE registration (rigid translation, phase correlation).

Patient motion between the LE and HE exposures (a second or two apart) leaves
edges and glandular structure uncancelled in RC.  :func:`estimate_shift` finds
the translation of HE relative to LE by phase correlation
(:func:`skimage.registration.phase_cross_correlation`) of band-passed ln images
-- glandular texture appears in both with the same sign, so their correlation
peak is sharp -- and :func:`shift_image` moves HE onto LE (LE is the diagnostic
frame, so LE pixels and the truth stay where they are).  A registered RC no
longer has HE pixel values at their acquired locations: the provenance records
``spatial_locations_preserved=False`` (DICOM Spatial Locations Preserved).
"""

from __future__ import annotations

import logging
import math

import numpy as np
from scipy import ndimage

__all__ = ["MIN_CORRELATION", "SHIFT_THRESHOLD_PX", "estimate_shift", "shift_image", "shift_magnitude"]

logger = logging.getLogger(__name__)

#: A shift smaller than this (pixels, Euclidean) is not corrected in ``"auto"``
#: mode: below half a pixel the interpolation blur costs more than the misfit.
SHIFT_THRESHOLD_PX = 0.5

#: ``"auto"`` mode trusts a shift only if the band-passed LE and HE correlate at
#: least this well at the peak: LE and HE of one breast share their texture
#: (correlation ~0.9 on the phantom), unrelated or texture-free images do not.
MIN_CORRELATION = 0.5

#: Phase correlation works on block means (at least 2x2, more for large images so
#: the low-res side stays <= 512 px: ~0.1 s at full field); upsampling 20 gives
#: 0.05 low-res pixel = 0.1-0.2 full-res pixel precision.
_DOWNSAMPLE = 2
_MAX_LOW_SIDE_PX = 512
_UPSAMPLE = 20
#: Band-pass (difference of Gaussians) in low-res pixels: keeps texture and
#: edges, drops noise and the smooth thickness/heel-effect gradients.
_BAND_PX = (0.5, 4.0)
#: Smallest image side (pixels) that is registered.  Below ~128 low-res pixels a
#: side the peak is biased by the skin-line window: on 1 mm-pixel phantoms
#: (239 x 285 px, no motion) "auto" found false 0.5-0.7 px shifts in 3 of 8 pairs,
#: while at 0.2-0.4 mm pixels false shifts stay <= 0.15 px.  Clinical images are
#: ~2400 px a side.
_MIN_SIZE_PX = 256
#: Margin (low-res pixels) kept away from the skin line.
_EDGE_MARGIN_PX = 16
#: Refinement passes of the shift estimate (see estimate_shift).
_ITERATIONS = 4


def _downsample_factor(shape: tuple[int, int]) -> int:
    """2 for small images, more for large ones, so the low-res side is <= ~512 pixels."""
    return max(_DOWNSAMPLE, int(np.ceil(min(shape) / _MAX_LOW_SIDE_PX)))


def _downsample(ln_image: np.ndarray, f: int) -> np.ndarray:
    h, w = ln_image.shape
    hc, wc = h - h % f, w - w % f
    return ln_image[:hc, :wc].reshape(hc // f, f, wc // f, f).mean(axis=(1, 3), dtype=np.float64)


def _window(low_le: np.ndarray) -> np.ndarray:
    """Weighting window: breast interior (skin line excluded), tapered, times a Hann window.

    The skin line is a step of different height and profile in LE and HE (beam
    hardening), which biases the correlation peak; the interior texture does not.
    """
    from cemrecon.weights import breast_mask_lowres

    mask = breast_mask_lowres(low_le)
    inner = ndimage.binary_erosion(mask, iterations=_EDGE_MARGIN_PX)
    if np.count_nonzero(inner) < 0.05 * inner.size:
        inner = mask
    taper = ndimage.gaussian_filter(inner.astype(np.float64), _EDGE_MARGIN_PX / 2)
    return taper * np.outer(np.hanning(low_le.shape[0]), np.hanning(low_le.shape[1]))


def _band(low: np.ndarray, window: np.ndarray) -> np.ndarray:
    band = ndimage.gaussian_filter(low, _BAND_PX[0]) - ndimage.gaussian_filter(low, _BAND_PX[1])
    return band * window


def estimate_shift(ln_le: np.ndarray, ln_he: np.ndarray) -> tuple[tuple[float, float], float]:
    """Translation ``(dy, dx)`` in pixels that moves HE onto LE, and its reliability.

    Parameters
    ----------
    ln_le, ln_he : ndarray, shape (H, W)
        Natural-log images (any constant offset or scale is irrelevant).

    Returns
    -------
    shift : (float, float)
        Apply with :func:`shift_image` (``ndimage.shift`` convention).
    correlation : float
        Normalised cross-correlation of the band-passed images at the peak (0-1);
        below :data:`MIN_CORRELATION` the shift is noise.
    """
    from skimage.registration import phase_cross_correlation

    if ln_le.shape != ln_he.shape or ln_le.ndim != 2:
        raise ValueError(f"estimate_shift needs two 2-D images of one shape, got {ln_le.shape} and {ln_he.shape}")
    if min(ln_le.shape) < _MIN_SIZE_PX:
        logger.debug("images of %s pixels are too small to register", ln_le.shape)
        return (0.0, 0.0), 0.0
    f = _downsample_factor(ln_le.shape)
    low_le, low_he = _downsample(ln_le, f), _downsample(ln_he, f)
    window = _window(low_le)
    ref = _band(low_le, window)
    # The fixed window pulls the correlation peak towards zero (by ~15 % here), so
    # iterate: move HE by the estimate so far and measure the remainder.
    total = np.zeros(2)
    error = 1.0
    for _ in range(_ITERATIONS):
        moving = low_he if not total.any() else ndimage.shift(low_he, total, order=3, mode="nearest")
        step, error, _phase = phase_cross_correlation(
            ref, _band(moving, window), upsample_factor=_UPSAMPLE, normalization=None
        )
        total += step
        if np.hypot(*step) < 1.0 / _UPSAMPLE:
            break
    # skimage: error = sqrt(1 - |CC_max|^2 / (E_ref E_mov)), so |normalised CC| = sqrt(1 - error^2)
    correlation = float(np.sqrt(max(0.0, 1.0 - float(error) ** 2)))
    dy, dx = (float(v) * f for v in total)
    logger.debug("LE/HE shift estimate: dy=%.2f dx=%.2f px (correlation %.2f)", dy, dx, correlation)
    return (dy, dx), correlation


def shift_magnitude(shift: tuple[float, float]) -> float:
    """Euclidean length of a shift (pixels)."""
    return math.hypot(*shift)


def shift_image(image: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """Translate a 2-D image by ``shift`` (pixels), cubic spline, edges replicated; float32.

    Cubic rather than linear interpolation: linear smooths the moved image
    (a half-pixel shift halves its Nyquist-band texture), which then no longer
    cancels against the unmoved LE.
    """
    return ndimage.shift(np.asarray(image, dtype=np.float32), shift, order=3, mode="nearest").astype(
        np.float32, copy=False
    )
