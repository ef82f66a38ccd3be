"""reproduce's tables are written atomically: a full disk keeps the previous table whole (issue 13, item 2)."""
from __future__ import annotations

import errno
import os
from pathlib import Path

import pandas as pd
import pytest

from analysis.reproduce import write_csv
from payoffs.errors import DefdropError


def test_full_disk_keeps_the_previous_table(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "tables" / "algorithm1.csv"
    path.parent.mkdir()
    pd.DataFrame({"r": [0.1, 0.3]}).to_csv(path, index=False)
    before = path.read_bytes()

    def full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "write", full)
    with pytest.raises(DefdropError, match="No space left on device"):
        write_csv(path, pd.DataFrame({"r": list(range(10_000))}))
    monkeypatch.undo()
    assert path.read_bytes() == before and sorted(p.name for p in path.parent.iterdir()) == ["algorithm1.csv"]
    write_csv(path, pd.DataFrame({"r": [0.5]}))
    assert pd.read_csv(path)["r"].tolist() == [0.5]
