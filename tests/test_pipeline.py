"""Batch layer (cemrecon.pipeline): outputs, summary.json, reruns, interruption, executors."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest

from cemrecon.errors import OutputError
from cemrecon.pipeline import SCHEMA, load_summary, run_batch
from cemrecon.pipeline import batch as batch_mod
from tests.helpers import dciodvfy_errors, require_module

SCALE = 0.1  # ~300 x 240 pixel images: every stage runs, in milliseconds


@pytest.fixture(scope="module")
def phantom_root(tmp_path_factory) -> Path:
    """Two phantom exams (2 breasts x CC/MLO each: 8 LE/HE pairs) plus one non-DICOM file."""
    from cemrecon.phantom import write_exams

    root = tmp_path_factory.mktemp("phantom")
    write_exams(root, 2, seed=11, scale=SCALE)
    (root / "README.txt").write_text("not a DICOM file\n")
    return root


@pytest.fixture(scope="module")
def n_pairs(phantom_root) -> int:
    return len(list(phantom_root.rglob("*_LE.dcm")))


@pytest.fixture(scope="module")
def input_hashes(phantom_root) -> dict[str, str]:
    """Hashes of every input file before any batch ran (checked again by the last test)."""
    return _tree_hashes(phantom_root)


@pytest.fixture(scope="module")
def first_run(phantom_root, tmp_path_factory, input_hashes):
    out = tmp_path_factory.mktemp("out")
    summary = run_batch([phantom_root], out, workers=1)
    return out, summary


@pytest.fixture(scope="module")
def explicit_run(phantom_root, tmp_path_factory, first_run):
    """The same inputs with an explicit weight, written over a copy of the first run's outputs."""
    out = tmp_path_factory.mktemp("explicit") / "out"
    shutil.copytree(first_run[0], out)
    return out, run_batch([phantom_root], out, workers=1, weight=0.3)


def _tree_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file()
    }


def _outputs(out: Path) -> list[Path]:
    return sorted(out.rglob("*.dcm"))


def test_every_pair_written_and_read_back(first_run, phantom_root, n_pairs):
    from cemrecon.io.read import read_exams
    from cemrecon.io.write import decode_pixels, read_mapping
    from cemrecon.recombination import recombine_pair

    out, summary = first_run
    assert n_pairs == 8
    assert summary.counts["pairs"] == n_pairs and summary.n_done == n_pairs and summary.n_failed == 0
    files = _outputs(out)
    assert len(files) == n_pairs
    pairs = {p.key: p for p in read_exams([phantom_root]).pairs}
    for rec in summary.pairs:
        (rc_out,) = [o for o in rec.outputs if o["kind"] == "rc"]
        path = out / rc_out["path"]
        assert path.name == f"{rec.laterality}_{rec.view}_{rec.acquisition_index}_RC.dcm"
        ds = pydicom.dcmread(path)
        pair = pairs[rec.key]
        assert ds.StudyInstanceUID == pair.study_uid
        assert {i.ReferencedSOPInstanceUID for i in ds.SourceImageSequence} == {
            pair.le.sop_instance_uid, pair.he.sop_instance_uid}
        assert ds.ImageLaterality == str(pair.laterality)
        mapping, info = read_mapping(ds, with_info=True)
        assert info["fingerprint"] == rec.fingerprint
        assert info["weight"] == pytest.approx(rec.weight)
        # the stored image is the float RC of this pair, within half a quantisation step
        # (plus float32 rounding of the RC itself, ~1e-7 relative)
        rc = np.asarray(recombine_pair(pair).rc, dtype=np.float64)
        unclipped = (ds.pixel_array > 0) & (ds.pixel_array < mapping.max_stored) & np.isfinite(rc)
        assert unclipped.mean() > 0.99
        err = np.abs(decode_pixels(ds) - rc)[unclipped]
        assert err.max() <= mapping.step / 2 + 1e-5 * np.abs(rc[unclipped]).max()
        # window inside the stored range and non-degenerate
        assert 1 <= ds.WindowWidth <= mapping.max_stored


@pytest.mark.external
def test_batch_output_passes_dciodvfy(first_run):
    out, _ = first_run
    assert dciodvfy_errors(_outputs(out)[0]) == []


