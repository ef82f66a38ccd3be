"""The reproduce report: one list of blocks rendered twice, as HTML and as markdown (figures as PNG pictures)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence
from urllib.parse import quote

import pandas as pd
import plotly.graph_objects as go

from analysis.formatting import display_table
from analysis.html import Block, RawHtml, png_note, publish_page
from payoffs.io import atomic_write_bytes


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def frame_to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table, formatted for people by :func:`analysis.formatting.display_table`
    (readable headers, rates in percent, 3 significant digits, "—" for a missing value)."""
    shown = display_table(df)
    head = "| " + " | ".join(_cell(c) for c in shown.columns) + " |"
    rule = "|" + "|".join("---" for _ in shown.columns) + "|"
    rows = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def formatted_blocks(blocks: Sequence[Block]) -> list[Block]:
    """Every table among ``blocks`` formatted for people (:func:`analysis.formatting.display_table`), so the HTML
    page and the markdown show the same text."""
    return [display_table(b) if isinstance(b, pd.DataFrame) else b for b in blocks]


def _figure_name(fig: go.Figure) -> str:
    return fig.layout.title.text if fig.layout.title and fig.layout.title.text else "figure"


def blocks_to_markdown(title: str, blocks: Sequence[Block], pngs: Sequence[str] = (),
                       html_name: str = "report.html", png_reason: str | None = None) -> str:
    """The blocks as markdown; the i-th figure is the picture ``pngs[i]`` (a path relative to the markdown file)
    where given, else a pointer to the interactive page (with ``png_reason``, why there is no picture)."""
    parts = [f"# {title}"]
    n_fig = 0
    for block in blocks:
        if isinstance(block, str):
            parts.append(block.strip())
        elif isinstance(block, pd.DataFrame):
            parts.append(frame_to_markdown(block))
        elif isinstance(block, go.Figure):
            n_fig += 1
            name = _figure_name(block)
            if n_fig <= len(pngs):
                alt = name.replace("[", "(").replace("]", ")").replace("\n", " ")
                parts.append(f"![{alt}]({pngs[n_fig - 1]})")
            else:
                why = f" (no PNG: {png_reason})" if png_reason else ""
                parts.append(f"*Interactive figure in {html_name}: {name}.*{why}")
        elif isinstance(block, RawHtml):
            continue
    return "\n\n".join(parts) + "\n"


def write_report(out_dir: Path, title: str, blocks: Sequence[Block], *, plotly: str = "directory",
                 png: bool = True, log: Callable[[str], None] | None = None) -> tuple[Path, Path]:
    """``out_dir/report.html`` (plotly.js per ``plotly``; ``directory``: one ``plotly.min.js`` in ``out_dir``)
    and ``out_dir/report.md``, whose figures are the PNGs in ``out_dir/report-figures/`` where static export
    works here (``log`` gets one line where it does not)."""
    blocks = formatted_blocks(blocks)
    page = publish_page(out_dir / "report.html", title, blocks, plotly=plotly, png=png)
    if png and page.pngs.reason and log is not None:
        log(png_note(page.pngs))
    links = [quote(p.relative_to(out_dir).as_posix()) for p in page.pngs.paths]
    md_path = out_dir / "report.md"
    atomic_write_bytes(md_path, blocks_to_markdown(title, blocks, links, page.path.name, page.pngs.reason).encode())
    return page.path, md_path
