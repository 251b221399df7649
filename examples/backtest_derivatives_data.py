"""Replay a catalog made by ccxt-cli in a NautilusTrader BacktestNode, and report what the strategy got.

    python examples/backtest_derivatives_data.py data/catalog [--report report.json]

Needs the `nautilus` extra. The catalog must hold instrument definitions (the fetch and stream commands
write them). The strategy subscribes to what the catalog holds for instruments with a definition: open
interest, liquidations, live funding estimates (custom data) and settled funding (FundingRateUpdate, only for
instruments that have some: NautilusTrader logs an error for a subscription to an instrument it cannot
find). It counts what arrives per type and instrument and checks that it arrives in ts_init order. It places
no orders: it is a template for strategies that use this data.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from nautilus_trader.backtest.node import BacktestNode
from nautilus_trader.config import (
    BacktestEngineConfig,
    BacktestRunConfig,
    BacktestVenueConfig,
    ImportableStrategyConfig,
    LoggingConfig,
    StrategyConfig,
)
from nautilus_trader.core.data import Data
from nautilus_trader.model.data import DataType, FundingRateUpdate
from nautilus_trader.model.identifiers import ClientId, InstrumentId
from nautilus_trader.trading.strategy import Strategy

from ccxt_pipeline.catalog import FUNDING_ESTIMATE, FUNDING_RATE, LIQUIDATION, OPEN_INTEREST, CatalogReader
from ccxt_pipeline.nautilus import (
    CLIENT_ID,
    CUSTOM_CLASSES,
    data_configs,
    stored_instruments,
)

KINDS = {"OpenInterest": OPEN_INTEREST, "Liquidation": LIQUIDATION, "FundingRateEstimate": FUNDING_ESTIMATE}
"""Our custom data classes and the catalog kinds they replay."""


class ReporterConfig(StrategyConfig, frozen=True):
    custom_types: tuple[str, ...] = ()
    """Custom data classes (`CUSTOM_CLASSES` names) the catalog holds."""
    funding_ids: tuple[str, ...] = ()
    """Instruments with settled funding (FundingRateUpdate) in the catalog."""
    report_path: str = ""


class DerivativesDataReporter(Strategy):
    """Counts open interest, liquidations and funding per instrument, in the order they arrive."""

    def __init__(self, config: ReporterConfig) -> None:
        super().__init__(config)
        self.counts: Counter[str] = Counter()
        self.last_ts = 0
        self.out_of_order = 0

    def on_start(self) -> None:
        for cls in CUSTOM_CLASSES:
            if cls.__name__ in self.config.custom_types:
                self.subscribe_data(DataType(cls), client_id=ClientId(CLIENT_ID))
        for iid in self.config.funding_ids:
            self.subscribe_funding_rates(InstrumentId.from_str(iid))

    def _seen(self, name: str, data: Data, iid: str) -> None:
        self.counts[f"{name} {iid}"] += 1
        if data.ts_init < self.last_ts:
            self.out_of_order += 1
        self.last_ts = data.ts_init

    def on_data(self, data: Data) -> None:
        self._seen(type(data).__name__, data, data.instrument_id.value)

    def on_funding_rate(self, funding_rate: FundingRateUpdate) -> None:
        self._seen("FundingRateUpdate", funding_rate, funding_rate.instrument_id.value)

    def on_stop(self) -> None:
        report = {"counts": dict(self.counts), "out_of_order": self.out_of_order}
        self.log.info(json.dumps(report))
        if self.config.report_path:
            Path(self.config.report_path).write_text(json.dumps(report, indent=2))


def run(catalog: Path, report_path: Path | None) -> dict[str, object]:
    instruments = stored_instruments(catalog)
    reader = CatalogReader(catalog)
    held = {name: set(reader.instruments(kind)) & set(instruments) for name, kind in KINDS.items()}
    funding_ids = sorted(set(reader.instruments(FUNDING_RATE)) & set(instruments))
    venues = sorted({iid.rsplit(".", 1)[1] for iid in instruments})
    settle = {"HYPERLIQUID": "USDC"}
    config = BacktestRunConfig(
        engine=BacktestEngineConfig(
            strategies=[
                ImportableStrategyConfig(
                    strategy_path=f"{Path(__file__).stem}:DerivativesDataReporter",
                    config_path=f"{Path(__file__).stem}:ReporterConfig",
                    config={
                        "custom_types": [name for name, ids in held.items() if ids],
                        "funding_ids": funding_ids,
                        "report_path": str(report_path or ""),
                    },
                )
            ],
            logging=LoggingConfig(log_level="WARNING"),
        ),
        venues=[
            BacktestVenueConfig(
                name=venue,
                oms_type="NETTING",
                account_type="MARGIN",
                base_currency=None,
                starting_balances=[f"1000000 {settle.get(venue, 'USDT')}"],
            )
            for venue in venues
        ],
        data=data_configs(catalog),
    )
    BacktestNode(configs=[config]).run()
    return json.loads(report_path.read_text()) if report_path else {}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("catalog", type=Path)
    parser.add_argument("--report", type=Path, default=Path("backtest_report.json"))
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    result = run(args.catalog, args.report)
    print(json.dumps(result, indent=2))
