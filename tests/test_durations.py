"""The one duration grammar (ccxt_pipeline.timeutil) and how every command reports a value it cannot use.

Grammar: NUMBER UNIT, NUMBER = digits [ "." digits ], UNIT = s | m | h | d | w. `--from/--to` read it as a
span before now, `--duration` as a span, `--period` as one of the open-interest periods. The library's
errors name the value ("the start time ..."), never a flag; the CLI adds the flag in front (`--from: ...`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from ccxt_pipeline.catalog import FUNDING_RATE, OPEN_INTEREST
from ccxt_pipeline.cli import app
from ccxt_pipeline.collect.run import FetchRequest, check_request
from ccxt_pipeline.errors import InputError, PipelineError
from ccxt_pipeline.settings import load_settings
from ccxt_pipeline.stream.run import StreamRequest, plan_stream
from ccxt_pipeline.timeutil import (
    MAX_SPAN_NS,
    MAX_TS_NS,
    NS_PER_DAY,
    NS_PER_HOUR,
    NS_PER_MINUTE,
    NS_PER_SECOND,
    PERIODS_NS,
    UNIT_NS,
    describe_ns,
    format_duration,
    parse_duration,
    parse_period,
    parse_when,
)

NOW = 1_800_000_000_000_000_000  # 2027-01-15T08:00:00Z


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("90s", 90 * NS_PER_SECOND),
        ("2.5s", 2_500_000_000),
        ("10m", 10 * NS_PER_MINUTE),
        ("1.5h", 90 * NS_PER_MINUTE),
        ("30d", 30 * NS_PER_DAY),
        ("2w", 14 * NS_PER_DAY),
        ("0s", 0),
        (" 12h ", 12 * NS_PER_HOUR),
        ("0.000000001s", 1),
    ],
)
def test_accepted_durations(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize(
    "text", ["", "10", "m", "10x", "10M", "1h30m", "10 m", "-5m", "+5m", ".5h", "5.h", "1e3s", "٣m", "5m\nx"]
)
def test_rejected_durations_name_the_value_and_the_forms(text: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_duration(text)
    assert caught.value.subject == "duration"
    assert (
        str(caught.value)
        == f"cannot read duration {text!r}: use a number and a unit: 90s, 10m, 2.5h, 30d, 2w"
    )


def test_too_long_a_duration_is_refused() -> None:
    assert parse_duration(format_duration(MAX_SPAN_NS)) == MAX_SPAN_NS
    with pytest.raises(InputError, match="too long"):
        parse_duration("99999999999999999999w")


@given(st.integers(min_value=0, max_value=MAX_SPAN_NS))
def test_format_then_parse_is_exact(ns: int) -> None:
    text = format_duration(ns)
    assert parse_duration(text) == ns


@given(
    st.integers(min_value=0, max_value=10**6),
    st.one_of(st.none(), st.integers(min_value=0, max_value=999)),
    st.sampled_from(sorted(UNIT_NS)),
)
def test_the_same_text_means_the_same_span_as_a_duration_and_before_now(
    whole: int, frac: int | None, unit: str
) -> None:
    text = f"{whole}{unit}" if frac is None else f"{whole}.{frac:03d}{unit}"
    expected = whole * UNIT_NS[unit] + (0 if frac is None else frac * UNIT_NS[unit] // 1000)
    if expected > MAX_SPAN_NS:
        with pytest.raises(InputError, match=r"is too long \(at most 36500d\)"):
            parse_duration(text)
    else:
        assert parse_duration(text) == expected
    if expected <= NOW:
        assert parse_when(text, NOW) == NOW - expected
    else:
        with pytest.raises(InputError, match="is outside 1970-01-01T00:00:00Z"):
            parse_when(text, NOW)


@given(st.text(max_size=40))
def test_any_text_is_a_time_in_range_or_one_input_error(text: str) -> None:
    error: InputError | None = None
    try:
        ns = parse_when(text, NOW, "start")
    except InputError as exc:
        error = exc
    if error is None:
        assert 0 <= ns < MAX_TS_NS
    else:
        assert error.subject == "start"
        assert len(str(error).splitlines()) == 1  # one line: the echoed text is repr'd


def test_times_and_their_bounds() -> None:
    assert parse_when("2025-01-01", NOW) == 1_735_689_600_000_000_000
    assert parse_when("2025-01-01T08:00:00Z", NOW) == 1_735_689_600_000_000_000 + 8 * NS_PER_HOUR
    assert parse_when("2025-01-01T09:00:00+01:00", NOW) == 1_735_689_600_000_000_000 + 8 * NS_PER_HOUR
    assert parse_when("90s", NOW) == NOW - 90 * NS_PER_SECOND
    with pytest.raises(InputError, match=r"time '2100-01-01' is outside"):
        parse_when("2100-01-01", NOW)
    with pytest.raises(InputError, match=r"cannot read time 'someday': use a date \(2025-01-01\)"):
        parse_when("someday", NOW)


def test_periods_are_durations_with_a_ccxt_name() -> None:
    for name, ns in PERIODS_NS.items():
        assert parse_period(name) == name
        assert parse_duration(name) == ns  # every period name is itself a duration
    assert parse_period("60m") == "1h"
    assert parse_period("0.5h") == "30m"
    assert parse_period("24h") == "1d"
    with pytest.raises(InputError) as caught:
        parse_period("7m")
    assert caught.value.subject == "period"
    assert str(caught.value) == "unknown period '7m' (periods: 5m, 15m, 30m, 1h, 2h, 4h, 6h, 12h, 1d)"


def test_describe_ns_shows_a_fraction_only_when_there_is_one() -> None:
    assert describe_ns(1_735_689_600_000_000_000) == "2025-01-01T00:00:00Z"
    assert describe_ns(1_735_689_600_250_000_000) == "2025-01-01T00:00:00.25Z"


def test_library_errors_name_the_value_not_a_flag(tmp_path: Path) -> None:
    settings = load_settings(None, overrides={"catalog_path": tmp_path / "catalog"}, environ={})
    future = parse_when("2030-01-01", NOW)
    cases = [
        (FetchRequest(FUNDING_RATE, ["BTCUSDT-PERP"], start=future), "start"),
        (
            FetchRequest(FUNDING_RATE, ["BTCUSDT-PERP"], start=NOW - NS_PER_DAY, end=NOW - 2 * NS_PER_DAY),
            "end",
        ),
        (
            FetchRequest(OPEN_INTEREST, ["BTCUSDT-PERP"], ["binance"], start=NOW - NS_PER_DAY, period="7m"),
            "period",
        ),
        (
            FetchRequest(OPEN_INTEREST, ["BTCUSDT-PERP"], ["bybit"], start=NOW - NS_PER_DAY, period="2h"),
            "period",
        ),
    ]
    messages = []
    for request, subject in cases:
        with pytest.raises(InputError) as caught:
            check_request(settings, request, NOW)
        assert caught.value.subject == subject
        assert "--" not in str(caught.value)
        messages.append(str(caught.value))
    assert messages[0] == "the start time 2030-01-01T00:00:00Z is in the future"
    assert messages[1] == "the end time 2027-01-13T08:00:00Z is before the start time 2027-01-14T08:00:00Z"


def test_stream_plan_errors_name_no_flag(tmp_path: Path) -> None:
    settings = load_settings(None, overrides={"symbols": [], "catalog_path": tmp_path / "c"}, environ={})
    for request, message in [
        (
            StreamRequest(),
            "no symbol to stream: name symbols, ask for the whole market, or set `symbols` in settings",
        ),
        (
            StreamRequest(exchanges=["bybit"], all_market=True),
            "bybit has no all-market liquidation stream; name the symbols instead",
        ),
    ]:
        with pytest.raises(PipelineError) as caught:
            plan_stream(settings, request)
        assert str(caught.value) == message


def _config(tmp_path: Path) -> str:
    path = tmp_path / "ccxt_pipeline.yaml"
    path.write_text(yaml.safe_dump({"catalog_path": str(tmp_path / "catalog")}))
    return str(path)


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ("fetch-oi", "BTCUSDT-PERP", "--from", "10x"),
            "error: --from: cannot read time '10x': use a date (2025-01-01), an ISO datetime "
            "(2025-01-01T08:00:00Z) or a span before now (30d, 12h, 90m, 2w)",
        ),
        (
            ("fetch-funding", "BTCUSDT-PERP", "--from", "2d", "--to", "1h30m"),
            "error: --to: cannot read time '1h30m': use a date (2025-01-01), an ISO datetime "
            "(2025-01-01T08:00:00Z) or a span before now (30d, 12h, 90m, 2w)",
        ),
        (
            ("fetch-oi", "BTCUSDT-PERP", "--from", "1d", "--period", "1w"),
            "error: --period: unknown period '1w' (periods: 5m, 15m, 30m, 1h, 2h, 4h, 6h, 12h, 1d)",
        ),
        (
            ("fetch-oi", "BTCUSDT-PERP", "--from", "2030-01-01"),
            "error: --from: the start time 2030-01-01T00:00:00Z is in the future",
        ),
        (
            ("stream-liquidations", "BTCUSDT-PERP", "--duration", "10x"),
            "error: --duration: cannot read duration '10x': use a number and a unit: 90s, 10m, 2.5h, 30d, 2w",
        ),
        (
            ("stream-liquidations", "-e", "bybit", "--all"),
            "error: bybit has no all-market liquidation stream; name the symbols instead",
        ),
        (
            ("stream-liquidations", "BTCUSDT-PERP", "--duration", "0m"),
            "error: --duration: duration '0m' is zero: streaming would stop at once",
        ),
    ],
)
def test_the_cli_puts_the_flag_in_front_of_the_librarys_line(
    tmp_path: Path, args: tuple[str, ...], line: str
) -> None:
    result = CliRunner().invoke(app, [*args, "--config", _config(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 2
    assert [x for x in result.stderr.splitlines() if x.strip()] == [line]
    assert not (tmp_path / "catalog" / "data").exists()  # nothing written


def test_the_cli_names_its_own_flag_when_no_symbol_is_given(tmp_path: Path) -> None:
    config = tmp_path / "ccxt_pipeline.yaml"
    config.write_text(yaml.safe_dump({"catalog_path": str(tmp_path / "catalog"), "symbols": []}))
    result = CliRunner().invoke(app, ["stream-liquidations", "--config", str(config)], catch_exceptions=False)
    assert result.exit_code == 2
    assert [x for x in result.stderr.splitlines() if x.strip()] == [
        "error: no symbol to stream: name symbols, use --all, or set `symbols` in settings"
    ]
