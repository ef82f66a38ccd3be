"""payoffs.io: atomic writes under faults (full disk, failed renames), file modes, file sets, output checks."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from payoffs.errors import DefdropError
from payoffs.io import atomic_write_bytes, atomic_write_files, atomic_write_text, check_outputs
from tests.fs_faults import tiny_filesystem, unwritable_dir

ROOT = Path(__file__).resolve().parents[2]


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp") or "probe" in p.name)


@pytest.fixture
def umask():
    def set_mask(mask: int) -> None:
        os.umask(mask)
    old = os.umask(0o022)
    os.umask(old)
    yield set_mask
    os.umask(old)


# --------------------------------------------------------------------------- modes (issue 13, item 15)
@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_new_file_mode_honours_the_umask(tmp_path: Path, umask, mask: int, mode: int) -> None:
    umask(mask)
    path = tmp_path / "out.csv"
    atomic_write_bytes(path, b"a,b\n")
    assert path.stat().st_mode & 0o777 == mode
    assert path.read_bytes() == b"a,b\n"


def test_overwrite_keeps_the_old_files_mode(tmp_path: Path, umask) -> None:
    umask(0o022)
    path = tmp_path / "report.html"
    path.write_text("old")
    path.chmod(0o600)
    atomic_write_text(path, "new")
    assert path.read_text() == "new" and path.stat().st_mode & 0o777 == 0o600


def test_checkpoint_and_cache_files_honour_the_umask(tmp_path: Path, umask, small_trained) -> None:
    from payoffs.cache import CellCache
    from payoffs.checkpoint import save_checkpoint

    umask(0o022)
    save_checkpoint(tmp_path / "m.pt", small_trained.model, {})
    CellCache(tmp_path / "cache").put("k", {"key": "k"})
    assert (tmp_path / "m.pt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "cache" / "k.json").stat().st_mode & 0o777 == 0o644


# --------------------------------------------------------------------------- full disk (items 2, 4, 10)
def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("call", ["write", "fsync"])
def test_full_disk_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path, monkeypatch, call: str) -> None:
    path = tmp_path / "stats.csv"
    path.write_text("old good table\n")
    monkeypatch.setattr(os, call, _enospc)
    with pytest.raises(DefdropError, match="cannot write .*stats.csv: No space left on device"):
        atomic_write_bytes(path, b"new table\n" * 1000)
    monkeypatch.undo()
    assert path.read_text() == "old good table\n"
    assert _leftovers(tmp_path) == []


def test_real_full_disk(tmp_path: Path) -> None:
    with tiny_filesystem(tmp_path / "tiny", size_kib=64) as fs:
        path = fs / "stats.csv"
        atomic_write_text(path, "old good table\n")
        with pytest.raises(DefdropError, match="No space left on device"):
            atomic_write_bytes(path, b"x" * 200_000)
        assert path.read_text() == "old good table\n"
        assert _leftovers(fs) == []


def test_file_set_is_all_or_nothing(tmp_path: Path, monkeypatch) -> None:
    csv, sidecar = tmp_path / "p.csv", tmp_path / "p.json"
    csv.write_text("old csv")
    sidecar.write_text("old json")
    real_fsync, calls = os.fsync, []

    def fsync_fails_second(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 2:
            _enospc()
        real_fsync(fd)
    monkeypatch.setattr(os, "fsync", fsync_fails_second)
    with pytest.raises(DefdropError, match="No space left"):
        atomic_write_files([(sidecar, b"new json"), (csv, b"new csv")])
    monkeypatch.undo()
    assert (csv.read_text(), sidecar.read_text()) == ("old csv", "old json")
    assert _leftovers(tmp_path) == []


def test_file_set_renames_the_key_file_last(tmp_path: Path, monkeypatch) -> None:
    """A reader keyed on the CSV never sees a new CSV beside an old sidecar: the CSV is renamed last."""
    order: list[str] = []
    real_replace = os.replace

    def record(src, dst):
        order.append(Path(dst).name)
        real_replace(src, dst)
    monkeypatch.setattr(os, "replace", record)
    atomic_write_files([(tmp_path / "p.json", b"{}"), (tmp_path / "p.images.npz", b"npz"), (tmp_path / "p.csv", b"a")])
    assert order == ["p.json", "p.images.npz", "p.csv"]


def test_file_set_refuses_the_same_file_twice(tmp_path: Path) -> None:
    with pytest.raises(DefdropError, match="same file"):
        atomic_write_files([(tmp_path / "out.json", b"csv"), (tmp_path / "out.json", b"json")])
    assert not (tmp_path / "out.json").exists()


# --------------------------------------------------------------------------- output checks (items 1, 3, 10)
def test_outputs_that_are_fine_pass_and_nothing_is_created(tmp_path: Path) -> None:
    check_outputs({"--out": tmp_path / "new" / "deeper" / "p.csv", "--csv": None},
                  dirs={"--cache-dir": tmp_path / "cache"}, inputs={"--model": [tmp_path / "m.pt"]})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("case,message", [
    ("out_is_dir", "--out {d} is a directory"),
    ("under_file", "--out {f}/x.csv: cannot be created, {f} is not a directory"),
    ("is_input", "--out {f} is the input --model {f}"),
    ("sidecar_is_out", "--out {d}/out.json and its JSON sidecar {d}/out.json are the same file"),
    ("cache_under_file", "--cache-dir {f}/cells is a file|--cache-dir {f}/cells: cannot be created, {f} is not"),
    ("cache_is_file", "--cache-dir {f} is a file, not a directory"),
    ("two_outputs", "--out {d}/s.csv and --csv {d}/s.csv are the same file"),
])
def test_bad_outputs_are_refused_with_one_line(tmp_path: Path, case: str, message: str) -> None:
    d, f = tmp_path, tmp_path / "m.pt"
    f.write_bytes(b"checkpoint")
    args = {
        "out_is_dir": ({"--out": d}, {}, {}),
        "under_file": ({"--out": f / "x.csv"}, {}, {}),
        "is_input": ({"--out": f}, {}, {"--model": [f]}),
        "sidecar_is_out": ({"--out": d / "out.json", "its JSON sidecar": d / "out.json"}, {}, {}),
        "cache_under_file": ({}, {"--cache-dir": f / "cells"}, {}),
        "cache_is_file": ({}, {"--cache-dir": f}, {}),
        "two_outputs": ({"--out": d / "s.csv", "--csv": d / "s.csv"}, {}, {}),
    }[case]
    with pytest.raises(DefdropError) as err:
        check_outputs(args[0], dirs=args[1], inputs=args[2])
    text = str(err.value)
    assert "\n" not in text
    assert any(m.format(d=d, f=f) in text for m in message.split("|")), text
    assert f.read_bytes() == b"checkpoint"


def test_output_that_is_an_input_through_a_link_is_refused(tmp_path: Path) -> None:
    table = tmp_path / "p.csv"
    table.write_text("a\n")
    os.link(table, tmp_path / "hard.csv")
    (tmp_path / "soft.csv").symlink_to(table)
    for alias in ("hard.csv", "soft.csv", "./p.csv"):
        with pytest.raises(DefdropError, match="is the input PAYOFF"):
            check_outputs({"--out": tmp_path / alias}, inputs={"PAYOFF": table})


def test_unwritable_directory_is_refused_before_work(tmp_path: Path) -> None:
    with unwritable_dir(tmp_path / "ro") as ro:
        with pytest.raises(DefdropError, match=r"--out .*ro/model.pt: cannot write in .*ro \("):
            check_outputs({"--out": ro / "model.pt"})
        with pytest.raises(DefdropError, match=r"--out .*ro: cannot write in it"):
            check_outputs(dirs={"--out": ro})
        with pytest.raises(DefdropError, match=r"cannot write .*ro/x.csv"):
            atomic_write_text(ro / "x.csv", "a")


# --------------------------------------------------------------------------- no torch where none is needed
@pytest.mark.parametrize("module", ["payoffs.io", "analysis.solve_report", "analysis.html", "analysis.report",
                                    "gameplay", "gameplay.solve"])
def test_modules_without_torch(module: str) -> None:
    code = f"import sys, {module}; assert 'torch' not in sys.modules, 'torch loaded'"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-500:]


def test_checkpoint_still_exports_atomic_write_bytes() -> None:
    from payoffs import checkpoint
    assert checkpoint.atomic_write_bytes is atomic_write_bytes
