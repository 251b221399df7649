"""Every command explains itself: help text with an example, and a mention in the README."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ccxt_pipeline.cli import app

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def leaf_commands(group: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, cmd in group.commands.items():
        full = f"{prefix}{name}"
        if hasattr(cmd, "commands"):  # a group (typer ships its own click)
            out.update(leaf_commands(cmd, full + " "))
        else:
            out[full] = cmd
    return out


def test_every_command_has_help_with_an_example_and_is_in_the_readme() -> None:
    commands = leaf_commands(typer.main.get_command(app))
    assert len(commands) >= 12
    for name, cmd in commands.items():
        assert "Example" in (cmd.help or ""), f"{name}: no example in its help"
        assert f"ccxt-cli {name}" in README or f"ccxt-cli {name.split()[0]}" in README, (
            f"{name} not in README"
        )
