"""Command-line entry point: ``cemrecon COMMAND ...``.

Each sub-command lives in its own module under :mod:`cemrecon._cli` and exposes
``register(subparsers)`` (adds its parser) and ``run(args) -> int``.

Exit codes (stable, for unattended jobs)
----------------------------------------
0  everything asked for was done
1  partial failure: some items failed, the others were done (see the summary)
2  usage error (bad arguments, unreadable option file)
3  nothing found: no usable input (e.g. no LE/HE pair in the given paths)
4  fatal error: nothing could be done (e.g. output folder not writable)
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from collections.abc import Sequence

from cemrecon import __version__

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_NOTHING = 3
EXIT_FATAL = 4

# order is the order shown in --help
_COMMANDS = ("demo", "phantom", "pairs", "recombine", "calibrate", "analyze")


def _command_modules():
    for name in _COMMANDS:
        modname = f"cemrecon._cli.{name}"
        if importlib.util.find_spec(modname) is not None:
            yield name, importlib.import_module(modname)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cemrecon",
        description="Contrast-enhanced mammography: pair LE/HE, recombine, quantify iodine, BPE "
        "and calcification enhancement.",
        epilog="Exit codes: 0 done, 1 partial failure, 2 usage error, 3 nothing found, 4 fatal.",
    )
    parser.add_argument("--version", action="version", version=f"cemrecon {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for _name, module in _command_modules():
        module.register(sub)
    return parser


class _UsageExit(Exception):
    pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (tests call this directly)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help/--version
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    return int(args.run(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
