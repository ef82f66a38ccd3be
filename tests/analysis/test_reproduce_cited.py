"""The cited defenses' section on a hand-made joint table (standard, PGD-trained and distilled model at r = 0.3, the
paper's and the adaptive C&W attacker; no training): its rows, the verdict against the cited 100%, and the answer
to "does test-time dropout on top of adversarial training beat either alone?", each decided by intervals."""
from __future__ import annotations

import pandas as pd
import pytest

from analysis.cited import section_rows
from analysis.conclusions import cited_claim, dropout_on_adversarial_training, summary_line
from analysis.paper import paper_numbers

PAPER_CW, ADAPTIVE_CW = ("cw[k=0]", 1, "single", 0.0), ("cw[k=5,eot=4,exp]", 4, "expected", 5.0)
STD_RATES = (0.0, 0.1, 0.3, 0.5, 0.7)


def joint_table(combo_asr: float = 0.30, combo_se: float = 0.01, adv_accuracy: float = 0.975) -> pd.DataFrame:
    """Standard model at r' = 0..0.7, PGD and distilled models at r' = 0 and 0.5. The adaptive attacker gets
    ``combo_asr`` (standard error ``combo_se``) against PGD at r' = 0.5; the other cells have standard error 0.01.
    Clean accuracy: standard 0.98 - 0.05 r'^2; PGD ``adv_accuracy`` at r' = 0, 0.01 lower at r' = 0.5."""
    rows = []

    def add(key, label, recipe, rate, attacker, asr, se, acc, l2=2.0):
        name, eot, test, kappa = attacker
        defense = "none" if rate == 0 else "dropout"
        rows.append(dict(
            attacker=name, attack="cw", kappa=kappa, eot=eot, success_test=test,
            defender=f"{label}/{'none' if rate == 0 else f'dropout[r={rate:g}]'}", defense=defense,
            test_dropout=rate, model=f"{key}-0123456789abcdef", model_label=label, train_dropout=0.3, recipe=recipe,
            dataset="mnist-5k", n_images=50, n_attacks=450, n_samples=20, asr=asr,
            asr_low=max(0.0, asr - 1.96 * se), asr_high=min(1.0, asr + 1.96 * se), asr_std_error=se, l2_mean=l2,
            clean_accuracy=acc, clean_accuracy_low=acc - 0.004, clean_accuracy_high=acc + 0.004))

    for rate in STD_RATES:
        acc = 0.98 - 0.05 * rate ** 2
        add("std", "r=0.3", "standard", rate, PAPER_CW, 1.0 if rate == 0 else 0.2, 0.01, acc, 1.5)
        add("std", "r=0.3", "standard", rate, ADAPTIVE_CW, 1.0 if rate == 0 else 0.9 - 0.2 * rate, 0.01, acc, 1.6)
    for rate in (0.0, 0.5):
        acc = adv_accuracy - (0.01 if rate else 0.0)
        add("adv", "adv-pgd[eps=0.3] r=0.3", "adversarial", rate, PAPER_CW, 1.0 if rate == 0 else 0.1, 0.01, acc, 3.0)
        add("adv", "adv-pgd[eps=0.3] r=0.3", "adversarial", rate, ADAPTIVE_CW,
            0.95 if rate == 0 else combo_asr, 0.01 if rate == 0 else combo_se, acc, 3.1)
        add("dist", "distill[T=100] r=0.3", "distillation", rate, PAPER_CW, 0.99 if rate == 0 else 0.2, 0.01,
            0.978 - (0.01 if rate else 0.0))
        add("dist", "distill[T=100] r=0.3", "distillation", rate, ADAPTIVE_CW, 1.0 if rate == 0 else 0.9, 0.01,
            0.978 - (0.01 if rate else 0.0))
    return pd.DataFrame(rows)


def test_paper_numbers_hold_the_cited_value_and_its_source() -> None:
    cited = paper_numbers()["cited_defenses"]
    assert cited["asr"] == {"distillation": 1.0, "adversarial": 1.0}
    assert "arXiv:1608.04644" in cited["source"] and "totally vulnerable" in cited["where"]


def test_section_rows_cover_every_model_attacker_and_rate() -> None:
    rows = section_rows(joint_table(), (0.0, 0.5))
    assert len(rows) == 3 * 2 * 2  # standard, PGD, distilled x paper, adaptive x r' = 0, 0.5
    assert list(dict.fromkeys(rows["recipe"])) == ["standard", "adversarial", "distillation"]
    judged = rows[rows["verdict"].notna()]
    # The cited 100% sits beside the paper's attacker at r' = 0 of each recipe model only.
    assert sorted(judged["recipe"]) == ["adversarial", "distillation"]
    assert (judged["test_dropout"] == 0).all() and judged["attacker"].str.startswith("paper").all()
    assert (judged["cited"] == 1.0).all()
    adv = rows[(rows["recipe"] == "adversarial") & (rows["test_dropout"] == 0.5)].iloc[0]
    assert adv["accuracy_cost"] == pytest.approx(0.98 - 0.965) and adv["l2_mean"] == 3.0


