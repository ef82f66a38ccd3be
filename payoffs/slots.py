"""A defense placed right after a named layer of any model, and the split that makes defender samples cheap.

:class:`DefendedModel` applies a defense module to the output of the layer ``slot`` (a name from
``named_modules()``) of a base model; the base's weights are shared, not copied. All the randomness of our
defenders lives in that slot, so everything the base computes *before* it is deterministic for a given input.
Where the model allows it, the base is traced (``torch.fx``) and cut in two:

* the **trunk**: every operation that does not depend on the slot's output (the slot layer included); it runs
  once per input and returns the values the rest needs (the slot's output and any skip connections);
* the **head**: the defense and every operation after it; :func:`payoffs.sampling.sample_logits` runs it on k
  copies of the trunk's values, so k defender samples cost one trunk pass plus k head passes, and autograd sums
  the k head gradients into one backward pass through the trunk.

The split is checked on the first batch it sees (trunk deterministic, every boundary value a tensor with the
batch dimension first, head(trunk(x)) equal to the base with an identity defense, and k copies equal to k
evaluations); a model that cannot be traced or fails a check runs whole, with the defense applied by a forward
hook, and samplers fall back to repeating the input k times (``split_reason`` says why).
"""
from __future__ import annotations

import contextvars
import difflib
import weakref
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx
from torch import nn

from payoffs.errors import DefdropError

PROBE_ROWS = 2
PROBE_RTOL, PROBE_ATOL = 1e-4, 1e-5
"""How closely head(trunk(x)) must match the whole model on the probe batch (float round-off of another kernel
order, not a different function)."""


def slot_names(model: nn.Module) -> list[str]:
    """The names a defense can follow: every named submodule."""
    return [name for name, _ in model.named_modules() if name]


def check_slot(model: nn.Module, slot: str, name: str = "the model") -> str:
    """``slot`` if it names a submodule of ``model``; otherwise a one-line error with the closest names (``name``:
    how the message calls the model)."""
    names = slot_names(model)
    if slot not in names:
        near = difflib.get_close_matches(slot, names, n=4, cutoff=0.3)
        hint = f"; closest: {', '.join(near)}" if near else f"; layers: {', '.join(names[:12])}"
        raise DefdropError(f"no layer named {slot!r} in {name}{hint}")
    return slot


def default_slot(model: nn.Module) -> str | None:
    """Where a model puts its defense when none is named: its ``defense_slot`` attribute (the paper CNN's)."""
    return getattr(model, "defense_slot", None)


def _apply(defense: nn.Module, h: torch.Tensor) -> torch.Tensor:
    return defense(h)


class _SlotTracer(torch.fx.Tracer):
    """Keeps the slot layer a single node, even when it is a container."""

    def __init__(self, slot: str) -> None:
        super().__init__()
        self.slot = slot

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return qualname == self.slot or super().is_leaf_module(m, qualname)


@dataclass
class Split:
    """The traced trunk (``x -> boundary values``) and head (``(defense, *boundary) -> logits``) of one base/slot."""

    trunk: torch.fx.GraphModule
    head: torch.fx.GraphModule
    n_boundary: int
    checked: bool = False
    reason: str = ""


