"""The HTTP API (`ccxt_pipeline.serve.api`) over a catalog filled through the CLI from the simulator.

The catalog is filled once per module by the real commands (`stream-liquidations`, `fetch-oi`,
`fetch-funding`) against the simulator, driven by the real ccxt; the app is FastAPI's TestClient over it.
`ccxt-cli serve` itself runs once as a subprocess; the daemon test cuts one exchange's stream and watches
/exchanges/health and /metrics say so.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from ccxt_pipeline.catalog import LIQUIDATION, CatalogReader
from ccxt_pipeline.cli import app as cli_app
from ccxt_pipeline.serve.api import create_app
from ccxt_pipeline.settings import load_settings
from ccxt_pipeline.simulator.server import ExchangeSimulator
from tests.conftest import SimulatorThread, sim_settings, wait_for
from tests.test_stream import expected_row, stored_rows

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A catalog filled by the CLI from the simulator: ~2.5 s of liquidations on Binance and Bybit, 6 hours
    of 5-minute open interest, 3 days of settled funding. Yields the config, catalog and what was sent."""
    tmp = tmp_path_factory.mktemp("serve")
    with SimulatorThread(ExchangeSimulator(seed=14)) as sim:
        sim.liquidations.rate_per_s = {"binance": 25.0, "bybit": 25.0}
        config = tmp / "config.yaml"
        config.write_text(yaml.safe_dump(sim_settings(sim, tmp / "catalog", stream={"flush_seconds": 0.5})))
        runner = CliRunner()
        for args in (
            ["stream-liquidations", "BTCUSDT-PERP", "--duration", "2.5s"],
            ["fetch-oi", "BTCUSDT-PERP", "--from", "6h"],
            ["fetch-funding", "BTCUSDT-PERP", "--from", "3d"],
        ):
            result = runner.invoke(cli_app, [*args, "--config", str(config)])
            assert result.exit_code == 0, (args, result.stderr)
        sent = list(sim.liquidations.sent)
    catalog = tmp / "catalog"
    assert sorted(stored_rows(catalog)) == sorted(expected_row(e) for e in sent)
    return {"config": config, "catalog": catalog, "sent": sent}


@pytest.fixture(scope="module")
def client(filled: dict[str, Any]) -> Iterator[TestClient]:
    settings = load_settings(filled["config"])
    with TestClient(create_app(settings)) as c:
        yield c


def test_exchanges_lists_the_configured_ones(client: TestClient) -> None:
    body = client.get("/exchanges").json()
    assert [(e["name"], e["enabled"], e["streams_liquidations"]) for e in body["exchanges"]] == [
        ("binance", True, True),
        ("bybit", True, True),
        ("hyperliquid", True, False),
    ]


