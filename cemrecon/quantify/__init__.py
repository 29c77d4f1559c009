"""Quantification of one CEM view: breast / FGT masks, BPE, calcification clusters, enhancement.

Public API::

    analyze(pair_or_arrays, *, rois=None, calibration=None, ...) -> ViewAnalysis
    load_rois(path) -> list[UserRoi]
    AnalyzeConfig, EnhancementConfig, ViewAnalysis, UserRoi

Building blocks: :mod:`.breast` (segment_breast), :mod:`.bpe` (relative_iodine, measure_bpe,
bpe_category), :mod:`.calcifications` (detect_calcifications), :mod:`.enhancement`
(measure_enhancement).
"""

from __future__ import annotations

from cemrecon.quantify.analyze import (
    AnalyzeConfig,
    UserRoi,
    ViewAnalysis,
    analyze,
    load_rois,
    validate_rois,
)
from cemrecon.quantify.bpe import BPE_CATEGORIES, BpeResult, bpe_category
from cemrecon.quantify.enhancement import (
    CALL_REASONS,
    ENHANCEMENT_CALLS,
    EnhancementConfig,
    RoiEnhancement,
)

__all__ = [
    "BPE_CATEGORIES",
    "CALL_REASONS",
    "ENHANCEMENT_CALLS",
    "AnalyzeConfig",
    "BpeResult",
    "EnhancementConfig",
    "RoiEnhancement",
    "UserRoi",
    "ViewAnalysis",
    "analyze",
    "bpe_category",
    "load_rois",
    "validate_rois",
]
