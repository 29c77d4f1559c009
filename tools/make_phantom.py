#!/usr/bin/env python
"""Write CEM phantom exams: ``python tools/make_phantom.py OUTDIR --exams N --seed S --scale F``.

A thin front of :mod:`cemrecon.phantom` (the same code as ``cemrecon phantom``); works from a
checkout without installation.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from cemrecon._cli import phantom as _phantom  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="make_phantom.py", description=__doc__.splitlines()[0])
    _phantom.add_arguments(parser)
    parser.add_argument("-v", "--verbose", action="count", default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2),
                        format="%(levelname)s %(name)s: %(message)s")
    return _phantom.run(args)


if __name__ == "__main__":
    sys.exit(main())
