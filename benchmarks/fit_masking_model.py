"""Fit the BPE-masking model of :mod:`cemrecon.quantify.enhancement` on phantoms.

Usage::

    python benchmarks/fit_masking_model.py [--seeds 8000-8023,9000-9035,12000-12023,13000-13023]
                                           [--scale 0.5] [--workers 2] [--table rows.json]
                                           [--from-table rows.json] [--c 1.0] [--probability 0.85]

Each seed is simulated as in ``validate_quantify.py`` (right CC, the four BPE levels, a mass or an
NME with calcifications, a cluster without and one on a weak enhancement; each finding analysed as
a user ROI at its true calcification box) with the masking model switched off.  Every site whose
region enhances gives one row: the model's terms (``RoiEnhancement.masking_terms``) and the label
of the phantom's masking truth rule (``expected_enhancement == "indeterminate"``) against sites
expected ``enhancement`` with their own iodine at the site >= 0.3 mg/cm^2.  Sites expected
``no_enhancement``, and masses or NMEs that do not reach the threshold at their calcifications
(expected ``enhancement`` by type, but what enhances there is BPE or nothing; the validator leaves
them out of the sensitivity too), are left out: the model answers "masked by BPE or a lesion".

The fit is an L2-penalised logistic regression on standardised terms (penalty ``0.5 |w|^2``,
log-loss weighted by ``--c``), solved with scipy; the printed weights are on the raw terms, in
:data:`~cemrecon.quantify.enhancement.MASKING_TERMS` order, ready for
``EnhancementConfig.masking_weights``.  Each comma-separated seed range is one group of a
leave-one-group-out cross-validation: the model is fitted on the other groups and its calls are
counted on the left-out one (sensitivity, masked sites called indeterminate, specificity, as in
``validate_quantify.py``).  Simulating the 432 default views takes ~15 min on 2 cores;
``--table`` saves the rows, ``--from-table`` refits from them.

``--from-cache DIR [DIR ...]`` takes the rows from site caches of ``replay_sites.py cache``
instead (one group per directory, any view and laterality): each cached site is judged again
with the model off, so a new term needs no new simulation, only the caches::

    python benchmarks/replay_sites.py cache runs/cc20 --seeds 20000-20023
    python benchmarks/replay_sites.py cache runs/ml23 --seeds 23000-23023 --view MLO --laterality L
    python benchmarks/fit_masking_model.py --from-cache runs/cc20 runs/ml23
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

def _ranges(text: str) -> list[list[int]]:
    out = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out.append(list(range(int(a), int(b or a) + 1)))
    return out


def _rows_for_seed(args) -> list[dict]:
    """The validator's sites of one seed (its four BPE levels), masking model off."""
    seed, scale = args
    from validate_quantify import experiment_calls

    return experiment_calls([seed], scale, lambda _msg: None, masking_check=False)[2]


def simulate(groups: list[list[int]], scale: float, workers: int) -> list[dict]:
    seeds = [s for g in groups for s in g]
    t0 = time.perf_counter()
    rows: list[dict] = []
    with Pool(workers) as pool:
        for k, part in enumerate(pool.imap(_rows_for_seed, [(s, scale) for s in seeds])):
            rows.extend(part)
            print(f"seed {seeds[k]}: {len(part)} sites [{time.perf_counter() - t0:.0f} s]",
                  flush=True)
    return rows


def rows_from_caches(dirs: list[Path]) -> list[dict]:
    """The sites of ``replay_sites.py`` caches judged with the model off; ``group`` = the index
    of the directory in ``dirs``."""
    from replay_sites import load, replay

    from cemrecon.quantify.enhancement import EnhancementConfig

    rows = []
    for k, d in enumerate(dirs):
        views = load([d])
        if not views:
            raise SystemExit(f"--from-cache: no cached views (*.pkl.gz) in {d}")
        sites = replay(views, EnhancementConfig(masking_check=False))[2]
        rows += [dict(r, group=k) for r in sites]
        print(f"{d}: {len(views)} views, {len(sites)} sites", flush=True)
    return rows


def fit_logistic(x: np.ndarray, y: np.ndarray, c: float) -> np.ndarray:
    """Weights (intercept first) on the raw terms of an L2 logistic fit on standardised terms."""
    from scipy.optimize import minimize

    mu, sd = x.mean(0), x.std(0)
    sd[sd == 0] = 1.0
    z = np.column_stack([np.ones(len(x)), (x - mu) / sd])

    def loss(w):
        t = z @ w
        return c * np.sum(np.logaddexp(0.0, t) - y * t) + 0.5 * np.sum(w[1:] ** 2)

    def grad(w):
        g = c * z.T @ (1.0 / (1.0 + np.exp(-(z @ w))) - y)
        g[1:] += w[1:]
        return g

    w = minimize(loss, np.zeros(z.shape[1]), jac=grad, method="L-BFGS-B").x
    raw = w[1:] / sd
    return np.concatenate([[w[0] - np.sum(raw * mu)], raw])


