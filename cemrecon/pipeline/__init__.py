"""Batch processing: exam-level jobs on any executor, atomic outputs, ``summary.json``.

>>> from cemrecon.pipeline import run_batch          # doctest: +SKIP
>>> summary = run_batch(["export/"], "out/")         # doctest: +SKIP
>>> summary.counts                                   # doctest: +SKIP
{'exams': 1, 'pairs': 4, 'done': 4, 'skipped': 0, 'failed': 0, ...}
"""

from __future__ import annotations

from cemrecon.pipeline.batch import SUMMARY_NAME, ExamOutcome, default_workers, output_name, run_batch, study_dir_name
from cemrecon.pipeline.summary import SCHEMA, BatchSummary, PairRecord, load_summary, write_summary

__all__ = [
    "run_batch",
    "ExamOutcome",
    "BatchSummary",
    "PairRecord",
    "SCHEMA",
    "SUMMARY_NAME",
    "load_summary",
    "write_summary",
    "default_workers",
    "output_name",
    "study_dir_name",
]
