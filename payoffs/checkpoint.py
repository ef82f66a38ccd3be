"""defdrop checkpoints: weights plus what rebuilds the model, loadable with ``weights_only=True``."""
from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

import torch

from payoffs.errors import DefdropError
from payoffs.io import atomic_write_bytes  # noqa: F401  (re-exported: older code imports it from here)
from payoffs.models import PaperCNN

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
    """Rebuild the model from a checkpoint (``torch.load(weights_only=True)``); returns (model in eval mode, meta)."""
    path = Path(path)
    if not path.is_file():
        raise DefdropError(f"{path}: checkpoint file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, AttributeError) as exc:
        why = ("it holds objects that weights_only loading refuses" if "weights_only" in str(exc).lower()
               else "not a torch file")
        raise DefdropError(f"{path}: not a defdrop checkpoint ({why})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise DefdropError(f"{path}: not a defdrop checkpoint (no '{FORMAT}' header)")
    if payload.get("version") != VERSION:
        raise DefdropError(f"{path}: checkpoint version {payload.get('version')} not supported (expected {VERSION})")
    try:
        model = PaperCNN(**payload["config"])
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise DefdropError(f"{path}: checkpoint does not match its architecture ({str(exc).splitlines()[0][:120]})") from None
    return model.to(device).eval(), dict(payload.get("meta", {}))


def weights_hash(model: PaperCNN) -> str:
    """SHA-256 (16 hex digits) over the weights and the architecture config; names a model in caches."""
    h = hashlib.sha256(repr(sorted(model.config().items())).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
