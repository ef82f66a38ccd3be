"""One HTML page from plotly figures, tables and markdown-ish text; works offline by default.

Where plotly.js comes from is the ``plotly`` choice (:data:`PLOTLY_MODES`):

- ``inline`` (the default): the installed plotly package's plotly.js embedded once in the page head (about
  4.8 MB): one self-contained file;
- ``directory``: the page loads ``plotly.min.js`` from its own folder, written there once and shared by every
  page of the folder (``defdrop reproduce`` uses it: tens of kB per page); still offline;
- ``cdn``: the page loads the same plotly.js version from cdn.plot.ly (pinned, with its SRI hash): small, but
  needs the network to display.

Each figure is a ``<div>`` plus a ``Plotly.newPlot`` call; no MathJax, no fonts from the network. With ``png``,
each figure also gets a static PNG beside the page (:mod:`analysis.static`, ``report-figures/figure-1.png``),
linked under the figure.

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
from typing import Callable, Sequence, Union
from urllib.parse import quote

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs, get_plotlyjs_version

from analysis.static import StaticExport, export_png, png_folder, png_name, remove_stale_pngs
from payoffs.errors import DefdropError
from payoffs.io import atomic_write_bytes

PLOTLY_MODES = ("inline", "directory", "cdn")
"""Where a page gets plotly.js: embedded, ``plotly.min.js`` beside it, or the CDN (see the module docstring)."""
PLOTLY_FILE = "plotly.min.js"
"""The shared library's file name in ``directory`` mode (the name plotly's own ``to_html`` uses)."""


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
.png { font-size: .8rem; text-align: right; }
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


def check_plotly_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`PLOTLY_MODES`, else a :class:`DefdropError` naming the choices."""
    if mode not in PLOTLY_MODES:
        raise DefdropError(f"--plotly {mode!r}: choose one of {', '.join(PLOTLY_MODES)}")
    return mode


def plotly_script(mode: str) -> str:
    """The ``<script>`` element that gives the page plotly.js in ``mode``."""
    check_plotly_mode(mode)
    if mode == "directory":
        return f'<script charset="utf-8" src="{PLOTLY_FILE}"></script>'
    if mode == "cdn":
        import base64
        import hashlib

        url = f"https://cdn.plot.ly/plotly-{get_plotlyjs_version()}.min.js"
        digest = base64.b64encode(hashlib.sha256(get_plotlyjs().encode("utf-8")).digest()).decode()
        return f'<script charset="utf-8" src="{url}" integrity="sha256-{digest}" crossorigin="anonymous"></script>'
    # "</script" inside the library would end its script element early.
    library = get_plotlyjs().replace("</script", "<\\/script")
    return f'<script type="text/javascript">{library}</script>'


def write_plotly_js(folder: str | Path) -> Path:
    """``folder/plotly.min.js``, the installed plotly's library, written atomically unless already there whole."""
    path = Path(folder) / PLOTLY_FILE
    data = get_plotlyjs().encode("utf-8")
    try:
        same = path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        same = False
    if not same:
        atomic_write_bytes(path, data)
    return path


def page_figures(blocks: Sequence[Block]) -> list[go.Figure]:
    """The page's figures in order: the i-th is ``figure-<i>`` on the page and ``figure-<i>.png`` beside it."""
    return [b for b in blocks if isinstance(b, go.Figure)]


def render_page(title: str, blocks: Sequence[Block], plotly: str = "inline",
                png_links: Sequence[str] = ()) -> str:
    """The whole page as a string; figures get the ids ``figure-1``, ``figure-2``, ... in order. ``png_links``:
    the relative address of each figure's static PNG, linked under it (none where empty)."""
    script = plotly_script(plotly)
    parts: list[str] = []
    n_fig = 0
    for block in blocks:
        if isinstance(block, go.Figure):
            n_fig += 1
            link = ""
            if n_fig <= len(png_links):
                link = (f'<div class="png"><a href="{html.escape(png_links[n_fig - 1], quote=True)}">'
                        f"static PNG</a></div>")
            parts.append(f'<div class="figure">{figure_to_html(block, f"figure-{n_fig}")}{link}</div>')
        elif isinstance(block, pd.DataFrame):
            parts.append(table_to_html(block))
        elif isinstance(block, RawHtml):
            parts.append(block.html)
        elif isinstance(block, str):
            parts.append(markdown_to_html(block))
        else:
            raise TypeError(f"cannot put a {type(block).__name__} on a page")
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n"
            f"{script}\n</head>\n<body>\n"
            f"<h1>{html.escape(title)}</h1>\n" + "\n".join(parts) + "\n</body>\n</html>\n")


@dataclass(frozen=True)
class Page:
    """A written page: its path, its figures' PNGs (:class:`analysis.static.StaticExport`; none asked: empty),
    and the shared ``plotly.min.js`` it loads (``directory`` mode)."""

    path: Path
    pngs: StaticExport
    plotly_js: Path | None = None


def publish_page(path: str | Path, title: str, blocks: Sequence[Block], *, plotly: str = "inline",
                 png: bool = False) -> Page:
    """Write the page to ``path`` atomically (parent folders created); in ``directory`` mode also the shared
    ``plotly.min.js`` beside it; with ``png`` each figure's PNG into ``<stem>-figures/`` (:func:`export_png`;
    where export is impossible the page is written without them and :attr:`Page.pngs` says why)."""
    path = Path(path)
    check_plotly_mode(plotly)
    folder = png_folder(path)
    if png:
        pngs = export_png(page_figures(blocks), folder)
    else:
        remove_stale_pngs(folder)
        pngs = StaticExport(())
    links = [quote(f"{folder.name}/{png_name(i)}") for i in range(1, len(pngs.paths) + 1)]
    js = write_plotly_js(path.parent) if plotly == "directory" else None
    atomic_write_bytes(path, render_page(title, blocks, plotly, links).encode("utf-8"))
    return Page(path, pngs, js)


def write_page(path: str | Path, title: str, blocks: Sequence[Block], *, plotly: str = "inline",
               png: bool = False, log: Callable[[str], None] | None = None) -> Path:
    """:func:`publish_page`, returning the page's path; ``log`` gets one line where PNGs were asked for but could
    not be written."""
    page = publish_page(path, title, blocks, plotly=plotly, png=png)
    if png and page.pngs.reason and log is not None:
        log(png_note(page.pngs))
    return page.path


def png_note(pngs: StaticExport) -> str:
    """The one line said where PNG export was asked for and impossible."""
    return f"no PNG figures written: {pngs.reason}; the HTML page has them interactive"
