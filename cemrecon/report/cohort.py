"""Cohort tables from per-lesion results: counts, cross-tabulations, diagnostic performance.

A *record* is a mapping per lesion, e.g. one ROI of ``analysis.json`` joined with the pathology::

    {"enhancement": "enhancement", "type": "nme", "bpe": "mild", "pathology": "dcis"}

Pathology values: ``"benign"``, ``"dcis"``, ``"invasive"`` (DCIS and invasive are malignant).
These are the tables of the seed study (``seed-study.md``): enhancement vs pathology, type vs
pathology, and sensitivity / specificity / PPV / NPV of enhancement for malignancy.

Examples
--------
>>> recs = [{"enhancement": "enhancement", "pathology": "dcis"},
...         {"enhancement": "no_enhancement", "pathology": "benign"}]
>>> diagnostic_performance(recs)["sensitivity"]
1.0
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cemrecon.quantify.bpe import BPE_CATEGORIES

__all__ = [
    "MALIGNANT",
    "cohort_tables",
    "counts",
    "cross_tab",
    "diagnostic_performance",
    "format_table",
]

#: Pathology values counted as malignant.
MALIGNANT = frozenset({"dcis", "invasive"})
_PATHOLOGIES = ("benign", "dcis", "invasive")


def _pathology(rec: Mapping[str, Any]) -> str:
    p = str(rec.get("pathology", "")).lower()
    if p not in _PATHOLOGIES:
        raise ValueError(f"record pathology must be one of {_PATHOLOGIES}, got {rec.get('pathology')!r}")
    return p


def counts(records: Iterable[Mapping[str, Any]], key: str) -> dict[str, int]:
    """Number of records per value of ``key`` (``None`` shown as ``"none"``)."""
    c = Counter("none" if r.get(key) is None else str(r.get(key)) for r in records)
    return dict(sorted(c.items()))


def cross_tab(records: Iterable[Mapping[str, Any]], row_key: str, col_key: str = "pathology",
              *, rows: Sequence[str] | None = None, cols: Sequence[str] | None = None
              ) -> dict[str, dict[str, int]]:
    """Counts of (``row_key`` value, ``col_key`` value) pairs as ``{row: {col: n}}``."""
    recs = list(records)
    rv = ["none" if r.get(row_key) is None else str(r.get(row_key)) for r in recs]
    cv = ["none" if r.get(col_key) is None else str(r.get(col_key)) for r in recs]
    rows = list(rows) if rows is not None else sorted(set(rv))
    cols = list(cols) if cols is not None else sorted(set(cv))
    table = {r: dict.fromkeys(cols, 0) for r in rows}
    for a, b in zip(rv, cv):
        if a in table and b in table[a]:
            table[a][b] += 1
    return table


def diagnostic_performance(records: Iterable[Mapping[str, Any]], *, indeterminate: str = "exclude"
                           ) -> dict[str, float | int | None]:
    """Sensitivity, specificity, PPV and NPV of ``enhancement`` for malignancy.

    Parameters
    ----------
    records : iterable of mapping
        With ``enhancement`` and ``pathology``.
    indeterminate : {"exclude", "positive", "negative"}
        How indeterminate sites count (the seed study excludes them; counting them positive is
        the safe clinical reading: work them up).

    Returns
    -------
    dict
        ``tp, fp, tn, fn, n_indeterminate, sensitivity, specificity, ppv, npv`` (a ratio is None
        when its denominator is 0).
    """
    if indeterminate not in ("exclude", "positive", "negative"):
        raise ValueError(f"indeterminate must be 'exclude', 'positive' or 'negative', "
                         f"got {indeterminate!r}")
    tp = fp = tn = fn = n_ind = 0
    for r in records:
        call = r.get("enhancement")
        malignant = _pathology(r) in MALIGNANT
        if call == "indeterminate":
            n_ind += 1
            if indeterminate == "exclude":
                continue
            positive = indeterminate == "positive"
        elif call in ("enhancement", "no_enhancement"):
            positive = call == "enhancement"
        else:
            raise ValueError(f"record enhancement must be enhancement / no_enhancement / "
                             f"indeterminate, got {call!r}")
        if positive and malignant:
            tp += 1
        elif positive:
            fp += 1
        elif malignant:
            fn += 1
        else:
            tn += 1

    def ratio(a: int, b: int) -> float | None:
        return a / b if b else None

    return {"tp": tp, "fp": fp, "tn": tn, "fn": fn, "n_indeterminate": n_ind,
            "sensitivity": ratio(tp, tp + fn), "specificity": ratio(tn, tn + fp),
            "ppv": ratio(tp, tp + fp), "npv": ratio(tn, tn + fn)}


def format_table(table: Mapping[str, Mapping[str, int]], *, title: str = "") -> str:
    """Plain-text rendering of a :func:`cross_tab` result, with row totals."""
    cols = list(next(iter(table.values())).keys()) if table else []
    width = max([len(title)] + [len(r) for r in table] + [5])
    head = f"{title:<{width}} " + " ".join(f"{c:>9}" for c in cols) + f" {'total':>7}"
    lines = [head]
    for r, row in table.items():
        lines.append(f"{r:<{width}} " + " ".join(f"{row[c]:>9d}" for c in cols)
                     + f" {sum(row.values()):>7d}")
    return "\n".join(lines)


def cohort_tables(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The seed study's tables: counts, enhancement and type vs pathology, performance.

    ``indeterminate_reason_vs_bpe`` counts the indeterminate calls by their ``reason`` (see
    :mod:`cemrecon.report.schema`) and BPE category (``"none"`` for records without one): how
    many were masked by BPE (``bpe_like``; ``bpe_level`` or ``bpe_texture`` in older files) rather
    than by a variable or missing background, the study's question.
    """
    recs = list(records)
    indeterminate = [r for r in recs if r.get("enhancement") == "indeterminate"]
    return {
        "n_lesions": len(recs),
        "pathology": counts(recs, "pathology"),
        "bpe": counts(recs, "bpe"),
        "enhancement_vs_pathology": cross_tab(
            recs, "enhancement", rows=("enhancement", "no_enhancement", "indeterminate"),
            cols=_PATHOLOGIES),
        "type_vs_pathology": cross_tab(recs, "type", rows=("mass", "nme", "none"), cols=_PATHOLOGIES),
        "performance": diagnostic_performance(recs),
        "performance_indeterminate_positive": diagnostic_performance(recs, indeterminate="positive"),
        "indeterminate_reason_vs_bpe": cross_tab(
            indeterminate, "reason", "bpe", cols=BPE_CATEGORIES + (
                ("none",) if any(r.get("bpe") is None for r in indeterminate) else ())),
    }
