"""CLI ``cemrecon recombine`` / ``cemrecon demo``: exit codes and output, through cli.main()."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest

from cemrecon.cli import (
    EXIT_FATAL,
    EXIT_NOTHING,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
    main,
)
from tests.helpers import require_module

SCALE = 0.1


@pytest.fixture(scope="module")
def phantom_root(tmp_path_factory) -> Path:
    from cemrecon.phantom import write_exams

    root = tmp_path_factory.mktemp("cli_phantom")
    write_exams(root, 1, seed=5, scale=SCALE)  # 4 LE/HE pairs
    return root


@pytest.fixture
def with_corrupt_exam(phantom_root, tmp_path) -> Path:
    """A copy of the phantom where the HE CC file of the right breast is truncated."""
    root = tmp_path / "in"
    shutil.copytree(phantom_root, root)
    victim = sorted(root.rglob("R_CC_HE.dcm"))[0]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    return root


def _run(*argv: str) -> int:
    return main(["recombine", *argv])


def test_all_done_exit_0_and_json(phantom_root, tmp_path, capsys):
    out = tmp_path / "out"
    code = _run(str(phantom_root), "--out", str(out), "--workers", "1", "--json")
    captured = capsys.readouterr()
    assert code == EXIT_OK
    printed = json.loads(captured.out)  # stdout holds only the JSON summary
    assert printed == json.loads((out / "summary.json").read_text())
    assert printed["counts"]["done"] == 4
    assert "4 pair(s)" in captured.err  # the human summary goes to stderr with --json
    # rerun: everything already done -> still exit 0, all skipped
    assert _run(str(phantom_root), "--out", str(out), "--workers", "1", "--quiet") == EXIT_OK
    assert json.loads((out / "summary.json").read_text())["counts"]["skipped"] == 4
    assert capsys.readouterr().out == ""  # --quiet prints nothing


def test_partial_failure_exit_1(with_corrupt_exam, tmp_path, capsys):
    out = tmp_path / "out"
    code = _run(str(with_corrupt_exam), "--out", str(out), "--workers", "1")
    assert code == EXIT_PARTIAL
    data = json.loads((out / "summary.json").read_text())
    assert data["counts"]["done"] == 3  # every other pair was done
    bad = [e for e in data["excluded"] if e["path"].endswith("R_CC_HE.dcm")]
    assert len(bad) == 1 and bad[0]["role"] == "UNREADABLE" and bad[0]["reason"]
    assert "UNREADABLE" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["recombine", "/no/such/folder", "--out", "OUT"],
        ["recombine", "PHANTOM", "--out", "OUT", "--weight", "heavy"],
        ["recombine", "PHANTOM", "--out", "OUT", "--workers", "0"],
        ["recombine", "PHANTOM", "--out", "OUT", "--calibration", "/no/such/cal.json"],
        ["recombine", "PHANTOM"],  # --out missing (argparse)
        ["recombine", "PHANTOM", "--out", "OUT", "--strictness", "sometimes"],
        [],
    ],
)
def test_usage_errors_exit_2(argv, phantom_root, tmp_path, capsys):
    argv = [a.replace("PHANTOM", str(phantom_root)).replace("OUT", str(tmp_path / "out")) for a in argv]
    assert main(argv) == EXIT_USAGE
    assert capsys.readouterr().err  # says why
    assert not (tmp_path / "out" / "summary.json").exists()


def test_nothing_found_exit_3(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("no DICOM here")
    assert _run(str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--workers", "1") == EXIT_NOTHING
    data = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert data["counts"]["pairs"] == 0 and data["excluded"][0]["role"] == "NOT_DICOM"
    assert "no LE/HE pair" in capsys.readouterr().err


def test_unwritable_output_exit_4(phantom_root, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert _run(str(phantom_root), "--out", str(tmp_path / "file" / "out")) == EXIT_FATAL
    assert "not writable" in capsys.readouterr().err


def test_weight_and_register_options_reach_the_output(phantom_root, tmp_path):
    out = tmp_path / "out"
    assert _run(str(phantom_root), "--out", str(out), "--workers", "1", "--weight", "0.27", "--register", "never",
                "--quiet") == EXIT_OK
    data = json.loads((out / "summary.json").read_text())
    assert data["parameters"]["weight"] == 0.27 and data["parameters"]["register"] is False
    for rc in sorted(out.rglob("*_RC.dcm")):
        ds = pydicom.dcmread(rc, stop_before_pixels=True)
        assert "w = 0.27" in ds.DerivationDescription
        # never registered, so the pixel positions of both sources are preserved
        assert {i.SpatialLocationsPreserved for i in ds.SourceImageSequence} == {"YES"}


def test_no_iodine_rolloff_option_reaches_the_batch(phantom_root, tmp_path):
    from cemrecon.calibrate import Calibration

    cal = tmp_path / "cal.json"
    Calibration.physics_predicted().save(cal)
    exam = sorted(p for p in phantom_root.iterdir() if p.is_dir())[0]
    for flag, expected in ((), True), (("--no-iodine-rolloff",), False):
        out = tmp_path / f"out{expected}"
        assert _run(str(exam), "--out", str(out), "--workers", "1", "--calibration", str(cal),
                    *flag, "--quiet") == EXIT_OK
        data = json.loads((out / "summary.json").read_text())
        assert data["parameters"]["iodine_rolloff"] is expected
        assert len(list(out.rglob("*_IODINE.dcm"))) == 4


def test_demo_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--scale", "0.1", "--seed", "3"]) == EXIT_OK
    text = capsys.readouterr().out
    assert "summary" in text and str(out) in text
    rc_files = sorted((out / "results").rglob("*_RC.dcm"))
    assert len(rc_files) == 4  # one exam: R/L x CC/MLO
    assert json.loads((out / "results" / "summary.json").read_text())["counts"]["done"] == 4
    # a second run reuses the phantom and skips the finished pairs
    assert main(["demo", "--out", str(out), "--scale", "0.1", "--seed", "3"]) == EXIT_OK
    assert "reusing" in capsys.readouterr().out
    assert json.loads((out / "results" / "summary.json").read_text())["counts"]["skipped"] == 4


def test_demo_rejects_bad_scale(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--scale", "3"]) == EXIT_USAGE
    assert "--scale" in capsys.readouterr().err


def test_progress_bar_only_on_a_terminal(phantom_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    assert _run(str(phantom_root), "--out", str(tmp_path / "a"), "--workers", "1") == EXIT_OK
    assert "exam" in capsys.readouterr().err  # tqdm bar "recombining 4 pairs: ... 1/1 [..., exam/s]"
    assert _run(str(phantom_root), "--out", str(tmp_path / "b"), "--workers", "1", "--quiet") == EXIT_OK
    assert capsys.readouterr().err == ""  # --quiet: no bar even on a terminal


@pytest.mark.dask
def test_scheduler_option_uses_a_dask_cluster(phantom_root, tmp_path):
    distributed = require_module("distributed")
    out = tmp_path / "out"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        code = _run(str(phantom_root), "--out", str(out), "--scheduler", cluster.scheduler_address, "--quiet")
    assert code == EXIT_OK
    data = json.loads((out / "summary.json").read_text())
    assert data["executor"].startswith("ClientExecutor") and data["counts"]["done"] == 4


def test_unreachable_scheduler_is_fatal(phantom_root, tmp_path, capsys):
    require_module("distributed")
    code = _run(str(phantom_root), "--out", str(tmp_path / "out"), "--scheduler", "tcp://127.0.0.1:9",
                "--scheduler-timeout", "1", "--quiet")
    assert code == EXIT_FATAL
    assert "cannot reach the Dask scheduler" in capsys.readouterr().err
