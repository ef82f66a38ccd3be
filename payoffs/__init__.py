"""payoffs: real models and data -> attacks against defenses -> payoff tables."""
