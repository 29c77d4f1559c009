"""``cemrecon demo``: the whole job on a built-in phantom, in one command.

Makes a synthetic CEM exam (LE/HE DICOM of both breasts, CC and MLO) with the
physics phantom, pairs and recombines it, and writes derived RC DICOM plus
``summary.json``; then says what it did and where.  Rerunning reuses the
phantom and skips the pairs already done.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cemrecon.cli import EXIT_FATAL, EXIT_USAGE

HELP = "run the main job (pair, recombine, write RC DICOM) on a built-in phantom exam"
DEFAULT_OUT = "cemrecon-demo"
DEFAULT_SCALE = 0.25


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("demo", help=HELP, description=__doc__)
    parser.add_argument("--out", "-o", default=DEFAULT_OUT, metavar="DIR",
                        help=f"output folder (default ./{DEFAULT_OUT})")
    parser.add_argument("--scale", type=float, default=DEFAULT_SCALE, metavar="F",
                        help=f"phantom size relative to a full detector (default {DEFAULT_SCALE}; 1.0 = full size)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="phantom random seed (default 0)")
    parser.add_argument("--quiet", "-q", action="store_true", help="print only the summary path")
    parser.set_defaults(run=run)
    return parser


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text)


def run(args: argparse.Namespace) -> int:
    from cemrecon._cli.recombine import exit_code, print_report
    from cemrecon.errors import OutputError

    if not 0.05 <= args.scale <= 1.0:
        print(f"cemrecon demo: error: --scale must be in [0.05, 1.0], got {args.scale}", file=sys.stderr)
        return EXIT_USAGE
    out = Path(args.out)
    phantom_dir = out / f"phantom-seed{args.seed}-scale{args.scale:g}"
    results_dir = out / "results"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"cemrecon demo: error: cannot create {out}: {exc}", file=sys.stderr)
        return EXIT_FATAL

    if any(phantom_dir.rglob("*.dcm")):
        _say(args, f"1. phantom exam: reusing {phantom_dir}")
    else:
        from cemrecon.phantom import write_exams

        _say(args, f"1. phantom exam: simulating (seed {args.seed}, scale {args.scale:g}) into {phantom_dir} ...")
        write_exams(phantom_dir, 1, seed=args.seed, scale=args.scale)
    n_files = sum(1 for _ in phantom_dir.rglob("*.dcm"))
    _say(args, f"   {n_files} LE/HE DICOM files (truth maps in */truth/)")

    from cemrecon.pipeline import run_batch

    _say(args, f"2. pairing and recombining into {results_dir} ...")
    try:
        # the DICOM folders only: the truth maps next to them are not inputs
        summary = run_batch(sorted(phantom_dir.glob("*/dicom")), results_dir, workers=1)
    except OutputError as exc:
        print(f"cemrecon demo: error: {exc}", file=sys.stderr)
        return EXIT_FATAL
    if args.quiet:
        print(summary.path)
        return exit_code(summary)
    print_report(summary)
    print("3. outputs:")
    for rec in summary.pairs:
        for o in rec.outputs:
            weight = f"w = {rec.weight:.4g}" if rec.weight is not None else "w = ?"
            print(f"   {rec.laterality} {rec.view}: {results_dir / o['path']}  ({weight}, {rec.status})")
    print(
        "   Open them in any DICOM viewer (MG, DM For Presentation, iodine bright), or in Python:\n"
        "     import pydicom; from cemrecon.io.write import decode_pixels\n"
        f"     rc = decode_pixels(pydicom.dcmread(r'{results_dir / summary.pairs[0].outputs[0]['path']}'))"
        if summary.pairs and summary.pairs[0].outputs
        else ""
    )
    return exit_code(summary)
