"""Tests for ccxt_pipeline.settings: sources, precedence, errors and secrets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from ccxt_pipeline.errors import ConfigError
from ccxt_pipeline.settings import (
    MASK,
    ExchangeSettings,
    Settings,
    deep_merge,
    is_secret_key,
    load_settings,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "ccxt_pipeline.example.yaml"


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may pick up a real config/ccxt_pipeline.yaml from the working tree."""
    monkeypatch.chdir(tmp_path)


def write(tmp_path: Path, text: str, name: str = "settings.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(*args: Any, **kwargs: Any) -> str:
    """Run load_settings expecting ConfigError; return its one-line message."""
    kwargs.setdefault("environ", {})
    with pytest.raises(ConfigError) as info:
        load_settings(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    # Nothing chained: a ValidationError or YAML error would print input values (secrets) in a traceback.
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__
    return message


# ---- defaults and the example file -------------------------------------------------------------------


def test_defaults_without_file_or_env() -> None:
    settings = load_settings(environ={})
    assert settings.catalog_path == Path("data/catalog")
    assert settings.enabled_exchanges() == ["binance", "bybit", "hyperliquid"]
    assert settings.symbols == ["BTCUSDT-PERP", "ETHUSDT-PERP"]
    assert settings.schedule.open_interest_seconds == 300
    assert settings.schedule.funding_seconds == 3600
    assert settings.logging.level == "INFO"
    assert settings.logging.format == "text"
    assert all(e == ExchangeSettings() for e in settings.exchanges.values())
    assert isinstance(settings, Settings)


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "# nothing\n"), environ={}) == load_settings(environ={})


def test_null_sections_mean_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "schedule:\nlogging:\nexchanges:\n"), environ={})
    assert settings == load_settings(environ={})


def test_example_file_loads_with_the_values_it_states() -> None:
    settings = load_settings(EXAMPLE, environ={})
    assert settings.catalog_path == Path("data/catalog")
    assert list(settings.exchanges) == ["binance", "bybit", "hyperliquid"]
    assert settings.enabled_exchanges() == ["binance", "bybit", "hyperliquid"]
    assert all(not e.sandbox and e.api_key is None and e.ccxt == {} for e in settings.exchanges.values())
    assert settings.symbols == ["BTCUSDT-PERP", "ETHUSDT-PERP"]
    assert (settings.schedule.open_interest_seconds, settings.schedule.funding_seconds) == (300, 3600)
    assert (settings.logging.level, settings.logging.format) == ("INFO", "text")
    assert settings == load_settings(environ={})  # it says its values are the defaults


def test_example_commented_ccxt_block_is_valid(tmp_path: Path) -> None:
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    start = lines.index("    # ccxt:")
    end = start + 1
    while lines[end].startswith("    #   "):
        end += 1
    lines[start:end] = ["    " + line[len("    # ") :] for line in lines[start:end]]
    settings = load_settings(write(tmp_path, "\n".join(lines)), environ={})
    ccxt = settings.exchanges["binance"].ccxt
    assert ccxt["timeout"] == 30000
    assert ccxt["urls"]["api"]["fapiPublic"].startswith("https://")
    assert (
        settings.redacted()["exchanges"]["binance"]["ccxt"]["httpsProxy"]
        == f"http://user:{MASK}@proxy.local:8080"
    )


# ---- precedence --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file_text", "env", "overrides", "expected"),
    [
        ("", {}, None, Path("data/catalog")),
        ("catalog_path: /from/file\n", {}, None, Path("/from/file")),
        ("catalog_path: /from/file\n", {"CCXT_CATALOG_PATH": "/from/env"}, None, Path("/from/env")),
        (
            "catalog_path: /from/file\n",
            {"CCXT_CATALOG_PATH": "/from/env"},
            {"catalog_path": Path("/from/flag")},
            Path("/from/flag"),
        ),
        (
            "catalog_path: /from/file\n",
            {"CCXT_CATALOG_PATH": "/from/env"},
            {"catalog_path": None},
            Path("/from/env"),
        ),
    ],
)
def test_precedence_scalar(
    tmp_path: Path, file_text: str, env: dict[str, str], overrides: dict[str, Any] | None, expected: Path
) -> None:
    settings = load_settings(write(tmp_path, file_text), overrides=overrides, environ=env)
    assert settings.catalog_path == expected


