"""Turn a failed validation into one line per problem, `gpu-burst:<full path>: <what is wrong>; <what is allowed>`.

Two things pydantic does not do on its own:

- Messages from field metadata. pydantic's texts ("Input should be a valid integer", a raw regex) do not say how
  to write the value in YAML; here each error type is explained from the field's type, bounds, default and
  docstring, so fields added later get the same quality of message without extra code.
- Cross-field checks on partly invalid input. pydantic runs a model's `mode="after"` validators only when every
  field of the model is valid, so one typo would hide every cross-field problem. After a failed validation each
  failing model is rebuilt from the fields that did validate and its after-validators are run on that partial
  object; a validator that reads an invalid (absent) field raises AttributeError and is skipped.
"""

import enum
import re
import typing
from typing import Annotated, Any, Optional

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import SchemaValidator

from .base import Problems, Strict

NAMESPACE = "gpu-burst"


def invoke_reason(e: Exception) -> str:
    """The provider's own words from a failed invoke (a lookup before any resource), without what the SDK, the engine
    and gRPC put before them (`invoke of <token> failed: invocation of <token> returned an error: rpc error: code =
    Unknown desc = `), for the config error that names the key the lookup came from."""
    text = re.sub(r"^.*returned an error: ", "", str(e).split(" failed: ", 1)[-1], flags=re.S)
    return re.sub(r"^rpc error: code = \w+ desc = ", "", text).strip() or type(e).__name__


def path(loc: tuple) -> str:
    """`("gpu", "pools", 1, "name")` → `gpu.pools[1].name`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def join(base: tuple, rel: str) -> str:
    head = path(base)
    if not rel:
        return head
    return f"{head}{rel}" if rel.startswith("[") or not head else f"{head}.{rel}"


# -- walking the model tree ---------------------------------------------------------------------------------------
def _strict_model(ann: Any) -> Optional[type]:
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def _unwrap(ann: Any) -> Any:
    """Optional[X] → X; Annotated[X, ...] → X."""
    if typing.get_origin(ann) is typing.Annotated:
        return _unwrap(typing.get_args(ann)[0])
    if typing.get_origin(ann) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        if len(args) == 1:
            return _unwrap(args[0])
    return ann


def _field_by_key(cls: type, key: Any) -> Optional[tuple[str, FieldInfo]]:
    for name, f in cls.model_fields.items():
        if key in (f.alias, name):
            return name, f
    return None


def _locate(root: type, loc: tuple) -> tuple[Optional[type], Optional[str], Optional[FieldInfo], bool]:
    """The model that owns the last key of `loc`, the field's name and info, and whether loc ends inside the
    field's value (a list item or a mapping value) rather than at the field itself."""
    cls: Optional[type] = root
    owner, name, info, inside = None, None, None, False
    ann: Any = None
    for part in loc:
        if cls is not None and isinstance(part, str):
            hit = _field_by_key(cls, part)
            if hit is None:
                return cls, None, None, False
            owner, (name, info), inside = cls, hit, False
            ann = _unwrap(info.annotation)
            cls = _strict_model(ann)
            continue
        # an index into a list, or a key of a dict
        inside = True
        origin = typing.get_origin(ann)
        args = typing.get_args(ann)
        if origin in (list, tuple, set, frozenset) and args:
            ann = _unwrap(args[0])
        elif origin is dict and len(args) == 2:
            ann = _unwrap(args[1])
        else:
            ann = None
        cls = _strict_model(ann)
    return owner, name, info, inside


def valid_keys(cls: type) -> list[str]:
    hidden = getattr(cls, "internal_keys", ())
    return [k for n, f in cls.model_fields.items() if (k := f.alias or n) not in hidden]


