"""Model sources and jobs for the Dask executor tests (module level, so the workers can import them)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from payoffs.sources import CheckpointSource, ModelDescription


@dataclass(frozen=True, eq=False)
class ElsewhereSource(CheckpointSource):
    """A checkpoint whose ``path`` exists on no machine: only its bytes (read from ``real`` here) can reach a
    worker, and loading it from a path fails loudly."""

    real: str = ""

    def payload(self) -> bytes:
        return Path(self.real).read_bytes()

    def load(self, device="cpu"):
        raise AssertionError(f"{self.path} was loaded from a path")


@dataclass(frozen=True)
class LocalOnlySource:
    """A model source without a payload (say, a model built from files only this machine has)."""

    identity: str
    description: ModelDescription
    default_slot: str | None = "dropout"

    def load(self, device="cpu"):
        raise AssertionError("not loaded in these tests")


def models_built() -> list[str]:
    """The identities of the models this worker process has built from payloads."""
    from payoffs.dask_executor import _MODELS

    return sorted(key[1] for key in _MODELS)