@pytest.mark.parametrize(
    ("file_value", "env_value", "override_value", "expected"),
    [
        (None, None, None, 3600),
        (120, None, None, 120),
        (120, "60", None, 60),
        (120, "60", 30, 30),
        (None, None, 30, 30),
    ],
)
def test_precedence_nested(
    tmp_path: Path, file_value: int | None, env_value: str | None, override_value: int | None, expected: int
) -> None:
    text = "schedule:\n  open_interest_seconds: 10\n"
    if file_value is not None:
        text += f"  funding_seconds: {file_value}\n"
    env = {} if env_value is None else {"CCXT_SCHEDULE__FUNDING_SECONDS": env_value}
    overrides = {"schedule": {"funding_seconds": override_value}}
    settings = load_settings(write(tmp_path, text), overrides=overrides, environ=env)
    assert settings.schedule.funding_seconds == expected
    assert settings.schedule.open_interest_seconds == 10  # siblings from the file survive every layer


def test_env_names_are_case_insensitive() -> None:
    settings = load_settings(environ={"ccxt_logging__level": "debug", "CCXT_Logging__Format": "json"})
    assert (settings.logging.level, settings.logging.format) == ("DEBUG", "json")


def test_env_lists_and_json_sections() -> None:
    env = {
        "CCXT_SYMBOLS": "SOLUSDT-PERP, XRPUSDT-PERP",
        "CCXT_SCHEDULE": '{"funding_seconds": 60, "open_interest_seconds": 5}',
        "CCXT_SCHEDULE__OPEN_INTEREST_SECONDS": "7",  # finer variable wins over the JSON section
    }
    settings = load_settings(environ=env)
    assert settings.symbols == ["SOLUSDT-PERP", "XRPUSDT-PERP"]
    assert (settings.schedule.funding_seconds, settings.schedule.open_interest_seconds) == (60, 7)
    assert load_settings(environ={"CCXT_SYMBOLS": '["A-PERP"]'}).symbols == ["A-PERP"]


def test_empty_env_values_and_ccxt_config_are_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, "catalog_path: /x\n")
    settings = load_settings(path, environ={"CCXT_CATALOG_PATH": "", "CCXT_CONFIG": str(path)})
    assert settings.catalog_path == Path("/x")


# ---- exchanges ---------------------------------------------------------------------------------------


def test_exchanges_list_form(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "exchanges: [bybit, okx]\n"), environ={})
    assert list(settings.exchanges) == ["bybit", "okx"]
    assert all(e == ExchangeSettings() for e in settings.exchanges.values())


def test_exchange_aliases_are_normalised(tmp_path: Path) -> None:
    text = "exchanges:\n  BinanceUSDM: {sandbox: true}\n  Bybit-Linear:\n  HYPERLIQUID: {enabled: false}\n"
    settings = load_settings(write(tmp_path, text), environ={})
    assert list(settings.exchanges) == ["binance", "bybit", "hyperliquid"]
    assert settings.exchanges["binance"].sandbox
    assert settings.exchanges["bybit"] == ExchangeSettings()
    assert settings.enabled_exchanges() == ["binance", "bybit"]
    assert list(Settings(exchanges=["binanceusdm", "Bybit"]).exchanges) == ["binance", "bybit"]


