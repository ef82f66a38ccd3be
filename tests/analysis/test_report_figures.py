"""report.md shows the figures as pictures (PNGs beside report.html) where static export works, and says why not
where it does not; report.html loads the folder's one shared plotly.min.js."""
from __future__ import annotations

import re
from pathlib import Path

import plotly.graph_objects as go
import pytest

from analysis.report import write_report


def _blocks() -> list:
    return ["## Part", go.Figure(go.Scatter(y=[1, 2]), layout={"title": {"text": "ASR [95%] against r'"}}),
            "text", go.Figure(go.Heatmap(z=[[1, 2], [3, 4]]))]


def test_report_md_shows_pictures(tmp_path: Path) -> None:
    from analysis.static import static_export_unavailable

    why = static_export_unavailable()
    if why is not None:
        pytest.skip(f"static export impossible here: {why}")
    html_path, md_path = write_report(tmp_path, "T", _blocks())
    md = md_path.read_text()
    assert "Interactive figure" not in md
    pictures = re.findall(r"!\[([^\]]*)\]\(([^)]+)\)", md)
    assert pictures == [("ASR (95%) against r'", "report-figures/figure-1.png"),
                        ("figure", "report-figures/figure-2.png")]
    assert all((tmp_path / link).read_bytes()[:4] == b"\x89PNG" for _, link in pictures)
    page = html_path.read_text()
    assert 'src="plotly.min.js"' in page and (tmp_path / "plotly.min.js").is_file()
    assert 'href="report-figures/figure-2.png"' in page


def test_report_without_static_export_says_why_once(tmp_path: Path, monkeypatch) -> None:
    import analysis.static as static

    monkeypatch.setattr(static, "static_export_unavailable", lambda: "kaleido is not installed (pip install x)")
    lines: list[str] = []
    _, md_path = write_report(tmp_path, "T", _blocks(), log=lines.append)
    md = md_path.read_text()
    assert md.count("*Interactive figure in report.html:") == 2
    assert "(no PNG: kaleido is not installed (pip install x))" in md
    assert len(lines) == 1 and lines[0].startswith("no PNG figures written: kaleido is not installed")


def test_report_inline_is_one_file(tmp_path: Path) -> None:
    html_path, _ = write_report(tmp_path, "T", _blocks(), plotly="inline", png=False)
    assert html_path.read_text().count("plotly.js v") == 1 and not (tmp_path / "plotly.min.js").exists()
