"""The Dask executor with real processes on the loopback interface: a scheduler and two one-thread workers started
by the `dask` commands (no shared state with this process but the code), a sweep against the local executor, a
worker SIGKILLed mid-sweep, unreachable, malformed and silent addresses, a scheduler without workers, Ctrl-C.

Every process a test starts is stopped by its pid in a finalizer, even when the test fails."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("distributed")

from gameplay.strategies import attacker_space, defender_space  # noqa: E402
from payoffs.cache import CellCache  # noqa: E402
from payoffs.cell import CellSpec, run_cell  # noqa: E402
from payoffs.dask_executor import DaskExecutor, check_address  # noqa: E402
from payoffs.errors import DefdropError  # noqa: E402
from payoffs.sources import DataSource, ModelDescription  # noqa: E402
from payoffs.table import build_payoff_table, load_model_refs  # noqa: E402
from tests.payoffs import dask_jobs, executor_jobs  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
# Two attackers (FGSM and a tiny C&W) x three defenders, on 1 image x 9 targets, M = 2: nine jobs, a few s each.
SWEEP = dict(n_images=1, eval_samples=2, seed=0)


def _attackers():
    return attacker_space(["fgsm"]) + attacker_space(["cw"], {"search_steps": [2], "iterations": [10]})


def _defenders():
    return defender_space([0.0, 0.5], sap=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(procs: list[subprocess.Popen]) -> None:
    """Terminate, then kill, each process by its pid (only ours)."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.terminate()
    deadline = time.time() + 5
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Cluster:
    """A `dask scheduler` and its `dask worker`s (no nanny: a killed worker stays dead) on 127.0.0.1."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                    "OMP_NUM_THREADS": "1"}
        self.procs: list[subprocess.Popen] = []
        self.workers: list[subprocess.Popen] = []
        self.address = ""

    def _spawn(self, args: list[str], log: str) -> subprocess.Popen:
        with open(self.tmp / log, "ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def start_scheduler(self, name: str = "scheduler", workers: int = 0) -> str:
        """A scheduler on a free port (``--idle-timeout``: it ends by itself should this process die)."""
        file = self.tmp / f"{name}.json"
        proc = self._spawn(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                            "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(file),
                            "--idle-timeout", "300s"], f"{name}.log")
        deadline = time.time() + 60
        while not file.is_file() or not file.read_text().strip():
            assert proc.poll() is None, (self.tmp / f"{name}.log").read_text()
            assert time.time() < deadline, "the scheduler did not start"
            time.sleep(0.05)
        return json.loads(file.read_text())["address"]

    def start_worker(self) -> subprocess.Popen:
        n = len(self.workers)
        proc = self._spawn(["distributed.cli.dask_worker", self.address, "--nthreads", "1", "--no-nanny",
                            "--host", "127.0.0.1", "--no-dashboard", "--name", f"w{n}", "--death-timeout", "60",
                            "--local-directory", str(self.tmp / f"w{n}")], f"w{n}.log")
        self.workers.append(proc)
        return proc

    def ensure_workers(self, n: int = 2) -> None:
        """Start workers until ``n`` of ours are alive, and wait until the scheduler has them all."""
        from distributed import Client

        while sum(w.poll() is None for w in self.workers) < n:
            self.start_worker()
        with Client(self.address, timeout=30, set_as_default=False) as client:
            deadline = time.time() + 60
            while len(client.scheduler_info(n_workers=-1)["workers"]) != n:
                assert time.time() < deadline, "the workers did not register"
                time.sleep(0.1)

    def stop(self) -> None:
        """Workers first: a worker whose scheduler is gone waits for it before it exits."""
        _stop(self.workers)
        _stop(self.procs)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, request) -> Cluster:
    c = Cluster(tmp_path_factory.mktemp("dask"))
    request.addfinalizer(c.stop)
    c.address = c.start_scheduler()
    c.ensure_workers(2)
    return c


@pytest.fixture(scope="module")
def refs(small_checkpoint):
    return load_model_refs([small_checkpoint])


@contextlib.contextmanager
def torch_threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def local_table(refs, tmp_path_factory) -> pd.DataFrame:
    """The sweep by the local executor, at the workers' one torch thread."""
    with torch_threads(1):
        return build_payoff_table(refs, _attackers(), _defenders(), cache_dir=tmp_path_factory.mktemp("local"),
                                  **SWEEP)