def test_summary_json(first_run, phantom_root, n_pairs):
    out, summary = first_run
    data = load_summary(out / "summary.json")
    assert data["schema"] == SCHEMA
    assert data["counts"] == summary.counts
    assert data["counts"]["done"] == n_pairs
    for rec in data["pairs"]:
        assert rec["status"] == "done" and rec["error"] is None
        assert set(rec["inputs"]) == {"le", "he"}
        for side in ("le", "he"):
            assert Path(rec["inputs"][side]["path"]).is_file()
            assert len(rec["inputs"][side]["sha256"]) == 64
        assert {"decode", "kernel", "encode_write", "total"} <= set(rec["timings_s"])
        assert all(v >= 0 for v in rec["timings_s"].values())
        assert rec["weight"] is not None and 0.1 < rec["weight"] < 0.5  # physics.md table 1/2: w ~0.17-0.31
        assert (out / rec["outputs"][0]["path"]).is_file()
    reasons = {Path(e["path"]).name: e for e in data["excluded"]}
    assert reasons["README.txt"]["role"] == "NOT_DICOM" and reasons["README.txt"]["reason"]


def test_rerun_skips_done_pairs_and_force_redoes(first_run, phantom_root, n_pairs):
    out, first = first_run
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in _outputs(out)}
    again = run_batch([phantom_root], out, workers=1)
    assert again.n_skipped == n_pairs and again.n_done == 0
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in _outputs(out)} == before  # untouched
    assert [o["sop_instance_uid"] for r in again.pairs for o in r.outputs] == [
        o["sop_instance_uid"] for r in first.pairs for o in r.outputs]

    forced = run_batch([phantom_root], out, workers=1, force=True)
    assert forced.n_done == n_pairs and forced.n_skipped == 0
    assert sorted(_outputs(out)) == sorted(before)  # same names, no duplicates
    # deterministic UIDs: same inputs and parameters give the same instance UIDs
    assert {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in before} == {
        o["sop_instance_uid"] for r in first.pairs for o in r.outputs}


def test_changed_parameters_are_redone(first_run, explicit_run):
    _, first = first_run
    out, redo = explicit_run
    assert redo.n_done == len(first.pairs) and redo.n_skipped == 0
    assert all(r.weight == pytest.approx(0.3) for r in redo.pairs)
    old = {o["sop_instance_uid"] for r in first.pairs for o in r.outputs}
    assert not old & {o["sop_instance_uid"] for r in redo.pairs for o in r.outputs}
    assert len(_outputs(out)) == len(first.pairs)  # replaced in place, not added


def test_one_bad_exam_does_not_stop_the_batch(phantom_root, tmp_path, monkeypatch, n_pairs):
    real = batch_mod._recombine
    bad_study = sorted({p.parent.parent.name for p in phantom_root.rglob("*_LE.dcm")})[0]

    def flaky(images, weight, register):
        if Path(images[0].path).parent.parent.name == bad_study:
            raise RuntimeError("simulated decoder crash")
        return real(images, weight, register)

    monkeypatch.setattr(batch_mod, "_recombine", flaky)
    summary = run_batch([phantom_root], tmp_path / "out", workers=1)
    assert summary.n_failed == n_pairs // 2 and summary.n_done == n_pairs // 2
    failed = [r for r in summary.pairs if r.status == "failed"]
    assert all("simulated decoder crash" in r.error for r in failed)
    assert all(r.outputs == [] for r in failed)
    assert len(_outputs(tmp_path / "out")) == n_pairs // 2


def test_interrupted_batch_rerun_completes(phantom_root, tmp_path, monkeypatch, n_pairs):
    """Interrupt during the 3rd write (temp file half written), rerun: complete, no duplicates, no temp."""
    from cemrecon.io import write as write_mod

    real = write_mod.write_dataset_atomic
    calls = {"n": 0}

    def dying(ds, path):
        calls["n"] += 1
        if calls["n"] == 3:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            (Path(path).parent / f".{Path(path).name}.x1y2z3.tmp").write_bytes(b"DICM partial")
            raise KeyboardInterrupt  # what a Ctrl-C / kill looks like mid-write
        return real(ds, path)

    out = tmp_path / "out"
    monkeypatch.setattr(write_mod, "write_dataset_atomic", dying)
    with pytest.raises(KeyboardInterrupt):
        run_batch([phantom_root], out, workers=1)
    assert len(_outputs(out)) == 2
    assert len(list(out.rglob("*.tmp"))) == 1
    assert not (out / "summary.json").exists()

    monkeypatch.setattr(write_mod, "write_dataset_atomic", real)
    summary = run_batch([phantom_root], out, workers=1)
    assert summary.n_skipped == 2 and summary.n_done == n_pairs - 2 and summary.n_failed == 0
    assert not list(out.rglob("*.tmp"))
    files = _outputs(out)
    assert len(files) == n_pairs
    uids = [pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in files]
    assert len(set(uids)) == n_pairs


