"""`ccxt-cli config show`: the effective settings, with every secret masked."""

from __future__ import annotations

import typer
import yaml  # type: ignore[import-untyped, unused-ignore]

from ccxt_pipeline.cli.common import CatalogOption, ConfigOption, JsonOption, guarded, load, out, print_json

app = typer.Typer(help="Inspect settings.", no_args_is_help=True)


@app.command("show")
@guarded
def show(config: ConfigOption = None, catalog: CatalogOption = None, json_out: JsonOption = False) -> None:
    """Print the effective settings (flags > CCXT_* environment > file > defaults), secrets masked.

    Validates them too: an unknown key or a wrong value is one clear error line and exit code 2.

    Example:  ccxt-cli config show --config config/ccxt_pipeline.yaml
    """
    data = load(config, catalog).redacted()
    if json_out:
        print_json(data)
    else:
        out.print(yaml.safe_dump(data, sort_keys=False).rstrip(), markup=False)
