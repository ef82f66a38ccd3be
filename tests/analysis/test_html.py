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


def _two_figures() -> list:
    return [go.Figure(go.Scatter(x=[1, 2], y=[3, 4]), layout={"title": {"text": "line"}, "height": 300}),
            go.Figure(go.Heatmap(z=[[1, 2], [3, None]]))]


def test_directory_mode_shares_one_plotly_js_per_folder(tmp_path: Path) -> None:
    from analysis.html import PLOTLY_FILE, publish_page

    figs = _two_figures()
    one = publish_page(tmp_path / "a.html", "A", ["x", figs[0]], plotly="directory")
    two = publish_page(tmp_path / "b.html", "B", [figs[1]], plotly="directory")
    library = tmp_path / PLOTLY_FILE
    assert one.plotly_js == two.plotly_js == library
    assert library.read_text(encoding="utf-8").count("plotly.js v") == 1
    for page in (one.path, two.path):
        text = page.read_text(encoding="utf-8")
        assert f'<script charset="utf-8" src="{PLOTLY_FILE}"></script>' in text
        assert "plotly.js v" not in text and len(text) < 50_000  # the library is not in the page
    # Rewriting leaves a whole library in place (written once, atomically); a damaged one is replaced.
    library.write_text("broken", encoding="utf-8")
    publish_page(tmp_path / "a.html", "A", [figs[0]], plotly="directory")
    assert library.stat().st_size > 1_000_000


def test_inline_is_the_default_and_cdn_is_pinned(tmp_path: Path) -> None:
    from plotly.offline import get_plotlyjs_version

    from analysis.html import plotly_script, publish_page

    page = publish_page(tmp_path / "p.html", "P", _two_figures())
    assert page.plotly_js is None and not (tmp_path / "plotly.min.js").exists()
    assert page.path.read_text(encoding="utf-8").count("plotly.js v") == 1
    cdn = plotly_script("cdn")
    assert f'src="https://cdn.plot.ly/plotly-{get_plotlyjs_version()}.min.js"' in cdn
    assert 'integrity="sha256-' in cdn and "plotly.js v" not in cdn


def test_unknown_plotly_mode_is_one_clear_error(tmp_path: Path) -> None:
    from analysis.html import publish_page
    from payoffs.errors import DefdropError

    with pytest.raises(DefdropError, match="--plotly 'local': choose one of inline, directory, cdn"):
        publish_page(tmp_path / "p.html", "P", [], plotly="local")
    assert not (tmp_path / "p.html").exists()


def test_png_beside_every_figure_where_export_works(tmp_path: Path) -> None:
    from analysis.html import publish_page
    from analysis.static import static_export_unavailable

    why = static_export_unavailable()
    if why is not None:
        pytest.skip(f"static export impossible here: {why}")
    page = publish_page(tmp_path / "page.html", "P", ["## a", *_two_figures()], png=True)
    assert page.pngs.written, page.pngs.reason
    assert [p.name for p in page.pngs.paths] == ["figure-1.png", "figure-2.png"]
    assert all(p.parent == tmp_path / "page-figures" for p in page.pngs.paths)
    for path in page.pngs.paths:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2_000
    # 300 px tall at scale 1.5 -> 450 device pixels (the PNG header's height field).
    assert int.from_bytes(page.pngs.paths[0].read_bytes()[20:24], "big") == 450
    text = page.path.read_text(encoding="utf-8")
    assert text.count('<a href="page-figures/figure-') == 2
    # Fewer figures later: the old version's second PNG goes (it would show old numbers).
    again = publish_page(tmp_path / "page.html", "P", [_two_figures()[0]], png=True)
    assert [p.name for p in again.pngs.paths] == ["figure-1.png"]
    assert sorted(p.name for p in (tmp_path / "page-figures").iterdir()) == ["figure-1.png"]


def test_png_export_impossible_is_one_line_and_the_page_is_still_written(tmp_path: Path, monkeypatch) -> None:
    import analysis.static as static
    from analysis.html import write_page

    monkeypatch.setattr(static, "static_export_unavailable", lambda: "kaleido is not installed (pip install x)")
    lines: list[str] = []
    path = write_page(tmp_path / "p.html", "P", _two_figures(), png=True, log=lines.append)
    assert path.is_file() and "page-figures" not in path.read_text(encoding="utf-8")
    assert lines == ["no PNG figures written: kaleido is not installed (pip install x); the HTML page has them "
                     "interactive"]
    assert not (tmp_path / "p-figures").exists()


def test_a_failing_browser_is_a_reason_not_a_traceback(tmp_path: Path, monkeypatch) -> None:
    import kaleido

    import analysis.static as static

    monkeypatch.setattr(static, "static_export_unavailable", lambda: None)

    def boom(*args, **kwargs):
        raise RuntimeError("Chromium crashed\nlong trace")

    monkeypatch.setattr(kaleido, "write_fig_from_object_sync", boom)
    result = static.export_png(_two_figures(), tmp_path / "f")
    assert not result.written and result.paths == ()
    assert result.reason == "the browser failed to draw the figures (RuntimeError: Chromium crashed)"


def test_missing_kaleido_is_named(monkeypatch) -> None:
    import sys

    from analysis.static import static_export_unavailable

    monkeypatch.setitem(sys.modules, "kaleido", None)  # import kaleido -> ImportError
    assert static_export_unavailable() == "kaleido is not installed (pip install 'kaleido>=1')"


def test_png_links_are_addresses(tmp_path: Path, monkeypatch) -> None:
    """A page name with a space still links its PNGs (URL-quoted), in the page and in report.md."""
    import analysis.html as page_module
    import analysis.report as report_module
    from analysis.static import StaticExport

    def fake(figures, folder):
        return StaticExport(tuple(folder / f"figure-{i}.png" for i in range(1, len(figures) + 1)))

    monkeypatch.setattr(page_module, "export_png", fake)
    page = page_module.publish_page(tmp_path / "my page.html", "P", _two_figures(), png=True)
    assert '<a href="my%20page-figures/figure-2.png">' in page.path.read_text(encoding="utf-8")
    out = tmp_path / "run 1"
    _, md = report_module.write_report(out, "T", _two_figures())
    assert "](report-figures/figure-1.png)" in md.read_text()