def test_unknown_exchange_names_it_and_suggests(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, "exchanges: [binanse]\n"))
    assert "settings.yaml" in message
    assert "binanse" in message
    assert "did you mean 'binance'?" in message
    message = config_error(environ={"CCXT_EXCHANGES": "binance,bybt"})  # a value: still an error
    assert message.startswith("environment variable CCXT_EXCHANGES: exchanges: unknown exchange 'bybt'")
    assert "did you mean 'bybit'?" in message
    warnings: list[str] = []  # a variable's name: a warning, like any name that is no setting
    load_settings(environ={"CCXT_EXCHANGES__BYBT__API_KEY": "k"}, warn=warnings.append)
    assert warnings == [
        "environment variable CCXT_EXCHANGES__BYBT__API_KEY is not a setting and is ignored; "
        "did you mean CCXT_EXCHANGES__BYBIT__API_KEY?"
    ]


def test_same_exchange_twice_is_an_error(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, "exchanges:\n  binance: {}\n  binanceusdm: {sandbox: true}\n"))
    assert "binance" in message
    assert "binanceusdm" in message
    assert "same exchange" in message
    with pytest.raises(ValidationError):
        Settings(exchanges=["binance", "BINANCE"])


def test_env_api_key_merges_into_file_exchange_entry(tmp_path: Path) -> None:
    path = write(tmp_path, "exchanges:\n  binance:\n    sandbox: true\n    ccxt: {timeout: 1000}\n")
    settings = load_settings(path, environ={"CCXT_EXCHANGES__BINANCE__API_KEY": "k"})
    binance = settings.exchanges["binance"]
    assert binance.sandbox
    assert binance.ccxt == {"timeout": 1000}
    assert binance.api_key is not None
    assert binance.api_key.get_secret_value() == "k"
    assert list(settings.exchanges) == ["binance"]  # the file's set; env added nothing else


def test_env_exchange_entry_keeps_default_exchanges() -> None:
    settings = load_settings(environ={"CCXT_EXCHANGES__BYBIT__API_KEY": "k"})
    assert list(settings.exchanges) == ["binance", "bybit", "hyperliquid"]
    assert settings.exchanges["bybit"].api_key == SecretStr("k")


def test_env_entry_for_exchange_not_in_file_adds_it(tmp_path: Path) -> None:
    path = write(tmp_path, "exchanges: [binance]\n")
    env = {"CCXT_EXCHANGES__OKX__PASSWORD": "p", "CCXT_EXCHANGES__OKX__ENABLED": "false"}
    settings = load_settings(path, environ=env)
    assert list(settings.exchanges) == ["binance", "okx"]
    assert settings.enabled_exchanges() == ["binance"]


def test_exchange_list_in_env_or_overrides_selects_keeping_settings(tmp_path: Path) -> None:
    path = write(tmp_path, "exchanges:\n  binance: {sandbox: true}\n  bybit: {}\n")
    settings = load_settings(path, environ={"CCXT_EXCHANGES": "binance"})
    assert list(settings.exchanges) == ["binance"]
    assert settings.exchanges["binance"].sandbox
    settings = load_settings(path, overrides={"exchanges": ["bybit", "okx"]}, environ={})
    assert list(settings.exchanges) == ["bybit", "okx"]


def test_env_ccxt_keys_keep_their_case_and_parse_json() -> None:
    env = {
        "CCXT_EXCHANGES__BINANCE__CCXT__timeout": "30000",
        "CCXT_EXCHANGES__BINANCE__CCXT__httpsProxy": "http://proxy:8080",
        "CCXT_EXCHANGES__BINANCE__CCXT__options": '{"adjustForTimeDifference": true}',
    }
    ccxt = load_settings(environ=env).exchanges["binance"].ccxt
    assert ccxt == {
        "timeout": 30000,
        "httpsProxy": "http://proxy:8080",
        "options": {"adjustForTimeDifference": True},
    }


# ---- ccxt_config and deep_merge ----------------------------------------------------------------------


