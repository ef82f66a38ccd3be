"""Render an HTML page in headless Chromium with the network off, and report what plotly drew.

``render_in_chromium(path)`` writes a copy of the page with a small probe script injected first in ``<head>``
beside the original (a hidden temporary name, removed afterwards), so files the page loads by relative address (a
shared ``plotly.min.js``, PNGs) resolve as they do for the real page. The probe records uncaught errors, unhandled
promise rejections, ``console.error`` calls and failed resource loads; after the page's load event it waits (in
Chromium's virtual time) until every plotly div holds an SVG, then writes a JSON report into the DOM. Chromium
runs with ``--dump-dom``; the report is parsed from the dumped DOM. Any request leaving ``file:`` (a CDN script, a
font) fails, because host names resolve to nothing and the proxy is a closed port, and is listed in
``external_requests``.

Tests that need the browser call :func:`chromium_or_skip`: it skips where Chromium is missing, except in CI
(env ``CI`` set and not ``0``/``false``), where a missing browser fails the test.
"""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
REPORT_ID = "__defdrop_render_report__"

PROBE = """<script>(function () {
  var errors = [], warnings = [];
  window.addEventListener("error", function (e) {
    var t = e.target;
    if (t && t !== window && (t.src || t.href)) { errors.push("failed to load " + (t.src || t.href)); }
    else { errors.push("uncaught: " + (e.message || String(e.error))); }
  }, true);
  window.addEventListener("unhandledrejection", function (e) {
    errors.push("unhandled rejection: " + String(e.reason && (e.reason.stack || e.reason)));
  });
  var origError = console.error, origWarn = console.warn;
  console.error = function () { errors.push("console.error: " + Array.prototype.join.call(arguments, " "));
                                return origError.apply(console, arguments); };
  console.warn = function () { warnings.push(Array.prototype.join.call(arguments, " "));
                               return origWarn.apply(console, arguments); };
  function report() {
    var divs = Array.prototype.slice.call(document.querySelectorAll(".plotly-graph-div"));
    var figures = divs.map(function (d) {
      return { id: d.id,
               main_svgs: d.querySelectorAll(".main-svg").length,
               traces: d.querySelectorAll(".main-svg g.trace, .main-svg g.hm, .main-svg .heatmaplayer image").length };
    });
    var resources = (performance.getEntriesByType("resource") || []).map(function (r) { return r.name; });
    var pre = document.createElement("pre");
    pre.id = "%(id)s";
    pre.textContent = JSON.stringify({ figures: figures, errors: errors, warnings: warnings,
                                       resources: resources, plotly: typeof window.Plotly });
    document.body.appendChild(pre);
  }
  window.addEventListener("load", function () {
    var waited = 0;
    (function poll() {
      var divs = document.querySelectorAll(".plotly-graph-div");
      var done = Array.prototype.every.call(divs, function (d) { return d.querySelector(".main-svg"); });
      if (done || waited >= %(wait)d) { setTimeout(report, 100); } else { waited += 100; setTimeout(poll, 100); }
    })();
  });
})();</script>"""


@dataclass(frozen=True)
class FigureRender:
    """One ``.plotly-graph-div`` after rendering: its SVG layers and drawn trace groups."""

    id: str
    main_svgs: int
    traces: int

    @property
    def rendered(self) -> bool:
        return self.main_svgs > 0 and self.traces > 0


