"""Finished cells on disk, one JSON file per key, written atomically (temp file + rename)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from payoffs.errors import DefdropError
from payoffs.io import atomic_write_bytes


class CellCache:
    """``<root>/<key>.json``; a file is either absent or complete, so a kill -9 loses at most running cells.

    ``get`` returns a record only if it passes ``valid(record, key)``: an unreadable file, JSON of the wrong shape
    (``{}``, ``[]``, an old protocol's record) or a record for another key is treated as missing and recomputed.
    """

    def __init__(self, root: str | Path, valid: Callable[[Any, str], bool] | None = None) -> None:
        self.root = Path(root)
        if valid is None:
            from payoffs.cell import valid_record
            valid = valid_record
        self.valid = valid
        if self.root.exists() and not self.root.is_dir():
            raise DefdropError(f"cache directory {self.root} is a file")

    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def get(self, key: str) -> dict | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_bytes())
        except (ValueError, OSError, RecursionError):
            return None  # unreadable: recompute rather than trust it
        return record if self.valid(record, key) else None

    def put(self, key: str, record: dict) -> None:
        atomic_write_bytes(self.path(key), json.dumps(record, sort_keys=True).encode())
