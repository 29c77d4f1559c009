"""``cemrecon pairs PATH... [--json FILE] [--strictness ignore|warn|raise]``.

Prints a table of the LE/HE pairs found and of every file not used (with the
reason); ``--json`` writes the same as::

    {"pairs": [{"key", "study_uid", "laterality", "view", "acquisition_index",
                "le", "he", "gap_s"}],
     "excluded": [{"path", "role", "reason"}]}

``le`` / ``he`` / ``path`` are file paths; ``excluded`` covers every scanned file
that is not in a pair.  Exit code 0 when at least one pair is found, 3 when none,
2 for a missing path or a bad option, 4 when ``--strictness raise`` stops the read.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from cemrecon._fileio import write_json_atomic

__all__ = ["register", "run", "result_to_json"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "pairs",
        help="find LE/HE pairs in files, folders or a DICOMDIR and say what happened to every file",
        description="Scan DICOM headers (no pixel decoding), classify every file and pair each "
        "low-energy image with its high-energy partner.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="DICOM files, folders (recursive) or DICOMDIR")
    parser.add_argument("--json", metavar="FILE", help="also write the pairs and excluded files as JSON")
    parser.add_argument(
        "--strictness",
        choices=("ignore", "warn", "raise"),
        default="warn",
        help="inconsistencies (kVp out of range, missing laterality, long LE-HE gap): "
        "record only, warn (default), or stop",
    )
    parser.add_argument("--no-recursive", dest="recursive", action="store_false", help="do not walk sub-folders")
    parser.set_defaults(run=run)


def result_to_json(result: Any) -> dict[str, Any]:
    """The JSON document of a :class:`cemrecon.io.read.ReadResult`."""
    return {
        "pairs": [
            {
                "key": p.key,
                "study_uid": p.study_uid,
                "laterality": p.laterality.value,
                "view": p.view.value,
                "acquisition_index": p.acquisition_index,
                "le": str(p.le.path),
                "he": str(p.he.path),
                "gap_s": p.gap_s,
            }
            for p in result.pairs
        ],
        "excluded": [{"path": m.path, "role": m.role.value, "reason": m.reason} for m in result.excluded],
    }


def _short(uid: str, n: int = 18) -> str:
    return uid if len(uid) <= n else "..." + uid[-(n - 3) :]


def _table(result: Any) -> str:
    lines = []
    if result.pairs:
        lines.append(f"{'study':<19} {'lat':<3} {'view':<5} {'idx':>3} {'gap_s':>6}  LE -> HE")
        for p in result.pairs:
            gap = "?" if p.gap_s is None else f"{p.gap_s:+.1f}"
            lines.append(
                f"{_short(p.study_uid):<19} {p.laterality.value:<3} {p.view.value:<5} {p.acquisition_index:>3} "
                f"{gap:>6}  {p.le.path} -> {p.he.path}"
            )
    else:
        lines.append("no LE/HE pair found")
    excluded = result.excluded
    if excluded:
        lines.append("")
        counts = Counter(m.role.value for m in excluded)
        lines.append(f"excluded files ({len(excluded)}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ")")
        for m in excluded:
            lines.append(f"  {m.role.value:<11} {m.path}: {m.reason}")
    lines.append("")
    lines.append(
        f"{len(result.pairs)} pair(s) in {len(result.exams)} stud(y/ies); "
        f"{len(result.manifest)} file(s) scanned, {len(excluded)} not used"
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from cemrecon.cli import EXIT_FATAL, EXIT_NOTHING, EXIT_OK, EXIT_USAGE
    from cemrecon.errors import CemreconError
    from cemrecon.io.read import read_exams

    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=0, unit="file", desc="scanning headers", leave=False)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.update(done - bar.n)

    try:
        result = read_exams(
            args.paths, strictness=args.strictness, recursive=getattr(args, "recursive", True), progress=progress
        )
    except FileNotFoundError as exc:
        print(f"cemrecon pairs: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CemreconError as exc:
        print(f"cemrecon pairs: stopped: {exc}", file=sys.stderr)
        return EXIT_FATAL
    finally:
        if bar is not None:
            bar.close()
    print(_table(result))
    if args.json:
        try:
            write_json_atomic(result_to_json(result), Path(args.json))
        except OSError as exc:
            print(f"cemrecon pairs: cannot write {args.json}: {exc}", file=sys.stderr)
            return EXIT_FATAL
    return EXIT_OK if result.pairs else EXIT_NOTHING
