"""Reading the cluster: a small ``ClusterReader`` interface with two implementations.

``verify`` and ``timeline`` only ever see plain dicts in the API's JSON shape (camelCase, RFC 3339 timestamps),
whichever implementation produced them:

* :class:`KubeClusterReader` asks the API server through the official ``kubernetes`` client;
* :class:`FileClusterReader` reads a dump (``kubectl get scaledobjects,hpa,pods,nodeclaims,nodes -A -o json``),
  which is what the tests use and what an operator can attach to a bug report.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Optional, Protocol

import yaml

from burstctl.output import BadInput, CheckError

Obj = dict[str, Any]

GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
NODEPOOL_LABEL = "karpenter.sh/nodepool"


class ClusterReader(Protocol):
    """What verify/timeline need from a cluster. Missing objects are ``None`` / empty lists, never errors."""

    def scaled_object(self, namespace: str, name: str) -> Optional[Obj]: ...

    def hpa(self, namespace: str, name: str) -> Optional[Obj]: ...

    def pods(self, namespace: str, selector: dict[str, str]) -> list[Obj]: ...

    def nodeclaims(self) -> list[Obj]: ...

    def nodes(self, selector: dict[str, str]) -> list[Obj]: ...


# -- helpers shared by verify and timeline ---------------------------------------------------------------------
def parse_selector(text: str, flag: str = "--selector") -> dict[str, str]:
    """``a=b,c=d`` equality selectors (the only kind the model pods need)."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key or "!" in key:
            raise BadInput(f"{flag}: '{part}' is not a key=value label selector; use e.g. app.kubernetes.io/name=llm")
        out[key.strip()] = value.strip().lstrip("=")
    return out


