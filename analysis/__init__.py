"""analysis: gradient-variance statistics of randomized defenses, interactive figures and reports."""
