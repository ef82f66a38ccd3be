"""defdrop checkpoints: weights plus what rebuilds the model, loadable with ``weights_only=True``."""
from __future__ import annotations

import hashlib
import inspect
import math
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from payoffs.device import for_inference
from payoffs.errors import DefdropError, untrusted
from payoffs.io import atomic_write_bytes  # noqa: F401  (re-exported: older code imports it from here)
from payoffs.models import ARCHITECTURES, DROPOUT_LAYERS, PaperCNN

FORMAT = "defdrop-checkpoint"
VERSION = 1


def save_checkpoint(path: str | Path, model: PaperCNN, meta: dict[str, Any]) -> None:
    """Save ``{"format", "version", "config", "meta", "state_dict"}`` atomically (tensors moved to CPU)."""
    import io

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "version": VERSION, "config": model.config(), "meta": dict(meta),
               "state_dict": state}
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> tuple[PaperCNN, dict[str, Any]]:
    """Rebuild the model from a checkpoint (``torch.load(weights_only=True)``); returns (model in eval mode, meta).

    The file is untrusted bytes: every way it can be malformed (not a torch file, another pickle, a wrong
    header, a config or state dict of the wrong type or shape, NaN or infinite weights) is a one-line
    :class:`DefdropError` naming the file, never another exception.
    """
    path = Path(path)
    if path.is_dir():
        raise DefdropError(f"{path}: is a directory, not a checkpoint file")
    if not path.is_file():
        raise DefdropError(f"{path}: checkpoint file not found")
    with untrusted(f"{path}: not a defdrop checkpoint"):
        try:
            model, meta = _parse_checkpoint(path)
        except Exception as exc:
            if isinstance(exc, DefdropError) or "weights_only" not in str(exc).lower():
                raise
            raise DefdropError(f"{path}: not a defdrop checkpoint (it holds objects that weights_only loading "
                               f"refuses)") from None
    return for_inference(model, device), meta


def load_checkpoint_bytes(data: bytes, name: str,
                          device: torch.device | str = "cpu") -> tuple[PaperCNN, dict[str, Any]]:
    """:func:`load_checkpoint` from a checkpoint file's bytes (sent to a worker that cannot read the file);
    ``name`` (the file's name on the machine it came from) only labels error messages. Same checks."""
    import io

    label = Path(name)
    with untrusted(f"{label}: not a defdrop checkpoint"):
        try:
            model, meta = _parse_checkpoint(label, io.BytesIO(data))
        except Exception as exc:
            if isinstance(exc, DefdropError) or "weights_only" not in str(exc).lower():
                raise
            raise DefdropError(f"{label}: not a defdrop checkpoint (it holds objects that weights_only loading "
                               f"refuses)") from None
    return for_inference(model, device), meta


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(str(d) for d in t.shape) + ")"


def _check_config(path: Path, config: object) -> dict[str, Any]:
    """The architecture fields, type-checked before anything is built (PaperCNN checks their values)."""
    if config is None:
        raise DefdropError(f"{path}: checkpoint has no config (the architecture)")
    if not isinstance(config, dict):
        raise DefdropError(f"{path}: checkpoint config is a {type(config).__name__}, not a table")
    unknown = sorted(str(k) for k in config if k not in ("arch", "train_dropout", "dropout_layer", "num_classes"))
    if unknown:
        raise DefdropError(f"{path}: checkpoint config has unknown field(s) {', '.join(unknown)}")
    arch, rate = config.get("arch", "mnist"), config.get("train_dropout", 0.0)
    layer, classes = config.get("dropout_layer", "fc1"), config.get("num_classes", 10)
    if not isinstance(arch, str) or arch not in ARCHITECTURES:
        raise DefdropError(f"{path}: checkpoint architecture {arch!r} is not one of {', '.join(ARCHITECTURES)}")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not (math.isfinite(rate) and 0 <= rate < 1):
        raise DefdropError(f"{path}: checkpoint training dropout rate {rate!r} is not a number in [0, 1)")
    if not isinstance(layer, str) or layer not in DROPOUT_LAYERS:
        raise DefdropError(f"{path}: checkpoint dropout layer {layer!r} is not one of {', '.join(DROPOUT_LAYERS)}")
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
        raise DefdropError(f"{path}: checkpoint num_classes {classes!r} is not an integer >= 2")
    return {"arch": arch, "train_dropout": float(rate), "dropout_layer": layer, "num_classes": classes}


