"""Benchmark the reader: header scan + pairing throughput, and pair decoding per syntax.

Run::

    python benchmarks/bench_read.py [--files 1024] [--scale 0.1] [--decode-scale 0.25]

1. *Scan + pair*: ``read_exams`` on >= 1,000 files (copies of one phantom exam with new
   Study / SOP / Frame of Reference UIDs, i.e. 1/8 as many studies), in files/s, against
   two baselines in the same run: a bare ``dcmread(stop_before_pixels=True)`` loop (the
   floor: what parsing alone costs) and pydicom's default full ``dcmread`` of every file.
2. *Decode*: for JPEG 2000 lossless, JPEG-LS lossless, RLE lossless and uncompressed, the
   time of ``Pair.load()`` (serial, validated), ``Pair.load(parallel=True)`` (two threads)
   and ``Pair.load(executor=ProcessPoolExecutor(2))`` against pydicom's default serial
   decode (``dcmread(path).pixel_array`` for LE then HE).  Median of repeats; ratio > 1
   means faster than pydicom's serial decode.

Numbers depend on the machine and its load; only the ratios within one run mean much.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from pydicom import dcmread
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from cemrecon.io.read import read_exams

try:
    from cemrecon.phantom import write_exams
except ImportError:  # lazy export pending
    from cemrecon.phantom.exam import write_exams


def _make_copies(exam_dicom: Path, out: Path, n_files: int) -> list[Path]:
    sources = [dcmread(p) for p in sorted(exam_dicom.glob("*.dcm"))]
    paths = []
    n_studies = -(-n_files // len(sources))
    for s in range(n_studies):
        study = generate_uid(entropy_srcs=["bench", str(s)])
        folder = out / f"study{s:04d}"
        folder.mkdir(parents=True)
        for k, ds in enumerate(sources):
            ds.StudyInstanceUID = study
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(
                entropy_srcs=["bench", str(s), str(k)]
            )
            ds.FrameOfReferenceUID = generate_uid(entropy_srcs=["bench-for", str(s), ds.ImageLaterality, ds.ViewPosition])
            path = folder / f"IM{k:03d}"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
    return paths


def _timed(fn, repeat: int = 1) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_scan(exam_dicom: Path, work: Path, n_files: int) -> None:
    files = _make_copies(exam_dicom, work / "scan", n_files)
    n = len(files)
    # warm the OS page cache once so all three runs read from memory
    for p in files:
        p.read_bytes()

    def headers_only():
        for p in files:
            dcmread(p, stop_before_pixels=True)

    def full_read():
        for p in files:
            dcmread(p)

    result = None

    def ours():
        nonlocal result
        result = read_exams(work / "scan", strictness="ignore")

    t_ours = _timed(ours)
    t_floor = _timed(headers_only)
    t_full = _timed(full_read)
    assert result is not None and len(result.pairs) == n // 2, (len(result.pairs), n)
    print(f"\n== scan + classify + integrity check + pair: {n} files, {len(result.pairs)} pairs ==")
    print(f"read_exams                         {t_ours:7.2f} s  {n / t_ours:8.0f} files/s")
    print(f"baseline dcmread(stop_before_pixels) {t_floor:5.2f} s  {n / t_floor:8.0f} files/s"
          f"   read_exams costs x{t_ours / t_floor:.2f} the bare header parse")
    print(f"baseline dcmread (full, pydicom)   {t_full:7.2f} s  {n / t_full:8.0f} files/s"
          f"   read_exams runs at x{t_full / t_ours:.2f} its speed (no pixel bytes read, but it classifies,"
          " checks and pairs)")


def bench_decode(exam_dicom: Path, work: Path, repeat: int) -> None:
    le_src, he_src = exam_dicom / "R_CC_LE.dcm", exam_dicom / "R_CC_HE.dcm"
    shape = dcmread(le_src, stop_before_pixels=True)
    print(f"\n== decode one LE+HE pair ({shape.Rows}x{shape.Columns}), median of {repeat} ==")
    print(f"{'syntax':<34} {'serial pydicom':>14} {'Pair.load':>10} {'ratio':>6} {'threads':>8} {'ratio':>6}"
          f" {'2 procs':>8} {'ratio':>6}")
    pool = ProcessPoolExecutor(max_workers=2)
    pool.submit(int, 0).result()  # start the workers outside the timing
    for syntax in (ExplicitVRLittleEndian, JPEG2000Lossless, JPEGLSLossless, RLELossless):
        folder = work / f"dec-{syntax}"
        folder.mkdir()
        for src, name in ((le_src, "le.dcm"), (he_src, "he.dcm")):
            ds = dcmread(src)
            if syntax != ExplicitVRLittleEndian:
                ds.compress(syntax)
            ds.save_as(folder / name, enforce_file_format=True)
        (pair,) = read_exams(folder, strictness="ignore").pairs

        def serial():
            dcmread(folder / "le.dcm").pixel_array
            dcmread(folder / "he.dcm").pixel_array

        t_serial = _timed(serial, repeat)
        t_ours = _timed(pair.load, repeat)
        t_threads = _timed(lambda: pair.load(parallel=True), repeat)
        t_procs = _timed(lambda: pair.load(executor=pool), repeat)
        print(f"{syntax.name[:34]:<34} {t_serial * 1e3:11.1f} ms {t_ours * 1e3:7.1f} ms {t_serial / t_ours:5.2f}x"
              f" {t_threads * 1e3:5.1f} ms {t_serial / t_threads:5.2f}x {t_procs * 1e3:5.1f} ms {t_serial / t_procs:5.2f}x")
    pool.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1024, help="number of files to scan (>= 1000)")
    parser.add_argument("--scale", type=float, default=0.1, help="phantom scale for the scan copies")
    parser.add_argument("--decode-scale", type=float, default=0.25, help="phantom scale for the decode test")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    work = Path(tempfile.mkdtemp(prefix="cemrecon-bench-read-"))
    try:
        t0 = time.perf_counter()
        write_exams(work / "ph", n_exams=1, seed=0, scale=args.scale)
        write_exams(work / "ph_dec", n_exams=1, seed=0, scale=args.decode_scale)
        print(f"phantoms written in {time.perf_counter() - t0:.1f} s")
        (exam,) = [p / "dicom" for p in (work / "ph").iterdir()]
        (exam_dec,) = [p / "dicom" for p in (work / "ph_dec").iterdir()]
        bench_scan(exam, work, args.files)
        bench_decode(exam_dec, work, args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
