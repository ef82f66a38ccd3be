"""Where models and test data come from: a model *source* loads a model, names it by content and describes it.

A model is known to the rest of defdrop only through a :class:`ModelSource`:

* ``identity``: a content hash over the weights and the architecture (it enters every cache key);
* ``description``: a :class:`ModelDescription` (a label for tables and games, the dataset it was trained on, and
  tags such as the training recipe and the training dropout rate r);
* ``default_slot``: the layer a defense follows when none is named (``None``: the user must name one);
* ``load(device)``: the model, in eval mode, without any defense.

:class:`CheckpointSource` reads defdrop checkpoints (the paper's CNN); :class:`FactorySource` any PyTorch
classifier, built by an importable factory and loaded from a state dict (:mod:`payoffs.factory`). Test data come
from a :class:`DataSource` (a named dataset) or a :class:`DataFile` (the user's ``.npz``/``.pt``,
:mod:`payoffs.datafile`). All are small frozen records, picklable, so cells can carry them to worker processes,
which load what they name (and check that it is still what the sweep named). A :class:`PortableSource` also
sends its model as bytes to a machine without this one's files (a Dask worker, :mod:`payoffs.dask_executor`).

    from payoffs import load_model, DataFile
    model = load_model(factory="mypkg.nets:build", weights="net.pt")   # or load_model("model.pt")
    data = DataFile.open("test.npz")
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence, Union, runtime_checkable

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


@runtime_checkable
class PortableSource(Protocol):
    """A model source whose model can travel as bytes to a process that cannot read this machine's files (a
    cluster worker): ``payload()`` gives the bytes (read here), ``from_payload(payload, device)`` rebuilds the
    model there and checks that it still has the source's ``identity``."""

    identity: str

    def payload(self) -> bytes: ...

    def from_payload(self, payload: bytes, device: torch.device | str = "cpu") -> nn.Module: ...


def _checkpoint_description(meta: dict, config: dict) -> ModelDescription:
    r = meta.get("train_dropout", config.get("train_dropout"))
    from payoffs.recipes import recipe_tag

    recipe = meta.get("recipe") or "standard"
    tag = recipe_tag(recipe, meta.get("recipe_params"), meta.get("epochs"))
    label = (f"{tag} " if tag else "") + (f"r={float(r):g}" if r is not None else "model")
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

    def payload(self) -> bytes:
        """The checkpoint file's bytes (see :class:`PortableSource`)."""
        try:
            return Path(self.path).read_bytes()
        except OSError as exc:
            raise DefdropError(f"{self.path}: cannot read the checkpoint ({exc.strerror or exc})") from None

    def from_payload(self, payload: bytes, device: torch.device | str = "cpu") -> nn.Module:
        """The model from :meth:`payload`'s bytes, on ``device``; they must hold the model this source names."""
        from payoffs.checkpoint import load_checkpoint_bytes, weights_hash

        model, _ = load_checkpoint_bytes(payload, self.path, device)
        _check_identity(self.path, weights_hash(model), self.identity)
        return model

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CheckpointSource) and (self.identity, self.path) == (other.identity, other.path)

    def __hash__(self) -> int:
        return hash((self.identity, self.path))


@lru_cache(maxsize=8)
def _load_checkpoint(path: str, identity: str, device: str) -> nn.Module:
    """Each checkpoint is read once per process and device; the file must still hold the model the sweep named."""
    from payoffs.checkpoint import load_checkpoint, weights_hash

    model, _ = load_checkpoint(path, device)
    _check_identity(path, weights_hash(model), identity)
    return model


def _check_identity(path: str, found: str, identity: str) -> None:
    if found != identity:
        raise DefdropError(f"{path}: the checkpoint changed since this sweep began (weights hash "
                           f"{found}, expected {identity}); rerun to use the new weights")


# ---------------------------------------------------------------------------------------------- user models
def declared_train_dropout(model: nn.Module) -> float | None:
    """A model that declares its training dropout rate (``train_dropout``, as the paper's CNN does) keeps it."""
    return _rate(getattr(model, "train_dropout", None))


def _rate(r: object) -> float | None:
    """``r`` as a training dropout rate in [0, 1), or ``None`` if it is not one."""
    if isinstance(r, bool) or not isinstance(r, (int, float)) or not (math.isfinite(r) and 0.0 <= r < 1.0):
        return None
    return float(r)


