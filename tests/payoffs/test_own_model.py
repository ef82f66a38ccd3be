"""Bring your own model: a second architecture (a small residual network with BatchNorm) given as factory +
weights, its own test data file, the defense at any named layer, through accuracy, payoff, gradvar and solve."""
from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from cli import app
from gameplay.strategies import attacker_space, defender_space
from payoffs.checkpoint import weights_hash
from payoffs.errors import DefdropError
from payoffs.sources import CheckpointSource, DataFile, FactorySource, load_model, open_data, open_models
from payoffs.table import BuildStats, build_payoff_table
from tests.payoffs.user_models import SharedRelu, SmallResNet, TupleOut

runner = CliRunner(env={"COLUMNS": "200"})
FACTORY = "tests.payoffs.user_models:resnet"
N_TEST = 300
FAST = ["--attack", "fgsm,cw", "--search-steps", "1", "--iterations", "10"]


@pytest.fixture(scope="module")
def resnet(mnist5k) -> SmallResNet:
    """The second architecture, trained for 3 epochs on mnist-5k (~2 s, ~93% test accuracy), in eval mode."""
    torch.manual_seed(0)
    model = SmallResNet()
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    model.train()
    for _ in range(3):
        perm = torch.randperm(len(mnist5k.x_train))
        for i in range(0, len(perm), 64):
            idx = perm[i:i + 64]
            loss = nn.functional.cross_entropy(model(mnist5k.x_train[idx]), mnist5k.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def files(resnet, mnist5k, tmp_path_factory) -> dict[str, Path]:
    """The weights (a state dict) and the first test images as uint8 in an npz, as a user would save them."""
    folder = tmp_path_factory.mktemp("own")
    weights, data = folder / "resnet.pt", folder / "test.npz"
    torch.save(resnet.state_dict(), weights)
    x = (mnist5k.x_test[:N_TEST].numpy() * 255).round().astype(np.uint8)
    np.savez(data, x=x, y=mnist5k.y_test[:N_TEST].numpy())
    return {"weights": weights, "data": data, "folder": folder}


def _own(files: dict[str, Path], *extra: str) -> list[str]:
    return ["--model-factory", FACTORY, "--weights", str(files["weights"]), "--data", str(files["data"]), *extra]


# ---------------------------------------------------------------------------------------------- the source
def test_factory_source_identity_eval_mode_and_pickling(files, resnet) -> None:
    src = FactorySource.open(FACTORY, files["weights"])
    assert src.description.label == "resnet" and src.default_slot is None
    assert np.isnan(src.description.train_dropout)
    model = src.load()
    assert isinstance(model, SmallResNet) and not model.training and not model.bn0.training
    assert src.identity == weights_hash(model) == weights_hash(resnet)
    again = pickle.loads(pickle.dumps(src))
    assert again == src and again.identity == src.identity
    assert load_model(factory=FACTORY, weights=files["weights"], label="mine").description.label == "mine"
    tagged = load_model(factory=FACTORY, weights=files["weights"], tags={"train_dropout": 0.5, "seed": 3})
    assert tagged.description.train_dropout == 0.5 and tagged.description.tag("seed") == 3
    with pytest.raises(DefdropError, match=r"train_dropout 2 of model resnet is not a rate in \[0, 1\)"):
        load_model(factory=FACTORY, weights=files["weights"], tags={"train_dropout": 2})
    # Same layers and weights, another forward: another model. Another weight: another model.
    assert FactorySource.open("tests.payoffs.user_models:plain", files["weights"]).identity != src.identity
    state = torch.load(files["weights"], weights_only=True)
    state["fc2.bias"] = state["fc2.bias"] + 1e-3
    other = files["folder"] / "other.pt"
    torch.save(state, other)
    assert FactorySource.open(FACTORY, other).identity != src.identity


def test_data_file_uint8_equals_float_and_pt(files, mnist5k) -> None:
    data = DataFile.open(files["data"])
    split = data.load_test()
    assert split.x.dtype == torch.float32 and split.num_classes == 10 and len(split.y) == N_TEST
    assert torch.equal(split.x, mnist5k.x_test[:N_TEST]) and torch.equal(split.y, mnist5k.y_test[:N_TEST])
    pt = files["folder"] / "test.pt"
    torch.save({"x": mnist5k.x_test[:N_TEST], "y": mnist5k.y_test[:N_TEST]}, pt)
    assert DataFile.open(pt).identity == data.identity  # the data, not the container, names it
    assert data.name == "test.npz"


# ---------------------------------------------------------------------------------------------- the commands
def test_accuracy_at_two_layers(files, resnet) -> None:
    split = DataFile.open(files["data"]).load_test()
    with torch.no_grad():
        plain = float((resnet(split.x).argmax(1) == split.y).float().mean())
    rows = {}
    for slot in ("block1", "fc1"):
        result = runner.invoke(app, ["accuracy", *_own(files, "--defense-at", slot), "--test-dropout", "0,0.5",
                                     "--eval-samples", "3", "--device", "cpu"])
        assert result.exit_code == 0, result.output
        assert f"defense after {slot}" in result.output and "model resnet" in result.output
        rows[slot] = {line.split()[0]: float(line.split()[1].removesuffix("%")) / 100
                      for line in result.output.splitlines() if line.startswith(("none ", "dropout"))}
    # Undefended: the network's own accuracy (printed in percent, 3 significant digits), wherever the (empty)
    # slot is; defended: the slot matters.
    assert rows["block1"]["none"] == rows["fc1"]["none"] == pytest.approx(plain, abs=5e-4)
    assert rows["block1"]["dropout[r'=0.5]"] != rows["fc1"]["dropout[r'=0.5]"]


@pytest.fixture(scope="module")
def payoff_tables(files) -> dict[str, Path]:
    """2 x 2 payoff tables of the user model with the defense after block1 (in process) and after fc1 (2 workers,
    which import the factory's module themselves)."""
    out = {}
    for slot, jobs in (("block1", "1"), ("fc1", "2")):
        csv = files["folder"] / f"payoff-{slot}.csv"
        result = runner.invoke(app, ["payoff", *_own(files, "--defense-at", slot), *FAST, "--test-dropout", "0,0.5",
                                     "--n-images", "2", "--eval-samples", "3", "--jobs", jobs, "--device", "cpu",
                                     "--cache-dir", str(files["folder"] / "cache"), "--out", str(csv)])
        assert result.exit_code == 0, result.output
        out[slot] = csv
    return out


def test_payoff_at_two_layers(payoff_tables, files) -> None:
    a, b = (pd.read_csv(payoff_tables[s]) for s in ("block1", "fc1"))
    identity = FactorySource.open(FACTORY, files["weights"]).identity
    for table, slot in ((a, "block1"), (b, "fc1")):
        assert len(table) == 4 and set(table["defender"]) == {"none", "dropout[r'=0.5]"}
        assert (table["slot"] == slot).all() and (table["model"] == identity).all()
        assert (table["model_label"] == "resnet").all() and (table["dataset"] == "test.npz").all()
        assert table["train_dropout"].isna().all() and (table["n_attacks"] == 18).all()
    # The cache key names the slot: no cell of one table is a cell of the other.
    assert not set(a["key"]) & set(b["key"]) and not set(a["accuracy_key"]) & set(b["accuracy_key"])
    # Without a defense the slot changes nothing (FGSM is deterministic there).
    pa, pb = (t.set_index(["defender", "attacker"]) for t in (a, b))
    for col in ("clean_accuracy", "asr"):
        assert pa.loc[("none", "fgsm"), col] == pb.loc[("none", "fgsm"), col]


def test_solve_report_names_the_model_not_r(payoff_tables, tmp_path) -> None:
    html = tmp_path / "report.html"
    result = runner.invoke(app, ["solve", str(payoff_tables["block1"]), "--max-accuracy-drop", "0.5",
                                 "--robustness-samples", "20", "--out", str(html)])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "Reference (undefended) accuracy of model resnet (weights" in text
    assert "Model resnet (undefended accuracy a_max" in text
    assert re.search(r"\br ?= ?", text) is None, re.search(r".{40}\br ?= ?.{20}", text)
    assert re.search(r"\bnan\b", text, re.IGNORECASE) is None
    page = html.read_text()
    assert "r=nan" not in page and "r = nan" not in page


def test_gradvar_at_two_layers(files, tmp_path) -> None:
    variance = {}
    for slot in ("block1", "fc1"):
        csv = tmp_path / f"{slot}.csv"
        result = runner.invoke(app, ["gradvar", *_own(files, "--defense-at", slot, "--model-label", "res8"),
                                     "--test-dropout", "0.5", "--grad-samples", "4", "--dims", "2", "--n-images", "3",
                                     "--device", "cpu", "--out", str(tmp_path / f"{slot}.html"), "--csv", str(csv)])
        assert result.exit_code == 0, result.output
        assert f"model res8, defense after {slot}" in result.output
        stats = pd.read_csv(csv)
        assert (stats["model"] == FactorySource.open(FACTORY, files["weights"]).identity).all()
        assert stats["train_dropout"].isna().all()
        variance[slot] = float(stats.loc[stats["defender"] == "dropout[r'=0.5]", "var_all"].iloc[0])
        page = (tmp_path / f"{slot}.html").read_text()
        assert "Model: res8, weights" in page and f"defense after layer <code>{slot}</code>" in page
        assert "r = None" not in page
    assert variance["block1"] > 0 and variance["fc1"] > 0 and variance["block1"] != variance["fc1"]


# ---------------------------------------------------------------------------------- one network, two sources
def test_same_network_as_factory_and_as_checkpoint(small_checkpoint, small_trained, files, tmp_path) -> None:
    weights = tmp_path / "paper.pt"
    torch.save(small_trained.model.state_dict(), weights)
    data = DataFile.open(files["data"])  # the first test images, for both
    checkpoint = CheckpointSource.open(small_checkpoint)
    factory = FactorySource.open("tests.payoffs.user_models:paper_cnn", weights, dataset="mnist-5k")
    assert factory.identity == checkpoint.identity
    assert factory.default_slot == checkpoint.default_slot == "dropout"
    assert factory.description.train_dropout == checkpoint.description.train_dropout == 0.3
    attackers = attacker_space(["fgsm"]) + attacker_space(["cw"], {"search_steps": [1], "iterations": [10]})
    defenders = defender_space([0.0, 0.5])
    tables = []
    for source, cache in ((checkpoint, tmp_path / "a"), (factory, tmp_path / "b")):
        stats = BuildStats()
        tables.append(build_payoff_table([source], attackers, defenders, n_images=2, eval_samples=4, seed=0,
                                         cache_dir=cache, stats=stats, data=data))
        assert stats.computed == 6 and stats.cached == 0  # computed twice, once per source
    a, b = tables
    assert (a["model_label"] == "r=0.3").all() and (b["model_label"] == "paper_cnn").all()
    same = [c for c in a.columns if c not in ("model_label", "recipe", "seconds")]
    pd.testing.assert_frame_equal(a[same], b[same])
    assert (a["asr"] < 1).any()  # a defended cell: the defender samples agree too


# ---------------------------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def bad(files, mnist5k, small_trained) -> dict[str, Path]:
    folder = files["folder"] / "bad"
    folder.mkdir()
    x = mnist5k.x_test[:20].numpy()
    y = mnist5k.y_test[:20].numpy()

    def npz(name: str, **arrays) -> Path:
        np.savez(folder / name, **arrays)
        return folder / name

    out = {
        "flat": npz("flat.npz", x=x[:, 0], y=y),
        "range": npz("range.npz", x=x * 255, y=y),
        "nan": npz("nan.npz", x=np.where(x > 0.5, np.nan, x), y=y),
        "labels": npz("labels.npz", x=x, y=np.where(y == 3, 11, y)),
        "missing": npz("missing.npz", images=x, labels=y),
        "length": npz("length.npz", x=x, y=y[:-1]),
        "float_labels": npz("float_labels.npz", x=x, y=y.astype(np.float32)),
    }
    torch.save(small_trained.model.state_dict(), folder / "paper.pt")
    torch.save(SmallResNet(classes=5).state_dict(), folder / "five.pt")
    torch.save([1, 2, 3], folder / "list.pt")
    torch.save(TupleOut().state_dict(), folder / "tuple.pt")
    torch.save(SharedRelu().state_dict(), folder / "shared.pt")
    state = {k: v.clone() for k, v in torch.load(files["weights"], weights_only=True).items()}
    state["fc1.weight"][0, 0] = float("nan")
    torch.save(state, folder / "nan-weights.pt")
    (folder / "data.txt").write_text("1 2 3")
    out.update({"paper": folder / "paper.pt", "five": folder / "five.pt", "list": folder / "list.pt",
                "tuple": folder / "tuple.pt", "shared": folder / "shared.pt",
                "nan_weights": folder / "nan-weights.pt", "txt": folder / "data.txt"})
    return out


BAD_CASES = [
    # the factory
    ({"factory": "tests.payoffs.no_such_module:build"},
     "cannot import tests.payoffs.no_such_module (ModuleNotFoundError"),
    ({"factory": "tests.payoffs.user_models:resnt"}, "user_models has no 'resnt'; closest: resnet"),
    ({"factory": "tests.payoffs.user_models.resnet"}, "is not MODULE:CALLABLE"),
    ({"factory": "tests.payoffs.user_models:not_callable"}, "not_callable is a int, not a function or class"),
    ({"factory": "tests.payoffs.user_models:not_a_module"}, "returned a dict, not a torch.nn.Module"),
    ({"factory": "tests.payoffs.user_models:raises"}, "failed when called (RuntimeError: the factory needs a GPU)"),
    ({"factory": "tests.payoffs.user_models:tuple_out", "weights": "tuple"}, "returns a tuple, not a tensor of logits"),
    # the weights
    ({"weights": "paper"}, "lacks tensor(s) stem.weight, stem.bias, bn0.weight, bn0.bias (and"),
    ({"factory": "tests.payoffs.user_models:five_classes"},
     "tensor fc2.weight has shape (10, 48); the model built by tests.payoffs.user_models:five_classes needs (5, 48)"),
    ({"weights": "list"}, "holds a list, not a state dict"),
    ({"weights": "nan_weights"}, "tensor fc1.weight holds 1 NaN or infinite value(s)"),
    ({"weights": "missing_file"}, "weights file not found"),
    # the slot
    ({"slot": "block3"}, "no layer named 'block3' in model resnet; closest: block2, block1"),
    ({"slot": None}, "model resnet names no defense slot: name the layer the defense follows (slot; its layers: "
                     "stem, bn0, block1, block1.conv"),
    ({"factory": "tests.payoffs.user_models:shared_relu", "weights": "shared", "slot": "act"},
     "layer act runs 2 times in the forward pass of model shared_relu"),
    ({"factory": "tests.payoffs.user_models:shared_relu", "weights": "shared", "slot": "unused"},
     "layer unused never runs in the forward pass of model shared_relu"),
    # the data
    ({"data": "flat"}, "x has shape (20, 28, 28), not (N, C, H, W); add the channel axis"),
    ({"data": "range"}, "x spans [0, 255]; float images must lie in [0, 1]"),
    ({"data": "nan"}, "NaN or infinite value(s)"),
    ({"data": "labels"}, "model resnet gives 10 outputs but the labels.npz test data have 12 classes"),
    ({"data": "missing"}, "no 'x' (the images, (N, C, H, W)); it holds images, labels"),
    ({"data": "length"}, "19 labels in y for 20 images in x"),
    ({"data": "float_labels"}, "y has dtype float32; labels must be integers"),
    ({"data": "txt"}, "test data must be a .npz or .pt file"),
    ({"factory": "tests.payoffs.user_models:five_classes", "weights": "five"},
     "model five_classes gives 5 outputs but the test.npz test data have 10 classes"),
]


@pytest.mark.parametrize("case,message", BAD_CASES, ids=[m[:30] for _, m in BAD_CASES])
def test_bad_input_is_one_line_and_exit_2(files, bad, case: dict, message: str) -> None:
    weights = case.get("weights")
    weights = files["weights"] if weights is None else bad.get(weights, files["folder"] / weights)
    data = bad[case["data"]] if "data" in case else files["data"]
    args = ["accuracy", "--model-factory", case.get("factory", FACTORY), "--weights", str(weights),
            "--data", str(data), "--test-dropout", "0,0.5", "--eval-samples", "2", "--device", "cpu"]
    slot = case.get("slot", "fc1")
    if slot is not None:
        args += ["--defense-at", slot]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert message in result.output, result.output


@pytest.mark.parametrize("command", ["payoff", "gradvar"])
def test_bad_slot_in_payoff_and_gradvar(files, tmp_path, command: str) -> None:
    extra = (["--n-images", "2", "--cache-dir", str(tmp_path / "c")] if command == "payoff" else ["--n-images", "2"])
    result = runner.invoke(app, [command, *_own(files, "--defense-at", "fc3"), "--test-dropout", "0.5",
                                 "--out", str(tmp_path / ("x.csv" if command == "payoff" else "x.html")), *extra])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors == [result.output.strip().splitlines()[-1]]
    assert "no layer named 'fc3' in model resnet; closest: fc" in errors[0] and {"fc1", "fc2"} <= set(
        errors[0].split("closest: ")[1].split(", "))
    assert not list(tmp_path.glob("x.*"))


@pytest.mark.parametrize("args,message", [
    (["--weights", "W"], "--weights FILE needs --model-factory MODULE:CALLABLE"),
    (["--model-factory", FACTORY], "needs --weights FILE"),
    (["--model", "W", "--model-factory", FACTORY, "--weights", "W"], "not both"),
    (["--model-label", "x", "--model", "W"], "--model-label names models built by --model-factory"),
    ([], "give a model: --model CHECKPOINT, or --model-factory"),
    (["--model-factory", FACTORY, "--weights", "W", "--data", "D", "--dataset", "mnist-5k"],
     "give --data FILE or --dataset NAME, not both"),
])
def test_model_options_are_checked(files, args: list[str], message: str) -> None:
    args = [str(files["weights"]) if a == "W" else str(files["data"]) if a == "D" else a for a in args]
    result = runner.invoke(app, ["accuracy", *args])
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_python_api_errors_are_defdrop_errors(files) -> None:
    with pytest.raises(DefdropError, match="not both or neither"):
        load_model()
    with pytest.raises(DefdropError, match="needs its weights"):
        load_model(factory=FACTORY)
    with pytest.raises(DefdropError, match=r"weights= needs factory= \(the code that builds the model\)"):
        open_models(weights=[files["weights"]])
    with pytest.raises(DefdropError, match=r"labels=: give one per weights= file \(1 label\(s\) for 2 file\(s\)\)"):
        open_models(factory=FACTORY, weights=[files["weights"]] * 2, labels=["a"])
    with pytest.raises(DefdropError, match=r"not both \(data, dataset\)"):
        open_data(files["data"], "mnist-5k")
    two = open_models(factory=FACTORY, weights=[files["weights"]] * 2, labels=["a", "b"])
    assert [m.description.label for m in two] == ["a", "b"]
