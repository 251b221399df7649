"""`python -m ccxt_pipeline` is `ccxt-cli`."""

from ccxt_pipeline.cli import main

main()
