"""benchmarks/validate_quantify.py: the table's statistics (not the simulation)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import validate_quantify as vq


def _sites(hits_per_seed):
    return [{"seed": seed, "hit": h} for seed, hits in enumerate(hits_per_seed) for h in hits]


def test_seed_bootstrap_interval_widens_when_a_patient_counts_many_times():
    # 40 seeds x 4 views, 16 misses (90 % hit) in two arrangements: one miss in each of 16
    # seeds, or 4 seeds missed in all 4 views (one patient's lesion counted four times).
    # Binomial SD of a 90 % rate over 160 independent views: sqrt(0.09 / 160) = 2.4 %; over 40
    # independent patients: sqrt(0.09 / 40) = 4.7 %.  A 95 % interval is ~ +-1.96 SD, ~9 vs ~18
    # points wide (the spread arrangement varies less than binomially between seeds); the bounds
    # allow for the bootstrap's discreteness.
    spread = _sites([[False, True, True, True]] * 16 + [[True] * 4] * 24)   # 16 misses of 160
    clustered = _sites([[False] * 4] * 4 + [[True] * 4] * 36)               # 16 misses of 160
    for sites in (spread, clustered):
        lo, hi = vq.seed_bootstrap_ci(sites, lambda s: s["hit"])
        assert lo < 0.9 < hi
    w_spread = np.subtract(*vq.seed_bootstrap_ci(spread, lambda s: s["hit"])[::-1])
    w_clust = np.subtract(*vq.seed_bootstrap_ci(clustered, lambda s: s["hit"])[::-1])
    assert 0.05 < w_spread < 0.14
    assert 0.13 < w_clust < 0.24
    assert w_clust > 1.5 * w_spread
    # deterministic (fixed generator), and empty input gives no interval
    assert vq.seed_bootstrap_ci(clustered, lambda s: s["hit"]) == \
        vq.seed_bootstrap_ci(clustered, lambda s: s["hit"])
    assert all(np.isnan(vq.seed_bootstrap_ci([], lambda s: True)))


def test_table_from_saved_sites(tmp_path, capsys):
    # --from-sites tabulates a --sites-json file without simulating: 2 seeds, one BPE view each,
    # one enhancing lesion each (one missed), one masked site called indeterminate.
    site = {"level": "mild", "peak": 1.0, "spread": 0.0, "reason": "above_local_background",
            "type": "mass", "call_type": "mass", "measured": 1.0, "limit": 0.1, "terms": None}
    sites = [dict(site, seed=1, expected="enhancement", excess=1.0, call="enhancement"),
             dict(site, seed=2, expected="enhancement", excess=0.4, call="no_enhancement",
                  reason="below_threshold"),
             dict(site, seed=2, expected="indeterminate", excess=0.1, call="indeterminate",
                  reason="bpe_like")]
    path = tmp_path / "sites.json"
    path.write_text(json.dumps({"bpe_truth": [1, 1], "bpe_pred": [1, 2], "sites": sites}))
    assert vq.main(["--from-sites", str(path), "--skip-clusters", "-q"]) == 0
    out = capsys.readouterr().out
    sens = next(line for line in out.splitlines() if line.startswith("ROI sensitivity"))
    assert "50.0 % (n=2" in sens
    assert next(line for line in out.splitlines()
                if line.startswith("BPE 4-class accuracy")).split()[3] == "50.0"
    assert "masked sites called indeterminate" in out and "100.0 % (n=1" in out


def test_masked_sites_by_depth():
    # depth = spread / max(0.3, E): a sub-threshold site (E 0.1) with BPE spread 0.33 is masked
    # by a hair (1.1); one with spread 1.2 by four times the rule's need.  Each lands in its
    # own bin, and only the clearly-masked bin (>= 2) carries the 90 % target.
    base = {"level": "marked", "peak": 0.1, "type": "calcifications", "call_type": None,
            "reason": "bpe_like", "measured": 0.5, "limit": 0.2, "terms": None,
            "expected": "indeterminate", "excess": 0.1}
    near = dict(base, seed=1, spread=0.33, call="enhancement", reason="above_local_background")
    deep = dict(base, seed=2, spread=1.2, call="indeterminate")
    lesion = dict(base, seed=3, spread=0.9, excess=0.8, peak=0.8, call="indeterminate")
    assert vq.masking_depth(near) == pytest.approx(1.1)
    assert vq.masking_depth(deep) == pytest.approx(4.0)
    assert vq.masking_depth(lesion) == pytest.approx(0.9 / 0.8)
    rows = {name.strip(): (val, tgt) for name, val, tgt in vq.call_rows([3], [3], [near, deep, lesion])}
    assert rows["masked, depth 1-1.25: indeterminate"][0].startswith("50.0 % (n=2")
    assert rows["masked, depth >= 2 (clearly masked): indeterminate"][0].startswith("100.0 % (n=1")
    assert rows["masked, depth >= 2 (clearly masked): indeterminate"][1] == ">= 90 %"
    assert "masked, depth 1.5-2: indeterminate" not in rows


def test_end_to_end_rows_count_an_undetected_finding_as_missed():
    """With --detect-calcifications every site carries the call of the detected ROI on it (None:
    no detected ROI).  Of 4 enhancing sites 2 are called enhancement by their detected ROI, one
    is called indeterminate, one has none: end-to-end sensitivity 2/4; a no_enhancement site
    without a detected ROI counts as not called enhancement."""
    base = {"level": "mild", "peak": 1.0, "spread": 0.0, "type": "mass", "call_type": "mass",
            "reason": "x", "measured": 1.0, "limit": 0.1, "terms": None}
    pos = [dict(base, seed=k, expected="enhancement", excess=1.0, call="enhancement",
                detected_call=dc) for k, dc in enumerate(("enhancement", "enhancement",
                                                          "indeterminate", None))]
    neg = [dict(base, seed=10 + k, expected="no_enhancement", excess=0.0, peak=0.0,
                call="no_enhancement", detected_call=dc, type="calcifications")
           for k, dc in enumerate((None, "no_enhancement", "enhancement"))]
    rows = {name.strip(): val for name, val, _ in vq.call_rows([0, 1], [0, 1], pos + neg)}
    assert rows["detected ROIs (analyze without user ROIs): findings with one"].startswith("71.4 %")
    assert rows["sensitivity (E >= 0.3, not masked; undetected = missed)"].startswith("50.0 %")
    assert rows["specificity (no ROI or not called enhancement)"].startswith("66.7 %")
    # the user-ROI rows are unchanged by the detected calls
    assert rows["ROI sensitivity (E >= 0.3, not masked)"].startswith("100.0 %")


def test_sensitivity_is_also_reported_by_finding_type():
    # 2 masses (both found), 3 NMEs (1 found), 1 cluster on a finding (found): 100 / 33.3 / 100 %,
    # and the pooled row stays 4/6.
    base = {"level": "mild", "spread": 0.0, "call_type": None, "reason": "x", "measured": 1.0,
            "limit": 0.1, "terms": None, "expected": "enhancement", "excess": 1.0, "peak": 1.0}
    calls = [("mass", "enhancement"), ("mass", "enhancement"), ("nme", "enhancement"),
             ("nme", "indeterminate"), ("nme", "indeterminate"), ("calcifications", "enhancement")]
    sites = [dict(base, seed=k, type=t, call=c) for k, (t, c) in enumerate(calls)]
    rows = {name.strip(): val for name, val, _ in vq.call_rows([0], [0], sites)}
    assert rows["ROI sensitivity (E >= 0.3, not masked)"].startswith("66.7 % (n=6")
    assert rows["mass"].startswith("100.0 % (n=2")
    assert rows["NME"].startswith("33.3 % (n=3")
    assert rows["cluster on a finding"].startswith("100.0 % (n=1")


def test_overlap_area():
    assert vq._overlap_area((0, 0, 10, 10), (5, 5, 20, 20)) == 25
    assert vq._overlap_area((0, 0, 10, 10), (10, 0, 20, 10)) == 0  # exclusive ends touch
