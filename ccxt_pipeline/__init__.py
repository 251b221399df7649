"""ccxt-pipeline: open interest, funding rates and liquidations from crypto derivatives exchanges,
collected through CCXT into a Parquet catalog that NautilusTrader reads as it is."""

__version__: str
"""The installed distribution's version ("0.0.0" in a source tree that is not installed). Read on first use:
importlib.metadata costs about 25 ms at start-up, which `ccxt-cli --help` need not pay."""


def __getattr__(name: str) -> str:
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("ccxt-pipeline")
    except PackageNotFoundError:  # running from a source tree that is not installed
        found = "0.0.0"
    globals()["__version__"] = found
    return found
