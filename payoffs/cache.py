"""Finished cells on disk, one JSON file per key, written atomically (temp file + rename)."""
from __future__ import annotations

import json
from pathlib import Path

from payoffs.checkpoint import atomic_write_bytes


class CellCache:
    """``<root>/<key>.json``; a file is either absent or complete, so a kill -9 loses at most running cells."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def get(self, key: str) -> dict | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (json.JSONDecodeError, OSError):
            return None  # unreadable: recompute rather than trust it

    def put(self, key: str, record: dict) -> None:
        atomic_write_bytes(self.path(key), json.dumps(record, sort_keys=True).encode())

