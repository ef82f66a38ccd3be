"""The paper-profile timer's bookkeeping: planned cells, measured sums, the labelled extrapolation, segments."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("paper_profile", ROOT / "bench" / "paper_profile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_paper_profile_plans_140_cells(bench) -> None:
    plan = bench.planned_cells("paper")
    assert sum(plan.values()) == 140
    assert plan["cw[k=0]"] == 42 and plan["cw[k=5,eot=8,exp]"] == 42  # C&W 10 x 100 is the declared default
    assert plan["fgsm"] == plan["jsma"] == plan["fgsm[eot=8,exp]"] == plan["jsma[eot=8,exp]"] == 14


def test_summary_measures_and_extrapolates(bench, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    cells = [("cw[k=0,s=2,it=10]", 10.0), ("cw[k=0,s=2,it=10]", 20.0), ("fgsm", 1.0)]
    for i, (attacker, seconds) in enumerate(cells):
        (cache / f"c{i}.json").write_text(json.dumps({"kind": "cell", "attacker": attacker, "seconds": seconds}))
    (cache / "acc.json").write_text(json.dumps({"kind": "accuracy", "seconds": 2.0}))
    (cache / "broken.json").write_text("{")  # a half-written file is skipped, not fatal
    s = bench.summarize("mnist-5k", tmp_path, "smoke", wall=40.0, returncode=130, jobs=2)
    assert not s["finished"] and s["attack_cells"] == 3 and s["attack_cells_planned"] == 12
    assert s["accuracy_cells"] == 1 and s["cell_seconds_sum"] == 31.0
    # smoke: 3 cells per attacker; cw has 1 left at mean 15 s, fgsm 2 left at 1 s; the two others unmeasured.
    assert s["extrapolated_remaining_cell_seconds"] == pytest.approx(17.0)
    assert s["extrapolated_remaining_wall_seconds"] == pytest.approx(8.5)
    assert sorted(s["no_measurement_for"]) == ["cw[k=5,s=2,it=10,eot=2,exp]", "fgsm[eot=2,exp]"]


def test_segments_add_up(bench, tmp_path: Path) -> None:
    summary = {"finished": False, "attack_cells": 3, "models": {}, "device": "cpu", "jobs": 1}
    bench.record_segment(tmp_path, "mnist-5k", 100.0, summary)
    segments = bench.record_segment(tmp_path, "mnist-5k", 50.5, {**summary, "finished": True})
    assert [g["wall_seconds"] for g in segments] == [100.0, 50.5] and segments[-1]["finished"]
