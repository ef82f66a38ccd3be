"""The joint defender space: model (recipe, r) x test-time defense. A hand-made table of three models at r = 0.3
(standard, PGD-trained, distilled), no training: labels say the recipe, a recipe's accuracy cost counts against
the standard model of its r, Algorithm 1 walks each model's own grid, and the game runs over every model's rows."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.solve_text import solve_markdown
from gameplay.solve import solve_payoff_csv, solve_table
from gameplay.table import payoff_table_from_frame
from payoffs.errors import DefdropError

RATES = (0.0, 0.3, 0.5)
# model label, recipe, clean accuracy per r', paper attacker's ASR per r', adaptive attacker's ASR per r'
MODELS = {
    "std": ("r=0.3", "standard", (0.980, 0.975, 0.965), (1.0, 0.30, 0.20), (1.0, 0.95, 0.90)),
    "adv": ("adv-pgd[eps=0.3] r=0.3", "adversarial", (0.950, 0.945, 0.930), (1.0, 0.20, 0.10), (1.0, 0.60, 0.50)),
    "dist": ("distill[T=100] r=0.3", "distillation", (0.978, 0.974, 0.960), (1.0, 0.30, 0.20), (1.0, 0.95, 0.90)),
}
ATTACKERS = (("cw[k=0]", 1, "single", 0.0), ("cw[k=5,eot=4,exp]", 4, "expected", 5.0))


def recipe_table(models=("std", "adv", "dist"), with_recipe: bool = True) -> pd.DataFrame:
    rows = []
    for key in models:
        label, recipe, acc, paper, adaptive = MODELS[key]
        for attacker, eot, test, kappa in ATTACKERS:
            for k, rate in enumerate(RATES):
                asr = (paper if eot == 1 else adaptive)[k]
                rows.append(dict(
                    attacker=attacker, attack="cw", kappa=kappa, eot=eot, success_test=test,
                    defender=f"{label}/dropout[r'={rate:g}]", defense="dropout", test_dropout=rate,
                    model=f"{key}-hash-0123456789", model_label=label, train_dropout=0.3, recipe=recipe,
                    asr=asr, asr_low=max(0.0, asr - 0.05), asr_high=min(1.0, asr + 0.05), asr_std_error=0.025,
                    l2_mean=2.0, clean_accuracy=acc[k], clean_accuracy_low=acc[k] - 0.005,
                    clean_accuracy_high=acc[k] + 0.005))
    df = pd.DataFrame(rows)
    return df if with_recipe else df.drop(columns="recipe")


def _row(table, label: str):
    return table.defenders[table.defender_labels.index(label)]


def test_labels_say_the_recipe_and_drops_count_from_the_standard_model() -> None:
    table = payoff_table_from_frame(recipe_table())
    assert "adv-pgd[eps=0.3] r=0.3/dropout[r'=0.5]" in table.defender_labels
    adv0 = _row(table, "adv-pgd[eps=0.3] r=0.3/dropout[r'=0]")
    assert adv0.recipe == "adversarial" and adv0.baseline == "std-hash-0123456789"
    # Adversarial training cost 3 points of clean accuracy: its r' = 0 row is a defense with that cost.
    assert adv0.accuracy_drop == pytest.approx(0.03) and not adv0.always_within
    std0 = _row(table, "r=0.3/dropout[r'=0]")
    assert std0.accuracy_drop == pytest.approx(0.0) and std0.always_within and std0.baseline is None
    ref = next(r for r in table.references if r.model.startswith("adv"))
    assert ref.accuracy == pytest.approx(0.95) and ref.drop_reference == pytest.approx(0.98)
    assert ref.baseline_name == "r=0.3"


def test_a_recipes_accuracy_cost_keeps_it_out_of_a_tight_budget() -> None:
    """At a 1-point budget the PGD model (3 points below the standard one) is out of the game, whatever r';
    at 6 points its rows are in, and the minimax mix moves to them (the adaptive attacker does worst there)."""
    tight = solve_table(payoff_table_from_frame(recipe_table()), max_accuracy_drop=0.01, robustness_samples=0)
    assert not any(label.startswith("adv-") for label in tight.game_defenders)
    assert all(label.startswith("adv-") for label in tight.removed if "r'=0]" in label)
    loose = solve_table(payoff_table_from_frame(recipe_table()), max_accuracy_drop=0.06, robustness_samples=0)
    mix = dict(loose.recommendation.mix)
    assert mix and all(label.startswith("adv-pgd[eps=0.3] r=0.3/") for label in mix)
    assert loose.recommendation.worst_case_asr == pytest.approx(0.5)


def test_without_the_recipe_column_every_model_is_measured_from_itself() -> None:
    """The old reading (each model its own reference) is what a table without recipes still gets; the PGD model's
    undefended row is then free, which is exactly what the recipe column corrects."""
    table = payoff_table_from_frame(recipe_table(with_recipe=False))
    adv0 = _row(table, "adv-pgd[eps=0.3] r=0.3/dropout[r'=0]")
    assert adv0.accuracy_drop == pytest.approx(0.0) and adv0.always_within
    report = solve_table(table, max_accuracy_drop=0.01, robustness_samples=0)
    assert "adv-pgd[eps=0.3] r=0.3/dropout[r'=0]" in report.game_defenders


def test_a_recipe_model_without_a_standard_sibling_is_measured_from_itself() -> None:
    table = payoff_table_from_frame(recipe_table(("adv", "dist")))
    assert all(d.baseline is None for d in table.defenders)
    assert _row(table, "adv-pgd[eps=0.3] r=0.3/dropout[r'=0]").always_within


def test_algorithm1_walks_each_models_own_grid() -> None:
    report = solve_table(payoff_table_from_frame(recipe_table()), max_accuracy_drop=0.01, robustness_samples=0)
    a1 = report.algorithm1
    per_model = {m.split("-")[0]: choice.rate for m, _, _, choice in a1.per_model}
    # std: 0.98 -> 0.975 (within 1 point) -> 0.965 (not): 0.3; adv from its own 0.95: 0.945, then 0.93: 0.3.
    assert per_model == {"std": 0.3, "adv": 0.3, "dist": 0.3}
    # Step 1 picks the best undefended accuracy among the models: the standard one.
    assert a1.model.startswith("std") and a1.defender == "r=0.3/dropout[r'=0.3]"


def test_the_report_says_where_a_recipes_drops_come_from(write_csv) -> None:
    text = solve_markdown(solve_payoff_csv(write_csv(recipe_table()), max_accuracy_drop=0.05, robustness_samples=5))
    assert ("trained by the adversarial recipe, its accuracy drops in the game are measured from the standard "
            "model r=0.3's 98.0%") in text
    assert "adv-pgd[eps=0.3] r=0.3/dropout[r'=0.5]" in text
    row = next(line for line in text.splitlines() if line.startswith("| adv-pgd[eps=0.3] r=0.3/dropout[r'=0] |"))
    assert "+3.0 pt" in row  # the recipe's accuracy cost, in the defender table


def test_a_model_with_two_recipes_is_one_line() -> None:
    df = recipe_table()
    df.loc[df.index[0], "recipe"] = "distillation"
    with pytest.raises(DefdropError, match="has 2 different recipes"):
        payoff_table_from_frame(df)


def test_recipe_labels_from_checkpoints() -> None:
    """A checkpoint's recipe and resolved parameters give the model label the tables use."""
    from payoffs.recipes import recipe_tag, resolve_recipe
    from payoffs.sources import _checkpoint_description

    def label(recipe: str, given: dict, epochs: int = 5) -> str:
        meta = {"train_dropout": 0.3, "recipe": recipe, "epochs": epochs,
                "recipe_params": resolve_recipe(recipe, given, epochs=epochs)}
        return _checkpoint_description(meta, {}).label

    assert label("standard", {}) == "r=0.3"
    assert label("adversarial", {}) == "adv-pgd[eps=0.3] r=0.3"
    assert label("adversarial", {"method": "fgsm"}) == "adv-fgsm[eps=0.3] r=0.3"
    assert label("adversarial", {"steps": 5, "step_size": 0.1}) == "adv-pgd[eps=0.3,a=0.1,n=5] r=0.3"
    assert label("distillation", {}) == "distill[T=100] r=0.3"
    assert label("distillation", {"teacher_epochs": 2}) == "distill[T=100,te=2] r=0.3"
    assert recipe_tag("adversarial") == "adv" and recipe_tag("standard", {}) == ""
    assert np.isnan(_checkpoint_description({"recipe": "distillation"}, {}).train_dropout)


