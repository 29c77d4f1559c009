"""The ``analysis.json`` schema written by ``cemrecon analyze`` (and :func:`write_analysis`).

``analysis.json`` is a JSON **list with one entry per analysed view**::

    [
      {
        "study_uid": "1.2.826.0.1...",      # Study Instance UID, or null for bare arrays
        "laterality": "R",                  # "R" | "L" (null if unknown)
        "view": "CC",                       # "CC" | "MLO" | ... (null if unknown)
        "acquisition_index": 0,             # 0 for the first LE/HE pair of this view, 1 for a repeat
        "bpe": {
          "category": "mild",               # "minimal" | "mild" | "moderate" | "marked"
          "enhancing_fraction": 0.18,       # fraction (0-1) of fibroglandular tissue enhancing
          "mean_fgt_iodine_mg_cm2": 0.11    # mean iodine over FGT above the local fat baseline
        },
        "rois": [
          {
            "bbox": [row0, col0, row1, col1],      # LE pixel coordinates, end exclusive
            "source": "detected",                  # "detected" (calcification cluster) | "user"
            "n_calcifications": 7,                 # specks detected inside the ROI
            "enhancement": "no_enhancement",       # "enhancement" | "no_enhancement" | "indeterminate"
            "type": null,                          # "mass" | "nme" when enhancing, else null
            "iodine_excess_mg_cm2": 0.04,          # site statistic minus its background median
            "detectability_limit_mg_cm2": 0.12,    # what the background could hide (see below)
            "cnr": 1.0,                            # excess / background spread
            "reason": "below_threshold",           # why this call (see below)
            "masking_probability": null            # BPE-masking model, when the region enhances
          }
        ]
      }
    ]

Meaning of the fields
---------------------
* **BPE.** FGT is segmented on LE (glandular index >= 0.25 relative to an all-fat ray at the same
  distance from the skin line, so thickness roll-off is not read as density).  A FGT pixel enhances
  when its 0.5 mm-smoothed iodine, above the local fat baseline, exceeds 0.15 mg/cm^2.  Categories on
  the CEM extent scale: minimal < 10 %, mild 10-25 %, moderate 25-50 %, marked > 50 %.  The
  extent is read on FGT beyond the thickness roll-off and 4 mm from the skin (where the iodine map
  is free of the rim residual), with enhancing findings left out (masses always, non-mass
  regions unless they would take more than a quarter of the FGT).  All thresholds are settings
  of :class:`cemrecon.quantify.AnalyzeConfig`.
* **ROIs.** Detected ROIs are BI-RADS grouped calcifications (>= 5 within 1 cm) found on LE, boxed
  with a 2 mm margin; user ROIs come from ``--rois FILE``: a JSON list of ``{"laterality": "R",
  "view": "CC", "bbox": [row0, col0, row1, col1], "study_uid": "..." (optional)}``.
* **Excess and limit.**  Calcification pixels (dilated 2 px) are excluded.  The site's own
  enhancing region is grown (connected pixels above half the site's height) so that a mass or
  NME larger than the box is not its own background.  The local background is a robust plane
  fitted over a 5 mm ring around the ROI and its grown region (other findings skipped,
  re-fitted on pixels within 2.5 robust SDs).  ``iodine_excess_mg_cm2`` = site statistic (90th
  percentile of the 0.5 mm-smoothed iodine) - plane - the noise push of that percentile (what a
  box of pure background would read, estimated for the site by simulation-extrapolation);
  ``detectability_limit_mg_cm2`` = max(3 x the ring's robust SD, ring 90th percentile - inlier
  90th percentile); ``cnr`` = excess / robust SD.  When the ring is too variable to judge but the
  site stands >= the threshold and >= 3 robust SDs above the ROI-sized windows of the breast
  within 30 mm (the ring lies on the finding itself, e.g. a clustered NME), the three numbers are
  taken against those windows (their median and robust SD) instead.
* **Calls.**  ``enhancement`` when the excess is at least the clinical threshold (0.3 mg/cm^2)
  *and* the limit; ``no_enhancement`` when it is below the threshold *and* the limit is at most
  the threshold (half of it when the view's BPE is moderate or marked), and the surroundings
  within 10 mm span less than the threshold: a threshold-level enhancement would have been seen;
  otherwise ``indeterminate`` (background too variable: never reported as no enhancement).
  Masking by BPE: a region that enhances is ``indeterminate`` when a logistic model, fitted on
  the development phantoms, gives it a probability >= 0.85 of being BPE-like (``bpe_like``): it
  weighs how much of the region lies on LE FGT, how closely its iodine follows the LE glandular
  texture (coarse and 2 mm fine texture), how far it is from one compact blob, how far it lies
  above the view's BPE brightness in moderate or marked BPE, and its type
  (:mod:`cemrecon.quantify.enhancement`, step 7).  ``masking_probability`` is that probability
  (``null`` when the region does not enhance by excess and limit).
  ``type`` (when enhancing): ``mass`` for one compact, convex, elliptical region, else ``nme``;
  the half-height shape is checked by fitting one compact elliptical blob to the map
  (:mod:`cemrecon.quantify.enhancement`, step 8).
  Lack of enhancement is not proof of benignity: read it with the LE morphology.
* **Reason** (``reason``), why the call was made: ``above_local_background`` (enhancement over the
  ring), ``above_breast_background`` (enhancement judged against the breast's windows: the ring
  lies on the finding), ``below_threshold`` (no enhancement), ``background_too_variable`` (ring or
  10 mm surroundings too variable), ``bpe_like`` (masked by BPE: the masking model above),
  ``no_background`` (too few usable pixels to judge).  The last three are ``indeterminate``.
  Files written before the field existed lack it; readers should accept that.  Files of
  cemrecon 0.x before the masking model carry ``bpe_level`` or ``bpe_texture`` (the two hand-set
  masking rules it replaced), both ``indeterminate``; they still validate.
* ``masking_probability`` was added with the masking model; older files lack it.
* Numbers that could not be measured (no usable background) are ``null``.

Each view also gets a PNG ``<study_uid>_<laterality>_<view>_<acquisition_index>.png`` next to
``analysis.json``: LE and iodine side by side, ROIs drawn with their calls.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cemrecon._fileio import write_json_atomic
from cemrecon.quantify.enhancement import CALL_REASONS

__all__ = ["SCHEMA_VERSION", "validate_analysis", "write_analysis"]

SCHEMA_VERSION = "1"

_BPE_CATEGORIES = ("minimal", "mild", "moderate", "marked")
_CALLS = ("enhancement", "no_enhancement", "indeterminate")
_TYPES = ("mass", "nme", None)
_SOURCES = ("detected", "user")
#: Reasons written by cemrecon 0.x before the masking model (accepted when reading old files).
_LEGACY_REASONS = {"bpe_level": "indeterminate", "bpe_texture": "indeterminate"}


def _num_or_null(v: Any) -> bool:
    return v is None or (isinstance(v, int | float) and not isinstance(v, bool))


def validate_analysis(obj: Any) -> None:
    """Check that ``obj`` (parsed ``analysis.json``) follows the schema; raise ``ValueError``.

    The message names the entry, the field and the offending value.
    """
    if not isinstance(obj, list):
        raise ValueError(f"analysis: top level must be a list, got {type(obj).__name__}")
    for i, e in enumerate(obj):
        w = f"analysis[{i}]"
        if not isinstance(e, dict):
            raise ValueError(f"{w}: must be an object")
        for key in ("study_uid", "laterality", "view", "acquisition_index", "bpe", "rois"):
            if key not in e:
                raise ValueError(f"{w}: missing field {key!r}")
        if not isinstance(e["acquisition_index"], int):
            raise ValueError(f"{w}.acquisition_index: must be an integer, got {e['acquisition_index']!r}")
        bpe = e["bpe"]
        if not isinstance(bpe, dict) or bpe.get("category") not in _BPE_CATEGORIES:
            raise ValueError(f"{w}.bpe.category: must be one of {_BPE_CATEGORIES}, got {bpe!r}")
        for key in ("enhancing_fraction", "mean_fgt_iodine_mg_cm2"):
            if not _num_or_null(bpe.get(key, "missing")):
                raise ValueError(f"{w}.bpe.{key}: must be a number, got {bpe.get(key)!r}")
        if not isinstance(e["rois"], list):
            raise ValueError(f"{w}.rois: must be a list")
        for j, r in enumerate(e["rois"]):
            wr = f"{w}.rois[{j}]"
            bbox = r.get("bbox")
            if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, int) for v in bbox)):
                raise ValueError(f"{wr}.bbox: must be 4 integers, got {bbox!r}")
            if r.get("source") not in _SOURCES:
                raise ValueError(f"{wr}.source: must be one of {_SOURCES}, got {r.get('source')!r}")
            if r.get("enhancement") not in _CALLS:
                raise ValueError(f"{wr}.enhancement: must be one of {_CALLS}, got {r.get('enhancement')!r}")
            if r.get("type", "missing") not in _TYPES:
                raise ValueError(f"{wr}.type: must be one of {_TYPES}, got {r.get('type')!r}")
            if r["type"] is not None and r["enhancement"] != "enhancement":
                raise ValueError(f"{wr}.type: must be null unless enhancement, got {r['type']!r}")
            if not isinstance(r.get("n_calcifications"), int):
                raise ValueError(f"{wr}.n_calcifications: must be an integer")
            for key in ("iodine_excess_mg_cm2", "detectability_limit_mg_cm2", "cnr"):
                if not _num_or_null(r.get(key, "missing")):
                    raise ValueError(f"{wr}.{key}: must be a number or null, got {r.get(key)!r}")
            if not _num_or_null(r.get("masking_probability")):
                raise ValueError(f"{wr}.masking_probability: must be a number or null, "
                                 f"got {r.get('masking_probability')!r}")
            reasons = CALL_REASONS | _LEGACY_REASONS
            if "reason" in r and reasons.get(r["reason"]) != r["enhancement"]:
                want = [k for k, v in CALL_REASONS.items() if v == r["enhancement"]]
                raise ValueError(f"{wr}.reason: for {r['enhancement']!r} must be one of {want}, "
                                 f"got {r['reason']!r}")


def write_analysis(entries: list[dict], path: str | os.PathLike) -> Path:
    """Validate and write ``entries`` to ``path`` atomically (temp file + ``os.replace``).

    Raises
    ------
    OutputError
        The file could not be written (nothing partial is left behind).
    """
    validate_analysis(entries)
    return write_json_atomic(entries, path, what="analysis")
