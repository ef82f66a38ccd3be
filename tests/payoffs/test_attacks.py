"""Attack interface, FGSM and PGD by hand, and the stochastic semantics (seeds, EOT, no mode switching)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from payoffs.attacks import ATTACKS, FGSM, JSMA, PGD, Attack, AttackResult, CarliniWagnerL2, make_attack
from payoffs.attacks.fgsm import targeted_ce
from payoffs.errors import DefdropError
from tests.payoffs.attack_fixtures import dropout_cnn, dropout_mlp, linear_model

FAST = {"fgsm": {}, "pgd": {"steps": 3}, "jsma": {"gamma": 0.02}, "cw": {"search_steps": 2, "iterations": 10}}


def _batch(seed: int = 0, n: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


# ---------------------------------------------------------------- interface
def test_registry_names_and_types() -> None:
    assert ATTACKS == ("fgsm", "jsma", "cw", "pgd")
    for name, cls in zip(ATTACKS, (FGSM, JSMA, CarliniWagnerL2, PGD)):
        attack = make_attack(name)
        assert isinstance(attack, cls) and isinstance(attack, Attack) and attack.name == name


@pytest.mark.parametrize("name", ATTACKS)
def test_result_shapes_dtypes_and_bounds(name: str) -> None:
    model = dropout_mlp()
    x, t = _batch()
    result = make_attack(name, seed=0, **FAST[name])(model, x, t)
    assert isinstance(result, AttackResult) and len(result) == 3
    assert result.x_adv.shape == x.shape and result.x_adv.min() >= 0 and result.x_adv.max() <= 1
    assert result.success.dtype == torch.bool and result.iterations.dtype == torch.int64
    for field in (result.success, result.l2, result.l0, result.linf, result.iterations):
        assert field.shape == (3,)
    d = (result.x_adv - x).flatten(1)
    assert torch.allclose(result.l2, d.norm(dim=1), atol=1e-5)
    assert torch.allclose(result.linf, d.abs().amax(1))
    # An example the attacker judges successful at its starting point needs no step.
    assert ((result.iterations >= 1) | (result.success & (result.l0 == 0))).all()


def test_declared_parameters_are_the_attack_settings() -> None:
    from payoffs.registry import ATTACKS as REGISTRY

    for name in ATTACKS:
        declared = REGISTRY[name].params
        attack = make_attack(name, eot=2, success_test="expected", seed=3, batch_size=7)
        # Every declared parameter, at its declared default, is an attribute of the attack, and nothing else is.
        assert attack.params() == declared.defaults()
        for param in declared.params:
            assert getattr(attack, param.name) == param.default


@pytest.mark.parametrize("build, word", [
    (lambda: make_attack("deepfool"), "deepfool"),
    (lambda: make_attack("fgsm", epsilon=0.1), "epsilon"),
    (lambda: FGSM(eps=0.0), "eps 0"),
    (lambda: FGSM(eps=1.5), "1.5"),
    (lambda: FGSM(eps=float("nan")), "nan"),
    (lambda: PGD(steps=0), "steps 0"),
    (lambda: PGD(step_size=-1), "-1"),
    (lambda: JSMA(theta=0.0), "theta 0"),
    (lambda: JSMA(gamma=0.0), "gamma 0"),
    (lambda: JSMA(gamma=2), "gamma 2"),
    (lambda: JSMA(saliency="hessian"), "hessian"),
    (lambda: CarliniWagnerL2(kappa=-1), "kappa -1"),
    (lambda: CarliniWagnerL2(initial_c=0), "initial_c 0"),
    (lambda: CarliniWagnerL2(search_steps=2.5), "2.5"),
    (lambda: CarliniWagnerL2(learning_rate=0), "learning_rate 0"),
    (lambda: CarliniWagnerL2(abort_early="yes"), "yes"),
    (lambda: FGSM(eot=0), "eot 0"),
    (lambda: FGSM(success_test="majority"), "majority"),
    (lambda: FGSM(batch_size=0), "batch_size 0"),
])
def test_bad_parameters_are_one_line_errors(build, word: str) -> None:
    with pytest.raises(DefdropError, match=word) as err:
        build()
    assert "\n" not in str(err.value)


def test_bad_inputs_are_one_line_errors() -> None:
    model = linear_model(torch.randn(3, 4))
    x = torch.rand(2, 1, 2, 2)
    with pytest.raises(DefdropError, match=r"\[0, 1\]"):
        FGSM()(model, x + 1.0, torch.tensor([0, 1]))
    with pytest.raises(DefdropError, match="out of range for 3 classes"):
        FGSM()(model, x, torch.tensor([0, 3]))
    with pytest.raises(DefdropError, match="2 integer labels"):
        FGSM()(model, x, torch.tensor([0]))
    with pytest.raises(DefdropError, match=r"\(B, C, H, W\)"):
        FGSM()(model, x.flatten(1), torch.tensor([0, 1]))


class _ModeTrap(nn.Module):
    """Fails the test if anything switches its mode (that would silently toggle dropout)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def train(self, mode: bool = True):  # noqa: D401
        raise AssertionError("an attack switched the model's mode")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


