"""The collector daemon: scheduled open interest and funding, continuous liquidation streams, a lock per
catalog, and a status file that `ccxt-cli daemon status` reads."""
