"""X-ray physics of cemrecon: spectra, materials, detector, forward model, weights.

A leaf library (imports nothing from the rest of cemrecon but :mod:`cemrecon.errors`).
Names are imported lazily so ``import cemrecon.physics`` is cheap; spekpy, xraylib and
numba are loaded on first use, spectra are computed on first use and cached.

Public API::

    Beam, Spectrum, spectrum                          (spectra.py)
    mu_linear_cm, mass_atten_cm2_g, MATERIALS         (materials.py)
    absorbed_energy_keV                               (detector.py)
    SignalModel, sample_signal                        (signal.py)
    predicted_weight, iodine_sensitivity, slab_paths  (weights.py)
    le_beam_for_thickness, he_beam_for_thickness,
    aec_mas, mean_glandular_dose_mGy                  (acquisition.py)
    add_scatter                                       (scatter.py)
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Beam": "spectra",
    "Spectrum": "spectra",
    "spectrum": "spectra",
    "is_high_energy": "spectra",
    "Material": "materials",
    "MATERIALS": "materials",
    "get_material": "materials",
    "mu_linear_cm": "materials",
    "mass_atten_cm2_g": "materials",
    "mass_energy_absorption_cm2_g": "materials",
    "absorbed_energy_keV": "detector",
    "absorption_efficiency": "detector",
    "SignalModel": "signal",
    "sample_signal": "signal",
    "PATH_MATERIALS": "signal",
    "predicted_weight": "weights",
    "iodine_sensitivity": "weights",
    "slab_paths": "weights",
    "slab_derivatives": "weights",
    "le_beam_for_thickness": "acquisition",
    "he_beam_for_thickness": "acquisition",
    "aec_mas": "acquisition",
    "mean_glandular_dose_mGy": "acquisition",
    "incident_air_kerma_uGy_per_mAs": "acquisition",
    "default_target_mgd_mGy": "acquisition",
    "add_scatter": "scatter",
    "scatter_field": "scatter",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'cemrecon.physics' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"cemrecon.physics.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
