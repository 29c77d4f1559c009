"""End-to-end batch throughput: exams/min, serial vs parallel, uncompressed vs JPEG 2000 lossless.

Usage::

    python benchmarks/bench_pipeline.py [--exams 20] [--scale 1.0] [--workers 2] [--cache DIR]

Generates ``--exams`` full-size phantom exams once (4 LE/HE pairs each; cached
in ``--cache``, default ``$TMPDIR/cemrecon-bench``; a few minutes), makes a
JPEG 2000 lossless copy with pydicom + pylibjpeg-openjpeg, then runs
:func:`cemrecon.pipeline.run_batch` four times (uncompressed/J2K x serial/
parallel, ``force=True`` so nothing is skipped; default ``register="auto"``) plus
once serial uncompressed without registration, and prints throughput and the
time split decode / register / weight / kernel / encode+write (mean per pair,
from summary.json), with ratios against the serial uncompressed run of the same
process.

Not a test: nothing is asserted.  Numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def _generate(raw: Path, n_exams: int, scale: float) -> None:
    from cemrecon.phantom import write_exams

    marker = raw / f".complete-{n_exams}-{scale:g}"
    if marker.exists():
        print(f"using cached phantom exams in {raw}")
        return
    if raw.exists():
        shutil.rmtree(raw)
    raw.mkdir(parents=True)
    t0 = time.perf_counter()
    print(f"generating {n_exams} phantom exams at scale {scale:g} into {raw} (cached for next time) ...", flush=True)
    write_exams(raw, n_exams, seed=1000, scale=scale)
    marker.write_text("ok\n")
    print(f"  {time.perf_counter() - t0:.0f} s")


def _transcode(raw: Path, j2k: Path) -> None:
    import pydicom
    from pydicom.uid import JPEG2000Lossless

    marker = j2k / f".complete-{len(list(raw.rglob('*.dcm')))}"
    if marker.exists():
        print(f"using cached JPEG 2000 copy in {j2k}")
        return
    if j2k.exists():
        shutil.rmtree(j2k)
    t0 = time.perf_counter()
    files = sorted(raw.rglob("*.dcm"))
    print(f"transcoding {len(files)} files to JPEG 2000 lossless ...", flush=True)
    for src in files:
        dst = j2k / src.relative_to(raw)
        dst.parent.mkdir(parents=True, exist_ok=True)
        ds = pydicom.dcmread(src)
        ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg")
        ds.save_as(dst)
    marker.write_text("ok\n")
    print(f"  {time.perf_counter() - t0:.0f} s")


_STAGES = ("decode", "register", "weight", "kernel", "encode_write")


def _run(label: str, inputs: Path, out: Path, workers: int, register: bool | str) -> dict[str, float]:
    from cemrecon.pipeline import run_batch

    t0 = time.perf_counter()
    summary = run_batch([inputs], out, workers=workers, force=True, register=register)
    wall = time.perf_counter() - t0
    n_exams = summary.counts["exams"]
    split = dict.fromkeys(_STAGES, 0.0)
    for rec in summary.pairs:
        for k in split:
            split[k] += rec.timings_s.get(k, 0.0)
    pairs = max(len(summary.pairs), 1)
    row = {
        "label": label,
        "workers": workers,
        "exams": n_exams,
        "failed": summary.n_failed,
        "wall_s": wall,
        "exams_per_min": 60.0 * n_exams / wall if wall > 0 else float("nan"),
        **{f"{k}_ms_per_pair": 1000 * v / pairs for k, v in split.items()},
    }
    stages = " ".join(f"{row[f'{k}_ms_per_pair']:>9.1f}" for k in _STAGES)
    print(f"{label:<34} {workers:>3} {n_exams:>5} {wall:>8.1f} {row['exams_per_min']:>9.2f} {stages}"
          f"  failed={summary.n_failed}", flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exams", type=int, default=20)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "cemrecon-bench"))
    parser.add_argument("--skip-j2k", action="store_true", help="uncompressed runs only")
    parser.add_argument("--no-register-run", action="store_true",
                        help="skip the extra serial uncompressed run with register=False")
    args = parser.parse_args(argv)

    cache = Path(args.cache) / f"exams{args.exams}-scale{args.scale:g}"
    raw, j2k = cache / "raw", cache / "j2k"
    _generate(raw, args.exams, args.scale)
    if not args.skip_j2k:
        _transcode(raw, j2k)
    mb = sum(p.stat().st_size for p in raw.rglob("*.dcm")) / 1e6
    print(f"\n{args.exams} exams, {len(list(raw.rglob('*_LE.dcm')))} pairs, {mb:.0f} MB uncompressed"
          + ("" if args.skip_j2k else f", {sum(p.stat().st_size for p in j2k.rglob('*.dcm')) / 1e6:.0f} MB J2K"))
    print(f"cores: {os.cpu_count()}  python {sys.version.split()[0]}\n")
    print(f"{'run':<34} {'wrk':>3} {'exams':>5} {'wall s':>8} {'exams/min':>9} "
          + " ".join(f"{k[:9]:>9}" for k in _STAGES) + "   (ms per pair, per worker)")

    out_root = Path(tempfile.mkdtemp(prefix="cemrecon-bench-out-"))
    rows = []
    try:
        configs = [("uncompressed", raw)] + ([] if args.skip_j2k else [("JPEG 2000 lossless", j2k)])
        for name, inputs in configs:
            for workers in (1, args.workers):
                rows.append(_run(f"{name}, {'serial' if workers == 1 else 'parallel'}", inputs,
                                 out_root / f"{name[:4]}-{workers}", workers, "auto"))
                shutil.rmtree(out_root / f"{name[:4]}-{workers}", ignore_errors=True)
        if not args.no_register_run:
            rows.append(_run("uncompressed, serial, no registr.", raw, out_root / "noreg", 1, False))
    finally:
        shutil.rmtree(out_root, ignore_errors=True)

    base = rows[0]
    print("\nratios against the serial uncompressed run (throughput, higher is faster):")
    for row in rows:
        print(f"  {row['label']:<34} x{row['exams_per_min'] / base['exams_per_min']:.2f}")
    print("stage cost relative to the recombination kernel (serial runs):")
    for row in rows:
        if row["workers"] == 1 and row["kernel_ms_per_pair"] > 0:
            ratios = ", ".join(f"{k} x{row[f'{k}_ms_per_pair'] / row['kernel_ms_per_pair']:.0f}"
                               for k in _STAGES if k != "kernel")
            print(f"  {row['label']:<34} {ratios}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
