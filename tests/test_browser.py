"""The dashboard (/) in a real browser: Debian's headless Chromium, driven by selenium through chromedriver,
on the page served by the real app over a catalog that the daemon (`ccxt-cli daemon start`) fills from the
simulator, while the daemon runs.

Checked: the heatmap draws exactly the API's cells (long and short apart), the exchange selector changes what
is drawn, and a badge turns from green when its exchange's stream is cut (within 10 s), while the rest of the
page keeps working. A screenshot of the page is written to $DASHBOARD_SCREENSHOT when that is set (the one in
docs/ comes from such a run).

Without Chromium these tests skip, unless REQUIRE_BROWSER_TESTS=1 (set by .ci/run): then they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from typer.testing import CliRunner

from ccxt_pipeline.catalog import FUNDING_RATE, LIQUIDATION, OPEN_INTEREST, CatalogReader
from ccxt_pipeline.cli import app
from ccxt_pipeline.serve.api import create_app
from ccxt_pipeline.serve.plot import CHROMIUM_OFFLINE_FLAGS
from ccxt_pipeline.settings import load_settings
from ccxt_pipeline.simulator.server import ExchangeSimulator
from tests.conftest import SimulatorThread, wait_for
from tests.test_daemon import daemon_config, start_daemon
from tests.test_stream import expected_row, stored_rows

pytestmark = pytest.mark.browser

REQUIRED = os.environ.get("REQUIRE_BROWSER_TESTS") == "1"
"""Set by .ci/run: a missing browser is a failure there, not a skip."""
CHROMIUM_FLAGS = (*CHROMIUM_OFFLINE_FLAGS, "--disable-dev-shm-usage", "--window-size=1280,1500")
SYMBOL = "BTCUSDT-PERP"


def chromium_or_fail() -> tuple[str, str]:
    """Paths of Chromium and chromedriver; skip (fail under REQUIRE_BROWSER_TESTS=1) when either is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    message = "Chromium and chromedriver are needed (Debian: apt-get install chromium chromium-driver)"
    if REQUIRED:
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Site:
    url: str
    sim: ExchangeSimulator
    catalog: Path

    def api(self, path: str, **query: str) -> Any:
        with urllib.request.urlopen(f"{self.url}/{path}?{urllib.parse.urlencode(query)}", timeout=10) as r:
            return json.loads(r.read())


class ServerThread:
    """uvicorn serving `create_app` on 127.0.0.1 in a thread; stopped and joined on exit."""

    def __init__(self, app: Any, port: int) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        wait_for(lambda: self.server.started, "the web server started", within=20)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def stored_everything(catalog: Path) -> bool:
    reader = CatalogReader(catalog)
    liq = reader.query(LIQUIDATION)
    exchanges = set(liq.column("exchange").to_pylist())
    return (
        {"binance", "bybit"} <= exchanges
        and liq.num_rows >= 40
        and all(
            reader.query(kind, exchanges=["hyperliquid"]).num_rows for kind in (OPEN_INTEREST, FUNDING_RATE)
        )
        and all(reader.query(OPEN_INTEREST, exchanges=[ex]).num_rows for ex in ("binance", "bybit"))
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    chromium_or_fail()
    tmp = tmp_path_factory.mktemp("browser")
    thread = SimulatorThread(ExchangeSimulator(seed=51))
    with thread as sim:
        sim.liquidations.rate_per_s = {"binance": 25.0, "bybit": 25.0}
        config = daemon_config(sim, tmp)
        proc = start_daemon(config, tmp / "daemon.log")
        catalog = tmp / "catalog"
        try:
            wait_for(
                lambda: stored_everything(catalog),
                "the daemon stored liquidations, OI and funding",
                within=45,
            )
            # No more liquidations: the heatmap holds still while the tests compare it with the API.
            sim.liquidations.rate_per_s = {}
            wait_for(
                lambda: (
                    sorted(stored_rows(catalog)) == sorted(expected_row(e) for e in sim.liquidations.sent)
                ),
                "every liquidation sent is stored",
                within=10,
            )
            port = free_port()
            with ServerThread(create_app(load_settings(config)), port):
                yield Site(f"http://127.0.0.1:{port}", sim, catalog)
        finally:
            proc.terminate()  # SIGTERM: what `ccxt-cli daemon stop` sends, without that command's start-up
            try:
                proc.wait(timeout=15)
            finally:
                proc.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    chromium, chromedriver = chromium_or_fail()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="ccxt-browser-test-")
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def js(driver: WebDriver, script: str) -> Any:
    return driver.execute_script(script)


