"""``cemrecon analyze PATH... --out DIR [--rois FILE] [--calibration FILE] [--no-figures]``.

Reads every LE/HE pair under the given paths, analyses each view (breast/FGT masks, BPE,
calcification clusters, enhancement call of every ROI) and writes ``DIR/analysis.json`` (schema in
:mod:`cemrecon.report.schema`) plus one PNG per view.  A view that fails is logged and left out;
the others are still written.

Exit codes: 0 all views analysed, 1 some failed, 2 bad ROI file / calibration / option,
3 no LE/HE pair found, 4 nothing analysed or the output folder is not writable.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]

logger = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="BPE, calcification clusters and enhancement calls per view -> analysis.json + PNGs",
        description="Analyse CEM views: BPE category, calcification clusters on LE, and per ROI "
        "enhancement / no_enhancement / indeterminate with the iodine excess and the "
        "detectability limit of its background.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="DICOM files or folders (LE/HE pairs)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    parser.add_argument("--rois", metavar="FILE",
                        help='user ROIs: JSON list of {"laterality", "view", "bbox": '
                        '[row0, col0, row1, col1], "study_uid" (optional)} in LE pixels')
    parser.add_argument("--calibration", metavar="FILE", help="iodine calibration JSON (cemrecon calibrate)")
    parser.add_argument("--no-figures", dest="figures", action="store_false", help="do not write PNGs")
    parser.add_argument("--no-calcifications", dest="calcifications", action="store_false",
                        help="analyse user ROIs only (no calcification search)")
    parser.set_defaults(run=run)


def _load_calibration(path: str) -> Any:
    from cemrecon.calibrate import Calibration

    return Calibration.load(path)


def run(args: argparse.Namespace) -> int:
    from cemrecon.cli import EXIT_FATAL, EXIT_NOTHING, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE
    from cemrecon.errors import CemreconError, OutputError
    from cemrecon.quantify import AnalyzeConfig, analyze, load_rois
    from cemrecon.report.schema import write_analysis

    for p in args.paths:
        if not Path(p).exists():
            print(f"cemrecon analyze: {p}: no such file or folder", file=sys.stderr)
            return EXIT_USAGE
    rois = None
    if args.rois:
        try:
            rois = load_rois(args.rois)
        except ValueError as exc:
            print(f"cemrecon analyze: {exc}", file=sys.stderr)
            return EXIT_USAGE
    calibration = None
    if args.calibration:
        try:
            calibration = _load_calibration(args.calibration)
        except (ValueError, OSError) as exc:
            print(f"cemrecon analyze: {args.calibration}: {exc}", file=sys.stderr)
            return EXIT_USAGE
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"cemrecon analyze: cannot create {out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FATAL

    from cemrecon.io.read import read_exams

    try:
        result = read_exams(args.paths)
    except CemreconError as exc:
        print(f"cemrecon analyze: {exc}", file=sys.stderr)
        return EXIT_FATAL
    pairs = list(result.pairs)
    if not pairs:
        print("cemrecon analyze: no LE/HE pair found", file=sys.stderr)
        return EXIT_NOTHING
    cfg = AnalyzeConfig(detect_calcifications=args.calcifications)
    entries: list[dict] = []
    failed = 0
    for pair in pairs:
        key = getattr(pair, "key", "?")
        try:
            res = analyze(pair, rois=rois, calibration=calibration, config=cfg)
        except Exception as exc:  # noqa: BLE001 - one bad view never stops the batch
            failed += 1
            logger.error("%s: analysis failed: %s: %s", key, type(exc).__name__, exc)
            continue
        entries.append(res.to_dict())
        if args.figures:
            from cemrecon.report.figures import view_figure_name, write_view_figure

            try:
                write_view_figure(res, out / view_figure_name(res.study_uid, res.laterality, res.view,
                                                              res.acquisition_index))
            except OutputError as exc:
                logger.error("%s: %s", key, exc)
                failed += 1
        n_enh = sum(r.enhancement == "enhancement" for r in res.rois)
        print(f"{key}: BPE {res.bpe.category} ({100 * res.bpe.enhancing_fraction:.0f} %), "
              f"{len(res.rois)} ROI(s), {n_enh} enhancing", file=sys.stderr)
    if not entries:
        print("cemrecon analyze: no view could be analysed", file=sys.stderr)
        return EXIT_FATAL
    try:
        path = write_analysis(entries, out / "analysis.json")
    except OutputError as exc:
        print(f"cemrecon analyze: {exc}", file=sys.stderr)
        return EXIT_FATAL
    print(f"wrote {path} ({len(entries)} view(s))", file=sys.stderr)
    return EXIT_PARTIAL if failed else EXIT_OK
