"""Start-up (issue 12, item 5): `ccxt-cli --help`, `instruments` and `catalog info` import only what they use.

Each case runs the CLI in a fresh Python process (`ccxt_pipeline.cli.main`, what the `ccxt-cli` script calls)
and reads the modules it had loaded when it exited. No timing is asserted here: benchmarks/startup.py
measures the time. typer builds every command from its signature before running one, so these tests keep
every command module cheap to import, not only the three timed ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

import ccxt_pipeline
from ccxt_pipeline.catalog import OPEN_INTEREST, CatalogWriter
from ccxt_pipeline.catalog.schema import CLI_KINDS
from ccxt_pipeline.cli.catalog_cmd import QueryType

NETWORK = ("ccxt", "aiohttp", "nautilus_trader", "apscheduler", "fastapi", "uvicorn")
"""Exchange clients, NautilusTrader, the scheduler and the HTTP server: no command timed here needs them."""
DATA = ("pyarrow", "numpy")
SETTINGS = ("pydantic_settings", "yaml")
OURS_HEAVY = (
    "ccxt_pipeline.catalog",
    "ccxt_pipeline.collect.run",
    "ccxt_pipeline.daemon.service",
    "ccxt_pipeline.exchanges",
    "ccxt_pipeline.serve.plot",
    "ccxt_pipeline.serve.api",
    "ccxt_pipeline.stream.run",
    "ccxt_pipeline.models",
    "ccxt_pipeline.settings",
)
"""Our modules that pull in the above (or pydantic models); the root help loads none of them."""
LIGHT_CATALOG = ("footer", "info", "layout", "quarantine")
"""The catalog modules `catalog info` loads for healthy files: no pyarrow among them."""
_LATER_NAME = "2025-01-02T00-00-00-000000000Z_2025-01-02T00-59-59-999999999Z.parquet"

# Runs the CLI as `ccxt-cli ARGS`; at exit (also after SystemExit) writes the loaded module names to OUT.
# `--every-help` instead renders `--help` of the root and of every group and command in this one process.
_SCRIPT = """
import atexit, json, sys
out, args = sys.argv[1], sys.argv[2:]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
if args == ["--import-only"]:
    import ccxt_pipeline.cli
elif args == ["--every-help"]:
    import typer.main
    from ccxt_pipeline.cli import app

    group = typer.main.get_command(app)

    def paths(cmd, prefix):
        yield prefix
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            yield from paths(sub, [*prefix, name])

    for path in paths(group, []):
        try:
            group.main([*path, "--help"], prog_name="ccxt-cli")
        except SystemExit as exc:
            assert exc.code == 0, (path, exc.code)
        print("\\n=== " + " ".join(path))
else:
    sys.argv = ["ccxt-cli", *args]
    from ccxt_pipeline.cli import main

    main()
"""


def _run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run the CLI in a fresh process, in an empty folder with no `CCXT_*` variable (no settings file)."""
    out = tmp_path / "modules.json"
    out.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCXT_")}
    source_root = str(Path(ccxt_pipeline.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source_root, env.get("PYTHONPATH")) if p)
    env["COLUMNS"] = "200"  # help and tables wide enough not to wrap
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(out), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    modules = set(json.loads(out.read_text())) if out.exists() else set()
    return done, modules


def _loaded(modules: set[str], *prefixes: str) -> list[str]:
    """The modules among `modules` that are one of `prefixes` or inside one (`ccxt` covers `ccxt.pro`)."""
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


def test_importing_the_cli_loads_no_heavy_module(tmp_path: Path) -> None:
    done, modules = _run(tmp_path, "--import-only")
    assert done.returncode == 0, done.stderr
    assert "ccxt_pipeline.cli" in modules
    assert _loaded(modules, *NETWORK, *DATA, *SETTINGS, "pydantic", *OURS_HEAVY) == []


def test_root_help_renders_without_heavy_modules(tmp_path: Path) -> None:
    done, modules = _run(tmp_path, "--help")
    assert done.returncode == 0, done.stderr
    assert "Usage: ccxt-cli" in done.stdout
    for command in ("fetch-oi", "fetch-funding", "stream-liquidations", "instruments", "catalog", "daemon"):
        assert command in done.stdout
    # typer coerces a command's parameters through pydantic, but the root's list of commands needs none.
    assert _loaded(modules, *NETWORK, *DATA, *SETTINGS, "pydantic", *OURS_HEAVY) == []


def test_every_commands_help_renders_without_ccxt_pyarrow_or_settings(tmp_path: Path) -> None:
    done, modules = _run(tmp_path, "--every-help")
    assert done.returncode == 0, done.stderr
    shown = [line[4:] for line in done.stdout.splitlines() if line.startswith("=== ")]
    for path in ("", "instruments", "catalog", "catalog info", "fetch-oi", "query", "daemon start", "serve"):
        assert path in shown
    assert done.stdout.count("Usage: ccxt-cli") == len(shown)
    assert _loaded(modules, *NETWORK, *DATA, *SETTINGS, *OURS_HEAVY) == []


