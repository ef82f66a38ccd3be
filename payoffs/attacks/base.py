"""The shared base of the attacks: batching, device, seeding, EOT sampling, success tests and distortions.

Stochastic white-box semantics (paper section 3.2): the attacker knows the defense and its rate, and every
gradient is taken on a freshly sampled sub-network. ``eot = k`` averages k independent samples per step
(Expectation over Transformation, Athalye et al. 2018, arXiv:1802.00420): the batch is repeated k times along
dim 0 and sent through the model in *one* forward pass, so the defense draws k independent masks per input.

The base never calls ``model.eval()`` or ``model.train()``: models arrive in eval mode and the defense slot
is random in every mode; switching modes would silently turn training dropout on (or a defense off).

How the attacker judges success while it searches is part of its strategy (``success_test``):

* ``single``: the sub-network sampled at that step (the first of the k EOT samples) says target, with
  margin kappa: ``max_{i != t} Z_i - Z_t < -kappa`` (the paper's protocol);
* ``expected``: the mean of the k samples' logits says target with margin kappa.

On a deterministic model both tests coincide. Against a random one they decide the numbers: on the paper's
CNN (mnist-5k, r = 0.3) with test dropout r' = 0.5, C&W 10 x 100 with ``single`` believed it succeeded on all
18 (image, target) pairs of a check, while its examples won only 11% of 100 fresh dropout draws on average;
``eot = 8`` with ``expected`` raised that to 34%.
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from payoffs.attacks.objectives import cw_margin
from payoffs.errors import DefdropError

SUCCESS_TESTS = ("single", "expected")
CPU_FORWARD_IMAGES = 128
"""Images per forward pass on CPU: on a 2-core machine the paper's CNN runs forward+backward about twice as
fast per image at 64-128 images as at 900 (activations stay in cache), so attacks cut their active batch
into passes of this many images (EOT copies included). On CUDA the whole active batch goes at once."""
L0_TOLERANCE = 1e-5
"""A feature counts as changed when it moved by more than this; it is far below one grey level (1/255) and
above the float32 round-off of C&W's tanh change of variables, which would otherwise count every pixel."""


@dataclass
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


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < minimum:
        raise DefdropError(f"{name} {value!r} must be an integer >= {minimum}")
    return int(value)


