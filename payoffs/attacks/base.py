"""The shared base of the attacks: parameters, batching, device, seeding, EOT sampling, success tests, distortions.

Stochastic white-box semantics (paper section 3.2): the attacker knows the defense and its rate, and every
gradient is taken on a freshly sampled sub-network. ``eot = k`` averages k independent samples per step
(Expectation over Transformation, Athalye et al. 2018, arXiv:1802.00420), drawn by
:func:`payoffs.sampling.sample_logits`: on a model with a defense slot the layers before the slot run once and the
defense and later layers k times.

Every draw is keyed by (seed, example, step, copy) through :mod:`payoffs.noise`, so an attack gives the same
examples whatever its batch size or chunking. The base never calls ``model.eval()`` or ``model.train()``: models
arrive in eval mode and the defense is random in every mode; switching modes would silently turn training dropout
on (or a defense off).

How the attacker judges success while it searches is part of its strategy (``success_test``, an object of
:data:`SUCCESS_TESTS`):

* ``single``: the sub-network sampled at that step (the first of the k EOT samples) says target, with margin
  kappa: ``max_{i != t} Z_i - Z_t < -kappa`` (the paper's protocol);
* ``expected``: the mean of the k samples' logits says target with margin kappa.

On a deterministic model both tests coincide. Against a random one they decide the numbers (see README).

A subclass sets ``name`` (its entry in :data:`payoffs.registry.ATTACKS`, which declares its parameters) and
implements :meth:`Attack.run`; the final :meth:`Attack.__call__` checks inputs, seeds, batches and measures.
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Callable, ClassVar, Iterator, Sequence, final

import torch
from torch import nn

from payoffs import noise
from payoffs.attacks.objectives import cw_margin
from payoffs.errors import DefdropError
from payoffs.params import Param
from payoffs.registry import ATTACKER_COMMON, ATTACKS
from payoffs.sampling import sample_logits

CPU_FORWARD_IMAGES = 256
"""Inputs per forward pass on CPU: attacks cut their active batch into passes of this many inputs (activations
stay in cache; their EOT copies only cost the layers after the defense slot). On CUDA the whole active batch goes
at once. bench/sampling.py measures the choice."""
SEED = Param("seed", int, 0, "seed of the attack's randomness", low=0)
BATCH_SIZE = Param("batch_size", int, 1, "examples attacked at once", low=1)
L0_TOLERANCE = 1e-5
"""A feature counts as changed when it moved by more than this; it is far below one grey level (1/255) and
above the float32 round-off of C&W's tanh change of variables, which would otherwise count every pixel."""

LossRecorder = Callable[[int, torch.Tensor, torch.Tensor], None]
_LOSS_TRACE: ContextVar[LossRecorder | None] = ContextVar("defdrop_loss_trace", default=None)


@contextmanager
def tracing_losses(record: LossRecorder) -> Iterator[None]:
    """Within the block, every gradient step of an attack calls ``record(step, ids, loss)``: the step number, the
    ids of the examples in that pass and each one's loss (detached; the attack's own objective, averaged over its
    EOT samples). What the audit's loss-vs-iteration curves are made of; nothing is recorded outside the block."""
    token = _LOSS_TRACE.set(record)
    try:
        yield
    finally:
        _LOSS_TRACE.reset(token)


def per_example_loss(loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], logits: torch.Tensor,
                     target: torch.Tensor) -> torch.Tensor:
    """Each example's term of ``loss_fn(logits (k, B, C), target)``, a loss summed over examples: shape ``(B,)``."""
    logits, target = logits.detach(), target.detach()
    try:
        return torch.func.vmap(lambda z, t: loss_fn(z.unsqueeze(1), t.unsqueeze(0)), in_dims=(1, 0))(logits, target)
    except Exception:  # noqa: BLE001 - a plug-in loss that vmap cannot batch: one example at a time
        return torch.stack([loss_fn(logits[:, i:i + 1], target[i:i + 1]) for i in range(logits.shape[1])])


