"""Strict validation of core Kubernetes objects (Pod, Node, Event, HPA, ...) against the official client's models.

The client's own deserializer silently drops unknown keys; the API server does not accept them (strict field
validation) and never returns them. So this walks the object against each model's ``openapi_types`` /
``attribute_map`` (unknown key -> error, wrong scalar type -> error), then builds the model, which enforces the
required fields (``Invalid value for `name`, must not be `None```).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

MODELS = {
    ("v1", "Pod"): "V1Pod",
    ("v1", "Node"): "V1Node",
    ("v1", "Event"): "CoreV1Event",
    ("v1", "Service"): "V1Service",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("apps/v1", "ReplicaSet"): "V1ReplicaSet",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "V2HorizontalPodAutoscaler",
}

_LIST = re.compile(r"^list\[(.+)\]$")
_DICT = re.compile(r"^dict\[([^,]+), (.+)\]$")


def _check(value: Any, type_name: str, path: str, errors: list[str]) -> None:
    from kubernetes import client

    if value is None:
        return  # `null` is how the API prints an unset optional field (e.g. Event.firstTimestamp)
    if m := _LIST.match(type_name):
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            _check(item, m[1], f"{path}[{i}]", errors)
        return
    if m := _DICT.match(type_name):
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a mapping, got {type(value).__name__}")
            return
        for k, item in value.items():
            _check(item, m[2], f"{path}.{k}", errors)
        return
    scalar = {"str": str, "int": int, "bool": bool, "float": (int, float)}
    if type_name in scalar:
        ok = isinstance(value, scalar[type_name]) and not (type_name == "int" and isinstance(value, bool))
        if not ok:
            errors.append(f"{path}: expected {type_name}, got {value!r}")
        return
    if type_name in ("datetime", "date"):
        try:
            datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            errors.append(f"{path}: not an RFC 3339 time: {value!r}")
        return
    if type_name == "object":
        return  # IntOrString, Quantity, RawExtension
    klass = getattr(client, type_name, None)
    if klass is None:
        errors.append(f"{path}: unknown model {type_name}")
        return
    if not isinstance(value, dict):
        errors.append(f"{path}: expected an object ({type_name}), got {type(value).__name__}")
        return
    by_json = {json_key: attr for attr, json_key in klass.attribute_map.items()}
    for key, item in value.items():
        attr = by_json.get(key)
        if attr is None:
            errors.append(f"{path}.{key}: unknown field of {type_name}")
            continue
        _check(item, klass.openapi_types[attr], f"{path}.{key}", errors)


def validate_core(obj: dict[str, Any]) -> list[str]:
    """Errors of a core object (empty when it is what the API server could have returned)."""
    from kubernetes import client

    model = MODELS.get((obj.get("apiVersion"), obj.get("kind")))
    if model is None:
        return [f"<root>: no client model for {obj.get('apiVersion')}/{obj.get('kind')}"]
    errors: list[str] = []
    _check(obj, model, "<root>", errors)
    if not errors:
        class _Response:  # ApiClient.deserialize reads .data
            data = __import__("json").dumps(obj)

        try:
            client.ApiClient().deserialize(_Response(), model)
        except (ValueError, TypeError) as e:
            errors.append(f"<root>: {e}")
    return errors