def _trace_split(base: nn.Module, slot: str) -> tuple[Split | None, str]:
    try:
        tracer = _SlotTracer(slot)
        graph = tracer.trace(base)
        gm = torch.fx.GraphModule(base, graph)
    except Exception as exc:  # noqa: BLE001 - any tracing failure means "no split", with the reason
        return None, f"the model cannot be traced by torch.fx ({type(exc).__name__}: {str(exc).splitlines()[0][:80]})"
    nodes = list(gm.graph.nodes)
    slots = [n for n in nodes if n.op == "call_module" and n.target == slot]
    if len(slots) != 1:
        return None, f"layer {slot!r} is called {len(slots)} times in the forward pass"
    slot_node = slots[0]
    placeholders = [n for n in nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        return None, "the model's forward takes more than one input"
    output = next(n for n in nodes if n.op == "output")
    dependent: set[torch.fx.Node] = set()
    for n in nodes:
        if n is slot_node or n.op == "output":
            continue
        if any(a is slot_node or a in dependent for a in n.all_input_nodes):
            dependent.add(n)
    trunk_nodes = [n for n in nodes if n not in dependent and n.op != "output"]
    boundary = [n for n in trunk_nodes
                if any(u in dependent or u is output for u in n.users) and n.op != "placeholder"]
    if slot_node not in boundary:
        boundary.append(slot_node)
    if any(n in output.all_input_nodes for n in trunk_nodes if n is not slot_node):
        return None, "the model's output does not pass through the slot"

    trunk_graph = torch.fx.Graph()
    env: dict[torch.fx.Node, Any] = {}
    for n in trunk_nodes:
        env[n] = trunk_graph.node_copy(n, lambda a: env[a])
    trunk_graph.output(tuple(env[b] for b in boundary))

    head_graph = torch.fx.Graph()
    defense = head_graph.placeholder("defense")
    henv: dict[torch.fx.Node, Any] = {}
    for i, b in enumerate(boundary):
        henv[b] = head_graph.placeholder(f"boundary_{i}")
    henv[slot_node] = head_graph.call_function(_apply, (defense, henv[slot_node]))
    for n in nodes:
        if n in dependent:
            henv[n] = head_graph.node_copy(n, lambda a: henv[a])
    head_graph.output(torch.fx.map_arg(output.args[0], lambda a: henv[a]))
    try:
        trunk = torch.fx.GraphModule(gm, trunk_graph)
        head = torch.fx.GraphModule(gm, head_graph)
    except Exception as exc:  # noqa: BLE001
        return None, f"the traced graph cannot be split ({type(exc).__name__})"
    return Split(trunk, head, len(boundary)), ""


_SPLITS: "weakref.WeakKeyDictionary[nn.Module, dict[str, tuple[Split | None, str]]]" = weakref.WeakKeyDictionary()
_ACTIVE: contextvars.ContextVar[dict[int, nn.Module] | None] = contextvars.ContextVar("defdrop_slot", default=None)
_HOOKED: "weakref.WeakKeyDictionary[nn.Module, bool]" = weakref.WeakKeyDictionary()


def _split_for(base: nn.Module, slot: str) -> tuple[Split | None, str]:
    per_base = _SPLITS.setdefault(base, {})
    if slot not in per_base:
        per_base[slot] = _trace_split(base, slot)
    return per_base[slot]


def _hook(module: nn.Module, inputs: tuple, output: torch.Tensor):
    active = _ACTIVE.get()
    if active is not None and id(module) in active:
        return active[id(module)](output)
    return None


class DefendedModel(nn.Module):
    """``base`` with ``defense`` applied to the output of its layer ``slot`` (weights shared with ``base``)."""

    def __init__(self, base: nn.Module, defense: nn.Module, slot: str) -> None:
        super().__init__()
        self.base = base
        self.defense = defense
        self.slot = check_slot(base, slot)
        object.__setattr__(self, "_slot_module", dict(base.named_modules())[slot])  # not a child: no double listing

    # ------------------------------------------------------------------ the split
    @property
    def split(self) -> Split | None:
        split, _ = _split_for(self.base, self.slot)
        return None if split is None or split.reason else split

    @property
    def split_reason(self) -> str:
        split, reason = _split_for(self.base, self.slot)
        return reason or (split.reason if split is not None else "")

    def _checked_split(self, x: torch.Tensor) -> Split | None:
        split = self.split
        if split is None or split.checked:
            return split
        split.reason = _check_split(self.base, self.slot, split, x[:PROBE_ROWS])
        split.checked = True
        return None if split.reason else split

    def trunk(self, x: torch.Tensor) -> tuple[torch.Tensor, ...] | None:
        """The values the head needs, computed once per input; ``None`` when the model has no usable split."""
        split = self._checked_split(x)
        return None if split is None else tuple(split.trunk(x))

    def head(self, boundary: tuple[torch.Tensor, ...]) -> torch.Tensor:
        split = self.split
        assert split is not None, "head() needs a split; call trunk() first"
        return split.head(self.defense, *boundary)

    # ------------------------------------------------------------------ whole model
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        boundary = self.trunk(x)
        if boundary is not None:
            return self.head(boundary)
        return self.run_whole(x)

    def run_whole(self, x: torch.Tensor) -> torch.Tensor:
        """The base with the defense applied by a forward hook on the slot layer (no split needed)."""
        if not _HOOKED.get(self._slot_module):
            self._slot_module.register_forward_hook(_hook)
            _HOOKED[self._slot_module] = True
        active = dict(_ACTIVE.get() or {})
        active[id(self._slot_module)] = self.defense
        token = _ACTIVE.set(active)
        try:
            return self.base(x)
        finally:
            _ACTIVE.reset(token)

    def extra_repr(self) -> str:
        return f"slot={self.slot!r}"


@torch.no_grad()
def _check_split(base: nn.Module, slot: str, split: Split, x: torch.Tensor) -> str:
    """'' when the split reproduces the whole model on ``x``; otherwise why not."""
    if len(x) < 1:
        return ""
    try:
        first = tuple(split.trunk(x))
        second = tuple(split.trunk(x))
    except Exception as exc:  # noqa: BLE001
        return f"the trunk fails on its own ({type(exc).__name__})"
    for a, b in zip(first, second):
        if not isinstance(a, torch.Tensor) or a.dim() == 0 or a.shape[0] != len(x):
            return "a value crossing the slot is not a batch tensor (e.g. a size computed before the slot)"
        if not torch.equal(a, b):
            return "the layers before the slot are random (they cannot be shared between defender samples)"
    whole = DefendedModel(base, nn.Identity(), slot).run_whole(x)
    try:
        once = split.head(nn.Identity(), *first)
        twice = split.head(nn.Identity(), *(t.repeat(2, *([1] * (t.dim() - 1))) for t in first))
    except Exception as exc:  # noqa: BLE001
        return f"the head fails on repeated inputs ({type(exc).__name__})"
    if not isinstance(once, torch.Tensor) or once.shape != whole.shape:
        return "the split's output differs in shape from the model's"
    if not torch.allclose(once, whole, rtol=PROBE_RTOL, atol=PROBE_ATOL):
        return "the split's output differs from the model's"
    if twice.shape[0] != 2 * len(x) or not torch.allclose(twice.view(2, *once.shape), once.expand(2, *once.shape),
                                                          rtol=PROBE_RTOL, atol=PROBE_ATOL):
        return "the layers after the slot mix examples of a batch"
    return ""


def with_defense(model: nn.Module, defense: nn.Module, slot: str | None = None) -> DefendedModel:
    """The same weights (shared, not copied) with ``defense`` right after layer ``slot`` (default: the model's own
    ``defense_slot``, the paper CNN's); ``model`` is unchanged. A :class:`DefendedModel` is re-wrapped."""
    base = model.base if isinstance(model, DefendedModel) else model
    if slot is None:
        slot = model.slot if isinstance(model, DefendedModel) else default_slot(base)
    if slot is None:
        raise DefdropError("the model names no defense slot; name the layer the defense follows (slot)")
    return DefendedModel(base, defense, slot)


def undefended(model: nn.Module) -> nn.Module:
    """The base model without any defense."""
    return model.base if isinstance(model, DefendedModel) else model

