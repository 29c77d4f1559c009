"""``cemrecon recombine PATH... --out DIR``: batch recombination into derived DICOM.

Pairs every LE/HE found under the paths, recombines each pair and writes one
DM For Presentation RC image per pair (plus an iodine image with
``--calibration``) to ``DIR/<study_uid>/<LAT>_<VIEW>_<acq>_RC.dcm``, then
``DIR/summary.json``.  Safe to rerun: finished pairs are skipped unless
``--force``.

Exit codes: 0 every pair done (or already done); 1 partial failure (some pairs
failed or some LE/HE files were unreadable; the rest was done); 2 usage error;
3 no LE/HE pair found; 4 fatal (output folder not writable, scheduler
unreachable, or no pair could be done).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from cemrecon.cli import EXIT_FATAL, EXIT_NOTHING, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE

logger = logging.getLogger(__name__)

HELP = "pair LE/HE images, recombine them, write derived RC DICOM and summary.json"

_MAX_LISTED_FAILURES = 10
_DESCRIPTION = """\
Pair every LE/HE image found under the paths, recombine each pair and write one
derived MG (DM For Presentation) RC image per pair, plus an iodine image with
--calibration, to DIR/<study_uid>/<LAT>_<VIEW>_<acq>_RC.dcm; then DIR/summary.json
(per pair: inputs, outputs, weight, status, timings; per excluded file: reason).
Safe to rerun: pairs already done with the same inputs and parameters are skipped
unless --force; outputs are written atomically; inputs are never modified."""


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "recombine",
        help=HELP,
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Exit codes: 0 all done, 1 partial failure, 2 usage error, 3 nothing found, 4 fatal.",
    )
    add_batch_arguments(parser, out_required=True)
    parser.set_defaults(run=run)
    return parser


def add_batch_arguments(parser: argparse.ArgumentParser, *, out_required: bool) -> None:
    """Options shared with ``cemrecon demo``-like commands."""
    parser.add_argument("paths", nargs="+", metavar="PATH", help="DICOM files, folders or DICOMDIRs")
    parser.add_argument("--out", "-o", required=out_required, metavar="DIR", help="output folder")
    parser.add_argument(
        "--weight", metavar="W|physics|thickness|image", default=None,
        help="recombination weight: a number, or how to choose it (default: the recombine module's default)",
    )
    parser.add_argument(
        "--register", choices=("auto", "always", "never"), default="auto",
        help="LE/HE registration before recombination (default auto: correct a detected shift "
        ">= half a pixel; never: fastest)",
    )
    parser.add_argument(
        "--calibration", metavar="CAL.json", default=None,
        help="calibration file; also write an iodine image (mg I/cm^2) per pair",
    )
    parser.add_argument(
        "--no-iodine-rolloff", dest="iodine_rolloff", action="store_false",
        help="with --calibration: use the compressed thickness everywhere in the iodine image "
        "instead of fitting the roll-off towards the skin line (see cemrecon.iodine)",
    )
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="worker processes (default: min(4, cores, exams); 1 = in this process)")
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None,
                        help="run the exam jobs on a Dask distributed cluster (e.g. tcp://host:8786)")
    parser.add_argument("--scheduler-timeout", type=float, default=10.0, metavar="S",
                        help="seconds to wait for the Dask scheduler (default 10)")
    parser.add_argument("--force", action="store_true", help="redo pairs already done with the same inputs")
    parser.add_argument("--strictness", choices=("ignore", "warn", "raise"), default="warn",
                        help="reader strictness for inconsistent headers (default: warn)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar, no summary text")
    parser.add_argument("--json", action="store_true", help="print summary.json to stdout")


def exit_code(summary: Any) -> int:
    """Exit code of a finished batch: 0 all done/skipped, 1 partial, 3 no pair, 4 none done."""
    if not summary.pairs:
        return EXIT_NOTHING
    if summary.n_failed == 0 and summary.n_unreadable == 0:
        return EXIT_OK
    return EXIT_PARTIAL if summary.n_done + summary.n_skipped else EXIT_FATAL


def _error(message: str) -> None:
    print(f"cemrecon recombine: error: {message}", file=sys.stderr)


class _Progress:
    """tqdm bar over exams, on stderr, only on a terminal and without --quiet."""

    def __init__(self, quiet: bool) -> None:
        self.enabled = not quiet and sys.stderr.isatty()
        self.bar = None

    def scanned(self, n_exams: int, n_pairs: int) -> None:
        if self.enabled and n_exams:
            from tqdm import tqdm

            self.bar = tqdm(total=n_exams, unit="exam", desc=f"recombining {n_pairs} pairs", file=sys.stderr)

    def __call__(self, outcome: Any) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _dask_executor(address: str, timeout_s: float) -> tuple[Any, Any]:
    try:
        from distributed import Client
    except ImportError as exc:
        raise _Usage(f"--scheduler needs dask.distributed (pip install 'cemrecon[dask]'): {exc}") from exc
    client = Client(address, timeout=f"{timeout_s}s")
    return client, client.get_executor()


class _Usage(Exception):
    pass


def print_report(summary: Any, *, out: Any = None) -> None:
    """Human-readable summary of a batch (a few lines; default to stdout)."""
    out = sys.stdout if out is None else out
    c = summary.counts
    print(
        f"{c['pairs']} pair(s) in {c['exams']} exam(s): {c['done']} done, {c['skipped']} skipped "
        f"(already done), {c['failed']} failed; {c['excluded_files']} file(s) excluded "
        f"({c['unreadable_files']} unreadable)",
        file=out,
    )
    failed = [p for p in summary.pairs if p.status == "failed"]
    for rec in failed[:_MAX_LISTED_FAILURES]:
        print(f"  FAILED {rec.key}: {rec.error}", file=out)
    if len(failed) > _MAX_LISTED_FAILURES:
        print(f"  ... and {len(failed) - _MAX_LISTED_FAILURES} more (see summary.json)", file=out)
    for entry in summary.excluded:
        if entry.get("role") == "UNREADABLE":
            print(f"  UNREADABLE {entry['path']}: {entry['reason']}", file=out)
    print(f"outputs in {summary.out_dir}; summary: {summary.path}", file=out)


def run(args: argparse.Namespace) -> int:
    from cemrecon.errors import CalibrationError, OutputError
    from cemrecon.pipeline import run_batch
    from cemrecon.pipeline.batch import _check_weight

    # ---- usage checks (exit 2) before any work
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        _error(f"input path(s) do not exist: {', '.join(missing)}")
        return EXIT_USAGE
    try:
        weight = _check_weight(args.weight)
    except (TypeError, ValueError) as exc:
        _error(f"--weight: {exc}")
        return EXIT_USAGE
    if args.workers is not None and args.workers < 1:
        _error(f"--workers must be >= 1, got {args.workers}")
        return EXIT_USAGE
    if args.calibration is not None and not Path(args.calibration).is_file():
        _error(f"--calibration: no such file: {args.calibration}")
        return EXIT_USAGE
    if args.scheduler and args.workers is not None:
        logger.warning("--workers is ignored with --scheduler (the cluster decides)")

    progress = _Progress(args.quiet)
    client = None
    try:
        executor = None
        if args.scheduler:
            try:
                client, executor = _dask_executor(args.scheduler, args.scheduler_timeout)
            except _Usage as exc:
                _error(str(exc))
                return EXIT_USAGE
            except (OSError, TimeoutError) as exc:
                _error(f"cannot reach the Dask scheduler at {args.scheduler}: {exc}")
                return EXIT_FATAL
        summary = run_batch(
            args.paths, args.out,
            executor=executor, workers=args.workers, weight=weight, calibration=args.calibration,
            iodine_rolloff=args.iodine_rolloff,
            register={"auto": "auto", "always": True, "never": False}[args.register],
            force=args.force, strictness=args.strictness, progress=progress, on_scanned=progress.scanned,
        )
    except CalibrationError as exc:
        _error(f"--calibration: {exc}")
        return EXIT_USAGE
    except OutputError as exc:
        _error(str(exc))
        return EXIT_FATAL
    except FileNotFoundError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except Exception as exc:  # strictness="raise" and the like: nothing was written
        from cemrecon.errors import CemreconError

        if isinstance(exc, CemreconError):
            _error(f"{type(exc).__name__}: {exc}")
            return EXIT_FATAL
        raise
    finally:
        progress.close()
        if client is not None:
            client.close()

    if args.json:
        print(summary.to_json())
    if not args.quiet:
        print_report(summary, out=sys.stderr if args.json else sys.stdout)
    if not summary.pairs and not args.quiet:
        print("no LE/HE pair found in the given paths", file=sys.stderr)
    return exit_code(summary)