# ---------------------------------------------------------------------------------------------- success tests
class SuccessTest:
    """How the attacker decides, from ``(k, B, C)`` logits of k samples, that it has reached the target."""

    name: ClassVar[str] = ""

    def logits(self, logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, logits: torch.Tensor, target: torch.Tensor, kappa: float = 0.0) -> torch.Tensor:
        return cw_margin(self.logits(logits).detach(), target) < -kappa

    def __repr__(self) -> str:
        return self.name


class SingleSample(SuccessTest):
    """The first sampled sub-network says target (the paper's protocol)."""

    name = "single"

    def logits(self, logits: torch.Tensor) -> torch.Tensor:
        return logits[0]


class ExpectedLogits(SuccessTest):
    """The mean of the k samples' logits says target."""

    name = "expected"

    def logits(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.mean(0)


SUCCESS_TESTS: dict[str, SuccessTest] = {t.name: t for t in (SingleSample(), ExpectedLogits())}


# ---------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class AttackResult:
    """Adversarial examples and per-example diagnostics of one attack run over a batch.

    ``success`` is success as the attacker saw it while searching (its ``success_test``), not the success rate
    under fresh defender samples, which the payoff cell measures separately.
    """

    x_adv: torch.Tensor
    success: torch.Tensor
    l2: torch.Tensor
    l0: torch.Tensor
    linf: torch.Tensor
    iterations: torch.Tensor

    def __len__(self) -> int:
        return len(self.x_adv)


def distortions(x_adv: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """L2, L0 (features moved by more than :data:`L0_TOLERANCE`) and Linf of ``x_adv - x`` per example."""
    d = (x_adv - x).flatten(1)
    return d.norm(dim=1), (d.abs() > L0_TOLERANCE).sum(1).to(d.dtype), d.abs().amax(1)


# ---------------------------------------------------------------------------------------------- the base
class Attack:
    """A targeted attack: ``attack(model, x, target) -> AttackResult`` for a whole batch.

    Keyword arguments are the attack's declared parameters (``payoffs.registry.ATTACKS[name]``; unknown names and
    bad values are one-line errors) plus the ones every attacker shares: ``eot`` (defender samples averaged per
    gradient step; 1 = the paper's single sample) and ``success_test`` (``single`` or ``expected``). Runtime
    settings that do not change the result: ``seed`` (``None`` draws a fresh one from the global RNG) and
    ``batch_size`` (examples attacked at once; ``None`` = all). The resolved parameters are in
    :attr:`settings` and as attributes.
    """

    name: ClassVar[str] = ""

    def __init__(self, *, eot: int = 1, success_test: str = "single", seed: int | None = None,
                 batch_size: int | None = None, **params) -> None:
        common = ATTACKER_COMMON.resolve({"eot": eot, "success_test": success_test})
        self.settings: dict = ATTACKS[self.name].resolve(params)
        for key, value in self.settings.items():
            setattr(self, key, value)
        self.eot: int = common["eot"]
        self.success_test: str = common["success_test"]
        self.judge_fn: SuccessTest = SUCCESS_TESTS[self.success_test]
        self.seed = None if seed is None else SEED.check(seed, "attack")
        self.batch_size = None if batch_size is None else BATCH_SIZE.check(batch_size, "attack")
        self._key_seed = 0
        self._group_seeds: torch.Tensor | None = None

    # ------------------------------------------------------------------ public entry point
    @final
    def __call__(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor,
                 ids: torch.Tensor | None = None, *, group_seeds: Sequence[int] | None = None) -> AttackResult:
        """Attack every ``(x_i, target_i)``; returns results on ``x``'s device.

        ``ids``: each example's id in the run (default ``0..B-1``); the randomness of example i depends on its id,
        not on its position in a batch. ``group_seeds``: several runs in one batch (fused cells): ids made by
        :func:`payoffs.noise.group_ids`, and run g's examples draw what they would draw alone with seed
        ``group_seeds[g]`` (the defense learns each row's run from :func:`payoffs.noise.row_groups`).
        """
        x, target = self._check_inputs(x, target)
        ids = torch.arange(len(x)) if ids is None else torch.as_tensor(ids, dtype=torch.int64).flatten()
        if len(ids) != len(x):
            raise DefdropError(f"attack ids must be {len(x)} integers, got {len(ids)}")
        out_device = x.device
        try:
            device = next(model.parameters()).device
        except StopIteration:
            device = x.device
        x, target, ids = x.to(device), target.to(device), ids.to(device)
        seed = self.seed if self.seed is not None else int(torch.randint(0, 2 ** 31 - 1, ()).item())
        self._key_seed = seed
        self._group_seeds = None
        if group_seeds is not None:
            self._group_seeds = torch.tensor([SEED.check(int(g), "attack group") for g in group_seeds],
                                             dtype=torch.int64, device=device)
            groups = noise.split_ids(ids)[0]
            if len(ids) and (int(groups.min()) < 0 or int(groups.max()) >= len(group_seeds)):
                raise DefdropError(f"attack ids name groups up to {int(groups.max())} but {len(group_seeds)} "
                                   "group seed(s) were given")
        fork = (torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])
                if self.seed is not None else nullcontext())
        with fork, torch.enable_grad():
            if self.seed is not None:
                torch.manual_seed(self.seed)
            if len(x):
                with torch.no_grad():
                    check_target_range(model(x[:1]), target)
            step = self.batch_size or max(1, len(x))
            parts = [self.run(model, x[i:i + step], target[i:i + step], ids[i:i + step])
                     for i in range(0, len(x), step)]
        if parts:
            x_adv = torch.cat([p[0] for p in parts]).detach().clamp(0.0, 1.0)
            success = torch.cat([p[1] for p in parts]).bool()
            iterations = torch.cat([p[2] for p in parts]).to(torch.int64)
        else:
            x_adv, success = x.clone(), torch.zeros(0, dtype=torch.bool, device=device)
            iterations = torch.zeros(0, dtype=torch.int64, device=device)
        l2, l0, linf = distortions(x_adv, x)
        return AttackResult(*(t.to(out_device) for t in (x_adv, success, l2, l0, linf, iterations)))

    def run(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor,
            ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Attack one batch; returns ``(x_adv, success, iterations)``. Subclasses implement this."""
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers for subclasses
    def _row_keys(self, ids: torch.Tensor, purpose: int, *labels: int) -> torch.Tensor:
        if self._group_seeds is None:
            return noise.row_keys(self._key_seed, ids, purpose, *labels)
        groups, local = noise.split_ids(ids)
        return noise.seeded_row_keys(self._group_seeds[groups], local, purpose, *labels)

    def keys(self, ids: torch.Tensor, *labels: int) -> torch.Tensor:
        """Per-example keys for one step (``labels``: e.g. the step number)."""
        return self._row_keys(ids, noise.ATTACK, *labels)

    def sample_logits(self, model: nn.Module, x: torch.Tensor, ids: torch.Tensor | None = None,
                      step: int = 0) -> torch.Tensor:
        """Logits of ``eot`` independent samples of the model at ``x``: shape ``(k, B, C)``."""
        keys = None if ids is None else self.keys(ids, step)
        groups = None if ids is None or self._group_seeds is None else noise.split_ids(ids)[0]
        return sample_logits(model, x, self.eot, keys, groups=groups)

    def chunks(self, n: int, device: torch.device) -> list[slice]:
        """Slices of the ``n`` active examples sent through the model per pass (see :data:`CPU_FORWARD_IMAGES`)."""
        size = n if device.type != "cpu" else CPU_FORWARD_IMAGES
        return [slice(i, min(n, i + size)) for i in range(0, n, max(1, size))]

    def loss_gradient(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor, ids: torch.Tensor, step: int,
                      loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """``d loss_fn(logits (k, B, C), target) / dx`` with fresh samples keyed by ``step``."""
        grads = []
        for sl in self.chunks(len(x), x.device):
            xv = x[sl].detach().requires_grad_(True)
            logits = self.sample_logits(model, xv, ids[sl], step)
            grads.append(input_gradient(loss_fn(logits, target[sl]), xv))
            if _LOSS_TRACE.get() is not None:
                self.trace_loss(step, ids[sl], per_example_loss(loss_fn, logits, target[sl]))
        return torch.cat(grads) if grads else torch.zeros_like(x)

    @staticmethod
    def trace_loss(step: int, ids: torch.Tensor, loss: torch.Tensor) -> None:
        """Report each example's loss at ``step`` to the recorder of :func:`tracing_losses`, if one listens."""
        record = _LOSS_TRACE.get()
        if record is not None:
            record(step, ids.detach(), loss.detach())

    @torch.no_grad()
    def judge_at(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor, ids: torch.Tensor, step: int,
                 kappa: float = 0.0) -> torch.Tensor:
        """The success test on fresh samples of the model at ``x``."""
        parts = [self.judge(self.sample_logits(model, x[sl], ids[sl], step), target[sl], kappa)
                 for sl in self.chunks(len(x), x.device)]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.bool, device=x.device)

    def judge(self, logits: torch.Tensor, target: torch.Tensor, kappa: float = 0.0) -> torch.Tensor:
        """The attacker's success test on ``(k, B, C)`` logits (see the module docstring)."""
        return self.judge_fn(logits, target, kappa)

    def uniform(self, x: torch.Tensor, ids: torch.Tensor, *labels: int) -> torch.Tensor:
        """Uniforms in [0, 1) shaped like ``x``, keyed per example (e.g. PGD's random start)."""
        with noise.keyed(self._row_keys(ids, noise.START, *labels)):
            return noise.uniform(x.shape, x.device, x.dtype)

    def params(self) -> dict:
        """The attack's own resolved parameters (as declared in the registry)."""
        return dict(self.settings)

    def __repr__(self) -> str:
        extra = [f"{k}={v!r}" for k, v in self.settings.items()]
        extra += [f"eot={self.eot}", f"success_test={self.success_test!r}", f"seed={self.seed}"]
        return f"{type(self).__name__}({', '.join(extra)})"

    @staticmethod
    def _check_inputs(x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise DefdropError(f"attack inputs must be a float tensor of shape (B, C, H, W), got {shape}")
        target = torch.as_tensor(target)
        if target.dim() != 1 or len(target) != len(x) or target.is_floating_point():
            raise DefdropError(f"attack targets must be {len(x)} integer labels, got shape {tuple(target.shape)}")
        if len(x) and not bool(torch.isfinite(x).all()):
            raise DefdropError("attack inputs contain NaN or infinite values")
        if len(x) and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
            raise DefdropError(f"attack inputs must lie in [0, 1], found [{float(x.min()):g}, {float(x.max()):g}]")
        if len(target) and int(target.min()) < 0:
            raise DefdropError(f"attack target {int(target.min())} is negative")
        return x.detach(), target.to(torch.int64)


def check_target_range(logits: torch.Tensor, target: torch.Tensor) -> None:
    """Targets must index the model's classes (checked once, at the first forward pass)."""
    if len(target) and int(target.max()) >= logits.shape[-1]:
        raise DefdropError(f"attack target {int(target.max())} is out of range for {logits.shape[-1]} classes")


def input_gradient(loss: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """d loss / d x only: ``autograd.grad`` skips the weight gradients an attack never uses."""
    (grad,) = torch.autograd.grad(loss, [x])
    return grad
