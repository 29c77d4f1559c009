"""Batch recombination: many exams, unattended, safely re-runnable.

:func:`run_batch` scans the inputs once (:func:`cemrecon.io.read.read_exams`),
then sends one job per **exam** (study) to a :mod:`concurrent.futures`
executor.  Each job recombines every LE/HE pair of its exam and writes one
derived RC image per pair (:func:`cemrecon.io.write.write_rc`), plus an iodine
image when a calibration is given.  The run ends with ``OUT/summary.json``
(:mod:`cemrecon.pipeline.summary`).

Guarantees
----------
* **Inputs are never modified** (they are only read).
* **Atomic outputs**: every file is written to a temporary file in its
  destination folder and renamed into place, so a killed run leaves no partial
  ``.dcm``; stale temporary files of an interrupted run are removed at start.
* **Deterministic names and UIDs**: ``OUT/<study_uid>/<LAT>_<VIEW>_<acq>_RC.dcm``
  (``..._IODINE.dcm``); UIDs derive from the inputs and parameters.
* **Reruns skip finished work**: each output records a *fingerprint* (SHA-256
  of both input files' contents, the weight setting, the calibration file's
  contents, the pixel-mapping settings and the cemrecon version) in its private
  block; a pair whose outputs exist with the same fingerprint is ``skipped``
  unless ``force=True``.  An interrupted batch, rerun, therefore completes the
  missing pairs only, with no duplicates.
* **One bad exam never stops the batch**: a failing pair is recorded as
  ``failed`` with its error; a crashed worker process fails only the exams it
  was running (the pool is restarted once for the rest).

Parallelism
-----------
``executor=None`` uses a :class:`~concurrent.futures.ProcessPoolExecutor` with
``workers`` processes (default ``min(4, cores, exams)``; ``workers=1`` runs in
this process, no pool).  Any :class:`~concurrent.futures.Executor` can be
passed instead, e.g. a Dask cluster's ``Client(address).get_executor()``; the
caller then owns it.  Numba threads are capped in every worker
(``NUMBA_NUM_THREADS`` / :func:`numba.set_num_threads`) so that workers x
threads never exceeds the cores; cemrecon's kernels already use one thread per
worker thread or child process (:mod:`cemrecon._numba`).
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import re
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from cemrecon import __version__
from cemrecon.errors import CalibrationError, OutputError
from cemrecon.pipeline.summary import DONE, FAILED, SKIPPED, BatchSummary, PairRecord, write_summary

__all__ = ["run_batch", "ExamOutcome", "output_name", "study_dir_name", "SUMMARY_NAME", "default_workers"]

logger = logging.getLogger(__name__)

SUMMARY_NAME = "summary.json"
#: Default cap on worker processes (each holds a full LE + HE + RC in memory, ~100 MB).
MAX_DEFAULT_WORKERS = 4
_SAFE = re.compile(r"[^0-9A-Za-z._-]+")
_HASH_CHUNK = 1 << 20
_WEIGHT_WORDS = ("physics", "thickness", "image")


# ---------------------------------------------------------------------------
# names


def study_dir_name(study_uid: str) -> str:
    """Folder name of a study's outputs (the Study Instance UID, made file-name safe)."""
    name = _SAFE.sub("_", str(study_uid)).strip("._") or "unknown-study"
    return name[:128]


def output_name(laterality: Any, view: Any, acquisition_index: int, kind: str = "RC") -> str:
    """File name of one derived image: ``<LAT>_<VIEW>_<acq>_<KIND>.dcm``."""
    return f"{laterality}_{view}_{int(acquisition_index)}_{kind}.dcm"


# ---------------------------------------------------------------------------
# settings shipped to the workers


@dataclass(frozen=True)
class _Settings:
    weight: Any  # a float or one of _WEIGHT_WORDS
    register: bool | str  # recombine_pair's register=: "auto", True or False
    calibration_path: str | None
    calibration_sha256: str | None
    force: bool
    threads: int
    out_dir: str
    iodine_rolloff: bool = True

    def parameter_text(self) -> str:
        from cemrecon.io.write import RC_SCALE_DN_PER_LN

        rolloff = f"iodine_rolloff={self.iodine_rolloff};" if self.calibration_sha256 else ""
        return (
            f"cemrecon={__version__};weight={self.weight!r};register={self.register!r};"
            f"calibration={self.calibration_sha256};{rolloff}"
            f"rc_scale={RC_SCALE_DN_PER_LN};bits=16"
        )


