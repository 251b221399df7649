"""The daemon's allocator habits (ccxt_pipeline/daemon/memory.py): harmless anywhere, effective on glibc."""

from __future__ import annotations

import platform

import pytest

from ccxt_pipeline.daemon import memory


def test_trim_and_arena_cap_never_raise() -> None:
    assert isinstance(memory.trim(), bool)
    assert isinstance(memory.limit_arenas(), bool)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_glibc_takes_the_arena_cap() -> None:
    assert memory.limit_arenas(2) is True
