"""The registries of attacks and test-time defenses: a name, where the class lives, and its declared parameters.

Torch-free, so strategy spaces, the command line and up-front checks read the declarations without loading any
model code; the class is imported only when a strategy is built (:meth:`Entry.load`). Adding an attack or a
defense is one file (the class) plus one ``register`` call here (or in your own code, for a plug-in)::

    ATTACKS.register("toy", "mypkg.toy:ToyAttack", ParamSet("toy", (Param("step", float, 0.1, low=0.0),)),
                     "a toy attack")

An attack class subclasses :class:`payoffs.attacks.base.Attack` and sets ``name``; a defense class is an
``nn.Module`` whose constructor takes the declared parameters as keywords. Parameters every attacker shares
(``eot``, ``success_test``) are in :data:`ATTACKER_COMMON`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

from payoffs.errors import DefdropError
from payoffs.params import Param, ParamSet, closest, format_value


@dataclass(frozen=True)
class Entry:
    """One registered attack or defense.

    ``target``: ``"package.module:Class"``. ``rate``: for a defense, the parameter that is its test-time rate r'
    (Algorithm 1 walks it; the payoff table's ``test_dropout`` column holds it), if any. ``label``: an optional
    function from resolved parameters to the strategy id, where the generic ``name[short=value,...]`` reads badly.
    """

    kind: str
    name: str
    target: str
    params: ParamSet
    summary: str = ""
    rate: str | None = None
    label: Callable[[Mapping[str, Any]], str] | None = field(default=None, compare=False)

    def load(self) -> type:
        module, _, attr = self.target.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise DefdropError(f"{self.kind} {self.name}: cannot import {self.target} ({exc})") from None

    def resolve(self, given: Mapping[str, Any] | None = None, *, text: bool = False) -> dict[str, Any]:
        return self.params.resolve(given, text=text)

    def strategy_id(self, resolved: Mapping[str, Any], extra: list[str] | None = None) -> str:
        if self.label is not None and not extra:
            return self.label(resolved)
        parts = self.params.id_parts(resolved) + list(extra or [])
        return f"{self.name}[{','.join(parts)}]" if parts else self.name


class Registry:
    """Name -> :class:`Entry`, in registration order."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, target: str, params: ParamSet | tuple[Param, ...] = (), summary: str = "",
                 *, rate: str | None = None, label: Callable[[Mapping[str, Any]], str] | None = None,
                 replace: bool = False) -> Entry:
        if name in self._entries and not replace:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        if not isinstance(params, ParamSet):
            params = ParamSet(name, tuple(params))
        if rate is not None and rate not in params:
            raise ValueError(f"{self.kind} {name}: rate parameter {rate!r} is not declared")
        entry = Entry(self.kind, name, target, params, summary, rate, label)
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def __getitem__(self, name: str) -> Entry:
        if name not in self._entries:
            raise DefdropError(f"unknown {self.kind} {name!r}; choose one of {', '.join(self._entries)}"
                               f"{closest(name, self._entries)}")
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

# ---------------------------------------------------------------------------------------------- attacks
ATTACKER_COMMON = ParamSet("attacker", (
    Param("eot", int, 1, "defender samples averaged per gradient step (Expectation over Transformation)",
          low=1, short="eot"),
    Param("success_test", str, "single", "how the attacker judges success while searching: single (the sampled "
          "sub-network, the paper's protocol) or expected (the mean of the eot samples' logits)",
          choices=("single", "expected"), short="test", in_id="never"),
))

ATTACKS = Registry("attack")
ATTACKS.register("fgsm", "payoffs.attacks.fgsm:FGSM", (
    Param("eps", float, 0.25, "Linf step size (the paper's setting after Goodfellow et al.)", low=0.0, high=1.0,
          low_open=True),
), "targeted Fast Gradient Sign Method (Goodfellow et al. 2015)")
ATTACKS.register("pgd", "payoffs.attacks.pgd:PGD", (
    Param("eps", float, 0.3, "Linf budget", low=0.0, high=1.0, low_open=True),
    Param("step_size", float, 0.01, "Linf step per iteration", low=0.0, high=1.0, low_open=True, short="a"),
    Param("steps", int, 40, "iterations", low=1, short="n"),
    Param("random_start", bool, True, "start uniformly in the eps-ball", short="rs"),
), "targeted Linf projected gradient descent (Madry et al. 2018)")
ATTACKS.register("jsma", "payoffs.attacks.jsma:JSMA", (
    Param("theta", float, 1.0, "change applied to each chosen feature", low=-1.0, high=1.0, nonzero=True,
          short="th"),
    Param("gamma", float, 0.1, "largest fraction of features changed", low=0.0, high=1.0, low_open=True,
          short="g"),
    Param("saliency", str, "probs", "output differentiated: probs (CleverHans 2.1, the paper) or logits (JSMA-Z)",
          choices=("probs", "logits"), short="sal"),
), "targeted Jacobian-based Saliency Map Attack (Papernot et al. 2016)")
ATTACKS.register("cw", "payoffs.attacks.cw:CarliniWagnerL2", (
    Param("kappa", float, 0.0, "confidence margin", low=0.0, short="k", in_id="always"),
    Param("initial_c", float, 10.0, "first trade-off constant of the binary search", low=0.0, high=1e10,
          low_open=True, short="c"),
    Param("search_steps", int, 10, "binary-search steps over c", low=1, short="s"),
    Param("iterations", int, 100, "Adam steps per search step", low=1, short="it"),
    Param("learning_rate", float, 0.1, "Adam step size", low=0.0, low_open=True, short="lr"),
    Param("abort_early", bool, True, "stop an example's search step when its loss stops falling", short="ae"),
), "targeted Carlini & Wagner L2 (Carlini & Wagner 2017)")


# ---------------------------------------------------------------------------------------------- defenses
def _sap_label(p: Mapping[str, Any]) -> str:
    return f"sap[n={p['draws']}]" if p["draws"] is not None else f"sap[frac={format_value(p['fraction'])}]"


DEFENSES = Registry("defense")
DEFENSES.register("none", "torch.nn:Identity", (), "no test-time defense (the undefended model)")
DEFENSES.register("dropout", "payoffs.defenses:TestTimeDropout", (
    Param("rate", float, 0.0, "test dropout rate r'", low=0.0, high=1.0, high_open=True, short="r'",
          in_id="always"),
), "defensive dropout: test-time dropout at rate r' (paper section 3.2)", rate="rate")
DEFENSES.register("sap", "payoffs.defenses:SAP", (
    Param("draws", int, None, "number of draws r_p (none: a fraction of the units)", low=1, optional=True,
          short="n"),
    Param("fraction", float, 1.0, "r_p as a fraction of the units, when draws is none", low=0.0, low_open=True,
          short="frac"),
), "Stochastic Activation Pruning (Dhillon et al. 2018)", label=_sap_label)
