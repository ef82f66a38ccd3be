"""gameplay: strategy spaces, the attacker-defender game built from a payoff table, and its solvers.

The public names below are imported on first use, so ``import gameplay.strategies`` stays light. (Solver
functions named like their modules, e.g. ``gameplay.minimax.minimax``, are imported from the module.)

    from gameplay import Game, read_payoff_csv, solve_payoff_csv
"""
from __future__ import annotations

from payoffs.lazy import lazy_exports

_EXPORTS = {
    "Game": "gameplay.game",
    "Equilibrium": "gameplay.equilibrium",
    "NashResult": "gameplay.nash",
    "nash_equilibria": "gameplay.nash",
    "best_responses": "gameplay.best_response",
    "algorithm1_table": "gameplay.algorithm1",
    "is_equilibrium": "gameplay.regret",
    "PayoffTable": "gameplay.table",
    "read_payoff_csv": "gameplay.table",
    "payoff_table_from_frame": "gameplay.table",
    "select_game": "gameplay.table",
    "game_choices": "gameplay.table",
    "SolveReport": "gameplay.solve",
    "solve_payoff_csv": "gameplay.solve",
    "solve_table": "gameplay.solve",
    "ImageData": "gameplay.images",
    "read_image_data": "gameplay.images",
    "difference": "gameplay.images",
    "is_adaptive": "gameplay.rules",
    "within_accuracy_limit": "gameplay.rules",
    "DEFAULT_MAX_ACCURACY_DROP": "gameplay.rules",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
