"""Sampling gradients of the C&W objective on the suite's trained model, and the run_gradvar result."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from analysis.gradvar import (
    STATISTICS,
    GradVarResult,
    build_defenders,
    describe_defense,
    paper_checks,
    run_gradvar,
    sample_gradients,
    select_inputs,
    summary_table,
)
from payoffs.attacks.objectives import cw_f
from payoffs.defenses import SAP, TestTimeDropout
from payoffs.errors import DefdropError
from payoffs.models import with_defense


def test_select_inputs_are_correct_and_target_is_next_label(small_trained, mnist5k) -> None:
    x, y, target = select_inputs(small_trained.model, mnist5k.x_test, mnist5k.y_test, 5)
    plain = with_defense(small_trained.model, nn.Identity())
    with torch.no_grad():
        assert torch.equal(plain(x).argmax(1), y)
    assert torch.equal(target, (y + 1) % 10)
    # The first correct ones, in test-set order.
    with torch.no_grad():
        correct = (plain(mnist5k.x_test[:50]).argmax(1) == mnist5k.y_test[:50]).nonzero().flatten()[:5]
    assert torch.equal(x, mnist5k.x_test[correct])
    with pytest.raises(DefdropError, match="only .* classified correctly"):
        select_inputs(small_trained.model, mnist5k.x_test[:3], mnist5k.y_test[:3], 4)


def test_no_defense_samples_equal_autograd_in_every_pass(small_trained, gradvar_inputs) -> None:
    x, _, target = gradvar_inputs
    model = with_defense(small_trained.model, TestTimeDropout(0.0))
    grads = sample_gradients(model, x, target, samples=7, batch_size=14)  # passes of 2 inputs, then 1
    split = sample_gradients(model, x, target, samples=7, batch_size=3)  # S > batch: an input over 3 passes
    assert grads.shape == split.shape == (len(x), 7, *x.shape[1:])
    for i in range(len(x)):
        xi = x[i:i + 1].clone().requires_grad_(True)
        (want,) = torch.autograd.grad(cw_f(model(xi), target[i:i + 1]).sum(), xi)
        assert torch.allclose(grads[i], want.expand(7, -1, -1, -1), atol=1e-6)
        assert torch.allclose(split[i], want.expand(7, -1, -1, -1), atol=1e-6)


def test_zero_rate_without_sap_has_zero_variance(gradvar_small: GradVarResult) -> None:
    none = gradvar_small.table.set_index("defender").loc["none"]
    assert none["var_all"] == 0.0 and none["var_chosen"] == 0.0
    assert none["cos_all"] == pytest.approx(1.0)
    per = gradvar_small.per_image[gradvar_small.per_image["defender"] == "none"]
    assert (per["var_all"] == 0.0).all() and (per["var_chosen"] == 0.0).all()
    assert (gradvar_small.values[:, 0] == gradvar_small.values[:, 0, :1]).all()


def test_variance_grows_with_test_dropout_rate(gradvar_small: GradVarResult) -> None:
    t = gradvar_small.table.set_index("defender")
    var = [t.loc[label, "var_all"] for label in ("none", "dropout[r'=0.1]", "dropout[r'=0.5]", "dropout[r'=0.9]")]
    assert var[0] == 0.0
    assert all(a < b for a, b in zip(var, var[1:])), var
    # On every image, not just on average, and on the chosen dims too.
    wide = gradvar_small.per_image.pivot(index="image", columns="defender", values="var_all")
    ordered = wide[["dropout[r'=0.1]", "dropout[r'=0.5]", "dropout[r'=0.9]"]].to_numpy()
    assert (np.diff(ordered, axis=1) > 0).all()
    chosen = [t.loc[label, "var_chosen"] for label in ("dropout[r'=0.1]", "dropout[r'=0.5]", "dropout[r'=0.9]")]
    assert chosen[0] < chosen[2]
    checks = paper_checks(gradvar_small)
    assert checks[0].holds is True and "grows with r'" in checks[0].claim
    assert any("sap" in c.claim for c in checks)


def test_result_shape_dims_and_table(gradvar_small: GradVarResult) -> None:
    r = gradvar_small
    n, k, s, d = r.values.shape
    assert (n, k, s, d) == (3, 5, 30, 4)
    assert r.dims.shape == (3, 4)
    assert list(r.table["defender"]) == list(r.labels)
    assert list(r.table["defense"]) == ["none", "dropout", "dropout", "dropout", "sap"]
    assert np.isnan(r.table["test_dropout"].iloc[-1]) and r.table["test_dropout"].iloc[0] == 0.0
    assert (r.table["train_dropout"] == 0.3).all() and r.table["model"].notna().all()
    for stat in STATISTICS:
        for suffix in ("", "_low", "_high", "_se"):
            assert f"{stat}{suffix}" in r.table.columns
    finite = r.table[r.table["defense"] != "none"]
    assert (finite["var_all_low"] <= finite["var_all"]).all() and (finite["var_all"] <= finite["var_all_high"]).all()
    # The same dims for every defender: the values array is indexed by them, and they are the magnitude top-D
    # of the undefended gradient, so the deterministic 'none' column holds the D largest |grad| in order.
    mags = np.abs(r.values[:, 0, 0, :])
    assert (np.diff(mags, axis=1) <= 0).all()
    assert r.dim_name(0) == "x[0,0,0]" and r.dim_name(28 * 2 + 3) == "x[0,2,3]"
    text = summary_table(r)
    assert text.shape[0] == 5 and text.iloc[0, 1].startswith("0")


def test_run_gradvar_is_reproducible_and_leaves_the_model_mode_alone(small_trained, gradvar_inputs) -> None:
    x, _, target = gradvar_inputs
    model = small_trained.model
    defenders = build_defenders([0.5], sap=True)
    a = run_gradvar(model, x[:2], target[:2], defenders, samples=6, dims=3, dim_selection="random", seed=3)
    assert not model.training
    b = run_gradvar(model, x[:2], target[:2], defenders, samples=6, dims=3, dim_selection="random", seed=3)
    pd.testing.assert_frame_equal(a.table, b.table)
    assert np.array_equal(a.values, b.values) and np.array_equal(a.dims, b.dims)
    c = run_gradvar(model, x[:2], target[:2], defenders, samples=6, dims=3, dim_selection="random", seed=4)
    assert not np.array_equal(a.values, c.values)
    model.train()
    try:
        run_gradvar(model, x[:1], target[:1], defenders, samples=3, dims=2)
        assert model.training  # the caller's mode, untouched
    finally:
        model.eval()


def test_dropout_samples_differ_and_sap_is_random(small_trained, gradvar_inputs) -> None:
    x, _, target = gradvar_inputs
    for defense in (TestTimeDropout(0.5), SAP()):
        torch.manual_seed(0)
        g = sample_gradients(with_defense(small_trained.model, defense), x[:1], target[:1], samples=4)
        assert not bool((g[0] == g[0, :1]).all())


def test_describe_and_build_defenders() -> None:
    assert describe_defense(nn.Identity()) == ("none", 0.0)
    assert describe_defense(TestTimeDropout(0.0)) == ("none", 0.0)
    assert describe_defense(TestTimeDropout(0.3)) == ("dropout", 0.3)
    kind, rate = describe_defense(SAP())
    assert kind == "sap" and np.isnan(rate)
    labels = [label for label, _ in build_defenders([0, 0.1, 0.9], sap=True)]
    assert labels == ["none", "dropout[r'=0.1]", "dropout[r'=0.9]", "sap[frac=1]"]


@pytest.mark.parametrize("kwargs,message", [
    ({"samples": 1}, "must be at least 2"),
    ({"dims": 0}, "must be between 1 and the input size 784"),
    ({"dims": 785}, "must be between 1 and the input size 784"),
    ({"dim_selection": "largest"}, "must be one of magnitude, random"),
    ({"kappa": -1.0}, "kappa -1.0 must be"),
    ({"defenders": []}, "at least one defender"),
    ({"defenders": [("a", nn.Identity()), ("a", SAP())]}, "labels must be unique"),
])
def test_run_gradvar_validates(small_trained, gradvar_inputs, kwargs, message) -> None:
    x, _, target = gradvar_inputs
    args = {"defenders": [("none", nn.Identity())], **kwargs}
    with pytest.raises(DefdropError, match=message):
        run_gradvar(small_trained.model, x, target, **args)
