"""Your own model: an importable factory that builds an ``nn.Module`` giving logits, and a file of its weights.

``--model-factory mypkg.nets:build --weights net.pt``: the module ``mypkg.nets`` is imported (the text is never
evaluated), ``build`` is looked up in it and called with no arguments, and must return an ``nn.Module`` whose
``forward`` maps a batch of inputs (N, C, H, W) to logits (N, classes). The weights file is a state dict
(``torch.save(model.state_dict(), "net.pt")``; a file holding one under ``"state_dict"``, as defdrop checkpoints
and many training loops write, is read too), loaded with ``torch.load(weights_only=True)`` and then strictly:
every tensor the module has, named and shaped as it needs, none other, all finite. The model is returned in eval
mode (BatchNorm uses its running statistics, the model's own dropout is off; the defense is what stays random).

Both the factory's code and the weights file are the user's, so every way they can fail is a one-line
:class:`payoffs.errors.DefdropError` naming the factory or the file.
"""
from __future__ import annotations

import difflib
import importlib
import sys
import warnings
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn

from payoffs.device import for_inference
from payoffs.errors import DefdropError, exception_line, untrusted

FACTORY_FORM = "MODULE:CALLABLE (e.g. mypkg.nets:build)"
LIST_NAMES = 4
"""How many tensor or attribute names a one-line error lists before it says how many more there are."""


def _names(names: Iterable[str]) -> str:
    names = list(names)
    more = f" (and {len(names) - LIST_NAMES} more)" if len(names) > LIST_NAMES else ""
    return ", ".join(names[:LIST_NAMES]) + more


def parse_factory(spec: str) -> tuple[str, str]:
    """``"mypkg.nets:build"`` -> ``("mypkg.nets", "build")``; the callable may be dotted (``nets:Net.build``)."""
    module, sep, attr = str(spec).strip().partition(":")
    parts = module.split(".") + attr.split(".")
    if not sep or not all(p.isidentifier() for p in parts):
        raise DefdropError(f"model factory {spec!r} is not {FACTORY_FORM}")
    return module, attr


def factory_name(spec: str) -> str:
    """The callable's name, the default label of a model built by it: ``mypkg.nets:resnet8`` -> ``resnet8``."""
    return parse_factory(spec)[1].rsplit(".", 1)[-1]


