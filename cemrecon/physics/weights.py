"""Tissue-cancelling weight and iodine sensitivity predicted from the spectral model.

Slab model (stated): a compressed breast of total thickness T is 1.5 mm of skin on
each side (physics.md) around an interior of thickness ``T - 3 mm`` that is a
mixture, by volume, of glandular fraction g and adipose fraction 1 - g.  The signal
is the full polyenergetic, energy-integrated detector signal of
:class:`~cemrecon.physics.signal.SignalModel` (paddle and cover included).

With ``S`` the expected signal and ``<x> = sum_E w(E) x(E) / sum_E w(E)`` the average
over the *detected* spectrum ``w(E) = N(E) T(E) e(E)`` of the slab:

    d ln S / d g = -L <mu_g - mu_a>          (L = interior length in cm)
    d ln S / d I = -<mu_I/rho> x 1e-3        (I in mg/cm^2)

These are exact derivatives of the model (the tests check them against central
differences).  The weight that cancels glandular/adipose texture in
``RC = ln S_HE - w ln S_LE`` is

    w = (d ln S_HE / d g) / (d ln S_LE / d g) = <mu_g - mu_a>_HE / <mu_g - mu_a>_LE

and the iodine sensitivity of RC is ``d RC / d I = -<mu_I>_HE + w <mu_I>_LE``.
"""

from __future__ import annotations

import functools
import math

from cemrecon.errors import PhysicsError
from cemrecon.physics import _constants as C
from cemrecon.physics.signal import IODINE, SignalModel
from cemrecon.physics.spectra import Beam

__all__ = ["predicted_weight", "iodine_sensitivity", "slab_paths", "slab_derivatives"]


@functools.lru_cache(maxsize=256)
def _model(beam: Beam, paddle_pmma_mm: float, cover_mm: float) -> SignalModel:
    if not isinstance(beam, Beam):
        raise TypeError(f"beam must be a cemrecon.physics.Beam, got {type(beam).__name__}")
    return SignalModel(beam, paddle_pmma_mm=paddle_pmma_mm, cover_mm=cover_mm)


def slab_paths(
    thickness_mm: float, glandularity: float = 0.5, *, skin_mm: float = C.SKIN_MM, iodine_mg_cm2: float = 0.0
) -> dict[str, float]:
    """Path lengths (cm; iodine mg/cm^2) through a uniform breast slab.

    Raises
    ------
    PhysicsError
        ``thickness_mm`` not above twice the skin or above 200 mm, ``glandularity``
        outside [0, 1], negative ``skin_mm`` or ``iodine_mg_cm2``.
    """
    t = float(thickness_mm)
    if not (math.isfinite(t) and 2 * skin_mm < t <= 200.0):
        raise PhysicsError(f"thickness_mm={thickness_mm!r} must be in ({2 * skin_mm:g}, 200] mm")
    g = float(glandularity)
    if not 0.0 <= g <= 1.0:
        raise PhysicsError(f"glandularity={glandularity!r} must be in [0, 1]")
    if not (skin_mm >= 0 and iodine_mg_cm2 >= 0):
        raise PhysicsError(f"skin_mm={skin_mm!r} and iodine_mg_cm2={iodine_mg_cm2!r} must be >= 0")
    interior_cm = (t - 2 * skin_mm) / 10.0
    return {
        "skin": 2 * skin_mm / 10.0,
        "adipose": (1 - g) * interior_cm,
        "glandular": g * interior_cm,
        IODINE: float(iodine_mg_cm2),
    }


def slab_derivatives(
    beam: Beam,
    thickness_mm: float,
    glandularity: float = 0.5,
    *,
    paddle_pmma_mm: float = C.PADDLE_PMMA_MM,
    cover_mm: float = C.DETECTOR_COVER_MM,
    skin_mm: float = C.SKIN_MM,
    iodine_mg_cm2: float = 0.0,
) -> dict[str, float]:
    """ln S and its exact derivatives for a uniform slab under one beam.

    Returns
    -------
    dict
        ``ln_signal`` (ln keV per pixel per mAs at 0.1 mm pixels), ``d_glandularity``
        (d ln S / d g), ``d_iodine`` (d ln S / d mg cm^-2), ``d_thickness_mm``
        (d ln S / d T at fixed g, interior grows).
    """
    model = _model(beam, float(paddle_pmma_mm), float(cover_mm))
    paths = slab_paths(thickness_mm, glandularity, skin_mm=skin_mm, iodine_mg_cm2=iodine_mg_cm2)
    interior_cm = paths["adipose"] + paths["glandular"]
    g = float(glandularity)
    mu_g = model.slab_mean_attenuation(paths, "glandular")
    mu_a = model.slab_mean_attenuation(paths, "adipose")
    return {
        "ln_signal": model.slab_log_signal(paths),
        "d_glandularity": -interior_cm * (mu_g - mu_a),
        "d_iodine": -model.slab_mean_attenuation(paths, IODINE),
        "d_thickness_mm": -(g * mu_g + (1 - g) * mu_a) / 10.0,
    }


def predicted_weight(
    le_beam: Beam,
    he_beam: Beam,
    thickness_mm: float,
    glandularity: float = 0.5,
    *,
    paddle_pmma_mm: float = C.PADDLE_PMMA_MM,
    cover_mm: float = C.DETECTOR_COVER_MM,
    skin_mm: float = C.SKIN_MM,
) -> float:
    """Tissue-cancelling weight w = (d ln S_HE/d g) / (d ln S_LE/d g) for a slab.

    Parameters
    ----------
    le_beam, he_beam : Beam
    thickness_mm : float
        Compressed thickness, skin included.
    glandularity : float, optional
        Volume glandular fraction of the interior at which the derivative is taken.
    paddle_pmma_mm, cover_mm, skin_mm : float, optional
        Paddle (2.5 mm PMMA), carbon-fibre detector cover (1 mm) and skin per side
        (1.5 mm).

    Examples
    --------
    >>> w = predicted_weight(Beam("Rh", "Rh", 0.025, 31), Beam("Rh", "Cu", 0.3, 49), 50.0)
    >>> 0.23 < w < 0.26
    True
    """
    kw = dict(paddle_pmma_mm=paddle_pmma_mm, cover_mm=cover_mm, skin_mm=skin_mm)
    d_le = slab_derivatives(le_beam, thickness_mm, glandularity, **kw)["d_glandularity"]
    d_he = slab_derivatives(he_beam, thickness_mm, glandularity, **kw)["d_glandularity"]
    return float(d_he / d_le)


def iodine_sensitivity(
    le_beam: Beam,
    he_beam: Beam,
    thickness_mm: float,
    weight: float,
    glandularity: float = 0.5,
    *,
    paddle_pmma_mm: float = C.PADDLE_PMMA_MM,
    cover_mm: float = C.DETECTOR_COVER_MM,
    skin_mm: float = C.SKIN_MM,
) -> float:
    """d RC / d (mg I/cm^2) for ``RC = ln S_HE - weight ln S_LE`` (negative, ~ -0.016).

    Evaluated at zero iodine on the slab of :func:`predicted_weight`.
    """
    w = float(weight)
    if not math.isfinite(w):
        raise PhysicsError(f"weight={weight!r} must be finite")
    kw = dict(paddle_pmma_mm=paddle_pmma_mm, cover_mm=cover_mm, skin_mm=skin_mm)
    d_le = slab_derivatives(le_beam, thickness_mm, glandularity, **kw)["d_iodine"]
    d_he = slab_derivatives(he_beam, thickness_mm, glandularity, **kw)["d_iodine"]
    return float(d_he - w * d_le)
