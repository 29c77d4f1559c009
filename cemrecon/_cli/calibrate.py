"""``cemrecon calibrate PATH... --out CAL.json [--inserts FILE]``.

Fits an iodine calibration (:func:`cemrecon.calibrate.fit_calibration`) from
calibration exposures: phantom calibration folders (each exposure's truth JSON
names its inserts) or, with ``--inserts FILE``, a site's own LE/HE images
described by a ``cemrecon-calibration-inserts`` JSON file (see
:mod:`cemrecon.calibrate`).  Writes the versioned calibration JSON atomically and
prints a one-line summary (residuals, thickness range, beams).

Exit codes: 0 written; 2 bad option or unreadable inserts file; 3 no usable
exposure found; 4 the fit or the write failed.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]

logger = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "calibrate",
        help="fit an iodine calibration (mg/cm^2) from phantom or step-wedge / insert exposures",
        description="Fit the thickness-aware iodine calibration and the weight curve from calibration "
        "exposures and write them as a versioned JSON file.",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="phantom calibration folders or LE/HE DICOM files/folders")
    parser.add_argument("--out", required=True, metavar="CAL.json", help="calibration file to write")
    parser.add_argument("--inserts", metavar="FILE",
                        help="JSON description of a site's exposures and insert ROIs "
                        "(format cemrecon-calibration-inserts); replaces PATH")
    parser.add_argument("--scatter-correction", choices=("kernel", "none"), default="kernel",
                        help="scatter removal applied before the fit; use the same for iodine maps "
                        "(default kernel)")
    parser.add_argument("--spr", type=float, default=None,
                        help="scatter-to-primary ratio (default: estimated from thickness)")
    parser.add_argument("--no-grid", dest="grid", action="store_false",
                        help="exposures were made without an anti-scatter grid (higher SPR rule)")
    parser.add_argument("--manufacturer", help="system manufacturer to record (default from headers)")
    parser.add_argument("--model", help="system model to record (default from headers)")
    parser.set_defaults(run=run)


def run(args: Any) -> int:
    from cemrecon.calibrate import fit_calibration
    from cemrecon.cli import EXIT_FATAL, EXIT_NOTHING, EXIT_OK, EXIT_USAGE
    from cemrecon.errors import CalibrationError, CemreconError, OutputError

    out = Path(args.out)
    if not args.paths and not args.inserts:
        print("cemrecon calibrate: give PATH... or --inserts FILE", file=sys.stderr)
        return EXIT_USAGE
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        print(f"cemrecon calibrate: no such path: {', '.join(missing)}", file=sys.stderr)
        return EXIT_USAGE
    if args.inserts and not Path(args.inserts).is_file():
        print(f"cemrecon calibrate: inserts file {args.inserts!r} not found", file=sys.stderr)
        return EXIT_USAGE
    if args.spr is not None and not 0.0 <= args.spr < 1.0:
        print(f"cemrecon calibrate: --spr {args.spr} must be in [0, 1)", file=sys.stderr)
        return EXIT_USAGE
    if not out.parent.is_dir():
        print(f"cemrecon calibrate: output folder {str(out.parent)!r} does not exist", file=sys.stderr)
        return EXIT_FATAL
    system = {k: v for k, v in (("manufacturer", args.manufacturer), ("model", args.model)) if v}
    try:
        cal = fit_calibration(list(args.paths), inserts=args.inserts, system=system or None,
                              scatter_correction=args.scatter_correction, spr=args.spr, grid=args.grid)
    except CalibrationError as exc:
        print(f"cemrecon calibrate: {exc}", file=sys.stderr)
        text = str(exc)
        if "no LE/HE pair" in text or "no phantom truth" in text or "lists no exposures" in text:
            return EXIT_NOTHING
        if "inserts file" in text:
            return EXIT_USAGE
        return EXIT_FATAL
    except CemreconError as exc:
        print(f"cemrecon calibrate: {exc}", file=sys.stderr)
        return EXIT_FATAL
    try:
        cal.save(out)
    except OutputError as exc:
        print(f"cemrecon calibrate: {exc}", file=sys.stderr)
        return EXIT_FATAL
    r = cal.residuals
    lo, hi = cal.thickness_range_mm
    print(f"calibration {cal.calibration_id} -> {out}: {r['n']} ROIs from {len(cal.inputs)} exposures, "
          f"T {lo:g}-{hi:g} mm, residual RMS {r['rms']:.4f} max {r['max']:.4f} mg/cm^2, "
          f"gain {cal.gain_source}")
    return EXIT_OK
