"""Session-wide pytest configuration and shared fixtures."""

from __future__ import annotations

import os

# Tests must not oversubscribe the 2-core CI machine: numba threads default to 2.
os.environ.setdefault("NUMBA_NUM_THREADS", "2")
