"""Where models and test data come from: a model *source* loads a model, names it by content and describes it.

A model is known to the rest of defdrop only through a :class:`ModelSource`:

* ``identity``: a content hash over the weights and the architecture (it enters every cache key);
* ``description``: a :class:`ModelDescription` (a label for tables and games, the dataset it was trained on, and
  tags such as the training recipe and the training dropout rate r);
* ``default_slot``: the layer a defense follows when none is named (``None``: the user must name one);
* ``load(device)``: the model, in eval mode, without any defense.

:class:`CheckpointSource` reads defdrop checkpoints (the paper's CNN). Test data come from a :class:`DataSource`
(a named dataset). Both are small frozen records, picklable, so cells can carry them to worker processes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from payoffs.errors import DefdropError


@dataclass(frozen=True)
class ModelDescription:
    """How tables and reports name a model: ``label`` (short, unique within a table once disambiguated),
    ``dataset`` and ``tags`` (e.g. ``train_dropout``, ``recipe``, ``epochs``, ``test_accuracy``)."""

    label: str
    dataset: str | None = None
    tags: tuple[tuple[str, Any], ...] = ()

    def tag(self, name: str, default: Any = None) -> Any:
        return dict(self.tags).get(name, default)

    @property
    def train_dropout(self) -> float:
        """The training dropout rate r where the model has one, NaN otherwise."""
        value = self.tag("train_dropout")
        return float("nan") if value is None else float(value)


@runtime_checkable
class ModelSource(Protocol):
    identity: str
    description: ModelDescription
    default_slot: str | None

    def load(self, device: torch.device | str = "cpu") -> nn.Module: ...


def _checkpoint_description(meta: dict, config: dict) -> ModelDescription:
    r = meta.get("train_dropout", config.get("train_dropout"))
    recipe = meta.get("recipe", "standard")
    label = ("" if recipe in (None, "standard") else f"{recipe} ") + (f"r={float(r):g}" if r is not None else "model")
    tags: list[tuple[str, Any]] = [("train_dropout", None if r is None else float(r)), ("recipe", recipe or "standard")]
    for key in ("recipe_params", "epochs", "seed", "test_accuracy", "dropout_layer"):
        if meta.get(key) is not None:
            value = meta[key]
            tags.append((key, tuple(sorted(value.items())) if isinstance(value, dict) else value))
    tags.append(("arch", config.get("arch")))
    return ModelDescription(label=label, dataset=meta.get("dataset"), tags=tuple(tags))


@dataclass(frozen=True, eq=False)
class CheckpointSource:
    """A defdrop checkpoint file (the paper's CNN); its defense slot is the training-dropout layer's output."""

    path: str
    identity: str
    description: ModelDescription
    default_slot: str | None = "dropout"
    data_dir: str | None = field(default=None)

    @classmethod
    def open(cls, path: str | Path) -> "CheckpointSource":
        """Read the checkpoint once (a clear error if it is not one) to hash and describe it."""
        from payoffs.checkpoint import load_checkpoint, weights_hash

        model, meta = load_checkpoint(path)
        return cls(str(Path(path).resolve()), weights_hash(model), _checkpoint_description(meta, model.config()),
                   getattr(model, "defense_slot", "dropout"), meta.get("data_dir"))

    def load(self, device: torch.device | str = "cpu") -> nn.Module:
        return _load_checkpoint(self.path, self.identity, str(device))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CheckpointSource) and (self.identity, self.path) == (other.identity, other.path)

    def __hash__(self) -> int:
        return hash((self.identity, self.path))


@lru_cache(maxsize=8)
def _load_checkpoint(path: str, identity: str, device: str) -> nn.Module:
    """Each checkpoint is read once per process and device; the file must still hold the model the sweep named."""
    from payoffs.checkpoint import load_checkpoint, weights_hash

    model, _ = load_checkpoint(path, device)
    if weights_hash(model) != identity:
        raise DefdropError(f"{path}: the checkpoint changed since this sweep began (weights hash "
                           f"{weights_hash(model)}, expected {identity}); rerun to use the new weights")
    return model


@dataclass(frozen=True)
class TestSplit:
    """The inputs and labels a cell attacks and evaluates."""

    __test__ = False  # not a pytest class
    x: torch.Tensor
    y: torch.Tensor
    num_classes: int


@dataclass(frozen=True)
class DataSource:
    """A named dataset (``mnist-5k``, ``fashion-mnist``, ``mnist``, ``cifar10``) and where its files are."""

    name: str
    data_dir: str | None = None

    @property
    def identity(self) -> str:
        return self.name

    def load_test(self) -> TestSplit:
        return _load_named(self.name, self.data_dir)


@lru_cache(maxsize=2)
def _load_named(name: str, data_dir: str | None) -> TestSplit:
    """Datasets are read once per process, not once per cell."""
    from payoffs.data import load_dataset

    data = load_dataset(name, data_dir)
    return TestSplit(data.x_test, data.y_test, data.num_classes)


def data_for(source: ModelSource, override: DataSource | None = None) -> DataSource:
    """The test data of a model: ``override``, or the dataset its description names."""
    if override is not None:
        return override
    if not source.description.dataset:
        raise DefdropError(f"model {source.description.label} names no dataset; give its test data")
    return DataSource(source.description.dataset, getattr(source, "data_dir", None))
