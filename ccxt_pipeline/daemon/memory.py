"""Keep a long-running daemon's resident memory close to what it uses.

Two habits of glibc's allocator make a Python process that runs for months look as if it leaked: each
thread that allocates gets an arena of its own (up to 8 per core), and freed memory inside an arena is kept
for reuse rather than handed back to the system. The daemon's writes run in worker threads, so both apply.
`limit_arenas` caps the arenas at two (as `MALLOC_ARENA_MAX=2` would); `trim` hands free pages back
(`malloc_trim(0)`). Both are no-ops where the C library is not glibc. Arrow's own allocator is told to hand
back its unused memory too.

Arrow allocates from mimalloc by default (pyarrow's wheels), which keeps its own segments: in two 2-hour soaks
side by side (docs/benchmarks.md, "Daemon soak") the daemon with mimalloc swung between 285 and 333 MiB while
the same daemon with Arrow on the C library's allocator stayed within 247-254 MiB. `arrow_on_system_allocator`
makes that the daemon's default, through Arrow's own switch (`ARROW_DEFAULT_MEMORY_POOL`, read when pyarrow is
first imported: https://arrow.apache.org/docs/cpp/env_vars.html); a value the user set is kept.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8
"""glibc's `mallopt` parameter for the number of arenas (malloc.h)."""


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


_LIBC = _glibc()


def limit_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas; call before worker threads start. True if the C library took it."""
    return bool(_LIBC is not None and _LIBC.mallopt(_M_ARENA_MAX, arenas) == 1)


ARROW_POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"


def arrow_on_system_allocator() -> bool:
    """Make Arrow allocate through the C library (`system`) unless the user chose a pool; call before pyarrow
    is imported. False if pyarrow was already imported (its pool is then left as it is)."""
    if "pyarrow" in sys.modules:
        return False
    os.environ.setdefault(ARROW_POOL_VARIABLE, "system")
    return True


def trim() -> bool:
    """Hand free heap pages back to the system, Arrow's included. True if glibc released any."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    return bool(_LIBC is not None and _LIBC.malloc_trim(0) == 1)


__all__ = ["arrow_on_system_allocator", "limit_arenas", "trim"]