def _same_table(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.drop(columns=["seconds"]), b.drop(columns=["seconds"]))
    for name, array in a.attrs["per_image"].arrays.items():
        np.testing.assert_array_equal(array, b.attrs["per_image"].arrays[name])


def _worker_pids(executor: DaskExecutor) -> dict[str, int]:
    return executor.client.run(os.getpid)


# --------------------------------------------------------------------------- a sweep on the cluster
def test_sweep_on_the_cluster_equals_the_local_sweep(cluster, refs, local_table, tmp_path) -> None:
    notes: list[str] = []
    with DaskExecutor(cluster.address, log=notes.append) as executor:
        table = build_payoff_table(refs, _attackers(), _defenders(), cache_dir=tmp_path, executor=executor, **SWEEP)
        # the cells ran on the workers, which built the model from its bytes, once per process
        built = executor.client.run(dask_jobs.models_built)
        assert set(_worker_pids(executor).values()) <= {w.pid for w in cluster.workers}
    assert len(table) == 6
    _same_table(local_table, table)
    assert any(ids == [refs[0].identity] for ids in built.values())
    assert all(ids in ([], [refs[0].identity]) for ids in built.values())
    records = [CellCache(tmp_path).get(k) for k in table["key"]]
    assert {r["threads"] for r in records} == {1}
    assert notes and f"Dask scheduler {cluster.address}: 2 worker(s)" in notes[0]


def test_a_worker_never_reads_a_path_of_the_client(cluster, refs, small_checkpoint) -> None:
    """The source's path exists nowhere; the worker gets the bytes, checks their identity and runs the cell."""
    real = refs[0]
    elsewhere = dask_jobs.ElsewhereSource("/nowhere/model.pt", real.identity, real.description, real.default_slot,
                                          None, real=str(small_checkpoint))
    spec = CellSpec(real, DataSource("mnist-5k"), _attackers()[0], _defenders()[1], 1, 2, 0)
    with torch_threads(1):
        here = run_cell(spec)
    with DaskExecutor(cluster.address) as executor:
        [(index, there)] = list(executor.run([(run_cell, replace(spec, model=elsewhere))]))
        # bytes of another model under this identity: the worker refuses them
        with pytest.raises(DefdropError, match="changed since this sweep began"):
            impostor = replace(elsewhere, identity="0" * 16)
            list(executor.run([(run_cell, replace(spec, model=impostor))]))
    assert index == 0
    assert {k: v for k, v in there.items() if k != "seconds"} == {k: v for k, v in here.items() if k != "seconds"}


def test_payloads_are_checked_like_files(refs, small_checkpoint) -> None:
    """The bytes a worker gets are untrusted like a file: garbage or another model is one line naming the file."""
    source = refs[0]
    assert source.payload() == Path(small_checkpoint).read_bytes()
    model = source.from_payload(source.payload())
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), source.load().state_dict().values()))
    with pytest.raises(DefdropError, match=f"{source.path}: not a defdrop checkpoint"):
        source.from_payload(b"\x00garbage")
    with pytest.raises(DefdropError, match="changed since this sweep began"):
        replace(source, identity="0" * 16).from_payload(source.payload())


def test_a_factory_model_travels_as_its_weights(cluster, small_trained, tmp_path) -> None:
    """A user model (factory + state dict): the weights' bytes travel, the worker builds it with the factory."""
    from payoffs.sources import FactorySource

    weights = tmp_path / "net.pt"
    torch.save(small_trained.model.state_dict(), weights)
    source = FactorySource.open("tests.payoffs.user_models:paper_cnn", weights, dataset="mnist-5k")
    moved = replace(source, weights="/nowhere/net.pt")  # rebuilt from the bytes alone, never from the path
    assert all(torch.equal(a, b) for a, b in zip(moved.from_payload(source.payload()).state_dict().values(),
                                                 small_trained.model.state_dict().values()))
    with pytest.raises(DefdropError, match="changed since this sweep began"):
        replace(source, identity="0" * 16).from_payload(source.payload())
    spec = CellSpec(source, DataSource("mnist-5k"), _attackers()[0], _defenders()[1], 1, 2, 0)
    with torch_threads(1):
        here = run_cell(spec)
    with DaskExecutor(cluster.address) as executor:
        [(_, there)] = list(executor.run([(run_cell, spec)]))
    assert {k: v for k, v in there.items() if k != "seconds"} == {k: v for k, v in here.items() if k != "seconds"}


