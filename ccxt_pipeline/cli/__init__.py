"""The `ccxt-cli` command: a thin skin over the library. Each command parses its arguments, calls the
library and renders the result; the library's errors become one line on stderr and a meaningful exit code.

Start-up: typer builds every command from its function's signature before it runs one, so each command
module imports only typer, rich and light modules of ours at the top; ccxt, ccxt.pro, pyarrow, the settings
(pydantic-settings), the scheduler and FastAPI are imported inside the command that needs them.
`ccxt-cli --help` loads none of them; nor do `instruments` and `catalog info --catalog DIR` when no settings
are in play (no settings file, no `CCXT_*` variable): the defaults do, and `catalog info` reads the Parquet
footers without pyarrow (catalog/footer.py). typer itself still loads pydantic to convert arguments.
tests/test_startup_imports.py holds this; benchmarks/startup.py times it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ccxt_pipeline.cli import catalog_cmd, config_cmd, daemon_cmd, plot_cmd
from ccxt_pipeline.cli.common import EXIT_CODES_HELP
from ccxt_pipeline.cli.fetch_cmd import fetch_funding, fetch_oi
from ccxt_pipeline.cli.instruments_cmd import instruments
from ccxt_pipeline.cli.serve_cmd import serve
from ccxt_pipeline.cli.stream_cmd import stream_liquidations

app = typer.Typer(
    name="ccxt-cli",
    help=(
        "Collect open interest, funding rates and liquidations from crypto derivatives exchanges "
        "into a NautilusTrader Parquet catalog.\n\n" + EXIT_CODES_HELP
    ),
    no_args_is_help=True,
    # Never print local variables in a traceback: they may hold credentials.
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("fetch-oi")(fetch_oi)
app.command("fetch-funding")(fetch_funding)
app.command("stream-liquidations")(stream_liquidations)
app.command("instruments")(instruments)
app.command("plot")(plot_cmd.plot)
app.command("query")(catalog_cmd.query)
app.command("serve")(serve)
app.add_typer(catalog_cmd.app, name="catalog")
app.add_typer(daemon_cmd.app, name="daemon")
app.add_typer(config_cmd.app, name="config")


def _version(value: bool) -> None:
    if value:
        from ccxt_pipeline import __version__

        typer.echo(f"ccxt-pipeline {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    pass


def main() -> None:
    app()
