"""Settings: one YAML file, `CCXT_*` environment variables and command-line flags, validated once.

Precedence, highest first: explicit overrides (command-line flags) > environment `CCXT_*` > config file >
built-in defaults. Layers are deep-merged, so a layer only replaces the keys it names.

Config file, first match wins: the `config_path` argument; else the file named by `$CCXT_CONFIG`; else
`config/ccxt_pipeline.yaml` under the current directory if it exists; else no file. A file named
explicitly (argument or `CCXT_CONFIG`) that does not exist is an error. The top level must be a mapping;
an empty file means no settings. A null section (`schedule:` with everything commented out) means defaults.

Environment: prefix `CCXT_`, `__` between nesting levels, names case-insensitive: `CCXT_CATALOG_PATH`,
`CCXT_SCHEDULE__FUNDING_SECONDS=60`, `CCXT_LOGGING__LEVEL=debug`, `CCXT_EXCHANGES__BINANCE__API_KEY=...`.
Keys below an exchange's `ccxt` keep the case they are written in (`CCXT_EXCHANGES__BINANCE__CCXT__timeout`);
their values are parsed as JSON when they are JSON (`30000` is a number) and kept as text otherwise.
A section, dict or list may be given whole as JSON (`CCXT_SCHEDULE='{"funding_seconds": 60}'`); lists also
take comma-separated text (`CCXT_SYMBOLS=BTCUSDT-PERP,ETHUSDT-PERP`). Empty variables are ignored.
`CCXT_CONFIG` names the file and is not a setting. Any other `CCXT_*` variable whose NAME maps to no
setting is ignored with one warning naming it and the closest known variable (`warn`; other programs may set
`CCXT_*` variables of their own, so they never stop a start-up); an unknown key in a config file, in a JSON
value or in the overrides stays an error, so a typo in a file never passes silently.

Exchanges: `exchanges` is a mapping of name to settings (null means defaults) or a plain list of names.
Names go through `venues.get_venue`, so `binanceusdm` and `Binance` both mean `binance`; two names for one
exchange in the same mapping are an error. The file's `exchanges`, when given, replaces the default set
(binance, bybit, hyperliquid). Environment and override entries are then deep-merged into that set:
`CCXT_EXCHANGES__BINANCE__API_KEY=k` adds a key to the file's binance entry and keeps its other settings,
and an entry for an exchange not yet in the set adds that exchange (enabled unless it also sets
`..._ENABLED=false`); it never drops the others. Only a list (`CCXT_EXCHANGES=binance,bybit`, or a list in
`overrides`) selects exactly those exchanges, keeping whatever settings lower layers gave them.

Errors: every problem raises `ConfigError` with one line naming the source (file path as given,
`environment variable CCXT_...`, or `command-line override`), the dotted key and what is wrong, with a
close-match suggestion for unknown keys. Values of secret-like keys (api key, secret, password, token,
passphrase, private key, ...) and anything under `ccxt` are never shown in messages, reprs or `redacted()`.

`Settings()` on its own reads neither file nor environment; `load_settings()` is the entry point. There is
no global settings object: load once and pass it around.
"""

from __future__ import annotations

import copy
import difflib
import json
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import yaml  # type: ignore[import-untyped, unused-ignore]
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ccxt_pipeline import venues
from ccxt_pipeline.errors import ConfigError, UnknownExchangeError

ENV_PREFIX = "CCXT_"
ENV_NESTED_DELIMITER = "__"
CONFIG_ENV_VAR = "CCXT_CONFIG"
DEFAULT_CONFIG_FILE = Path("config/ccxt_pipeline.yaml")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
ALL_SYMBOLS = "all"
"""`symbols: all`: every active linear perpetual each enabled exchange lists (the daemon, stream-liquidations)."""
MASK = "**********"

_SECRET_WORD = re.compile("apikey|secret|passw|passphrase|token|privatekey|auth|cookie|credential")
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^@/\s]*@")


def is_secret_key(key: object) -> bool:
    """True for a key named like a credential (`api_key`, `apiKey`, `secret`, `password`, `token`, ...)."""
    return _SECRET_WORD.search(re.sub(r"[-_ ]", "", str(key)).lower()) is not None


