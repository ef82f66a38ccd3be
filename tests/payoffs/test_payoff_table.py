"""Payoff tables on the small model: columns, deterministic C&W, intervals, resume, reproducibility."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gameplay.strategies import attacker_space, defender_space
from payoffs.cache import CellCache
from payoffs.stats import bootstrap_rate
from payoffs.table import TABLE_COLUMNS, BuildStats, build_payoff_table, load_model_refs, write_payoff_table

DOCUMENTED = ["attacker", "attack", "kappa", "c", "eot", "defender", "defense", "train_dropout", "test_dropout",
              "n_attacks", "asr", "asr_low", "asr_high", "asr_majority", "l2_mean", "l2_median", "clean_accuracy",
              "clean_accuracy_low", "clean_accuracy_high", "seconds"]
# Small but real: C&W with a short search so the suite stays fast.
FAST_CW = {"search_steps": [3], "iterations": [30]}


def _attackers():
    return attacker_space(["fgsm"]) + attacker_space(["cw"], FAST_CW)


def _defenders():
    return defender_space([0.0, 0.5], sap=True)


@pytest.fixture(scope="module")
def refs(small_checkpoint):
    return load_model_refs([small_checkpoint])


@pytest.fixture(scope="module")
def table_2x3(refs, tmp_path_factory) -> pd.DataFrame:
    cache = tmp_path_factory.mktemp("cache")
    return build_payoff_table(refs, _attackers(), _defenders(), n_images=2, eval_samples=5, seed=0, cache_dir=cache)


def _strip(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=["seconds"])


def test_table_has_documented_columns_and_shape(table_2x3: pd.DataFrame) -> None:
    assert set(DOCUMENTED) <= set(table_2x3.columns)
    assert list(table_2x3.columns) == TABLE_COLUMNS
    assert len(table_2x3) == 6
    assert sorted(table_2x3["attacker"].unique()) == ["cw[k=0,s=3,it=30]", "fgsm"]
    assert sorted(table_2x3["defender"].unique()) == ["dropout[r'=0.5]", "none", "sap[frac=1]"]
    assert (table_2x3["n_attacks"] == 18).all()
    assert table_2x3["clean_accuracy"].between(0, 1).all()
    # Clean accuracy belongs to the defender, not to the attacker.
    per_defender = table_2x3.groupby("defender")["clean_accuracy"].nunique()
    assert (per_defender == 1).all()


def test_intervals_contain_point_estimates(table_2x3: pd.DataFrame) -> None:
    assert (table_2x3["asr_low"] <= table_2x3["asr"]).all() and (table_2x3["asr"] <= table_2x3["asr_high"]).all()
    acc = table_2x3
    assert (acc["clean_accuracy_low"] <= acc["clean_accuracy"]).all()
    assert (acc["clean_accuracy"] <= acc["clean_accuracy_high"]).all()


def test_deterministic_model_cw_asr_is_one(refs, tmp_path: Path) -> None:
    table = build_payoff_table(refs, attacker_space(["cw"], {"search_steps": [5], "iterations": [50]}),
                               defender_space([0.0]), n_images=3, eval_samples=3, seed=0, cache_dir=tmp_path)
    row = table.iloc[0]
    assert row["n_attacks"] == 27
    assert row["asr"] == 1.0 and row["asr_majority"] == 1.0 and row["asr_believed"] == 1.0
    # Every attack won every sample: the interval is the exact one over the 3 images, not a zero-width one.
    assert row["asr_high"] == 1.0 and row["asr_low"] == pytest.approx(0.025 ** (1 / 3))
    assert "(Clopper-Pearson) over 3 images" in row["asr_interval"]
    assert 0 < row["l2_mean"] < 5


def test_interval_narrows_with_more_samples() -> None:
    rng = np.random.default_rng(0)
    widths = []
    for n in (20, 80, 320):
        est = bootstrap_rate(rng.binomial(20, 0.3, size=n) / 20, 20, seed=1)
        assert est.low <= est.mean <= est.high
        widths.append(est.high - est.low)
    assert widths[0] > widths[1] > widths[2]
    assert widths[0] / widths[2] == pytest.approx(4, rel=0.35)  # ~ 1/sqrt(n)


def test_resume_recomputes_no_finished_cell_and_same_seed_same_table(refs, table_2x3, tmp_path: Path) -> None:
    class Stop(Exception):
        pass

    def stop_after_two(kind: str, done: int, total: int, record: dict) -> None:
        if done == 5:  # 3 accuracies + 2 cells finished
            raise Stop

    with pytest.raises(Stop):
        build_payoff_table(refs, _attackers(), _defenders(), n_images=2, eval_samples=5, seed=0,
                           cache_dir=tmp_path, on_done=stop_after_two)
    assert len(list(tmp_path.glob("*.json"))) == 5
    stats = BuildStats()
    resumed = build_payoff_table(refs, _attackers(), _defenders(), n_images=2, eval_samples=5, seed=0,
                                 cache_dir=tmp_path, stats=stats)
    assert (stats.cached, stats.computed) == (5, 4)
    pd.testing.assert_frame_equal(_strip(resumed), _strip(table_2x3))
    again = BuildStats()
    build_payoff_table(refs, _attackers(), _defenders(), n_images=2, eval_samples=5, seed=0,
                       cache_dir=tmp_path, stats=again)
    assert again.computed == 0


def test_other_seed_other_key(refs, tmp_path: Path) -> None:
    a = build_payoff_table(refs, attacker_space(["fgsm"]), defender_space([0.5]), n_images=2, eval_samples=3,
                           seed=0, cache_dir=tmp_path)
    b = build_payoff_table(refs, attacker_space(["fgsm"]), defender_space([0.5]), n_images=2, eval_samples=3,
                           seed=1, cache_dir=tmp_path)
    assert a["key"].iloc[0] != b["key"].iloc[0]


def test_parallel_jobs_give_the_same_table(refs, tmp_path: Path) -> None:
    """Workers draw the same keyed randomness as one process. (Each of the 2 workers runs 1 torch thread, so the
    reference runs with 1 thread too: another thread count may round a kernel's last bit differently.)"""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        serial = build_payoff_table(refs, _attackers(), _defenders(), n_images=2, eval_samples=5, seed=0,
                                    cache_dir=tmp_path / "serial")
    finally:
        torch.set_num_threads(threads)
    parallel = build_payoff_table(refs, _attackers(), _defenders(), n_images=2, eval_samples=5, seed=0,
                                  cache_dir=tmp_path / "parallel", jobs=2)
    pd.testing.assert_frame_equal(_strip(parallel), _strip(serial))


