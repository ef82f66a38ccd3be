"""Training the paper's CNN with dropout rate r under a training recipe, and measuring accuracy.

The loop (:meth:`FitContext.run_epochs`) is shared by every recipe (:mod:`payoffs.recipes`): Adam on a loss the
recipe supplies, seeded initialization and shuffling, the training set moved to the device once for the whole run
(on a GPU a per-batch host-to-device copy made the loop host-bound), and progress reported per batch with units
(stage, epoch, batch, running loss). The same seed gives the same weights; the ``standard`` recipe consumes the
random streams exactly as the loop before recipes did, so its weights did not change.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import nn

from payoffs.data import Dataset
from payoffs.errors import DefdropError
from payoffs.models import PaperCNN, architecture_for
from payoffs.recipes import RECIPES, recipe_label, recipe_stages, resolve_recipe

# At most one progress report per this many seconds inside an epoch (always one at each epoch's last batch):
# reading the running loss synchronizes a GPU, so reporting every batch would slow the loop it reports on.
PROGRESS_INTERVAL_S = 0.2

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TrainProgress:
    """Where training is: ``stage`` (``""`` for one-stage recipes, ``teacher``/``student`` for distillation),
    ``epoch`` of ``epochs`` and ``batch`` of ``batches`` (1-based), ``loss`` = mean training loss over this
    epoch's batches so far, and ``step`` of ``total`` batches over all stages (for a bar)."""

    stage: str
    epoch: int
    epochs: int
    batch: int
    batches: int
    loss: float
    step: int
    total: int

    @property
    def epoch_done(self) -> bool:
        return self.batch == self.batches

    def __str__(self) -> str:
        stage = f"{self.stage} " if self.stage else ""
        return f"{stage}epoch {self.epoch}/{self.epochs}, batch {self.batch}/{self.batches}, loss {self.loss:.3g}"


ProgressFn = Callable[[TrainProgress], None]