def redact_freeform(value: Any) -> Any:
    """A copy of free-form config with secret-like keys masked and passwords in URLs (proxies) masked."""
    if isinstance(value, Mapping):
        return {
            key: MASK if is_secret_key(key) and item is not None else redact_freeform(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_freeform(item) for item in value]
    if isinstance(value, str):
        return _URL_PASSWORD.sub(rf"\g<head>:{MASK}@", value)
    return value


def deep_merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """A new dict: `a` updated by `b`, nested mappings merged recursively, `b` winning. Inputs untouched."""
    result = {key: copy.deepcopy(value) for key, value in a.items()}
    for key, value in b.items():
        current = result.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            result[key] = deep_merge(current, value)
        else:
            result[key] = copy.deepcopy(value)
    return result


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoggingSettings(_Section):
    level: str = "INFO"
    format: Literal["text", "json"] = "text"

    @field_validator("level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}")
        return level


class ScheduleSettings(_Section):
    open_interest_seconds: int = Field(default=300, gt=0)
    funding_seconds: int = Field(default=3600, gt=0)


class StreamSettings(_Section):
    """Live streams (liquidations): flushing, staleness and reconnects."""

    flush_seconds: float = Field(default=1.0, gt=0, le=60)
    """The writer flushes at least this often; a SIGKILL loses at most this much."""
    stale_seconds: float = Field(default=30.0, gt=0)
    """A connection with no frame and no pong for this long is dropped and reopened."""
    reconnect_max_seconds: float = Field(default=30.0, gt=0)
    """Cap of the jittered exponential backoff between reconnects."""
    queue_size: int = Field(default=100_000, ge=100)
    """Events buffered between the sockets and the writer."""
    health_seconds: float = Field(default=5.0, gt=0)
    """How often the health line is shown."""


class DaemonSettings(_Section):
    """The collector daemon (`ccxt-cli daemon start`)."""

    status_seconds: float = Field(default=2.0, gt=0)
    """How often the status file is rewritten."""
    open_interest_backfill_days: float = Field(default=29.0, ge=0)
    """Open-interest history the daemon fills in where the exchange keeps it (inside Binance's 30 days)."""
    funding_backfill_days: float = Field(default=30.0, ge=0)
    recycle_clients_hours: float = Field(default=6.0, gt=0)
    """Exchange clients (and their sockets) are replaced this often, so long-lived ones stay healthy."""
    misfire_grace_seconds: int = Field(default=30, ge=1)
    liquidations: bool = True
    """Stream liquidations for `symbols` (where the exchange has a stream)."""
    liquidations_all_market: bool = False
    """Stream every symbol where the exchange offers a whole-market stream (Binance)."""


class RetrySettings(_Section):
    """Retries of temporary exchange failures: capped, jittered exponential backoff honouring Retry-After."""

    attempts: int = Field(default=6, ge=1, le=50)
    backoff_base_seconds: float = Field(default=0.25, gt=0)
    backoff_max_seconds: float = Field(default=30.0, gt=0)
    max_retry_after_seconds: float = Field(default=120.0, gt=0)
    """An exchange asking to wait longer than this (Retry-After) is not asked again: the call gives up."""
    max_total_seconds: float = Field(default=180.0, gt=0)
    """One call's tries and waits together stay within this; then it gives up with one line."""


class ExchangeSettings(_Section):
    enabled: bool = True
    api_key: SecretStr | None = None
    secret: SecretStr | None = None
    password: SecretStr | None = None
    """Passphrase, for exchanges that need one (OKX)."""
    sandbox: bool = False
    pace_requests: bool = True
    """Pace every REST request by the exchange's documented limits (venue table `rest_limits`). Off only
    against a local simulator that enforces none: the real exchanges ban an IP that goes over."""
    pacing_state_dir: Path | None = None
    """Where the pacing ledger lives (what this machine's processes sent the exchange lately, so a rerun
    right after a kill, or a daemon and a one-off fetch, share its limits); None: `$XDG_CACHE_HOME` (else
    `~/.cache`)/ccxt-pipeline/pacing. A limit is per IP: keep one dir per machine."""
    ccxt: dict[str, Any] = Field(default_factory=dict)
    """Free-form ccxt constructor config (urls, options, proxies, timeout), deep-merged over the defaults."""

    def ccxt_config(self, base: Mapping[str, Any]) -> dict[str, Any]:
        """The ccxt constructor config: `base` deep-merged with `ccxt`, plus the credentials that are set."""
        config = deep_merge(base, self.ccxt)
        for key, value in (("apiKey", self.api_key), ("secret", self.secret), ("password", self.password)):
            if value is not None:
                config[key] = value.get_secret_value()
        return config

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, redact_freeform(value) if name == "ccxt" else value


def _default_exchanges() -> dict[str, ExchangeSettings]:
    return {name: ExchangeSettings() for name in venues.DEFAULT_EXCHANGES}


def _normalise_exchanges(value: Any) -> Any:
    """A list or mapping of user-typed names as a mapping keyed by our names; anything else unchanged.

    Raises ValueError (duplicate, non-text name) or UnknownExchangeError.
    """
    if isinstance(value, list | tuple):
        items: list[tuple[Any, Any]] = [(name, None) for name in value]
    elif isinstance(value, Mapping):
        items = list(value.items())
    else:
        return value
    result: dict[str, Any] = {}
    typed: dict[str, str] = {}
    for name, entry in items:
        if not isinstance(name, str):
            raise ValueError(f"exchange names must be text, got {name!r}")
        canonical = venues.get_venue(name).name
        if canonical in result:
            raise ValueError(f"'{typed[canonical]}' and '{name}' are the same exchange '{canonical}'")
        result[canonical], typed[canonical] = ({} if entry is None else entry), name
    return result


class Settings(BaseSettings):
    """The effective settings. Build them with `load_settings()`."""

    # The env naming here documents what load_settings implements; Settings() reads only its arguments.
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_NESTED_DELIMITER, case_sensitive=False, extra="forbid"
    )

    catalog_path: Path = Path("./data/catalog")
    exchanges: dict[str, ExchangeSettings] = Field(default_factory=_default_exchanges)
    symbols: list[str] | Literal["all"] = Field(default_factory=lambda: ["BTCUSDT-PERP", "ETHUSDT-PERP"])
    """Symbols to collect, or `all`: every active linear perpetual each exchange lists, re-read as it lists more
    (`CCXT_SYMBOLS=all`; `[all]`, what a comma-separated variable gives, means the same)."""
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    stream: StreamSettings = Field(default_factory=StreamSettings)
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)

    @field_validator("catalog_path")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("exchanges", mode="before")
    @classmethod
    def _check_exchange_names(cls, value: Any) -> Any:
        try:
            return _normalise_exchanges(value)
        except UnknownExchangeError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("symbols", mode="before")
    @classmethod
    def _check_symbols(cls, value: Any) -> Any:
        def is_all(item: Any) -> bool:
            return isinstance(item, str) and item.strip().lower() == ALL_SYMBOLS

        if not isinstance(value, list | tuple):
            if is_all(value):
                return ALL_SYMBOLS
            raise ValueError(f"expected a list of symbols, or '{ALL_SYMBOLS}' for every linear perpetual")
        if isinstance(value, list | tuple) and any(is_all(item) for item in value):
            if len(value) == 1:
                return ALL_SYMBOLS
            raise ValueError(f"'{ALL_SYMBOLS}' means every linear perpetual: write `symbols: all` alone")
        return value

    @property
    def all_symbols(self) -> bool:
        """`symbols: all`: every active linear perpetual each exchange lists."""
        return self.symbols == ALL_SYMBOLS

    def symbol_list(self) -> list[str]:
        """The symbols named in settings; empty for `symbols: all` (see `all_symbols`)."""
        return [] if isinstance(self.symbols, str) else list(self.symbols)

    def enabled_exchanges(self) -> list[str]:
        """Names of the exchanges to collect from, in configured order."""
        return [name for name, exchange in self.exchanges.items() if exchange.enabled]

    def redacted(self) -> dict[str, Any]:
        """The effective settings as JSON-ready data with every secret shown as `**********`."""
        data = self.model_dump(mode="json")
        for exchange in data["exchanges"].values():
            exchange["ccxt"] = redact_freeform(exchange["ccxt"])
        return data