@dataclass(frozen=True)
class _ExamJob:
    study_uid: str
    pairs: tuple[Any, ...]
    settings: _Settings


@dataclass
class ExamOutcome:
    """Result of one exam job (what ``progress`` receives)."""

    study_uid: str
    records: list[PairRecord] = field(default_factory=list)


# ---------------------------------------------------------------------------
# worker side


def _set_numba_threads(threads: int) -> None:
    import sys

    if "numba" in sys.modules:
        import numba

        if not numba.config.DISABLE_JIT:
            numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))


def _init_worker(threads: int) -> None:
    """ProcessPoolExecutor initializer: cap numba's threads before anything imports numba.

    The environment variables only affect this fresh worker process (forkserver /
    spawn children import numba after this runs).
    """
    os.environ["NUMBA_NUM_THREADS"] = str(threads)
    os.environ["CEMRECON_NUM_THREADS"] = str(threads)
    _set_numba_threads(threads)


def _in_worker() -> bool:
    import threading

    return threading.current_thread() is not threading.main_thread() or multiprocessing.parent_process() is not None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@lru_cache(maxsize=4)
def _load_calibration(path: str, sha256: str | None) -> Any:
    from cemrecon.calibrate import Calibration

    return Calibration.load(path)


def _calibration_id(calibration: Any, sha256: str | None) -> str:
    return str(getattr(calibration, "calibration_id", "") or (sha256 or "")[:16])


def _existing_output(path: Path, fingerprint: str) -> dict[str, Any] | None:
    """Description of ``path`` if it exists and was written with ``fingerprint``."""
    if not path.is_file():
        return None
    import pydicom

    from cemrecon.io.write import read_mapping

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        mapping, info = read_mapping(ds, with_info=True)
    except Exception as exc:  # an unreadable old output is simply redone
        logger.info("existing output %s is not reusable (%s): redoing it", path, exc)
        return None
    if info["fingerprint"] != fingerprint:
        return None
    return {
        "sop_instance_uid": str(ds.SOPInstanceUID),
        "series_instance_uid": str(ds.SeriesInstanceUID),
        "offset_dn": mapping.offset_dn,
        "scale_dn_per_unit": mapping.scale_dn_per_unit,
        "bits_stored": mapping.bits_stored,
        "quantity": mapping.quantity,
        "clip_fraction": info["clip_fraction"],
        "nonfinite_fraction": info["nonfinite_fraction"],
        "window_center": float(ds.WindowCenter),
        "window_width": float(ds.WindowWidth),
        "weight": info["weight"],
    }


def _rc_breast_mask(rc: np.ndarray) -> np.ndarray | None:
    """Breast region from the RC itself (tissue lowers RC like iodine, ~0.1 ln per cm).

    Otsu threshold on a subsample of the finite values; the lower class is the
    breast.  ``None`` (use the whole image) when the two classes are closer than
    0.05 ln, i.e. less than ~0.5 cm of tissue apart: then there is no air region.
    """
    from skimage.filters import threshold_otsu

    finite = np.isfinite(rc)
    step = max(1, int(np.sqrt(rc.size / 65536)))
    sample = rc[::step, ::step][finite[::step, ::step]]
    if sample.size < 16 or np.ptp(sample) == 0:
        return None
    thr = threshold_otsu(sample)
    low, high = sample[sample <= thr], sample[sample > thr]
    if low.size == 0 or high.size == 0 or float(high.mean() - low.mean()) < 0.05:
        return None
    return finite & (rc <= thr)


@dataclass
class _Recombined:
    rc: np.ndarray
    weight: float
    weight_source: str
    spatial_locations_preserved: bool
    timings: dict[str, float]


