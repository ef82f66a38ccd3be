"""C&W-L2 against its definition, its paper defaults on a trained CNN, and Foolbox 3's reference attack."""
from __future__ import annotations

import pytest
import torch

from payoffs.attacks import CarliniWagnerL2
from payoffs.attacks.objectives import cw_margin
from tests.payoffs.attack_fixtures import all_target_pairs, linear_model


@pytest.fixture(scope="module")
def pairs(small_trained, mnist5k) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """The trained paper CNN (no defense: deterministic) and 30 (image, target) pairs of the paper's protocol."""
    model = small_trained.model
    x, t = all_target_pairs(model, mnist5k.x_test[:20], mnist5k.y_test[:20], 4)
    return model, x[:30], t[:30]


def _linear_case(seed: int = 0):
    torch.manual_seed(seed)
    model = linear_model(torch.randn(3, 16))
    return model, torch.rand(6, 1, 4, 4), torch.randint(0, 3, (6,))


def test_default_learning_rate_and_c_give_full_success_on_the_trained_cnn(pairs) -> None:
    model, x, t = pairs
    # The first search step of the defaults (c = 10, lr = 0.1, 100 Adam steps) already succeeds on every pair;
    # later search steps only replace an example by a smaller successful one, so the full 10 x 100 default
    # attack (too slow for a unit test) succeeds everywhere too.
    result = CarliniWagnerL2(search_steps=1)(model, x, t)
    assert result.success.all()
    with torch.no_grad():
        assert (model(result.x_adv).argmax(1) == t).all()
    assert 0.5 < result.l2.mean() < 5.0
    # The reference's Adam step (0.01) cannot move saturated pixels far enough in 100 steps.
    slow = CarliniWagnerL2(search_steps=1, learning_rate=0.01)(model, x[:9], t[:9])
    assert slow.success.float().mean() <= 0.5


def test_mean_l2_within_10_percent_of_foolbox(pairs) -> None:
    fb = pytest.importorskip("foolbox")
    model, x, t = pairs
    steps, iterations, lr, c = 3, 50, 0.2, 10.0
    ours = CarliniWagnerL2(initial_c=c, search_steps=steps, iterations=iterations, learning_rate=lr)(model, x, t)
    reference = fb.attacks.L2CarliniWagnerAttack(binary_search_steps=steps, steps=iterations, stepsize=lr,
                                                 initial_const=c, abort_early=True)
    criterion = fb.criteria.TargetedMisclassification(t)
    _, fb_adv, fb_success = reference(fb.PyTorchModel(model, bounds=(0, 1)), x, criterion, epsilons=None)
    model.zero_grad(set_to_none=True)  # Foolbox's backward() leaves weight gradients on the shared model
    fb_l2 = (fb_adv - x).flatten(1).norm(dim=1)
    assert ours.success.all() and fb_success.all()
    assert abs(ours.l2.mean() / fb_l2.mean() - 1) < 0.10


def test_kappa_margin_holds_for_successful_examples() -> None:
    model, x, t = _linear_case()
    result = CarliniWagnerL2(kappa=2.0, search_steps=4, iterations=50)(model, x, t)
    assert result.success.any()
    with torch.no_grad():
        margin = cw_margin(model(result.x_adv), t)
    assert (margin[result.success] < -2.0 + 1e-4).all()
    assert torch.equal(result.x_adv[~result.success], x[~result.success])  # failures come back unchanged


def test_more_search_steps_never_increase_l2() -> None:
    model, x, t = _linear_case(1)
    short = CarliniWagnerL2(search_steps=2, iterations=40)(model, x, t)
    long = CarliniWagnerL2(search_steps=5, iterations=40)(model, x, t)
    assert (long.success >= short.success).all()
    both = short.success
    assert (long.l2[both] <= short.l2[both] + 1e-6).all()
    assert (long.iterations > short.iterations).all()


def test_abort_early_is_per_example() -> None:
    model, x, t = _linear_case(2)
    full = CarliniWagnerL2(search_steps=2, iterations=100, abort_early=False)(model, x, t)
    early = CarliniWagnerL2(search_steps=2, iterations=100, abort_early=True)(model, x, t)
    assert (full.iterations == 200).all()
    assert (early.iterations <= 200).all() and (early.iterations < 200).any()
    assert len(set(early.iterations.tolist())) > 1  # examples stop at different steps


def test_final_search_step_runs_at_the_upper_bound() -> None:
    # A target no c can reach (class 2's logit is -100 and the input cannot move it): the search keeps
    # multiplying c by 10 and never succeeds; with 10 search steps the last runs at c = 1e10 and still fails.
    w = torch.zeros(3, 4)
    model = linear_model(w, torch.tensor([0.0, 0.0, -100.0]))
    result = CarliniWagnerL2(search_steps=10, iterations=5, abort_early=False)(model, torch.rand(2, 1, 2, 2),
                                                                              torch.tensor([2, 1]))
    assert result.success.tolist() == [False, False]
    assert (result.iterations == 50).all()
