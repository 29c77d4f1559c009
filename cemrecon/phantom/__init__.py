"""Physics-based CEM phantom: simulated GE Pristina-like LE/HE exams with exact ground truth.

A *producer of files* (and in-memory images) for tests and benchmarks; library code never
imports it.  Public API::

    simulate_view(*, seed, scale=1.0, laterality="R", view="CC", ...) -> ViewSimulation
    write_exams(outdir, n_exams=1, *, seed=0, scale=1.0, **options) -> list[ExamTruth]
    simulate_slab(*, thickness_mm, glandularity, ...) -> SlabSimulation
    write_calibration(outdir, *, thicknesses_mm=..., glandularities=..., ...) -> list[Path]

Command line: ``cemrecon phantom OUTDIR --exams N --seed S --scale F [--calibration]`` or
``python tools/make_phantom.py OUTDIR ...``.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "simulate_view": "exam",
    "write_exams": "exam",
    "exam_seed": "exam",
    "ViewSimulation": "exam",
    "ViewTruth": "exam",
    "ExamTruth": "exam",
    "simulate_slab": "calibration",
    "write_calibration": "calibration",
    "SlabSimulation": "calibration",
    "BPE_LEVELS": "lesions",
    "bpe_category": "lesions",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'cemrecon.phantom' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"cemrecon.phantom.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
