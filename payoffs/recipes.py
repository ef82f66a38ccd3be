"""Training recipes, declared once: how a model is trained, beside the training dropout rate r. Torch-free.

=============  ==============================================================  =====================================
recipe         what                                                            paper
=============  ==============================================================  =====================================
standard       cross-entropy on the clean training set                         the paper's models
adversarial    min over weights of max over the eps-ball of the loss: PGD-Linf  Madry et al. 2018, arXiv:1706.06083
               (eps 0.3, step 0.01, 40 steps, random start), or FGSM           (FGSM: Goodfellow et al. 2015,
               training (one step of size eps, clean and adversarial loss      arXiv:1412.6572)
               mixed with alpha = 0.5)
distillation   teacher trained on hard labels at temperature T, student        Papernot et al. 2016,
               trained on the teacher's soft labels at T, deployed at T = 1    arXiv:1511.04508 (T = 100 as in
                                                                               Carlini & Wagner 2017)
=============  ==============================================================  =====================================

Every recipe combines with the training dropout rate r (dropout is on in every training forward pass that updates
weights). The CLI's ``--recipe-param``, the checkpoint's ``recipe_params`` (the resolved values, defaults filled in,
which enter the model's description and cache key) and the help texts all read the declarations below. The
training code lives in :mod:`payoffs.training` (the loop), :mod:`payoffs.adversarial` and
:mod:`payoffs.distillation`; ``RECIPES[name].load()`` imports a recipe's ``fit`` function.
"""
from __future__ import annotations

from typing import Any, Mapping

from payoffs.errors import DefdropError
from payoffs.params import Param, ParamSet
from payoffs.registry import Registry

# Parameters of the adversarial recipe that only PGD uses (FGSM takes one step of size eps from the clean image).
PGD_ONLY = ("step_size", "steps", "random_start")
# The clean-loss weight alpha when it is not given: Madry et al. train on adversarial examples only, Goodfellow
# et al. (section 5) mix clean and adversarial cross-entropy with alpha = 0.5.
DEFAULT_CLEAN_WEIGHT = {"pgd": 0.0, "fgsm": 0.5}

RECIPES = Registry("recipe")
RECIPES.register("standard", "payoffs.training:fit_standard", (),
                 "cross-entropy on the clean training images (the paper's models)")
RECIPES.register("adversarial", "payoffs.adversarial:fit_adversarial", ParamSet("adversarial", (
    Param("method", str, "pgd", "pgd (Madry et al. 2018) or fgsm (Goodfellow et al. 2015, one step of size eps, "
          "the cheaper variant)", choices=("pgd", "fgsm"), in_id="always"),
    Param("eps", float, 0.3, "Linf radius of the training attack (Madry's MNIST setting)", low=0.0, high=1.0,
          low_open=True, in_id="always"),
    Param("step_size", float, 0.01, "PGD step per iteration", low=0.0, high=1.0, low_open=True, short="a"),
    Param("steps", int, 40, "PGD iterations", low=1, short="n"),
    Param("random_start", bool, True, "PGD starts uniformly in the eps-ball", short="rs"),
    Param("clean_weight", float, None, "alpha in alpha * CE(clean) + (1 - alpha) * CE(adversarial); none: 0 for "
          "pgd (Madry), 0.5 for fgsm (Goodfellow)", low=0.0, high=1.0, high_open=True, optional=True,
          short="alpha"),
)), "adversarial training: each batch replaced (or joined) by untargeted Linf adversarial examples against the "
    "current weights")
RECIPES.register("distillation", "payoffs.distillation:fit_distillation", ParamSet("distillation", (
    Param("temperature", float, 100.0, "softmax temperature T of teacher and student training (C&W's T = 100)",
          low=0.0, low_open=True, short="T", in_id="always"),
    Param("teacher_epochs", int, None, "epochs of the teacher (none: the run's epochs)", low=1, optional=True,
          short="te"),
)), "defensive distillation: a student trained on a temperature-T teacher's soft labels, deployed at T = 1")


