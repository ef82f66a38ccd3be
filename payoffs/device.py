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


def for_inference(model: torch.nn.Module, device: torch.device | str = "cpu") -> torch.nn.Module:
    """``model`` on ``device`` in eval mode; on a CPU, a model with 2-d convolutions is also put in channels-last
    memory (oneDNN's native layout: the same numbers up to float round-off, cheaper convolutions and their input
    gradients; ``bench/sampling.py`` item 7 measures it). The weights' values, names and hash are unchanged."""
    model = model.to(device).eval()
    if torch.device(device).type == "cpu" and any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):
        model = model.to(memory_format=torch.channels_last)
    return model
