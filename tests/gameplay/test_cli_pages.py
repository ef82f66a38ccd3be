"""The page options of the commands that write HTML: --plotly inline|directory|cdn and --png (issue 18)."""
from __future__ import annotations

from typer.testing import CliRunner

import cli


def test_solve_page_with_shared_plotly_and_pngs(small_table, write_csv, tmp_path):
    from analysis.static import static_export_unavailable

    csv = write_csv(small_table)
    out = tmp_path / "site" / "solve.html"
    result = CliRunner().invoke(cli.app, ["solve", str(csv), "--max-accuracy-drop", "0.01", "--out", str(out),
                                          "--robustness-samples", "10", "--plotly", "directory", "--png"])
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert 'src="plotly.min.js"' in page and (out.parent / "plotly.min.js").is_file()
    assert len(page) < 200_000  # without the library (about 4.8 MB inline)
    why = static_export_unavailable()
    pngs = sorted(p.name for p in (out.parent / "solve-figures").glob("*.png")) if why is None else []
    if why is None:
        assert pngs == [f"figure-{i}.png" for i in range(1, 5)]
        assert "no PNG figures" not in result.output
    else:
        assert f"no PNG figures written: {why}" in result.output and "Traceback" not in result.output


def test_a_bad_plotly_choice_is_refused_before_any_work(small_table, write_csv, tmp_path, monkeypatch):
    import gameplay.solve

    def never(*args, **kwargs):
        raise AssertionError("solved before checking --plotly")

    monkeypatch.setattr(gameplay.solve, "solve_payoff_csv", never)
    result = CliRunner().invoke(cli.app, ["solve", str(write_csv(small_table)), "--out", str(tmp_path / "r.html"),
                                          "--plotly", "local"])
    assert result.exit_code != 0
    assert "--plotly 'local': choose one of inline, directory, cdn" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "r.html").exists()


def test_every_page_command_offers_the_page_options():
    import typer.main

    group = typer.main.get_command(cli.app)
    for name in ("solve", "gradvar", "audit", "reproduce"):
        command = group.commands[name]
        options = {opt for p in command.params for opt in getattr(p, "opts", [])}
        assert "--plotly" in options, name
        if name != "reproduce":
            assert "--png" in options, name
    reproduce = {p.name: p.default for p in group.commands["reproduce"].params}
    assert reproduce["plotly"] == "directory"
