"""Device selection: `auto` picks CUDA when present."""
from __future__ import annotations

import torch

from payoffs.errors import DefdropError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """Map `auto|cpu|cuda[:n]` to a torch.device; `cuda` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DefdropError(f"device {name!r} requested but CUDA is not available; use cpu or auto")
        return torch.device(name)
    raise DefdropError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)}")