def _recombine(images: tuple[Any, Any], weight: Any, register: bool | str = "auto") -> _Recombined:
    """Recombine one decoded pair (two :class:`~cemrecon.io.inputs.LoadedImage`) with
    :func:`cemrecon.recombination.recombine_pair`."""
    from cemrecon.recombination import recombine_pair

    kwargs: dict[str, Any] = {"register": register}
    if weight not in (None, "physics"):
        kwargs["weight"] = weight
    result = recombine_pair(images, **kwargs)
    t = result.timings or {}
    prov = result.provenance or {}
    mean_w = float(np.mean(result.weight))
    source = str(result.weight_mode)
    if np.ndim(result.weight) > 0:
        source += f" per-pixel map, mean w = {mean_w:.4g}"
    if prov.get("thickness_mm") is not None:
        source += f", T = {float(prov['thickness_mm']):.1f} mm"
    if not prov.get("spatial_locations_preserved", True):
        source += ", HE registered to LE"
    return _Recombined(
        rc=np.asarray(result.rc),
        weight=mean_w,
        weight_source=source,
        spatial_locations_preserved=bool(prov.get("spatial_locations_preserved", True)),
        timings={
            "register": float(t.get("register_s", 0.0)),
            "weight": float(t.get("weight_s", 0.0)),
            "kernel": float(t.get("kernel_s", 0.0)),
        },
    )


def _process_pair(pair: Any, settings: _Settings) -> PairRecord:
    t_start = time.perf_counter()
    out_dir = Path(settings.out_dir)
    study_dir = out_dir / study_dir_name(pair.study_uid)
    rc_path = study_dir / output_name(pair.laterality, pair.view, pair.acquisition_index, "RC")
    iodine_path = (
        study_dir / output_name(pair.laterality, pair.view, pair.acquisition_index, "IODINE")
        if settings.calibration_path
        else None
    )
    record = PairRecord(
        key=pair.key,
        study_uid=pair.study_uid,
        laterality=str(pair.laterality),
        view=str(pair.view),
        acquisition_index=int(pair.acquisition_index),
        status=FAILED,
        inputs={
            "le": {"path": str(pair.le.path), "sop_instance_uid": pair.le.sop_instance_uid},
            "he": {"path": str(pair.he.path), "sop_instance_uid": pair.he.sop_instance_uid},
        },
    )
    try:
        le_hash, he_hash = _sha256(Path(pair.le.path)), _sha256(Path(pair.he.path))
        record.inputs["le"]["sha256"], record.inputs["he"]["sha256"] = le_hash, he_hash
        fingerprint = hashlib.sha256(
            f"{le_hash};{he_hash};{settings.parameter_text()}".encode()
        ).hexdigest()
        record.fingerprint = fingerprint

        # ---- already done with the same inputs and parameters?
        if not settings.force:
            wanted = [("rc", rc_path)] + ([("iodine", iodine_path)] if iodine_path else [])
            found = [(kind, p, _existing_output(p, fingerprint)) for kind, p in wanted]
            if all(info is not None for _, _, info in found):
                record.status = SKIPPED
                for kind, p, info in found:
                    weight = info.pop("weight")
                    if kind == "rc":
                        record.weight = weight
                    record.outputs.append({"kind": kind, "path": str(p.relative_to(out_dir)), **info})
                record.weight_source = "from existing output"
                record.timings_s = {"total": time.perf_counter() - t_start}
                return record

        # ---- decode (once: the RC and the iodine map share the pixels) + kernel
        from cemrecon.io.inputs import load_pair

        t_decode = time.perf_counter()
        images = load_pair(pair, None, caller="run_batch")
        decode_s = time.perf_counter() - t_decode
        res = _recombine(images, settings.weight, settings.register)
        rc, weight = res.rc, res.weight
        timings = {"decode": decode_s, **res.timings}
        record.weight, record.weight_source = weight, res.weight_source

        # ---- encode + write
        from cemrecon.io.write import write_iodine_image, write_rc

        t_write = time.perf_counter()
        mask = _rc_breast_mask(rc)
        written = write_rc(
            rc_path, rc, pair.le.header, pair.he.header,
            weight=weight, weight_description=res.weight_source or None, breast_mask=mask, fingerprint=fingerprint,
            spatial_locations_preserved=res.spatial_locations_preserved,
        )
        record.outputs.append({"kind": "rc", **written.as_dict(), "path": str(rc_path.relative_to(out_dir))})
        if iodine_path is not None:
            calibration = _load_calibration(settings.calibration_path, settings.calibration_sha256)
            from cemrecon.iodine import iodine_map_result

            t_iodine = time.perf_counter()
            reference = _rolloff_reference(images[0], pair) if settings.iodine_rolloff else None
            iodine = iodine_map_result(*images, calibration=calibration,  # the pixels decoded above
                                       rolloff_reference=reference)
            timings["iodine"] = time.perf_counter() - t_iodine
            written_i = write_iodine_image(
                iodine_path, np.asarray(iodine.iodine_mg_cm2, dtype=np.float32), pair.le.header, pair.he.header,
                weight=weight, calibration_id=_calibration_id(calibration, settings.calibration_sha256),
                breast_mask=np.asarray(iodine.mask, dtype=bool), fingerprint=fingerprint,
                spatial_locations_preserved=res.spatial_locations_preserved,
            )
            record.outputs.append(
                {"kind": "iodine", **written_i.as_dict(), "path": str(iodine_path.relative_to(out_dir))}
            )
        timings["encode_write"] = time.perf_counter() - t_write - timings.get("iodine", 0.0)
        timings["total"] = time.perf_counter() - t_start
        record.timings_s = {k: round(v, 6) for k, v in timings.items()}
        record.status = DONE
    except Exception as exc:  # one bad pair never stops the batch
        logger.warning("pair %s failed: %s: %s", pair.key, type(exc).__name__, exc)
        record.status = FAILED
        record.error = f"{type(exc).__name__}: {exc}"
        record.timings_s = {"total": round(time.perf_counter() - t_start, 6)}
    return record


