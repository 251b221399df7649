"""The daemon's allocator habits (ccxt_pipeline/daemon/memory.py): harmless anywhere, effective on glibc."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pyarrow as pa
import pytest

from ccxt_pipeline.daemon import memory


def test_trim_and_arena_cap_never_raise() -> None:
    assert isinstance(memory.trim(), bool)
    assert isinstance(memory.limit_arenas(), bool)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_glibc_takes_the_arena_cap() -> None:
    assert memory.limit_arenas(2) is True


def test_arrow_allocates_through_the_c_library_unless_the_user_chose() -> None:
    """`arrow_on_system_allocator` before pyarrow's import: Arrow's default pool is `system`; a pool the user
    named in ARROW_DEFAULT_MEMORY_POOL is kept. In a fresh interpreter (this one has pyarrow loaded)."""
    code = (
        "from ccxt_pipeline.daemon import memory; assert memory.arrow_on_system_allocator();"
        "import pyarrow as pa; print(pa.default_memory_pool().backend_name)"
    )
    env = {k: v for k, v in os.environ.items() if k != memory.ARROW_POOL_VARIABLE}
    ours = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert ours.stdout.strip() == "system"
    env[memory.ARROW_POOL_VARIABLE] = "mimalloc" if "mimalloc" in pa.supported_memory_backends() else "system"
    theirs = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert theirs.stdout.strip() == env[memory.ARROW_POOL_VARIABLE]
    assert memory.arrow_on_system_allocator() is False  # too late here: pyarrow is already imported