def resolve_recipe(recipe: str, given: Mapping[str, Any] | None = None, *, epochs: int | None = None,
                   text: bool = False) -> dict[str, Any]:
    """The full, checked parameter set of ``recipe`` from ``given`` (defaults filled in, declared order).

    Defaults that depend on other values are made explicit here, so the result is what the training ran with:
    ``clean_weight`` (0 for PGD, 0.5 for FGSM) and ``teacher_epochs`` (the run's ``epochs``, when given). A
    PGD-only parameter given with ``method=fgsm`` is refused rather than ignored, and left out of FGSM's result.
    Resolving a resolved set gives it back unchanged.
    """
    entry = RECIPES[recipe]
    given = dict(given or {})
    for name in given:
        if name not in entry.params:
            owners = [r for r in RECIPES if name in RECIPES[r].params]
            where = f"; it is a parameter of recipe {', '.join(owners)}" if owners else ""
            raise DefdropError(f"{entry.params.unknown(name)}{where}")
    resolved = entry.resolve(given, text=text)
    if recipe == "adversarial":
        if resolved["method"] == "fgsm":
            wrong = [name for name in PGD_ONLY if name in given]
            if wrong:
                raise DefdropError(f"adversarial {', '.join(wrong)} only applies to method pgd (fgsm takes one "
                                   f"step of size eps from the clean image)")
            for name in PGD_ONLY:  # not used, so not recorded (nor in a cache key)
                del resolved[name]
        if resolved["clean_weight"] is None:
            resolved["clean_weight"] = DEFAULT_CLEAN_WEIGHT[resolved["method"]]
    if recipe == "distillation" and resolved["teacher_epochs"] is None and epochs is not None:
        resolved["teacher_epochs"] = int(epochs)
    return resolved


def recipe_stages(recipe: str, resolved: Mapping[str, Any], epochs: int) -> list[tuple[str, int]]:
    """The training stages and their epochs: ``[("", epochs)]``, or the teacher's then the student's."""
    if recipe == "distillation":
        return [("teacher", int(resolved.get("teacher_epochs") or epochs)), ("student", int(epochs))]
    return [("", int(epochs))]


def recipe_label(recipe: str, resolved: Mapping[str, Any], epochs: int | None = None) -> str:
    """How a model's recipe reads in descriptions: ``standard``, ``adversarial[method=pgd,eps=0.3]``,
    ``distillation[T=100]`` (parameters that differ from their defaults are added; ``teacher_epochs`` only where
    it differs from the run's ``epochs``)."""
    entry = RECIPES[recipe]
    if recipe == "adversarial":  # clean_weight's default depends on the method: show it only when it differs
        resolved = dict(resolved)
        if resolved.get("clean_weight") == DEFAULT_CLEAN_WEIGHT.get(resolved.get("method", "pgd")):
            resolved["clean_weight"] = None
    if recipe == "distillation" and resolved.get("teacher_epochs") == epochs:  # the default: the run's epochs
        resolved = dict(resolved) | {"teacher_epochs": None}
    return entry.strategy_id(resolved)


def recipe_tag(recipe: str, resolved: Mapping[str, Any] | None = None, epochs: int | None = None) -> str:
    """A recipe as model labels show it, short: ``""`` for standard, ``adv-pgd[eps=0.3]``, ``adv-fgsm[eps=0.3]``,
    ``distill[T=100]`` (the parameters :func:`recipe_label` shows, the method moved into the name). Without
    ``resolved`` (an old checkpoint that did not record them), the short name alone."""
    if recipe in ("", "standard"):
        return ""
    short = {"adversarial": "adv", "distillation": "distill"}.get(recipe, recipe)
    if resolved is None or recipe not in RECIPES:
        return short
    shown = recipe_label(recipe, resolved, epochs).partition("[")[2].rstrip("]")
    parts = [p for p in shown.split(",") if p]
    if recipe == "adversarial":
        short = f"adv-{resolved.get('method', 'pgd')}"
        parts = [p for p in parts if not p.startswith("method=")]
    return short + (f"[{','.join(parts)}]" if parts else "")


def parse_recipe_params(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["eps=0.1", "steps=7"]`` (the CLI's repeated ``--recipe-param``) -> ``{"eps": "0.1", "steps": "7"}``."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name or not value.strip():
            raise DefdropError(f"--recipe-param {pair!r} must be NAME=VALUE, e.g. eps=0.3")
        if name in out:
            raise DefdropError(f"--recipe-param {name} given twice")
        out[name] = value.strip()
    return out


def recipe_params_from_text(recipe: str, pairs: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The given ``NAME=VALUE`` pairs of ``recipe``, parsed through their declarations (``"0.3"``, ``"true"``,
    ``"none"``) and checked; only the given names (defaults are filled in by :func:`resolve_recipe` later)."""
    given = parse_recipe_params(pairs)
    resolved = resolve_recipe(recipe, given, text=True)
    return {name: resolved[name] for name in given}

