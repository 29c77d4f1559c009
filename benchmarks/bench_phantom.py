"""Phantom generator throughput: seconds per 4-view CEM exam (8 DICOM files + truth).

Prints the split anatomy (+ BPE and lesions) / physics (spectral integral) / detector (noise,
quantisation) / DICOM write / truth write (compressed npz + JSON), and, as the in-process
baseline, the ratio of the DICOM write to plain ``np.save`` of eight images of the same size
(the least any writer must do).

    python benchmarks/bench_phantom.py [--scales 1.0 0.25] [--exams 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cemrecon.phantom import write_exams  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.25])
    ap.add_argument("--exams", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    # warm-up: spectra (spekpy, one per kVp) and numba kernels are computed/compiled once per
    # process; a tiny run of the same seeds draws the same thicknesses, hence the same beams
    with tempfile.TemporaryDirectory() as tmp:
        write_exams(tmp, args.exams, seed=args.seed, scale=0.05)
    for scale in args.scales:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            c0 = time.process_time()
            exams = write_exams(tmp, args.exams, seed=args.seed, scale=scale)
            wall = (time.perf_counter() - t0) / args.exams
            cpu = (time.process_time() - c0) / args.exams
            split = {k: sum(e.timings_s.get(k, 0.0) for e in exams) / args.exams
                     for k in ("anatomy", "physics", "detector", "write_dicom", "write_truth")}
            # baseline: np.save of the same 8 images
            imgs = [np.zeros((int(round(2850 * scale)), int(round(2394 * scale))), np.uint16) for _ in range(8)]
            tb = time.perf_counter()
            for i, img in enumerate(imgs):
                np.save(Path(tmp) / f"base{i}.npy", img)
            base = time.perf_counter() - tb
        parts = ", ".join(f"{k} {v:.2f} s" for k, v in split.items())
        print(f"scale {scale:g}: {wall:.2f} s/exam wall ({cpu:.2f} s CPU incl. threads); {parts}; "
              f"DICOM write / np.save baseline = {split['write_dicom'] / max(base, 1e-9):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