@dataclass(frozen=True)
class BrowserResult:
    """What Chromium made of a page.

    ``figures``: one entry per plotly div; ``errors``: uncaught errors, unhandled rejections, console.error
    calls and failed loads; ``external_requests``: resources requested from anywhere but ``file:``/``data:``;
    ``console``: every console line Chromium logged on stderr (all levels, for diagnosis).
    """

    figures: tuple[FigureRender, ...]
    errors: tuple[str, ...]
    warnings: tuple[str, ...]
    external_requests: tuple[str, ...]
    console: tuple[str, ...]
    plotly_loaded: bool

    @property
    def plot_count(self) -> int:
        return len(self.figures)

    @property
    def rendered_count(self) -> int:
        return sum(f.rendered for f in self.figures)

    @property
    def main_svg_count(self) -> int:
        return sum(f.main_svgs for f in self.figures)


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable (env ``CHROMIUM`` first), or None."""
    env = os.environ.get("CHROMIUM")
    if env and Path(env).is_file():
        return env
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def chromium_or_skip() -> str:
    """The Chromium executable; skip the test where it is missing, fail instead when running in CI."""
    path = find_chromium()
    if path is None:
        message = "headless Chromium not found (install Debian's chromium: `make system-deps` as root)"
        if in_ci():
            pytest.fail(message + "; CI must run the browser tests")
        pytest.skip(message)
    return path


def inject_probe(page: str, wait_ms: int = 20000) -> str:
    """``page`` with the probe script placed first in ``<head>`` (or first in the document)."""
    probe = PROBE % {"id": REPORT_ID, "wait": wait_ms}
    match = re.search(r"<head[^>]*>", page, flags=re.IGNORECASE)
    if match:
        return page[:match.end()] + probe + page[match.end():]
    return probe + page


def _console_lines(stderr: str) -> tuple[str, ...]:
    return tuple(m.group(1) for m in re.finditer(r":CONSOLE[^\]]*\]\s*(.*)", stderr))


def render_in_chromium(html_path: str | Path, *, chromium: str | None = None, timeout: float = 120.0,
                       virtual_time_ms: int = 30000) -> BrowserResult:
    """Load ``html_path`` in headless Chromium without network access and report errors and rendered plots.

    Raises ``RuntimeError`` when Chromium is missing, fails, times out or the probe never reports.
    """
    chromium = chromium or find_chromium()
    if chromium is None:
        raise RuntimeError("headless Chromium not found")
    source = Path(html_path)
    with tempfile.TemporaryDirectory(prefix="defdrop-chromium-") as tmp:
        fd, probed = tempfile.mkstemp(prefix=".probe-", suffix=f"-{source.name}", dir=source.parent)
        os.close(fd)
        page = Path(probed)
        try:
            page.write_text(inject_probe(source.read_text(encoding="utf-8"), virtual_time_ms // 2), encoding="utf-8")
            proc, dom, stderr = _run_chromium(chromium, page, Path(tmp), timeout, virtual_time_ms, source)
        finally:
            page.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise RuntimeError(f"Chromium exited with {proc.returncode}: {stderr.strip()[-2000:]}")
    start = dom.rfind(f'<pre id="{REPORT_ID}">')
    if start < 0:
        raise RuntimeError(f"the probe did not report (page never finished loading?); stderr: {stderr[-2000:]}")
    body = dom[start + len(f'<pre id="{REPORT_ID}">'):dom.index("</pre>", start)]
    report = json.loads(html.unescape(body))
    external = tuple(r for r in report["resources"] if not r.startswith(("file:", "data:", "blob:")))
    return BrowserResult(
        figures=tuple(FigureRender(f["id"], int(f["main_svgs"]), int(f["traces"])) for f in report["figures"]),
        errors=tuple(report["errors"]), warnings=tuple(report["warnings"]), external_requests=external,
        console=_console_lines(stderr), plotly_loaded=report["plotly"] != "undefined")


def _run_chromium(chromium: str, page: Path, tmp: Path, timeout: float, virtual_time_ms: int,
                  source: Path) -> tuple[subprocess.Popen, str, str]:
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-extensions", "--disable-dev-shm-usage", "--mute-audio",
           "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
           f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr", "--v=0",
           f"--virtual-time-budget={virtual_time_ms}", "--window-size=1400,1000", "--dump-dom", page.as_uri()]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        dom, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the browser's own process group, started above
        proc.communicate()
        raise RuntimeError(f"Chromium did not finish {source} within {timeout:g} s") from None
    return proc, dom, stderr
