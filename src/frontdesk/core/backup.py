"""Online backup of the embedded SQLite database."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


def backup_sqlite(source: Path, destination: Path) -> int:
    """Copy ``source`` to ``destination`` with SQLite's online backup API; returns pages copied.

    The backup API reads a consistent snapshot while the server keeps writing (in WAL mode a
    writer does not block it). The copy goes to a temporary file first and is renamed into
    place, so a failed backup never leaves a truncated file at ``destination``.
    """
    destination = destination.resolve()
    if destination == source.resolve():
        raise ValueError("the backup file must differ from the database file")
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(f".{destination.name}.partial")
    temporary.unlink(missing_ok=True)
    reader = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    writer = sqlite3.connect(temporary)
    try:
        reader.backup(writer, pages=1024)
        pages = writer.execute("PRAGMA page_count").fetchone()[0]
        writer.execute("PRAGMA journal_mode=DELETE")
    finally:
        writer.close()
        reader.close()
    os.replace(temporary, destination)
    return int(pages)