# -- messages from types and metadata -----------------------------------------------------------------------------
def _yaml(v: Any) -> str:
    """How a value reads in the stack file (so the user recognises what they wrote)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f"'{v}'"
    if isinstance(v, (int, float)):
        return f"the number {v}"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "a mapping"
    if v is None:
        return "an empty value"
    return repr(v)


def _example(info: Optional[FieldInfo]) -> Optional[Any]:
    if info is None:
        return None
    d = info.get_default(call_default_factory=True)
    if d is None or d is ... or (isinstance(d, (list, dict)) and not d):
        return None
    if isinstance(d, enum.Enum):
        return d.value
    if isinstance(d, BaseModel):
        return None
    return d


def _yaml_literal(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(_yaml_literal(x) for x in v) + "]"
    if isinstance(v, enum.Enum):
        return _yaml_literal(v.value)
    if isinstance(v, str):
        # quote what YAML would read as a number or boolean
        try:
            float(v)
            return f'"{v}"'
        except ValueError:
            pass
        if v.lower() in ("true", "false", "yes", "no", "on", "off", "null", "~"):
            return f'"{v}"'
        return v
    return str(v)


def _bounds(info: Optional[FieldInfo], inside: bool) -> dict[str, Any]:
    """ge/gt/le/lt constraints of the field (or of its items)."""
    out: dict[str, Any] = {}
    if info is None:
        return out

    def annotated_metadata(ann: Any) -> list:
        found = []
        if typing.get_origin(ann) is typing.Annotated:
            for m in typing.get_args(ann)[1:]:
                found.extend(getattr(m, "metadata", [m]))
        return found

    metas = list(info.metadata)
    if inside:
        metas = [m for a in typing.get_args(_unwrap(info.annotation)) for m in annotated_metadata(a)]
    elif not metas:
        # Optional[Annotated[int, Field(ge=..)]]: the bounds sit on the union member
        metas = [m for a in typing.get_args(info.annotation) for m in annotated_metadata(a)]
    for m in metas:
        for k in ("ge", "gt", "le", "lt", "min_length", "max_length"):
            if getattr(m, k, None) is not None:
                out[k] = getattr(m, k)
    return out


def _range(b: dict[str, Any], kind: str) -> str:
    lo = b.get("ge", None if "gt" not in b else f"more than {b['gt']}")
    hi = b.get("le", None if "lt" not in b else f"less than {b['lt']}")
    if "ge" in b and "le" in b:
        return f"{kind} from {b['ge']} to {b['le']}"
    parts = []
    if lo is not None:
        parts.append(f"at least {lo}" if "ge" in b else str(lo))
    if hi is not None:
        parts.append(f"at most {hi}" if "le" in b else str(hi))
    return f"{kind} " + " and ".join(parts)


def _accepts(info: Optional[FieldInfo], inside: bool, value: str) -> bool:
    """Whether the field (`inside`: one item of it) takes `value`, with every validator of its type."""
    if info is None:
        return False
    ann: Any = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    if inside:
        args = typing.get_args(_unwrap(info.annotation))
        ann = args[-1] if args else None  # list[X] → X, dict[K, V] → V
    try:
        TypeAdapter(ann).validate_python(value)
    except (ValidationError, TypeError, ValueError):
        return False
    return True


def _quote_number(info: Optional[FieldInfo], inside: bool, key: Any, inp: Any, example: Any) -> str:
    """A string key written as a YAML number: quote what was written when the key takes it (`10` → `"10"`), so the
    hint never changes the meaning; the default only when what was written is not valid anyway."""
    written = str(inp)
    if isinstance(inp, float):
        why = "YAML reads it as a number and may change it, e.g. 1.30 → 1.3"
    else:
        why = "YAML reads it as a number"
    if _accepts(info, inside, written):
        hint = f"quote it: {key}: \"{written}\""
        if _accepts(info, inside, written + "%") and not _accepts(info, inside, "?"):  # "?": a free-form string
            hint += f" (the count {written}); for a percentage instead, {key}: \"{written}%\""
    else:
        hint = f"quote it: {key}: \"{example if isinstance(example, str) else written}\""
    return f"expected a string, got {_yaml(inp)} ({why}); {hint}"


def _description(info: Optional[FieldInfo]) -> str:
    d = (info.description or "").strip() if info else ""
    return d.split("\n\n")[0].replace("\n", " ")


KNOWN_PATTERNS = {
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$": "a Kubernetes name (DNS-1123 label); allowed: lowercase letters, digits and "
                                        "'-', starting and ending with a letter or digit, e.g. inference",
    r"^[a-z]([-a-z0-9]*[a-z0-9])?$": "a DNS-1035 label; allowed: lowercase letters, digits and '-', starting with a "
                                     "letter, e.g. qwen2-5-1-5b-instruct",
}
"""Explanations of patterns that bare `Field(pattern=...)` fields use (a raw regex is not an explanation)."""

_KINDS = {
    "int": "an integer", "float": "a number", "bool": "true or false", "str": "a string", "list": "a list",
    "dict": "a mapping", "model": "a mapping",
}


def explain(root: type, e: dict) -> list[tuple[str, str]]:
    """(full path, message) lines for one pydantic error."""
    loc = tuple(e["loc"])
    typ = e["type"]
    inp = e.get("input")
    ctx = e.get("ctx") or {}
    owner, name, info, inside = _locate(root, loc)
    key = loc[-1] if loc and isinstance(loc[-1], str) else (
        next((p for p in reversed(loc) if isinstance(p, str)), "value"))
    here = path(loc)
    example = _example(info) if not inside else None
    bounds = _bounds(info, inside)

    if typ == "value_error" or typ == "assertion_error":
        err = ctx.get("error")
        if isinstance(err, Problems):
            return [(join(loc, p), m) for p, m in err.items]
        return [(here, str(err) if err is not None else e["msg"].removeprefix("Value error, "))]
    if typ == "extra_forbidden":
        cls = _model_at(root, loc[:-1])
        keys = ", ".join(valid_keys(cls)) if cls else "see the docs"
        return [(here, f"unknown key; valid keys here: {keys}")]
    if typ == "missing":
        d = _description(info)
        return [(here, f"required but not set; {d}" if d else "required but not set; add this key")]
    if typ in ("int_parsing", "int_type", "int_from_float"):
        ex = example if isinstance(example, int) and not isinstance(example, bool) else bounds.get("ge", 1)
        return [(here, f"expected an integer, got {_yaml(inp)}; write a whole number without quotes, e.g. {key}: {ex}")]
    if typ in ("float_parsing", "float_type", "decimal_parsing", "decimal_type"):
        ex = example if isinstance(example, (int, float)) and not isinstance(example, bool) else 1
        return [(here, f"expected a number, got {_yaml(inp)}; write it without quotes, e.g. {key}: {ex}")]
    if typ in ("bool_parsing", "bool_type"):
        return [(here, f"expected true or false, got {_yaml(inp)}; write {key}: true or {key}: false")]
    if typ == "string_type":
        if isinstance(inp, (int, float)) and not isinstance(inp, bool):
            return [(here, _quote_number(info, inside, key, inp, example))]
        ex = f"{key}: {_yaml_literal(example)}" if isinstance(example, str) else f"{key}: \"...\""
        return [(here, f"expected a string, got {_yaml(inp)}; write e.g. {ex}")]
    if typ == "list_type":
        ex = _example(info)
        ex = _yaml_literal(ex) if isinstance(ex, list) else "[a, b]"
        return [(here, f"expected a list, got {_yaml(inp)}; write it as a YAML list, e.g. {key}: {ex}")]
    if typ in ("model_type", "model_attributes_type", "dict_type"):
        cls = _model_at(root, loc)
        keys = f" with keys: {', '.join(valid_keys(cls))}" if cls else ""
        return [(here, f"expected a mapping, got {_yaml(inp)}; write it as indented key: value lines{keys}")]
    if typ in ("literal_error", "enum"):
        allowed = ctx.get("expected", "")
        if isinstance(inp, (int, float)) and not isinstance(inp, bool) and "'" in allowed:
            ex = example if isinstance(example, str) else allowed.split("'")[1]
            return [(here, f"expected a string, got {_yaml(inp)} (YAML reads it as a number); quote it, e.g. "
                           f"{key}: \"{ex}\"; allowed: {allowed}")]
        return [(here, f"{_yaml(inp)} is not allowed; allowed: {allowed}")]
    if typ in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        kind = "an integer" if isinstance(inp, int) else "a number"
        b = bounds or {k: v for k, v in ctx.items() if k in ("ge", "gt", "le", "lt")}
        return [(here, f"{inp} is out of range; allowed: {_range(b, kind)}")]
    if typ in ("too_short", "too_long"):
        what = "items" if isinstance(inp, (list, tuple, set, dict)) else "characters"
        if typ == "too_short":
            n = ctx.get("min_length")
            return [(here, f"has {ctx.get('actual_length', 0)} {what}; allowed: at least {n}")]
        return [(here, f"has {ctx.get('actual_length')} {what}; allowed: at most {ctx.get('max_length')}")]
    if typ in ("string_too_short", "string_too_long"):
        if typ == "string_too_short":
            return [(here, f"is empty or too short; allowed: at least {ctx.get('min_length')} characters")]
        return [(here, f"'{inp}' is too long; allowed: at most {ctx.get('max_length')} characters")]
    if typ == "string_pattern_mismatch":
        known = KNOWN_PATTERNS.get(ctx.get("pattern", ""))
        if known:
            return [(here, f"'{inp}' is not {known}")]
        d = _description(info)
        return [(here, f"'{inp}' has the wrong format; allowed: a value as described for this key: "
                       f"{d or 'see the docs'}")]
    # anything else: pydantic's text, still on one line with the path
    return [(here, e["msg"].removeprefix("Value error, "))]


def _model_at(root: type, loc: tuple) -> Optional[type]:
    """The model class whose instance sits at `loc` (the root for an empty loc): a name selects a field, a list index
    or a mapping key (a string too, once inside a container) the container's item."""
    cls: Optional[type] = root
    ann: Any = None
    for part in loc:
        if cls is not None and isinstance(part, str):
            hit = _field_by_key(cls, part)
            if hit is None:
                return None
            ann = _unwrap(hit[1].annotation)
        else:
            args = typing.get_args(ann)
            ann = _unwrap(args[-1]) if args else None
        cls = _strict_model(ann)
    return cls


