"""Shared pieces of the typed stack configuration: a strict base model, small validated types, and the way a
validator reports a problem.

Every problem reaches the user as one line `gpu-burst:<full path>: <what is wrong>; <what is allowed>`. The lines
for pydantic's own errors (types, ranges, patterns, unknown keys) are written by `stacks.config.errors` from the
field's type and metadata, so a new field gets good messages by declaring its type, bounds and docstring. A
validator that judges a value raises `ValueError("<what is wrong>; <what is allowed>")`, or :class:`Problems` to
report several problems or to name a field below the model it runs on.
"""

import ipaddress
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, ClassVar, Mapping

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict


def camel(name: str) -> str:
    """The camelCase key of a snake_case field, as written in Pulumi.<stack>.yaml."""
    head, *rest = name.split("_")
    return head + "".join(w.title() for w in rest)


class Strict(BaseModel):
    """Base for every config section: camelCase keys (as written in Pulumi.<stack>.yaml), unknown keys rejected,
    immutable once validated so typed objects can be passed inward without defensive copies.

    A field's docstring becomes its description, which error messages quote for values that do not match a format.
    Model validators (`mode="after"`) also run on the valid part of a section whose other fields are invalid
    (`stacks.config.errors`): a validator that reads an invalid field is skipped, so it must not catch
    AttributeError around field access."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, alias_generator=camel, validate_default=True,
        use_attribute_docstrings=True,
    )
    internal_keys: ClassVar[tuple[str, ...]] = ()
    """Fields the program fills itself: not listed to the user as valid keys."""


class Problems(ValueError):
    """One or more problems found by a validator, each `(relative path, "<what is wrong>; <what is allowed>")`.

    The relative path is appended to the path of the model the validator runs on: `"desiredSize"`,
    `"pools[1].name"`, or `""` for the model itself."""

    def __init__(self, *items: tuple[str, str]):
        self.items = [i for i in items if i]
        super().__init__(" | ".join(f"{p}: {m}" if p else m for p, m in self.items))

    def add(self, path: str, message: str) -> None:
        self.items.append((path, message))
        self.args = (" | ".join(f"{p}: {m}" if p else m for p, m in self.items),)

    def raise_if_any(self) -> None:
        if self.items:
            raise self


def unread_keys(model: BaseModel, keys: Mapping[str, tuple[str, str]], when: str) -> list[tuple[str, str]]:
    """`(key, message)` for each field of `keys` the user wrote although the section only reads it `when` (e.g.
    "mode is 'create'"); `keys` maps a field name to (why it is not read there, what to do instead). Only keys the
    user wrote count (`model_fields_set`), never defaults, so a section keeps the defaults of its other mode."""
    return [(camel(name), f"is only read when {when}{f' ({why})' if why else ''}; allowed: {instead}")
            for name, (why, instead) in keys.items() if name in model.model_fields_set]


INSTALL_MODES = ("install is true", "install is false")
"""The two modes of an add-on section, as `refuse_other_mode_keys` names them."""
CREATE_MODES = ("mode is 'create'", "mode is 'existing'")
"""The two modes of a network or cluster section."""


def refuse_other_mode_keys(model: BaseModel, second: bool, first_only: Mapping[str, tuple[str, str]],
                           second_only: Mapping[str, tuple[str, str]], modes: tuple[str, str]) -> None:
    """Raise one error for every key the user wrote that only the section's other mode reads (see `unread_keys`):
    `first_only` is read only in `modes[0]`, `second_only` only in `modes[1]`; `second` says the section is in the
    second mode."""
    if second:
        Problems(*unread_keys(model, first_only, modes[0])).raise_if_any()
    else:
        Problems(*unread_keys(model, second_only, modes[1])).raise_if_any()


def repeats(values: list[Any]) -> list[tuple[int, int]]:
    """`(index, index of its first occurrence)` for every item of `values` that repeats an earlier one, in order:
    what a uniqueness check reports as `<list>[i]: ... already at <list>[first]`."""
    first: dict[Any, int] = {}
    out = []
    for i, v in enumerate(values):
        if v in first:
            out.append((i, first[v]))
        else:
            first[v] = i
    return out


# -- small validated types ---------------------------------------------------------------------------------------
def pattern_type(regex: str, what: str, example: str) -> Any:
    """A string type that must match `regex`; the error says what the value should be (`what`) and gives an
    `example`, never the regex."""
    # ASCII: Python's \d and \w also match other scripts' digits and letters, which no AWS id, image reference or
    # Hugging Face name accepts (Go's and AWS's classes are ASCII).
    compiled = re.compile(regex, re.ASCII)

    def check(v: str) -> str:
        if not compiled.fullmatch(v):
            raise ValueError(f"'{v}' is not {what}; allowed: e.g. {example}")
        return v

    return Annotated[str, AfterValidator(check)]


_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$")


def _duration(v: str) -> str:
    if not _DURATION.match(v):
        raise ValueError(f"'{v}' is not a duration; allowed: Go duration syntax such as 30s, 5m, 1h30m")
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
        raise ValueError(f"'{v}' is not a CIDR block; allowed: an address/prefix such as 203.0.113.0/24") from None
    return v


Cidr = Annotated[str, AfterValidator(_cidr)]
"""An IPv4/IPv6 CIDR block (an allow-list entry)."""


# -- Kubernetes resource quantities ------------------------------------------------------------------------------
# The grammar of k8s.io/apimachinery/pkg/api/resource (quantity.go, ParseQuantity):
#   <quantity> ::= <signedNumber><suffix>; <suffix> ::= <binarySI> | <decimalExponent> | <decimalSI>
#   <binarySI> ::= Ki | Mi | Gi | Ti | Pi | Ei; <decimalSI> ::= m | "" | k | M | G | T | P | E (and n, u)
_QUANTITY = re.compile(r"^(?P<num>[0-9]+(\.[0-9]*)?|\.[0-9]+)(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][-+]?[0-9]+)?$")
_SUFFIX = {
    "": Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12, "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18, "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}


def quantity_value(v: str) -> Decimal:
    """The value of a Kubernetes quantity already validated by a quantity type (`"3.5"` → 3.5, `"20Gi"` → bytes)."""
    m = _QUANTITY.match(v)
    if m is None:
        raise ValueError(v)
    suffix = m.group("suffix") or ""
    if suffix[:1] in ("e", "E"):
        return Decimal(m.group("num")) * Decimal(10) ** int(suffix[1:])
    return Decimal(m.group("num")) * _SUFFIX[suffix]


def _number_to_str(v: Any) -> Any:
    # YAML `cpu: 4` arrives as an int and `cpu: 3.5` as a float; both are valid quantities, so accept them.
    if isinstance(v, bool):
        return v  # true/false is not a quantity: let the str check reject it with the type hint
    if isinstance(v, (int, float)):
        return format(Decimal(str(v)).normalize(), "f")
    return v


def quantity_type(what: str, example: str, units: tuple[str, ...]) -> Any:
    """A Kubernetes quantity (a YAML number or a string) with one of the given unit suffixes ('' = none)."""

    def check(v: str) -> str:
        m = _QUANTITY.match(v)
        ok = m is not None and (m.group("suffix") or "") in units
        try:
            ok = ok and quantity_value(v) > 0
        except (InvalidOperation, ValueError):
            ok = False
        if not ok:
            shown = ", ".join(repr(u) if u else "no unit" for u in units)
            raise ValueError(f"'{v}' is not {what}; allowed: a positive Kubernetes quantity such as {example} "
                             f"(units: {shown})")
        return v

    return Annotated[str, BeforeValidator(_number_to_str), AfterValidator(check)]


CpuQuantity = quantity_type("a CPU amount", "4, \"3.5\" or 3500m", ("", "m"))
"""CPU cores as a Kubernetes quantity: `4`, `"3.5"`, `"3500m"`."""
MemoryQuantity = quantity_type("a memory size", "16Gi or 512Mi", ("Ki", "Mi", "Gi", "Ti", "k", "M", "G", "T"))
"""Bytes as a Kubernetes quantity: `16Gi`, `512Mi`."""

GIB = Decimal(2) ** 30


# -- Kubernetes labels -------------------------------------------------------------------------------------------
# apimachinery validation (IsQualifiedName, IsValidLabelValue): an optional DNS-subdomain prefix and '/', then a name
# of at most 63 characters; a value of at most 63 characters, possibly empty.
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", re.ASCII)
_LABEL_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", re.ASCII)


def label_problem(key: str, value: str) -> str:
    """What makes `key: value` an invalid Kubernetes label ('' when it is valid)."""
    prefix, _, name = key.rpartition("/")
    if ("/" in key and (not prefix or len(prefix) > 253 or not _LABEL_PREFIX.fullmatch(prefix))) \
            or not _LABEL_NAME.fullmatch(name):
        return (f"'{key}' is not a label key; allowed: an optional DNS prefix and '/', then up to 63 letters, digits, "
                "'-', '_' or '.', e.g. release or example.com/team")
    if value and not _LABEL_NAME.fullmatch(value):
        return (f"'{value}' (label {key}) is not a label value; allowed: up to 63 letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit")
    return ""


def _labels(v: dict[str, str]) -> dict[str, str]:
    p = Problems()
    for key, value in v.items():
        problem = label_problem(key, value)
        if problem:
            p.add(key, problem)
    p.raise_if_any()
    return v


LabelMap = Annotated[dict[str, str], AfterValidator(_labels)]
"""Kubernetes labels (`{release: kube-prometheus-stack}`), each key and value checked as the API server does."""