def _rolloff_reference(le: Any, pair: Any) -> Any:
    """Fat and distance from the skin line of the pair's LE (2 x 2 binned at <= 0.15 mm pixels),
    for the iodine map's roll-off thickness."""
    from cemrecon.quantify.breast import rolloff_reference

    meta = le.meta
    spacing = getattr(meta, "pixel_spacing_mm", None)
    if not spacing:
        return None  # iodine_map_result reports the missing pixel spacing itself
    view = getattr(getattr(pair, "view", None), "value", None) or "CC"
    px = float(spacing[0])
    return rolloff_reference(le.pixels, pixel_mm=px, view=str(view),
                             dark_offset_dn=getattr(meta, "dark_offset_dn", None),
                             downsample=2 if px <= 0.15 else 1)


def _process_exam(job: _ExamJob) -> ExamOutcome:
    """Worker entry point: all pairs of one exam (top-level so process pools can pickle it)."""
    if _in_worker():  # a pool / Dask worker: cap this thread's numba threads (thread-local in numba)
        _set_numba_threads(job.settings.threads)
    outcome = ExamOutcome(study_uid=job.study_uid)
    for pair in job.pairs:
        outcome.records.append(_process_pair(pair, job.settings))
    return outcome


# ---------------------------------------------------------------------------
# executors


