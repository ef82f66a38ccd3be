"""Targeted white-box attacks on (possibly randomized) models: FGSM, JSMA, C&W-L2, PGD, all with EOT."""