def call_rates(rows: list[dict], weights: np.ndarray | None, probability: float) -> tuple:
    """Sensitivity, masked -> indeterminate, specificity (%) with the model (or without: None).

    As in ``validate_quantify.py``: sensitivity over sites expected ``enhancement`` whose own
    iodine at the site reaches the 0.3 mg/cm^2 threshold (a large NME may not enhance where its
    calcifications are), specificity = not ``enhancement`` among sites expected
    ``no_enhancement``."""
    from cemrecon.quantify.enhancement import masking_probability

    pos = hit = msk = ind = neg = ok = 0
    for r in rows:
        call = r["call"]
        if weights is not None and r["terms"] is not None:
            p = masking_probability(r["terms"], tuple(weights))
            call = "indeterminate" if p >= probability else "enhancement"
        if r["expected"] == "enhancement":
            if r["excess"] < 0.3:
                continue
            pos += 1
            hit += call == "enhancement"
        elif r["expected"] == "indeterminate":
            msk += 1
            ind += call == "indeterminate"
        else:
            neg += 1
            ok += call != "enhancement"
    return (100.0 * hit / max(pos, 1), 100.0 * ind / max(msk, 1), 100.0 * ok / max(neg, 1),
            pos, msk, neg)


def _fmt(rates: tuple) -> str:
    return " / ".join(f"{v:.1f}" for v in rates[:3])


def main(argv=None) -> int:
    from cemrecon.quantify.enhancement import MASKING_TERMS

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="8000-8023,9000-9035,12000-12023,13000-13023")
    ap.add_argument("--scale", type=float, default=0.5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--table", help="write the rows (terms and labels) to this JSON file")
    ap.add_argument("--from-table", help="fit from rows written by --table (no simulation)")
    ap.add_argument("--c", type=float, default=1.0, help="inverse L2 strength (default 1)")
    ap.add_argument("--probability", type=float, default=0.85,
                    help="masking probability from which a region is called masked (default 0.85)")
    ap.add_argument("--from-cache", nargs="+", type=Path, metavar="DIR",
                    help="replay_sites.py cache directories, one group each (no simulation)")
    args = ap.parse_args(argv)
    rows = json.loads(Path(args.from_table).read_text()) if args.from_table else None
    if args.from_cache:
        rows = rows_from_caches(args.from_cache)
        names = [str(d) for d in args.from_cache]
    elif rows and all("group" in r for r in rows):  # a table written with --from-cache
        names = [f"group {k}" for k in range(max(r["group"] for r in rows) + 1)]
    else:  # seed groups: simulated, or a table of simulated rows
        groups = _ranges(args.seeds)
        names = [f"seeds {g[0]}-{g[-1]}" for g in groups]
        group_of = {s: k for k, g in enumerate(groups) for s in g}
        rows = simulate(groups, args.scale, args.workers) if rows is None else rows
        rows = [dict(r, group=group_of[r["seed"]]) for r in rows if r["seed"] in group_of]
    if args.table:
        Path(args.table).write_text(json.dumps(rows))

    def xy(rs):
        use = [r for r in rs if r["terms"] is not None and (
            r["expected"] == "indeterminate"
            or (r["expected"] == "enhancement" and r["excess"] >= 0.3))]
        x = np.array([[r["terms"][k] for k in MASKING_TERMS[1:]] for r in use], dtype=np.float64)
        return x, np.array([r["expected"] == "indeterminate" for r in use], dtype=np.float64)

    print(f"{len(rows)} sites; {int(xy(rows)[1].size)} reach the masking step")
    print("leave-one-group-out (sensitivity / masked -> indeterminate / specificity, %):")
    pooled = np.zeros(6)
    for k, name in enumerate(names):
        train = [r for r in rows if r["group"] != k]
        test = [r for r in rows if r["group"] == k]
        w = fit_logistic(*xy(train), args.c)
        rates = call_rates(test, w, args.probability)
        pooled += [rates[0] * rates[3], rates[1] * rates[4], rates[2] * rates[5], *rates[3:]]
        print(f"  {name}: model {_fmt(rates)}"
              f"   no model {_fmt(call_rates(test, None, args.probability))}")
    print(f"  pooled: model {_fmt(tuple(pooled[:3] / np.maximum(pooled[3:], 1)))}")
    w = fit_logistic(*xy(rows), args.c)
    rates = call_rates(rows, w, args.probability)
    print(f"all groups, in-sample: {_fmt(rates)} (n = {rates[3]} / {rates[4]} / {rates[5]})")
    print("weights (MASKING_TERMS order):")
    print("    (" + ", ".join(f"{v:.3f}" for v in w) + ")")
    for k, v in zip(MASKING_TERMS, w):
        print(f"    {k:18s} {v:+.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
