"""Every fixture says where it comes from: each file under tests/fixtures/ has a row in SOURCES.md."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"


def test_every_fixture_is_listed_in_sources() -> None:
    sources = (FIXTURES / "SOURCES.md").read_text()
    files = [
        p.relative_to(FIXTURES).as_posix()
        for p in FIXTURES.rglob("*")
        if p.is_file() and p.name not in ("SOURCES.md", "README.md")
    ]
    assert files
    unlisted = [f for f in files if f not in sources]
    assert not unlisted, f"fixtures without a source row in tests/fixtures/SOURCES.md: {unlisted}"