def test_killed_process_rerun_completes(phantom_root, tmp_path, n_pairs):
    """SIGKILL a real CLI run as soon as its first output appears; the rerun finishes the job."""
    from cemrecon.cli import main

    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cemrecon", "recombine", str(phantom_root), "--out", str(out),
         "--workers", "1", "--weight", "0.3", "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline and proc.poll() is None and not _outputs(out):
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    done_before = len(_outputs(out))
    assert done_before >= 1  # it got at least as far as one output
    assert main(["recombine", str(phantom_root), "--out", str(out), "--workers", "1", "--weight", "0.3",
                 "--quiet"]) == 0
    summary = load_summary(out / "summary.json")
    # every output present after the kill was complete (atomic rename) and is kept as it is
    assert summary["counts"]["skipped"] == done_before
    assert summary["counts"]["skipped"] + summary["counts"]["done"] == n_pairs
    assert not list(out.rglob("*.tmp"))
    assert len(_outputs(out)) == n_pairs


def test_stale_temp_files_are_removed(phantom_root, tmp_path):
    exam = sorted(p for p in phantom_root.iterdir() if p.is_dir())[0]
    out = tmp_path / "out"
    (out / "1.2.3").mkdir(parents=True)
    stale = [out / ".summary.json.abc.tmp", out / "1.2.3" / ".R_CC_0_RC.dcm.k9.tmp"]
    for p in stale:
        p.write_bytes(b"partial")
    keep = out / "notes.tmp"  # not one of ours (no leading dot): left alone
    keep.write_text("user file")
    run_batch([exam], out, workers=1, weight=0.3)
    assert not any(p.exists() for p in stale)
    assert keep.exists()


def test_output_folder_inside_the_input_folder(phantom_root, tmp_path):
    """Our own RC files, found again by the next scan, are neither inputs nor 'excluded inputs'."""
    exam = tmp_path / "exam"
    shutil.copytree(sorted(p for p in phantom_root.iterdir() if p.is_dir())[0] / "dicom", exam)
    first = run_batch([exam], exam / "out", workers=1, weight=0.3)
    again = run_batch([exam], exam / "out", workers=1, weight=0.3)
    assert first.n_done == 4 and again.n_skipped == 4 and again.counts["pairs"] == 4
    assert again.excluded == []


def test_unwritable_output_is_fatal(phantom_root, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="not writable"):
        run_batch([phantom_root], blocker / "out", workers=1)


def test_bad_arguments(phantom_root, tmp_path):
    with pytest.raises(ValueError, match="weight must be a number or one of"):
        run_batch([phantom_root], tmp_path, weight="heavy")
    with pytest.raises(ValueError, match="weight must be a positive"):
        run_batch([phantom_root], tmp_path, weight=-1.0)
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        run_batch([phantom_root], tmp_path, workers=0)


def test_process_pool_matches_serial(phantom_root, tmp_path, explicit_run):
    _, serial = explicit_run
    progress = []
    summary = run_batch([phantom_root], tmp_path / "out", workers=2, weight=0.3, progress=progress.append)
    assert summary.executor.startswith("ProcessPoolExecutor(max_workers=2")
    assert len(progress) == 2  # one callback per exam
    assert summary.n_done == len(serial.pairs)
    by_key = {r.key: r for r in serial.pairs}
    for rec in summary.pairs:
        assert rec.outputs[0]["sop_instance_uid"] == by_key[rec.key].outputs[0]["sop_instance_uid"]
        assert rec.weight == pytest.approx(by_key[rec.key].weight)


def _die_on_bad_exam(job):
    """Stand-in job for the pool: the worker process dies (like a decoder segfault) on exam "bad"."""
    if job.study_uid == "bad":
        os._exit(70)
    return batch_mod.ExamOutcome(job.study_uid)