def test_batch_size_is_a_speed_knob(refs, tmp_path: Path) -> None:
    """Same protocol, same cache key, same numbers: on a dropout defender and with EOT too, because every draw
    is keyed by the example and the step, not by its place in a batch."""
    kwargs = dict(n_images=1, eval_samples=3, seed=0)
    attackers = (attacker_space(["cw"], {"search_steps": [2], "iterations": [10]}, eot=[3], success_test=["expected"])
                 + attacker_space(["pgd"], {"steps": [2]}))
    defenders = defender_space([0.5], sap=True)
    whole = build_payoff_table(refs, attackers, defenders, cache_dir=tmp_path / "a", batch_size=900, **kwargs)
    split = build_payoff_table(refs, attackers, defenders, cache_dir=tmp_path / "b", batch_size=7,
                               **kwargs)  # 9 attacks in batches of 7 and 2
    assert whole["key"].tolist() == split["key"].tolist()
    pd.testing.assert_frame_equal(_strip(whole), _strip(split), check_exact=False, atol=1e-5)
    from payoffs.errors import DefdropError
    with pytest.raises(DefdropError, match="batch_size 0"):
        build_payoff_table(refs, attacker_space(["fgsm"]), defender_space([0.0]), cache_dir=tmp_path / "c",
                           batch_size=0, **kwargs)


def test_csv_and_sidecar(refs, table_2x3, tmp_path: Path) -> None:
    import json

    out = tmp_path / "payoff.csv"
    sidecar = write_payoff_table(table_2x3, out, models=refs, attackers=_attackers(), defenders=_defenders(),
                                 n_images=2, eval_samples=5, seed=0)
    back = pd.read_csv(out)
    assert list(back.columns) == TABLE_COLUMNS and len(back) == 6
    settings = json.loads(sidecar.read_text())
    assert settings["models"][0]["identity"] == refs[0].identity
    assert out.with_suffix(".images.npz").is_file()
    assert settings["n_images"] == 2 and settings["eval_samples"] == 5 and "torch" in settings["versions"]


