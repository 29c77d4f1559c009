"""``summary.json``: what a batch run did, per pair and per excluded file.

Schema ``cemrecon.batch-summary/1`` (all times in seconds, paths as strings)::

    {
      "schema": "cemrecon.batch-summary/1",
      "cemrecon_version": "0.1.0",
      "created": "2026-11-30T23:59:59+00:00",      # UTC, ISO 8601
      "inputs": ["PATH", ...],                       # as given on the command line
      "out_dir": "OUT",
      "parameters": {"weight": "physics", "calibration": null, "calibration_id": null,
                     "force": false, "strictness": "warn", "rc_scale_dn_per_ln": 10000.0,
                     "bits_stored": 16},
      "executor": "ProcessPoolExecutor(max_workers=2)",
      "elapsed_s": 12.3,
      "counts": {"exams": 1, "pairs": 4, "done": 4, "skipped": 0, "failed": 0,
                 "excluded_files": 1, "unreadable_files": 0},
      "pairs": [
        {"key": "1.2.3/R/CC/0", "study_uid": "1.2.3", "laterality": "R", "view": "CC",
         "acquisition_index": 0,
         "status": "done",                          # done | skipped | failed
         "error": null,                             # message when failed
         "inputs": {"le": {"path": ..., "sop_instance_uid": ..., "sha256": ...},
                    "he": {...}},
         "outputs": [{"kind": "rc", "path": "1.2.3/R_CC_0_RC.dcm",  # relative to out_dir
                      "sop_instance_uid": ..., "series_instance_uid": ...,
                      "offset_dn": 32768.0, "scale_dn_per_unit": -10000.0, "bits_stored": 16,
                      "quantity": "RC_LN", "clip_fraction": 0.0, "nonfinite_fraction": 0.0,
                      "window_center": ..., "window_width": ...}],
         "weight": 0.245, "weight_source": "physics ...",
         "fingerprint": "sha256 hex of inputs + parameters",
         "timings_s": {"decode": 0.05, "kernel": 0.01, "encode_write": 0.04, "total": 0.11}}
      ],
      "excluded": [{"path": ..., "sop_instance_uid": ..., "role": "NOT_DICOM",
                    "reason": "...", "notes": [...]}],
      "issues": ["reader inconsistencies, as text"]
    }

For a ``skipped`` pair, ``outputs`` describes the existing files (read back from
their headers) and ``timings_s`` holds only ``total``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA", "PairRecord", "BatchSummary", "write_summary", "load_summary"]

SCHEMA = "cemrecon.batch-summary/1"

#: Pair statuses.
DONE, SKIPPED, FAILED = "done", "skipped", "failed"


@dataclass
class PairRecord:
    """Outcome of one LE/HE pair (one entry of ``summary.json["pairs"]``)."""

    key: str
    study_uid: str
    laterality: str
    view: str
    acquisition_index: int
    status: str
    inputs: dict[str, Any]
    outputs: list[dict[str, Any]] = field(default_factory=list)
    weight: float | None = None
    weight_source: str | None = None
    fingerprint: str | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BatchSummary:
    """What :func:`cemrecon.pipeline.run_batch` did.

    Attributes
    ----------
    pairs : list of PairRecord
    excluded : list of dict
        Reader manifest entries not used in a pair, each with its ``reason``.
    path : pathlib.Path or None
        Where ``summary.json`` was written.
    """

    inputs: list[str]
    out_dir: str
    parameters: dict[str, Any]
    executor: str
    pairs: list[PairRecord] = field(default_factory=list)
    excluded: list[dict[str, Any]] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    created: str = ""
    cemrecon_version: str = ""
    path: Path | None = None

    def _count(self, status: str) -> int:
        return sum(1 for p in self.pairs if p.status == status)

    @property
    def n_done(self) -> int:
        return self._count(DONE)

    @property
    def n_skipped(self) -> int:
        return self._count(SKIPPED)

    @property
    def n_failed(self) -> int:
        return self._count(FAILED)

    @property
    def n_unreadable(self) -> int:
        """Excluded files the reader could not read (they count as failures for the exit code)."""
        return sum(1 for e in self.excluded if e.get("role") == "UNREADABLE")

    @property
    def counts(self) -> dict[str, int]:
        return {
            "exams": len({p.study_uid for p in self.pairs}),
            "pairs": len(self.pairs),
            "done": self.n_done,
            "skipped": self.n_skipped,
            "failed": self.n_failed,
            "excluded_files": len(self.excluded),
            "unreadable_files": self.n_unreadable,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "cemrecon_version": self.cemrecon_version,
            "created": self.created,
            "inputs": list(self.inputs),
            "out_dir": self.out_dir,
            "parameters": dict(self.parameters),
            "executor": self.executor,
            "elapsed_s": round(self.elapsed_s, 4),
            "counts": self.counts,
            "pairs": [p.as_dict() for p in self.pairs],
            "excluded": list(self.excluded),
            "issues": list(self.issues),
        }

    def to_json(self, **kwargs: Any) -> str:
        kwargs.setdefault("indent", 2)
        return json.dumps(self.as_dict(), **kwargs)


def write_summary(summary: BatchSummary, path: str | os.PathLike[str]) -> Path:
    """Write ``summary.json`` atomically (temp file in the same folder + :func:`os.replace`)."""
    from cemrecon._fileio import write_json_atomic

    path = write_json_atomic(summary.as_dict(), path, what="batch summary")
    summary.path = path
    return path


def load_summary(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ``summary.json`` (as a dict); checks the schema name.

    Raises
    ------
    ValueError
        Not a cemrecon batch summary (names the file and the schema found).
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{path}: schema {data.get('schema')!r} is not {SCHEMA!r}")
    return data
