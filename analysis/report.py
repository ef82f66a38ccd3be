"""The reproduce report: one list of blocks rendered twice, as self-contained HTML and as markdown."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd
import plotly.graph_objects as go

from analysis.formatting import display_table
from analysis.html import Block, RawHtml, write_page
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


def blocks_to_markdown(title: str, blocks: Sequence[Block]) -> str:
    parts = [f"# {title}"]
    for block in blocks:
        if isinstance(block, str):
            parts.append(block.strip())
        elif isinstance(block, pd.DataFrame):
            parts.append(frame_to_markdown(block))
        elif isinstance(block, go.Figure):
            name = block.layout.title.text if block.layout.title and block.layout.title.text else "figure"
            parts.append(f"*Interactive figure in report.html: {name}.*")
        elif isinstance(block, RawHtml):
            continue
    return "\n\n".join(parts) + "\n"


def write_report(out_dir: Path, title: str, blocks: Sequence[Block]) -> tuple[Path, Path]:
    """``out_dir/report.html`` (plotly embedded once, offline) and ``out_dir/report.md``."""
    blocks = formatted_blocks(blocks)
    html_path = write_page(out_dir / "report.html", title, blocks)
    md_path = out_dir / "report.md"
    atomic_write_bytes(md_path, blocks_to_markdown(title, blocks).encode())
    return html_path, md_path
