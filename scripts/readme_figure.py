"""Screenshot one figure of a reproduce report for the README (headless Chromium, network off).

Usage: `.venv/bin/python scripts/readme_figure.py runs/demo docs/demo-figure.png`
Renders the paper-attacker C&W heatmaps (the paper's Figure 3) and the adaptive attacker's beside them from
DIR/tables/payoff.csv into a one-figure page and screenshots it.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
from plotly.subplots import make_subplots

from analysis.html import write_page
from analysis.paper import is_adaptive

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--hide-scrollbars", "--virtual-time-budget=8000"]


def asr_figure(table: pd.DataFrame):
    """ASR and clean accuracy (percent, fixed 0-100% axes) against r' per attacker kind, with 95% intervals, for the
    C&W model."""
    cw = table[(table["attack"] == "cw") & (table["defense"] != "sap")].sort_values("test_dropout")
    fig = make_subplots(rows=1, cols=2, subplot_titles=("C&W attack success rate", "clean accuracy"))
    for adaptive, name, color in ((False, "paper's attacker (1 sample, single)", "#1f77b4"),
                                  (True, "adaptive (EOT, expected, kappa > 0)", "#d62728")):
        rows = cw[is_adaptive(cw) == adaptive]
        fig.add_scatter(x=rows["test_dropout"], y=100 * rows["asr"], name=name, mode="lines+markers", line_color=color,
                        error_y=dict(type="data", symmetric=False, array=100 * (rows["asr_high"] - rows["asr"]),
                                     arrayminus=100 * (rows["asr"] - rows["asr_low"])), row=1, col=1)
    acc = cw[~is_adaptive(cw)]
    fig.add_scatter(x=acc["test_dropout"], y=100 * acc["clean_accuracy"], name="clean accuracy", mode="lines+markers",
                    line_color="#2ca02c", row=1, col=2)
    sap = table[(table["attack"] == "cw") & (table["defense"] == "sap") & ~is_adaptive(table)]
    if not sap.empty:
        fig.add_hline(y=100 * float(sap["asr"].iloc[0]), line_dash="dash", annotation_text="SAP (paper's attacker)",
                      row=1, col=1)
    fig.update_xaxes(title_text="test dropout rate r'")
    fig.update_yaxes(title_text="ASR (%), 95% interval over images", range=[0, 105], dtick=10, row=1, col=1)
    fig.update_yaxes(title_text="clean accuracy (%)", range=[0, 105], dtick=10, row=1, col=2)
    fig.update_layout(width=1150, height=430, margin=dict(t=60, l=50, r=20, b=50), legend=dict(orientation="h", y=-0.2))
    return fig


def main() -> None:
    run_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    table = pd.read_csv(run_dir / "tables" / "payoff.csv")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("chromium not found")
    with tempfile.TemporaryDirectory() as tmp:
        title = "defdrop reproduce (quick, mnist-5k): C&W against test-time dropout, r = 0.3"
        page = write_page(Path(tmp) / "fig.html", title, [asr_figure(table)])
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([chromium, *FLAGS, f"--user-data-dir={tmp}/profile", "--window-size=1200,560",
                        f"--screenshot={out.resolve()}", page.resolve().as_uri()], check=True,
                       capture_output=True, timeout=120)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
