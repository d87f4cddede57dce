"""Shared pieces of the typed stack configuration: a strict base model and small validated types."""

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.title() for w in rest)


class Strict(BaseModel):
    """Base for every config section: camelCase keys (as written in Pulumi.<stack>.yaml), unknown keys rejected,
    immutable once validated so typed objects can be passed inward without defensive copies."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, alias_generator=_camel, validate_default=True
    )


_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$")


def _duration(v: str) -> str:
    if not _DURATION.match(v):
        raise ValueError(f"'{v}' is not a duration; use Go duration syntax such as 30s, 5m, 1h30m")
    return v


Duration = Annotated[str, AfterValidator(_duration)]
"""A Go-style duration string (`30s`, `5m`, `720h`), the syntax Karpenter, KEDA and the HTTP add-on accept."""


def duration_seconds(v: str) -> float:
    """Seconds in a Go-style duration string already validated by :data:`Duration`."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, _, u in re.findall(r"([0-9]+(\.[0-9]+)?)(ms|s|m|h)", v))


def _cidr(v: str) -> str:
    try:
        ipaddress.ip_network(v)
    except ValueError:
        raise ValueError(f"'{v}' is not a CIDR block such as 203.0.113.0/24") from None
    return v


Cidr = Annotated[str, AfterValidator(_cidr)]
"""An IPv4/IPv6 CIDR block (an allow-list entry)."""