@pytest.mark.parametrize("name", ATTACKS)
def test_attacks_never_switch_model_mode(name: str) -> None:
    model = _ModeTrap(dropout_mlp())
    x, t = _batch(n=2)
    make_attack(name, seed=0, **FAST[name])(model, x, t)


def test_empty_batch() -> None:
    result = FGSM()(linear_model(torch.randn(3, 4)), torch.rand(0, 1, 2, 2), torch.zeros(0, dtype=torch.int64))
    assert len(result) == 0 and result.l2.shape == (0,)


# ---------------------------------------------------------------- FGSM and PGD by hand
def test_fgsm_equals_hand_computation() -> None:
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(3, 4)), rng.normal(size=3)
    x = rng.uniform(size=(5, 4))
    t = np.array([0, 1, 2, 1, 0])
    z = x @ w.T + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    grad = (p - np.eye(3)[t]) @ w  # d CE(z, t) / dx for z = Wx + b
    expected = np.clip(x - 0.25 * np.sign(grad), 0, 1)
    model = linear_model(torch.tensor(w, dtype=torch.float32), torch.tensor(b, dtype=torch.float32))
    xt = torch.tensor(x, dtype=torch.float32).view(5, 1, 2, 2)
    result = FGSM()(model, xt, torch.tensor(t))
    assert np.allclose(result.x_adv.view(5, 4).numpy(), expected, atol=1e-6)
    z_adv = expected @ w.T + b
    assert np.array_equal(result.success.numpy(), z_adv.argmax(1) == t)
    assert (result.iterations == 1).all()


def test_pgd_without_random_start_first_step_is_fgsm_and_stays_in_ball() -> None:
    torch.manual_seed(0)
    model = linear_model(torch.randn(3, 16))
    x, t = torch.rand(6, 1, 4, 4), torch.randint(0, 3, (6,))
    one = PGD(eps=0.1, step_size=0.1, steps=1, random_start=False)(model, x, t)
    assert torch.allclose(one.x_adv, FGSM(eps=0.1)(model, x, t).x_adv)
    many = PGD(eps=0.1, step_size=0.03, steps=20, seed=1)(model, x, t)
    assert (many.linf <= 0.1 + 1e-6).all() and (many.iterations == 20).all()
    with torch.no_grad():
        assert (targeted_ce(model(many.x_adv)[None], t) < targeted_ce(model(x)[None], t))


