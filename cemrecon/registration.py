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

__all__ = ["SHIFT_THRESHOLD_PX", "MIN_CORRELATION", "estimate_shift", "shift_image", "shift_magnitude"]

logger = logging.getLogger(__name__)

#: A shift smaller than this (pixels, Euclidean) is not corrected in ``"auto"``
#: mode: below half a pixel the interpolation blur costs more than the misfit.
SHIFT_THRESHOLD_PX = 0.5

#: ``"auto"`` mode trusts a shift only if the band-passed LE and HE correlate at
#: least this well at the peak: LE and HE of one breast share their texture
#: (correlation ~0.9 on the phantom), unrelated or texture-free images do not.
MIN_CORRELATION = 0.5

#: Phase correlation works on 2x2 block means (halves the FFT cost, averages
#: noise); upsampling 20 gives 0.05 low-res = 0.1 full-res pixel precision.
_DOWNSAMPLE = 2
_UPSAMPLE = 20
#: Band-pass (difference of Gaussians) in low-res pixels: keeps texture and
#: edges, drops noise and the smooth thickness/heel-effect gradients.
_BAND_PX = (1.0, 8.0)
#: Smallest image side (pixels) that is registered: on fewer than 64 low-res
#: pixels a side the correlation peak of unrelated noise can exceed MIN_CORRELATION.
_MIN_SIZE_PX = 128


def _prepare(ln_image: np.ndarray) -> np.ndarray:
    h, w = ln_image.shape
    f = _DOWNSAMPLE
    hc, wc = h - h % f, w - w % f
    low = ln_image[:hc, :wc].astype(np.float64).reshape(hc // f, f, wc // f, f).mean(axis=(1, 3))
    band = ndimage.gaussian_filter(low, _BAND_PX[0]) - ndimage.gaussian_filter(low, _BAND_PX[1])
    # taper the borders so the image edge does not dominate the correlation
    win = np.outer(np.hanning(band.shape[0]), np.hanning(band.shape[1]))
    return band * win


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
    shift, error, _phase = phase_cross_correlation(
        _prepare(ln_le), _prepare(ln_he), upsample_factor=_UPSAMPLE, normalization=None
    )
    # skimage: error = sqrt(1 - |CC_max|^2 / (E_ref E_mov)), so |normalised CC| = sqrt(1 - error^2)
    correlation = float(np.sqrt(max(0.0, 1.0 - float(error) ** 2)))
    dy, dx = (float(s) * _DOWNSAMPLE for s in shift)
    logger.debug("LE/HE shift estimate: dy=%.2f dx=%.2f px (correlation %.2f)", dy, dx, correlation)
    return (dy, dx), correlation


def shift_magnitude(shift: tuple[float, float]) -> float:
    """Euclidean length of a shift (pixels)."""
    return math.hypot(*shift)


def shift_image(image: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """Translate a 2-D image by ``shift`` (pixels), bilinear, edges replicated; float32."""
    return ndimage.shift(np.asarray(image, dtype=np.float32), shift, order=1, mode="nearest").astype(
        np.float32, copy=False
    )
