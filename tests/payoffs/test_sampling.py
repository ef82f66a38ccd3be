"""Shared-trunk sampling: exact against the repeat path, independent copies, keyed draws, any architecture."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from payoffs import noise
from payoffs.attacks import make_attack
from payoffs.defenses import SAP, TestTimeDropout
from payoffs.evaluation import sampled_correct
from payoffs.models import PaperCNN, with_defense
from payoffs.sampling import counting, sample_logits
from payoffs.slots import DefendedModel
from tests.payoffs.user_models import SmallResNet


def _models():
    torch.manual_seed(0)
    paper = PaperCNN("mnist", train_dropout=0.3).eval()
    paper2 = PaperCNN("mnist", dropout_layer="fc2").eval()
    res = SmallResNet().eval()  # skip connections around the slot, BatchNorm in eval mode
    return [(paper, "dropout"), (paper2, "dropout"), (res, "block1.conv"), (res, "block1")]


@pytest.mark.parametrize("case", range(4))
@pytest.mark.parametrize("defense", [TestTimeDropout(0.5), SAP()])
def test_split_equals_repeat_with_the_same_keys(case: int, defense: nn.Module) -> None:
    """Trunk once + k head copies draws exactly the k samples the repeat path draws (same keys per copy)."""
    model, slot = _models()[case]
    net = DefendedModel(model, defense, slot)
    x = torch.rand(5, 1, 28, 28)
    keys = noise.row_keys(7, torch.arange(5), noise.ATTACK, 3)
    split = sample_logits(net, x, 6, keys)
    assert net.split_reason == "", net.split_reason
    whole = sample_logits(net, x, 6, keys, split=False)
    assert split.shape == whole.shape == (6, 5, 10)
    assert torch.allclose(split, whole, atol=1e-5, rtol=1e-5)
    # The k copies of one input are independent samples, not one mask repeated.
    assert not torch.allclose(split[0], split[1])


def test_gradient_through_split_equals_repeat() -> None:
    model, slot = _models()[2]
    net = DefendedModel(model, TestTimeDropout(0.5), slot)
    x = torch.rand(4, 1, 28, 28)
    keys = noise.row_keys(1, torch.arange(4), noise.ATTACK)
    grads = []
    for split in (True, False):
        xv = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(sample_logits(net, xv, 5, keys, split=split)[..., 3].sum(), xv)
        grads.append(g)
    assert torch.allclose(grads[0], grads[1], atol=1e-5, rtol=1e-4)


def test_trunk_runs_once_per_input() -> None:
    model, slot = _models()[0]
    net = with_defense(model, TestTimeDropout(0.5))
    x = torch.rand(3, 1, 28, 28).requires_grad_(True)
    with counting() as cost:
        sample_logits(net, x, 8, noise.row_keys(0, torch.arange(3), noise.ATTACK))
    assert (cost.forwards, cost.backwards, cost.trunk_forwards) == (24, 24, 3)
    with counting() as cost:
        sample_logits(net, x, 8, None, split=False)
    assert cost.trunk_forwards == 24
    # A deterministic defense: one evaluation stands for k samples.
    plain = with_defense(model, TestTimeDropout(0.0))
    with counting() as cost:
        logits = sample_logits(plain, x, 8)
    assert cost.trunk_forwards == 3 and torch.equal(logits[0], logits[7])


def test_untraceable_model_falls_back_to_repeat() -> None:
    class DataDependent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(784, 20)
            self.b = nn.Linear(20, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.a(x.flatten(1)))
            if h.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
                h = h * 1.0
            return self.b(h)

    net = DefendedModel(DataDependent().eval(), TestTimeDropout(0.5), "a")
    x = torch.rand(3, 1, 28, 28)
    keys = noise.row_keys(0, torch.arange(3), noise.EVAL)
    with counting() as cost:
        out = sample_logits(net, x, 4, keys)
    assert "cannot be traced" in net.split_reason and cost.trunk_forwards == 12
    assert torch.allclose(out, sample_logits(net, x, 4, keys, split=False))


def test_random_trunk_is_not_shared() -> None:
    class Noisy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(784, 20)
            self.noise = TestTimeDropout(0.5)
            self.b = nn.Linear(20, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(torch.relu(self.a(self.noise(x.flatten(1)))))

    net = DefendedModel(Noisy().eval(), TestTimeDropout(0.5), "a")
    net.trunk(torch.rand(3, 1, 28, 28))
    assert "random" in net.split_reason


def test_results_do_not_depend_on_batching() -> None:
    model, _ = _models()[0]
    net = with_defense(model, TestTimeDropout(0.5))
    x, t = torch.rand(9, 1, 28, 28), torch.randint(0, 10, (9,))
    a = make_attack("cw", search_steps=2, iterations=8, eot=3, success_test="expected", seed=4, batch_size=9)(net, x, t)
    b = make_attack("cw", search_steps=2, iterations=8, eot=3, success_test="expected", seed=4, batch_size=2)(net, x, t)
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.success, b.success)
    s1 = sampled_correct(net, x, t, 20, seed=3)
    s2 = torch.cat([torch.as_tensor(sampled_correct(net, x[i:i + 2], t[i:i + 2], 20, seed=3,
                                                    ids=torch.arange(i, min(9, i + 2)))) for i in range(0, 9, 2)])
    assert torch.equal(torch.as_tensor(s1), s2)
    # Another seed, other draws; the same seed, the same draws.
    first = sample_logits(net, x, 3, noise.row_keys(3, torch.arange(9), noise.EVAL))
    assert torch.equal(first, sample_logits(net, x, 3, noise.row_keys(3, torch.arange(9), noise.EVAL)))
    assert not torch.equal(first, sample_logits(net, x, 3, noise.row_keys(4, torch.arange(9), noise.EVAL)))


def test_deterministic_defense_gives_the_repeat_paths_examples() -> None:
    model, _ = _models()[0]
    net = with_defense(model, TestTimeDropout(0.0))
    x, t = torch.rand(4, 1, 28, 28), torch.randint(0, 10, (4,))
    shared = make_attack("cw", search_steps=2, iterations=10, eot=4, seed=0)(net, x, t)
    plain = make_attack("cw", search_steps=2, iterations=10, eot=1, seed=0)(model, x, t)
    assert torch.allclose(shared.x_adv, plain.x_adv, atol=1e-6) and torch.equal(shared.success, plain.success)


@pytest.mark.parametrize("factory", [lambda: PaperCNN("mnist", train_dropout=0.3), SmallResNet])
def test_models_load_channels_last_on_cpu_with_the_same_numbers(factory, tmp_path) -> None:
    """Loaded for inference on a CPU, convolution weights are channels-last; logits, input gradients and the
    model's hash are those of the contiguous model up to float round-off."""
    from payoffs.checkpoint import weights_hash
    from payoffs.device import for_inference

    torch.manual_seed(0)
    plain = factory().eval()
    fast = for_inference(factory().eval(), "cpu")
    fast.load_state_dict(plain.state_dict())
    convs = [m for m in fast.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    assert not all(m.weight.is_contiguous() for m in convs)
    x = torch.rand(6, 1, 28, 28, requires_grad=True)
    g_plain = torch.autograd.grad(plain(x).logsumexp(1).sum(), [x])[0]
    g_fast = torch.autograd.grad(fast(x).logsumexp(1).sum(), [x])[0]
    torch.testing.assert_close(fast(x), plain(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g_fast, g_plain, rtol=1e-4, atol=1e-6)
    assert weights_hash(fast) == weights_hash(plain)
