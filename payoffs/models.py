"""The paper's Table 1 CNNs, with a training-dropout layer and a swappable defense slot.

=================  ======================  ======================
layer              MNIST (1 x 28 x 28)     CIFAR-10 (3 x 32 x 32)
=================  ======================  ======================
conv 3x3, ReLU     32                      64
conv 3x3, ReLU     32                      64
max-pool 2x2
conv 3x3, ReLU     64                      128
conv 3x3, ReLU     64                      128
max-pool 2x2
FC1, ReLU          200                     256
FC2, ReLU          200                     256
output (logits)    10                      10
=================  ======================  ======================

Convolutions are unpadded, as in Carlini & Wagner's reference models. Training dropout (rate r, inverted:
kept units scaled by 1/(1-r)) follows the chosen FC layer (FC1 by default, as in the paper) and is active
in train mode only. The defense slot is right after it (``defense_slot = "dropout"``, the output of the
training-dropout layer): :func:`with_defense` gives the same weights under any defender strategy.
"""
from __future__ import annotations

import torch
from torch import nn

from payoffs.errors import DefdropError
from payoffs.slots import DefendedModel, with_defense

ARCHITECTURES = {
    "mnist": {"in_channels": 1, "side": 28, "conv": (32, 32, 64, 64), "fc": 200},
    "cifar": {"in_channels": 3, "side": 32, "conv": (64, 64, 128, 128), "fc": 256},
}
DROPOUT_LAYERS = ("fc1", "fc2")


def architecture_for(input_shape: tuple[int, ...]) -> str:
    """``mnist`` for 1x28x28 inputs, ``cifar`` for 3x32x32."""
    for name, spec in ARCHITECTURES.items():
        if tuple(input_shape) == (spec["in_channels"], spec["side"], spec["side"]):
            return name
    raise DefdropError(f"no paper architecture for input shape {tuple(input_shape)}; expected 1x28x28 or 3x32x32")


class PaperCNN(nn.Module):
    """Table 1 CNN; ``forward`` returns logits Z(x). Its defense slot is the output of ``dropout``."""

    defense_slot = "dropout"

    def __init__(self, arch: str = "mnist", train_dropout: float = 0.0, dropout_layer: str = "fc1",
                 num_classes: int = 10) -> None:
        super().__init__()
        if arch not in ARCHITECTURES:
            raise DefdropError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
        if not 0.0 <= train_dropout < 1.0:
            raise DefdropError(f"training dropout rate {train_dropout} must be in [0, 1)")
        if dropout_layer not in DROPOUT_LAYERS:
            raise DefdropError(f"dropout layer {dropout_layer!r} must be one of {', '.join(DROPOUT_LAYERS)}")
        spec = ARCHITECTURES[arch]
        self.arch, self.train_dropout, self.dropout_layer = arch, float(train_dropout), dropout_layer
        c1, c2, c3, c4 = spec["conv"]
        self.features = nn.Sequential(
            nn.Conv2d(spec["in_channels"], c1, 3), nn.ReLU(),
            nn.Conv2d(c1, c2, 3), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 3), nn.ReLU(),
            nn.Conv2d(c3, c4, 3), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        side = ((spec["side"] - 4) // 2 - 4) // 2
        self.fc1 = nn.Linear(c4 * side * side, spec["fc"])
        self.fc2 = nn.Linear(spec["fc"], spec["fc"])
        self.out = nn.Linear(spec["fc"], num_classes)
        self.dropout = nn.Dropout(self.train_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc1(self.features(x)))
        if self.dropout_layer == "fc1":
            h = self.dropout(h)
        h = torch.relu(self.fc2(h))
        if self.dropout_layer == "fc2":
            h = self.dropout(h)
        return self.out(h)

    def config(self) -> dict:
        """What is needed to rebuild this architecture (stored in checkpoints)."""
        return {"arch": self.arch, "train_dropout": self.train_dropout, "dropout_layer": self.dropout_layer,
                "num_classes": self.out.out_features}


__all__ = ["ARCHITECTURES", "DROPOUT_LAYERS", "DefendedModel", "PaperCNN", "architecture_for", "with_defense"]
