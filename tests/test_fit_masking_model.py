"""benchmarks/fit_masking_model.py: the logistic fit behind EnhancementConfig.masking_weights."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import fit_masking_model as fmm

from cemrecon.quantify.enhancement import MASKING_TERMS


def test_fit_logistic_recovers_known_weights_on_raw_terms():
    # Labels drawn from a known logistic model on three terms with different scales and offsets
    # (the fit standardises them, then maps the weights back to the raw terms).  n = 40000: the
    # standard error of each weight is ~1 / sqrt(n p (1 - p) var(x)) <= 0.03 here, and the L2
    # penalty (0.5 |w|^2 against a log-likelihood summed over 40000 rows) shrinks by < 1e-3, so
    # 0.15 is ~5 standard errors.
    rng = np.random.default_rng(0)
    n = 40000
    x = np.column_stack([rng.normal(0.5, 0.3, n), rng.uniform(-1, 1, n), rng.normal(-2.0, 2.0, n)])
    w_true = np.array([-0.5, 2.0, -1.5, 0.4])
    p = 1.0 / (1.0 + np.exp(-(w_true[0] + x @ w_true[1:])))
    y = (rng.uniform(size=n) < p).astype(float)
    w = fmm.fit_logistic(x, y, c=1.0)
    assert w == pytest.approx(w_true, abs=0.15)


def test_call_rates_apply_the_model_only_where_a_region_enhances():
    # Two sites reach the masking step: an enhancing lesion the model keeps (log-odds -5) and a
    # masked site it takes (log-odds +5); a third, expected no_enhancement, keeps its own call.
    # A mass whose own iodine at the site is below 0.3 is left out of the sensitivity, as in
    # validate_quantify.py.
    zero = {k: 0.0 for k in MASKING_TERMS[1:]}
    rows = [
        {"expected": "enhancement", "excess": 1.0, "call": "enhancement", "terms": dict(zero)},
        {"expected": "indeterminate", "excess": 0.1, "call": "enhancement",
         "terms": dict(zero, non_mass=1.0)},
        {"expected": "no_enhancement", "excess": 0.0, "call": "no_enhancement", "terms": None},
        {"expected": "enhancement", "excess": 0.2, "call": "no_enhancement", "terms": None},
    ]
    w = np.zeros(len(MASKING_TERMS))
    w[0], w[MASKING_TERMS.index("non_mass")] = -5.0, 10.0
    sens, masked, spec, n_pos, n_masked, n_neg = fmm.call_rates(rows, w, 0.85)
    assert (sens, masked, spec, n_pos, n_masked, n_neg) == (100.0, 100.0, 100.0, 1, 1, 1)
    # without the model the masked site stays an enhancement call
    assert fmm.call_rates(rows, None, 0.85)[1] == 0.0


def _cached_view(tmp_path: Path, name: str, seed: int) -> Path:
    """A replay_sites cache directory holding one view with one user site on a BPE-like patch
    (its iodine follows the gland texture: the model calls it masked, see test_quantify)."""
    import replay_sites as rs
    from test_quantify import _gland_scene

    from cemrecon.quantify.enhancement import EnhancementConfig, measure_enhancement

    io, gland, patch, _, _, bbox, kw = _gland_scene(seed)
    kw = dict(kw, glandular_index=gland, bpe_category="moderate", source="user",
              n_calcifications=5)
    assert measure_enhancement(io + patch, bbox, **kw).reason == "bpe_like"  # the model on
    site = rs.crop_site(io + patch, bbox, kw, EnhancementConfig())
    site["cached_call"] = ("enhancement", "mass", "above_local_background")
    site["truth"] = {"seed": seed, "level": "mild", "expected": "enhancement", "excess": 0.8,
                     "peak": 0.8, "type": "mass", "spread": 0.0}
    d = tmp_path / name
    d.mkdir()
    rs.write_view({"seed": seed, "level": "mild", "view": "CC", "laterality": "R",
                   "bpe_truth": 1, "bpe_pred": 1, "sites": [site]}, d)
    return d


def test_rows_from_caches_judge_every_site_with_the_model_off(tmp_path):
    # One group per cache directory; every enhancing site carries all the model's terms, and
    # the call is the region's (enhancement), not the model's (bpe_like), so the fit sees it.
    dirs = [_cached_view(tmp_path, "a", 0), _cached_view(tmp_path, "b", 1)]
    rows = fmm.rows_from_caches(dirs)
    assert [r["group"] for r in rows] == [0, 1]
    assert [r["seed"] for r in rows] == [0, 1]
    for r in rows:
        assert (r["call"], r["reason"]) == ("enhancement", "above_local_background")
        assert set(r["terms"]) == set(MASKING_TERMS[1:])
    # the rows written by --table refit as the same groups (not regrouped by --seeds)
    table = tmp_path / "rows.json"
    table.write_text(json.dumps(rows))
    assert fmm.main(["--from-table", str(table)]) == 0
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no cached views"):
        fmm.rows_from_caches([tmp_path / "empty"])