class _InlineExecutor(Executor):
    """Runs each job at submit time in this process (``workers=1``)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future


def default_workers(n_jobs: int | None = None) -> int:
    """``min(4, cores, n_jobs)``, at least 1."""
    cores = os.cpu_count() or 1
    n = min(MAX_DEFAULT_WORKERS, cores)
    if n_jobs is not None:
        n = min(n, max(n_jobs, 1))
    return max(n, 1)


def _threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(workers, 1))


def _mp_context() -> multiprocessing.context.BaseContext:
    # forkserver: children start from a clean, single-threaded server process, so no
    # fork-after-threads hazards (numba's threading layer, tqdm's monitor thread).
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _make_pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_mp_context(),
        initializer=_init_worker,
        initargs=(_threads_per_worker(workers),),
    )


def _describe_executor(executor: Executor) -> str:
    workers = getattr(executor, "_max_workers", None)
    name = type(executor).__name__
    return f"{name}(max_workers={workers})" if workers is not None else name


# ---------------------------------------------------------------------------
# main-process side


def _clean_stale_temp_files(out_dir: Path) -> int:
    """Remove ``.<name>.<random>.tmp`` files left in ``out_dir`` by an interrupted run."""
    from cemrecon._fileio import stale_temp_files

    removed = 0
    for entry in list(stale_temp_files(out_dir)):
        if entry.is_file():
            entry.unlink(missing_ok=True)
            removed += 1
    if removed:
        logger.info("removed %d stale temporary file(s) from an interrupted run in %s", removed, out_dir)
    return removed


def _check_weight(weight: Any) -> Any:
    if weight is None:
        return "physics"
    if isinstance(weight, str):
        word = weight.strip().lower()
        if word in _WEIGHT_WORDS:
            return word
        try:
            weight = float(word)
        except ValueError:
            raise ValueError(
                f"weight must be a number or one of {', '.join(_WEIGHT_WORDS)}, got {weight!r}"
            ) from None
    if isinstance(weight, bool) or not isinstance(weight, (int, float, np.floating, np.integer)):
        raise TypeError(f"weight must be None, a number or one of {_WEIGHT_WORDS}, got {type(weight).__name__}")
    weight = float(weight)
    if not np.isfinite(weight) or weight <= 0:
        raise ValueError(f"weight must be a positive finite number, got {weight!r}")
    return weight


def _excluded_entries(result: Any, out_dir: Path) -> list[dict[str, Any]]:
    out = []
    out_resolved = out_dir.resolve()
    for entry in result.excluded:
        path = Path(entry.path)
        try:  # our own outputs (out_dir inside an input folder) are not "excluded inputs"
            if path.resolve().is_relative_to(out_resolved):
                continue
        except OSError:
            pass
        out.append(
            {
                "path": entry.path,
                "sop_instance_uid": entry.sop_instance_uid,
                "role": str(entry.role),
                "reason": entry.reason,
                "notes": list(entry.notes),
            }
        )
    return out


def _failed_exam(job: _ExamJob, message: str) -> ExamOutcome:
    outcome = ExamOutcome(study_uid=job.study_uid)
    for pair in job.pairs:
        outcome.records.append(
            PairRecord(
                key=pair.key, study_uid=pair.study_uid, laterality=str(pair.laterality), view=str(pair.view),
                acquisition_index=int(pair.acquisition_index), status=FAILED,
                inputs={"le": {"path": str(pair.le.path), "sop_instance_uid": pair.le.sop_instance_uid},
                        "he": {"path": str(pair.he.path), "sop_instance_uid": pair.he.sop_instance_uid}},
                error=message,
            )
        )
    return outcome


def _run_jobs(
    jobs: list[_ExamJob],
    executor: Executor | None,
    workers: int,
    progress: Callable[[ExamOutcome], None] | None,
    job_fn: Callable[[_ExamJob], ExamOutcome] = _process_exam,
) -> tuple[list[ExamOutcome], str]:
    """Run the exam jobs; returns their outcomes (in job order) and a description of the executor."""
    outcomes: dict[str, ExamOutcome] = {}

    def finish(outcome: ExamOutcome) -> None:
        outcomes[outcome.study_uid] = outcome
        if progress is not None:
            progress(outcome)

    if executor is not None:  # caller-owned (e.g. Dask): no restart, never shut down here
        futures = {executor.submit(job_fn, job): job for job in jobs}
        for future in as_completed(futures):
            try:
                finish(future.result())
            except Exception as exc:
                finish(_failed_exam(futures[future], f"worker error: {type(exc).__name__}: {exc}"))
        return [outcomes[j.study_uid] for j in jobs], _describe_executor(executor)

    if workers <= 1:
        for job in jobs:
            finish(job_fn(job))
        return [outcomes[j.study_uid] for j in jobs], "serial (in process)"

    # Own process pool.  If a worker process dies (a decoder segfault, the OOM killer), every
    # unfinished future fails with BrokenProcessPool and we cannot tell which exam did it, so
    # the unfinished exams are retried one at a time in a fresh single-worker pool: there, a
    # crash can only come from the exam in flight, which alone is marked failed.
    broken = False
    pool = _make_pool(workers)
    try:
        futures = {pool.submit(job_fn, job): job for job in jobs}
        for future in as_completed(futures):
            try:
                finish(future.result())
            except BrokenProcessPool:
                broken = True
            except Exception as exc:
                finish(_failed_exam(futures[future], f"worker error: {type(exc).__name__}: {exc}"))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    pending = [j for j in jobs if j.study_uid not in outcomes]
    if broken and pending:
        logger.warning("a worker process died; retrying %d exam(s) one at a time", len(pending))
    pool = None
    try:
        for job in pending:
            if pool is None:
                pool = _make_pool(1)
            try:
                finish(pool.submit(job_fn, job).result())
            except BrokenProcessPool:
                finish(_failed_exam(job, "the worker process died while processing this exam "
                                         "(crash or out of memory)"))
                pool.shutdown(wait=True, cancel_futures=True)
                pool = None
            except Exception as exc:
                finish(_failed_exam(job, f"worker error: {type(exc).__name__}: {exc}"))
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return [outcomes[j.study_uid] for j in jobs], f"ProcessPoolExecutor(max_workers={workers})"


def run_batch(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    executor: Executor | None = None,
    workers: int | None = None,
    weight: float | str | None = None,
    register: bool | str = "auto",
    calibration: str | os.PathLike[str] | None = None,
    iodine_rolloff: bool = True,
    force: bool = False,
    strictness: str = "warn",
    progress: Callable[[ExamOutcome], None] | None = None,
    on_scanned: Callable[[int, int], None] | None = None,
) -> BatchSummary:
    """Recombine every LE/HE pair found under ``paths`` and write derived DICOM to ``out_dir``.

    Parameters
    ----------
    paths : path-like or iterable of path-like
        Files, folders (walked recursively) or DICOMDIRs.
    out_dir : path-like
        Output folder (created).  Layout: ``<study_uid>/<LAT>_<VIEW>_<acq>_RC.dcm``
        (and ``..._IODINE.dcm`` with a calibration) plus ``summary.json``.
    executor : concurrent.futures.Executor, optional
        Where exam jobs run (e.g. ``distributed.Client(address).get_executor()``);
        the caller owns and shuts it down.  Default: a process pool of ``workers``.
    workers : int, optional
        Processes of the default pool (default :func:`default_workers`); ``1`` runs
        everything in this process.  Ignored when ``executor`` is given.
    weight : float or {"physics", "thickness", "image"}, optional
        Recombination weight, passed to :func:`cemrecon.recombination.recombine_pair`
        (``None``: its default, ``"physics"``).
    register : {"auto", True, False}
        LE/HE registration before recombination (``recombine_pair(register=)``):
        ``"auto"`` corrects a detected shift of half a pixel or more.  At full size it
        costs ~2 s per pair here, more than everything else for uncompressed input.
    calibration : path-like, optional
        Calibration JSON (:meth:`cemrecon.calibrate.Calibration.load`); also write an
        iodine image (mg I/cm^2) per pair.
    iodine_rolloff : bool
        Fit the iodine image's thickness in the roll-off towards the skin line so that fat reads
        no iodine (:func:`cemrecon.iodine.fit_rolloff_thickness`, reference from
        :func:`cemrecon.quantify.breast.rolloff_reference` on 2 x 2-binned LE).  With the
        compressed thickness everywhere the outer ~15 mm read tissue as large negative iodine
        (phantoms 33-69 mm thick: -3 to -11 mg/cm^2 median at 5-10 mm from the skin).  Costs
        ~1.5 s per pair at 0.2 mm pixels (segmentation and fit).
    force : bool
        Redo pairs whose outputs already exist with the same inputs and parameters.
    strictness : {"ignore", "warn", "raise"}
        Passed to :func:`cemrecon.io.read.read_exams`.
    progress : callable, optional
        Called in this process with each finished :class:`ExamOutcome`.
    on_scanned : callable, optional
        Called once after the scan as ``on_scanned(n_exams, n_pairs)``.

    Returns
    -------
    BatchSummary
        Also written to ``out_dir/summary.json``.

    Raises
    ------
    OutputError
        ``out_dir`` cannot be created or written (nothing was done).
    FileNotFoundError
        An input path does not exist.
    ValueError, TypeError
        Bad ``weight``, ``workers`` or ``strictness``.
    CalibrationError
        The calibration file cannot be loaded.
    """
    started = time.perf_counter()
    weight = _check_weight(weight)
    if register not in ("auto", True, False):
        raise ValueError(f"register must be 'auto', True or False, got {register!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    inputs = [str(p) for p in paths]
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-probe-{os.getpid()}.tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"output folder {out} is not writable: {exc}") from exc
    _clean_stale_temp_files(out)

    cal_path, cal_sha, cal_id = None, None, None
    if calibration is not None:
        cal_path = str(Path(calibration).resolve())
        try:
            cal_sha = _sha256(Path(cal_path))
        except OSError as exc:
            raise CalibrationError(f"cannot read calibration file {calibration}: {exc}") from exc
        try:
            import cemrecon.iodine  # noqa: F401
        except ImportError as exc:
            raise CalibrationError(
                f"--calibration needs the iodine module (cemrecon.iodine), which is not available: {exc}"
            ) from exc
        try:
            cal = _load_calibration(cal_path, cal_sha)  # fail early, in this process
        except CalibrationError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CalibrationError(f"cannot load calibration file {calibration}: {exc}") from exc
        cal_id = _calibration_id(cal, cal_sha)

    from cemrecon.io.read import read_exams

    result = read_exams(inputs, strictness=strictness)
    by_study: dict[str, list[Any]] = {}
    for pair in result.pairs:
        by_study.setdefault(pair.study_uid, []).append(pair)
    if on_scanned is not None:
        on_scanned(len(by_study), len(result.pairs))

    n_jobs = len(by_study)
    if executor is None:
        workers = workers if workers is not None else default_workers(n_jobs)
        workers = min(workers, max(n_jobs, 1))
        threads = _threads_per_worker(workers)
    else:
        threads = 1  # shared cluster workers: one numba thread per task thread
    settings = _Settings(
        weight=weight, register=register, calibration_path=cal_path, calibration_sha256=cal_sha, force=bool(force),
        threads=threads, out_dir=str(out.resolve()), iodine_rolloff=bool(iodine_rolloff),
    )
    jobs = [_ExamJob(study, tuple(pairs), settings) for study, pairs in by_study.items()]
    logger.info("%d pairs in %d exams to process into %s", len(result.pairs), n_jobs, out)

    outcomes, executor_text = _run_jobs(jobs, executor, workers or 1, progress) if jobs else ([], "none")

    summary = BatchSummary(
        inputs=inputs,
        out_dir=str(out),
        parameters={
            "weight": weight,  # "physics" is recombine's default
            "register": register,
            "calibration": cal_path,
            "calibration_id": cal_id,
            "iodine_rolloff": bool(iodine_rolloff) if cal_path else None,
            "force": bool(force),
            "strictness": str(strictness),
            **_mapping_parameters(),
        },
        executor=executor_text,
        pairs=[r for o in outcomes for r in o.records],
        excluded=_excluded_entries(result, out),
        issues=list(getattr(result, "issues", []) or []),
        cemrecon_version=__version__,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    summary.elapsed_s = time.perf_counter() - started
    write_summary(summary, out / SUMMARY_NAME)
    logger.info(
        "batch done: %d done, %d skipped, %d failed, %d files excluded (%.1f s)",
        summary.n_done, summary.n_skipped, summary.n_failed, len(summary.excluded), summary.elapsed_s,
    )
    return summary


def _mapping_parameters() -> dict[str, Any]:
    from cemrecon.io.write import RC_SCALE_DN_PER_LN

    return {"rc_scale_dn_per_ln": RC_SCALE_DN_PER_LN, "bits_stored": 16}
