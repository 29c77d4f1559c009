"""LE/HE pairing rules, strictness, and the ``cemrecon pairs`` CLI."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from cemrecon.cli import EXIT_FATAL, EXIT_NOTHING, EXIT_OK, EXIT_USAGE, main
from cemrecon.errors import DicomReadError, PairingError
from cemrecon.io.enums import FileRole, Laterality, View
from cemrecon.io.read import ReaderWarning, read_exams
from tests._messy import T0, make_image, write

S = dt.timedelta(seconds=1)


def _w(root: Path, name: str, energy: str, t: dt.timedelta = dt.timedelta(0), **kw) -> Path:
    return write(make_image(energy, time=T0 + t, name=name, **kw), root / f"{name}.dcm")


def test_late_phase_repeat_is_a_second_pair_in_time_order(tmp_path):
    # names chosen so that path order and time order disagree
    _w(tmp_path, "a_late_he", "HE", 301 * S)
    _w(tmp_path, "b_early_le", "LE", 0 * S)
    _w(tmp_path, "c_late_le", "LE", 300 * S)
    _w(tmp_path, "d_early_he", "HE", 2 * S)
    result = read_exams(tmp_path)
    got = [(p.acquisition_index, p.le.path.stem, p.he.path.stem) for p in result.pairs]
    assert got == [(0, "b_early_le", "d_early_he"), (1, "c_late_le", "a_late_he")]
    assert result.pairs[1].key.endswith("/R/CC/1") and len(result.exams) == 1
    assert result.excluded == []


def test_closest_time_wins_without_frame_of_reference(tmp_path):
    # no FoR: two LE and two HE of one view, 40 s apart: nearest in time pair up
    for name, e, t in (("le0", "LE", 0), ("le1", "LE", 40), ("he1", "HE", 41), ("he0", "HE", 1)):
        _w(tmp_path, name, e, t * S, frame_of_reference=None)
    pairs = read_exams(tmp_path).pairs
    assert [(p.le.path.stem, p.he.path.stem) for p in pairs] == [("le0", "he0"), ("le1", "he1")]


def test_orphans_are_reported_never_forced(tmp_path):
    le = _w(tmp_path, "le", "LE", lat="R")
    he = _w(tmp_path, "he", "HE", 1 * S, lat="L")  # other breast
    result = read_exams(tmp_path)
    assert result.pairs == []
    assert result.entry(le).reason.startswith("orphan LE: no HE in study")
    assert result.entry(he).reason.startswith("orphan HE: no LE in study")
    assert result.entry(le).role is FileRole.LE


@pytest.mark.parametrize(
    ("he_kw", "words"),
    [
        ({"rows": 48}, "matrix 40x32 vs 48x32"),
        ({"spacing_mm": 0.07}, "pixel spacing"),
        ({"frame_of_reference": "1.2.3.4"}, "Frame of Reference"),
    ],
)
def test_incompatible_le_he_not_paired(tmp_path, he_kw, words):
    le = _w(tmp_path, "le", "LE", frame_of_reference="1.2.3")
    _w(tmp_path, "he", "HE", 1 * S, **{"frame_of_reference": "1.2.3", **he_kw})
    result = read_exams(tmp_path)
    assert result.pairs == []
    assert "no compatible HE" in result.entry(le).reason and words in result.entry(le).reason


def test_gap_beyond_max_is_never_paired(tmp_path):
    le = _w(tmp_path, "le", "LE", frame_of_reference=None)
    _w(tmp_path, "he", "HE", 200 * S, frame_of_reference=None)
    result = read_exams(tmp_path)
    assert result.pairs == [] and "200 s apart" in result.entry(le).reason


def test_duplicate_sop_instance_used_once(tmp_path):
    le = _w(tmp_path, "le", "LE")
    _w(tmp_path, "he", "HE", 1 * S)
    copy = tmp_path / "zz_copy" / "le_again.dcm"
    copy.parent.mkdir()
    shutil.copyfile(le, copy)
    result = read_exams(tmp_path)
    assert len(result.pairs) == 1 and result.pairs[0].le.path == le
    entry = result.entry(copy)
    assert entry.pair_key is None and "duplicate of SOP Instance UID" in entry.reason and str(le) in entry.reason


def test_duplicate_prefers_the_intact_copy(tmp_path):
    from tests._messy import truncate_copy

    le = _w(tmp_path / "b", "le", "LE")
    _w(tmp_path / "b", "he", "HE", 1 * S)
    cut = truncate_copy(le, tmp_path / "a" / "le_cut.dcm", drop_bytes=64)  # sorts first
    result = read_exams(tmp_path)
    assert [p.le.path for p in result.pairs] == [le]
    assert result.entry(cut).role is FileRole.UNREADABLE and "truncated" in result.entry(cut).reason


def test_same_path_twice_is_scanned_once(tmp_path):
    le = _w(tmp_path, "le", "LE")
    _w(tmp_path, "he", "HE", 1 * S)
    calls = []
    result = read_exams([tmp_path, le, tmp_path / "." / "le.dcm"], progress=lambda k, n: calls.append((k, n)))
    assert len(result.manifest) == 2 and len(result.pairs) == 1
    assert calls == [(1, 2), (2, 2)]


def test_strictness_long_gap(tmp_path):
    _w(tmp_path, "le", "LE")
    _w(tmp_path, "he", "HE", 30 * S)  # > 10 s (warn) but < 90 s (never pair)
    with pytest.warns(ReaderWarning, match=r"long LE-HE gap of \+30\.0 s"):
        warned = read_exams(tmp_path, strictness="warn")
    assert len(warned.pairs) == 1 and len(warned.issues) == 1
    ignored = read_exams(tmp_path, strictness="ignore")  # no warning (warnings are errors here)
    assert len(ignored.pairs) == 1 and "long LE-HE gap" in ignored.issues[0]
    assert any("long LE-HE gap" in n for n in ignored.entry(tmp_path / "le.dcm").notes)
    with pytest.raises(PairingError, match=r"le\.dcm: .*long LE-HE gap of \+30\.0 s"):
        read_exams(tmp_path, strictness="raise")


def test_strictness_kvp_out_of_range(tmp_path):
    _w(tmp_path, "le", "LE", kvp=45)  # a LOW_ENERGY token at 45 kVp contradicts itself
    _w(tmp_path, "he", "HE", 1 * S)
    with pytest.warns(ReaderWarning, match="kVp 45 out of range for a LOW_ENERGY"):
        assert len(read_exams(tmp_path).pairs) == 1
    with pytest.raises(DicomReadError, match=r"le\.dcm: kVp 45"):
        read_exams(tmp_path, strictness="raise")


def test_strictness_missing_laterality(tmp_path):
    ds = make_image("LE", lat=None)
    assert "PatientOrientation" not in ds and "ImageLaterality" not in ds
    le = write(ds, tmp_path / "le.dcm")
    _w(tmp_path, "he", "HE", 1 * S)
    result = read_exams(tmp_path, strictness="ignore")
    assert result.pairs == [] and "laterality unknown" in result.entry(le).reason
    with pytest.raises(DicomReadError, match="no laterality"):
        read_exams(tmp_path, strictness="raise")


def test_missing_acquisition_time(tmp_path):
    for name, e in (("le", "LE"), ("he", "HE")):
        ds = make_image(e, name=name)
        del ds.AcquisitionDate, ds.AcquisitionTime
        write(ds, tmp_path / f"{name}.dcm")
    result = read_exams(tmp_path, strictness="ignore")
    assert len(result.pairs) == 1 and result.pairs[0].gap_s is None
    assert any("only LE and HE" in i for i in result.issues)
    # a second LE of the same view without time: ambiguous, nothing is guessed
    ds = make_image("LE", name="le2", seed=5)
    del ds.AcquisitionDate, ds.AcquisitionTime
    write(ds, tmp_path / "le2.dcm")
    result = read_exams(tmp_path, strictness="ignore")
    assert result.pairs == [] and all("ambiguous" in m.reason for m in result.excluded)


def test_views_and_breasts_sorted(tmp_path):
    for lat in ("L", "R"):
        for view in ("MLO", "CC"):
            _w(tmp_path, f"{lat}{view}le", "LE", lat=lat, view=view)
            _w(tmp_path, f"{lat}{view}he", "HE", 1 * S, lat=lat, view=view)
    pairs = read_exams(tmp_path).pairs
    assert [(p.laterality, p.view) for p in pairs] == [
        (Laterality.R, View.CC), (Laterality.R, View.MLO), (Laterality.L, View.CC), (Laterality.L, View.MLO)
    ]


# ----------------------------------------------------------------------------- CLI


def test_cli_pairs_json(tmp_path, capsys):
    data = tmp_path / "in"
    le = _w(data, "le", "LE")
    he = _w(data, "he", "HE", 1 * S)
    (data / "junk.txt").write_text("x")
    out = tmp_path / "out" / "pairs.json"
    assert main(["pairs", str(data), "--json", str(out)]) == EXIT_OK
    doc = json.loads(out.read_text())
    assert set(doc) == {"pairs", "excluded"}
    (p,) = doc["pairs"]
    assert {"study_uid", "laterality", "view", "acquisition_index", "le", "he"} <= set(p)
    assert (p["laterality"], p["view"], p["acquisition_index"], p["le"], p["he"]) == ("R", "CC", 0, str(le), str(he))
    assert doc["excluded"] == [{"path": str(data / "junk.txt"), "role": "NOT_DICOM", "reason": doc["excluded"][0]["reason"]}]
    text = capsys.readouterr().out
    assert "1 pair(s)" in text and "NOT_DICOM" in text and str(le) in text
    assert not list(out.parent.glob(".tmp-*"))  # atomic write left nothing behind


def test_cli_exit_codes(tmp_path, capsys):
    (tmp_path / "junk.txt").write_text("x")
    assert main(["pairs", str(tmp_path)]) == EXIT_NOTHING
    assert main(["pairs", str(tmp_path / "missing")]) == EXIT_USAGE
    assert main(["pairs", str(tmp_path), "--strictness", "loud"]) == EXIT_USAGE
    _w(tmp_path, "le", "LE", kvp=45)
    _w(tmp_path, "he", "HE", 1 * S)
    assert main(["pairs", str(tmp_path), "--strictness", "raise"]) == EXIT_FATAL
    assert "kVp 45" in capsys.readouterr().err
