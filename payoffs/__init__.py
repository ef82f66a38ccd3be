"""payoffs: real models and data -> attacks against defenses -> payoff tables.

The entry points a notebook needs, imported on first use (so ``import payoffs`` stays light and torch-free until
one is touched)::

    from payoffs import load_model, DataFile, AttackerStrategy, DefenderStrategy, build_payoff_table

    model = load_model(factory="mynets:build", weights="net.pt", label="mynet")  # or load_model("model.pt")
    table = build_payoff_table([model], [AttackerStrategy("fgsm")], [DefenderStrategy.dropout(0.5)],
                               data=DataFile.open("test.npz"), slot="fc1", n_images=10, eval_samples=10)
"""
from __future__ import annotations

from payoffs.lazy import lazy_exports

_EXPORTS = {
    "PaperCNN": "payoffs.models",
    "load_model": "payoffs.sources",
    "ModelSource": "payoffs.sources",
    "ModelDescription": "payoffs.sources",
    "CheckpointSource": "payoffs.sources",
    "FactorySource": "payoffs.sources",
    "DataSource": "payoffs.sources",
    "DataFile": "payoffs.sources",
    "TestSplit": "payoffs.sources",
    "AttackerStrategy": "payoffs.strategy",
    "DefenderStrategy": "payoffs.strategy",
    "build_payoff_table": "payoffs.table",
    "write_payoff_table": "payoffs.table",
    "defended_accuracy": "payoffs.evaluation",
    "with_defense": "payoffs.slots",
    "DefendedModel": "payoffs.slots",
    "make_attack": "payoffs.attacks",
    "check_model": "payoffs.preflight",
    "DefdropError": "payoffs.errors",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
