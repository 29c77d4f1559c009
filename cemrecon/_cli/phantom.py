"""``cemrecon phantom OUTDIR --exams N --seed S --scale F [--calibration]``: write phantom exams."""

from __future__ import annotations

import argparse
import logging
import sys

logger = logging.getLogger(__name__)


def _scale(text: str) -> float:
    value = float(text)
    if not 0.01 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"--scale must be in [0.01, 1.0], got {text}")
    return value


def _nonneg_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("outdir", help="output folder (created if needed)")
    parser.add_argument("--exams", type=_nonneg_int, default=1, help="number of exams (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--scale", type=_scale, default=1.0,
                        help="pixel-grid scale, 0.01-1 (1 = 0.1 mm pixels, 2850x2394); default 1")
    parser.add_argument("--calibration", action="store_true",
                        help="write calibration slabs (thickness x glandularity x iodine step wedge) "
                             "instead of exams")
    parser.add_argument("--bpe", choices=("none", "minimal", "mild", "moderate", "marked"), default=None,
                        help="force the BPE level (default: drawn per exam)")
    parser.add_argument("--thickness-mm", type=float, default=None,
                        help="force the compressed thickness, 20-90 mm (default: drawn per breast)")
    parser.add_argument("--no-lesions", action="store_true", help="no findings (texture and BPE only)")
    parser.add_argument("--scatter", type=float, default=None, metavar="SPR",
                        help="add scatter with this scatter-to-primary ratio (default: none)")
    parser.add_argument("--motion-mm", type=float, default=0.0, help="LE-to-HE patient motion in mm")
    parser.add_argument("--image-type", choices=("ge", "standard"), default="ge",
                        help="energy token in Image Type value 4 (GE, default) or 5 (CP-1342)")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "phantom", help="write synthetic CEM phantom exams (DICOM LE/HE + ground truth)",
        description="Write physics-based CEM phantom exams: OUTDIR/<exam>/dicom/<LAT>_<VIEW>_<LE|HE>.dcm "
                    "and OUTDIR/<exam>/truth/<LAT>_<VIEW>.npz/.json.")
    add_arguments(parser)
    parser.set_defaults(run=run)


def run(args) -> int:
    from cemrecon.cli import EXIT_FATAL, EXIT_OK, EXIT_USAGE
    from cemrecon.errors import CemreconError

    try:
        if args.calibration:
            from cemrecon.phantom import write_calibration

            dirs = write_calibration(args.outdir, scale=args.scale, seed=args.seed, scatter=args.scatter,
                                     image_type_style=args.image_type)
            print(f"wrote {len(dirs)} calibration pairs to {args.outdir}", file=sys.stderr)
        else:
            from cemrecon.phantom import write_exams

            opts = {"scatter": args.scatter, "motion_mm": args.motion_mm, "bpe_level": args.bpe,
                    "thickness_mm": args.thickness_mm}
            if args.no_lesions:
                opts["lesions"] = None
            exams = write_exams(args.outdir, args.exams, seed=args.seed, scale=args.scale,
                                image_type_style=args.image_type, **opts)
            print(f"wrote {len(exams)} exams to {args.outdir}", file=sys.stderr)
    except ValueError as exc:
        print(f"cemrecon phantom: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, CemreconError) as exc:
        print(f"cemrecon phantom: {exc}", file=sys.stderr)
        return EXIT_FATAL
    return EXIT_OK
