"""Where cells run, behind one small interface: in this process, in local worker processes, or on a Dask cluster.

An executor takes picklable jobs ``(fn, spec)`` and yields ``(index, result)`` as each finishes (``result =
fn(spec, progress)``). :class:`payoffs.dask_executor.DaskExecutor` implements the same ``run`` on a cluster;
``payoffs.dask_executor.open_executor`` picks one from the command-line options.

The local :class:`ProcessExecutor` manages its workers itself rather than through ``multiprocessing.Pool``
(which never resends the job of a worker that died, and then waits forever):

* a worker that dies mid-job (the out-of-memory killer's SIGKILL) is replaced and its job run again, once
  (cells are deterministic); a job that kills its worker twice is failed with one line at the end, after every
  other job has finished;
* workers die with the parent: Linux's ``PR_SET_PDEATHSIG`` plus a watchdog thread that polls the parent's pid,
  so a ``kill -9`` of the parent leaves no orphan burning cores; on Ctrl-C, SIGTERM (which the CLI turns into
  :class:`payoffs.errors.Terminated`), an error, or when the caller stops iterating, workers are terminated at
  once: every job already yielded is the caller's (and cached) to keep;
* never more workers than jobs; each gets ``cores // workers`` torch threads.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterator, Protocol, Sequence

from payoffs.errors import DefdropError

Job = tuple[Callable[..., dict], Any]
log = logging.getLogger(__name__)

RETRIES = 1               # a job whose worker died is run again this many times (cells are deterministic)
WATCHDOG_SECONDS = 1.0    # how often a worker checks that its parent is alive (where PDEATHSIG is missing)
STOP_SECONDS = 5.0        # how long finished workers get to exit before they are terminated
_PR_SET_PDEATHSIG = 1     # <linux/prctl.h>


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


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def oversubscription_warning(jobs: int, cores: int | None = None) -> str | None:
    """One line when ``jobs`` parallel processes exceed the cores, else ``None``."""
    cores = cores or available_cores()
    if jobs <= cores:
        return None
    return (f"{jobs} parallel jobs on {cores} core(s): they will share the cores, each cell running slower; "
            f"going on")


def describe_job(job: Job, index: int) -> str:
    """``job 3 (run_cell: cw[k=0] vs dropout[r'=0.5])`` from whatever strategies the spec carries."""
    fn, spec = job
    who = [getattr(getattr(spec, name, None), "id", None) for name in ("attacker", "defender")]
    who = [w for w in who if isinstance(w, str)]
    return f"job {index} ({getattr(fn, '__name__', 'job')}" + (f": {' vs '.join(who)})" if who else ")")


# --------------------------------------------------------------------------- the worker side
def _die_with_parent(parent_pid: int) -> None:
    """Make this process end when ``parent_pid`` does, however it ends (``kill -9`` included)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before the line above
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(WATCHDOG_SECONDS)
            if os.getppid() != parent_pid:
                os._exit(1)
    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _worker_main(conn: Connection, threads: int, parent_pid: int) -> None:
    """Receive ``(index, fn, spec)``, send back ``("done", index, result)`` or ``("error", index, exc, text)``;
    ``None`` ends the loop. Ctrl-C is the parent's to handle (it then terminates the workers)."""
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        import torch
        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover - the executor itself does not need torch
        pass
    conn.send(("ready",))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        index, fn, spec = message
        try:
            result = fn(spec, None)
        except Exception as exc:  # noqa: BLE001 - handed to the parent, which raises it
            text = traceback.format_exc()
            try:
                conn.send(("error", index, exc, text))
            except Exception:  # noqa: BLE001 - an exception that does not pickle
                conn.send(("error", index, RuntimeError(f"{type(exc).__name__}: {exc}"), text))
        else:
            conn.send(("done", index, result))


# --------------------------------------------------------------------------- the parent side
class RemoteTraceback(Exception):
    """The worker's traceback, attached as the cause of an exception re-raised in the parent."""

    def __str__(self) -> str:
        return "\n" + str(self.args[0]) if self.args else ""


@dataclass
class _Worker:
    process: Any
    conn: Connection
    ready: bool = False     # it has started (imports done) and asked for work
    job: int | None = None  # the index of the job it holds

    @classmethod
    def start(cls, ctx: Any, threads: int) -> "_Worker":
        parent_end, child_end = ctx.Pipe(duplex=True)
        process = ctx.Process(target=_worker_main, args=(child_end, threads, os.getpid()), daemon=True,
                              name="defdrop-worker")
        process.start()
        child_end.close()  # only the worker holds it now: its death is an EOF here
        return cls(process, parent_end)

    def give(self, index: int, job: Job) -> bool:
        """Send a job; ``False`` if the worker is already gone (the job stays the caller's)."""
        try:
            self.conn.send((index, job[0], job[1]))
        except (OSError, ValueError):
            return False
        self.job = index
        return True

    def how_it_died(self) -> str:
        self.process.join(timeout=1.0)
        code = self.process.exitcode
        if code is None:
            return "it closed its pipe"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"killed by {name}" + (", as the out-of-memory killer does" if -code == signal.SIGKILL else "")
        return f"exit code {code}"

    def stop(self, now: bool) -> None:
        """Ask a worker to finish (``now=False``) or terminate it at once; it is gone when this returns."""
        if not now:
            try:
                self.conn.send(None)
            except (OSError, ValueError):
                now = True
        if now and self.process.is_alive():
            self.process.terminate()
        self.process.join(timeout=1.0 if now else STOP_SECONDS)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


class ProcessExecutor:
    """Up to ``jobs`` worker processes (spawned), each with ``cores // workers`` torch threads.

    See the module docstring for what happens when a worker or the parent dies. ``retries``: how many times a
    job whose worker died is run again before it is failed.
    """

    def __init__(self, jobs: int, cores: int | None = None, retries: int = RETRIES) -> None:
        self.jobs = max(1, jobs)
        self.cores = cores or available_cores()
        self.retries = retries
        self.started = 0  # worker processes started by the last run, replacements included

    def workers_for(self, n_jobs: int) -> int:
        """Never more workers than jobs."""
        return max(1, min(self.jobs, n_jobs))

    def run(self, jobs: Sequence[Job]) -> Iterator[tuple[int, dict]]:
        jobs = list(jobs)
        self.started = 0
        if not jobs:
            return
        n_workers = self.workers_for(len(jobs))
        threads = max(1, self.cores // n_workers)
        ctx = mp.get_context("spawn")
        pending: deque[int] = deque(range(len(jobs)))
        deaths = [0] * len(jobs)
        failed: list[str] = []
        workers: list[_Worker] = []
        startup_failures = 0

        def top_up() -> None:
            """Every worker holds a job while jobs are pending; dead workers are replaced."""
            while pending and len(workers) < n_workers:
                workers.append(_Worker.start(ctx, threads))
                self.started += 1
            for worker in workers:
                if worker.job is None and pending:
                    index = pending.popleft()
                    if not worker.give(index, jobs[index]):
                        pending.appendleft(index)

        def buried(worker: _Worker) -> None:
            """A worker that is gone: its job, if it held one, is run again or failed."""
            nonlocal startup_failures
            workers.remove(worker)
            why = worker.how_it_died()
            worker.conn.close()
            index, worker.job = worker.job, None
            if not worker.ready:
                startup_failures += 1
                if startup_failures > n_workers + 2:
                    raise DefdropError(f"worker processes die while starting ({why}); every finished job is kept")
                if index is not None:
                    pending.appendleft(index)
                return
            if index is None:
                return
            deaths[index] += 1
            what = describe_job(jobs[index], index)
            if deaths[index] > self.retries:
                failed.append(f"{what}: its worker died {deaths[index]} times ({why})")
                log.warning("%s: its worker died again (%s); giving up on it", what, why)
            else:
                pending.appendleft(index)
                log.warning("%s: its worker died (%s); running it again", what, why)

        clean = False
        try:
            top_up()
            while pending or any(w.job is not None for w in workers):
                ready = set(wait([w.conn for w in workers] + [w.process.sentinel for w in workers]))
                for worker in list(workers):
                    if worker.conn not in ready and worker.process.sentinel not in ready:
                        continue
                    gone = False
                    while worker.conn.poll():  # messages first: a worker may answer and then die
                        try:
                            message = worker.conn.recv()
                        except (EOFError, OSError):
                            gone = True
                            break
                        if message[0] == "ready":
                            worker.ready = True
                        elif message[0] == "done":
                            index, worker.job = worker.job, None
                            top_up()
                            yield index, message[2]
                        else:  # "error": the job raised; stop everything, as a job in this process would
                            exc, text = message[2], message[3]
                            if isinstance(exc, DefdropError):
                                raise exc
                            raise exc from RemoteTraceback(text)
                    if gone or not worker.process.is_alive():
                        if worker.process.is_alive():
                            worker.process.kill()
                        buried(worker)
                top_up()
            clean = True
        finally:
            for worker in workers:
                worker.stop(now=not clean)
        if failed:
            raise DefdropError(f"{len(failed)} job(s) failed, every other one finished and was kept: "
                               f"{'; '.join(failed)}; run again to retry (with fewer parallel jobs if memory is "
                               f"short)")


def make_executor(jobs: int, progress_for=None) -> Executor:
    return InProcessExecutor(progress_for) if jobs <= 1 else ProcessExecutor(jobs)

