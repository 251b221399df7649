"""Quarantine: where a data file that cannot be read goes, so that it never stops collection.

    <catalog>/quarantine/<type_dir>/<instrument_id>/<file name>
    <catalog>/quarantine/index.jsonl      one line per file moved: where from, why, when

A file under `data/` that is not Parquet, is cut short, or holds columns that cannot be cast to its type's
schema breaks every reader that meets it: ours (a merge into it, a repair of an overlap, a compaction) and
NautilusTrader's (a query of the type). It is moved aside, never deleted, and named in one warning line;
`catalog verify` lists what the folder holds. The folder is outside `data/`, so NautilusTrader never
reads it. The rows the file held are then a hole like any other: an incremental fetch fills it again where
the exchange still serves that history.

A move is a rename inside the catalog (same file system, no new data blocks, so it works on a full disk
too). A reader that is not holding the catalog lock checks, just before renaming, that the path still
names the very file it failed to read: a writer may have replaced it meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ccxt_pipeline.catalog.layout import DATA_DIR
from ccxt_pipeline.timeutil import now_ns, ns_to_iso

log = logging.getLogger(__name__)

QUARANTINE_DIR = "quarantine"
INDEX_FILE = "index.jsonl"


@dataclass(frozen=True)
class QuarantinedFile:
    """A file in the quarantine folder, and what the index says about it (if anything)."""

    path: Path
    original: str | None = None
    """Where it was, relative to the catalog (`data/<type_dir>/<instrument_id>/<name>`)."""
    reason: str | None = None
    moved_at: str | None = None


def catalog_root_of(path: Path) -> Path | None:
    """The catalog holding `path` (`<root>/data/<type_dir>/<instrument_id>/<name>`), or None."""
    parents = path.parents
    if len(parents) >= 4 and parents[2].name == DATA_DIR:
        return parents[3]
    return None


def quarantine_dir(root: Path) -> Path:
    return root / QUARANTINE_DIR


def quarantine_file(path: Path, reason: str, *, identity: tuple[int, int] | None = None) -> Path | None:
    """Move the data file `path` into its catalog's quarantine folder; one warning line either way.

    `identity` is `(st_dev, st_ino)` of the file that failed: if `path` names another file by now (a
    writer replaced it), nothing is moved. Returns the new path, or None if the file was not moved (gone,
    replaced, or the move itself failed: a read-only catalog, say, where it is only reported).
    """
    root = catalog_root_of(path)
    if root is None:
        log.warning("unreadable data file %s (%s); not in a catalog layout, left in place", path, reason)
        return None
    try:
        if identity is not None:
            st = os.stat(path)
            if (st.st_dev, st.st_ino) != identity:
                return None  # replaced since it was read: the new file is someone else's to judge
        relative = path.relative_to(root)
        target = _free_name(quarantine_dir(root) / relative.relative_to(DATA_DIR))
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(path, target)
    except FileNotFoundError:
        return None  # moved or removed by someone else meanwhile
    except OSError as exc:
        log.warning(
            "unreadable data file %s (%s); could not move it to quarantine (%s): skipped",
            path,
            reason,
            exc.strerror or exc,
        )
        return None
    _append_index(root, target, relative, reason)
    log.warning("quarantined unreadable data file %s -> %s: %s", relative, target.relative_to(root), reason)
    return target


def list_quarantined(root: Path) -> list[QuarantinedFile]:
    """Every file in the quarantine folder, oldest move first where the index knows, with why it is there."""
    base = quarantine_dir(root)
    notes = {entry["file"]: entry for entry in _read_index(root)}
    out = []
    for path in sorted(_walk(base)):
        note = notes.get(str(path.relative_to(root)), {})
        out.append(QuarantinedFile(path, note.get("from"), note.get("reason"), note.get("at")))
    return out


def _free_name(target: Path) -> Path:
    """`target`, or `<stem>~<n><suffix>` beside it if a file of that name was quarantined before."""
    candidate, n = target, 0
    while candidate.exists():
        n += 1
        candidate = target.with_name(f"{target.stem}~{n}{target.suffix}")
    return candidate


def _append_index(root: Path, target: Path, original: Path, reason: str) -> None:
    """Best effort: the moved file itself is what matters, the index only says why."""
    entry = {
        "file": str(target.relative_to(root)),
        "from": str(original),
        "reason": reason,
        "at": ns_to_iso(now_ns()),
    }
    with contextlib.suppress(OSError), open(quarantine_dir(root) / INDEX_FILE, "a") as fh:
        fh.write(json.dumps(entry) + "\n")


def _read_index(root: Path) -> list[dict[str, str]]:
    try:
        lines = (quarantine_dir(root) / INDEX_FILE).read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and isinstance(entry.get("file"), str):
                out.append(entry)
    return out


def _walk(base: Path) -> Iterator[Path]:
    for folder, _, names in os.walk(base):
        for name in names:
            path = Path(folder) / name
            if path.parent != base or name != INDEX_FILE:
                yield path


__all__ = [
    "QUARANTINE_DIR",
    "QuarantinedFile",
    "catalog_root_of",
    "list_quarantined",
    "quarantine_dir",
    "quarantine_file",
]
