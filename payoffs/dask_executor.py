"""Payoff cells on a Dask cluster (``dask.distributed``): the :class:`payoffs.executor.Executor` protocol for
several machines.

``DaskExecutor(scheduler="tcp://host:8786")`` connects to a running scheduler; ``DaskExecutor()`` starts a
``LocalCluster`` of one-thread worker processes on 127.0.0.1, one per core. ``run(jobs)`` yields
``(index, record)`` as cells finish (``distributed.wait(..., FIRST_COMPLETED)``), so the caller writes each record
to its cache at once: only the client writes the cache, and a dead worker loses only the cell it was running.

* **No shared file system.** A cell spec names its model by a :class:`payoffs.sources.PortableSource`, whose bytes
  (a checkpoint file's) are read here, and its test split is loaded here; each distinct model and split enters the
  cluster once per sweep as a data-holding task keyed by its identity, every cell depends on it, and each worker
  fetches it once (from the scheduler or a peer). A held task, unlike ``scatter``ed data, is recomputed if every
  worker holding it dies. A worker rebuilds a model once per process (:func:`_model_on_worker`, keyed by
  identity and device) and checks its identity; it never opens a path of the client's machine.
* **Workers that die.** The scheduler reruns the cell of a worker that died (``distributed.scheduler.
  allowed-failures``, 3 by default); a cell that killed that many workers is failed with one line at the end,
  after every other cell. Cells are deterministic at a fixed torch thread count, so a rerun equals the lost run:
  every cell runs with ``threads`` torch threads (1 by default; recorded in the cell record). Other thread counts
  or devices can change float round-off and so, rarely, a decision at a margin.
* **GPUs.** A cell whose spec asks for ``cuda`` requests the worker resource ``GPU=1`` (start such workers with
  ``dask worker ADDRESS --resources GPU=1``); without any the run stops after :data:`WORKER_WAIT_SECONDS`.
* **Bad input and interruptions.** A malformed or unreachable address, or something that is not a Dask
  scheduler, is one :class:`DefdropError` within :data:`CONNECT_SECONDS`; a cluster without (suitable) workers for
  :data:`WORKER_WAIT_SECONDS` is one line too, never a hang. Ctrl-C or SIGTERM cancels the outstanding futures;
  every record already yielded is the caller's to keep.

:func:`open_executor` picks the executor that the command-line options ``--executor``, ``--scheduler`` and
``--jobs`` name. ``dask`` and ``distributed`` are imported only here, and only when an executor is created.
"""
from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import threading
import time
import uuid
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from payoffs.errors import DefdropError, exception_line
from payoffs.executor import Job, available_cores, describe_job

CONNECT_SECONDS = 5.0      # connecting to a scheduler (the whole answer stays within 10 s)
WORKER_WAIT_SECONDS = 10.0  # how long a run waits for a worker (one with a GPU where cells need one)
POLL_SECONDS = 1.0          # how often a waiting run checks that the cluster still has workers
MODEL_CACHE = 4             # models a worker process keeps loaded (by identity and device)
DEFAULT_PORT = 8786         # a Dask scheduler's port when an address names none
log = logging.getLogger(__name__)

Log = Callable[[str], None]


# --------------------------------------------------------------------------- the worker side
_MODELS: "OrderedDict[tuple[str, str, str], Any]" = OrderedDict()
_MODELS_LOCK = threading.Lock()


def _model_on_worker(source: Any, payload: bytes, device: str) -> Any:
    """The source's model from its payload, built once per worker process, identity and device."""
    key = (type(source).__qualname__, source.identity, str(device))
    with _MODELS_LOCK:
        if key in _MODELS:
            _MODELS.move_to_end(key)
            return _MODELS[key]
        model = source.from_payload(payload, device)
        _MODELS[key] = model
        while len(_MODELS) > MODEL_CACHE:
            _MODELS.popitem(last=False)
        return model


def _hold(value: Any) -> Any:
    """A data-holding task: its result is the value it was given (a model payload, a test split)."""
    return value


def _worker_facts() -> dict:
    """What the client checks on each worker: the cell protocol it runs, its torch and whether it has CUDA."""
    import torch

    from payoffs.cell import PROTOCOL_VERSION

    return {"protocol": PROTOCOL_VERSION, "torch": torch.__version__, "cuda": torch.cuda.is_available()}


