"""Serve the exchange simulator until Ctrl-C: `python -m ccxt_pipeline.simulator [--port N] [--seed N]
[--latency-ms X]`. Prints the base URL and, per exchange, the config block that points ccxt at it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from typing import Any

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
    """The `exchanges:` block to paste into a config so every exchange talks to `sim`."""
    block = {"exchanges": {name: {"ccxt": sim.ccxt_overrides(name)} for name in CCXT_CLASSES}}
    return to_yaml(block)


async def serve(port: int, seed: int, latency_ms: float) -> None:
    async with ExchangeSimulator(seed=seed, port=port) as sim:
        sim.latency_ms = latency_ms
        print(f"exchange simulator listening on {sim.base_url} (websockets {sim.ws_url}); Ctrl-C to stop")
        print("# paste into your config:")
        print(config_block(sim), end="", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ccxt_pipeline.simulator", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--seed", type=int, default=0, help="market data seed (default 0)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before every answer")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.seed, args.latency_ms))


if __name__ == "__main__":
    main()
