"""Flags show as flags in every command's --help: `--json`, not `--json <bool>` (which invited `--json true`)."""

from __future__ import annotations

import re

import typer
from typer.testing import CliRunner

from ccxt_pipeline.cli import app
from tests.test_cli_docs import leaf_commands
from tests.test_query_cli import pty_run


def _flags(cmd: object) -> list[str]:
    params = getattr(cmd, "params", [])
    return [opt for p in params if getattr(p, "is_flag", False) for opt in p.opts if opt.startswith("--")]


def test_every_commands_help_shows_flags_without_a_value() -> None:
    root = typer.main.get_command(app)
    commands = {"": root, **leaf_commands(root)}
    flags_seen = 0
    for name, cmd in commands.items():
        result = CliRunner().invoke(app, [*name.split(), "--help"], terminal_width=120)
        assert result.exit_code == 0, name
        assert "<bool>" not in result.stdout, f"ccxt-cli {name} --help shows a flag taking a value"
        for flag in [*_flags(cmd), "--help"]:
            # the flag's row: the name, its short form if any, then the help text; no type in between
            row = re.search(rf"│[ *]*{re.escape(flag)}\b(.*)", result.stdout)
            assert row is not None, f"{name}: {flag} not in help"
            assert not re.search(r"<\w+>", row.group(1)), f"{name}: {flag} shown with a type: {row.group(0)}"
            flags_seen += 1
    assert flags_seen >= 30  # --json, --no-store, --all, --repair, --detach, --version and every --help


def test_help_on_a_terminal_shows_json_as_a_flag() -> None:
    code, shown = pty_run(["fetch-oi", "--help"], columns=100)
    assert code == 0, shown
    json_row = next(line for line in shown.splitlines() if "--json" in line)
    assert "<bool>" not in shown
    assert re.search(r"--json\s+Print machine-readable JSON", json_row), json_row
    assert re.search(r"--period\s+<str>", shown)  # options that take a value still say what it is


def test_a_value_given_to_a_flag_is_named_as_such() -> None:
    """`--json true` makes `true` a symbol; say what happened, not that `true` lacks a quote currency."""
    result = CliRunner().invoke(app, ["fetch-oi", "--json", "true"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: 'true' is not a symbol; flags such as --json take no value (write --json alone)"
    ]