def _check_state(path: Path, config: dict[str, Any], state: object) -> dict[str, torch.Tensor]:
    """Names, shapes, dtypes and values of the weights against the architecture, tensor by tensor."""
    if state is None:
        raise DefdropError(f"{path}: checkpoint has no state_dict (the weights)")
    if not isinstance(state, dict):
        raise DefdropError(f"{path}: checkpoint state_dict is a {type(state).__name__}, not a table of tensors")
    with torch.device("meta"):  # shapes only: allocates nothing, whatever num_classes the file claims
        expected = PaperCNN(**config).state_dict()
    arch = f"{config['arch']}, {config['num_classes']} classes"
    missing = [k for k in expected if k not in state]
    if missing:
        raise DefdropError(f"{path}: checkpoint lacks tensor(s) {', '.join(missing)} of the architecture ({arch})")
    extra = sorted(str(k) for k in state if k not in expected)
    if extra:
        raise DefdropError(f"{path}: checkpoint has tensor(s) {', '.join(extra)} that the architecture ({arch}) "
                           f"does not")
    for name, want in expected.items():
        got = state[name]
        if not isinstance(got, torch.Tensor):
            raise DefdropError(f"{path}: checkpoint entry {name} is a {type(got).__name__}, not a tensor")
        if got.shape != want.shape:
            raise DefdropError(f"{path}: tensor {name} has shape {_shape(got)} in the checkpoint; the architecture "
                               f"({arch}) needs {_shape(want)}")
        if not got.is_floating_point():
            raise DefdropError(f"{path}: tensor {name} has dtype {got.dtype}, not a floating-point type")
        bad = int((~torch.isfinite(got)).sum())
        if bad:
            raise DefdropError(f"{path}: tensor {name} holds {bad} NaN or infinite value(s) of {got.numel()}")
    return state


def _parse_checkpoint(path: Path, stream: Any = None) -> tuple[PaperCNN, dict[str, Any]]:
    """Parse ``stream`` (a file object) or else the file ``path``; messages name ``path``."""
    with warnings.catch_warnings():  # a hostile file's quirks (odd pickle protocols) are not the user's business
        warnings.simplefilter("ignore")
        payload = torch.load(path if stream is None else stream, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise DefdropError(f"{path}: not a defdrop checkpoint (no '{FORMAT}' header)")
    version = payload.get("version")
    if type(version) is not int or version != VERSION:
        raise DefdropError(f"{path}: checkpoint version {version!r} not supported (expected {VERSION})")
    meta = payload.get("meta", {})
    if not isinstance(meta, dict):
        raise DefdropError(f"{path}: checkpoint meta is a {type(meta).__name__}, not a table")
    config = _check_config(path, payload.get("config"))
    state = _check_state(path, config, payload.get("state_dict"))
    model = PaperCNN(**config)
    model.load_state_dict(state)
    return model, dict(meta)


def weights_hash(model: nn.Module) -> str:
    """SHA-256 (16 hex digits) over the weights and the architecture; names a model in caches.

    The paper's CNN is named by its config (what rebuilds it) and its tensors, so it has one identity however it
    was loaded (a checkpoint or a factory that builds it). Any other module by :func:`architecture_text` (its
    class, its layers as ``repr`` prints them, the source of its own classes) and every state-dict tensor with its
    name, dtype and shape.
    """
    if type(model) is PaperCNN:  # a subclass may have another forward: it is hashed as any other module
        h = hashlib.sha256(repr(sorted(model.config().items())).encode())
        for name, tensor in sorted(model.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]
    h = hashlib.sha256(architecture_text(model).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(f"\n{name} {tensor.dtype} {tuple(tensor.shape)}\n".encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def architecture_text(model: nn.Module) -> str:
    """What a model's architecture is, as text: the root class, ``repr(model)`` (every layer with its settings)
    and the source code of every class in it that is not PyTorch's own (where Python can find it), so that a
    change to a ``forward`` is a new model even when the layers are the same."""
    parts = [f"{type(model).__module__}.{type(model).__qualname__}", repr(model)]
    seen: set[type] = set()
    for module in model.modules():
        cls = type(module)
        if cls in seen or cls.__module__.split(".")[0] == "torch":
            continue
        seen.add(cls)
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):  # defined where no source is kept (exec, some notebooks): the name only
            source = ""
        parts.append(f"{cls.__module__}.{cls.__qualname__}\n{source}")
    return "\n".join(parts)
