"""Fused cells: cells that differ only in r' attacked in one batch give the records the cells give alone."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from gameplay.strategies import attacker_space, defender_space
from payoffs import noise
from payoffs.cell import CellSpec, run_cell, run_cells
from payoffs.defenses import TestTimeDropout
from payoffs.errors import DefdropError
from payoffs.fused import RowRateDropout
from payoffs.fused_jobs import MAX_FUSED_CELLS, FusedCells, fuse_jobs
from payoffs.sources import DataSource
from payoffs.strategy import DefenderStrategy
from payoffs.table import build_payoff_table, load_model_refs

FAST_CW = {"search_steps": ["2"], "iterations": ["12"], "kappa": ["5"]}
OBSERVATIONS = ("image", "target", "success", "believed", "l2", "l0", "linf", "iterations", "key")


@pytest.fixture(scope="module")
def ref(small_checkpoint):
    return load_model_refs([small_checkpoint])[0]


def test_seeded_row_keys_are_row_keys_row_by_row() -> None:
    seeds, ids = torch.tensor([7, 2 ** 32 - 1, 0]), torch.tensor([5, 0, 123456])
    keys = noise.seeded_row_keys(seeds, ids, noise.ATTACK, 3)
    for i in range(3):
        assert int(keys[i]) == int(noise.row_keys(int(seeds[i]), ids[i:i + 1], noise.ATTACK, 3)[0])
    group, local = noise.split_ids(noise.group_ids(5, ids))
    assert (group == 5).all() and torch.equal(local, ids)


def test_row_rate_dropout_draws_what_each_rate_draws_alone() -> None:
    h = torch.randn(6, 40)
    keys = noise.row_keys(3, torch.arange(6), noise.EVAL)
    groups = torch.tensor([0, 1, 1, 0, 2, 2])
    rates = [0.3, 0.5, 0.9]
    module = RowRateDropout(rates)
    for dtype in (torch.float32, torch.float64, torch.float32):  # one module, its rate tables per dtype
        x = h.to(dtype)
        with noise.keyed(keys, groups):
            fused = module(x)
        for g, rate in enumerate(rates):
            rows = groups == g
            with noise.keyed(keys[rows]):
                alone = TestTimeDropout(rate)(x[rows])
            assert fused.dtype == dtype and torch.equal(fused[rows], alone), (rate, dtype)
    with pytest.raises(DefdropError, match="must lie in"):
        RowRateDropout([0.0, 0.5])


def _specs(ref, rates, attacker=None, **kw):
    attacker = attacker or attacker_space(["cw"], FAST_CW, ["2"], ["expected"], text=True)[0]
    return [CellSpec(ref, DataSource("mnist-5k"), attacker, DefenderStrategy.dropout(r), 2, 4, 0, **kw)
            for r in rates]


@pytest.mark.parametrize("attack", ["cw", "pgd"])
def test_fused_cells_record_what_each_cell_records_alone(ref, attack: str) -> None:
    attacker = (attacker_space(["cw"], FAST_CW, ["2"], ["expected"], text=True)[0] if attack == "cw" else
                attacker_space(["pgd"], {"steps": ["4"]}, ["2"], ["single"], text=True)[0])
    specs = _specs(ref, [0.3, 0.5, 0.7], attacker)
    fused = run_cells(specs)
    for spec, record in zip(specs, fused):
        alone = run_cell(spec)
        assert record["fused_cells"] == 3 and "fused_cells" not in alone
        for field in OBSERVATIONS:
            assert record[field] == alone[field], (spec.defender.id, field)
    assert len({tuple(r["success"]) for r in fused}) > 1  # the rates did differ per row


def test_fuse_jobs_groups_only_dropout_cells_that_differ_in_r(ref) -> None:
    rates = [0.1, 0.3, 0.5, 0.7, 0.9, 0.2, 0.4, 0.6, 0.8]
    specs = _specs(ref, [0.0]) + _specs(ref, rates) + [
        CellSpec(ref, DataSource("mnist-5k"), _specs(ref, [0.5])[0].attacker, DefenderStrategy.of("sap"), 2, 4, 0)]
    specs += _specs(ref, [0.3], attacker_space(["fgsm"])[0])  # another attacker: its own job
    jobs = fuse_jobs(specs)
    fused = [j for j in jobs if isinstance(j, FusedCells)]
    assert [len(j.cells) for j in fused] == [MAX_FUSED_CELLS]  # the ninth rate is left alone: a group of one
    alone = [j for j in jobs if isinstance(j, CellSpec)]
    assert {j.defender.id for j in alone} == {"none", "sap[frac=1]", "dropout[r'=0.3]", "dropout[r'=0.8]"}
    assert len({c.key() for j in fused for c in j.cells} | {j.key() for j in alone}) == len(specs)
    with pytest.raises(DefdropError, match="differ only in r'"):
        FusedCells((specs[1], specs[-1]))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU"))])
def test_a_fused_sweep_gives_the_unfused_table(ref, tmp_path, device: str) -> None:
    attackers = attacker_space(["cw"], FAST_CW, ["2"], ["expected"], text=True)
    defenders = defender_space([0.0, 0.3, 0.5], sap=True)
    kw = dict(n_images=2, eval_samples=4, seed=0, device=device)
    plain = build_payoff_table([ref], attackers, defenders, cache_dir=tmp_path / "a", fuse_cells=False, **kw)
    (tmp_path / "b").mkdir()
    for acc in (tmp_path / "a").glob("acc-*.json"):  # clean accuracy is not what is compared: reuse it
        shutil.copy(acc, tmp_path / "b" / acc.name)
    # two worker processes: the fused job travels to a worker and back like a cell
    fused = build_payoff_table([ref], attackers, defenders, cache_dir=tmp_path / "b", fuse_cells=True, jobs=2, **kw)
    same = [c for c in plain.columns if c not in ("seconds", "forwards", "backwards", "trunk_forwards")]
    assert plain[same].equals(fused[same])
    records = [json.loads(p.read_text()) for p in (tmp_path / "b").glob("*.json")]
    records = [r for r in records if r.get("kind") == "cell"]
    assert sum("fused_cells" in r for r in records) == 2  # r' = 0.3 and 0.5 shared a batch