def test_instruments_resolves_without_ccxt_pyarrow_or_settings(tmp_path: Path) -> None:
    """The venue table (ccxt_pipeline/venues.py) gives every id offline; ccxt's markets are never loaded.
    With no settings file and no `CCXT_*` variable the enabled exchanges are the defaults: no settings are
    built (typer itself converts the arguments through pydantic)."""
    done, modules = _run(tmp_path, "instruments", "BTCUSDT-PERP")
    assert done.returncode == 0, done.stderr
    for iid in ("BTCUSDT-PERP.BINANCE", "BTCUSDT-LINEAR.BYBIT", "BTC-USD-PERP.HYPERLIQUID"):
        assert iid in done.stdout
    assert _loaded(modules, *NETWORK, *DATA, *SETTINGS, *OURS_HEAVY) == []


def test_instruments_with_a_settings_file_reads_it(tmp_path: Path) -> None:
    """A settings file is read (the enabled exchanges are its), and a bad one is one clear line, -e or not."""
    (tmp_path / "good.yaml").write_text("exchanges: [bybit]\n")
    done, modules = _run(tmp_path, "instruments", "BTCUSDT-PERP", "--config", "good.yaml")
    assert done.returncode == 0, done.stderr
    assert "BTCUSDT-LINEAR.BYBIT" in done.stdout
    assert "BTCUSDT-PERP.BINANCE" not in done.stdout
    assert "ccxt_pipeline.settings" in modules
    (tmp_path / "bad.yaml").write_text("no_such_setting: 1\n")
    for extra in ((), ("-e", "binance")):
        done, _ = _run(tmp_path, "instruments", "BTCUSDT-PERP", "--config", "bad.yaml", *extra)
        assert done.returncode == 2, done.stdout
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "no_such_setting" in done.stderr


def test_catalog_info_loads_the_catalog_but_no_exchange_code(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    ts = [1_735_689_600_000_000_000 + i * 300_000_000_000 for i in range(3)]
    table = pa.table(
        {
            "exchange": ["binance"] * 3,
            "instrument_id": ["BTCUSDT-PERP.BINANCE"] * 3,
            "open_interest": [1.0, 2.0, 3.0],
            "open_interest_value": [10.0, 20.0, 30.0],
            "ts_event": ts,
            "ts_init": ts,
        }
    )
    CatalogWriter(catalog, durable=False).write_table(OPEN_INTEREST, table)
    done, modules = _run(tmp_path, "catalog", "info", "--catalog", str(catalog))
    assert done.returncode == 0, done.stderr
    assert "BTCUSDT-PERP.BINANCE" in done.stdout
    # Healthy files answer from their footers (catalog/footer.py): no pyarrow, no numpy, no record models,
    # no settings (none are in play).
    assert "ccxt_pipeline.catalog.info" in modules
    light = {"ccxt_pipeline.catalog", *(f"ccxt_pipeline.catalog.{m}" for m in LIGHT_CATALOG)}
    heavy = [m for m in _loaded(modules, *OURS_HEAVY) if m not in light]
    assert _loaded(modules, *NETWORK, *DATA, *SETTINGS) == []
    assert heavy == []
    # With a settings file, they are read; a file the footer reader does not take is read through pyarrow
    # (and quarantined if it is not Parquet), and the output is the same.
    (tmp_path / "settings.yaml").write_text(f"catalog_path: {catalog}\n")
    with_config, modules = _run(tmp_path, "catalog", "info", "--config", "settings.yaml")
    assert with_config.returncode == 0, with_config.stderr
    assert with_config.stdout == done.stdout
    assert "ccxt_pipeline.settings" in modules
    bad = catalog / "data" / "custom_open_interest" / "BTCUSDT-PERP.BINANCE" / _LATER_NAME
    bad.write_bytes(b"not parquet")
    again, modules = _run(tmp_path, "catalog", "info", "--catalog", str(catalog))
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(done.stdout)
    assert again.stdout.splitlines()[-1].startswith("quarantined (not data): ")
    assert "quarantined unreadable data file" in again.stderr
    assert "pyarrow" in modules
    unwanted = ("ccxt_pipeline.collect.run", "ccxt_pipeline.daemon.service", "ccxt_pipeline.stream.run")
    assert _loaded(modules, *NETWORK, "ccxt_pipeline.exchanges", *unwanted) == []


def test_query_choices_are_the_queryable_kinds() -> None:
    """`query`'s choices are spelt out in catalog_cmd (so that the CLI is built without pyarrow): they must
    stay the kinds' `cli_name`s, in order."""
    assert [q.value for q in QueryType] == list(CLI_KINDS)


def test_version_is_read_on_first_use() -> None:
    """`ccxt_pipeline.__version__` is looked up when first asked for (importlib.metadata is not cheap)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        expected = version("ccxt-pipeline")
    except PackageNotFoundError:
        expected = "0.0.0"
    assert ccxt_pipeline.__version__ == expected
    with pytest.raises(AttributeError):
        ccxt_pipeline.no_such_attribute  # noqa: B018