def test_cited_claim_is_judged_by_the_interval() -> None:
    """PGD at 100% [98.0, 100] agrees with the cited 100%; the distilled model at 99% [97.0, 100] agrees too, and
    widening its interval to [79.4, 100] (same point estimate) makes it inconclusive, not agreement."""
    findings = {f.topic.split("-")[1]: f for f in cited_claim(joint_table())}
    assert findings["adversarial"].verdict == "agrees" and findings["distillation"].verdict == "agrees"
    assert "mean L2 3.00 (the standard model r=0.3: 1.50)" in findings["adversarial"].text
    wide = joint_table()
    mask = (wide["recipe"] == "distillation") & (wide["test_dropout"] == 0) & (wide["eot"] == 1)
    wide.loc[mask, "asr_low"] = 0.794
    findings = {f.topic.split("-")[1]: f for f in cited_claim(wide)}
    assert findings["distillation"].verdict == "inconclusive"
    wide.loc[mask, ["asr", "asr_low", "asr_high"]] = (0.5, 0.4, 0.6)
    findings = {f.topic.split("-")[1]: f for f in cited_claim(wide)}
    assert findings["distillation"].verdict == "disagrees"


def _adaptive_combo(findings):
    return next(f for f in findings if f.topic.startswith("combo-") and "-adaptive-" in f.topic)


def test_combination_beats_both_when_both_intervals_lie_below_zero() -> None:
    """Adaptive C&W: PGD + r' = 0.5 lets 30% through, PGD alone 95%, dropout alone at the closest accuracy
    (standard r' = 0.5: 96.75% vs the combination's 96.5%) 80%: both differences' intervals lie below 0."""
    f = _adaptive_combo(dropout_on_adversarial_training(joint_table()))
    assert f.verdict == "agrees" and f.text.endswith("both intervals below 0).")
    assert "dropout alone on r=0.3 at r' = 0.5 (the closest clean accuracy, 96.8%) 80.0%" in f.text
    assert "-65.0 pp" in f.text and "-50.0 pp" in f.text


def test_overlapping_intervals_are_inconclusive_whatever_the_point_estimates() -> None:
    """The combination's point estimate (78%) is below dropout alone's (80%), but its standard error of 10 points
    makes the interval of the difference straddle 0: inconclusive. A verdict read from point estimates would say
    'beats both' here."""
    f = _adaptive_combo(dropout_on_adversarial_training(joint_table(combo_asr=0.78, combo_se=0.10)))
    assert f.verdict == "inconclusive" and "not shown at this sample size" in f.text
    assert "-2.00 pp" in f.text  # the point estimate is lower, the verdict still is not "agrees"


def test_combination_that_lets_more_through_than_dropout_alone_disagrees() -> None:
    f = _adaptive_combo(dropout_on_adversarial_training(joint_table(combo_asr=0.90)))
    assert f.verdict == "disagrees" and "does not beat dropout alone" in f.text


def test_equal_cost_partner_follows_the_combinations_accuracy() -> None:
    """A PGD model 6 points below the standard one is compared with the standard model's rate of closest accuracy
    (r' = 0.7: 95.55%), not with a fixed rate."""
    f = _adaptive_combo(dropout_on_adversarial_training(joint_table(adv_accuracy=0.92)))
    assert "at r' = 0.7 (the closest clean accuracy, 95.5%)" in f.text
    assert "+4.55 pp" in f.text  # dropout alone keeps 4.5 points more clean accuracy, stated with its interval


def test_summary_counts_the_combination_apart_from_the_paper_checks() -> None:
    findings = cited_claim(joint_table()) + dropout_on_adversarial_training(joint_table())
    text = summary_line(findings)
    assert text.startswith("Of 2 checks against the paper")
    assert "beats both alone in 2 of 2 settings" in text


def test_profiles_train_the_cited_defenses_as_documented() -> None:
    """The paper profile trains with the documented defaults (Madry's PGD, T = 100, the profile's epochs); the quick
    profile's smaller settings are the ones its note states; every profile meets them at r' = 0 and above."""
    from analysis.reproduce import PROFILES, recipe_configs

    paper = {c.recipe: c for c in recipe_configs(PROFILES["paper"], 0)}
    assert paper["adversarial"].resolved_recipe_params() == {"method": "pgd", "eps": 0.3, "step_size": 0.01,
                                                            "steps": 40, "random_start": True, "clean_weight": 0.0}
    assert paper["distillation"].resolved_recipe_params() == {"temperature": 100.0, "teacher_epochs": 20}
    assert {c.epochs for c in paper.values()} == {PROFILES["paper"].epochs}
    assert {c.train_dropout for c in paper.values()} == {paper_numbers()["headline"]["train_dropout"]}
    quick = {c.recipe: c.resolved_recipe_params() for c in recipe_configs(PROFILES["quick"], 0)}
    note = PROFILES["quick"].cited.note
    assert (quick["adversarial"]["steps"], quick["adversarial"]["step_size"]) == (5, 0.1) and "5 steps of 0.1" in note
    assert quick["distillation"]["temperature"] == 100.0 and "T = 100" in note
    for profile in PROFILES.values():
        assert profile.cited is not None and profile.cited.test_rates[0] == 0.0 and len(profile.cited.test_rates) >= 2