def _check_float(name: str, value: object, low: float, high: float = math.inf, *, low_open: bool = False,
                 high_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DefdropError(f"{name} {value!r} must be a finite number")
    value = float(value)
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        lo, hi = ("(" if low_open else "["), (")" if high_open or high == math.inf else "]")
        raise DefdropError(f"{name} {value} must be in {lo}{low:g}, {high:g}{hi}")
    return value


def _check_bool(name: str, value: object) -> bool:
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    raise DefdropError(f"{name} {value!r} must be true or false")


class Attack:
    """A targeted attack: ``attack(model, x, target) -> AttackResult`` for a whole batch.

    ``eot``: samples of the randomized model averaged per gradient step (1 = the paper's single sample).
    ``success_test``: ``single`` or ``expected`` (see the module docstring).
    ``seed``: when given, ``__call__`` runs inside ``torch.random.fork_rng`` seeded with it, so the run is
    reproducible and the caller's global RNG state is left untouched; ``None`` draws from the global RNG.
    ``batch_size``: examples attacked at once (before the k-fold EOT repetition); ``None`` is all of them.
    Within a batch, the model sees passes of at most :data:`CPU_FORWARD_IMAGES` images on CPU (see
    :meth:`chunks`), which changes the speed, not the result. A one-image probe before the attack checks that
    the targets index the model's classes.
    """

    name: str = ""

    def __init__(self, *, eot: int = 1, success_test: str = "single", seed: int | None = None,
                 batch_size: int | None = None) -> None:
        self.eot = _check_int("eot", eot, 1)
        if success_test not in SUCCESS_TESTS:
            raise DefdropError(f"success test {success_test!r} must be one of {', '.join(SUCCESS_TESTS)}")
        self.success_test = success_test
        self.seed = None if seed is None else _check_int("seed", seed, 0)
        self.batch_size = None if batch_size is None else _check_int("batch size", batch_size, 1)

    # ------------------------------------------------------------------ public entry point
    def __call__(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> AttackResult:
        """Attack every ``(x_i, target_i)``; returns results on ``x``'s device."""
        x, target = self._check_inputs(x, target)
        out_device = x.device
        try:
            device = next(model.parameters()).device
        except StopIteration:
            device = x.device
        x, target = x.to(device), target.to(device)
        fork = (torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])
                if self.seed is not None else nullcontext())
        with fork, torch.enable_grad():
            if self.seed is not None:
                torch.manual_seed(self.seed)
            if len(x):
                with torch.no_grad():
                    check_target_range(model(x[:1]), target)
            step = self.batch_size or max(1, len(x))
            parts = [self._run(model, x[i:i + step], target[i:i + step]) for i in range(0, len(x), step)]
        if parts:
            x_adv = torch.cat([p[0] for p in parts]).detach().clamp(0.0, 1.0)
            success = torch.cat([p[1] for p in parts]).bool()
            iterations = torch.cat([p[2] for p in parts]).to(torch.int64)
        else:
            x_adv, success = x.clone(), torch.zeros(0, dtype=torch.bool, device=device)
            iterations = torch.zeros(0, dtype=torch.int64, device=device)
        l2, l0, linf = distortions(x_adv, x)
        return AttackResult(*(t.to(out_device) for t in (x_adv, success, l2, l0, linf, iterations)))

    def _run(self, model: nn.Module, x: torch.Tensor,
             target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Attack one chunk; returns ``(x_adv, success, iterations)``. Subclasses implement this."""
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers for subclasses
    def sample_logits(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``eot`` independent samples of the model at ``x`` in one pass: shape ``(k, B, C)``."""
        k, b = self.eot, len(x)
        inputs = x if k == 1 else x.repeat(k, *([1] * (x.dim() - 1)))
        return model(inputs).view(k, b, -1)

    def chunks(self, n: int, device: torch.device) -> list[slice]:
        """Slices of the ``n`` active examples sent through the model per pass (see :data:`CPU_FORWARD_IMAGES`)."""
        size = n if device.type != "cpu" else max(1, CPU_FORWARD_IMAGES // self.eot)
        return [slice(i, min(n, i + size)) for i in range(0, n, max(1, size))]

    def loss_gradient(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor,
                      loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """``d loss_fn(logits (k, B, C), target) / dx``, one fresh sample set per pass of :meth:`chunks`."""
        grads = []
        for sl in self.chunks(len(x), x.device):
            xv = x[sl].detach().requires_grad_(True)
            grads.append(input_gradient(loss_fn(self.sample_logits(model, xv), target[sl]), xv))
        return torch.cat(grads) if grads else torch.zeros_like(x)

    @torch.no_grad()
    def judge_at(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor, kappa: float = 0.0) -> torch.Tensor:
        """The success test on fresh samples of the model at ``x``."""
        parts = [self.judge(self.sample_logits(model, x[sl]), target[sl], kappa)
                 for sl in self.chunks(len(x), x.device)]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.bool, device=x.device)

    def judge(self, logits: torch.Tensor, target: torch.Tensor, kappa: float = 0.0) -> torch.Tensor:
        """The attacker's success test on ``(k, B, C)`` logits (see the module docstring)."""
        z = logits[0] if self.success_test == "single" else logits.mean(0)
        return cw_margin(z.detach(), target) < -kappa

    def params(self) -> dict:
        """The attack's own parameters (those a strategy id lists)."""
        return {}

    def __repr__(self) -> str:
        extra = [f"{k}={v!r}" for k, v in self.params().items()]
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
