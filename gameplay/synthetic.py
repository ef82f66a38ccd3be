"""A synthetic payoff table with the shape of the real one, for tests, benchmarks and demos (no model needed).

The numbers mimic the paper's trends: clean accuracy falls slowly, then faster, as the test dropout rate r'
grows; non-adaptive attacks lose success quickly with r', EOT attacks (gradients averaged over dropout masks)
much less, and each adaptive attacker does best near one "tuned" rate (so no single rate dominates and the game
has mixed solutions); SAP helps little. Intervals are binomial-style over ``n_attacks`` x ``n_samples`` trials.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

COLUMNS = ["attacker", "attack", "kappa", "c", "eps", "eot", "success_test", "defender", "defense", "train_dropout",
           "test_dropout", "sap_draws", "model", "dataset", "n_images", "n_attacks", "n_samples", "asr", "asr_low",
           "asr_high", "asr_std_error", "asr_majority", "asr_believed", "l2_mean", "l2_median", "l0_mean",
           "linf_mean", "clean_accuracy", "clean_accuracy_low", "clean_accuracy_high", "seconds", "key"]


def synthetic_attackers(n: int) -> list[dict]:
    """``n`` attacker strategies cycling through C&W kappas, EOT sizes, success tests, then FGSM/PGD."""
    out: list[dict] = []
    kappas = [0, 5, 10, 20, 40]
    for eot in (1, 8, 4, 16, 2, 32):
        for test in ("single", "expected"):
            for k in kappas:
                out.append({"attack": "cw", "kappa": float(k), "c": 0.01, "eps": np.nan, "eot": eot,
                            "success_test": test})
    for eot in (1, 8):
        for eps in (0.1, 0.2, 0.3):
            out.append({"attack": "fgsm", "kappa": np.nan, "c": np.nan, "eps": eps, "eot": eot,
                        "success_test": "single"})
            out.append({"attack": "pgd", "kappa": np.nan, "c": np.nan, "eps": eps, "eot": eot,
                        "success_test": "single"})
    # The first few mix the kinds (plain and EOT C&W, the expected test, PGD, FGSM) so small tables have each.
    lead = [0, 15, 20, 60 + 7, 60 + 1, 60 + 6]
    out = [out[k] for k in lead] + [a for k, a in enumerate(out) if k not in lead]
    out = out[:n] if n <= len(out) else out + [
        {"attack": "cw", "kappa": float(60 + k), "c": 0.01, "eps": np.nan, "eot": 1, "success_test": "single"}
        for k in range(n - len(out))]
    for a in out:
        parts = ([f"k={a['kappa']:g}"] if a["attack"] == "cw" else [f"eps={a['eps']:g}"])
        if a["eot"] != 1:
            parts.append(f"eot={a['eot']}")
        if a["success_test"] != "single":
            parts.append("exp")
        a["attacker"] = f"{a['attack']}[{','.join(parts)}]"
    return out


def synthetic_payoff_table(n_defenders: int = 8, n_attackers: int = 6, *, seed: int = 0, n_attacks: int = 90,
                           n_samples: int = 20, models: tuple[float, ...] = (0.3,), sap: bool = True,
                           undefended: bool = True) -> pd.DataFrame:
    """A complete table: per model, ``none`` (if ``undefended``), dropout rates up to 0.9 and SAP (if ``sap``),
    ``n_defenders`` rows per model in all, against ``n_attackers`` attackers."""
    rng = np.random.default_rng(seed)
    attackers = synthetic_attackers(n_attackers)
    tuned = rng.uniform(0.0, 0.9, len(attackers))
    n_rates = n_defenders - int(undefended) - int(sap)
    if n_rates < 1:
        raise ValueError("n_defenders leaves no dropout rate")
    rates = np.round(np.linspace(0.9 / n_rates, 0.9, n_rates), 4)
    rows = []
    for r in models:
        model = hashlib.sha256(f"synthetic r={r:g} seed={seed}".encode()).hexdigest()[:16]
        prefix = f"r={r:g}/" if len(models) > 1 else ""
        base_acc = 0.992 - 0.01 * abs(r - 0.5)
        defenders = ([("none", "none", 0.0)] if undefended else []) + \
            [(f"dropout[r'={q:g}]", "dropout", float(q)) for q in rates] + \
            ([("sap[frac=1]", "sap", np.nan)] if sap else [])
        for d_id, defense, q in defenders:
            eff = 0.15 if defense == "sap" else q
            acc = float(np.clip(base_acc - 0.08 * eff ** 3 - 0.01 * eff + rng.normal(0, 0.001), 0, 1))
            acc_se = np.sqrt(acc * (1 - acc) / (10000 * n_samples))
            for a, t in zip(attackers, tuned):
                kappa = a["kappa"] if a["attack"] == "cw" else 0
                strength = {"cw": 0.98, "pgd": 0.9, "fgsm": 0.6}[a["attack"]] * (1 - 0.002 * kappa)
                slope = 6.0 / (1 + np.log2(a["eot"])) ** 1.5 * (0.7 if a["success_test"] == "expected" else 1.0)
                adaptive = a["eot"] > 1 or a["success_test"] == "expected"
                bump = 0.35 * np.exp(-((eff - t) / 0.12) ** 2) if adaptive else 0.0
                asr = float(np.clip(strength * np.exp(-(slope + 1.5) * eff) + bump + rng.normal(0, 0.01), 0, 1))
                se = float(np.sqrt(max(asr * (1 - asr), 1e-4) / n_attacks))
                l2 = float(1.5 + 2.0 * eff + 0.02 * (a["kappa"] if a["attack"] == "cw" else 0)) if asr > 0 else np.nan
                rows.append({**a, "defender": prefix + d_id, "defense": defense, "train_dropout": r,
                             "test_dropout": q, "sap_draws": np.nan, "model": model, "dataset": "synthetic",
                             "n_images": n_attacks // 9, "n_attacks": n_attacks, "n_samples": n_samples, "asr": asr,
                             "asr_low": max(0.0, asr - 1.96 * se), "asr_high": min(1.0, asr + 1.96 * se),
                             "asr_std_error": se, "asr_majority": asr, "asr_believed": min(1.0, asr + 0.05),
                             "l2_mean": l2, "l2_median": l2, "l0_mean": np.nan, "linf_mean": np.nan,
                             "clean_accuracy": acc, "clean_accuracy_low": max(0.0, acc - 1.96 * acc_se),
                             "clean_accuracy_high": min(1.0, acc + 1.96 * acc_se), "seconds": 1.0,
                             "key": f"{model}-{d_id}-{a['attacker']}"})
    return pd.DataFrame(rows, columns=COLUMNS)
