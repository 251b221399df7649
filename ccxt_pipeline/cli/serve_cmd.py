"""`ccxt-cli serve`: the read-only HTTP API and page over the catalog (FastAPI on uvicorn).

FastAPI and uvicorn are imported inside the command (the `serve` extra), so `ccxt-cli --help` and every
other command start as fast as before.
"""

from __future__ import annotations

import contextlib
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from ccxt_pipeline.cli.common import CatalogOption, ConfigOption, err, fail, guarded, load
from ccxt_pipeline.errors import PipelineError


@guarded
def serve(
    port: Annotated[
        int, typer.Option("--port", "-p", help="TCP port (0: any free port).", min=0, max=65535)
    ] = 8000,
    host: Annotated[
        str, typer.Option("--host", help="Address to bind; the default serves this machine only.")
    ] = "127.0.0.1",
    config: ConfigOption = None,
    catalog: CatalogOption = None,
) -> None:
    """Serve the catalog over HTTP, read-only: the page at /, the API's documentation at /docs.

    Endpoints: /exchanges, /exchanges/health, /liquidations, /liquidations/heatmap, /open-interest,
    /funding, /metrics. Binds to 127.0.0.1 unless --host says otherwise. Ctrl-C stops it.

    Example:  ccxt-cli serve --port 8000 --catalog data/catalog
    """
    try:
        import uvicorn

        from ccxt_pipeline.serve.api import create_app
    except ImportError as exc:
        raise fail(
            f"serving needs the serve extra ({exc.name} is missing): pip install 'ccxt-pipeline[serve]'"
        ) from None
    settings = load(config, catalog)
    if not Path(settings.catalog_path).is_dir():
        raise PipelineError(f"no catalog at {settings.catalog_path}")
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    err.print(
        f"serving {settings.catalog_path} at http://{shown}:{bound}/ (API documentation at /docs)",
        markup=False,
    )
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"note: --host {host} lets other machines read this catalog", markup=False)
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), log_level="warning", access_log=False, lifespan="off")
    )
    with stopped_by_signals(server):
        server.run(sockets=[sock])
    err.print("stopped", markup=False)


@contextlib.contextmanager
def stopped_by_signals(server: Any) -> Iterator[None]:
    """Ctrl-C or SIGTERM stops the server gracefully and the command exits 0 (a second one: at once).
    Replaces uvicorn's own handlers, which re-raise the signal once it has stopped (exit -15)."""

    def handle(signum: int, frame: FrameType | None) -> None:
        if server.should_exit:
            server.force_exit = True
        server.should_exit = True

    server.capture_signals = contextlib.nullcontext  # uvicorn.Server's hook for its own handlers
    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port); one line (PipelineError) when that is impossible."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise PipelineError(f"--host {host}: cannot resolve it ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise PipelineError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock
