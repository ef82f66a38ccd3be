"""Defense wrappers the audit puts in the defense slot: one draw frozen, and a probe of the randomness the attack
actually meets.
"""
from __future__ import annotations

import torch
from torch import nn

from payoffs import noise
from payoffs.defenses import is_deterministic


def constant_keys(key: int, rows: int, device: torch.device) -> torch.Tensor:
    return torch.full((rows,), int(key) & noise.MASK, dtype=torch.int64, device=device)


class FrozenDefense(nn.Module):
    """``defense`` with one draw of its randomness replayed at every call and for every example (check 2).

    Every call draws from the same key, so every example meets the same uniforms: one sampled dropout mask for
    the whole attack (for SAP, the same uniforms, hence a deterministic function of the activations). The result
    is a deterministic network, and is declared so (k EOT samples of it cost one).
    """

    deterministic = True

    def __init__(self, defense: nn.Module, key: int) -> None:
        super().__init__()
        self.defense = defense
        self.key = int(key)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        with noise.keyed(constant_keys(self.key, h.shape[0], h.device)):
            return self.defense(h)

    def extra_repr(self) -> str:
        return f"key={self.key}"


def training_modules(*modules: nn.Module) -> int:
    """How many modules (children included) are in training mode."""
    return sum(int(m.training) for module in modules for m in module.modules())


class Probe(nn.Module):
    """``defense`` as it is, plus a look at its first ``calls`` calls (check 1, "randomness kept in the attack").

    At each probed call the defense is drawn again on the same activations with other keys (in its own keyed
    block and a forked RNG, so the attack's own draws are untouched and its result is the same as without the
    probe; in the call's own autograd mode, since a defense may behave differently under it) and the rows whose
    output changed are counted; the number of modules of ``watch`` in training mode is
    recorded too (an attack that switched modes would show here).
    """

    def __init__(self, defense: nn.Module, calls: int, seed: int, watch: tuple[nn.Module, ...] = ()) -> None:
        super().__init__()
        self.defense = defense
        self.calls = int(calls)
        self.seed = int(seed)
        self.watch = watch
        self.changed = 0
        self.rows = 0
        self.probed = 0
        self.training_seen: list[int] = []

    @property
    def deterministic(self) -> bool:
        return is_deterministic(self.defense)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = self.defense(h)
        if self.probed < self.calls:
            ids = torch.arange(h.shape[0], device=h.device)
            keys = noise.row_keys(self.seed, ids, noise.AUDIT, self.probed)
            devices = [h.device] if h.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices), noise.keyed(keys):
                torch.manual_seed(self.seed + self.probed)
                again = self.defense(h.detach()).detach()
            changed = (again != out.detach()).flatten(1).any(1)
            self.changed += int(changed.sum())
            self.rows += int(changed.numel())
            self.probed += 1
            self.training_seen.append(training_modules(self.defense, *self.watch))
        return out
