"""The page assembler: markdown-ish text, tables, plotly.js embedded exactly once, nothing from the network."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest

from analysis.html import RawHtml, markdown_to_html, render_page, table_to_html, write_page


def test_markdown_subset() -> None:
    out = markdown_to_html("# Title\n\nA *b* **c** `d<e>` [f](https://x.org/a).\n\n- one\n- two <b>\n\n## Sub\nText")
    assert "<h1>Title</h1>" in out
    assert "<p>A <em>b</em> <strong>c</strong> <code>d&lt;e&gt;</code> <a href=\"https://x.org/a\">f</a>.</p>" in out
    assert "<ul><li>one</li><li>two &lt;b&gt;</li></ul>" in out
    assert "<h2>Sub</h2>\n<p>Text</p>" in out
    # Code spans stay literal: no emphasis inside them.
    assert markdown_to_html("`a*b*c`") == "<p><code>a*b*c</code></p>"


def test_table_escapes_and_formats() -> None:
    html = table_to_html(pd.DataFrame({"name": ["<x>"], "v": [1 / 3], "n": [float("nan")]}))
    assert "<td>&lt;x&gt;</td><td>0.3333</td><td>-</td>" in html


def test_page_embeds_plotly_once_and_loads_nothing(tmp_path: Path) -> None:
    figs = [go.Figure(go.Scatter(x=[1, 2], y=[3, 4])), go.Figure(go.Heatmap(z=[[1, 2], [3, 4]]))]
    path = write_page(tmp_path / "sub" / "page.html", "T <1>",
                      ["## Part", figs[0], pd.DataFrame({"a": [1]}), RawHtml("<hr id='raw'>"), figs[1]])
    page = path.read_text(encoding="utf-8")
    assert page.count("plotly.js v") == 1  # the library's banner: embedded once for two figures
    assert re.findall(r'id="(figure-\d+)"', page) == ["figure-1", "figure-2"]
    assert page.count("Plotly.newPlot(") == 2
    assert "<title>T &lt;1&gt;</title>" in page and "<hr id='raw'>" in page
    # Outside the embedded library, nothing refers to the network (the browser test checks it for real).
    ours = re.sub(r"<script type=\"text/javascript\">/\*\*\s*\* plotly\.js v.*?</script>", "", page, flags=re.S)
    assert len(ours) < len(page) / 10
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=|https?://", ours)


def test_unknown_blocks_are_rejected() -> None:
    with pytest.raises(TypeError, match="cannot put a int on a page"):
        render_page("t", [3])
