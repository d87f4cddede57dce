"""The `burstctl` console script: runs the CLI, or says how to install it when the `cli` extra is missing.

The package installs the script even without the extra (pip has no per-extra scripts); importing the CLI then
fails on its dependencies (typer, rich, aiohttp, ...), so the script checks for them first."""

import sys

HINT = "burstctl needs the operator CLI dependencies: pip install 'gpu-burst[cli]' (missing module: {name})"


def main() -> None:
    try:
        from burstctl.cli import app
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] != "burstctl":
            print(HINT.format(name=e.name.split(".")[0]), file=sys.stderr)
            raise SystemExit(2) from None
        raise
    app(prog_name="burstctl")