# ---- loading -----------------------------------------------------------------------------------------

_EXCHANGES, _FREEFORM, _ANY, _LIST, _SCALAR = "exchanges", "freeform", "any", "list", "scalar"
_Node = type[BaseModel] | str
_NOT_JSON = object()


class _Selection(dict[str, Any]):
    """Exchanges given as a list: exactly these, rather than entries merged into the lower layer's set."""


def _child_node(model: type[BaseModel], name: str) -> _Node:
    annotation = model.model_fields[name].annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if model is Settings and name == "exchanges":
        return _EXCHANGES
    origin = get_origin(annotation)
    if origin in (Union, UnionType) and any(get_origin(arg) is list for arg in get_args(annotation)):
        origin = list  # `symbols: list[str] | Literal["all"]` takes comma-separated text from the environment
    return _FREEFORM if origin is dict else _LIST if origin is list else _SCALAR


@dataclass
class _Reader:
    """Checks one source's raw data against the schema, normalises it and records where each key came from."""

    label: str
    provenance: dict[tuple[str, ...], str]
    fold_case: bool = False

    def walk(self, value: Any, node: _Node, path: tuple[str, ...], raw_env: bool = False) -> Any:
        self.provenance[path] = self.label
        if raw_env and isinstance(value, str) and node != _SCALAR:
            return self.walk(self._parse_env(value, node, path), node, path)
        if isinstance(node, type):
            if value is None:
                return {}
            if not isinstance(value, Mapping):
                return value
            result: dict[str, Any] = {}
            for key, item in value.items():
                name = self._field(node, key, path)
                child = _child_node(node, name)
                if not (item is None and child == _EXCHANGES):
                    result[name] = self.walk(item, child, (*path, name), raw_env)
            return result
        if node == _EXCHANGES:
            try:
                named = _normalise_exchanges(value)
            except (ValueError, UnknownExchangeError) as exc:
                raise ConfigError(f"{self.label}: exchanges: {exc}") from None
            if not isinstance(named, dict):
                raise ConfigError(f"{self.label}: exchanges: expected a list of names or a mapping")
            entries = {n: self.walk(e, ExchangeSettings, (*path, n), raw_env) for n, e in named.items()}
            return _Selection(entries) if isinstance(value, list | tuple) else entries
        if node in (_FREEFORM, _ANY) and isinstance(value, Mapping):
            return {key: self.walk(item, _ANY, (*path, str(key)), raw_env) for key, item in value.items()}
        return value

    def _field(self, model: type[BaseModel], key: Any, path: tuple[str, ...]) -> str:
        name = key.lower() if self.fold_case and isinstance(key, str) else key
        if isinstance(name, str) and name in model.model_fields:
            return name
        close = difflib.get_close_matches(str(name), list(model.model_fields), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"{self.label}: unknown key '{'.'.join((*path, str(name)))}'{hint}")

    def _parse_env(self, text: str, node: _Node, path: tuple[str, ...]) -> Any:
        try:
            parsed: Any = json.loads(text)
        except ValueError:
            parsed = _NOT_JSON
        if parsed is not _NOT_JSON:
            return parsed
        if node == _ANY:
            return text
        if node in (_LIST, _EXCHANGES):
            return [part.strip() for part in text.split(",") if part.strip()]
        raise ConfigError(f"{self.label}: expected a JSON object for '{'.'.join(path)}'")


