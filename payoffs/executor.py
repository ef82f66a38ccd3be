"""Where cells run, behind one small interface: in this process, or in local worker processes.

An executor takes picklable jobs ``(fn, spec)`` and yields ``(index, result)`` as each finishes. A distributed
engine can implement the same two methods.
"""
from __future__ import annotations

import multiprocessing as mp
import os
from typing import Any, Callable, Iterator, Protocol, Sequence

Job = tuple[Callable[..., dict], Any]


class Executor(Protocol):
    def run(self, jobs: Sequence[Job]) -> Iterator[tuple[int, dict]]: ...


class InProcessExecutor:
    """Runs jobs one after another here; ``progress_for(i)`` may give each job a per-cell progress callback."""

    def __init__(self, progress_for: Callable[[int], Callable[[int, int], None] | None] | None = None) -> None:
        self.progress_for = progress_for

    def run(self, jobs: Sequence[Job]) -> Iterator[tuple[int, dict]]:
        for i, (fn, spec) in enumerate(jobs):
            progress = self.progress_for(i) if self.progress_for else None
            yield i, fn(spec, progress)


def _init_worker(threads: int) -> None:
    """Torch threads for this worker; Ctrl-C is the parent's to handle (it then terminates the workers)."""
    import signal

    import torch
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)


def _call(job: tuple[int, Callable[..., dict], Any]) -> tuple[int, dict]:
    i, fn, spec = job
    return i, fn(spec, None)


class ProcessExecutor:
    """``jobs`` worker processes (spawned), each with cores // jobs torch threads so cores are not oversubscribed.

    On Ctrl-C (or any error, or when the caller stops iterating) the workers are terminated at once: their
    running jobs are lost, every job already yielded is the caller's (and cached) to keep.
    """

    def __init__(self, jobs: int, cores: int | None = None) -> None:
        self.jobs = max(1, jobs)
        cores = cores or len(os.sched_getaffinity(0))
        self.threads = max(1, cores // self.jobs)

    def run(self, jobs: Sequence[Job]) -> Iterator[tuple[int, dict]]:
        pool = mp.get_context("spawn").Pool(self.jobs, initializer=_init_worker, initargs=(self.threads,))
        try:
            yield from pool.imap_unordered(_call, [(i, fn, spec) for i, (fn, spec) in enumerate(jobs)])
            pool.close()
        finally:
            pool.terminate()
            pool.join()


def make_executor(jobs: int, progress_for=None) -> Executor:
    return InProcessExecutor(progress_for) if jobs <= 1 else ProcessExecutor(jobs)
