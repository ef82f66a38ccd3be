"""One self-contained HTML page from plotly figures, tables and markdown-ish text; works offline.

plotly.js (from the installed plotly package) is embedded exactly once, in the page head; each figure is a
``<div>`` plus a ``Plotly.newPlot`` call. No CDN, no MathJax, no fonts from the network.

Blocks, in page order:

- ``str``: markdown-ish text: ``#``/``##``/``###`` headings, paragraphs separated by blank lines, ``- `` bullet
  lists, ``**bold**``, ``*italic*``, ```code```, ``[text](url)``; everything else is escaped;
- ``plotly.graph_objects.Figure``: an interactive figure;
- ``pandas.DataFrame``: a table (floats with 4 significant digits, NaN as "-");
- :class:`RawHtml`: trusted HTML, inserted as is.

Example::

    write_page("report.html", "Gradient variance", ["## Figure 4", fig4, stats_df])
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from payoffs.io import atomic_write_bytes


@dataclass(frozen=True)
class RawHtml:
    """HTML inserted into the page unchanged (the caller vouches for it)."""

    html: str


Block = Union[str, go.Figure, pd.DataFrame, RawHtml]

PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1280px;
       padding: 1rem 2rem 4rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; border-bottom: 1px solid #ddd; padding-bottom: .3rem; }
h2 { font-size: 1.25rem; margin-top: 2.2rem; }
code { background: #f3f3f3; padding: 0 .25em; border-radius: 3px; }
table.defdrop { border-collapse: collapse; font-size: .85rem; margin: .6rem 0 1.2rem; }
table.defdrop th, table.defdrop td { border: 1px solid #ddd; padding: .25rem .5rem; text-align: right; }
table.defdrop th { background: #f6f6f6; }
table.defdrop td:first-child, table.defdrop th:first-child { text-align: left; }
.figure { margin: .5rem 0 1.5rem; }
"""

_INLINE = [
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
    (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])"), r"<em>\1</em>"),
    (re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)"), r'<a href="\2">\1</a>'),
]


_BULLET = re.compile(r"^\s*[-*]\s+")


def _inline(text: str) -> str:
    out = html.escape(text, quote=True)
    # Code spans first, kept away from the other rules so their contents stay literal.
    codes: list[str] = []

    def stash(m: re.Match) -> str:
        codes.append(f"<code>{m.group(1)}</code>")
        return f"\x00{len(codes) - 1}\x00"

    out = _INLINE[0][0].sub(stash, out)
    for pattern, repl in _INLINE[1:]:
        out = pattern.sub(repl, out)
    return re.sub("\x00(\\d+)\x00", lambda m: codes[int(m.group(1))], out)


def markdown_to_html(text: str) -> str:
    """The markdown-ish subset described in the module docstring, as HTML."""
    out: list[str] = []
    for chunk in re.split(r"\n\s*\n", text.strip()):
        lines = [ln.rstrip() for ln in chunk.splitlines() if ln.strip()]
        if not lines:
            continue
        heading = re.match(r"^(#{1,4})\s+(.*)$", lines[0])
        if heading and len(lines) == 1:
            level = len(heading.group(1))
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif all(_BULLET.match(ln) for ln in lines):
            items = "".join(f"<li>{_inline(_BULLET.sub('', ln))}</li>" for ln in lines)
            out.append(f"<ul>{items}</ul>")
        elif heading:
            level = len(heading.group(1))
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
            out.append(markdown_to_html("\n".join(lines[1:])))
        else:
            out.append(f"<p>{_inline(' '.join(ln.strip() for ln in lines))}</p>")
    return "\n".join(out)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "-" if value != value else f"{value:.4g}"
    return str(value)


def table_to_html(df: pd.DataFrame) -> str:
    """A DataFrame as a plain HTML table (escaped cells, 4 significant digits)."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False, name=None))
    return f'<table class="defdrop"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def figure_to_html(fig: go.Figure, div_id: str) -> str:
    """A figure as a div plus its ``Plotly.newPlot`` script, relying on plotly.js already in the page."""
    height = fig.layout.height
    return fig.to_html(full_html=False, include_plotlyjs=False, include_mathjax=False, div_id=div_id,
                       config=PLOTLY_CONFIG, default_height=f"{height}px" if height else "520px",
                       default_width="100%")


def render_page(title: str, blocks: Sequence[Block]) -> str:
    """The whole page as a string; figures get the ids ``figure-1``, ``figure-2``, ... in order."""
    parts: list[str] = []
    n_fig = 0
    for block in blocks:
        if isinstance(block, go.Figure):
            n_fig += 1
            parts.append(f'<div class="figure">{figure_to_html(block, f"figure-{n_fig}")}</div>')
        elif isinstance(block, pd.DataFrame):
            parts.append(table_to_html(block))
        elif isinstance(block, RawHtml):
            parts.append(block.html)
        elif isinstance(block, str):
            parts.append(markdown_to_html(block))
        else:
            raise TypeError(f"cannot put a {type(block).__name__} on a page")
    # "</script" inside the library would end its script element early.
    plotly_js = get_plotlyjs().replace("</script", "<\\/script")
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n"
            f'<script type="text/javascript">{plotly_js}</script>\n</head>\n<body>\n'
            f"<h1>{html.escape(title)}</h1>\n" + "\n".join(parts) + "\n</body>\n</html>\n")


def write_page(path: str | Path, title: str, blocks: Sequence[Block]) -> Path:
    """Write :func:`render_page` to ``path`` atomically (parent folders created); returns the path."""
    path = Path(path)
    atomic_write_bytes(path, render_page(title, blocks).encode("utf-8"))
    return path