# -- cross-field checks on the valid part of partly invalid input -------------------------------------------------
class _Absent:
    """Stands for a list item or section that is too broken to rebuild: any attribute access skips the check."""

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)


_FIELD_VALIDATORS: dict[tuple[type, str], SchemaValidator] = {}


def _model_node(schema: dict, cls: type) -> tuple[dict, list]:
    defs = []
    if schema.get("type") == "definitions":
        defs = schema["definitions"]
        schema = schema["schema"]
    while schema.get("type") != "model" or schema.get("cls") is not cls:
        schema = schema["schema"]
    return schema, defs


def _field_validator(cls: type, name: str) -> SchemaValidator:
    """A validator for one field of `cls` with its field validators but without the model's own validators."""
    v = _FIELD_VALIDATORS.get((cls, name))
    if v is None:
        node, defs = _model_node(cls.__pydantic_core_schema__, cls)
        fields = node["schema"]["fields"]
        one: dict = {"type": "model-fields", "fields": {name: fields[name]}, "extra_behavior": "ignore",
                     "model_name": cls.__name__}
        if defs:
            one = {"type": "definitions", "schema": one, "definitions": defs}
        v = _FIELD_VALIDATORS[(cls, name)] = SchemaValidator(one, node.get("config"))
    return v


def _has_errors(bad: list[tuple], loc: tuple) -> bool:
    return any(b[: len(loc)] == loc for b in bad)


