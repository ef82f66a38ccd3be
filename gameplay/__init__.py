"""gameplay: strategy spaces, the attacker-defender game built from a payoff table, and its solvers."""