def _run_on_worker(fn: Callable[..., dict], spec: Any, payload: bytes | None, split: Any, threads: int,
                   protocol: int) -> dict:
    """One job on a worker: ``fn(spec, None, model=..., data=...)`` with the shipped resources, at ``threads``
    torch threads (so a rerun on another worker gives the same record)."""
    import torch

    from payoffs.cell import PROTOCOL_VERSION

    if PROTOCOL_VERSION != protocol:
        raise DefdropError(f"a Dask worker runs cell protocol {PROTOCOL_VERSION}, this client {protocol}: install "
                           f"the same defdrop on every worker")
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    if payload is None:
        return fn(spec, None)
    return fn(spec, None, model=_model_on_worker(spec.model, payload, spec.device), data=split)


# --------------------------------------------------------------------------- the client side
def check_address(address: str) -> str:
    """``tcp://host:port`` from ``host:port``, ``tcp://host`` (port 8786) or a scheduler file (JSON with an
    ``address``, as ``dask scheduler --scheduler-file`` writes); one line naming the problem otherwise."""
    from distributed.comm.addressing import parse_address, parse_host_port

    text = str(address).strip()
    if not text:
        raise DefdropError("--scheduler is empty; give the scheduler's address, e.g. tcp://10.0.0.5:8786")
    if text.endswith(".json") or Path(text).is_file():
        import json
        try:
            text = str(json.loads(Path(text).read_text())["address"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DefdropError(f"--scheduler {address}: not a readable scheduler file with an address "
                               f"({exception_line(exc)})") from None
    if "://" not in text:
        text = "tcp://" + text
    try:
        protocol, location = parse_address(text, strict=True)
        if protocol != "tcp":
            raise ValueError(f"protocol {protocol!r}: only tcp is supported")
        host, port = parse_host_port(location, default_port=DEFAULT_PORT)
        if not host or any(c in host for c in "/ ?#@"):
            raise ValueError(f"host {host!r} is not a host name or IP address")
        if not 0 < int(port) < 65536:
            raise ValueError(f"port {port} is not from 1 to 65535")
    except (ValueError, TypeError) as exc:
        why = "the port is not a number" if "int()" in str(exc) else str(exc)
        raise DefdropError(f"--scheduler {address!r} is not a scheduler address ({why}); expected "
                           f"tcp://HOST:PORT") from None
    host = f"[{host}]" if ":" in host else host
    return f"{protocol}://{host}:{int(port)}"


async def _identity(address: str, timeout: float) -> dict:
    from distributed.comm import connect

    comm = await connect(address, timeout=timeout)
    try:
        await comm.write({"op": "identity", "reply": True})
        return await comm.read()
    finally:
        comm.abort()


def probe_scheduler(address: str, timeout: float = CONNECT_SECONDS) -> dict:
    """The scheduler's identity (``type``, ``n_workers``, ``services``...) within ``timeout`` seconds.

    ``Client(address, timeout=...)`` can wait forever on a port that accepts connections but never answers; this
    handshake has a deadline, and then the real connection is made. A refused connection fails at once (Dask
    itself would retry it until the timeout, for a scheduler still starting)."""
    import socket

    from distributed.comm.addressing import parse_address, parse_host_port

    host, port = parse_host_port(parse_address(address)[1])
    deadline = time.monotonic() + timeout
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except ConnectionRefusedError:
        raise DefdropError(f"nothing listens at {address} (connection refused); is the Dask scheduler running "
                           f"there?") from None
    except OSError as exc:  # unresolvable host, unreachable network, timeout
        raise DefdropError(f"cannot reach a Dask scheduler at {address} ({exception_line(exc)})") from None
    try:
        left = max(0.1, deadline - time.monotonic())
        reply = asyncio.run(asyncio.wait_for(_identity(address, left), left))
    except (asyncio.TimeoutError, TimeoutError):
        raise DefdropError(f"no Dask scheduler answered at {address} within {timeout:g} s; is it running and "
                           f"reachable from here?") from None
    except Exception as exc:  # noqa: BLE001 - refused, unresolvable, garbage: all one line
        raise DefdropError(f"cannot reach a Dask scheduler at {address} ({exception_line(exc)})") from None
    if not isinstance(reply, dict) or reply.get("type") != "Scheduler":
        raise DefdropError(f"{address} answered, but not as a Dask scheduler")
    return reply


class DaskExecutor:
    """Runs jobs on a Dask cluster: ``scheduler`` (an address or scheduler file) or, without one, a
    ``LocalCluster`` of ``n_workers`` one-thread processes on 127.0.0.1 (default: one per core).

    ``threads``: torch threads per cell on every worker. ``log`` receives one-line notes (where the cluster is,
    its dashboard). Use it as a context manager, or call :meth:`close`; it connects on first use.
    """

    def __init__(self, scheduler: str | None = None, *, n_workers: int | None = None, threads: int = 1,
                 connect_timeout: float = CONNECT_SECONDS, worker_wait: float = WORKER_WAIT_SECONDS,
                 gpu_workers: bool = False, log: Log | None = None) -> None:
        if threads < 1:
            raise DefdropError(f"torch threads per worker must be at least 1, not {threads}")
        if n_workers is not None and n_workers < 1:
            raise DefdropError(f"a local Dask cluster needs at least 1 worker, not {n_workers}")
        self.address = check_address(scheduler) if scheduler is not None else None
        self.n_workers = n_workers
        self.threads = threads
        self.connect_timeout = connect_timeout
        self.worker_wait = worker_wait
        self.gpu_workers = gpu_workers  # local cluster only: its workers declare GPU=1
        self.log = log or (lambda line: None)
        self.client: Any = None
        self.cluster: Any = None
        self.dashboard: str | None = None

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> "DaskExecutor":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> "DaskExecutor":
        """Connect (or start the local cluster) and check that there are workers able to run cells."""
        if self.client is not None:
            return self
        from distributed import Client

        if self.address is not None:
            identity = probe_scheduler(self.address, self.connect_timeout)
            try:
                self.client = Client(self.address, timeout=self.connect_timeout, set_as_default=False)
            except Exception as exc:  # noqa: BLE001
                raise DefdropError(f"cannot connect to the Dask scheduler at {self.address} "
                                   f"({exception_line(exc)})") from None
            dashboard = (identity.get("services") or {}).get("dashboard")
            where = f"Dask scheduler {self.address}"
        else:
            self.cluster = self._local_cluster()
            self.client = Client(self.cluster, set_as_default=False)
            dashboard = self.cluster.dashboard_link
            where = f"local Dask cluster {self.cluster.scheduler_address}"
        if dashboard:
            self.dashboard = self.client.dashboard_link
            if self.cluster is not None and not importlib.util.find_spec("bokeh"):
                self.dashboard += " (install bokeh to see it)"
        try:
            self._wait_for_workers()
            facts = self._check_workers()
        except BaseException:
            self.close()
            raise
        gpus = sum(1 for f in facts.values() if f.get("cuda"))
        self.log(f"{where}: {len(facts)} worker(s), {self.threads} torch thread(s) per cell"
                 + (f", {gpus} with CUDA" if gpus else "")
                 + (f"; dashboard {self.dashboard}" if self.dashboard else ""))
        return self

    def _local_cluster(self) -> Any:
        from distributed import LocalCluster

        n = self.n_workers or available_cores()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. "port 8787 is in use": a free one is taken
                return LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                    dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR,
                                    resources={"GPU": 1} if self.gpu_workers else None)
        except Exception as exc:  # noqa: BLE001 - e.g. workers that cannot start: one line
            raise DefdropError(f"cannot start a local Dask cluster of {n} worker(s) ({exception_line(exc)}); a "
                               f"Python script that starts one needs an `if __name__ == \"__main__\":` "
                               f"guard") from None

    def close(self) -> None:
        """Disconnect (and stop the local cluster, if this executor started it), quietly."""
        client, cluster, self.client, self.cluster = self.client, self.cluster, None, None
        logger = logging.getLogger("distributed")
        level = logger.level
        logger.setLevel(logging.ERROR)  # a closing local scheduler narrates at INFO
        try:
            for thing in (client, cluster):
                if thing is not None:
                    with contextlib.suppress(Exception):
                        thing.close()
        finally:
            logger.setLevel(level)

    def describe(self) -> dict:
        """For a table's settings: where cells ran and at how many torch threads."""
        return {"executor": "dask", "scheduler": self.address or "local cluster", "torch_threads": self.threads,
                "workers": len(self._workers()) if self.client is not None else None}

    # ------------------------------------------------------------------ workers
    def _workers(self) -> dict[str, dict]:
        """The scheduler's current workers, asked now (not a cached view)."""
        info = self.client.scheduler_info(n_workers=-1)
        return dict(info.get("workers", {}))

    def _wait_for_workers(self, gpu: bool = False) -> None:
        """Return once a worker (with a GPU resource, if ``gpu``) is there; one line after ``worker_wait`` s."""
        deadline = time.monotonic() + self.worker_wait
        while True:
            workers = self._workers()
            able = [w for w in workers.values() if not gpu or (w.get("resources") or {}).get("GPU", 0) >= 1]
            if able:
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        where = self.address or "the local cluster"
        if gpu and workers:
            raise DefdropError(f"--device cuda runs each cell on a worker with a GPU resource, and none of the "
                               f"{len(workers)} worker(s) of {where} declares one (start them with "
                               f"`dask worker {where} --resources GPU=1`); every finished cell is kept")
        raise DefdropError(f"the Dask scheduler at {where} has no workers (waited {self.worker_wait:g} s); start "
                           f"some with `dask worker {where} --nthreads 1`; every finished cell is kept")

    def _check_workers(self) -> dict[str, dict]:
        """Every worker can import defdrop and runs this client's cell protocol."""
        from payoffs.cell import PROTOCOL_VERSION

        try:
            facts = self.client.run(_worker_facts, on_error="return")
        except Exception as exc:  # noqa: BLE001
            raise DefdropError(f"cannot run defdrop on the Dask workers ({exception_line(exc)}); install defdrop "
                               f"and torch on every worker") from None
        bad = {a: f for a, f in facts.items() if not isinstance(f, dict)}
        if bad:
            address, exc = next(iter(bad.items()))
            raise DefdropError(f"{len(bad)} Dask worker(s) cannot run defdrop, e.g. {address} "
                               f"({exception_line(exc)}); install defdrop and torch on every worker")
        other = {a: f["protocol"] for a, f in facts.items() if f["protocol"] != PROTOCOL_VERSION}
        if other:
            raise DefdropError(f"Dask worker(s) {', '.join(sorted(other))} run cell protocol "
                               f"{sorted(set(other.values()))}, this client {PROTOCOL_VERSION}: install the same "
                               f"defdrop everywhere")
        return facts

    def _lacks_workers(self, gpu: bool, since: float | None) -> float | None:
        """Called while a run waits: ``None`` while the cluster has a suitable worker, else since when it has had
        none; after ``worker_wait`` s without one, the one-line error of :meth:`_wait_for_workers`."""
        able = any(not gpu or (w.get("resources") or {}).get("GPU", 0) >= 1 for w in self._workers().values())
        if able:
            return None
        if since is None:
            return time.monotonic()
        if time.monotonic() - since >= self.worker_wait:
            self._wait_for_workers(gpu)  # raises (or returns if a worker came just now)
            return None
        return since

    # ------------------------------------------------------------------ running
    def _resources(self, jobs: Sequence[Job], token: str) -> tuple[dict, dict]:
        """One held task per distinct model payload and test split the jobs need (the bytes travel once)."""
        models: dict[str, Any] = {}
        splits: dict[str, Any] = {}
        for _, spec in jobs:
            model, data = getattr(spec, "model", None), getattr(spec, "data", None)
            if model is None or data is None:
                continue
            if not (callable(getattr(model, "payload", None)) and callable(getattr(model, "from_payload", None))):
                raise DefdropError(f"model {getattr(model.description, 'label', model)}: its source "
                                   f"({type(model).__name__}) cannot send the model to Dask workers (it is no "
                                   f"payoffs.sources.PortableSource: no payload()); run it with --executor local")
            if model.identity not in models:
                models[model.identity] = self.client.submit(_hold, model.payload(), pure=False,
                                                            key=f"defdrop-model-{model.identity}-{token}")
            if data.identity not in splits:
                splits[data.identity] = self.client.submit(_hold, data.load_test(), pure=False,
                                                           key=f"defdrop-data-{data.identity}-{token}")
        return models, splits

    def run(self, jobs: Sequence[Job]) -> Iterator[tuple[int, dict]]:
        import dask
        from distributed import wait
        from distributed.scheduler import KilledWorker

        from payoffs.cell import PROTOCOL_VERSION

        jobs = list(jobs)
        if not jobs:
            return
        self.start()
        gpu = any(str(getattr(spec, "device", "cpu")).startswith("cuda") for _, spec in jobs)
        if gpu:
            self._wait_for_workers(gpu=True)
        token = uuid.uuid4().hex[:8]
        pending: dict[Any, int] = {}
        held: list[Any] = []
        failed: list[str] = []
        clean = False
        try:
            with dask.config.set({"distributed.admin.large-graph-warning-threshold": "4GB"}):
                models, splits = self._resources(jobs, token)
                held = list(models.values()) + list(splits.values())
                for i, (fn, spec) in enumerate(jobs):
                    model, data = getattr(spec, "model", None), getattr(spec, "data", None)
                    shipped = model is not None and data is not None
                    key = getattr(spec, "key", None)
                    name = key() if callable(key) else str(i)
                    cuda = str(getattr(spec, "device", "cpu")).startswith("cuda")
                    future = self.client.submit(
                        _run_on_worker, fn, spec, models[model.identity] if shipped else None,
                        splits[data.identity] if shipped else None, self.threads, PROTOCOL_VERSION,
                        key=f"defdrop-{getattr(fn, '__name__', 'job')}-{name}-{token}", pure=False,
                        resources={"GPU": 1} if cuda else None, priority=len(jobs) - i)
                    pending[future] = i
            no_worker_since: float | None = None
            while pending:
                with self.client.as_current():
                    try:
                        done, _ = wait(list(pending), timeout=POLL_SECONDS, return_when="FIRST_COMPLETED")
                    except TimeoutError:
                        no_worker_since = self._lacks_workers(gpu, no_worker_since)
                        continue
                for future in done:
                    index = pending.pop(future)
                    what = describe_job(jobs[index], index)
                    if future.status == "finished":
                        yield index, future.result()
                    elif future.status == "error":
                        exc = future.exception()
                        if isinstance(exc, KilledWorker):
                            failed.append(f"{what}: the workers running it died {exc.allowed_failures + 1} "
                                          f"time(s)")
                            log.warning("%s: the workers running it died; giving up on it", what)
                        elif isinstance(exc, DefdropError):
                            raise exc
                        else:
                            future.result()  # raises the job's exception with the worker's traceback
                    elif future.status in ("lost", "pending"):
                        # finished, then its result was lost with a worker that died before this client gathered
                        # it: the scheduler computes it again (the future is still held), so wait for it again
                        log.warning("%s: its result was lost with a worker; waiting for the recomputation", what)
                        pending[future] = index
                    else:
                        raise DefdropError(f"the Dask scheduler cancelled {what} (it restarted, or this client "
                                           f"lost it); every finished job is kept: run again to resume")
            clean = True
        finally:
            if not clean and self.client is not None:
                with contextlib.suppress(Exception):
                    self.client.cancel(list(pending) + held, force=True)
            pending.clear()
            held.clear()
        if failed:
            raise DefdropError(f"{len(failed)} job(s) failed, every other one finished and was kept: "
                               f"{'; '.join(failed)}; run again to retry (on workers with more memory)")


EXECUTORS = ("local", "dask")


def check_executor_options(kind: str | None, scheduler: str | None, jobs: int = 1) -> str:
    """The executor the options name (``local`` or ``dask``), their combination checked; nothing is contacted,
    so a command can check them before any work."""
    kind = kind if kind is not None else ("dask" if scheduler is not None else "local")
    if kind not in EXECUTORS:
        raise DefdropError(f"unknown executor {kind!r}; choose one of {', '.join(EXECUTORS)}")
    if kind == "local" and scheduler is not None:
        raise DefdropError("--scheduler needs --executor dask (the local executor runs processes here)")
    if kind == "dask" and scheduler is not None and jobs > 1:
        raise DefdropError(f"--jobs {jobs} sizes local processes; with --scheduler the cluster's workers run the "
                           f"cells: drop --jobs")
    return kind


@contextlib.contextmanager
def open_executor(kind: str | None = None, scheduler: str | None = None, *, jobs: int = 1, threads: int = 1,
                  device: str = "cpu", log: Callable[[str], None] | None = None) -> Iterator[DaskExecutor | None]:
    """The executor the ``--executor``/``--scheduler``/``--jobs`` options name, open for the ``with`` block.

    ``local`` (the default without a scheduler) yields ``None``: the table builder then runs ``jobs`` local
    processes. ``dask`` (the default with a scheduler) connects to ``scheduler``, or starts a local Dask cluster of
    ``jobs`` workers when ``jobs > 1``, else one per core; ``threads`` torch threads per cell; ``device`` cuda
    gives a local cluster's workers the ``GPU`` resource that cells on cuda request.
    """
    kind = check_executor_options(kind, scheduler, jobs)
    if kind == "local":
        yield None
        return
    with DaskExecutor(scheduler, n_workers=jobs if jobs > 1 else None, threads=threads,
                      gpu_workers=str(device).startswith("cuda"), log=log) as executor:
        yield executor
