"""analysis.json schema and writer, per-view PNG, cohort tables, and the ``cemrecon analyze`` CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cemrecon.report.cohort import cohort_tables, cross_tab, diagnostic_performance
from cemrecon.report.schema import validate_analysis, write_analysis


def _entry(**roi_overrides):
    roi = {"bbox": [1, 2, 30, 40], "source": "detected", "n_calcifications": 6,
           "enhancement": "enhancement", "type": "mass", "iodine_excess_mg_cm2": 0.8,
           "detectability_limit_mg_cm2": 0.1, "cnr": 24.0}
    roi.update(roi_overrides)
    return {"study_uid": "1.2.3", "laterality": "R", "view": "CC", "acquisition_index": 0,
            "bpe": {"category": "mild", "enhancing_fraction": 0.2, "mean_fgt_iodine_mg_cm2": 0.1},
            "rois": [roi]}


def test_schema_accepts_valid_and_names_bad_fields():
    validate_analysis([_entry()])
    validate_analysis([_entry(enhancement="indeterminate", type=None, cnr=None)])
    with pytest.raises(ValueError, match=r"analysis\[0\]\.rois\[0\]\.enhancement"):
        validate_analysis([_entry(enhancement="maybe")])
    with pytest.raises(ValueError, match=r"\.type: must be null unless enhancement"):
        validate_analysis([_entry(enhancement="no_enhancement", type="mass")])
    with pytest.raises(ValueError, match=r"\.bbox"):
        validate_analysis([_entry(bbox=[1, 2, 3])])
    with pytest.raises(ValueError, match="top level must be a list"):
        validate_analysis({"a": 1})
    # the reason must be one that gives the call (files from before the field: no reason, valid)
    validate_analysis([_entry(reason="above_breast_background")])
    validate_analysis([_entry(enhancement="indeterminate", type=None, reason="bpe_texture")])
    with pytest.raises(ValueError, match=r"rois\[0\]\.reason: for 'no_enhancement' must be one of "
                                         r"\['below_threshold'\]"):
        validate_analysis([_entry(enhancement="no_enhancement", type=None, reason="bpe_level")])
    with pytest.raises(ValueError, match=r"\.reason"):
        validate_analysis([_entry(reason="because")])


def test_write_analysis_atomic(tmp_path):
    p = write_analysis([_entry()], tmp_path / "analysis.json")
    assert json.loads(p.read_text()) == [_entry()]
    assert [f.name for f in tmp_path.iterdir()] == ["analysis.json"]  # no temp file left
    with pytest.raises(ValueError):
        write_analysis([_entry(source="robot")], tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()


def test_cohort_tables_reproduce_seed_study():
    # seed-study.md: enhancement YES 2 benign / 14 DCIS / 4 invasive; NO 20 / 3 / 0;
    # indeterminate 2 / 0 / 1.  Excluding indeterminate: sensitivity 18/21, specificity 20/22,
    # PPV 18/20, NPV 20/23.
    recs = []
    for call, counts in (("enhancement", (2, 14, 4)), ("no_enhancement", (20, 3, 0)),
                         ("indeterminate", (2, 0, 1))):
        for path, n in zip(("benign", "dcis", "invasive"), counts):
            recs += [{"enhancement": call, "pathology": path}] * n
    perf = diagnostic_performance(recs)
    assert (perf["tp"], perf["fp"], perf["tn"], perf["fn"], perf["n_indeterminate"]) == (18, 2, 20, 3, 3)
    assert perf["sensitivity"] == pytest.approx(18 / 21)
    assert perf["specificity"] == pytest.approx(20 / 22)
    assert perf["ppv"] == pytest.approx(18 / 20)
    assert perf["npv"] == pytest.approx(20 / 23)
    safe = diagnostic_performance(recs, indeterminate="positive")
    assert (safe["tp"], safe["fp"]) == (19, 4)
    tab = cross_tab(recs, "enhancement", rows=("enhancement", "no_enhancement", "indeterminate"),
                    cols=("benign", "dcis", "invasive"))
    assert tab["no_enhancement"] == {"benign": 20, "dcis": 3, "invasive": 0}
    assert cohort_tables(recs)["n_lesions"] == 46
    # why the indeterminate ones were: records from before the reason field count as "none"
    assert cohort_tables(recs)["indeterminate_reason_vs_bpe"] == {
        "none": {"minimal": 0, "mild": 0, "moderate": 0, "marked": 0, "none": 3}}
    why = [{"enhancement": "indeterminate", "pathology": "invasive", "bpe": "moderate",
            "reason": "bpe_level"},
           {"enhancement": "indeterminate", "pathology": "benign", "bpe": "marked",
            "reason": "bpe_texture"},
           {"enhancement": "indeterminate", "pathology": "benign", "bpe": "marked",
            "reason": "bpe_texture"},
           {"enhancement": "no_enhancement", "pathology": "benign", "bpe": "minimal",
            "reason": "below_threshold"}]
    assert cohort_tables(why)["indeterminate_reason_vs_bpe"] == {
        "bpe_level": {"minimal": 0, "mild": 0, "moderate": 1, "marked": 0},
        "bpe_texture": {"minimal": 0, "mild": 0, "moderate": 0, "marked": 2}}
    with pytest.raises(ValueError, match="pathology must be one of"):
        diagnostic_performance([{"enhancement": "enhancement", "pathology": "unknown"}])


def test_roi_labels_say_why():
    from cemrecon.quantify.enhancement import RoiEnhancement
    from cemrecon.report.figures import roi_label

    def roi(call, typ, reason):
        return RoiEnhancement((0, 0, 1, 1), "detected", 5, call, typ, 0.5, 0.1, 5.0, reason=reason)

    assert roi_label(roi("indeterminate", None, "bpe_texture")) == "indeterminate: bpe texture"
    assert roi_label(roi("enhancement", "nme", "above_local_background")) == "enhancement (nme)"
    assert roi_label(roi("enhancement", "nme", "above_breast_background")) == \
        "enhancement (nme), vs breast"
    assert roi_label(roi("no_enhancement", None, "below_threshold")) == "no_enhancement"


def test_view_figure_written(tmp_path):
    from cemrecon.quantify import UserRoi, analyze
    from cemrecon.report.figures import view_figure_name, write_view_figure

    rng = np.random.default_rng(0)
    le = np.full((120, 100), 9000.0)
    le[:, :70] = 2500.0  # breast on the left (chest wall at column 0)
    le = rng.poisson(le).astype(np.uint16)
    io = rng.normal(0, 0.05, le.shape)
    io[50:60, 30:40] += 1.0
    res = analyze((le, None), iodine_mg_cm2=io, pixel_mm=0.5, laterality="L", view="CC",
                  rois=[UserRoi("L", "CC", (48, 28, 62, 42))])
    name = view_figure_name("1.2/3", res.laterality, res.view, 0)
    assert name == "1.2_3_L_CC_0.png"
    p = write_view_figure(res, tmp_path / name)
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_analyze_end_to_end(tmp_path, capsys):
    from cemrecon.cli import EXIT_OK, EXIT_USAGE, main
    from cemrecon.phantom.exam import write_exams

    write_exams(tmp_path / "in", 1, seed=3, scale=0.15, lesions=None, bpe_level="mild")
    rois = tmp_path / "rois.json"
    rois.write_text(json.dumps([{"laterality": "R", "view": "CC", "bbox": [100, 200, 130, 230]}]))
    out = tmp_path / "out"
    assert main(["analyze", str(tmp_path / "in"), "--out", str(out), "--rois", str(rois)]) == EXIT_OK
    doc = json.loads((out / "analysis.json").read_text())
    validate_analysis(doc)
    assert sorted((e["laterality"], e["view"]) for e in doc) == [
        ("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO")]
    user = [r for e in doc for r in e["rois"] if r["source"] == "user"]
    assert len(user) == 1 and user[0]["bbox"] == [100, 200, 130, 230]
    assert all("reason" in r for e in doc for r in e["rois"])  # every call says why
    assert len(list(out.glob("*.png"))) == 4
    # a bad ROI file is a usage error naming the file and the field
    rois.write_text(json.dumps([{"laterality": "R", "view": "CC"}]))
    capsys.readouterr()
    assert main(["analyze", str(tmp_path / "in"), "--out", str(out), "--rois", str(rois)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "rois.json: ROI #0: missing field 'bbox'" in err
