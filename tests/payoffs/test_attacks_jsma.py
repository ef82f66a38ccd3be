"""JSMA's pairwise saliency rule by hand, its exact pair search, memory bound, and the trained MNIST CNN."""
from __future__ import annotations

import itertools

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from payoffs.attacks import JSMA
from payoffs.attacks.jsma import best_pairs
from payoffs.models import PaperCNN
from tests.payoffs.attack_fixtures import all_target_pairs, linear_model

# Target class 0; alpha = W[0], beta = W[1] + W[2]. Pair scores -(a_p + a_q)(b_p + b_q) over valid pairs:
# (0,1) 5*1=5, (0,2) 4*1=4, (0,3) 3.5*2=7, (1,2) 3*4=12, (1,3) 2.5*5=12.5, (2,3) 1.5*5=7.5 -> pair (1, 3),
# although features 0 and 1 have the largest alpha.
ALPHA = [3.0, 2.0, 1.0, 0.5]
BETA = [1.0, -2.0, -2.0, -3.0]


def _pair_model(bias_other: float = 10.0):
    w = torch.tensor([ALPHA, [b / 2 for b in BETA], [b / 2 for b in BETA]])
    return linear_model(w, torch.tensor([0.0, bias_other, 0.0]))


def test_logit_saliency_moves_exactly_the_rule_s_pair() -> None:
    x = torch.zeros(1, 1, 2, 2)
    result = JSMA(theta=1.0, gamma=0.5, saliency="logits")(_pair_model(), x, torch.tensor([0]))
    assert result.x_adv.flatten().tolist() == [0.0, 1.0, 0.0, 1.0]
    assert result.iterations.tolist() == [1] and result.l0.tolist() == [2.0]


def test_theta_below_one_moves_by_theta_and_negative_theta_decreases() -> None:
    x = torch.full((1, 1, 2, 2), 0.5)
    up = JSMA(theta=0.25, gamma=0.5, saliency="logits")(_pair_model(), x, torch.tensor([0]))
    assert up.x_adv.flatten().tolist() == [0.5, 0.75, 0.5, 0.75]
    # Decreasing: the rule wants alpha_sum < 0 and beta_sum > 0; with the signs of W flipped it is the same pair.
    w = -torch.tensor([ALPHA, [b / 2 for b in BETA], [b / 2 for b in BETA]])
    down = JSMA(theta=-1.0, gamma=0.5, saliency="logits")(linear_model(w, torch.tensor([0.0, 10.0, 0.0])),
                                                          torch.ones(1, 1, 2, 2), torch.tensor([0]))
    assert down.x_adv.flatten().tolist() == [1.0, 0.0, 1.0, 0.0]


def test_probability_saliency_matches_hand_softmax_jacobian() -> None:
    rng = np.random.default_rng(3)
    w = rng.normal(size=(4, 6))
    x = rng.uniform(0, 0.9, size=6)
    target = 2
    z = w @ x
    p = np.exp(z - z.max())
    p /= p.sum()
    alpha = p[target] * (w[target] - p @ w)  # d p_t / dx
    # beta = -alpha, so the best valid pair maximizes alpha_p + alpha_q: the two largest positive alphas.
    pairs = [(a + b, {i, j}) for (i, a), (j, b) in itertools.combinations(enumerate(alpha), 2) if a + b > 0]
    expected = max(pairs)[1]
    model = linear_model(torch.tensor(w, dtype=torch.float32))
    result = JSMA(gamma=2 / 6, saliency="probs")(model, torch.tensor(x, dtype=torch.float32).view(1, 1, 2, 3),
                                                 torch.tensor([target]))
    changed = set((result.x_adv.flatten() != torch.tensor(x, dtype=torch.float32)).nonzero().flatten().tolist())
    assert changed == expected


