"""The Pulumi program's own modules that burstctl reuses (typed stack config, model-service constants).

In a checkout they are `stacks.config` and `components`; an installed `gpu-burst[cli]` ships them as
`gpu_burst.config` and `gpu_burst` (pyproject.toml `package-dir`). Imported lazily: they pull in pydantic and pulumi."""

import importlib
from types import ModuleType


def _first(*names: str) -> ModuleType:
    for name in names[:-1]:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name is None or not name.startswith(e.name):
                raise  # a dependency of the module is missing, not the module itself
    return importlib.import_module(names[-1])


def stack_config() -> ModuleType:
    """`stacks.config` of the program (checkout) or `gpu_burst.config` (installed package)."""
    return _first("stacks.config", "gpu_burst.config")


def stack_config_gpu() -> ModuleType:
    """`stacks.config.gpu` (checkout) or `gpu_burst.config.gpu` (installed package)."""
    return _first("stacks.config.gpu", "gpu_burst.config.gpu")


def stack_config_capacity() -> ModuleType:
    """`stacks.config.capacity` (checkout) or `gpu_burst.config.capacity` (installed package)."""
    return _first("stacks.config.capacity", "gpu_burst.config.capacity")


def stack_config_cron() -> ModuleType:
    """`stacks.config.cron` (checkout) or `gpu_burst.config.cron` (installed package): KEDA's cron schedules."""
    return _first("stacks.config.cron", "gpu_burst.config.cron")


def model_service() -> ModuleType:
    """`components.model_service` (checkout) or `gpu_burst.model_service` (installed package)."""
    return _first("components.model_service", "gpu_burst.model_service")


def image_cache() -> ModuleType:
    """`components.image_cache` (checkout) or `gpu_burst.image_cache` (installed package): the image references the
    model pods pull."""
    return _first("components.image_cache", "gpu_burst.image_cache")


def stack_config_prices() -> ModuleType:
    """`stacks.config.prices` (checkout) or `gpu_burst.config.prices` (installed package): the GPU price table."""
    return _first("stacks.config.prices", "gpu_burst.config.prices")


def usage_queries() -> ModuleType:
    """`components.usage` (checkout) or `gpu_burst.usage` (installed package): the PromQL of the usage recording
    rules, which `burstctl usage` evaluates over its own time range."""
    return _first("components.usage", "gpu_burst.usage")


def monitoring() -> ModuleType:
    """`components.monitoring` (checkout) or `gpu_burst.monitoring` (installed package): the Prometheus Service."""
    return _first("components.monitoring", "gpu_burst.monitoring")


def component(name: str) -> ModuleType:
    """`components.<name>` (checkout) or `gpu_burst.<name>` (installed package), e.g. `http_addon`."""
    return _first(f"components.{name}", f"gpu_burst.{name}")
