"""Multi-language host for the gpu-burst components (`pulumi package add <repo>/provider`).

The components live in ../components (imported here as the `components` package, the same code that is pip-installed
as `gpu_burst`); this folder only adds PulumiPlugin.yaml and this entry point, so it does not clash with the
repository's own Pulumi program (../__main__.py).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pulumi.provider.experimental import component_provider_host  # noqa: E402

import components  # noqa: E402

PACKAGE = "gpu-burst"

if __name__ == "__main__":
    component_provider_host(components.COMPONENTS, PACKAGE, version=components.__version__)