def test_recipe_and_its_parameters_enter_the_cache_key_not_the_label() -> None:
    """Two descriptions of one set of weights that differ only in recipe parameters name different cells; a label
    change alone (the short recipe tag) does not touch the key."""
    from dataclasses import dataclass, replace

    from payoffs.cell import AccuracySpec, CellSpec
    from payoffs.recipes import resolve_recipe
    from payoffs.sources import DataSource, ModelDescription
    from payoffs.strategy import AttackerStrategy, DefenderStrategy

    @dataclass(frozen=True)
    class Source:
        identity: str
        description: ModelDescription
        default_slot: str | None = "dropout"

        def load(self, device="cpu"):
            raise AssertionError("not loaded")

    def source(params: dict, label: str = "adv-pgd[eps=0.3] r=0.3") -> Source:
        tags = (("train_dropout", 0.3), ("recipe", "adversarial"),
                ("recipe_params", tuple(sorted(resolve_recipe("adversarial", params).items()))))
        return Source("same-weights", ModelDescription(label, "mnist-5k", tags))

    data = DataSource("mnist-5k")

    def keys(src: Source) -> tuple[str, str]:
        cell = CellSpec(src, data, AttackerStrategy("cw"), DefenderStrategy.dropout(0.5), 5, 10, 0)
        return cell.key(), AccuracySpec(src, data, DefenderStrategy.dropout(0.5), 10, 0).key()

    a, b = source({}), source({"steps": 5})
    assert keys(a)[0] != keys(b)[0] and keys(a)[1] != keys(b)[1]
    assert keys(a) == keys(replace(a, description=replace(a.description, label="renamed")))