def test_heatmap_totals_equal_the_stored_events_per_exchange_and_side(
    client: TestClient, filled: dict[str, Any]
) -> None:
    stored = CatalogReader(filled["catalog"]).query(LIQUIDATION)
    expected: dict[str, dict[str, float]] = defaultdict(lambda: {"long": 0.0, "short": 0.0})
    for ex, side, notional in zip(
        *(stored.column(c).to_pylist() for c in ("exchange", "side", "notional")), strict=True
    ):
        expected[ex]["long" if side == "LONG" else "short"] += notional
    # ... and those are what the simulator sent (the side is the side of the position liquidated)
    sent: dict[str, dict[str, float]] = defaultdict(lambda: {"long": 0.0, "short": 0.0})
    for e in filled["sent"]:
        sent[e.exchange]["long" if e.liquidated_side == "LONG" else "short"] += e.price * e.quantity
    flat = {(ex, side): v for ex, sides in expected.items() for side, v in sides.items()}
    assert {(ex, side): v for ex, sides in sent.items() for side, v in sides.items()} == pytest.approx(flat)
    assert all(v["long"] > 0 and v["short"] > 0 for v in expected.values())

    for bucket, step in (("auto", "auto"), ("1s", "5"), ("1h", "0.5")):
        r = client.get(
            "/liquidations/heatmap",
            params={
                "symbol": "BTCUSDT-PERP",
                "exchanges": "binance,bybit",
                "from": "1h",
                "bucket": bucket,
                "price_step": step,
            },
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["events"] == stored.num_rows
        for ex in ("binance", "bybit"):
            for side in ("long", "short"):
                assert body["totals"][ex][side] == pytest.approx(expected[ex][side], rel=1e-9)
                in_cells = math.fsum(c["by_exchange"].get(ex, {}).get(side, 0.0) for c in body["cells"])
                assert in_cells == pytest.approx(expected[ex][side], rel=1e-9)
        for c in body["cells"]:
            assert 0 <= c["t"] < len(body["time_buckets"])
            assert 0 <= c["p"] < len(body["price_buckets"])
            assert c["long"] == pytest.approx(sum(v["long"] for v in c["by_exchange"].values()))
    one = client.get(
        "/liquidations/heatmap", params={"symbol": "BTCUSDT-PERP", "exchanges": "bybit", "from": "1h"}
    ).json()
    assert list(one["totals"]) == ["bybit"]
    assert one["totals"]["bybit"]["long"] == pytest.approx(expected["bybit"]["long"])
    assert all(set(c["by_exchange"]) == {"bybit"} for c in one["cells"])


def test_liquidations_pages_cover_every_row_once(client: TestClient, filled: dict[str, Any]) -> None:
    rows: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        params: dict[str, Any] = {
            "symbol": "BTCUSDT-PERP",
            "from": "1h",
            "limit": 7,
            **({"cursor": cursor} if cursor else {}),
        }
        body = client.get("/liquidations", params=params).json()
        rows += body["rows"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    got = sorted((r["instrument_id"], r["ts_event_ns"], r["side"], r["price"], r["quantity"]) for r in rows)
    assert got == sorted(stored_rows(filled["catalog"]))
    assert all(r["notional"] == pytest.approx(r["price"] * r["quantity"]) for r in rows)
    shorts = client.get("/liquidations", params={"side": "SHORT", "from": "1h", "limit": 10000}).json()
    assert shorts["rows"]
    assert {r["side"] for r in shorts["rows"]} == {"SHORT"}
    assert shorts["next_cursor"] is None


def test_open_interest_and_funding_lines(client: TestClient) -> None:
    oi = client.get("/open-interest", params={"symbol": "BTCUSDT-PERP", "from": "6h"}).json()["series"]
    assert set(oi) == {"binance", "bybit", "hyperliquid"}
    assert len(oi["binance"]) >= 60  # 6 hours of 5-minute history
    assert len(oi["bybit"]) >= 60
    assert all(p["value"] > 0 and p["time"].endswith("Z") for p in oi["binance"])
    thin = client.get(
        "/open-interest", params={"symbol": "BTCUSDT-PERP", "from": "6h", "max_points": 10}
    ).json()
    assert 2 <= len(thin["series"]["binance"]) <= 10
    assert thin["series"]["binance"][-1] == oi["binance"][-1]  # the last value is kept
    funding = client.get("/funding", params={"symbol": "BTCUSDT-PERP", "from": "3d"}).json()["series"]
    assert len(funding["binance"]) >= 9
    assert len(funding["hyperliquid"]) >= 72


@pytest.mark.parametrize(
    ("path", "params", "status", "detail"),
    [
        (
            "/liquidations/heatmap",
            {"symbol": "BTCUSDT-PERP", "exchanges": "foo"},
            400,
            "unknown exchange 'foo'; valid: binance, bybit, hyperliquid",
        ),
        (
            "/liquidations",
            {"exchanges": "binance,kraken"},
            400,
            "unknown exchange 'kraken'; valid: binance, bybit, hyperliquid",
        ),
        (
            "/liquidations/heatmap",
            {"symbol": "BTCUSDT-PERP", "from": "yesterday"},
            400,
            "from: cannot read time 'yesterday'",
        ),
        ("/liquidations/heatmap", {"symbol": "BTCUSDT-PERP", "from": "1h", "to": "2h"}, 400, "is after to"),
        (
            "/liquidations/heatmap",
            {"symbol": "BTCUSDT-PERP", "from": "30d", "bucket": "1s"},
            400,
            "time buckets of 1s",
        ),
        (
            "/liquidations/heatmap",
            {"symbol": "BTCUSDT-PERP", "bucket": "5 minutes"},
            400,
            "bucket: cannot read bucket",
        ),
        (
            "/liquidations/heatmap",
            {"symbol": "BTCUSDT-PERP", "price_step": "-1"},
            400,
            "price_step must be 'auto' or a number",
        ),
        ("/liquidations/heatmap", {"symbol": "NOPE"}, 400, "NOPE"),
        ("/liquidations/heatmap", {}, 422, "symbol: Field required"),
        ("/liquidations", {"limit": 0}, 422, "limit: Input should be greater than or equal to 1"),
        ("/liquidations", {"side": "BUY"}, 400, "unknown side 'BUY'; valid: LONG, SHORT"),
        ("/liquidations", {"cursor": "abc"}, 400, "bad cursor 'abc'"),
        (
            "/open-interest",
            {"symbol": "BTCUSDT-PERP", "max_points": "many"},
            422,
            "max_points: Input should be a valid integer",
        ),
    ],
)
def test_bad_parameters_get_one_clear_line(
    client: TestClient, path: str, params: dict[str, Any], status: int, detail: str
) -> None:
    r = client.get(path, params=params)
    assert r.status_code == status, r.text
    body = r.json()
    assert isinstance(body["detail"], str)
    assert "\n" not in body["detail"]
    assert detail in body["detail"]


def test_without_a_daemon_health_says_so_and_metrics_parse(client: TestClient) -> None:
    health = client.get("/exchanges/health").json()
    assert health["daemon"] == "not running"
    assert {e["status"] for e in health["exchanges"].values()} == {"red"}
    assert all("no daemon" in e["reason"] for e in health["exchanges"].values())
    r = client.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    assert families["ccxt_pipeline_daemon_up"].samples[0].value == 0


def test_docs_page_and_openapi(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/exchanges",
        "/exchanges/health",
        "/liquidations",
        "/liquidations/heatmap",
        "/open-interest",
        "/funding",
        "/metrics",
    ):
        assert path in paths
    assert client.get("/").status_code == 200


def test_serve_command_answers_on_a_free_port(filled: dict[str, Any]) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ccxt_pipeline", "serve", "--port", "0", "--config", str(filled["config"])],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # printed once the socket listens
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, line
        url = f"http://127.0.0.1:{match.group(1)}"
        body = wait_for(lambda: _get(url + "/exchanges"), "serve answering", within=30)
        assert [e["name"] for e in body["exchanges"]] == ["binance", "bybit", "hyperliquid"]
    finally:
        proc.terminate()
        _, rest = proc.communicate(timeout=15)
    assert proc.returncode == 0, rest
    assert "stopped" in rest


def test_serve_command_bad_input_is_one_line(tmp_path: Path, filled: dict[str, Any]) -> None:
    missing = subprocess.run(
        [sys.executable, "-m", "ccxt_pipeline", "serve", "--catalog", str(tmp_path / "none")],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2
    assert "no catalog at" in missing.stderr
    assert "Traceback" not in missing.stderr
    with socket_on_port() as port:
        busy = subprocess.run(
            [
                sys.executable,
                "-m",
                "ccxt_pipeline",
                "serve",
                "--port",
                str(port),
                "--config",
                str(filled["config"]),
            ],
            env=ENV,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert busy.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in busy.stderr
    assert "Traceback" not in busy.stderr


def _get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read())
    except OSError:  # not listening yet
        return None


class socket_on_port:
    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        port: int = self.sock.getsockname()[1]
        return port

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


@pytest.mark.slow
def test_a_cut_stream_shows_in_health_and_metrics_within_10s(tmp_path: Path) -> None:
    from tests.test_daemon import daemon_config, start_daemon

    thread = SimulatorThread(ExchangeSimulator(seed=15))
    with thread as sim:
        sim.liquidations.rate_per_s = {"binance": 10.0, "bybit": 10.0}
        config = daemon_config(sim, tmp_path)
        proc = start_daemon(config, tmp_path / "daemon.log")
        try:
            with TestClient(create_app(load_settings(config))) as client:

                def statuses() -> dict[str, str]:
                    body = client.get("/exchanges/health").json()
                    return (
                        {n: e["status"] for n, e in body["exchanges"].items()}
                        if body["daemon"] == "running"
                        else {}
                    )

                wait_for(
                    lambda: statuses().get("binance") == statuses().get("bybit") == "green",
                    "both green",
                    within=30,
                )
                # Bybit's stream is cut: sockets aborted, and every new one stays silent (no ack, no event).
                sim.liquidations.silence("bybit", 120)
                sim.liquidations.drop_connections("bybit")
                cut = time.monotonic()
                seen = wait_for(
                    lambda: (s := statuses()).get("bybit") in ("red", "amber") and s,
                    "bybit shown cut",
                    within=10,
                )
                shown_after = time.monotonic() - cut
                assert seen["binance"] == "green", seen
                bybit = client.get("/exchanges/health").json()["exchanges"]["bybit"]
                assert bybit["reason"]
                families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
                assert families["ccxt_pipeline_daemon_up"].samples[0].value == 1
                events = {
                    s.labels["exchange"]: s.value for s in families["ccxt_pipeline_stream_events"].samples
                }
                assert events["binance"] > 0
                print(f"bybit shown {seen['bybit']} {shown_after:.1f}s after the cut")
        finally:
            proc.terminate()
            proc.wait(timeout=20)
