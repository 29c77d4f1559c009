"""Rendering of path maps into detector data (DN) with the physics forward model.

Per pixel: material path lengths -> :meth:`cemrecon.physics.SignalModel.moments` (mean
absorbed energy and its second moment, polyenergetic Beer-Lambert over the whole
spectrum) -> optional scatter -> quantum noise (:func:`cemrecon.physics.sample_signal`,
compound Poisson) -> ``DN = dark_offset + gain * signal`` + electronic Gaussian noise ->
rounded, clipped to 14 bits, ``uint16``.

Detector constants (assumptions, named here):

* ``DARK_OFFSET_DN`` = 50 DN: a positive offset so that electronic noise around zero signal
  is not clipped (real raw images carry one; its value is ours).
* ``ELECTRONIC_NOISE_DN`` = 1.5 DN (sigma): "a few DN" of read noise; with the gain below one
  LE photon is ~0.05 DN, so this is ~30 photons equivalent, the order of an a-Si panel's.
* Gain: one value per view for LE and HE (one detector), chosen so that the brighter of the
  two unattenuated (direct exposure) fields sits at ``OPEN_FIELD_FRACTION`` = 90 % of the
  14-bit range: near but below saturation, as a real detector is calibrated.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "DARK_OFFSET_DN",
    "ELECTRONIC_NOISE_DN",
    "OPEN_FIELD_FRACTION",
    "MAX_DN",
    "expected_moments",
    "expected_moments_multi",
    "choose_gain",
    "readout",
    "to_cm_paths",
]

DARK_OFFSET_DN = 50.0
ELECTRONIC_NOISE_DN = 1.5
OPEN_FIELD_FRACTION = 0.90
MAX_DN = (1 << 14) - 1


def to_cm_paths(paths_mm: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Convert a ``{material: mm}`` mapping (``iodine`` stays mg/cm^2) to the physics unit (cm)."""
    return {name: (np.asarray(v) if name == "iodine" else np.asarray(v) / 10.0) for name, v in paths_mm.items()}


def expected_moments(model, paths_mm: Mapping[str, np.ndarray], mas: float, *,
                     mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean (keV) and second moment (keV^2) of every pixel for one beam.

    ``paths_mm`` maps material names to path lengths in **mm** (``"iodine"``: mg/cm^2); they
    are converted to the physics unit (cm) here.  Only pixels in ``mask`` (default: where some
    path is non-zero) go through the spectral integral; the others get the open-field value
    (exact: all their paths are zero).  Materials whose map is zero everywhere are left out
    (exact as well).
    """
    return expected_moments_multi([(model, mas)], paths_mm, mask=mask)[0]


def expected_moments_multi(exposures, paths_mm: Mapping[str, np.ndarray], *,
                           mask: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`expected_moments` for several ``(model, mas)`` exposures of the same object
    (the path maps are gathered once)."""
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in paths_mm.items()}
    shape = np.broadcast_shapes(*(a.shape for a in arrays.values()))
    arrays = {k: v for k, v in arrays.items() if v.size and v.max() > 0}
    if arrays and mask is None:
        mask = np.zeros(shape, dtype=bool)
        for arr in arrays.values():
            mask |= np.broadcast_to(arr > 0, shape)
    idx = np.flatnonzero(mask) if arrays else np.zeros(0, dtype=np.int64)
    flat = {}
    for k, v in arrays.items():
        vals = np.broadcast_to(v, shape).reshape(-1)[idx]
        flat[k] = vals if k == "iodine" else vals * 0.1  # mm -> cm
    out = []
    for model, mas in exposures:
        open_mean, open_second = model.moments({}, mas)
        mean = np.full(shape, float(open_mean))
        second = np.full(shape, float(open_second))
        if idx.size:
            m, s2 = model.moments(flat, mas)
            mean.reshape(-1)[idx] = m
            second.reshape(-1)[idx] = s2
        out.append((mean, second))
    return out


def choose_gain(open_mean_keV: float, *, dark_offset_dn: float = DARK_OFFSET_DN) -> float:
    """Gain (DN per keV) putting ``open_mean_keV`` at ``OPEN_FIELD_FRACTION`` of full scale."""
    if not open_mean_keV > 0:
        raise ValueError(f"open-field signal must be > 0 keV, got {open_mean_keV!r}")
    return (OPEN_FIELD_FRACTION * MAX_DN - dark_offset_dn) / float(open_mean_keV)


def readout(mean_keV: np.ndarray, second_keV2: np.ndarray, *, gain_dn_per_keV: float,
            dark_offset_dn: float = DARK_OFFSET_DN, noise: bool = True,
            electronic_noise_dn: float = ELECTRONIC_NOISE_DN,
            rng: np.random.Generator | None = None, exact_mask: np.ndarray | None = None) -> np.ndarray:
    """Detector read-out of an expected signal.

    With ``noise=False`` returns the float64 expected DN ``offset + gain * mean`` (no
    quantisation or clipping).  Otherwise draws compound-Poisson quantum noise
    (:func:`cemrecon.physics.sample_signal`; outside ``exact_mask``, if given, a Gaussian of the
    same mean and variance) and Gaussian electronic noise, rounds and clips to 0..16383 and
    returns ``uint16``.
    """
    if not noise:
        return dark_offset_dn + gain_dn_per_keV * np.asarray(mean_keV, dtype=np.float64)
    from cemrecon.physics import sample_signal

    if rng is None:
        raise ValueError("readout(noise=True) needs rng")
    mean = np.asarray(mean_keV, dtype=np.float64)
    second = np.asarray(second_keV2, dtype=np.float64)
    if exact_mask is None:
        signal = sample_signal(mean, second, rng)
    else:
        # compound Poisson (physics.sample_signal) where it matters; the direct-exposure field
        # (>= 4e4 equivalent quanta per 0.1 mm pixel, skewness < 0.5 %) gets the Gaussian with the
        # same mean and variance, three times cheaper to draw
        signal = mean + np.sqrt(second) * rng.standard_normal(mean.shape)
        idx = np.flatnonzero(exact_mask)
        signal.reshape(-1)[idx] = sample_signal(mean.reshape(-1)[idx], second.reshape(-1)[idx], rng)
    dn = signal
    dn *= gain_dn_per_keV
    dn += dark_offset_dn
    if electronic_noise_dn > 0:
        dn += rng.normal(0.0, electronic_noise_dn, size=dn.shape)
    np.rint(dn, out=dn)
    np.clip(dn, 0, MAX_DN, out=dn)
    return dn.astype(np.uint16)
