"""A simple scatter forward model.

Scatter is modelled as a broad blur of the primary: ``S = SPR x B(P)``, where ``B`` is
a normalised Gaussian of FWHM ``kernel_fwhm_mm`` (default 50 mm; mammographic scatter
point-spread functions have widths of a few cm) and ``SPR`` the scatter-to-primary
ratio (physics.md, unconfirmed: 0.1-0.2 with a grid, 0.3-0.5 without).

Inside the breast mask the blur is normalised within the mask
(``B(P) = G*(P m) / G*m``), so a uniform breast gets exactly ``SPR x P`` up to its
edge.  Outside the mask the breast's scatter spills over unnormalised
(``S = SPR x G*(P m)``), falling off over the kernel width; the direct beam there
is not a scatter source.  The blur runs on a block-averaged copy (blocks of about a
tenth of the kernel sigma) and is interpolated back: scatter is smooth at that
scale, and a full-field image takes a fraction of a second.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["add_scatter", "scatter_field", "DEFAULT_KERNEL_FWHM_MM"]

#: default scatter kernel FWHM in mm (assumption: broad, a few cm)
DEFAULT_KERNEL_FWHM_MM = 50.0
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def _blur(image: np.ndarray, sigma_px: float) -> np.ndarray:
    from scipy import ndimage

    block = max(1, int(sigma_px // 10))
    if block == 1:
        return ndimage.gaussian_filter(image, sigma_px, mode="nearest")
    h, w = image.shape
    hp, wp = -(-h // block) * block, -(-w // block) * block
    padded = np.pad(image, ((0, hp - h), (0, wp - w)), mode="edge")
    small = padded.reshape(hp // block, block, wp // block, block).mean(axis=(1, 3))
    small = ndimage.gaussian_filter(small, sigma_px / block, mode="nearest")
    # separable linear interpolation back to full resolution; block centres sit at
    # (i + 0.5) * block - 0.5 in full-resolution pixel coordinates
    rows = _linear_upsample(small, h, block, axis=0)
    return _linear_upsample(rows, w, block, axis=1)


def _linear_upsample(small: np.ndarray, n_out: int, block: int, axis: int) -> np.ndarray:
    n_in = small.shape[axis]
    pos = np.clip((np.arange(n_out) + 0.5) / block - 0.5, 0.0, n_in - 1)
    i0 = np.floor(pos).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    frac = pos - i0
    shape = [1, 1]
    shape[axis] = n_out
    frac = frac.reshape(shape)
    return np.take(small, i0, axis=axis) * (1.0 - frac) + np.take(small, i1, axis=axis) * frac


def scatter_field(primary, *, spr, pixel_mm: float, kernel_fwhm_mm: float = DEFAULT_KERNEL_FWHM_MM,
                  mask=None) -> np.ndarray:
    """The scatter signal ``S`` alone (float64, same shape as ``primary``); see the module docs."""
    p = np.asarray(primary, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"primary must be a 2-D image, got shape {p.shape}")
    if not (pixel_mm > 0 and kernel_fwhm_mm > 0):
        raise ValueError(f"pixel_mm={pixel_mm!r} and kernel_fwhm_mm={kernel_fwhm_mm!r} must be > 0")
    spr_arr = np.asarray(spr, dtype=np.float64)
    if spr_arr.size and not np.all(spr_arr >= 0):
        raise ValueError("spr must be >= 0")
    if mask is None:
        m = np.ones(p.shape)
    else:
        m = np.asarray(mask)
        if m.shape != p.shape:
            raise ValueError(f"mask shape {m.shape} differs from primary shape {p.shape}")
        m = (m != 0).astype(np.float64)
    sigma_px = kernel_fwhm_mm / _FWHM_PER_SIGMA / pixel_mm
    num = _blur(p * m, sigma_px)
    den = _blur(m, sigma_px)
    inside = m > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        local = np.where(inside, num / np.where(den > 1e-12, den, 1.0), num)
    return spr_arr * local


def add_scatter(primary, *, spr, pixel_mm: float, kernel_fwhm_mm: float = DEFAULT_KERNEL_FWHM_MM,
                mask=None) -> np.ndarray:
    """Primary plus modelled scatter: ``primary + spr x blur(primary)`` (new float64 array).

    Parameters
    ----------
    primary : ndarray, 2-D
        Expected primary signal (any positive unit, e.g. keV from
        :meth:`SignalModel.moments`).  Not modified.
    spr : float or ndarray
        Scatter-to-primary ratio inside the breast (scalar or broadcastable map).
    pixel_mm : float
        Pixel pitch in mm.
    kernel_fwhm_mm : float, optional
        FWHM of the Gaussian scatter kernel (default 50 mm).
    mask : ndarray of bool, optional
        Breast mask; scatter originates only inside it (default: whole image).

    Examples
    --------
    >>> import numpy as np
    >>> out = add_scatter(np.full((64, 64), 100.0), spr=0.3, pixel_mm=1.0)
    >>> bool(np.allclose(out, 130.0))
    True
    """
    p = np.asarray(primary, dtype=np.float64)
    return p + scatter_field(p, spr=spr, pixel_mm=pixel_mm, kernel_fwhm_mm=kernel_fwhm_mm, mask=mask)