def _choose_config_file(config_path: Path | str | None, environ: Mapping[str, str]) -> Path | None:
    if config_path is not None:
        path, origin = Path(config_path), ""
    else:
        named = next((v for k, v in environ.items() if k.upper() == CONFIG_ENV_VAR and v), None)
        if named is None:
            return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None
        path, origin = Path(named), f" (named by {CONFIG_ENV_VAR})"
    if not path.exists():
        shown = config_path if config_path is not None else path
        raise ConfigError(f"{shown}: config file not found{origin}")
    return path


def _read_yaml(path: Path, label: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"{label}: cannot read config file: {reason}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot parse"
        raise ConfigError(_one_line(f"{label}: invalid YAML{where}: {problem}")) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _env_name_known(parts: list[str]) -> bool:
    """Whether `CCXT_` + `__`.join(parts) names a setting (anything below an exchange's `ccxt` does)."""
    node: _Node = Settings
    for part in parts:
        if isinstance(node, type):
            if part.lower() not in node.model_fields:
                return False
            node = _child_node(node, part.lower())
        elif node == _EXCHANGES:
            try:
                venues.get_venue(part)
            except UnknownExchangeError:
                return False
            node = ExchangeSettings
        else:  # free-form (`ccxt`) takes any key below it; a scalar or list has none
            return node in (_FREEFORM, _ANY)
    return True


def _env_names(model: type[BaseModel] = Settings, prefix: str = ENV_PREFIX) -> list[str]:
    """Every `CCXT_*` variable that names a setting (exchanges under their own names), for suggestions."""
    names = [CONFIG_ENV_VAR] if model is Settings else []
    for field in model.model_fields:
        name = prefix + field.upper()
        names.append(name)
        node = _child_node(model, field)
        if isinstance(node, type):
            names += _env_names(node, name + ENV_NESTED_DELIMITER)
        elif node == _EXCHANGES:
            for exchange in venues.VENUES:
                entry = f"{name}{ENV_NESTED_DELIMITER}{exchange.upper()}"
                names += [entry, *_env_names(ExchangeSettings, entry + ENV_NESTED_DELIMITER)]
    return names


def unknown_env_warning(name: str) -> str:
    """One line for an ignored `CCXT_*` variable: its name and the closest known one (never its value)."""
    close = difflib.get_close_matches(name.upper(), _env_names(), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"environment variable {name} is not a setting and is ignored{hint}"


def _env_layers(
    environ: Mapping[str, str], provenance: dict[tuple[str, ...], str], warn: Callable[[str], None]
) -> list[dict[str, Any]]:
    """One normalised layer per `CCXT_*` variable, shallow names first so finer variables win. A variable
    whose name maps to no setting is left out, with one warning."""
    found = []
    for name, value in environ.items():
        upper = name.upper()
        if upper.startswith(ENV_PREFIX) and upper != CONFIG_ENV_VAR and value != "":
            parts = name[len(ENV_PREFIX) :].split(ENV_NESTED_DELIMITER)
            if not _env_name_known(parts):
                warn(unknown_env_warning(name))
                continue
            found.append((parts, name, value))
    layers = []
    for parts, name, value in sorted(found, key=lambda item: (len(item[0]), item[1])):
        nested: Any = value
        for part in reversed(parts):
            nested = {part: nested}
        reader = _Reader(f"environment variable {name}", provenance, fold_case=True)
        layers.append(reader.walk(nested, Settings, (), raw_env=True))
    return layers


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _drop_none(v) if isinstance(v, Mapping) else v for k, v in values.items() if v is not None}


def _merge_layers(file_layer: dict[str, Any] | None, layers: list[dict[str, Any]]) -> dict[str, Any]:
    exchanges: dict[str, Any] = {name: {} for name in venues.DEFAULT_EXCHANGES}
    merged: dict[str, Any] = {}
    if file_layer is not None:
        file_layer = dict(file_layer)
        if "exchanges" in file_layer:
            exchanges = dict(file_layer.pop("exchanges"))
        merged = file_layer
    for layer in layers:
        rest = dict(layer)
        given = rest.pop("exchanges", None)
        if isinstance(given, _Selection):
            exchanges = {name: exchanges.get(name, {}) for name in given}
        elif given is not None:
            exchanges = deep_merge(exchanges, given)
        merged = deep_merge(merged, rest)
    return {**merged, "exchanges": exchanges}


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())