def test_domain_excludes_features_at_the_bound() -> None:
    x = torch.tensor([0.0, 1.0, 0.0, 0.0]).view(1, 1, 2, 2)  # feature 1 is at 1: out of the domain
    result = JSMA(gamma=0.5, saliency="logits")(_pair_model(), x, torch.tensor([0]))
    # Without feature 1 the valid pairs are (0,3) 7, (2,3) 7.5, (0,2) 4 -> (2, 3).
    assert result.x_adv.flatten().tolist() == [0.0, 1.0, 1.0, 1.0]


def test_stops_on_success_and_respects_the_gamma_budget() -> None:
    x = torch.zeros(1, 1, 2, 2)
    easy = JSMA(gamma=1.0, saliency="logits")(_pair_model(bias_other=1.0), x, torch.tensor([0]))
    assert easy.success.tolist() == [True] and easy.iterations.tolist() == [1]  # target wins after one pair
    hard = JSMA(gamma=1.0, saliency="logits")(_pair_model(bias_other=100.0), x, torch.tensor([0]))
    assert hard.success.tolist() == [False] and hard.iterations.tolist() == [2] and hard.l0.tolist() == [4.0]


def _brute_force(a: np.ndarray, b: np.ndarray, d: np.ndarray) -> float:
    best = 0.0
    for p, q in itertools.combinations(range(len(a)), 2):
        if d[p] and d[q] and a[p] + a[q] > 0 and b[p] + b[q] < 0:
            best = max(best, -(a[p] + a[q]) * (b[p] + b[q]))
    return best


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 70), st.integers(0, 2**31 - 1), st.booleans())
def test_pair_search_equals_brute_force(n: int, seed: int, anticorrelated: bool) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(2, n))
    b = -a + 0.1 * rng.normal(size=(2, n)) if anticorrelated else rng.normal(size=(2, n))
    d = rng.uniform(size=(2, n)) < 0.8
    p, q, valid = best_pairs(torch.tensor(a), torch.tensor(b), torch.tensor(d))
    for r in range(2):
        best = _brute_force(a[r], b[r], d[r])
        assert bool(valid[r]) == (best > 0)
        if best > 0:
            i, j = int(p[r]), int(q[r])
            assert i != j and d[r, i] and d[r, j]
            assert np.isclose(-(a[r, i] + a[r, j]) * (b[r, i] + b[r, j]), best)


def test_pair_search_worst_case_on_cifar_sized_inputs() -> None:
    # Equal saliencies defeat the pruning bound, so all 3072^2 pairs are scored, in bounded blocks.
    n = 3 * 32 * 32
    a, b = torch.ones(2, n), -torch.ones(2, n)
    domain = torch.ones(2, n, dtype=torch.bool)
    domain[1, :-2] = False
    p, q, valid = best_pairs(a, b, domain)
    assert valid.all() and p[0] != q[0] and {int(p[1]), int(q[1])} == {n - 2, n - 1}


def test_runs_on_cifar_shaped_inputs() -> None:
    torch.manual_seed(0)
    model = PaperCNN("cifar").eval()
    result = JSMA(gamma=0.002, seed=0)(model, torch.rand(2, 3, 32, 32), torch.tensor([1, 2]))
    assert (result.l0 <= 2 * 3).all() and (result.iterations <= 3).all()


def test_trained_mnist_targeted_success_within_budget(small_trained, mnist5k) -> None:
    model = small_trained.model
    x, t = all_target_pairs(model, mnist5k.x_test[:10], mnist5k.y_test[:10], 2)
    attack = JSMA()  # theta = 1, gamma = 0.1: at most 39 pairs, 78 of 784 pixels
    result = attack(model, x, t)
    assert attack.max_steps(784) == 39
    assert result.success.float().mean() >= 0.4
    assert (result.l0 <= 78).all() and (result.l0 <= 2 * result.iterations).all()
    with torch.no_grad():
        assert torch.equal(model(result.x_adv).argmax(1) == t, result.success)