def matches(obj: Obj, selector: dict[str, str]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def condition(obj: Optional[Obj], ctype: str) -> Optional[Obj]:
    """The status condition of the given type, if any."""
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def is_true(obj: Optional[Obj], ctype: str) -> bool:
    c = condition(obj, ctype)
    return bool(c) and str(c.get("status")) == "True"


def ts(value: Any) -> Optional[datetime]:
    """RFC 3339 timestamp (string, or datetime as the kubernetes client returns) to an aware datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def name_of(obj: Obj) -> str:
    return (obj.get("metadata") or {}).get("name", "?")


# -- implementations -------------------------------------------------------------------------------------------
class FileClusterReader:
    """Objects from JSON/YAML files: a ``kind: List`` (as kubectl prints), multi-document YAML, single objects,
    or a directory of such files."""

    def __init__(self, *paths: Path):
        self.objects: list[Obj] = []
        for path in paths:
            files = sorted(p for p in path.iterdir() if p.suffix in (".json", ".yaml", ".yml")) if path.is_dir() \
                else [path]
            for f in files:
                self._load(f)

    def _load(self, path: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8")
            docs = [json.loads(text)] if path.suffix == ".json" else list(yaml.safe_load_all(text))
        except OSError as e:
            raise BadInput(f"--from-file: cannot read {path}: {e.strerror}") from None
        except (ValueError, yaml.YAMLError) as e:
            raise BadInput(f"--from-file: {path} is not valid JSON/YAML: {str(e).splitlines()[0]}") from None
        for doc in docs:
            if not isinstance(doc, dict):
                continue
            if doc.get("kind", "").endswith("List") and isinstance(doc.get("items"), list):
                self.objects.extend(i for i in doc["items"] if isinstance(i, dict))
            elif "kind" in doc:
                self.objects.append(doc)
            else:
                raise BadInput(f"--from-file: {path} holds an object without `kind`; expected Kubernetes objects")

    def _of(self, kind: str, namespace: Optional[str] = None) -> list[Obj]:
        return [o for o in self.objects if o.get("kind") == kind
                and (namespace is None or (o.get("metadata") or {}).get("namespace") == namespace)]

    def scaled_object(self, namespace: str, name: str) -> Optional[Obj]:
        return next((o for o in self._of("ScaledObject", namespace) if name_of(o) == name), None)

    def hpa(self, namespace: str, name: str) -> Optional[Obj]:
        return next((o for o in self._of("HorizontalPodAutoscaler", namespace) if name_of(o) == name), None)

    def pods(self, namespace: str, selector: dict[str, str]) -> list[Obj]:
        return [o for o in self._of("Pod", namespace) if matches(o, selector)]

    def nodeclaims(self) -> list[Obj]:
        return self._of("NodeClaim")

    def nodes(self, selector: dict[str, str]) -> list[Obj]:
        return [o for o in self._of("Node") if matches(o, selector)]


class KubeClusterReader:
    """The live cluster through the official client (kubeconfig, or in-cluster config as a fallback)."""

    def __init__(self, kubeconfig: Optional[str] = None, context: Optional[str] = None):
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        try:
            config.load_kube_config(config_file=kubeconfig, context=context)
        except ConfigException as e:
            if context or kubeconfig:
                raise BadInput(f"--context/--kubeconfig: {e}") from None
            try:
                config.load_incluster_config()
            except ConfigException:
                raise BadInput(f"--kubeconfig: no usable kubeconfig ({e}); pass --kubeconfig or --context") from None
        self._api = client.ApiClient()
        self._core = client.CoreV1Api(self._api)
        self._custom = client.CustomObjectsApi(self._api)
        self._autoscaling = client.AutoscalingV2Api(self._api)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return fn(*args, **kwargs)
        except ApiException as e:
            if e.status == 404:
                return None
            if e.status in (401, 403):
                raise CheckError(f"not allowed to read {what} ({e.status} {e.reason}); check your RBAC") from None
            raise CheckError(f"reading {what} failed: {e.status} {e.reason}") from None
        except HTTPError as e:
            raise CheckError(f"cannot reach the API server while reading {what}: {e}") from None

    @staticmethod
    def _raw(resp: Any) -> Any:
        # Responses are read unparsed (_preload_content=False): the API's own camelCase JSON, like the dumps, and no
        # client-side model validation that would reject fields newer than this client.
        return None if resp is None else json.loads(resp.data)

    @staticmethod
    def _sel(selector: dict[str, str]) -> str:
        return ",".join(f"{k}={v}" for k, v in selector.items())

    def scaled_object(self, namespace: str, name: str) -> Optional[Obj]:
        return self._call("scaledobjects.keda.sh", self._custom.get_namespaced_custom_object,
                          "keda.sh", "v1alpha1", namespace, "scaledobjects", name)

    def hpa(self, namespace: str, name: str) -> Optional[Obj]:
        return self._raw(self._call("horizontalpodautoscalers",
                                    self._autoscaling.read_namespaced_horizontal_pod_autoscaler, name, namespace,
                                    _preload_content=False))

    def pods(self, namespace: str, selector: dict[str, str]) -> list[Obj]:
        got = self._raw(self._call("pods", self._core.list_namespaced_pod, namespace,
                                   label_selector=self._sel(selector), _preload_content=False))
        return list((got or {}).get("items") or [])

    def nodeclaims(self) -> list[Obj]:
        got = self._call("nodeclaims.karpenter.sh", self._custom.list_cluster_custom_object,
                         "karpenter.sh", "v1", "nodeclaims")
        return list((got or {}).get("items") or [])

    def nodes(self, selector: dict[str, str]) -> list[Obj]:
        got = self._raw(self._call("nodes", self._core.list_node, label_selector=self._sel(selector),
                                   _preload_content=False))
        return list((got or {}).get("items") or [])


def make_reader(from_file: Optional[list[Path]], kubeconfig: Optional[str], context: Optional[str]) -> ClusterReader:
    """A file-backed reader when ``--from-file`` is given, otherwise the live cluster."""
    if from_file:
        missing = [str(p) for p in from_file if not p.exists()]
        if missing:
            raise BadInput(f"--from-file: no such file or directory: {', '.join(missing)}")
        return FileClusterReader(*from_file)
    return KubeClusterReader(kubeconfig=kubeconfig, context=context)
