"""`defdrop audit` and `defdrop solve --audit` through the CLI: outputs, the summary, one-line errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app

runner = CliRunner(env={"COLUMNS": "200"})
TINY = ["--search-steps", "1", "--iterations", "4", "--n-images", "2", "--eot-max", "2", "--probe-images", "3",
        "--eval-samples", "3"]


def test_audit_writes_page_and_json_and_prints_the_summary(small_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit.html"
    result = runner.invoke(app, ["audit", "--model", str(small_checkpoint), "--test-dropout", "0.5", *TINY,
                                 "--checks", "1,4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "audit of cw[k=0,s=1,it=4] on r=0.3" in result.output
    assert "dropout[r'=0.5]: " in result.output and "4 EOT saturation" in result.output
    assert "2 fixed-randomness sanity: not run" in result.output
    assert out.is_file() and json.loads((tmp_path / "audit.json").read_text())["summary"]["attack"] == "cw"
    as_json = runner.invoke(app, ["audit", "--model", str(small_checkpoint), "--test-dropout", "0", *TINY,
                                  "--checks", "7", "--out", str(tmp_path / "b.html"), "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["summary"]["defenders"][0]["defender"] == "none"


@pytest.mark.parametrize("args,message", [
    (["--checks", "9"], "choose among 1, 2, 3, 4, 5, 6, 7"),
    (["--eot", "1,8"], "the audit takes one attacker strategy"),
    (["--defense-at", "fc9"], "no layer named 'fc9' in model r=0.3; closest: fc2, fc1"),
    (["--setting", "unbounded_c=-1"], "audit unbounded_c -1 must be a number > 0"),
    (["--attack", "fgsm", "--kappa", "3"], "kappa"),
    (["--n-images", "0"], "audit n_images 0 must be an integer >= 1"),
])
def test_audit_bad_input_is_one_line_exit_2(small_checkpoint: Path, tmp_path: Path, args, message) -> None:
    result = runner.invoke(app, ["audit", "--model", str(small_checkpoint), *TINY, "--out",
                                 str(tmp_path / "a.html"), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_solve_prints_the_audit_beside_the_recommendation(tmp_path: Path) -> None:
    from gameplay import audit_backing as ab
    from gameplay.synthetic import synthetic_payoff_table

    table = synthetic_payoff_table(8, 6, seed=3)
    csv = tmp_path / "payoff.csv"
    table.to_csv(csv, index=False)
    audited = [ab.DefenderSummary(d, "pass", tuple((n, "pass") for n in range(1, 8)), 16, 32)
               for d in table["defender"].unique()]
    summary = ab.AuditSummary(str(table["model"].iloc[0]), "r=0.3", "cw", "cw[k=0]", 1, tuple(audited))
    audit = tmp_path / "audit.json"
    audit.write_text(json.dumps({"summary": summary.to_dict()}))
    result = runner.invoke(app, ["solve", str(csv), "--max-accuracy-drop", "0.01", "--robustness-samples", "0",
                                 "--audit", str(audit)])
    assert result.exit_code == 0, result.output
    assert "## Audit: is the attack strong enough?" in result.output
    assert "WARNING: EOT saturates at k = 16 but the table's cw attackers reach k = 8" in result.output
    assert "Algorithm 1's " in result.output.split("## Audit")[1]
    as_json = runner.invoke(app, ["solve", str(csv), "--max-accuracy-drop", "0.01", "--robustness-samples", "0",
                                  "--audit", str(audit), "--json"])
    assert json.loads(as_json.stdout)["audit"][0]["status"] == ab.BELOW_KNEE
    audit.write_text("{}")
    bad = runner.invoke(app, ["solve", str(csv), "--audit", str(audit)])
    assert bad.exit_code == 2 and "not a defdrop audit JSON" in bad.output


def test_payoff_prints_each_cells_cost(small_checkpoint: Path, tmp_path: Path) -> None:
    """Check 8's other half: the payoff table's forward/backward passes per cell are printed with its ASR."""
    result = runner.invoke(app, ["payoff", "--model", str(small_checkpoint), "--attack", "fgsm", "--test-dropout",
                                 "0.5", "--n-images", "1", "--eval-samples", "2", "--cache-dir",
                                 str(tmp_path / "cache"), "--out", str(tmp_path / "p.csv"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if line.strip().startswith("attacker"))
    assert header.rstrip().endswith("forward passes  gradients taken")  # forwards, backwards (readable headers)


def test_audit_of_your_own_model_and_data(tmp_path: Path, mnist5k) -> None:
    """--model-factory/--weights/--data: a user architecture, its slot named by --defense-at, a test data file."""
    import torch

    from tests.payoffs.audit_fixtures import train_tiny

    weights = tmp_path / "tiny.pt"
    torch.save(train_tiny(mnist5k, epochs=1).state_dict(), weights)
    data = tmp_path / "test.npz"
    import numpy as np
    np.savez(data, x=mnist5k.x_test[:200].numpy(), y=mnist5k.y_test[:200].numpy())
    args = ["audit", "--model-factory", "tests.payoffs.audit_fixtures:TinyNet", "--weights", str(weights),
            "--data", str(data), "--test-dropout", "0.3", *TINY, "--probe-images", "10", "--checks", "1,7", "--out",
            str(tmp_path / "a.html")]
    result = runner.invoke(app, args + ["--defense-at", "act"])
    assert result.exit_code == 0, result.output
    assert "defense after 'act'" in result.output and "1 randomness real and kept: pass" in result.output
    missing = runner.invoke(app, args)
    assert missing.exit_code == 2 and "names no defense slot" in missing.output
