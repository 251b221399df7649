"""What every command shares: options, settings loading, error handling and exit codes.

Exit codes (also in `ccxt-cli --help`):
    0  success
    1  partial success: some exchanges or symbols failed, the rest was done
    2  bad input: arguments, settings, symbols, exchanges or catalog path; nothing was written
    3  failure: nothing could be done (every exchange failed)
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sys
import typing
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


_PLAIN: dict[Any, tuple[type, ...]] = {str: (str,), Path: (str, Path), bool: (bool,)}
"""Parameter type -> the values converted without pydantic."""


def _plain_values_without_pydantic() -> None:
    """typer 0.29 converts every value a command is given (all but flags) through a pydantic TypeAdapter
    (`_TyperParameter.get_runtime_param`, typer/_adapters.py), and importing pydantic for that is about 0.1 s
    of CPU: a third of the start-up of `catalog info`, which needs no pydantic otherwise. For the plain
    parameters our commands take, `str` and `Path` (optional or not) and lists of them, and flags (typer
    converts `--help` and the completion flags too when they are not given), with no parser and no choices,
    this gives typer the same conversion without pydantic: text stays as it is, a `Path` is built from it and
    then checked by typer's own `coerce_cli_path` (exists, readable, ... as declared), a flag's True or False
    stays, a list is converted item by item. Anything else (numbers, choices, a flag given as text, a value
    of another type) goes through typer's own converter, as before. With typer internals other than these
    (another version), nothing changes. tests/test_startup_imports.py checks that both give the same values."""
    try:
        from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
        from typer._param_types import coerce_cli_path
        from typer.core import _TyperParameter
    except ImportError:  # pragma: no cover - another typer
        return
    built = _TyperParameter.get_runtime_param
    if getattr(built, "_plain", False):
        return

    @dataclasses.dataclass(frozen=True)
    class PlainRuntimeParam(RuntimeParam):
        item: type[Any]
        many: bool

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            many = self.many and isinstance(value, list | tuple)
            items = list(value) if many else [value]
            if not all(isinstance(v, _PLAIN[self.item]) for v in items):
                return build_runtime_param(param.type_descriptor)._coerce_value(value, param=param, ctx=ctx)
            out = [self._one(v, param, ctx) for v in items]
            return out if self.many else out[0]

        def _one(self, value: Any, param: Any, ctx: Any) -> Any:
            if self.item is not Path:
                return value
            path = value if isinstance(value, Path) else Path(value)
            return coerce_cli_path(path, self.parameter_info, path_type=Path, param=param, ctx=ctx)

    def plain(descriptor: TypeDescriptor) -> PlainRuntimeParam | None:
        info = descriptor.parameter_info
        if info.parser is not None or descriptor.is_file or descriptor.is_choice:
            return None
        annotation: Any = descriptor.annotation
        many = typing.get_origin(annotation) is list
        item = typing.get_args(annotation)[0] if many else annotation
        if item in _PLAIN and (item is not Path or info.path_type is None):
            return PlainRuntimeParam(info, annotation, item=item, many=many)
        return None

    def get_runtime_param(self: _TyperParameter) -> RuntimeParam:
        if self._runtime_param is None:
            self._runtime_param = plain(self.type_descriptor)
        return built(self)

    get_runtime_param._plain = True  # type: ignore[attr-defined]
    _TyperParameter.get_runtime_param = get_runtime_param  # type: ignore[method-assign]


_plain_values_without_pydantic()

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
