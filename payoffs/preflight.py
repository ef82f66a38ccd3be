"""Checks before any cell runs, so that a model that cannot be evaluated fails in one line, not in a worker.

For each model and its test data: the model takes a few test inputs and returns logits, one per class of the data
(a tensor (N, K) of finite floats, K the data's number of classes); its defense slot (``--defense-at``, else the
model's own) names a layer that runs once per forward pass; and every defender strategy runs at that slot and
keeps the logits' shape.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from payoffs.errors import DefdropError, exception_line
from payoffs.slots import check_slot, slot_names, with_defense
from payoffs.sources import ModelSource, TestData
from payoffs.strategy import DefenderStrategy

PROBE_IMAGES = 2
"""Test inputs the checks run the model on."""
LIST_LAYERS = 12


def _shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def effective_slot(source: ModelSource, model: nn.Module, slot: str | None) -> str:
    """The layer the defense follows: ``slot``, else the model's own; checked against the model's layers."""
    label = source.description.label
    chosen = slot or source.default_slot
    if chosen is None:
        names = slot_names(model)
        more = f" ... ({len(names)} in all)" if len(names) > LIST_LAYERS else ""
        raise DefdropError(f"model {label} names no defense slot: name the layer the defense follows (slot; its "
                           f"layers: {', '.join(names[:LIST_LAYERS])}{more})")
    return check_slot(model, chosen, f"model {label}")


@torch.no_grad()
def check_logits(model: nn.Module, x: torch.Tensor, num_classes: int, label: str, data_name: str) -> None:
    """``model(x)`` is a finite float tensor (len(x), num_classes)."""
    try:
        out = model(x)
    except Exception as exc:  # noqa: BLE001 - the user's forward may raise anything
        raise DefdropError(f"model {label} fails on the {data_name} test images of shape {_shape(x.shape[1:])} "
                           f"({exception_line(exc)})") from None
    if not isinstance(out, torch.Tensor):
        raise DefdropError(f"model {label} returns a {type(out).__name__}, not a tensor of logits (N, classes); "
                           "wrap it so that forward returns the logits")
    if out.dim() != 2 or out.shape[0] != len(x) or not out.is_floating_point():
        raise DefdropError(f"model {label} returns a {out.dtype} tensor of shape {_shape(out.shape)} for {len(x)} "
                           f"images, not logits (N, classes)")
    if out.shape[1] != num_classes:
        raise DefdropError(f"model {label} gives {out.shape[1]} outputs but the {data_name} test data have "
                           f"{num_classes} classes (labels 0..{num_classes - 1}); a file whose test images miss "
                           "some classes can say how many there are (num_classes)")
    if not bool(torch.isfinite(out).all()):
        raise DefdropError(f"model {label} returns NaN or infinite logits on the {data_name} test images")


@torch.no_grad()
def check_called_once(model: nn.Module, slot: str, x: torch.Tensor, label: str) -> None:
    """The slot layer runs exactly once per forward pass: a layer the forward never calls would leave the model
    undefended, and one it calls several times (a shared ``nn.ReLU``) would put the defense after every call."""
    calls = []
    handle = dict(model.named_modules())[slot].register_forward_hook(lambda *_: calls.append(1))
    try:
        model(x)
    finally:
        handle.remove()
    if len(calls) != 1:
        what = "never runs in" if not calls else f"runs {len(calls)} times in"
        raise DefdropError(f"layer {slot} {what} the forward pass of model {label}; the defense follows one layer "
                           "that runs once (give each use of a shared module its own name)")


def check_model(source: ModelSource, data: TestData, slot: str | None = None,
                defenders: Sequence[DefenderStrategy | tuple[str, nn.Module]] = (),
                device: torch.device | str = "cpu") -> str:
    """Run the checks of this module for one model; returns the effective defense slot. ``defenders``:
    strategies, or ``(label, module)`` pairs as :func:`analysis.gradvar.build_defenders` gives them."""
    split = data.load_test()
    model = source.load(device)
    label = source.description.label
    x = split.x[:PROBE_IMAGES].to(device)
    check_logits(model, x, split.num_classes, label, data.name)
    where = effective_slot(source, model, slot)
    check_called_once(model, where, x, label)
    for defender in defenders:
        name, module = defender if isinstance(defender, tuple) else (defender.id, defender.module())
        try:
            with torch.no_grad():
                out = with_defense(model, module, where)(x)
        except Exception as exc:  # noqa: BLE001
            raise DefdropError(f"defense {name} after layer {where} of model {label} fails "
                               f"({exception_line(exc)})") from None
        if not isinstance(out, torch.Tensor) or out.shape != (len(x), split.num_classes):
            raise DefdropError(f"defense {name} after layer {where} of model {label} changes the logits' shape")
    return where