def test_crashed_worker_fails_only_its_exam():
    from types import SimpleNamespace

    def job(uid):
        img = SimpleNamespace(path=f"/in/{uid}.dcm", sop_instance_uid=uid)
        pair = SimpleNamespace(key=f"{uid}/R/CC/0", study_uid=uid, laterality="R", view="CC",
                               acquisition_index=0, le=img, he=img)
        return batch_mod._ExamJob(uid, (pair,), settings=None)

    jobs = [job(uid) for uid in ("a", "bad", "c", "d", "e")]
    outcomes, _ = batch_mod._run_jobs(jobs, None, 2, None, job_fn=_die_on_bad_exam)
    by_uid = {o.study_uid: o for o in outcomes}
    assert [r.status for r in by_uid["bad"].records] == ["failed"]
    assert "worker process died" in by_uid["bad"].records[0].error
    for uid in ("a", "c", "d", "e"):  # finished normally (the stand-in jobs return no pair records)
        assert by_uid[uid].records == []


@pytest.mark.dask
def test_dask_local_cluster_executor(phantom_root, tmp_path, explicit_run):
    distributed = require_module("distributed")
    _, serial = explicit_run
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        summary = run_batch([phantom_root], tmp_path / "out", executor=client.get_executor(), weight=0.3)
    assert summary.n_done == len(serial.pairs) and summary.n_failed == 0
    by_key = {r.key: r for r in serial.pairs}
    for rec in summary.pairs:
        assert rec.outputs[0]["sop_instance_uid"] == by_key[rec.key].outputs[0]["sop_instance_uid"]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["counts"]["done"] == len(serial.pairs)


@pytest.fixture(scope="module")
def calibration_file(tmp_path_factory) -> Path:
    from cemrecon.calibrate import Calibration

    path = tmp_path_factory.mktemp("cal") / "cal.json"
    Calibration.physics_predicted().save(path)
    return path


@pytest.fixture(scope="module")
def calibrated_run(phantom_root, tmp_path_factory, calibration_file):
    exam = sorted(p for p in phantom_root.iterdir() if p.is_dir())[0]
    out = tmp_path_factory.mktemp("cal_out")
    return exam, out, run_batch([exam], out, workers=1, calibration=calibration_file)


def test_calibration_adds_iodine_images(calibrated_run, calibration_file):
    from cemrecon.io.read import read_exams
    from cemrecon.io.write import decode_pixels, read_mapping
    from cemrecon.iodine import iodine_map_pair

    exam, out, summary = calibrated_run
    assert summary.n_done == 4 and summary.parameters["calibration_id"]
    assert summary.parameters["iodine_rolloff"] is True
    pairs = {p.key: p for p in read_exams([exam]).pairs}
    rec = summary.pairs[0]
    kinds = {o["kind"]: o for o in rec.outputs}
    assert set(kinds) == {"rc", "iodine"}
    path = out / kinds["iodine"]["path"]
    assert path.name.endswith("_IODINE.dcm")
    ds = pydicom.dcmread(path)
    assert summary.parameters["calibration_id"] in ds.DerivationDescription
    mapping = read_mapping(ds)
    assert mapping.quantity == "IODINE_MG_CM2"
    # the batch fits the roll-off thickness on the LE's fat (at this 1 mm pixel size, unbinned)
    from cemrecon.io.inputs import load_pair
    from cemrecon.quantify.breast import rolloff_reference

    le = load_pair(pairs[rec.key], None)[0]
    ref = rolloff_reference(le.pixels, pixel_mm=le.meta.pixel_spacing_mm[0],
                            view=pairs[rec.key].view.value, dark_offset_dn=le.meta.dark_offset_dn)
    iodine = iodine_map_pair(pairs[rec.key], calibration=str(calibration_file),
                             rolloff_reference=ref).iodine_mg_cm2.astype(np.float64)
    inside = (ds.pixel_array > 0) & (ds.pixel_array < mapping.max_stored)
    assert inside.mean() > 0.99
    # reversible within half a quantisation step (+ float32 rounding of the map)
    assert np.abs(decode_pixels(ds) - iodine)[inside].max() <= mapping.step / 2 + 1e-5 * np.abs(iodine).max()
    # rerun with the same calibration: skipped; without it the fingerprint differs: redone
    assert run_batch([exam], out, workers=1, calibration=calibration_file).n_skipped == 4
    assert run_batch([exam], out, workers=1).n_done == 4


