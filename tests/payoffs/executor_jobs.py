"""Job functions for the executor tests (module level, so spawned workers can import them)."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from payoffs.errors import DefdropError


def echo(spec, progress) -> dict:
    return {"value": spec, "pid": os.getpid()}


def die_once(spec, progress) -> dict:
    """SIGKILL the worker the first time (as the out-of-memory killer would), succeed when run again."""
    marker, value = spec
    if not Path(marker).exists():
        Path(marker).write_text("died")
        os.kill(os.getpid(), signal.SIGKILL)
    return {"value": value, "pid": os.getpid()}


def always_die(spec, progress) -> dict:
    os.kill(os.getpid(), signal.SIGKILL)
    return {}


def fail(spec, progress) -> dict:
    raise DefdropError(f"bad spec {spec!r}")


def sleep(spec, progress) -> dict:
    time.sleep(spec)
    return {"value": spec, "pid": os.getpid()}


def siblings(spec, progress) -> dict:
    """How many spawned worker processes the parent has (this one included), after the others have started."""
    time.sleep(spec)
    parent = os.getppid()
    kids = set()
    for task in Path(f"/proc/{parent}/task").iterdir():
        kids.update(int(p) for p in (task / "children").read_text().split())
    workers = [k for k in kids if b"spawn_main" in _cmdline(k)]
    return {"workers": len(workers), "pid": os.getpid()}


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