def test_ccxt_config_deep_merges_and_adds_credentials() -> None:
    base = {"options": {"defaultType": "swap", "fetchMarkets": {"types": ["linear"]}}, "timeout": 10000}
    exchange = ExchangeSettings(
        api_key=SecretStr("key"),
        password=SecretStr("pass"),
        ccxt={"options": {"defaultType": "future", "newOption": 1}, "urls": {"api": "https://x"}},
    )
    config = exchange.ccxt_config(base)
    assert config == {
        "options": {"defaultType": "future", "fetchMarkets": {"types": ["linear"]}, "newOption": 1},
        "timeout": 10000,
        "urls": {"api": "https://x"},
        "apiKey": "key",
        "password": "pass",
    }
    assert "secret" not in config
    assert base["options"] == {"defaultType": "swap", "fetchMarkets": {"types": ["linear"]}}


def test_deep_merge_does_not_mutate_or_share() -> None:
    a: dict[str, Any] = {"x": {"y": 1, "z": [1]}, "keep": True}
    b: dict[str, Any] = {"x": {"y": 2, "w": {"v": 3}}, "new": "n"}
    merged = deep_merge(a, b)
    assert merged == {"x": {"y": 2, "z": [1], "w": {"v": 3}}, "keep": True, "new": "n"}
    merged["x"]["z"].append(2)
    merged["x"]["w"]["v"] = 4
    assert a == {"x": {"y": 1, "z": [1]}, "keep": True}
    assert b == {"x": {"y": 2, "w": {"v": 3}}, "new": "n"}
    assert deep_merge({"x": {"y": 1}}, {"x": 5}) == {"x": 5}


# ---- file selection ----------------------------------------------------------------------------------


def test_missing_explicit_config_file(tmp_path: Path) -> None:
    message = config_error(tmp_path / "nope.yaml")
    assert "nope.yaml" in message
    assert "not found" in message
    message = config_error(environ={"CCXT_CONFIG": "missing/ccxt.yaml"})
    assert "missing/ccxt.yaml" in message
    assert "CCXT_CONFIG" in message


def test_ccxt_config_env_selects_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "symbols: [SOLUSDT-PERP]\n", name="chosen.yaml")
    assert load_settings(environ={"CCXT_CONFIG": str(path)}).symbols == ["SOLUSDT-PERP"]


def test_argument_beats_ccxt_config_env(tmp_path: Path) -> None:
    chosen = write(tmp_path, "symbols: [A-PERP]\n", name="a.yaml")
    other = write(tmp_path, "symbols: [B-PERP]\n", name="b.yaml")
    assert load_settings(str(chosen), environ={"CCXT_CONFIG": str(other)}).symbols == ["A-PERP"]