def partial(cls: type, data: Any, loc: tuple, bad: list[tuple], found: list[tuple[str, str]]) -> Any:
    """Rebuild `cls` from the fields of `data` that validate, run its after-validators, and add their problems
    to `found`. Fields below which pydantic reported errors (`bad`) are rebuilt the same way or left out."""
    if not isinstance(data, dict):
        return _Absent()
    values: dict[str, Any] = {}
    written: set[str] = set()
    for name, f in cls.model_fields.items():
        alias = f.alias or name
        here = loc + (alias,)
        present = alias in data or name in data
        if present:
            written.add(name)
        raw = data.get(alias, data.get(name))
        if present and _has_errors(bad, here):
            ann = _unwrap(f.annotation)
            if here in bad and _strict_model(ann) is None:
                continue  # the value as a whole is invalid (e.g. an empty list where items are required)
            sub = _strict_model(ann)
            if sub is not None:
                values[name] = partial(sub, raw, here, bad, found)
                continue
            item = _strict_model(_unwrap(typing.get_args(ann)[0])) if typing.get_origin(ann) is list else None
            if item is not None and isinstance(raw, list):
                values[name] = [
                    partial(item, x, here + (i,), bad, found) if _has_errors(bad, here + (i,))
                    else item.model_validate(x)
                    for i, x in enumerate(raw)
                ]
            continue  # an invalid plain value: left out, checks that read it are skipped
        try:
            fields, _, _ = _field_validator(cls, name).validate_python({alias: raw} if present else {})
        except ValidationError:
            continue
        values[name] = fields[name]
    obj = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", values)
    # what the user wrote, as pydantic records it: checks of keys that one mode does not read must not see defaults
    object.__setattr__(obj, "__pydantic_fields_set__", written & set(values))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    for dec in cls.__pydantic_decorators__.model_validators.values():
        if dec.info.mode != "after":
            continue
        try:
            dec.func(obj)
        except Problems as p:
            found.extend((join(loc, rel), msg) for rel, msg in p.items)
        except (ValueError, AssertionError) as exc:
            found.append((path(loc), str(exc)))
        except Exception:  # noqa: BLE001
            # AttributeError: the check needs a field that is invalid (its own error is already reported). Any other
            # failure of a check on a partial object is skipped too: the user sees the field errors, never a crash.
            continue
    return obj


def format_errors(root: type, err: ValidationError, data: Any = None) -> list[str]:
    """One `gpu-burst:<path>: <message>` line per problem: pydantic's errors explained, plus the cross-field
    problems of the valid part (when `data`, the raw input, is given). Duplicates are dropped, order kept."""
    found: list[tuple[str, str]] = []
    errs = err.errors()
    for e in errs:
        found.extend(explain(root, e))
    if data is not None and issubclass(root, Strict):
        partial(root, data, (), [tuple(e["loc"]) for e in errs], found)
    lines: list[str] = []
    for p, m in found:
        line = f"{NAMESPACE}:{p}: {m}" if p else f"{NAMESPACE}: {m}"
        if line not in lines:
            lines.append(line)
    return lines
