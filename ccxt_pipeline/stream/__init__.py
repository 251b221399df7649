"""Live liquidation streams: ccxt.pro sockets -> one bounded queue -> a batching catalog writer.

source (per exchange: watch loop, reconnects, watchdog) --tap (decoder, market book)--> queue --> BatchingWriter --> catalog
"""