def test_iodine_image_periphery_reads_tissue_as_no_iodine(tmp_path, calibration_file):
    # One patient at 0.2 mm pixels.  With the compressed thickness everywhere the iodine image
    # reads the thinning periphery as large negative iodine (measured on this phantom, CC / MLO:
    # -6.8 / -7.9 mg/cm^2 median at 5-10 mm from the skin, -1.5 / -2.1 at 10-15 mm).  With the roll-off
    # thickness fitted on the LE's fat (the default), each band's median must be below half the
    # 0.3 mg/cm^2 clinical threshold in size: what is left is glandular tissue read at a few
    # hundredths of a mg/cm^2 (the weights' composition residual) and BPE.  Without the fit the
    # 5-10 mm band must read below -1 (the test can fail).
    from cemrecon.io.inputs import load_pair
    from cemrecon.io.read import read_exams
    from cemrecon.io.write import decode_pixels
    from cemrecon.phantom import write_exams
    from cemrecon.quantify.breast import segment_breast

    write_exams(tmp_path / "in", 1, seed=11, scale=0.5)
    exam = next(p for p in (tmp_path / "in").iterdir() if p.is_dir())
    pairs = {p.key: p for p in read_exams([exam]).pairs}
    key = sorted(pairs)[0]
    medians = {}
    for fit in (True, False):
        summary = run_batch([exam], tmp_path / f"out{fit}", workers=1, calibration=calibration_file,
                            iodine_rolloff=fit)
        rec = next(r for r in summary.pairs if r.key == key)
        out = {o["kind"]: o for o in rec.outputs}["iodine"]["path"]
        iodine = decode_pixels(pydicom.dcmread(tmp_path / f"out{fit}" / out))
        le = load_pair(pairs[key], None)[0]
        seg = segment_breast(le.pixels, pixel_mm=le.meta.pixel_spacing_mm[0],
                             view=pairs[key].view.value, dark_offset_dn=le.meta.dark_offset_dn)
        medians[fit] = [float(np.median(iodine[seg.breast_mask & (seg.distance_mm >= lo)
                                               & (seg.distance_mm < hi)]))
                        for lo, hi in ((5, 10), (10, 15), (15, 25))]
    assert all(abs(m) < 0.15 for m in medians[True]), medians
    assert medians[False][0] < -1.0, medians


def test_calibrated_batch_decodes_each_pair_once(phantom_root, tmp_path, calibration_file, monkeypatch):
    """The RC and the iodine map come from one decode of the pair (decoding dominates a PACS job)."""
    from cemrecon.io.pair import Pair

    exam = min(p for p in phantom_root.iterdir() if p.is_dir())
    calls: list[str] = []
    original = Pair.load

    def counting_load(self, *args, **kwargs):
        calls.append(self.key)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Pair, "load", counting_load)
    summary = run_batch([exam], tmp_path / "out", workers=1, calibration=calibration_file)
    assert summary.n_done == 4
    assert sorted(calls) == sorted(rec.key for rec in summary.pairs)  # once per pair, not twice
    assert all({o["kind"] for o in rec.outputs} == {"rc", "iodine"} for rec in summary.pairs)
    assert all(rec.timings_s["decode"] > 0 for rec in summary.pairs)


@pytest.mark.external
def test_iodine_output_passes_dciodvfy(calibrated_run):
    _, out, _ = calibrated_run
    assert dciodvfy_errors(sorted(out.rglob("*_IODINE.dcm"))[0]) == []


def test_bad_calibration_file(phantom_root, tmp_path):
    from cemrecon.errors import CalibrationError

    bad = tmp_path / "cal.json"
    bad.write_text("{not json")
    with pytest.raises(CalibrationError, match="cal.json"):
        run_batch([phantom_root], tmp_path / "out", workers=1, calibration=bad)


def test_inputs_never_modified(phantom_root, input_hashes):
    """Last test of the module: after every batch above (serial, forced, pool, Dask, calibrated, killed)."""
    assert _tree_hashes(phantom_root) == input_hashes
