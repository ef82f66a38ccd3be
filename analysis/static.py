"""Static PNG copies of a page's plotly figures (for ``report.md`` and anything that cannot run JavaScript).

Export uses kaleido (v1, plotly's image engine), which drives a local Chrome/Chromium: the same headless browser
the page tests use (``make system-deps``); kaleido finds it on ``PATH`` or through ``BROWSER_PATH``. It runs
offline: plotly.js comes from the installed plotly package and MathJax is off. Where kaleido or a browser is
missing, or the browser fails, nothing is written and :attr:`StaticExport.reason` says why in one line; the
interactive page is written either way.

Example::

    export = export_png(figures, png_folder(Path("out/report.html")))  # out/report-figures/figure-1.png, ...
    if not export.written:
        print(f"no PNG figures: {export.reason}")
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import plotly.graph_objects as go

from payoffs.errors import DefdropError
from payoffs.io import atomic_write_files

PNG_WIDTH = 1200
"""Width in CSS pixels of every exported figure (the page's content width)."""
PNG_HEIGHT = 520
"""Height of a figure that does not set its own."""
PNG_SCALE = 1.5
"""Device pixels per CSS pixel: sharp text in a markdown viewer at a modest file size."""
PNG_TIMEOUT_S = 120.0
"""Longest wait for the browser to draw one batch of figures."""


@dataclass(frozen=True)
class StaticExport:
    """The PNG files written, one per figure in page order (empty when none were), and why not where not."""

    paths: tuple[Path, ...]
    reason: str | None = None

    @property
    def written(self) -> bool:
        return self.reason is None and bool(self.paths)


def png_folder(page: str | Path) -> Path:
    """Where a page's PNGs go: beside it, ``report.html`` -> ``report-figures/``."""
    page = Path(page)
    return page.with_name(f"{page.stem}-figures")


def png_name(index: int) -> str:
    """The file name of the page's ``index``-th figure (1-based, as its div id ``figure-<index>``)."""
    return f"figure-{index}.png"


def static_export_unavailable() -> str | None:
    """Why PNG export cannot run here (kaleido or a Chrome/Chromium missing), or None where it can try."""
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return "kaleido is not installed (pip install 'kaleido>=1')"
    try:
        from choreographer.browsers.chromium import Chromium

        found = Chromium.find_browser(skip_local=False)
    except Exception:  # another choreographer version: let the export try and report its own failure
        return None
    if not found:
        return ("kaleido found no Chrome/Chromium (install Debian's chromium, `make system-deps`, or set "
                "BROWSER_PATH)")
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def export_png(figures: Sequence[go.Figure], folder: str | Path) -> StaticExport:
    """Write ``folder/figure-<i>.png`` for each figure (one browser for all of them); never raises for a missing
    or failing exporter, returns the reason instead. Files appear whole (drawn in a scratch folder, then written
    atomically, honouring the umask); PNGs of an earlier, longer version of the page are removed."""
    folder = Path(folder)
    result = _export(figures, folder)
    remove_stale_pngs(folder, keep=result.paths)
    return result


def remove_stale_pngs(folder: Path, keep: Sequence[Path] = ()) -> None:
    """Delete ``figure-<i>.png`` files of an earlier version of the page that this version did not write (they
    would show old numbers); the folder goes too when empty."""
    if not folder.is_dir():
        return
    kept = {Path(p).name for p in keep}
    for old in folder.glob("figure-*.png"):
        if old.name not in kept:
            old.unlink(missing_ok=True)
    try:
        folder.rmdir()  # only when empty
    except OSError:
        pass


def _export(figures: Sequence[go.Figure], folder: Path) -> StaticExport:
    if not figures:
        return StaticExport(())
    missing = static_export_unavailable()
    if missing is not None:
        return StaticExport((), missing)
    import kaleido

    with tempfile.TemporaryDirectory(prefix="defdrop-png-") as tmp:
        specs = [{"fig": fig.to_plotly_json(), "path": Path(tmp) / png_name(i),
                  "opts": {"format": "png", "width": PNG_WIDTH, "height": int(fig.layout.height or PNG_HEIGHT),
                           "scale": PNG_SCALE}}
                 for i, fig in enumerate(figures, start=1)]
        try:
            errors = kaleido.write_fig_from_object_sync(specs, kopts={"mathjax": False, "timeout": PNG_TIMEOUT_S})
        except Exception as exc:  # any failure of the external browser is a reason, not a crash
            return StaticExport((), f"the browser failed to draw the figures ({_first_line(exc)})")
        if errors:
            return StaticExport((), f"the browser failed to draw {len(errors)} figure(s) ({_first_line(errors[0])})")
        drawn = [Path(spec["path"]) for spec in specs]
        if not all(path.is_file() for path in drawn):
            return StaticExport((), "the browser wrote no image for some figures")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            paths = atomic_write_files([(folder / path.name, path.read_bytes()) for path in drawn])
        except OSError as exc:
            return StaticExport((), f"cannot write the PNG figures into {folder}: {exc.strerror or exc}")
        except DefdropError as exc:
            return StaticExport((), str(exc))
    return StaticExport(tuple(paths))
