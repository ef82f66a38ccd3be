"""analysis: gradient-variance statistics of randomized defenses, interactive figures and reports.

The gradient study from a notebook (names imported on first use, so ``import analysis`` stays light)::

    from analysis import build_defenders, run_gradvar, select_inputs, write_gradvar_html
    from payoffs import load_model

    source = load_model("model.pt")
    net = source.load()
    x, y, target = select_inputs(net, x_test, y_test, images=20)
    result = run_gradvar(net, x, target, build_defenders([0.1, 0.5], sap=True), samples=50, slot="dropout")
    write_gradvar_html(result, "gradvar.html")
"""
from __future__ import annotations

from payoffs.lazy import lazy_exports

_EXPORTS = {
    "run_gradvar": "analysis.gradvar",
    "select_inputs": "analysis.gradvar",
    "build_defenders": "analysis.gradvar",
    "write_gradvar_html": "analysis.gradvar_page",
    "variance_asr_relation": "analysis.gradvar",
    "summary_table": "analysis.gradvar",
    "paper_checks": "analysis.gradvar",
    "GradVarResult": "analysis.gradvar",
    "write_solve_report_html": "analysis.solve_report",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