@dataclass(frozen=True)
class TrainConfig:
    """Explicit training parameters (Adam, cross-entropy on logits unless the recipe says otherwise).

    ``recipe``: ``standard``, ``adversarial`` or ``distillation`` (:data:`payoffs.recipes.RECIPES`);
    ``recipe_params``: that recipe's parameters by name (unset ones take their declared defaults).
    """

    train_dropout: float = 0.3
    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 1e-3
    seed: int = 0
    dropout_layer: str = "fc1"
    recipe: str = "standard"
    recipe_params: Mapping[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if not 0.0 <= self.train_dropout < 1.0:
            raise DefdropError(f"training dropout rate {self.train_dropout} must be in [0, 1)")
        if self.epochs < 1:
            raise DefdropError(f"epochs {self.epochs} must be at least 1")
        if self.batch_size < 1:
            raise DefdropError(f"batch size {self.batch_size} must be at least 1")
        if not self.learning_rate > 0:
            raise DefdropError(f"learning rate {self.learning_rate} must be positive")
        self.resolved_recipe_params()

    def resolved_recipe_params(self, *, text: bool = False) -> dict[str, Any]:
        """The recipe's full parameter set, checked, defaults filled in (what the checkpoint records)."""
        return resolve_recipe(self.recipe, self.recipe_params, epochs=self.epochs, text=text)


@dataclass(frozen=True)
class TrainResult:
    model: PaperCNN
    test_accuracy: float
    seconds_per_epoch: float
    epochs: int
    recipe: str = "standard"
    recipe_params: dict = field(default_factory=dict)
    seconds: float = 0.0
    details: dict = field(default_factory=dict)

    @property
    def recipe_label(self) -> str:
        return recipe_label(self.recipe, self.recipe_params, self.epochs)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Top-1 accuracy of one forward pass per example (a randomized defense is sampled once per example)."""
    device = next(model.parameters()).device
    correct = 0
    for i in range(0, len(x), batch_size):
        logits = model(x[i:i + batch_size].to(device))
        correct += int((logits.argmax(1).cpu() == y[i:i + batch_size].cpu()).sum())
    return correct / max(1, len(x))


class FitContext:
    """What a recipe's ``fit`` function gets: the device-resident training set, the config, the resolved recipe
    parameters, and the shared loop. ``fit(ctx) -> (model, details)``; the model is returned in any mode."""

    def __init__(self, data: Dataset, config: TrainConfig, params: dict[str, Any], device: torch.device,
                 progress: ProgressFn | None, total_steps: int) -> None:
        self.data, self.config, self.params, self.device = data, config, params, device
        self.x_train = data.x_train.to(device)  # once for the whole run, not per batch
        self.y_train = data.y_train.to(device)
        self.batches = (len(self.x_train) + config.batch_size - 1) // config.batch_size
        self.progress, self.total_steps, self.step = progress, total_steps, 0

    def new_model(self) -> PaperCNN:
        """A freshly initialized PaperCNN from ``torch.manual_seed(seed)`` (every stage starts from the seed)."""
        torch.manual_seed(self.config.seed)
        return PaperCNN(architecture_for(self.data.input_shape), self.config.train_dropout,
                        self.config.dropout_layer, self.data.num_classes).to(self.device)

    def run_epochs(self, model: nn.Module, targets: torch.Tensor, loss_fn: LossFn, epochs: int,
                   stage: str = "") -> None:
        """Adam (``learning_rate``) on ``loss_fn(model, x_batch, targets_batch)``, the model in train mode,
        ``epochs`` passes over the training set in a seeded random order; ``targets`` is indexed like
        ``x_train`` (labels, or a distillation's soft labels)."""
        cfg = self.config
        opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
        gen = torch.Generator().manual_seed(cfg.seed)
        n = len(self.x_train)
        for epoch in range(1, epochs + 1):
            model.train()
            order = torch.randperm(n, generator=gen).to(self.device)
            loss_sum = torch.zeros((), device=self.device)
            last_report = time.perf_counter()
            for batch, i in enumerate(range(0, n, cfg.batch_size), start=1):
                idx = order[i:i + cfg.batch_size]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model, self.x_train[idx], targets[idx])
                loss.backward()
                opt.step()
                self.step += 1
                loss_sum += loss.detach()
                if self.progress is not None:
                    now = time.perf_counter()
                    if batch == self.batches or now - last_report >= PROGRESS_INTERVAL_S:
                        last_report = now
                        self.progress(TrainProgress(stage, epoch, epochs, batch, self.batches,
                                                    float(loss_sum) / batch, self.step, self.total_steps))


def cross_entropy_loss(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(model(xb), yb)


def fit_standard(ctx: FitContext) -> tuple[PaperCNN, dict]:
    """The ``standard`` recipe: cross-entropy on the clean training images."""
    model = ctx.new_model()
    ctx.run_epochs(model, ctx.y_train, cross_entropy_loss, ctx.config.epochs)
    return model, {}


def train(data: Dataset, config: TrainConfig, device: torch.device | str = "cpu",
          progress: ProgressFn | None = None) -> TrainResult:
    """Train ``PaperCNN`` on ``data`` under ``config.recipe``; same seed, same weights on a given device.

    The returned model is in eval mode; ``test_accuracy`` is one deterministic pass over the test split (for a
    distilled model, its argmax at T = 1).
    """
    config.validate()
    params = config.resolved_recipe_params()
    device = torch.device(device)
    stages = recipe_stages(config.recipe, params, config.epochs)
    batches = (len(data.x_train) + config.batch_size - 1) // config.batch_size
    ctx = FitContext(data, config, params, device, progress, batches * sum(e for _, e in stages))
    fit = RECIPES[config.recipe].load()
    start = time.perf_counter()
    model, details = fit(ctx)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    model.eval()
    return TrainResult(model, accuracy(model, data.x_test, data.y_test), seconds / sum(e for _, e in stages),
                       config.epochs, config.recipe, params, seconds, details)


def checkpoint_meta(dataset: str, config: TrainConfig, result: TrainResult) -> dict[str, Any]:
    """The training facts a checkpoint records (callers add where the data came from)."""
    return {"dataset": dataset, "train_dropout": config.train_dropout, "epochs": config.epochs,
            "seed": config.seed, "batch_size": config.batch_size, "learning_rate": config.learning_rate,
            "dropout_layer": config.dropout_layer, "recipe": result.recipe,
            "recipe_params": dict(result.recipe_params), "recipe_label": result.recipe_label,
            "test_accuracy": result.test_accuracy, "seconds_per_epoch": result.seconds_per_epoch,
            **{k: v for k, v in result.details.items() if isinstance(v, (int, float, str, bool))}}