@dataclass(frozen=True, eq=False)
class FactorySource:
    """A user model: ``factory`` (``"mypkg.nets:build"``, imported, never evaluated) builds the ``nn.Module`` and
    ``weights`` (a state dict) fills it (:mod:`payoffs.factory`).

    ``identity`` hashes the architecture and every tensor (:func:`payoffs.checkpoint.weights_hash`), so the paper's
    CNN built by a factory is the same model as its checkpoint. ``default_slot``: the module's own
    ``defense_slot`` attribute if it declares one, else ``None`` (name the layer: ``--defense-at``).
    ``search_path``: the directory the factory's module is imported from besides the installed packages (the
    working directory when the source was opened), so worker processes find it too.
    """

    factory: str
    weights: str
    identity: str
    description: ModelDescription
    default_slot: str | None = None
    search_path: str | None = None

    @classmethod
    def open(cls, factory: str, weights: str | Path, *, label: str | None = None, dataset: str | None = None,
             tags: Mapping[str, Any] | None = None, default_slot: str | None = None) -> "FactorySource":
        """Build and load the model once (one-line errors for every way it can fail) to hash and describe it.

        ``label``: how tables and reports name it (default: the factory's name); ``dataset``: the named dataset
        its test data come from, if any; ``tags``: e.g. ``{"train_dropout": 0.5}`` (default: the module's own
        ``train_dropout`` attribute, if it has one).
        """
        from payoffs.checkpoint import weights_hash
        from payoffs.factory import factory_name, load_user_model
        from payoffs.slots import check_slot
        from payoffs.slots import default_slot as module_slot

        search = os.getcwd()
        model = load_user_model(factory, weights, "cpu", search)
        given = dict(tags or {})
        r = given.pop("train_dropout", declared_train_dropout(model))
        if r is not None and _rate(r) is None:
            raise DefdropError(f"train_dropout {r!r} of model {label or factory_name(factory)} is not a rate in "
                               "[0, 1)")
        all_tags: list[tuple[str, Any]] = [("train_dropout", None if r is None else float(r))]
        all_tags += sorted(given.items()) + [("factory", factory), ("weights", Path(weights).name)]
        slot = default_slot or module_slot(model)
        if slot is not None:
            check_slot(model, slot)
        if label is not None and not str(label).strip():
            raise DefdropError("a model label must not be empty")
        return cls(factory, str(Path(weights).resolve()), weights_hash(model),
                   ModelDescription(label=str(label).strip() if label else factory_name(factory), dataset=dataset,
                                    tags=tuple(all_tags)), slot, search)

    def load(self, device: torch.device | str = "cpu") -> nn.Module:
        return _load_factory(self.factory, self.weights, self.identity, str(device), self.search_path)

    def payload(self) -> bytes:
        """The weights file's bytes (see :class:`PortableSource`); the factory's code is not sent: its module must
        be importable where the model is rebuilt (installed there, or in ``search_path``)."""
        try:
            return Path(self.weights).read_bytes()
        except OSError as exc:
            raise DefdropError(f"{self.weights}: cannot read the weights ({exc.strerror or exc})") from None

    def from_payload(self, payload: bytes, device: torch.device | str = "cpu") -> nn.Module:
        """The model built by the factory and filled from :meth:`payload`'s bytes; it must be the model named."""
        from payoffs.checkpoint import weights_hash
        from payoffs.factory import load_user_model

        model = load_user_model(self.factory, self.weights, device, self.search_path, data=payload)
        _check_factory_identity(self.factory, self.weights, weights_hash(model), self.identity)
        return model

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FactorySource) and (self.identity, self.factory, self.weights) == (
            other.identity, other.factory, other.weights)

    def __hash__(self) -> int:
        return hash((self.identity, self.factory, self.weights))


@lru_cache(maxsize=8)
def _load_factory(factory: str, weights: str, identity: str, device: str, search_path: str | None) -> nn.Module:
    """Each user model is built once per process and device; it must still be the model the sweep named."""
    from payoffs.checkpoint import weights_hash
    from payoffs.factory import load_user_model

    model = load_user_model(factory, weights, device, search_path)
    _check_factory_identity(factory, weights, weights_hash(model), identity)
    return model


def _check_factory_identity(factory: str, weights: str, now: str, identity: str) -> None:
    if now != identity:
        raise DefdropError(f"{weights}: the model built by {factory} changed since this sweep began (hash {now}, "
                           f"expected {identity}); rerun to use the new code or weights")


def load_model(checkpoint: str | Path | None = None, *, factory: str | None = None,
               weights: str | Path | None = None, label: str | None = None, dataset: str | None = None,
               tags: Mapping[str, Any] | None = None) -> "CheckpointSource | FactorySource":
    """A model source: a defdrop checkpoint (``load_model("model.pt")``) or a user model
    (``load_model(factory="mypkg.nets:build", weights="net.pt", label="resnet8")``). ``.load(device)`` gives
    the ``nn.Module`` in eval mode."""
    if (checkpoint is None) == (factory is None):
        raise DefdropError("give a defdrop checkpoint or a model factory with its weights, not both or neither")
    if checkpoint is not None:
        if weights is not None or label is not None or tags or dataset is not None:
            raise DefdropError("weights, label, dataset and tags belong to a model factory; a checkpoint carries "
                               "its own (give other test data to the table or the command instead)")
        return CheckpointSource.open(checkpoint)
    if weights is None:
        raise DefdropError(f"model factory {factory} needs its weights (a state dict file)")
    return FactorySource.open(factory, weights, label=label, dataset=dataset, tags=tags)


