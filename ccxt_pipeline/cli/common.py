"""What every command shares: options, settings loading, error handling and exit codes.

Exit codes (also in `ccxt-cli --help`):
    0  success
    1  partial success: some exchanges or symbols failed, the rest was done
    2  bad input: arguments, settings, symbols, exchanges or catalog path; nothing was written
    3  failure: nothing could be done (every exchange failed)
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from typer.core import TyperOption

from ccxt_pipeline.errors import InputError, PipelineError

if TYPE_CHECKING:  # settings (pydantic-settings) load only in a command that reads them: not for --help
    from ccxt_pipeline.settings import Settings


class Exit(IntEnum):
    OK = 0
    PARTIAL = 1
    BAD_INPUT = 2
    FAILED = 3


EXIT_CODES_HELP = (
    "Exit codes: 0 success; 1 partial success (some exchanges failed); "
    "2 bad input (nothing written); 3 failure (nothing done)."
)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Settings file (default: $CCXT_CONFIG, else config/ccxt_pipeline.yaml).",
        show_default=False,
    ),
]
CatalogOption = Annotated[
    Path | None,
    typer.Option(
        "--catalog", help="Catalog folder (overrides the catalog_path setting).", show_default=False
    ),
]
ExchangeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--exchange",
        "-e",
        help="Exchange to use (repeatable). Default: every enabled exchange.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]


def _flags_show_as_flags() -> None:
    """typer 0.29 prints a type beside every option in --help, flags too (`--json <bool>`, `--help <bool>`),
    which reads as if the flag took a value (`--json true` then fails on `true` as a symbol). Its plain help
    (`TyperOption.get_help_record`) already shows no type for a flag; make the rich help agree."""
    shown = TyperOption.display_type_rich
    if getattr(shown, "_flags_hidden", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag or self.count else shown(self, ctx)

    display_type_rich._flags_hidden = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_show_as_flags()

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

P = ParamSpec("P")
T = TypeVar("T")


def warn(message: str) -> None:
    """One warning line on stderr (a `CCXT_*` variable that is no setting, ...); the command goes on."""
    err.print(f"[bold yellow]warning:[/] {message}", markup=True, highlight=False)


def load_quietly(config: Path | None, catalog: Path | None = None) -> tuple[Settings, list[str]]:
    """Settings and their warnings, for a command that logs them itself (the daemon, once logging is set)."""
    from ccxt_pipeline.settings import load_settings

    warnings: list[str] = []
    return load_settings(config, overrides={"catalog_path": catalog}, warn=warnings.append), warnings


def load(config: Path | None, catalog: Path | None = None) -> Settings:
    """Settings for a command: its flags over the environment over the file over the defaults."""
    from ccxt_pipeline.logs import configure_logging
    from ccxt_pipeline.settings import load_settings

    settings = load_settings(config, overrides={"catalog_path": catalog}, warn=warn)
    configure_logging(settings.logging)
    return settings


DEFAULT_CONFIG_FILE = Path("config/ccxt_pipeline.yaml")
ENV_PREFIX = "CCXT_"
"""`settings.DEFAULT_CONFIG_FILE` and `settings.ENV_PREFIX`, spelt out so that deciding whether settings are
needed loads no settings (a test checks that they agree)."""


def settings_are_defaults(config: Path | None) -> bool:
    """Whether the settings would be the defaults: no `--config`, no `CCXT_*` variable (`CCXT_CONFIG`, a
    setting, or an unknown name `load` would warn about) and no default settings file. A command that needs
    only a default then does without them (`instruments`: the enabled exchanges; `catalog info`: the
    catalog folder it is given, and the default logging, which it does not use): building them
    (pydantic-settings, YAML) would be about half of its start-up."""
    if config is not None or DEFAULT_CONFIG_FILE.is_file():
        return False
    return not any(name.upper().startswith(ENV_PREFIX) for name in os.environ)


def fail(message: str, code: Exit = Exit.BAD_INPUT) -> typer.Exit:
    """Print one clear line to stderr; return the Exit to raise."""
    err.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    return typer.Exit(int(code))


FLAGS = {"start": "--from", "end": "--to", "period": "--period", "duration": "--duration"}
"""The option that gives each value the library names in an InputError (`subject`)."""


def render(exc: PipelineError) -> str:
    """The library's one line, led by the option it concerns: `--from: the start time ... is in the future`."""
    flag = FLAGS.get(exc.subject) if isinstance(exc, InputError) else None
    return f"{flag}: {exc}" if flag else str(exc)


def guarded(func: Callable[P, T]) -> Callable[P, T]:
    """Turn the library's own errors into one line on stderr and exit code 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return func(*args, **kwargs)
        except PipelineError as exc:
            raise fail(render(exc)) from None

    return wrapper


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
