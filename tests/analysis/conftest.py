"""Fixtures for the analysis tests: one small gradvar run on the suite's trained model, synthetic payoff tables."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.gradvar import GradVarResult, build_defenders, run_gradvar, select_inputs
from payoffs.data import Dataset
from payoffs.training import TrainResult

PAYOFF_COLUMNS = ["attacker", "attack", "kappa", "c", "eot", "success_test", "defender", "defense", "train_dropout",
                  "test_dropout", "model", "n_attacks", "n_samples", "asr", "asr_low", "asr_high", "asr_majority",
                  "asr_std_error", "l2_mean", "l2_median", "clean_accuracy", "clean_accuracy_low",
                  "clean_accuracy_high", "seconds"]


def make_payoff_table(train_rates=(0.0, 0.3, 0.5), test_rates=(0.1, 0.3, 0.5, 0.7, 0.9), sap: bool = True,
                      attackers=("cw[kappa=0]", "fgsm[eps=0.3]"), asr_of=None, asr_se: float = 0.02,
                      model_of=None) -> pd.DataFrame:
    """A payoff table in the documented schema. ``asr_of(kind, rate, train_rate)`` sets the ASR (default:
    falling with r', SAP at 0.6); accuracy is ``0.99 - 0.1 r' - 0.01 r``, L2 is ``1 + r'`` (SAP 1.25)."""
    asr_of = asr_of or (lambda kind, rate, r: 1.0 if kind == "none" else (0.6 if kind == "sap" else 1.0 - rate))
    model_of = model_of or (lambda r: f"model-r{r:g}")
    rows = []
    for attacker in attackers:
        for r in train_rates:
            strategies = [("none", 0.0, "none")] + [("dropout", q, f"dropout[r'={q:g}]") for q in test_rates]
            if sap:
                strategies.append(("sap", math.nan, "sap[frac=1]"))
            for kind, rate, label in strategies:
                asr = float(asr_of(kind, rate, r))
                acc = 0.99 - 0.1 * (0.5 if kind == "sap" else rate) - 0.01 * r
                rows.append(dict(
                    attacker=attacker, attack=attacker.split("[")[0], kappa=0.0, c=1.0, eot=1, success_test="majority",
                    defender=label, defense=kind, train_dropout=r, test_dropout=rate, model=model_of(r),
                    n_attacks=50, n_samples=20, asr=asr, asr_low=max(0.0, asr - 2 * asr_se),
                    asr_high=min(1.0, asr + 2 * asr_se), asr_majority=asr, asr_std_error=asr_se,
                    l2_mean=1.25 if kind == "sap" else 1.0 + rate, l2_median=1.0, clean_accuracy=acc,
                    clean_accuracy_low=acc - 0.01, clean_accuracy_high=acc + 0.01, seconds=1.0))
    return pd.DataFrame(rows, columns=PAYOFF_COLUMNS)


@pytest.fixture(scope="session")
def gradvar_inputs(small_trained: TrainResult, mnist5k: Dataset):
    return select_inputs(small_trained.model, mnist5k.x_test, mnist5k.y_test, 3)


@pytest.fixture(scope="session")
def gradvar_small(small_trained: TrainResult, gradvar_inputs) -> GradVarResult:
    """r' = 0, 0.1, 0.5, 0.9 and SAP on 3 correctly classified test images, S = 30, D = 4."""
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    x, y, target = gradvar_inputs
    return run_gradvar(small_trained.model, x, target, build_defenders([0.0, 0.1, 0.5, 0.9], sap=True),
                       samples=30, dims=4, seed=0, true_labels=y)


@pytest.fixture
def payoff_table() -> pd.DataFrame:
    return make_payoff_table()


def hand_gradients() -> np.ndarray:
    """S = 5 gradients over P = 4 dims: one constant dim, one all-zero dim, two varying ones."""
    return np.array([[1.0, 0.0, 2.0, -1.0],
                     [1.0, 0.0, 4.0, 0.5],
                     [1.0, 0.0, 0.0, -2.0],
                     [1.0, 0.0, 3.0, 1.0],
                     [1.0, 0.0, 6.0, -0.5]])
