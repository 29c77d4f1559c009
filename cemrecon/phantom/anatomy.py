"""Breast anatomy of the CEM phantom: outline, compressed thickness, skin, pectoral muscle
and fibroglandular texture.

Everything here is geometry in millimetres; no spectra.  The result of :func:`make_anatomy`
is a set of per-pixel maps in the *display frame* of the view (the frame the DICOM pixels
are stored in):

* right breast: chest wall at the right image edge (last column), nipple pointing left;
* left breast: chest wall at the left image edge (column 0), nipple pointing right;
* CC: lateral side up; MLO: axilla (pectoral muscle) at the top.

That is the usual hanging convention and it is what DICOM Patient Orientation ``P\\L``
(R CC), ``A\\R`` (L CC), ``P\\FL`` (R MLO), ``A\\FR`` (L MLO) describes.

Anatomical model (sources: ``physics.md`` sections 6-7)
-------------------------------------------------------
* Outline: a half ellipse against the chest wall (depth ``a`` from the chest wall to the
  nipple, half-width ``b`` along the chest wall) with a small low-order harmonic ripple.
  On MLO the ellipse is longer and runs off the top of the detector (axillary tail); the
  pectoral muscle is a triangle in the upper chest-wall corner.
* Thickness: the compressed thickness ``T`` in the flat part, rolling off over the last
  ``R`` mm of the outline (``R`` = 0.3 T clipped to 10-20 mm) with an elliptical edge
  profile ``t(d) = T sqrt(1 - (1 - d/R)^2)``, ``d`` the distance from the skin line.
* Skin: 1.5 mm top, bottom and around the edge (an inner ellipse profile offset by 1.5 mm).
* Glandular fraction: power-law (1/f^beta, beta = 3, Burgess 2001) noise plus a smooth
  envelope concentrating fibroglandular tissue (FGT) behind the nipple, pushed through a
  smooth step and scaled so that the thickness-weighted mean equals the requested
  volumetric density (Yaffe 2009: mean 19 %, 95 % of women below 45 %).

Random fields are generated on a fixed 0.2 mm grid covering the detector and resampled to
the pixel grid, so one seed gives the same breast in millimetres at every ``scale``.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

logger = logging.getLogger(__name__)

__all__ = [
    "Anatomy",
    "BreastShape",
    "make_anatomy",
    "draw_breast_shape",
    "detector_shape",
    "resample_field",
    "FULL_ROWS",
    "FULL_COLUMNS",
    "FULL_PIXEL_MM",
    "SKIN_MM",
    "FGT_MASK_THRESHOLD",
]

#: Full-scale matrix of the phantom detector: 2850 rows x 2394 columns of 0.1 mm
#: (a 24 x 28.5 cm field).  GE Essential / Pristina use a 2394-column CsI panel; the row
#: count of Pristina images is unconfirmed (2850 or 3062, reference/dicom.md section 3),
#: we take 2850 as the issue asks.
FULL_ROWS = 2850
FULL_COLUMNS = 2394
#: Detector pixel pitch at full scale in mm (GE a-Si/CsI panel, 100 um).
FULL_PIXEL_MM = 0.1
#: Skin thickness per side in mm (physics.md section 6, Huang Med Phys 2008).
SKIN_MM = 1.5
#: Power-law exponent of the anatomical noise (Burgess 2001, beta ~ 3).
TEXTURE_BETA = 3.0
#: Grid pitch (mm) on which random fields are generated before resampling to pixels.
FIELD_GRID_MM = 0.2
#: A pixel belongs to the fibroglandular-tissue mask when at least this fraction of its
#: breast-tissue path (skin excluded) is glandular.  BPE extent is the enhancing share of
#: this mask.
FGT_MASK_THRESHOLD = 0.25
#: Thickness distribution of compressed breasts (Yaffe et al. Med Phys 2009: 5.9 +- 1.6 cm)
#: clipped to the 20-90 mm range of the issue.
THICKNESS_MEAN_MM = 59.0
THICKNESS_SD_MM = 16.0
THICKNESS_RANGE_MM = (20.0, 90.0)
#: Volumetric glandularity: log-normal with median 0.155 and sigma 0.6 gives mean 0.19 and
#: a 95th percentile of 0.42 (Yaffe 2009: mean 19.3 %, 95 % below 45 %).
GLANDULARITY_MEDIAN = 0.155
GLANDULARITY_LOG_SD = 0.6
GLANDULARITY_RANGE = (0.02, 0.85)


def detector_shape(scale: float) -> tuple[tuple[int, int], float]:
    """Return ``((rows, columns), pixel_mm)`` of the phantom detector at ``scale``.

    ``scale`` shrinks the pixel grid; the field of view in millimetres stays the same.
    """
    if not np.isfinite(scale) or not 0.01 <= scale <= 1.0:
        raise ValueError(f"scale must be in [0.01, 1.0], got {scale!r}")
    rows = max(8, int(round(FULL_ROWS * scale)))
    cols = max(8, int(round(FULL_COLUMNS * scale)))
    pixel_mm = FULL_PIXEL_MM / scale
    return (rows, cols), pixel_mm


# ----------------------------------------------------------------------------- fields
def _interp_matrix(n_dst: int, dst_pitch: float, n_src: int, src_pitch: float,
                   start: int = 0) -> sp.csr_matrix:
    """Sparse linear-interpolation matrix from a source grid to destination samples
    ``start .. start + n_dst - 1``.

    Both grids start at 0 mm; sample ``i`` sits at the centre ``(i + 0.5) * pitch``.
    """
    pos = ((np.arange(start, start + n_dst) + 0.5) * dst_pitch) / src_pitch - 0.5
    pos = np.clip(pos, 0.0, n_src - 1.0)
    i0 = np.floor(pos).astype(np.int64)
    i0 = np.minimum(i0, n_src - 2) if n_src > 1 else np.zeros_like(i0)
    w1 = pos - i0
    rows = np.repeat(np.arange(n_dst), 2)
    cols = np.stack([i0, np.minimum(i0 + 1, n_src - 1)], axis=1).ravel()
    vals = np.stack([1.0 - w1, w1], axis=1).ravel()
    return sp.csr_matrix((vals, (rows, cols)), shape=(n_dst, n_src))


def resample_field(src: np.ndarray, src_pitch_mm, dst_shape: tuple[int, int],
                   dst_pitch_mm: float, *, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Bilinear resampling of a field between two pixel grids sharing their origin (in mm).

    ``src_pitch_mm`` is a float or a (rows, columns) pair.  The result covers destination
    pixels ``origin .. origin + dst_shape`` (a window of a larger grid)."""
    py, px = (src_pitch_mm, src_pitch_mm) if np.ndim(src_pitch_mm) == 0 else src_pitch_mm
    wy = _interp_matrix(dst_shape[0], dst_pitch_mm, src.shape[0], py, origin[0])
    wx = _interp_matrix(dst_shape[1], dst_pitch_mm, src.shape[1], px, origin[1])
    tmp = wy @ src  # (ny_dst, nx_src)
    return np.ascontiguousarray((wx @ tmp.T).T)