def import_factory(spec: str, search_path: str | None = None) -> Callable[[], object]:
    """The callable named by ``spec``, its module imported from ``search_path`` (the directory the command was
    started in, put first on ``sys.path`` as ``python -m`` does) or the installed packages."""
    module_name, attr = parse_factory(spec)
    if search_path and search_path not in sys.path:
        sys.path.insert(0, search_path)
    try:
        obj: object = importlib.import_module(module_name)
    except BaseException as exc:  # noqa: BLE001 - the user's module may raise anything, SystemExit included
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise DefdropError(f"model factory {spec}: cannot import {module_name} ({exception_line(exc)})") from None
    for i, part in enumerate(attr.split(".")):
        if not hasattr(obj, part):
            owner = module_name if i == 0 else f"{module_name}:{'.'.join(attr.split('.')[:i])}"
            near = difflib.get_close_matches(part, [n for n in dir(obj) if not n.startswith("_")], n=LIST_NAMES)
            hint = f"; closest: {', '.join(near)}" if near else ""
            raise DefdropError(f"model factory {spec}: {owner} has no {part!r}{hint}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise DefdropError(f"model factory {spec}: {attr} is a {type(obj).__name__}, not a function or class")
    return obj  # type: ignore[return-value]


def build_module(spec: str, search_path: str | None = None) -> nn.Module:
    """Call the factory (no arguments); what it returns must be an ``nn.Module``."""
    factory = import_factory(spec, search_path)
    try:
        model = factory()
    except BaseException as exc:  # noqa: BLE001
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise DefdropError(f"model factory {spec} failed when called ({exception_line(exc)})") from None
    if not isinstance(model, nn.Module):
        raise DefdropError(f"model factory {spec} returned a {type(model).__name__}, not a torch.nn.Module")
    if next(model.parameters(), None) is None:
        raise DefdropError(f"model factory {spec} returned a module without parameters; it has nothing to load")
    return model


def read_state_dict(path: str | Path, data: bytes | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a weights file (``torch.load(weights_only=True)``): a state dict, or a table holding one
    under ``"state_dict"``. Untrusted bytes: anything else is a one-line ``DefdropError`` naming the file.
    ``data``: the file's bytes, read elsewhere (a cluster worker gets them instead of the file)."""
    import io

    path = Path(path)
    if data is None and path.is_dir():
        raise DefdropError(f"{path}: is a directory, not a weights file")
    if data is None and not path.is_file():
        raise DefdropError(f"{path}: weights file not found")
    with untrusted(f"{path}: not a weights file (a state dict saved by torch.save)"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                payload = torch.load(path if data is None else io.BytesIO(data), map_location="cpu",
                                     weights_only=True)
        except Exception as exc:
            if "weights_only" not in str(exc).lower():
                raise
            raise DefdropError(f"{path}: not a state dict (it holds objects that weights_only loading refuses; "
                               "save model.state_dict())") from None
        state = payload.get("state_dict", payload) if isinstance(payload, dict) else payload
        if not isinstance(state, dict):
            raise DefdropError(f"{path}: holds a {type(state).__name__}, not a state dict (save model.state_dict())")
        bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
        if bad:
            raise DefdropError(f"{path}: entry {bad[0]!r} is a {type(state[bad[0]]).__name__}, not a tensor; a state "
                               "dict maps names to tensors (save model.state_dict())")
        return dict(state)


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(str(d) for d in t.shape) + ")"


def load_state(model: nn.Module, state: dict[str, torch.Tensor], where: str, spec: str) -> None:
    """Load ``state`` into ``model`` strictly, after checking names, shapes, dtypes and values one by one."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    if missing:
        raise DefdropError(f"{where}: lacks tensor(s) {_names(missing)} of the model built by {spec}; are these "
                           "the weights of that model?")
    extra = [k for k in state if k not in expected]
    if extra:
        raise DefdropError(f"{where}: has tensor(s) {_names(extra)} that the model built by {spec} does not")
    for name, want in expected.items():
        got = state[name]
        if got.shape != want.shape:
            raise DefdropError(f"{where}: tensor {name} has shape {_shape(got)}; the model built by {spec} needs "
                               f"{_shape(want)}")
        if want.is_floating_point() != got.is_floating_point() or got.is_complex():
            raise DefdropError(f"{where}: tensor {name} has dtype {got.dtype}; the model built by {spec} needs "
                               f"{want.dtype}")
        if got.is_floating_point():
            bad = int((~torch.isfinite(got)).sum())
            if bad:
                raise DefdropError(f"{where}: tensor {name} holds {bad} NaN or infinite value(s) of {got.numel()}")
    with untrusted(f"{where}: cannot be loaded into the model built by {spec}"):
        model.load_state_dict(state, strict=True)


def check_finite(model: nn.Module, what: str) -> None:
    """Every parameter and buffer (non-persistent ones included) holds finite values."""
    for kind, named in (("parameter", model.named_parameters()), ("buffer", model.named_buffers())):
        for name, tensor in named:
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise DefdropError(f"{what}: {kind} {name} holds NaN or infinite values")


def load_user_model(spec: str, weights: str | Path, device: torch.device | str = "cpu",
                    search_path: str | None = None, data: bytes | None = None) -> nn.Module:
    """Build the model with the factory ``spec``, load the state dict in ``weights`` (or ``data``, that file's
    bytes), check it; eval mode."""
    model = build_module(spec, search_path)
    load_state(model, read_state_dict(weights, data), str(weights), spec)
    check_finite(model, f"model built by {spec} with {weights}")
    return for_inference(model, device)