# ---------------------------------------------------------------- stochastic semantics
@pytest.mark.parametrize("name", ATTACKS)
def test_seeds_reproduce_and_differ_under_dropout(name: str) -> None:
    model = dropout_mlp()
    x, t = _batch(n=2)
    runs = [make_attack(name, seed=s, **FAST[name])(model, x, t).x_adv for s in (5, 5, 6)]
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_seeded_run_leaves_global_rng_alone() -> None:
    model = dropout_mlp()
    x, t = _batch(n=2)
    state = torch.get_rng_state()
    FGSM(seed=1)(model, x, t)
    assert torch.equal(torch.get_rng_state(), state)


class _CountingModel(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.batches = inner, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(len(x))
        return self.inner(x)


def test_eot_is_one_batched_forward_per_step() -> None:
    model = _CountingModel(dropout_mlp())
    x, t = _batch(n=3)
    PGD(steps=4, eot=5, seed=0)(model, x, t)
    # A one-image probe checks the targets against the classes; then 4 gradient steps and the final success
    # test, each one pass of k * B images.
    assert model.batches == [1] + [15] * 5


def test_eot_gradient_variance_falls_as_one_over_k() -> None:
    model = dropout_mlp(rate=0.5)
    x, t = _batch(n=2)
    torch.manual_seed(0)

    def gradient_variance(k: int, draws: int = 60) -> float:
        attack = FGSM(eot=k)
        grads = []
        for _ in range(draws):
            xv = x.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(targeted_ce(attack.sample_logits(model, xv), t), [xv])
            grads.append(g.flatten())
        return torch.stack(grads).var(0).mean().item()

    v1, v4, v16 = gradient_variance(1), gradient_variance(4), gradient_variance(16)
    # Independent samples: Var(mean of k) = Var / k. With 60 draws the estimate is within ~20%.
    assert 2.5 < v1 / v4 < 6.0
    assert 10.0 < v1 / v16 < 24.0


def test_success_tests_agree_on_a_deterministic_model() -> None:
    torch.manual_seed(0)
    model = linear_model(torch.randn(3, 16))
    x, t = torch.rand(8, 1, 4, 4), torch.randint(0, 3, (8,))
    for name, params in (("fgsm", {"eps": 0.05}), ("cw", {"search_steps": 2, "iterations": 20})):
        single = make_attack(name, seed=0, **params)(model, x, t)
        expected = make_attack(name, seed=0, success_test="expected", eot=3, **params)(model, x, t)
        assert torch.equal(single.success, expected.success)
        assert torch.allclose(single.x_adv, expected.x_adv, atol=1e-5)


def test_expected_success_judges_the_mean_of_samples() -> None:
    attack_single, attack_expected = FGSM(), FGSM(success_test="expected")
    # Two samples of one example towards class 0: sample 0 says target, the mean does not.
    logits = torch.tensor([[[2.0, 0.0]], [[-5.0, 0.0]]])
    target = torch.tensor([0])
    assert attack_single.judge(logits, target).tolist() == [True]
    assert attack_expected.judge(logits, target).tolist() == [False]
    assert attack_single.judge(logits, target, kappa=3.0).tolist() == [False]


def test_batch_size_splits_without_changing_deterministic_results() -> None:
    torch.manual_seed(0)
    model = linear_model(torch.randn(3, 16))
    x, t = torch.rand(7, 1, 4, 4), torch.randint(0, 3, (7,))
    whole = CarliniWagnerL2(search_steps=2, iterations=15)(model, x, t)
    parts = CarliniWagnerL2(search_steps=2, iterations=15, batch_size=3)(model, x, t)
    assert torch.allclose(whole.x_adv, parts.x_adv, atol=1e-6)
    assert torch.equal(whole.iterations, parts.iterations)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ATTACKS)
def test_runs_on_cuda(name: str) -> None:
    model = dropout_cnn().cuda()
    x, t = _batch(n=2)
    result = make_attack(name, seed=0, **FAST[name])(model, x.cuda(), t.cuda())
    assert result.x_adv.is_cuda and result.l2.is_cuda and result.x_adv.shape == x.shape
