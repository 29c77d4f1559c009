"""Numba settings in one place: jit options, serial/parallel twins, thread control.

Every kernel in :mod:`cemrecon.kernels` is compiled twice from the same Python
body, through :func:`kernel`: a *parallel* twin (``prange`` over rows, run by
numba's threading layer) and a *serial* twin (``prange`` is a plain ``range``;
no threading layer is touched at all).  Which twin runs, and on how many
threads, is decided per call by :func:`resolve_threads` / :func:`run_kernel`.

Thread policy (no oversubscription)
-----------------------------------
``threads=None`` (the default everywhere) resolves to:

* ``1`` (the serial twin) when called from a thread other than the main thread
  (``ThreadPoolExecutor`` workers, Dask threaded and distributed workers, web
  servers) or from a ``multiprocessing`` child process (process pools, Dask
  nanny workers).  The pool already provides the parallelism; adding numba
  threads on top would oversubscribe the cores, and a forked child must not
  touch the GNU OpenMP runtime of its parent.
* otherwise the ``CEMRECON_NUM_THREADS`` environment variable if set, else
  numba's ``NUMBA_NUM_THREADS`` (itself defaulting to the core count).

An explicit ``threads=n`` is honoured anywhere but capped at
``NUMBA_NUM_THREADS`` (numba cannot start more threads than its pool holds), so
cemrecon never runs more threads than asked.  The count is set with
:func:`numba.set_num_threads`, which is *thread-local* in numba, and restored
after the call, so concurrent callers in different threads do not interfere.
If numba's only threading layer is ``workqueue`` (not thread-safe), parallel
launches are serialised by a lock.

Environment settings (read once, at import):

``CEMRECON_NUM_THREADS``  default thread count in the main thread (int >= 1).
``CEMRECON_NUMBA_CACHE``  ``0`` disables numba's on-disk cache (default on).
``CEMRECON_FASTMATH``     ``0`` disables the fast-math flags (default on).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

import numba

__all__ = [
    "JIT_OPTIONS",
    "kernel",
    "max_threads",
    "resolve_threads",
    "run_kernel",
    "thread_limit",
]

logger = logging.getLogger(__name__)


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() not in {"0", "false", "no", "off"}


#: Fast-math flags: allow FMA contraction, reciprocal approximations, signed-zero
#: freedom and fast libm.  ``nnan``/``ninf`` are deliberately *not* set: inputs
#: are validated finite, and we want ``max(x, floor)`` to keep IEEE semantics.
FASTMATH_FLAGS: frozenset[str] = frozenset({"contract", "arcp", "nsz", "afn"})

#: Options shared by every kernel (``parallel`` is added per twin).
JIT_OPTIONS: dict[str, Any] = {
    "nogil": True,
    "cache": _env_flag("CEMRECON_NUMBA_CACHE", True),
    "fastmath": set(FASTMATH_FLAGS) if _env_flag("CEMRECON_FASTMATH", True) else False,
    "error_model": "numpy",  # no Python-style ZeroDivision checks in hot loops
    "boundscheck": False,
}


def _renamed(func: Callable[..., Any], suffix: str) -> Callable[..., Any]:
    """A copy of ``func`` with its own qualified name.

    numba's on-disk cache is keyed by qualified name and bytecode, not by jit
    flags, so the serial and parallel twins must not share a name or one would
    load the other's machine code from the cache.
    """
    copy = types.FunctionType(
        func.__code__, func.__globals__, f"{func.__name__}_{suffix}", func.__defaults__,
        func.__closure__,
    )
    copy.__qualname__ = f"{func.__qualname__}_{suffix}"
    copy.__module__ = func.__module__
    copy.__doc__ = func.__doc__
    return copy


class KernelPair:
    """A kernel compiled twice from one body: ``.parallel`` and ``.serial``."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.py_func = func
        self.__name__ = func.__name__
        self.__doc__ = func.__doc__
        self.parallel = numba.njit(parallel=True, **JIT_OPTIONS)(_renamed(func, "parallel"))
        self.serial = numba.njit(parallel=False, **JIT_OPTIONS)(_renamed(func, "serial"))

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"<cemrecon kernel {self.__name__}>"


def kernel(func: Callable[..., Any]) -> KernelPair:
    """Decorator: compile ``func`` as a serial/parallel :class:`KernelPair`."""
    return KernelPair(func)


def max_threads() -> int:
    """Size of numba's thread pool (``NUMBA_NUM_THREADS``), the hard upper bound."""
    return int(numba.config.NUMBA_NUM_THREADS)


def _default_main_threads() -> int:
    value = os.environ.get("CEMRECON_NUM_THREADS", "").strip()
    if value:
        try:
            n = int(value)
        except ValueError:
            logger.warning("ignoring CEMRECON_NUM_THREADS=%r: not an integer", value)
        else:
            if n >= 1:
                return min(n, max_threads())
            logger.warning("ignoring CEMRECON_NUM_THREADS=%r: must be >= 1", value)
    return max_threads()


def _in_worker() -> bool:
    """True in a non-main thread or in a multiprocessing child process."""
    if threading.current_thread() is not threading.main_thread():
        return True
    return multiprocessing.parent_process() is not None


def resolve_threads(threads: int | None) -> int:
    """Number of numba threads a kernel call will use (see the module docstring).

    Parameters
    ----------
    threads : int or None
        ``None`` for the policy default, else a positive integer (capped at
        :func:`max_threads`).

    Raises
    ------
    ValueError
        ``threads`` is not a positive integer.
    """
    if threads is None:
        return 1 if _in_worker() else _default_main_threads()
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise TypeError(f"threads must be a positive int or None, got {threads!r}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1 (or None for the default), got {threads}")
    return min(threads, max_threads())


_WORKQUEUE_LOCK = threading.Lock()


@contextlib.contextmanager
def thread_limit(n: int) -> Iterator[None]:
    """Run numba parallel regions of *this thread* on ``n`` threads, then restore."""
    if numba.config.DISABLE_JIT:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def run_kernel(pair: KernelPair, *args: Any, threads: int | None = None) -> Any:
    """Call a kernel pair with the thread policy applied.

    One thread runs the serial twin (no threading layer involved, safe in any
    pool and after ``fork``); more threads run the parallel twin under
    :func:`thread_limit`.
    """
    n = resolve_threads(threads)
    if n == 1 or numba.config.DISABLE_JIT:
        return pair.serial(*args)
    with thread_limit(n):
        try:
            layer = numba.threading_layer()
        except ValueError:  # no parallel region launched yet in this process
            layer = None
        if layer in (None, "workqueue"):
            # workqueue is not thread-safe; the first launch (layer not yet chosen)
            # is serialised too, so two threads cannot race to initialise it.
            with _WORKQUEUE_LOCK:
                return pair.parallel(*args)
        return pair.parallel(*args)