def _describe(exc: ValidationError, provenance: Mapping[tuple[str, ...], str]) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = tuple(str(part) for part in first["loc"])
    source = next((provenance[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in provenance), "settings")
    text = f"{source}: {'.'.join(loc) or 'settings'}: {first['msg']}"
    value = first.get("input")
    hidden = "ccxt" in loc or any(is_secret_key(part) for part in loc)
    if not hidden and (value is None or isinstance(value, str | int | float | bool)):
        shown = repr(value)
        text += f" (got {shown if len(shown) <= 80 else shown[:77] + '...'})"
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more)"
    return _one_line(text)


def load_settings(
    config_path: Path | str | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> Settings:
    """Load the effective settings: overrides > environment `CCXT_*` > config file > defaults.

    `overrides` is a nested dict of command-line values; None values mean "flag not given" and are ignored.
    `environ` defaults to `os.environ`. `warn` gets one line per ignored `CCXT_*` variable (default: a
    warning on this module's logger). Raises ConfigError (one line, secrets never shown).
    """
    warn = warn or logging.getLogger(__name__).warning
    env = os.environ if environ is None else environ
    provenance: dict[tuple[str, ...], str] = {}
    file_layer = None
    path = _choose_config_file(config_path, env)
    if path is not None:
        label = str(config_path) if config_path is not None else str(path)
        file_layer = _Reader(label, provenance).walk(_read_yaml(path, label), Settings, ())
    layers = _env_layers(env, provenance, warn)
    if overrides:
        layers.append(_Reader("command-line override", provenance).walk(_drop_none(overrides), Settings, ()))
    try:
        return Settings(**_merge_layers(file_layer, layers))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, provenance)) from None


def config_file_in_use(
    config_path: Path | str | None = None, environ: Mapping[str, str] | None = None
) -> Path | None:
    """The config file `load_settings` reads for these arguments (absolute), or None when it reads none
    (defaults, environment and flags only). Raises ConfigError for a named file that does not exist."""
    path = _choose_config_file(config_path, os.environ if environ is None else environ)
    return None if path is None else path.resolve()
