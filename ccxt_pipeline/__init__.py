"""ccxt-pipeline: open interest, funding rates and liquidations from crypto derivatives exchanges,
collected through CCXT into a Parquet catalog that NautilusTrader reads as it is."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ccxt-pipeline")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
