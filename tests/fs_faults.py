"""Real file-system faults for tests: a tiny tmpfs that fills up, a directory nobody may write in.

Both need privileges that a test run may lack (mounting needs root; ``chmod`` does not stop root): each context
manager skips the test when it cannot make the fault real, rather than faking it.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest


def _mount_tmpfs(where: Path, options: str) -> bool:
    if os.name != "posix" or os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "defdrop-test", str(where)], capture_output=True)
    return done.returncode == 0


@contextlib.contextmanager
def tiny_filesystem(where: Path, size_kib: int = 64) -> Iterator[Path]:
    """A tmpfs of ``size_kib`` KiB mounted at ``where`` (created): writes beyond it fail with ENOSPC."""
    where.mkdir(parents=True, exist_ok=True)
    if not _mount_tmpfs(where, f"size={size_kib}k"):
        pytest.skip("cannot mount a small tmpfs here (needs root and mount)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


@contextlib.contextmanager
def unwritable_dir(where: Path) -> Iterator[Path]:
    """A directory this process cannot write in: a read-only tmpfs as root, ``chmod 0555`` otherwise."""
    where.mkdir(parents=True, exist_ok=True)
    if os.name == "posix" and os.geteuid() == 0:
        if not _mount_tmpfs(where, "ro,size=16k"):
            pytest.skip("running as root and cannot mount a read-only tmpfs: no way to make a directory unwritable")
        try:
            yield where
        finally:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)
        return
    where.chmod(0o555)
    try:
        yield where
    finally:
        where.chmod(0o755)
