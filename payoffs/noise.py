"""Counter-based randomness for defenders and attacks: a draw is a function of (seed, purpose, example, step, copy,
unit), never of how examples are batched, so a cell gives the same table at any batch size, ``--jobs`` or device
split.

Every random number is a 32-bit integer hash (Thomas Mueller's ``hash32``: two rounds of xor-shift-multiply with
the constant ``0x45d9f3b``, which keeps every product below 2^63 in int64 arithmetic on CPU and CUDA alike) of a
per-row key and a per-unit counter, turned into a uniform in [0, 1) on a 2^-24 grid. A sampler sets the per-row
keys for one forward pass with :func:`keyed`; a defense asks for uniforms with :func:`uniform`. Without keys (a
plain ``model(x)`` call by a user) :func:`uniform` falls back to ``torch.rand`` and the global RNG.

Row keys are built from the run's seed and labels with :func:`row_keys` (``labels`` say what the draw is for:
:data:`ATTACK`, :data:`EVAL`, ... and which step), and the k defender samples of one input (EOT copies, the M
evaluation samples) get :func:`copies` of it, laid out sample-major (copy c of row b at ``c * B + b``).
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Iterator

import torch

from payoffs.errors import DefdropError

MASK = 0xFFFFFFFF
_MULT = 0x45D9F3B
_GOLDEN = 0x9E3779B9
_UNIFORM_BITS = 24

# Purposes (the first label of a row key): what a draw is for.
ATTACK = 1
EVAL = 2
ACCURACY = 3
GRADIENTS = 4
START = 5
AUDIT = 6


def mix(x: torch.Tensor) -> torch.Tensor:
    """``hash32`` of int64 values in [0, 2^32), elementwise; the result is in [0, 2^32)."""
    x = x ^ (x >> 16)
    x = (x * _MULT) & MASK
    x = x ^ (x >> 16)
    x = (x * _MULT) & MASK
    return x ^ (x >> 16)


def mix_int(x: int) -> int:
    """:func:`mix` on one Python integer (the same function, bit for bit)."""
    x &= MASK
    x ^= x >> 16
    x = (x * _MULT) & MASK
    x ^= x >> 16
    x = (x * _MULT) & MASK
    return x ^ (x >> 16)


def combine_int(key: int, value: int) -> int:
    """A new key from ``key`` and one more label."""
    return mix_int((key & MASK) ^ mix_int((value + _GOLDEN) & MASK))


def combine(keys: torch.Tensor, value: int | torch.Tensor) -> torch.Tensor:
    """:func:`combine_int` elementwise: ``keys`` (int64 tensor) with a label (an int or a tensor of them)."""
    if isinstance(value, int):
        return mix(keys ^ mix_int((value + _GOLDEN) & MASK))
    return mix(keys ^ mix((value.to(torch.int64) + _GOLDEN) & MASK))


def base_key(seed: int, *labels: int) -> int:
    key = mix_int(seed & MASK)
    for label in labels:
        key = combine_int(key, int(label))
    return key


def row_keys(seed: int, ids: torch.Tensor, *labels: int) -> torch.Tensor:
    """One key per example: from the seed, the labels (purpose, step, ...) and the example's id in the run."""
    return combine(torch.full(ids.shape, base_key(seed, *labels), dtype=torch.int64, device=ids.device),
                   ids.to(torch.int64))


GROUP_SHIFT = 32
"""Several runs in one batch (fused cells): an example's id is ``group << GROUP_SHIFT | id within its run``."""


def group_ids(group: int, ids: torch.Tensor) -> torch.Tensor:
    """The ids of run ``group``'s examples in a batch that holds several runs."""
    return (int(group) << GROUP_SHIFT) | ids.to(torch.int64)


def split_ids(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(group, id within its run)`` of each id made by :func:`group_ids`."""
    return ids >> GROUP_SHIFT, ids & MASK


def seeded_row_keys(seeds: torch.Tensor, ids: torch.Tensor, *labels: int) -> torch.Tensor:
    """:func:`row_keys` with a seed per row: row i's key is ``row_keys(seeds[i], ids[i:i+1], *labels)``, bit for
    bit (each row of a fused batch draws what it would draw in its own run)."""
    keys = mix(seeds.to(torch.int64) & MASK)
    for label in labels:
        keys = combine(keys, int(label))
    return combine(keys, ids.to(torch.int64))


def copies(keys: torch.Tensor, k: int) -> torch.Tensor:
    """Keys of k independent samples per row, sample-major: ``(k * B,)`` with copy c of row b at ``c * B + b``."""
    if k == 1:
        return keys
    c = torch.arange(k, dtype=torch.int64, device=keys.device).repeat_interleave(len(keys))
    return combine(keys.repeat(k), c)


@dataclass
class _Keys:
    rows: torch.Tensor
    groups: torch.Tensor | None = None
    calls: int = 0
    unit_cache: dict = field(default_factory=dict)


_CURRENT: ContextVar[_Keys | None] = ContextVar("defdrop_noise_keys", default=None)


@contextmanager
def keyed(rows: torch.Tensor | None, groups: torch.Tensor | None = None) -> Iterator[None]:
    """Within the block, :func:`uniform` draws from ``rows`` (one key per batch row); ``None`` does nothing.
    ``groups``: which run of a fused batch each row belongs to (read by defenses with :func:`row_groups`)."""
    if rows is None:
        yield
        return
    token = _CURRENT.set(_Keys(rows, groups))
    try:
        yield
    finally:
        _CURRENT.reset(token)


def active() -> bool:
    return _CURRENT.get() is not None


def row_groups() -> torch.Tensor | None:
    """The run (group) of each row of the current keyed block, or ``None`` outside a fused batch."""
    state = _CURRENT.get()
    return None if state is None else state.groups


def _unit_keys(state: _Keys, units: int, device: torch.device) -> torch.Tensor:
    cached = state.unit_cache.get((units, device))
    if cached is None:
        cached = mix((torch.arange(units, dtype=torch.int64, device=device) + _GOLDEN) & MASK)
        state.unit_cache[(units, device)] = cached
    return cached


def uniform(shape: tuple[int, ...] | torch.Size, device: torch.device | str, dtype: torch.dtype = torch.float32,
            ) -> torch.Tensor:
    """Uniforms in [0, 1) of ``shape`` (first dimension: the batch rows); keyed inside :func:`keyed`.

    Each call inside one :func:`keyed` block is a new draw (a call counter enters the key), so a module that
    draws twice, or two defenses in one network, get independent numbers, the same at every batch size.
    """
    state = _CURRENT.get()
    if state is None:
        return torch.rand(shape, device=device, dtype=dtype)
    rows = int(shape[0])
    if rows != state.rows.numel():
        raise DefdropError(f"a randomized defense saw {rows} rows but the batch has {state.rows.numel()}: "
                           "the defense slot must keep the batch dimension first")
    units = 1
    for s in shape[1:]:
        units *= int(s)
    row = combine(state.rows.to(device), state.calls)
    state.calls += 1
    bits = mix(row[:, None] ^ _unit_keys(state, units, torch.device(device))[None, :])
    return ((bits >> (32 - _UNIFORM_BITS)).to(dtype) * (2.0 ** -_UNIFORM_BITS)).view(tuple(shape))