MODEL_OPTION_NAMES = {"checkpoints": "checkpoints=", "factory": "factory=", "weights": "weights=", "labels": "labels="}
"""How the model options are named in a refusal: the library's parameter names (the CLI passes its flags)."""


def check_model_options(checkpoints: Sequence, factory: str | None, weights: Sequence, labels: Sequence,
                        names: dict[str, str] = MODEL_OPTION_NAMES) -> None:
    """The combinations of the model options, one rule each, refused in one line naming the options as ``names``
    spells them (``checkpoints``, ``factory``, ``weights``, ``labels``)."""
    n = names
    if labels and factory is None:
        raise DefdropError(f"{n['labels']} names models built by {n['factory']}; a checkpoint carries its own label")
    if weights and factory is None:
        raise DefdropError(f"{n['weights']} needs {n['factory']} (the code that builds the model)")
    if factory is not None and not weights:
        raise DefdropError(f"{n['factory']} {factory} needs {n['weights']} (a state dict of the model it builds)")
    if labels and len(labels) != len(weights):
        raise DefdropError(f"{n['labels']}: give one per {n['weights']} file ({len(labels)} label(s) for "
                           f"{len(weights)} file(s))")
    if not checkpoints and factory is None:
        raise DefdropError(f"give a model: {n['checkpoints']}, or {n['factory']} with {n['weights']}")


def open_models(checkpoints: Sequence[str | Path] = (), factory: str | None = None,
                weights: Sequence[str | Path] = (), labels: Sequence[str] = (),
                dataset: str | None = None) -> list[ModelSource]:
    """The models of a command: defdrop checkpoints (``--model``) and/or one factory (``--model-factory``) with one
    or more weights files (``--weights``, one model each, labelled by ``--model-label`` in the same order)."""
    checkpoints, weights, labels = list(checkpoints or ()), list(weights or ()), list(labels or ())
    check_model_options(checkpoints, factory, weights, labels)
    models: list[ModelSource] = [CheckpointSource.open(p) for p in checkpoints]
    models += [FactorySource.open(factory, w, label=labels[i] if labels else None, dataset=dataset)
               for i, w in enumerate(weights)] if factory is not None else []
    return models


# ---------------------------------------------------------------------------------------------- test data
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


@dataclass(frozen=True)
class DataFile:
    """The user's test data: a ``.npz``/``.pt`` file with ``x`` and ``y`` (:mod:`payoffs.datafile`).

    ``identity`` hashes the decoded images and labels (cache keys name the data, not the file); ``name`` is the
    file's name, for tables."""

    path: str
    identity: str
    name: str

    @classmethod
    def open(cls, path: str | Path) -> "DataFile":
        """Read and validate the file once (one-line errors) to hash it."""
        from payoffs.datafile import data_hash, read_test_data

        x, y, k = read_test_data(path)
        return cls(str(Path(path).resolve()), "file:" + data_hash(x, y, k), Path(path).name)

    def load_test(self) -> TestSplit:
        return _load_file(self.path, self.identity)


@lru_cache(maxsize=2)
def _load_file(path: str, identity: str) -> TestSplit:
    from payoffs.datafile import data_hash, read_test_data

    x, y, k = read_test_data(path)
    if "file:" + data_hash(x, y, k) != identity:
        raise DefdropError(f"{path}: the test data changed since this sweep began; rerun to use the new data")
    return TestSplit(x, y, k)


TestData = Union[DataSource, DataFile]
"""Where a cell's test split comes from: anything with ``identity``, ``name`` and ``load_test()``."""


def open_data(data: str | Path | None = None, dataset: str | None = None,
              data_dir: str | Path | None = None) -> TestData | None:
    """The test data a command names: a file (``data``, the CLI's ``--data``) or a named dataset (``dataset`` and
    its ``data_dir``); ``None`` when neither is given (each model's own dataset)."""
    if data is not None and dataset is not None:
        raise DefdropError("give a test data file or a dataset name, not both (data, dataset)")
    if data is not None:
        if data_dir is not None:
            raise DefdropError("a data directory belongs to a named dataset; a test data file is read as it is "
                               "(data_dir)")
        return DataFile.open(data)
    if dataset is not None:
        from payoffs.data import DATASETS
        if dataset not in DATASETS:
            raise DefdropError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}, or give "
                               "--data FILE")
        return DataSource(dataset, str(data_dir) if data_dir is not None else None)
    return None


def data_for(source: ModelSource, override: TestData | None = None,
             data_dir: str | Path | None = None) -> TestData:
    """The test data of a model: ``override``, or the dataset its description names (its files in ``data_dir``,
    default where the model was trained from)."""
    if override is not None:
        return override
    if not source.description.dataset:
        raise DefdropError(f"model {source.description.label} names no dataset; give its test data (data)")
    where = data_dir if data_dir is not None else getattr(source, "data_dir", None)
    return DataSource(source.description.dataset, None if where is None else str(where))
