"""How tables and games name models and defenders (torch-free, so ``gameplay`` reads the same names)."""
from __future__ import annotations

import math


def defender_label(model_label: str, defender_id: str, several_models: bool) -> str:
    """The one way a game row is named: the defender id, prefixed by the model's label when a table has several."""
    return f"{model_label}/{defender_id}" if several_models else defender_id


def model_name(label: str | None, identity: str, train_dropout: float = math.nan) -> str:
    """A model as reports name it: its label (``r=0.3``, ``resnet8``), else its training rate, else its hash."""
    if label:
        return label
    if train_dropout is not None and math.isfinite(train_dropout):
        return f"r={train_dropout:g}"
    return identity[:12]
