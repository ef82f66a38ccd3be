"""Defenses against their formulas: unbiasedness, per-example independence, SAP's q_j by hand."""
from __future__ import annotations

import math

import pytest
import torch

from payoffs.defenses import SAP, TestTimeDropout, make_defense
from payoffs.errors import DefdropError
from payoffs.models import PaperCNN, with_defense


def test_dropout_rate_zero_is_identity() -> None:
    h = torch.randn(4, 7)
    assert torch.equal(TestTimeDropout(0.0)(h), h)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, float("nan")])
def test_dropout_rejects_bad_rates(rate: float) -> None:
    with pytest.raises(DefdropError, match="must be"):
        TestTimeDropout(rate)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_dropout_mean_and_keep_fraction(rate: float) -> None:
    torch.manual_seed(0)
    h = torch.rand(1, 50) + 0.5
    n = 20000
    out = TestTimeDropout(rate)(h.expand(n, -1))
    kept = (out != 0).float().mean().item()
    # Binomial std of the kept fraction over n*50 draws is < 0.0008; 5 sigma tolerance.
    assert abs(kept - (1 - rate)) < 0.004
    # Each kept unit is scaled by exactly 1/(1-r').
    ratio = (out / h)[out != 0]
    assert torch.allclose(ratio, torch.full_like(ratio, 1 / (1 - rate)))
    # Unbiased: E[y] = h. Std of the mean per unit <= h*sqrt(r/(1-r)/n); allow 5 sigma.
    tol = 5 * float(h.max()) * math.sqrt(rate / (1 - rate) / n)
    assert torch.allclose(out.mean(0), h[0], atol=tol)


def test_dropout_masks_differ_between_examples_calls_and_modes() -> None:
    torch.manual_seed(0)
    d = TestTimeDropout(0.5)
    h = torch.ones(2, 200)
    a, b = d(h), d(h)
    assert not torch.equal(a[0], a[1])
    assert not torch.equal(a, b)
    d.eval()
    assert not torch.equal(d(h), d(h))
    assert (d(h) == 0).any()


def test_sap_keep_probabilities_by_hand() -> None:
    h = torch.tensor([[1.0, -3.0, 0.0, 4.0]])
    sap = SAP(draws=2)
    # p = [1, 3, 0, 4] / 8; q = 1 - (1 - p)^2
    p = [1 / 8, 3 / 8, 0.0, 4 / 8]
    expected = torch.tensor([[1 - (1 - pj) ** 2 for pj in p]])
    assert torch.allclose(sap.keep_probabilities(h), expected)
    assert SAP(fraction=1.0).num_draws(4) == 4 and SAP(fraction=0.5).num_draws(5) == 3


def test_sap_outputs_kept_units_scaled_by_inverse_q() -> None:
    torch.manual_seed(0)
    h = torch.tensor([[1.0, -3.0, 0.0, 4.0]]).repeat(1000, 1)
    sap = SAP(draws=2)
    out = sap(h)
    q = sap.keep_probabilities(h[:1])[0]
    kept = out != 0
    assert not kept[:, 2].any(), "a zero unit has p=0 and is never drawn"
    for j in (0, 1, 3):
        vals = out[kept[:, j], j]
        assert torch.allclose(vals, torch.full_like(vals, float(h[0, j] / q[j])))
    # At most r_p distinct units survive per example.
    assert int(kept.sum(1).max()) <= 2
    # Empirical keep frequency matches q_j (binomial std <= 0.016 for 1000 draws; 5 sigma).
    assert torch.allclose(kept.float().mean(0), q, atol=0.08)


def test_sap_is_unbiased() -> None:
    torch.manual_seed(1)
    h = torch.relu(torch.randn(1, 30)) + 0.01
    out = SAP()(h.expand(40000, -1))
    # Scale 1/q_j can be large for small p_j; compare with the empirical standard error.
    se = out.std(0) / math.sqrt(out.shape[0])
    assert ((out.mean(0) - h[0]).abs() <= 5 * se + 1e-6).all()


def test_sap_all_zero_row_stays_zero_and_validation() -> None:
    out = SAP()(torch.zeros(3, 5))
    assert torch.equal(out, torch.zeros(3, 5))
    with pytest.raises(DefdropError):
        SAP(draws=0)
    with pytest.raises(DefdropError):
        SAP(fraction=-1)
    with pytest.raises(DefdropError):
        make_defense("jpeg")


def test_defense_swapped_without_retraining() -> None:
    torch.manual_seed(0)
    model = PaperCNN("mnist", train_dropout=0.3).eval()
    x = torch.rand(8, 1, 28, 28)
    defended = with_defense(model, TestTimeDropout(0.5))
    assert defended.base.fc1.weight is model.fc1.weight
    assert defended.slot == "dropout" and not hasattr(model, "defense")
    assert torch.equal(model(x), model(x)), "eval mode without a defense is deterministic"
    assert not torch.equal(defended(x), defended(x))
    # The undefended model equals the defended one at rate 0.
    assert torch.equal(with_defense(model, TestTimeDropout(0.0))(x), model(x))
    # Gradients flow through the defense to the input.
    xg = x.clone().requires_grad_(True)
    with_defense(model, SAP())(xg).sum().backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0
