"""Live liquidation streams: ccxt.pro sockets -> one bounded queue -> a batching catalog writer.

source (per exchange: watch loop, reconnects, watchdog) --tap--> queue --> BatchingWriter --> catalog
"""
