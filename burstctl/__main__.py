"""``python -m burstctl``."""

from burstctl.cli import app

if __name__ == "__main__":  # pragma: no cover - exercised through the console script
    app(prog_name="burstctl")
