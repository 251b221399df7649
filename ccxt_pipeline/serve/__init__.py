"""The read-only HTTP service over a catalog (`ccxt-cli serve`).

- `api`: the FastAPI app (`create_app`), its endpoints and their parameters;
- `data`: liquidations read through a cache of the catalog's files (each version known by its stat);
- `heatmap`: time x price buckets of liquidated notional (pure, vectorised);
- `series`: open interest and funding as one thinned line per exchange;
- `health`, `metrics`: the daemon's status file, judged per exchange and in Prometheus text;
- `plot`, `static/`: the page and its static export.

Nothing here writes to the catalog. FastAPI and uvicorn come with the `serve` extra; only `api` imports them.
"""