def test_a_source_without_a_payload_is_one_line(cluster) -> None:
    source = dask_jobs.LocalOnlySource("f" * 16, ModelDescription("mine", "mnist-5k"))
    spec = CellSpec(source, DataSource("mnist-5k"), _attackers()[0], _defenders()[0], 1, 2, 0)
    with DaskExecutor(cluster.address) as executor, pytest.raises(DefdropError, match="cannot send the model"):
        list(executor.run([(run_cell, spec)]))


# --------------------------------------------------------------------------- a worker dies
def test_a_worker_killed_mid_sweep_loses_nothing(cluster, refs, local_table, tmp_path) -> None:
    cluster.ensure_workers(2)
    killed: list[tuple[int, tuple]] = []
    with DaskExecutor(cluster.address) as executor:
        pids = _worker_pids(executor)

        def kill_a_busy_worker(kind, done, total, record) -> None:
            if killed:
                return
            busy = {address: keys for address, keys in executor.client.processing().items() if keys}
            address, keys = next(iter(busy.items()))
            pid = pids[address]
            assert pid in {w.pid for w in cluster.workers}  # one of ours, by its pid
            os.kill(pid, signal.SIGKILL)
            killed.append((pid, keys))

        table = build_payoff_table(refs, _attackers(), _defenders(), cache_dir=tmp_path, executor=executor,
                                   on_done=kill_a_busy_worker, **SWEEP)
        left = executor.client.scheduler_info(n_workers=-1)["workers"]
    assert killed and killed[0][1], "a worker holding a cell was killed"
    assert len(left) == 1  # it stayed dead: the other worker finished its cells
    _same_table(local_table, table)
    cluster.ensure_workers(2)


# --------------------------------------------------------------------------- bad input
def test_malformed_addresses_are_one_line() -> None:
    for address, why in (("tcp://127.0.0.1:99999", "port 99999"), ("udp://127.0.0.1:1", "only tcp"),
                         ("127.0.0.1:x", "not a number"), ("::1", "brackets"), ("", "empty")):
        with pytest.raises(DefdropError, match=why) as info:
            DaskExecutor(address)
        assert "\n" not in str(info.value)
    assert check_address("127.0.0.1") == "tcp://127.0.0.1:8786"


def test_unreachable_and_silent_schedulers_are_one_line_without_hanging() -> None:
    """A closed port is refused at once; a port that accepts but never answers is given up on the deadline."""
    with pytest.raises(DefdropError, match="connection refused") as info:
        DaskExecutor(f"tcp://127.0.0.1:{_free_port()}").start()
    assert "\n" not in str(info.value)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        start = time.monotonic()
        with pytest.raises(DefdropError, match="no Dask scheduler answered"):
            DaskExecutor(f"tcp://127.0.0.1:{silent.getsockname()[1]}", connect_timeout=1).start()
        assert time.monotonic() - start < 10  # a deadline, not a speed target: without one this hangs forever


def test_a_scheduler_without_workers_says_so(cluster) -> None:
    address = cluster.start_scheduler("empty")
    start = time.monotonic()
    with pytest.raises(DefdropError, match="has no workers") as info:
        DaskExecutor(address, worker_wait=1).start()
    assert time.monotonic() - start < 10
    assert f"dask worker {address}" in str(info.value)


def test_losing_every_worker_mid_run_says_so(cluster) -> None:
    """A run whose workers all die, none coming back, stops with one line after the wait instead of hanging."""
    lonely = Cluster(cluster.tmp / "lonely")
    lonely.tmp.mkdir()
    try:
        lonely.address = lonely.start_scheduler()
        lonely.ensure_workers(1)
        with DaskExecutor(lonely.address, worker_wait=1) as executor:
            def kill_once_busy() -> None:
                deadline = time.time() + 30
                while not any(executor.client.processing().values()) and time.time() < deadline:
                    time.sleep(0.05)
                os.kill(lonely.workers[0].pid, signal.SIGKILL)

            killer = threading.Thread(target=kill_once_busy, daemon=True)
            killer.start()
            with pytest.raises(DefdropError, match="has no workers"):
                list(executor.run([(executor_jobs.sleep, 60)]))
            killer.join()
    finally:
        lonely.stop()


