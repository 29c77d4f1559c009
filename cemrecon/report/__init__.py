"""Reports: the ``analysis.json`` schema and writer, per-view PNGs, cohort tables.

See :mod:`cemrecon.report.schema` for the ``analysis.json`` format.
"""

from __future__ import annotations

from cemrecon.report.schema import SCHEMA_VERSION, validate_analysis, write_analysis

__all__ = ["SCHEMA_VERSION", "validate_analysis", "write_analysis"]
