"""write_payoff_table writes the CSV and its JSON sidecar as a pair: all or nothing, sidecar first, CSV last."""
from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from gameplay.strategies import attacker_space, defender_space
from gameplay.synthetic import synthetic_payoff_table
from payoffs.errors import DefdropError
from payoffs.sources import CheckpointSource, ModelDescription
from payoffs.table import payoff_outputs, write_payoff_table
from tests.fs_faults import tiny_filesystem

REFS = [CheckpointSource("/m.pt", "0123456789abcdef", ModelDescription("r=0.3", "mnist-5k", (("train_dropout", 0.3),)))]


def _write(out: Path, table: pd.DataFrame) -> Path:
    return write_payoff_table(table, out, models=REFS, attackers=attacker_space(["fgsm"]),
                              defenders=defender_space([0.0]), n_images=2, eval_samples=3, seed=0)


def _old_pair(tmp_path: Path) -> tuple[Path, Path]:
    csv, sidecar = tmp_path / "p.csv", tmp_path / "p.json"
    csv.write_text("old,csv\n")
    sidecar.write_text('{"old": true}')
    return csv, sidecar


def test_sidecar_names_the_csv_and_its_hash(tmp_path: Path) -> None:
    table = synthetic_payoff_table(3, 2)
    sidecar = _write(tmp_path / "p.csv", table)
    settings = json.loads(sidecar.read_text())
    assert sidecar == tmp_path / "p.json" and settings["csv"] == "p.csv"
    assert settings["csv_sha256"] == hashlib.sha256((tmp_path / "p.csv").read_bytes()).hexdigest()
    assert payoff_outputs(tmp_path / "p.csv") == {"CSV": tmp_path / "p.csv", "JSON sidecar": tmp_path / "p.json",
                                                  "per-image sidecar": tmp_path / "p.images.npz"}


def test_sidecar_is_renamed_before_the_csv(tmp_path: Path, monkeypatch) -> None:
    order: list[str] = []
    real = os.replace

    def record(src, dst):
        order.append(Path(dst).name)
        real(src, dst)
    monkeypatch.setattr(os, "replace", record)
    _write(tmp_path / "p.csv", synthetic_payoff_table(3, 2))
    assert order == ["p.json", "p.csv"]


@pytest.mark.parametrize("failing_fsync", [1, 2])
def test_disk_full_during_either_file_keeps_the_old_pair(tmp_path: Path, monkeypatch, failing_fsync: int) -> None:
    """Issue 13, item 4: a new CSV was left without its sidecar, or beside the old run's."""
    csv, sidecar = _old_pair(tmp_path)
    real, calls = os.fsync, []

    def fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) == failing_fsync:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(DefdropError, match="No space left on device"):
        _write(csv, synthetic_payoff_table(3, 2))
    monkeypatch.undo()
    assert csv.read_text() == "old,csv\n" and sidecar.read_text() == '{"old": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.csv", "p.json"]


def test_real_full_disk_keeps_the_old_pair(tmp_path: Path) -> None:
    with tiny_filesystem(tmp_path / "tiny", size_kib=16) as fs:
        csv, sidecar = _old_pair(fs)
        with pytest.raises(DefdropError, match="No space left on device"):
            _write(csv, synthetic_payoff_table(8, 12))  # ~40 KB of CSV
        assert csv.read_text() == "old,csv\n" and sidecar.read_text() == '{"old": true}'
        assert sorted(p.name for p in fs.iterdir()) == ["p.csv", "p.json"]
