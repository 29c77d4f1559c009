"""Shared test helpers (not fixtures): external-program checks.

A test that needs an external program skips locally when it is absent but
*fails* when the ``CI`` environment variable is set, so a missing install step
in ``.ci/run`` can never hide behind a skip.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest


def require_program(name: str) -> str:
    """Return the path of ``name``; skip (locally) or fail (CI) if it is not installed."""
    path = shutil.which(name)
    if path is None:
        msg = f"external program {name!r} is not installed"
        if os.environ.get("CI"):
            pytest.fail(msg + " (CI is set: .ci/run must install it)")
        pytest.skip(msg)
    return path


def dciodvfy_errors(path: str | Path) -> list[str]:
    """Run dciodvfy on one file and return its ``Error`` lines (exit status is not reliable)."""
    exe = require_program("dciodvfy")
    proc = subprocess.run([exe, "-new", str(path)], capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    return [line for line in out.splitlines() if re.match(r"^\s*Error", line)]


def require_module(name: str):
    """Import and return optional module ``name``; skip locally if missing, fail when ``CI`` is set."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        msg = f"optional module {name!r} is not installed ({exc})"
        if os.environ.get("CI"):
            pytest.fail(msg + " (CI is set: the [dev] extra must install it)")
        pytest.skip(msg, allow_module_level=True)
