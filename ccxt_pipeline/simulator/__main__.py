"""Serve the exchange simulator until Ctrl-C:

    python -m ccxt_pipeline.simulator [--port N] [--seed N] [--latency-ms X]
        [--liquidations-per-second N] [--burst-every SECONDS --burst-size N]

Prints the base URL and the `exchanges:` config block that points ccxt at it; requests stay paced as a
user's are (each exchange's documented limits, `pace_requests`). Liquidations are sent over the Binance and Bybit websockets for
the symbols a client subscribed to: `--liquidations-per-second` at random times (per exchange), and
`--burst-every` a burst of `--burst-size` events at once (a liquidation cascade).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
from typing import Any, NoReturn

from ccxt_pipeline.simulator.server import CCXT_CLASSES, ExchangeSimulator


def to_yaml(value: Any, indent: int = 0) -> str:
    """A small YAML emitter for the override dicts (mappings, lists, strings, numbers, booleans, null)."""
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return pad + "{}\n"
        out = []
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                out.append(f"{pad}{key}:\n{to_yaml(item, indent + 1)}")
            else:
                out.append(f"{pad}{key}: {_scalar(item)}\n")
        return "".join(out)
    if isinstance(value, list):
        if not value:
            return pad + "[]\n"
        out = []
        for item in value:
            if isinstance(item, dict | list) and item:
                body = to_yaml(item, indent + 1)
                out.append(f"{pad}-\n{body}")
            else:
                out.append(f"{pad}- {_scalar(item)}\n")
        return "".join(out)
    return pad + _scalar(value) + "\n"


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return json.dumps(str(value))  # a JSON string is a valid YAML double-quoted scalar


def config_block(sim: ExchangeSimulator) -> str:
    """The `exchanges:` block to paste into a config so every exchange talks to `sim`. It leaves request
    pacing as a user's config has it (the simulator's test overrides switch ccxt's limiter off)."""
    block = {
        "exchanges": {
            name: {"ccxt": {k: v for k, v in sim.ccxt_overrides(name).items() if k != "enableRateLimit"}}
            for name in CCXT_CLASSES
        }
    }
    return to_yaml(block)


async def bursts(sim: ExchangeSimulator, every_s: float, size: int) -> None:
    """Every `every_s` seconds, `size` liquidations of one subscribed symbol on each exchange that has a
    subscriber (the symbol drawn with the simulator's seed)."""
    rng = random.Random(f"cli-bursts:{sim.seed}")
    feed = sim.liquidations
    while True:
        await asyncio.sleep(every_s)
        for exchange in feed.exchanges:
            symbols = feed.subscribed_symbols(exchange)
            if symbols:
                await feed.burst(exchange, rng.choice(symbols), size, within_ms=max(10, size))


async def serve(
    port: int,
    seed: int,
    latency_ms: float,
    liquidations_per_second: float = 0.0,
    burst_every: float | None = None,
    burst_size: int = 50,
) -> None:
    async with ExchangeSimulator(seed=seed, port=port) as sim:
        sim.latency_ms = latency_ms
        if liquidations_per_second > 0:
            sim.liquidations.rate_per_s = dict.fromkeys(sim.liquidations.exchanges, liquidations_per_second)
        print(f"exchange simulator listening on {sim.base_url} (websockets {sim.ws_url}); Ctrl-C to stop")
        if liquidations_per_second > 0 or burst_every:
            plan = f"{liquidations_per_second:g}/s per exchange" if liquidations_per_second > 0 else "none"
            burst = f"; bursts of {burst_size} every {burst_every:g}s" if burst_every else ""
            print(f"# liquidations ({', '.join(sim.liquidations.exchanges)}): {plan}{burst}")
        print("# paste into your config:")
        print(config_block(sim), end="")
        print("# end of config", flush=True)
        if burst_every:
            await bursts(sim, burst_every, burst_size)
        else:
            await asyncio.Event().wait()


def _positive(kind: type[float] | type[int]) -> Any:
    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
        return value

    return parse


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """Bad input is one line (no usage block) and exit code 2."""
        self.exit(2, f"error: {message}\n")


def main(argv: list[str] | None = None) -> None:
    parser = _Parser(
        prog="python -m ccxt_pipeline.simulator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--seed", type=int, default=0, help="market data seed (default 0)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before every answer")
    parser.add_argument(
        "--liquidations-per-second",
        type=_positive(float),
        default=0.0,
        metavar="N",
        help="random liquidations per second on each of Binance and Bybit, for subscribed symbols (default: none)",
    )
    parser.add_argument(
        "--burst-every",
        type=_positive(float),
        default=None,
        metavar="SECONDS",
        help="send a burst of liquidations this often (default: no bursts)",
    )
    parser.add_argument(
        "--burst-size",
        type=_positive(int),
        default=50,
        metavar="N",
        help="events per burst (default 50; with --burst-every)",
    )
    args = parser.parse_args(argv)
    if args.burst_size != 50 and args.burst_every is None:
        parser.error("--burst-size needs --burst-every")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve(
                args.port,
                args.seed,
                args.latency_ms,
                args.liquidations_per_second,
                args.burst_every,
                args.burst_size,
            )
        )


if __name__ == "__main__":
    main()
