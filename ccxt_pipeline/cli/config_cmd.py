"""`ccxt-cli config show`: the effective settings, with every secret masked, and where they came from."""

from __future__ import annotations

import typer

from ccxt_pipeline.cli.common import CatalogOption, ConfigOption, JsonOption, guarded, load, out, print_json

app = typer.Typer(help="Inspect settings.", no_args_is_help=True)


@app.command("show")
@guarded
def show(config: ConfigOption = None, catalog: CatalogOption = None, json_out: JsonOption = False) -> None:
    """Print the config file read (or none), the catalog's absolute path and the effective settings
    (flags > CCXT_* environment > file > defaults), secrets masked.

    Validates them too: an unknown key or a wrong value is one clear error line and exit code 2.

    Example:  ccxt-cli config show --config config/ccxt_pipeline.yaml
    """
    import yaml  # type: ignore[import-untyped, unused-ignore]

    from ccxt_pipeline.settings import config_file_in_use

    settings = load(config, catalog)
    used = config_file_in_use(config)
    source = None if used is None else str(used)
    catalog_dir = str(settings.catalog_path.resolve())
    data = settings.redacted()
    if json_out:
        print_json({"config_file": source, "catalog": catalog_dir, "settings": data})
        return
    # Comments, so that the output stays a valid settings file.
    out.print(
        f"# config file: {source or 'none (defaults, CCXT_* environment and flags only)'}", markup=False
    )
    out.print(f"# catalog: {catalog_dir}", markup=False)
    out.print(yaml.safe_dump(data, sort_keys=False).rstrip(), markup=False)
