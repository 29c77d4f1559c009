"""cemrecon: contrast-enhanced mammography recombination and quantification.

The public API is small and lazily imported, so ``import cemrecon`` stays cheap
(numba kernels compile on first use, spectra are computed on first use)::

    from cemrecon import recombine, read_exams, iodine_map

Data flows one way: files -> :mod:`cemrecon.io` -> :mod:`cemrecon.recombination`
-> :mod:`cemrecon.quantify` -> :mod:`cemrecon.report` / :mod:`cemrecon.io.write`.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0.dev0"

# public name -> module that defines it
_LAZY = {
    "recombine": "cemrecon.recombination",
    "recombine_pair": "cemrecon.recombination",
    "RecombineResult": "cemrecon.recombination",
    "read_exams": "cemrecon.io.read",
    "ReadResult": "cemrecon.io.read",
    "Pair": "cemrecon.io.pair",
    "SourceImage": "cemrecon.io.read",
    "AcquisitionMeta": "cemrecon.io.read",
    "iodine_map": "cemrecon.iodine",
    "iodine_map_pair": "cemrecon.iodine",
    "Calibration": "cemrecon.calibrate",
    "fit_calibration": "cemrecon.calibrate",
    "analyze": "cemrecon.quantify",
    "run_batch": "cemrecon.pipeline.batch",
    "Laterality": "cemrecon.io.enums",
    "View": "cemrecon.io.enums",
    "Energy": "cemrecon.io.enums",
    "FileRole": "cemrecon.io.enums",
    "Strictness": "cemrecon.io.enums",
    "CemreconError": "cemrecon.errors",
    "DicomReadError": "cemrecon.errors",
    "UnsupportedDicomError": "cemrecon.errors",
    "PairingError": "cemrecon.errors",
    "CalibrationError": "cemrecon.errors",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'cemrecon' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