def test_ctrl_c_stops_parallel_workers_at_once_and_keeps_finished_cells(small_checkpoint, tmp_path: Path) -> None:
    """SIGINT to the parent alone (as a timeout or a job scheduler sends it) while both workers run long C&W
    cells: the command exits with 130 within seconds instead of waiting for the running cells, keeping the
    finished ones."""
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-m", "cli", "payoff", "--model", str(small_checkpoint), "--attack", "fgsm,cw",
           "--search-steps", "10", "--iterations", "5000", "--test-dropout", "0,0.5", "--n-images", "2",
           "--eval-samples", "3", "--cache-dir", str(cache), "--out", str(tmp_path / "p.csv"), "--device", "cpu",
           "--jobs", "2"]
    # SIGINT as a terminal's Ctrl-C delivers it: a suite run in the background of a shell would otherwise hand the
    # command SIGINT ignored (as shells do for background jobs), and Python then installs no handler for it
    proc = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parents[2], env={**os.environ, "COLUMNS": "200"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(list(cache.glob("*.json"))) < 3:  # 2 accuracies + the first FGSM cell
            time.sleep(0.05)
        time.sleep(1.0)  # both workers are now inside C&W cells (50,000 Adam steps each)
        sent = time.time()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert time.time() - sent < 15, "the running cells should be abandoned, not waited for"
    assert "interrupted" in err
    kept = list(cache.glob("*.json"))
    assert 3 <= len(kept) < 6 and all(CellCache(cache).get(p.stem) for p in kept)


def test_kill_minus_nine_then_resume(small_checkpoint, tmp_path: Path) -> None:
    """A real process killed with SIGKILL mid-run: the rerun finishes only the missing cells."""
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-m", "cli", "payoff", "--model", str(small_checkpoint), "--attack", "fgsm,pgd",
           "--test-dropout", "0,0.3,0.5", "--n-images", "2", "--eval-samples", "3", "--cache-dir", str(cache),
           "--out", str(tmp_path / "p.csv"), "--device", "cpu"]
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parents[2], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(cache.glob("*.json"))) < 4:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.name for p in cache.glob("*.json")}
    assert 0 < len(finished) < 9, "the kill should land mid-run"
    stamps = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.json")}
    rerun = subprocess.run(cmd, cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert len(list(cache.glob("*.json"))) == 9
    assert all(CellCache(cache).path(name[:-5]).stat().st_mtime_ns == ns for name, ns in stamps.items())
    assert len(pd.read_csv(tmp_path / "p.csv")) == 6


@pytest.mark.parametrize("content", ["{}", "[]", '{"asr": "high"}', "nonsense", '{"key": "x", "protocol": 1}'])
def test_cache_record_of_the_wrong_shape_is_recomputed(refs, tmp_path: Path, content: str) -> None:
    kwargs = dict(n_images=1, eval_samples=2, seed=0, cache_dir=tmp_path)
    first = build_payoff_table(refs, attacker_space(["fgsm"]), defender_space([0.5]), **kwargs)
    (tmp_path / f"{first['key'].iloc[0]}.json").write_text(content)
    stats = BuildStats()
    again = build_payoff_table(refs, attacker_space(["fgsm"]), defender_space([0.5]), stats=stats, **kwargs)
    assert (stats.computed, stats.cached) == (1, 1)
    pd.testing.assert_frame_equal(_strip(again), _strip(first))


def test_too_many_images_fails_before_any_cell_runs(refs, tmp_path: Path) -> None:
    from payoffs.errors import DefdropError

    with pytest.raises(DefdropError, match="950 images requested but the undefended model .* classifies only"):
        build_payoff_table(refs, attacker_space(["fgsm"]), defender_space([0.0, 0.5]), n_images=950,
                           eval_samples=2, cache_dir=tmp_path / "c")
    assert not list((tmp_path / "c").glob("*.json")) if (tmp_path / "c").exists() else True