def refreshes(driver: WebDriver) -> int:
    return int(js(driver, "return Number(document.getElementById('updated').dataset.refreshes)"))


def drawn(driver: WebDriver) -> dict[str, Any]:
    """What the page drew, read from the DOM in one round trip."""
    result: dict[str, Any] = js(
        driver,
        """
        const svg = document.getElementById('heatmap');
        const cells = Array.from(svg.querySelectorAll('g.cell'));
        return {
          cells: cells.length,
          long: svg.querySelectorAll('g.cell rect.long').length,
          short: svg.querySelectorAll('g.cell rect.short').length,
          keys: cells.map((c) => c.dataset.t + ':' + c.dataset.p).sort(),
          from: svg.dataset.from, to: svg.dataset.to, exchanges: svg.dataset.exchanges,
          mentions: Object.fromEntries(['binance', 'bybit'].map((ex) => [ex,
            cells.filter((c) => c.querySelector('title').textContent.includes(ex + ':')).length])),
          oi: Array.from(document.querySelectorAll('#oi path.series')).map((p) => p.dataset.exchange).sort(),
          funding: Array.from(document.querySelectorAll('#funding path.series')).map((p) => p.dataset.exchange).sort(),
          errors: Array.from(document.querySelectorAll('.error')).filter((e) => !e.hidden).map((e) => e.textContent),
        };
        """,
    )
    return result


