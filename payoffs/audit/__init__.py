"""``defdrop audit``: is the attacker strong enough against this randomized defender?

The checks of Carlini et al. 2019 ("On Evaluating Adversarial Robustness", arXiv:1902.06705), Athalye et al. 2018
(arXiv:1802.00420), Tramer et al. 2020 (arXiv:2002.08347) and Pintor et al. 2021 ("Indicators of Attack Failure",
arXiv:2106.09947), run for one attacker strategy against each defender strategy of a model:

1. randomness is real and kept (:mod:`payoffs.audit.checks`, ``check_randomness``);
2. with the randomness frozen, the attack reaches its success on the undefended model (``check_fixed_mask``);
3. an unbounded attack reaches about 100% (``check_unbounded``);
4. EOT saturation: ASR against k = 1, 2, 4, ... EOT samples until doubling k stops paying (``check_eot``);
5. enough iterations: doubling them does not raise ASR, the loss is flat at the end (``check_iterations``);
6. iterative beats single-step, white-box beats transfer (``check_ordering``);
7. gradients are informative (``check_gradients``);
8. what every check cost in forward and backward passes (recorded around each check by the runner).

This package *measures*: every check returns frozen evidence (:mod:`payoffs.audit.evidence`, torch-free) with its
intervals and cost. Pass / fail / inconclusive is decided in :mod:`gameplay.audit_rules`, words and pictures are
in :mod:`analysis.audit_page`. The package's import is torch-free, so the decision side can read the evidence
types; :func:`payoffs.audit.runner.run_audit` runs everything.
"""