def test_default_file_is_found_in_cwd(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    write(
        tmp_path / "config",
        "symbols: [DOGEUSDT-PERP]\nschedule: {funding_seconds: hourly}\n",
        "ccxt_pipeline.yaml",
    )
    message = config_error()
    assert message.startswith("config/ccxt_pipeline.yaml: schedule.funding_seconds: ")
    write(tmp_path / "config", "symbols: [DOGEUSDT-PERP]\n", "ccxt_pipeline.yaml")
    assert load_settings(environ={}).symbols == ["DOGEUSDT-PERP"]


# ---- errors ------------------------------------------------------------------------------------------


def test_unknown_key_in_file_names_path_key_and_suggestion(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    path = write(tmp_path / "config", "exchanges:\n  binance:\n    api_kye: abc\n", "x.yaml")
    message = config_error("config/x.yaml")
    assert message == "config/x.yaml: unknown key 'exchanges.binance.api_kye'; did you mean 'api_key'?"
    assert "abc" not in message
    message = config_error(path, environ={})
    assert message.startswith(f"{path}: unknown key")


@pytest.mark.parametrize(
    ("text", "key", "hint"),
    [
        ("catalog_pth: x\n", "catalog_pth", "catalog_path"),
        ("schedule: {funding_second: 1}\n", "schedule.funding_second", "funding_seconds"),
        ("logging: {fromat: json}\n", "logging.fromat", "format"),
        ("Symbols: [A]\n", "Symbols", "symbols"),
        ("zzz: 1\n", "zzz", None),
    ],
)
def test_unknown_keys_at_every_level(tmp_path: Path, text: str, key: str, hint: str | None) -> None:
    message = config_error(write(tmp_path, text))
    assert f"unknown key '{key}'" in message
    assert (f"did you mean '{hint}'?" in message) if hint else ("did you mean" not in message)


def test_unknown_env_variable_is_a_warning_naming_it_and_the_closest_key() -> None:
    warnings: list[str] = []
    environ = {
        "CCXT_SCHEDUEL__FUNDING_SECONDS": "60",
        "CCXT_EXCHANGES__BINANCE__APIKEY": "sekret",
        "CCXT_LOGGING__LEVEL": "debug",
    }
    settings = load_settings(environ=environ, warn=warnings.append)
    assert settings.logging.level == "DEBUG"  # the known variables still apply
    assert settings.schedule.funding_seconds == 3600
    assert settings.exchanges["binance"].api_key is None
    assert sorted(warnings) == [
        "environment variable CCXT_EXCHANGES__BINANCE__APIKEY is not a setting and is ignored; "
        "did you mean CCXT_EXCHANGES__BINANCE__API_KEY?",
        "environment variable CCXT_SCHEDUEL__FUNDING_SECONDS is not a setting and is ignored; "
        "did you mean CCXT_SCHEDULE__FUNDING_SECONDS?",
    ]
    assert not any("sekret" in w for w in warnings)


@pytest.mark.parametrize(
    "name",
    [
        "CCXT_SCHEDULE__FUNDING_SECONDS__X",  # below a number
        "CCXT_SYMBOLS__0",  # below a list
        "CCXT_EXCHANGES__BINANSE__API_KEY",  # no such exchange
        "CCXT_",
    ],
)
def test_unknown_env_variable_shapes_warn(name: str) -> None:
    warnings: list[str] = []
    assert load_settings(environ={name: "1"}, warn=warnings.append) == load_settings(environ={})
    assert len(warnings) == 1
    assert warnings[0].startswith(f"environment variable {name} is not a setting")


def test_known_env_variables_never_warn() -> None:
    warnings: list[str] = []
    environ = {
        "CCXT_CONFIG": "",
        "ccxt_catalog_path": "x",
        "CCXT_EXCHANGES__BINANCEUSDM__CCXT__options": '{"a": 1}',
        "CCXT_EXCHANGES__OKX__ENABLED": "false",
        "CCXT_DAEMON__LIQUIDATIONS": "false",
    }
    load_settings(environ=environ, warn=warnings.append)
    assert warnings == []


def test_unknown_env_variable_warns_on_the_logger_by_default(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="ccxt_pipeline.settings"):
        load_settings(environ={"CCXT_FOO": "1"})
    assert [r.getMessage().split(";")[0] for r in caplog.records] == [
        "environment variable CCXT_FOO is not a setting and is ignored"
    ]


def test_cli_warns_once_for_an_unknown_env_variable_and_goes_on(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ccxt_pipeline.cli import app

    env = {"CCXT_SCHEDUEL__FUNDING_SECONDS": "60", "CCXT_SCHEDULE__OPEN_INTEREST_SECONDS": "60"}
    result = CliRunner().invoke(app, ["config", "show", "--json"], env=env)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines() == [
        "warning: environment variable CCXT_SCHEDUEL__FUNDING_SECONDS is not a setting and is ignored; "
        "did you mean CCXT_SCHEDULE__FUNDING_SECONDS?"
    ]
    assert json.loads(result.stdout)["settings"]["schedule"]["open_interest_seconds"] == 60


def test_unknown_key_in_a_file_stays_an_error_through_the_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ccxt_pipeline.cli import app

    path = write(tmp_path, "schedule: {funding_secs: 1}\n")
    result = CliRunner().invoke(app, ["config", "show", "--config", str(path)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: {path}: unknown key 'schedule.funding_secs'; did you mean 'funding_seconds'?"
    ]


def test_config_show_names_the_file_it_read_and_the_absolute_catalog(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ccxt_pipeline.cli import app

    runner = CliRunner()
    none = runner.invoke(app, ["config", "show"], env={"CCXT_CONFIG": None})
    assert none.exit_code == 0, none.stderr
    assert none.stdout.splitlines()[:2] == [
        "# config file: none (defaults, CCXT_* environment and flags only)",
        f"# catalog: {tmp_path.resolve() / 'data' / 'catalog'}",
    ]
    (tmp_path / "config").mkdir()
    write(tmp_path / "config", "catalog_path: ../store\n", "ccxt_pipeline.yaml")  # found in the cwd
    found = runner.invoke(app, ["config", "show", "--json"], env={"CCXT_CONFIG": None})
    data = json.loads(found.stdout)
    assert data["config_file"] == str(tmp_path.resolve() / "config" / "ccxt_pipeline.yaml")
    assert data["catalog"] == str(tmp_path.resolve().parent / "store")
    assert data["settings"]["catalog_path"] == "../store"
    named = write(tmp_path, "symbols: [SOLUSDT-PERP]\n", "other.yaml")
    text = runner.invoke(app, ["config", "show", "-c", "other.yaml", "--catalog", "cat"]).stdout
    assert text.splitlines()[:2] == [
        f"# config file: {named.resolve()}",
        f"# catalog: {tmp_path.resolve() / 'cat'}",
    ]


def test_unknown_key_inside_env_json(tmp_path: Path) -> None:
    message = config_error(environ={"CCXT_SCHEDULE": '{"funding_secs": 1}'})
    assert message.startswith("environment variable CCXT_SCHEDULE: unknown key 'schedule.funding_secs'")


def test_unknown_override_key() -> None:
    assert "unknown key 'catalog'" in config_error(overrides={"catalog": "x"})


def test_wrong_type_names_key_path_and_file(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, "schedule:\n  funding_seconds: hourly\n", name="x.yaml"))
    assert message.startswith(
        f"{tmp_path / 'x.yaml'}: schedule.funding_seconds: Input should be a valid integer"
    )
    assert message.endswith("(got 'hourly')")


def test_wrong_type_reports_first_and_counts_the_rest(tmp_path: Path) -> None:
    text = "schedule: {funding_seconds: 0, open_interest_seconds: x}\nlogging: {level: loud, format: xml}\n"
    message = config_error(write(tmp_path, text))
    assert "schedule.open_interest_seconds" in message
    assert message.endswith("(and 3 more)")


def test_wrong_type_is_attributed_to_its_source(tmp_path: Path) -> None:
    path = write(tmp_path, "schedule: {funding_seconds: 60}\nlogging: {level: loud}\n")
    message = config_error(path, environ={"CCXT_SCHEDULE__FUNDING_SECONDS": "soon"})
    assert message.startswith(
        "environment variable CCXT_SCHEDULE__FUNDING_SECONDS: schedule.funding_seconds:"
    )
    assert message.endswith("(and 1 more)")
    message = config_error(path, overrides={"schedule": {"open_interest_seconds": -1}})
    assert message.startswith("command-line override: schedule.open_interest_seconds:")
    message = config_error(path)
    assert message.startswith(f"{path}: logging.level: Value error, log level must be one of DEBUG")


def test_log_level_is_case_insensitive_and_stored_upper(tmp_path: Path) -> None:
    assert (
        load_settings(write(tmp_path, "logging: {level: warning}\n"), environ={}).logging.level == "WARNING"
    )


@pytest.mark.parametrize(
    ("text", "line"),
    [("schedule:\n  funding_seconds: [1\n", 3), ("a: b: c\n", 1), ("x:\n\t- 1\n", 2)],
)
def test_bad_yaml_names_file_line_and_column(tmp_path: Path, text: str, line: int) -> None:
    message = config_error(write(tmp_path, text))
    assert message.startswith(f"{tmp_path / 'settings.yaml'}: invalid YAML at line {line}, column ")


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    assert "expected a mapping at the top level" in config_error(write(tmp_path, text))


def test_unreadable_config_file(tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()
    assert "cannot read config file" in config_error(tmp_path / "dir.yaml")
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00")
    assert "cannot read config file" in config_error(tmp_path / "bin.yaml")


def test_env_section_must_be_json() -> None:
    message = config_error(environ={"CCXT_EXCHANGES__BINANCE__CCXT": "{not json sekret"})
    assert "CCXT_EXCHANGES__BINANCE__CCXT" in message
    assert "sekret" not in message


# ---- secrets -----------------------------------------------------------------------------------------

SECRET_FILE = """\
exchanges:
  binance:
    api_key: sekret-key
    secret: sekret-secret
    password: sekret-pass
    ccxt:
      apiKey: sekret-ccxt-key
      headers: {Authorization: Bearer sekret-token}
      httpsProxy: http://user:sekret-proxy@proxy.local:3128
      proxies: {https: "https://u:sekret-proxy2@p:1"}
      timeout: 1000
"""


def test_secrets_never_in_repr_str_or_redacted(tmp_path: Path) -> None:
    settings = load_settings(
        write(tmp_path, SECRET_FILE), environ={"CCXT_EXCHANGES__BYBIT__SECRET": "sekret-env"}
    )
    for text in (repr(settings), str(settings), repr(settings.exchanges["binance"]), str(settings.exchanges)):
        assert "sekret" not in text
    redacted = settings.redacted()
    dumped = json.dumps(redacted)
    assert "sekret" not in dumped
    binance = redacted["exchanges"]["binance"]
    assert (binance["api_key"], binance["secret"], binance["password"]) == (MASK, MASK, MASK)
    assert binance["ccxt"]["apiKey"] == MASK
    assert binance["ccxt"]["headers"] == {"Authorization": MASK}
    assert binance["ccxt"]["httpsProxy"] == f"http://user:{MASK}@proxy.local:3128"
    assert binance["ccxt"]["timeout"] == 1000
    assert redacted["exchanges"]["bybit"]["secret"] == MASK
    assert list(redacted["exchanges"]) == ["binance", "bybit"]
    assert redacted["exchanges"]["bybit"]["api_key"] is None
    assert redacted["catalog_path"] == "data/catalog"
    # ...while the real values are still there for the exchange client.
    config = settings.exchanges["binance"].ccxt_config({})
    assert (config["apiKey"], config["secret"], config["password"]) == (
        "sekret-key",
        "sekret-secret",
        "sekret-pass",
    )


@pytest.mark.parametrize(
    ("text", "env"),
    [
        ("exchanges:\n  binance:\n    api_key: 12345678\n", {}),
        ("exchanges:\n  binance:\n    password: [sekret1]\n", {}),
        ("exchanges:\n  binance:\n    ccxt: sekret-proxy-string\n", {}),
        ("exchanges:\n  binance: {}\n", {"CCXT_EXCHANGES__BINANCE__CCXT": '"sekret-string"'}),
        ("exchanges:\n  binance: {}\n", {"CCXT_EXCHANGES__BINANCE": '{"secret": 12345678}'}),
    ],
)
def test_secret_values_never_in_error_messages(tmp_path: Path, text: str, env: dict[str, str]) -> None:
    message = config_error(write(tmp_path, text), environ=env)
    assert "binance" in message
    assert "12345678" not in message
    assert "sekret" not in message


def test_is_secret_key() -> None:
    for key in ("api_key", "apiKey", "API-KEY", "secret", "secretKey", "password", "passphrase", "token"):
        assert is_secret_key(key), key
    assert is_secret_key("privateKey")
    for key in ("timeout", "urls", "options", "enabled", "sandbox"):
        assert not is_secret_key(key), key