def _frequency_axes(n_rows: int, n_cols: int, sub_rows: int, sub_cols: int):
    """Signed row-frequency indices and column indices (of a ``n_rows x n_cols`` rfft grid)
    kept by a ``sub_rows x sub_cols`` grid covering the same extent."""
    iy = np.concatenate([np.arange(0, sub_rows // 2 + 1), np.arange(-(sub_rows - sub_rows // 2 - 1), 0)])
    ix = np.arange(0, sub_cols // 2 + 1)
    return iy, ix


def _amplitude(iy, ix, n_rows, n_cols, grid_mm, beta, smooth_mm, f_min_rel):
    fy = iy[:, None] / (n_rows * grid_mm)  # cycles per mm
    fx = ix[None, :] / (n_cols * grid_mm)
    f_phys = np.sqrt(fy**2 + fx**2)
    f = np.maximum(f_phys * max(n_rows, n_cols) * grid_mm, f_min_rel)
    amp = f ** (-beta / 2.0)
    if smooth_mm > 0:  # Gaussian low-pass of sigma smooth_mm
        amp = amp * np.exp(-2.0 * np.pi**2 * smooth_mm**2 * f_phys**2)
    amp[(iy == 0)[:, None] & (ix == 0)[None, :]] = 0.0
    return amp


@functools.lru_cache(maxsize=32)
def _field_std(n_rows, n_cols, grid_mm, beta, smooth_mm, f_min_rel) -> float:
    """Expected standard deviation of the un-normalised field of :func:`noise_on_grid`."""
    iy = np.fft.fftfreq(n_rows, 1.0 / n_rows).astype(np.int64)
    ix = np.arange(n_cols // 2 + 1)
    amp = _amplitude(iy, ix, n_rows, n_cols, grid_mm, beta, smooth_mm, f_min_rel)
    w = np.full(ix.shape, 4.0)  # a coefficient and its Hermitian twin: variance 4 amp^2
    w[0] = 1.0
    if n_cols % 2 == 0:
        w[-1] = 1.0
    return float(np.sqrt(np.sum(amp**2 * w[None, :])))


def noise_on_grid(shape: tuple[int, int], pixel_mm: float, *, rng: np.random.Generator,
                  beta: float = TEXTURE_BETA, smooth_mm: float = 0.0,
                  grid_mm: float = FIELD_GRID_MM, f_min_rel: float = 2.0,
                  window: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Power-law (1/f^beta) Gaussian noise on the pixel grid, the same field in mm at every scale.

    The Fourier coefficients are drawn for a fixed ``grid_mm`` grid covering the full detector;
    a coarse pixel grid keeps only the frequencies it can represent (so the inverse FFT runs at
    about the pixel resolution, not at ``grid_mm``) and the field is resampled bilinearly to
    the pixels.  Normalised by the *expected* standard deviation of the full field (zero mean,
    about unit variance), so values agree between scales.  ``smooth_mm`` > 0 applies a Gaussian
    low-pass of that sigma.  ``window=(r0, r1, c0, c1)`` returns only those pixels.
    """
    n_rows = int(np.ceil(FULL_ROWS * FULL_PIXEL_MM / grid_mm)) + 1
    n_cols = int(np.ceil(FULL_COLUMNS * FULL_PIXEL_MM / grid_mm)) + 1
    z = rng.standard_normal((2, n_rows, n_cols // 2 + 1), dtype=np.float32)
    k = max(1, int(np.floor(pixel_mm / grid_mm)))
    sub_rows, sub_cols = -(-n_rows // k), -(-n_cols // k)
    iy, ix = _frequency_axes(n_rows, n_cols, sub_rows, sub_cols)
    amp = _amplitude(iy, ix, n_rows, n_cols, grid_mm, beta, smooth_mm, f_min_rel)
    rows_idx = np.mod(iy, n_rows)
    spec = amp * (z[0][rows_idx][:, ix] + 1j * z[1][rows_idx][:, ix])
    field = np.fft.irfft2(spec, s=(sub_rows, sub_cols)) * (sub_rows * sub_cols)
    field /= _field_std(n_rows, n_cols, grid_mm, beta, smooth_mm, f_min_rel)
    pitch = (n_rows * grid_mm / sub_rows, n_cols * grid_mm / sub_cols)
    if window is None:
        return resample_field(field, pitch, shape, pixel_mm)
    r0, r1, c0, c1 = window
    return resample_field(field, pitch, (r1 - r0, c1 - c0), pixel_mm, origin=(r0, c0))


# ----------------------------------------------------------------------------- shape
@dataclass(frozen=True)
class BreastShape:
    """Size and composition of one breast (shared by its CC and MLO views).

    Attributes
    ----------
    depth_mm : float
        Chest wall to nipple distance on the CC view.
    half_width_mm : float
        Half-width of the breast along the chest wall on the CC view.
    thickness_cc_mm, thickness_mlo_mm : float
        Compressed thickness of the two views.
    glandularity : float
        Volumetric glandular fraction (thickness-weighted mean of the glandular-fraction map).
    ripple : tuple of float
        Relative amplitudes/phases of the outline harmonics.
    """

    depth_mm: float
    half_width_mm: float
    thickness_cc_mm: float
    thickness_mlo_mm: float
    glandularity: float
    ripple: tuple[float, ...] = ()
    pectoral_width_rel: float = 0.4
    pectoral_height_rel: float = 0.55

    def thickness_for(self, view: str) -> float:
        return self.thickness_mlo_mm if view == "MLO" else self.thickness_cc_mm


def draw_breast_shape(rng: np.random.Generator, *, thickness_mm: float | None = None,
                      glandularity: float | None = None) -> BreastShape:
    """Draw a breast from the population model (thickness, glandularity, size)."""
    if thickness_mm is None:
        t_cc = float(np.clip(rng.normal(THICKNESS_MEAN_MM, THICKNESS_SD_MM), *THICKNESS_RANGE_MM))
        t_mlo = float(np.clip(t_cc * rng.uniform(1.0, 1.08), *THICKNESS_RANGE_MM))
    else:
        t = float(thickness_mm)
        if not THICKNESS_RANGE_MM[0] <= t <= THICKNESS_RANGE_MM[1]:
            raise ValueError(f"thickness_mm must be within {THICKNESS_RANGE_MM} mm, got {thickness_mm!r}")
        t_cc = t_mlo = t
        rng.uniform()  # keep the random stream aligned with the default path
    if glandularity is None:
        g = float(np.clip(GLANDULARITY_MEDIAN * np.exp(GLANDULARITY_LOG_SD * rng.standard_normal()),
                          *GLANDULARITY_RANGE))
    else:
        g = float(glandularity)
        if not 0.0 <= g <= 1.0:
            raise ValueError(f"glandularity must be within [0, 1], got {glandularity!r}")
        rng.standard_normal()
    # bigger breasts compress thicker: depth grows ~0.6 mm per mm of thickness
    depth = float(np.clip(rng.normal(105.0, 15.0) + 0.6 * (t_cc - THICKNESS_MEAN_MM), 65.0, 165.0))
    half_width = float(np.clip(rng.normal(92.0, 12.0) + 0.4 * (t_cc - THICKNESS_MEAN_MM), 60.0, 125.0))
    ripple = tuple(float(v) for v in rng.uniform(-1.0, 1.0, size=6))
    return BreastShape(depth_mm=depth, half_width_mm=half_width, thickness_cc_mm=t_cc,
                       thickness_mlo_mm=t_mlo, glandularity=g, ripple=ripple,
                       pectoral_width_rel=float(rng.uniform(0.3, 0.5)),
                       pectoral_height_rel=float(rng.uniform(0.45, 0.62)))


# ----------------------------------------------------------------------------- anatomy
@dataclass
class Anatomy:
    """Per-pixel anatomy of one view (display frame).  Lengths in mm.

    Attributes
    ----------
    thickness_map_mm : ndarray
        Total tissue path (skin + breast tissue + muscle); 0 outside the breast.
    tissue_mm : ndarray
        Breast tissue path (adipose + glandular), excluding skin and muscle.
    skin_mm, muscle_mm : ndarray
        Skin and pectoral-muscle paths.
    glandular_fraction : ndarray
        Glandular share of ``tissue_mm`` (0-1).
    breast_mask, pectoral_mask, fgt_mask : ndarray of bool
    nipple_rc : (float, float)
        Nipple position (row, column) in pixels.
    """

    pixel_mm: float
    laterality: str
    view: str
    thickness_mm: float
    shape: BreastShape
    thickness_map_mm: np.ndarray
    tissue_mm: np.ndarray
    skin_mm: np.ndarray
    muscle_mm: np.ndarray
    glandular_fraction: np.ndarray
    breast_mask: np.ndarray
    pectoral_mask: np.ndarray
    fgt_mask: np.ndarray
    edge_distance_mm: np.ndarray
    nipple_rc: tuple[float, float]
    rolloff_mm: float
    geometry: dict = field(default_factory=dict)
    #: (row0, row1, col0, col1): bounding box of the breast (all maps are zero/False outside)
    window: tuple = (0, 0, 0, 0)

    @property
    def image_shape(self) -> tuple[int, int]:
        return self.thickness_map_mm.shape

    def to_display(self, x_mm: float, y_mm: float) -> tuple[float, float]:
        """Canonical (distance from chest wall, row position) in mm -> (row, col) in pixels."""
        rows, cols = self.image_shape
        col = x_mm / self.pixel_mm - 0.5
        if self.laterality == "R":
            col = cols - 1 - col
        return (y_mm / self.pixel_mm - 0.5, col)

    def to_canonical(self, row: float, col: float) -> tuple[float, float]:
        """(row, col) in pixels -> canonical (x_mm from chest wall, y_mm)."""
        rows, cols = self.image_shape
        if self.laterality == "R":
            col = cols - 1 - col
        return ((col + 0.5) * self.pixel_mm, (row + 0.5) * self.pixel_mm)

    def canonical_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Broadcastable (x_mm, y_mm) of every pixel centre in the display frame."""
        rows, cols = self.image_shape
        x = (np.arange(cols) + 0.5) * self.pixel_mm
        if self.laterality == "R":
            x = x[::-1]
        y = (np.arange(rows) + 0.5) * self.pixel_mm
        return x[None, :], y[:, None]


def _edge_profile(d_mm: np.ndarray, total_mm: float, rolloff_mm: float) -> np.ndarray:
    """Chord of an elliptical edge: ``total * sqrt(1 - (1 - d/R)^2)`` for 0 < d < R."""
    u = np.clip(d_mm / rolloff_mm, 0.0, 1.0)
    return total_mm * np.sqrt(np.clip(1.0 - (1.0 - u) ** 2, 0.0, 1.0))


def _smoothstep_fraction(z: np.ndarray, thr: float, width: float, gmax: float) -> np.ndarray:
    return gmax / (1.0 + np.exp(-(z - thr) / width))


def make_anatomy(shape_params: BreastShape, *, laterality: str, view: str,
                 image_shape: tuple[int, int], pixel_mm: float,
                 rng: np.random.Generator) -> Anatomy:
    """Build the anatomy maps of one view.

    Parameters
    ----------
    shape_params : BreastShape
        The breast (shared by both views of one side).
    laterality : {"R", "L"}
    view : {"CC", "MLO"}
    image_shape : (rows, columns)
    pixel_mm : float
    rng : numpy Generator
        Draws the texture of this view.
    """
    if laterality not in ("R", "L"):
        raise ValueError(f"laterality must be 'R' or 'L', got {laterality!r}")
    if view not in ("CC", "MLO"):
        raise ValueError(f"view must be 'CC' or 'MLO', got {view!r}")
    rows, cols = image_shape
    height_mm = rows * pixel_mm
    width_mm = cols * pixel_mm
    T = shape_params.thickness_for(view)
    s = SKIN_MM
    rolloff = float(np.clip(0.3 * T, 10.0, 20.0))

    if view == "CC":
        a = shape_params.depth_mm
        b = shape_params.half_width_mm
        yc = 0.5 * height_mm
    else:
        # MLO: longer, running off the top of the detector (axillary tail); the inframammary
        # fold stays inside the field
        a = min(shape_params.depth_mm * 1.12, width_mm - 15.0)
        b = max(shape_params.half_width_mm * 1.25, 0.42 * height_mm)
        yc = min(0.40 * height_mm, height_mm - b - 10.0) if b < 0.6 * height_mm else 0.40 * height_mm
    a = min(a, width_mm - 10.0)
    b = min(b, 0.5 * height_mm - 5.0) if view == "CC" else b

    # Smooth geometric fields (distance to the outline, gland envelope, pectoral coordinate)
    # are evaluated on a grid no finer than FIELD_GRID_MM and resampled: they vary slowly,
    # and this keeps a full-size view at a fraction of a second.
    work_mm = max(pixel_mm, FIELD_GRID_MM)
    if work_mm > pixel_mm:
        wshape = (int(np.ceil(height_mm / work_mm)) + 1, int(np.ceil(width_mm / work_mm)) + 1)
    else:
        wshape = (rows, cols)
    # canonical x = distance from the chest wall; the R breast is mirrored (chest wall right)
    x = (np.arange(wshape[1]) + 0.5) * work_mm
    if laterality == "R":
        x = width_mm - x
    y = (np.arange(wshape[0]) + 0.5) * work_mm
    X = x[None, :]
    Y = y[:, None]
    theta = np.arctan2((Y - yc) / b, X / a)
    rip = shape_params.ripple
    pert = 1.0 + 0.025 * (rip[0] * np.cos(2 * theta + 3 * rip[1]) + rip[2] * np.cos(3 * theta + 3 * rip[3])
                          + 0.5 * rip[4] * np.cos(5 * theta + 3 * rip[5]))
    f = np.sqrt((X / a) ** 2 + ((Y - yc) / b) ** 2) / pert
    gy, gx = np.gradient(f, work_mm)
    grad = np.sqrt(gx**2 + gy**2)
    d_w = (1.0 - f) / np.maximum(grad, 1e-9)  # first-order signed distance to the outline (mm)
    ny = yc if view == "CC" else yc + 0.08 * height_mm
    env_w = np.exp(-0.5 * (((X / a - 0.45) / 0.32) ** 2 + (((Y - ny) / b) / 0.45) ** 2))
    env_w = env_w * np.clip(d_w / 12.0, 0.0, 1.0)  # little gland in the subcutaneous fat
    if view == "MLO":
        px = shape_params.pectoral_width_rel * a
        py = shape_params.pectoral_height_rel * height_mm
        q_w = 1.0 - X / px - Y / py  # > 0 inside the pectoral triangle
    else:
        q_w = None
    # Per-pixel maps are computed in the breast's bounding box only (a third to a half of the
    # detector) and embedded in full-size arrays at the end.
    iy = np.flatnonzero((d_w > 0).any(axis=1))
    ix = np.flatnonzero((d_w > 0).any(axis=0))
    if iy.size == 0:
        raise ValueError(f"breast outline outside the detector (depth {a} mm, half-width {b} mm)")
    k = work_mm / pixel_mm
    r0 = int(max(0, np.floor((iy[0] - 1) * k)))
    r1 = int(min(rows, np.ceil((iy[-1] + 2) * k)))
    c0 = int(max(0, np.floor((ix[0] - 1) * k)))
    c1 = int(min(cols, np.ceil((ix[-1] + 2) * k)))
    window = (r0, r1, c0, c1)
    wshape_px = (r1 - r0, c1 - c0)
    if wshape != (rows, cols):
        d = resample_field(d_w, work_mm, wshape_px, pixel_mm, origin=(r0, c0))
        env = resample_field(env_w, work_mm, wshape_px, pixel_mm, origin=(r0, c0))
        q = resample_field(q_w, work_mm, wshape_px, pixel_mm, origin=(r0, c0)) if q_w is not None else None
    else:
        d, env = d_w[r0:r1, c0:c1], env_w[r0:r1, c0:c1]
        q = q_w[r0:r1, c0:c1] if q_w is not None else None
    d = np.where(d > 0.0, d, -1.0)

    thickness = _edge_profile(d, T, rolloff)
    inner = np.where(d > s, _edge_profile(d - s, T - 2 * s, rolloff - s), 0.0)
    inner = np.minimum(inner, np.maximum(thickness - 2 * s, 0.0))
    breast = thickness > 0.0
    skin = thickness - inner

    # pectoral muscle (MLO): triangle in the upper chest-wall corner
    if q is not None:
        pect = (q > 0) & breast
        # muscle share of the tissue path rises from 0 at the pectoral line to 85 %
        frac = 0.85 * np.sqrt(np.clip(q / 0.25, 0.0, 1.0))
        muscle = np.where(pect, frac * inner, 0.0)
        env = env * np.where(pect, 0.2, 1.0)
    else:
        pect = np.zeros(thickness.shape, dtype=bool)
        muscle = np.zeros_like(thickness)
    tissue = inner - muscle

    # fibroglandular texture
    n = noise_on_grid(image_shape, pixel_mm, rng=rng, window=window)
    z = n + 2.2 * (env - 0.5)
    glandular = _fit_glandular(z, tissue, breast, shape_params.glandularity)
    glandular = np.where(breast, glandular, 0.0)
    fgt = breast & (glandular >= FGT_MASK_THRESHOLD) & (tissue > 0)

    def embed(arr, fill=0.0):
        out = np.full(image_shape, fill, dtype=arr.dtype)
        out[r0:r1, c0:c1] = arr
        return out

    thickness, tissue, skin, muscle, glandular = (embed(v) for v in (thickness, tissue, skin, muscle, glandular))
    breast, pect, fgt = embed(breast, False), embed(pect, False), embed(fgt, False)
    d = embed(d, -1.0)

    anat = Anatomy(pixel_mm=pixel_mm, laterality=laterality, view=view, thickness_mm=T, shape=shape_params,
                   thickness_map_mm=thickness, tissue_mm=tissue, skin_mm=skin, muscle_mm=muscle,
                   glandular_fraction=glandular, breast_mask=breast, pectoral_mask=pect, fgt_mask=fgt,
                   edge_distance_mm=d,
                   nipple_rc=(0.0, 0.0), rolloff_mm=rolloff,
                   geometry={"depth_mm": a, "half_width_mm": b, "center_y_mm": yc,
                             "pectoral_x_mm": px if view == "MLO" else 0.0,
                             "pectoral_y_mm": py if view == "MLO" else 0.0},
                   window=window)
    # nipple: the breast pixel farthest from the chest wall on the row of the outline's axis
    nip_row = int(np.clip(round(yc / pixel_mm - 0.5), 0, rows - 1))
    nip_cols = np.flatnonzero(breast[nip_row])
    if nip_cols.size:
        anat.nipple_rc = (float(nip_row), float(nip_cols.min() if laterality == "R" else nip_cols.max()))
    else:
        anat.nipple_rc = anat.to_display(a - 0.5 * pixel_mm, yc)
    return anat


def _fit_glandular(z: np.ndarray, tissue_mm: np.ndarray, breast: np.ndarray, target: float) -> np.ndarray:
    """Glandular fraction ``gmax * sigmoid((z - thr)/w)`` with ``thr`` set so the
    tissue-weighted mean over the breast equals ``target``."""
    width = 0.35
    gmax = 0.9 if target <= 0.6 else 1.0
    if target <= 0.0:
        return np.zeros_like(z)
    if target >= gmax:
        return np.full_like(z, min(target, 1.0))
    wts = np.where(breast, tissue_mm, 0.0)
    # bisection on a subsample for speed, then exact on the full map
    step = max(1, int(np.sqrt(z.size / 60_000)))
    zs, ws = z[::step, ::step], wts[::step, ::step]
    wsum = ws.sum()
    if wsum <= 0:
        return np.zeros_like(z)

    def mean_for(thr: float, zz=zs, ww=ws, tot=wsum) -> float:
        return float((_smoothstep_fraction(zz, thr, width, gmax) * ww).sum() / tot)

    lo, hi = -12.0, 12.0
    for _ in range(32):  # interval 24 / 2^32: the threshold to ~6e-9
        mid = 0.5 * (lo + hi)
        if mean_for(mid) > target:
            lo = mid
        else:
            hi = mid
    return _smoothstep_fraction(z, 0.5 * (lo + hi), width, gmax)