def api_heatmap(site: Site, page: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = site.api(
        "liquidations/heatmap",
        symbol=SYMBOL,
        exchanges=page["exchanges"],
        **{"from": page["from"], "to": page["to"]},
    )
    return data


def open_page(driver: WebDriver, site: Site, query: str) -> None:
    driver.get(f"{site.url}/?{query}")
    wait_for(lambda: refreshes(driver) >= 1, "the page drew its charts", within=20)


def test_heatmap_draws_the_apis_cells_long_and_short_apart(site: Site, browser: WebDriver) -> None:
    open_page(browser, site, "range=24h&refresh=600")
    page = drawn(browser)
    assert page["errors"] == []
    api = api_heatmap(site, page)
    assert page["exchanges"] == "binance,bybit,hyperliquid"
    assert page["cells"] == len(api["cells"]) > 0
    assert page["keys"] == sorted(f"{c['t']}:{c['p']}" for c in api["cells"])
    assert page["long"] == sum(1 for c in api["cells"] if c["long"] > 0) > 0
    assert page["short"] == sum(1 for c in api["cells"] if c["short"] > 0) > 0
    # Open interest and funding below: one line per exchange, on the same time axis.
    assert page["oi"] == ["binance", "bybit", "hyperliquid"]
    assert page["funding"] == ["binance", "bybit", "hyperliquid"]
    shot = os.environ.get("DASHBOARD_SCREENSHOT")
    if shot:  # the simulator's events span seconds: a short range shows them wider than 24 hours does
        open_page(browser, site, f"range={os.environ.get('DASHBOARD_RANGE', '15m')}&refresh=600")
        browser.save_screenshot(shot)


def test_exchange_selector_changes_what_is_drawn(site: Site, browser: WebDriver) -> None:
    open_page(browser, site, "range=24h&refresh=600")
    both = drawn(browser)
    assert both["mentions"]["binance"] > 0
    assert both["mentions"]["bybit"] > 0
    seen = refreshes(browser)
    browser.find_element(By.CSS_SELECTOR, '#exchanges input[value="binance"]').click()
    wait_for(lambda: refreshes(browser) > seen, "the page redrew after the selector changed", within=15)
    page = drawn(browser)
    assert page["exchanges"] == "bybit,hyperliquid"
    api = api_heatmap(site, page)
    assert page["cells"] == len(api["cells"]) > 0
    assert page["mentions"] == {"binance": 0, "bybit": page["cells"]}
    assert page["oi"] == ["bybit", "hyperliquid"]
    assert page["funding"] == ["bybit", "hyperliquid"]


def badge(driver: WebDriver, exchange: str) -> tuple[str, str]:
    status, reason = js(
        driver,
        f"const b = document.querySelector('.badge[data-exchange=\"{exchange}\"]');"
        "return b ? [b.dataset.status, b.title] : ['', ''];",
    )
    return str(status), str(reason)


def test_badge_leaves_green_within_10s_of_a_stream_cut_and_the_page_goes_on(
    browser: WebDriver, site: Site
) -> None:
    # Binance keeps streaming: a quiet stream turns amber after `stream.stale_seconds` (3 s here) by itself.
    site.sim.liquidations.rate_per_s = {"binance": 10.0}
    open_page(browser, site, "range=24h&refresh=2&health=1")
    wait_for(lambda: refreshes(browser) >= 2, "the page redrew by itself", within=15)
    wait_for(
        lambda: badge(browser, "bybit")[0] == badge(browser, "binance")[0] == "green",
        "both badges green",
        within=20,
    )
    # Cut Bybit's stream: its sockets dropped, and whatever reconnects hears nothing (no events, acks, pongs).
    site.sim.liquidations.silence("bybit", 120)
    site.sim.liquidations.drop_connections("bybit")
    cut = time.monotonic()
    wait_for(lambda: badge(browser, "bybit")[0] in ("red", "amber"), "the bybit badge left green", within=10)
    took = time.monotonic() - cut
    status, reason = badge(browser, "bybit")
    print(f"bybit badge {status} {took:.1f}s after the cut: {reason}")
    assert "stream" in reason or "message" in reason
    assert site.api("exchanges/health")["exchanges"]["bybit"]["status"] in ("red", "amber")
    assert badge(browser, "binance")[0] == "green", badge(browser, "binance")
    # The rest of the page still works: a redraw answers, the heatmap and the lines are all there.
    seen = refreshes(browser)
    browser.find_element(By.CSS_SELECTOR, "#controls button[type=submit]").click()
    wait_for(lambda: refreshes(browser) > seen, "the page redrew during the cut", within=15)
    page = drawn(browser)
    assert page["errors"] == []
    # Binance events go on arriving; the API may have stored one more that fell before the page's `to`.
    assert 0 < page["cells"] <= len(api_heatmap(site, page)["cells"])
    assert page["oi"] == ["binance", "bybit", "hyperliquid"]
    # Back: the badge turns green again once the stream hears from Bybit.
    site.sim.liquidations.silence("bybit", 0)
    wait_for(lambda: badge(browser, "bybit")[0] == "green", "the bybit badge green again", within=30)
    site.sim.liquidations.rate_per_s = {}


def test_exported_html_draws_the_cells_it_carries(site: Site, browser: WebDriver, tmp_path: Path) -> None:
    out = tmp_path / "heatmap.html"
    result = CliRunner().invoke(
        app, ["plot", "heatmap", SYMBOL, "--from", "1h", "--out", str(out), "--catalog", str(site.catalog)]
    )
    assert result.exit_code == 0, result.output
    browser.get(out.as_uri())
    wait_for(
        lambda: js(browser, "return document.body.dataset.rendered === '1'"), "the export drew", within=10
    )
    carried = js(browser, "return window.CCXT_PLOT.data.cells.length")
    assert js(browser, "return document.querySelectorAll('#chart g.cell').length") == carried > 0
