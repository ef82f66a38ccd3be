"""The result every game solver returns: a small frozen record of a strategy profile and its values."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from gameplay.regret import as_strategy, regret


@dataclass(frozen=True)
class Equilibrium:
    """A strategy profile of the defender (rows) and the attacker (columns) with each player's expected utility.

    ``defender``/``attacker`` are probability vectors over the game's rows/columns. ``regret`` is the larger of the
    two players' regrets (see ``gameplay.regret``) for solution concepts where both best-respond (Nash, minimax),
    and the attacker's alone for Stackelberg, where the defender commits instead. ``params`` records how it was
    found (solver options, dropped label, ...).
    """

    defender: tuple[float, ...]
    attacker: tuple[float, ...]
    defender_value: float
    attacker_value: float
    method: str
    regret: float
    params: dict = field(default_factory=dict, compare=False)

    @classmethod
    def from_profile(cls, A: np.ndarray, B: np.ndarray, x: np.ndarray, y: np.ndarray, method: str,
                     params: dict | None = None, leader: bool = False) -> "Equilibrium":
        """Values and regret of (x, y) in (A, B); ``leader``: the defender commits, so only the attacker's regret."""
        x, y = as_strategy(x), as_strategy(y)
        rd, ra = regret(A, B, x, y)
        return cls(defender=tuple(float(v) for v in x), attacker=tuple(float(v) for v in y),
                   defender_value=float(x @ A @ y), attacker_value=float(x @ B @ y), method=method,
                   regret=max(0.0, ra if leader else max(rd, ra)), params=dict(params or {}))

    @property
    def x(self) -> np.ndarray:
        return np.array(self.defender)

    @property
    def y(self) -> np.ndarray:
        return np.array(self.attacker)

    def support(self, player: str = "defender", tol: float = 1e-9) -> tuple[int, ...]:
        """Indices the player uses with probability above ``tol``."""
        s = self.defender if player == "defender" else self.attacker
        return tuple(i for i, p in enumerate(s) if p > tol)

    def close_to(self, other: "Equilibrium", tol: float = 1e-6) -> bool:
        return (len(self.defender) == len(other.defender) and len(self.attacker) == len(other.attacker)
                and np.allclose(self.defender, other.defender, atol=tol)
                and np.allclose(self.attacker, other.attacker, atol=tol))

    def to_dict(self) -> dict:
        return asdict(self)