def test_cuda_cells_need_a_worker_with_a_gpu_resource(cluster, refs) -> None:
    spec = CellSpec(refs[0], DataSource("mnist-5k"), _attackers()[0], _defenders()[0], 1, 2, 0, device="cuda")
    with DaskExecutor(cluster.address, worker_wait=0.5) as executor:
        with pytest.raises(DefdropError, match="--resources GPU=1"):
            list(executor.run([(run_cell, spec)]))


# --------------------------------------------------------------------------- Ctrl-C
def test_interrupting_keeps_finished_cells_and_cancels_the_rest(cluster, refs, tmp_path) -> None:
    cluster.ensure_workers(2)
    with DaskExecutor(cluster.address) as executor:
        def interrupt(kind, done, total, record) -> None:
            raise KeyboardInterrupt

        try:
            build_payoff_table(refs, _attackers(), _defenders(), cache_dir=tmp_path, executor=executor,
                               on_done=interrupt, **SWEEP)
        except KeyboardInterrupt as exc:
            held = exc.__traceback__  # as an interactive session keeps sys.last_traceback (and every frame in it)
        else:
            pytest.fail("not interrupted")
        assert held is not None
        assert len(list(tmp_path.glob("**/*.json"))) == 1  # the finished cell is cached
        deadline = time.time() + 10
        while any(executor.client.processing().values()) or executor.client.who_has():
            assert time.time() < deadline, "jobs outlived the interrupt: the rest were not cancelled"
            time.sleep(0.1)


def test_generic_jobs_and_job_errors(cluster) -> None:
    """Jobs without a model run as they are; a job's DefdropError reaches the caller as it is."""
    with DaskExecutor(cluster.address) as executor:
        out = dict(executor.run([(executor_jobs.echo, 1), (executor_jobs.echo, 2)]))
        assert {out[0]["value"], out[1]["value"]} == {1, 2}
        assert {out[0]["pid"], out[1]["pid"]} <= {w.pid for w in cluster.workers}
        with pytest.raises(DefdropError, match="bad spec 3"):
            list(executor.run([(executor_jobs.fail, 3)]))


# --------------------------------------------------------------------------- the command line
def _cli(*args: str):
    from typer.testing import CliRunner

    from cli import app
    return CliRunner(env={"COLUMNS": "200"}).invoke(app, list(args))


CHEAP = ["--attack", "fgsm", "--test-dropout", "0.5", "--n-images", "1", "--eval-samples", "2", "--device", "cpu"]


def test_payoff_on_a_scheduler(cluster, small_checkpoint, tmp_path) -> None:
    out = tmp_path / "p.csv"
    result = _cli("payoff", "--model", str(small_checkpoint), *CHEAP, "--scheduler", cluster.address,
                  "--out", str(out), "--cache-dir", str(tmp_path / "cache"))
    assert result.exit_code == 0, result.output
    assert f"Dask scheduler {cluster.address}: 2 worker(s)" in result.output
    # a line per finished job when piped, each kind counted on its own
    assert "[1/1] clean-accuracy cell " in result.output and "[1/1] attack cell fgsm" in result.output
    settings = json.loads(out.with_suffix(".json").read_text())
    assert settings["executor"] == {"executor": "dask", "scheduler": cluster.address, "torch_threads": 1,
                                    "workers": 2}
    assert len(pd.read_csv(out)) == 1


@pytest.mark.parametrize("args, needle", [
    (["--scheduler", "tcp://127.0.0.1:{port}"], "connection refused"),
    (["--scheduler", "tcp://127.0.0.1:notaport"], "port is not a number"),
    (["--executor", "local", "--scheduler", "tcp://127.0.0.1:8786"], "--scheduler needs --executor dask"),
    (["--scheduler", "tcp://127.0.0.1:8786", "--jobs", "2"], "drop --jobs"),
    (["--executor", "spark"], "unknown executor 'spark'"),
])
def test_payoff_executor_options_bad_input_is_one_line(small_checkpoint, tmp_path, args, needle) -> None:
    args = [a.replace("{port}", str(_free_port())) for a in args]
    result = _cli("payoff", "--model", str(small_checkpoint), *CHEAP, "--out", str(tmp_path / "p.csv"),
                  "--cache-dir", str(tmp_path / "cache"), *args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("error: ") and needle in lines[-1], result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "p.csv").exists()
