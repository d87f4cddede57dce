"""Reading the cluster: a small ``ClusterReader`` interface with two implementations.

``verify`` and ``timeline`` only ever see plain dicts in the API's JSON shape (camelCase, RFC 3339 timestamps),
whichever implementation produced them:

* :class:`KubeClusterReader` asks the API server through the official ``kubernetes`` client;
* :class:`FileClusterReader` reads a dump (``kubectl get scaledobjects,hpa,pods,nodeclaims,nodes -A -o json``),
  which is what the tests use and what an operator can attach to a bug report.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Optional, Protocol

import yaml

from burstctl.output import BadInput, CheckError

Obj = dict[str, Any]

GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
LOG_LIMIT_BYTES = 8 * 1024 * 1024
"""Start-up logs of vLLM are a few hundred KiB; this bounds what a chatty container can make us download."""
NODEPOOL_LABEL = "karpenter.sh/nodepool"
TRAFFIC_CLASS_LABEL = "gpu-burst.io/traffic-class"
"""Template label of every GPU NodePool; model pods select it so NodePool weights choose among the pools of a class
(the stack's `components/_common.py` defines the same name)."""


class ClusterReader(Protocol):
    """What verify/timeline need from a cluster. Missing objects are ``None`` / empty lists, never errors."""

    def scaled_object(self, namespace: str, name: str) -> Optional[Obj]: ...

    def hpa(self, namespace: str, name: str) -> Optional[Obj]: ...

    def pods(self, namespace: str, selector: dict[str, str]) -> list[Obj]: ...

    def nodeclaims(self) -> list[Obj]: ...

    def nodes(self, selector: dict[str, str]) -> list[Obj]: ...

    def events(self, namespace: str, kind: str, name: Optional[str] = None) -> list[Obj]:
        """Core/v1 Events about the given object (or every object of the kind); the API server keeps them ~1 h.
        Events of cluster-scoped objects (NodeClaims) live in the `default` namespace."""
        ...

    def pod_log(self, namespace: str, pod: str, container: Optional[str]) -> Optional[str]:
        """The container's log with CRI timestamps (`kubectl logs --timestamps`), or None when there is none."""
        ...


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


def created_at(obj: Obj) -> Optional[datetime]:
    return ts((obj.get("metadata") or {}).get("creationTimestamp"))


def is_terminal(pod: Obj) -> bool:
    """A pod that will never serve again: Failed (evicted, rejected at admission) or Succeeded, or being deleted."""
    return ((pod.get("status") or {}).get("phase") in ("Failed", "Succeeded")
            or bool((pod.get("metadata") or {}).get("deletionTimestamp")))


def is_serving(pod: Obj) -> bool:
    return not is_terminal(pod) and (pod.get("status") or {}).get("phase") == "Running" and is_true(pod, "Ready")


_NOMINATED = re.compile(r"nodeclaim/([a-z0-9.-]+)")


def nominated_claims(pod_events: list[Obj]) -> list[str]:
    """NodeClaims Karpenter nominated the pod for (`Nominated` "Pod should schedule on: nodeclaim/<name>"), oldest
    first."""
    out: list[str] = []
    for ev in sorted((e for e in pod_events if e.get("reason") == "Nominated"), key=lambda e: event_first(e) or
                     datetime.min.replace(tzinfo=timezone.utc)):
        out += [n for n in _NOMINATED.findall(ev.get("message") or "") if n not in out]
    return out


def event_last(ev: Obj) -> Optional[datetime]:
    """When an Event last happened. Legacy recorders (kubelet, kube-controller-manager, Karpenter) set
    first/lastTimestamp and count; events.k8s.io recorders (KEDA's operator) set eventTime and, when it repeats,
    series.lastObservedTime. `kubectl get events -o yaml` shows both kinds through core/v1."""
    return (ts((ev.get("series") or {}).get("lastObservedTime")) or ts(ev.get("lastTimestamp"))
            or ts(ev.get("eventTime")) or ts(ev.get("firstTimestamp")))


def event_first(ev: Obj) -> Optional[datetime]:
    return ts(ev.get("firstTimestamp")) or ts(ev.get("eventTime")) or event_last(ev)


# KEDA (kedacore/keda@v2.20.2 pkg/scaling/executor/scale_scaledobjects.go): on activation it scales the target
# itself and records `KEDAScaleTargetActivated` "Scaled <kind> <ns>/<name> from <n> to <m>, triggered by ...".
# The Deployment controller (kubernetes pkg/controller/deployment/sync.go) then records `ScalingReplicaSet`
# "Scaled up replica set <rs> from 0 to <m>".
_FROM_ZERO = re.compile(r"\bfrom 0 to [1-9]\d*\b")


def scale_from_zero(so_events: list[Obj], deployment_events: list[Obj]) -> Optional[tuple[datetime, str]]:
    """The latest 0 -> N activation recorded in events, with the event it came from, or None.

    ScaledObject conditions carry no lastTransitionTime (keda.sh_scaledobjects CRD at v2.20.2: type, status,
    reason, message only), and status.lastActiveTime is refreshed on every poll while active, so events are the
    only record of when activation happened. The API server keeps events for an hour (kube-apiserver
    --event-ttl default)."""
    found: list[tuple[datetime, str]] = []
    for ev in so_events:
        if ev.get("reason") == "KEDAScaleTargetActivated" and _FROM_ZERO.search(ev.get("note") or
                                                                                   ev.get("message") or ""):
            at = event_last(ev)
            if at:
                found.append((at, "ScaledObject event KEDAScaleTargetActivated"))
    if not found:
        for ev in deployment_events:
            if ev.get("reason") == "ScalingReplicaSet" and "Scaled up" in (ev.get("message") or "") \
                    and _FROM_ZERO.search(ev.get("message") or ""):
                at = event_last(ev)
                if at:
                    found.append((at, "Deployment event ScalingReplicaSet (0 -> N)"))
    return max(found) if found else None


def launch_failures(reader: ClusterReader, claim: Optional[Obj], nominated: list[str]) -> list[str]:
    """Why the node did not launch: the NodeClaim's Launched condition when it is not True (Karpenter writes
    Unknown with the provider's reason, launch.go SetUnknownWithReason), or, for NodeClaims Karpenter already
    deleted (insufficient capacity, NodeClass not ready), the events it left in the `default` namespace."""
    out = []
    if claim is not None:
        c = condition(claim, "Launched")
        if c and c.get("status") != "True" and c.get("reason") not in (None, "", "AwaitingReconciliation"):
            out.append(f"NodeClaim {name_of(claim)} Launched={c.get('status')} {c.get('reason')}: "
                       f"{c.get('message') or ''}".strip())
    gone = [n for n in nominated if claim is None or n != name_of(claim)]
    if gone:
        for ev in reader.events("default", "NodeClaim"):
            name = (ev.get("involvedObject") or {}).get("name")
            if name in gone and ev.get("reason") in ("InsufficientCapacityError", "NodeClassNotReady"):
                out.append(f"NodeClaim {name} {ev.get('reason')} (deleted by Karpenter): "
                           f"{(ev.get('message') or '').removeprefix(f'NodeClaim {name} event: ')}")
    return out


_LISTS_OF_MAPPINGS = ("status.conditions", "status.containerStatuses", "status.initContainerStatuses",
                      "spec.containers", "spec.tolerations", "spec.taints", "spec.triggers")
_MAPPINGS = ("spec", "status", "involvedObject", "series", "spec.nodeSelector", "spec.scaleTargetRef",
             "status.allocatable", "status.health", "metadata.annotations")


def shape_problem(obj: Any) -> str:
    """Why an object cannot be what the API server returns, in the fields burstctl reads ('' when fine).

    The API server validates what it stores, so these only catch hand-edited or truncated dumps; they keep a
    malformed file a one-line error instead of a crash deep inside a check."""
    if not isinstance(obj, dict):
        return f": expected an object, got {type(obj).__name__}"
    if not isinstance(obj.get("kind"), str):
        return ": object without a string `kind`"
    md = obj.get("metadata")
    label = f" ({obj['kind']})"
    if not isinstance(md, dict) or not isinstance(md.get("name"), str):
        return f"{label}.metadata: expected a mapping with a string `name`"
    label = f" ({obj['kind']} {md['name']})"
    labels = md.get("labels")
    if labels is not None and not (isinstance(labels, dict) and all(isinstance(v, str) for v in labels.values())):
        return f"{label}.metadata.labels: expected a mapping of strings"
    for key in ("namespace", "creationTimestamp"):
        if md.get(key) is not None and not isinstance(md[key], str):
            return f"{label}.metadata.{key}: expected a string"
    for path in _MAPPINGS + _LISTS_OF_MAPPINGS:
        value: Any = obj
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            continue
        if path in _MAPPINGS and not isinstance(value, dict):
            return f"{label}.{path}: expected a mapping, got {type(value).__name__}"
        if path in _LISTS_OF_MAPPINGS and not (isinstance(value, list) and all(isinstance(v, dict) for v in value)):
            return f"{label}.{path}: expected a list of mappings"
    return ""


# -- implementations -------------------------------------------------------------------------------------------
class FileClusterReader:
    """Objects from JSON/YAML files: a ``kind: List`` (as kubectl prints), multi-document YAML, single objects,
    or a directory of such files."""

    def __init__(self, *paths: Path, logs: Optional[dict[str, str]] = None):
        self.objects: list[Obj] = []
        self.logs = dict(logs or {})
        """Pod name (or "*" for any pod) -> log text with CRI timestamps."""
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
        except UnicodeDecodeError:
            raise BadInput(f"--from-file: {path} is not a text file; expected `kubectl get ... -o yaml` output") \
                from None
        for d, doc in enumerate(docs):
            if doc is None:
                continue
            where = f"{path}" + (f" (document {d + 1})" if len(docs) > 1 else "")
            if not isinstance(doc, dict) or not isinstance(doc.get("kind"), str):
                raise BadInput(f"--from-file: {where} is not a Kubernetes object or List (no `kind`); expected "
                               "`kubectl get ... -o yaml` output")
            if doc["kind"].endswith("List"):
                items = doc.get("items")
                if not isinstance(items, list):
                    raise BadInput(f"--from-file: {where}: `items` of a {doc['kind']} must be a list")
                for i, item in enumerate(items):
                    problem = shape_problem(item)
                    if problem:
                        raise BadInput(f"--from-file: {where}: items[{i}]{problem}")
                self.objects.extend(items)
            else:
                problem = shape_problem(doc)
                if problem:
                    raise BadInput(f"--from-file: {where}: {problem.lstrip('.')}")
                self.objects.append(doc)

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

    def events(self, namespace: str, kind: str, name: Optional[str] = None) -> list[Obj]:
        return [o for o in self._of("Event", namespace)
                if (o.get("involvedObject") or {}).get("kind") == kind
                and (name is None or (o.get("involvedObject") or {}).get("name") == name)]

    def pod_log(self, namespace: str, pod: str, container: Optional[str]) -> Optional[str]:
        return self.logs.get(pod, self.logs.get("*"))


REQUEST_TIMEOUT_S = 10.0
"""Default bound on each Kubernetes API call (connect and read); a hung API server fails in seconds, not never."""


def _server_of(api: Any) -> str:
    return getattr(getattr(api, "configuration", None), "host", "") or "the API server"


def credential_timeout(request_timeout: float) -> Optional[float]:
    """How long loading the kubeconfig may take: it runs the credential plugin (`aws eks get-token`, which may
    fetch credentials over the network). None when a terminal is attached: the plugin may be prompting (MFA, SSO)."""
    if sys.stdin.isatty() and sys.stdout.isatty():
        return None
    return max(30.0, 3 * request_timeout)


def _bounded(fn: Any, limit: Optional[float]) -> Any:
    """Run fn, giving up after `limit` seconds (the kubernetes client runs exec plugins without a timeout)."""
    if limit is None:
        return fn()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = e

    worker = threading.Thread(target=run, daemon=True, name="kubeconfig-loader")
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        raise CheckError(f"loading the kubeconfig did not finish within {limit:g} s: its credential plugin "
                         "(`aws eks get-token`) hangs; check network access to AWS STS/SSO and `aws sts "
                         "get-caller-identity`")
    if "error" in box:
        raise box["error"]
    return box.get("value")


@contextlib.contextmanager
def _captured_loader_errors() -> Iterator[list[str]]:
    """Collect what the kubeconfig loader logs at ERROR (it reports exec-plugin failures only that way), instead
    of letting logging's last-resort handler print them as stray stderr lines."""
    messages: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = _Collect(level=logging.ERROR)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield messages
    finally:
        root.removeHandler(handler)


class KubeClusterReader:
    """The live cluster through the official client (kubeconfig, or in-cluster config as a fallback).

    Every call carries ``_request_timeout`` and the client does not retry reads, so a server that accepts the
    connection and never answers costs one timeout. Responses are read unparsed (``_preload_content=False``):
    the API's own camelCase JSON, like the dumps, and no client-side model that would drop fields newer than
    this client."""

    def __init__(self, kubeconfig: Optional[str] = None, context: Optional[str] = None,
                 timeout: float = REQUEST_TIMEOUT_S, logs: Optional[dict[str, str]] = None):
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException
        from urllib3.util.retry import Retry

        cfg = client.Configuration()
        try:
            with _captured_loader_errors() as logged:
                _bounded(lambda: config.load_kube_config(config_file=kubeconfig, context=context,
                                                         client_configuration=cfg), credential_timeout(timeout))
            exec_errors = [m for m in logged if m.startswith("exec:")]
            if exec_errors and not cfg.api_key:
                # The loader logs a failed credential plugin and carries on without a token (every call would be
                # an anonymous 401); `aws eks get-token` failing is a credentials problem, say so now.
                raise ConfigException(exec_errors[0])
        except ConfigException as e:
            text = str(e)
            if text.startswith("exec:"):
                # The credential plugin (`aws eks get-token` in the stack's kubeconfig) failed: a credentials
                # problem, not a kubeconfig syntax one.
                raise CheckError(f"the kubeconfig's credential plugin failed ({text}); check the AWS "
                                 "credentials it uses (`aws sts get-caller-identity`, AWS_PROFILE)") from None
            if context or kubeconfig:
                raise BadInput(f"--context/--kubeconfig: {text}") from None
            try:
                config.load_incluster_config(client_configuration=cfg)
            except ConfigException:
                raise BadInput(f"--kubeconfig: no usable kubeconfig ({text}); pass --kubeconfig or --context") \
                    from None
        except (OSError, yaml.YAMLError, ValueError, TypeError, KeyError, AttributeError, IndexError) as e:
            # The loader assumes a well-formed file: a YAML error, a list where a mapping belongs or a missing
            # key surface as these.
            where = kubeconfig or "the default kubeconfig (~/.kube/config or $KUBECONFIG)"
            detail = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise BadInput(f"--kubeconfig: {where} is not a usable kubeconfig ({type(e).__name__}: {detail}); "
                           "regenerate it, e.g. `pulumi stack output kubeconfig --show-secrets > kubeconfig`") \
                from None
        if not str(cfg.host or "").startswith(("https://", "http://")):
            raise BadInput(f"--kubeconfig: the selected cluster has no usable `server` URL (got {cfg.host!r}); "
                           "expected https://<endpoint> as in `pulumi stack output kubeconfig`")
        # Connection failures may be retried (cheap); a read that timed out is not (it would double the wait).
        cfg.retries = Retry(total=2, connect=2, read=0, status=0, redirect=0, backoff_factor=0.2)
        self.timeout = timeout
        self._logs = dict(logs or {})
        self._api = client.ApiClient(cfg)
        self._core = client.CoreV1Api(self._api)
        self._custom = client.CustomObjectsApi(self._api)
        self._autoscaling = client.AutoscalingV2Api(self._api)

    def _call(self, what: str, fn: Any, *args: Any, absent: tuple[int, ...] = (404,), **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError, MaxRetryError, TimeoutError as Urllib3Timeout

        server = _server_of(self._api)
        try:
            return fn(*args, _request_timeout=(self.timeout, self.timeout), _preload_content=False, **kwargs)
        except ApiException as e:
            if e.status in absent:
                return None
            if e.status == 401:
                # 401 is authentication: the server did not accept who we are. RBAC answers 403.
                raise CheckError(f"the API server rejected the credentials while reading {what} (401 "
                                 "Unauthorized): the token is missing, expired or not for this cluster; regenerate "
                                 "the kubeconfig (`pulumi stack output kubeconfig --show-secrets`) and check that "
                                 "your IAM principal has an EKS access entry") from None
            if e.status == 403:
                raise CheckError(f"not allowed to read {what} (403 Forbidden): your identity is authenticated but "
                                 "RBAC does not grant it `get/list` here; check the EKS access entry's policy and "
                                 "scope") from None
            raise CheckError(f"reading {what} failed: {e.status} {e.reason}") from None
        except (Urllib3Timeout, MaxRetryError) as e:
            reason = getattr(e, "reason", e)
            if isinstance(e, Urllib3Timeout) or isinstance(reason, Urllib3Timeout):
                raise CheckError(f"{server} did not answer within {self.timeout:g} s while reading {what}; is the "
                                 "endpoint reachable from here (VPN, publicAccessCidrs)? raise --request-timeout "
                                 "for a slow link") from None
            raise CheckError(f"cannot reach {server} while reading {what}: {reason}") from None
        except HTTPError as e:
            raise CheckError(f"cannot reach {server} while reading {what}: {e}") from None

    @staticmethod
    def _json(resp: Any, what: str) -> Any:
        if resp is None:
            return None
        try:
            got = json.loads(resp.data)
        except ValueError:
            raise CheckError(f"the API server answered {what} with something that is not JSON") from None
        items = got.get("items") if isinstance(got, dict) and str(got.get("kind", "")).endswith("List") else None
        if isinstance(items, list):
            # Items of built-in lists come without kind/apiVersion (only custom resources carry them): restore them
            # so live objects look like `kubectl get -o yaml` output.
            kind = str(got["kind"]).removesuffix("List")
            for obj in items:
                if isinstance(obj, dict):
                    obj.setdefault("kind", kind)
                    obj.setdefault("apiVersion", got.get("apiVersion"))
        for obj in items if isinstance(items, list) else [got]:
            problem = shape_problem(obj)
            if problem:
                raise CheckError(f"the API server's answer for {what} is not a Kubernetes object{problem}")
        return got

    @staticmethod
    def _sel(selector: dict[str, str]) -> str:
        return ",".join(f"{k}={v}" for k, v in selector.items())

    def scaled_object(self, namespace: str, name: str) -> Optional[Obj]:
        return self._json(self._call("scaledobjects.keda.sh", self._custom.get_namespaced_custom_object,
                                     "keda.sh", "v1alpha1", namespace, "scaledobjects", name), "scaledobjects")

    def hpa(self, namespace: str, name: str) -> Optional[Obj]:
        return self._json(self._call("horizontalpodautoscalers",
                                     self._autoscaling.read_namespaced_horizontal_pod_autoscaler, name, namespace),
                          "horizontalpodautoscalers")

    def pods(self, namespace: str, selector: dict[str, str]) -> list[Obj]:
        got = self._json(self._call("pods", self._core.list_namespaced_pod, namespace,
                                    label_selector=self._sel(selector)), "pods")
        return list((got or {}).get("items") or [])

    def nodeclaims(self) -> list[Obj]:
        got = self._json(self._call("nodeclaims.karpenter.sh", self._custom.list_cluster_custom_object,
                                    "karpenter.sh", "v1", "nodeclaims"), "nodeclaims")
        return list((got or {}).get("items") or [])

    def nodes(self, selector: dict[str, str]) -> list[Obj]:
        got = self._json(self._call("nodes", self._core.list_node, label_selector=self._sel(selector)), "nodes")
        return list((got or {}).get("items") or [])

    def events(self, namespace: str, kind: str, name: Optional[str] = None) -> list[Obj]:
        fields = f"involvedObject.kind={kind}" + (f",involvedObject.name={name}" if name else "")
        # Events only add detail (activation time, launch reasons): an identity that may not list them in this
        # namespace still gets the checks, without that detail.
        got = self._json(self._call("events", self._core.list_namespaced_event, namespace, field_selector=fields,
                                    absent=(403, 404)), "events")
        return list((got or {}).get("items") or [])

    def raw(self, path: str, what: str, query: Optional[dict[str, str]] = None,
            absent: tuple[int, ...] = (404,)) -> Optional[Any]:
        """The decoded JSON at an API path (`preflight --cluster` reads CRDs, Services, config and the service
        proxy this way), or None when the server answers one of `absent`."""
        resp = self._call(what, self._api.call_api, path, "GET", query_params=list((query or {}).items()),
                          header_params={"Accept": "application/json"}, auth_settings=["BearerToken"],
                          _return_http_data_only=True, absent=absent)
        if resp is None:
            return None
        try:
            return json.loads(resp.data)
        except ValueError:
            raise CheckError(f"the API server answered {what} with something that is not JSON") from None

    def service_get(self, namespace: str, service: str, path: str, query: list[tuple[str, str]]) -> tuple[int, bytes]:
        """GET `path` of a Service through the API server's proxy (`services/proxy`, as `kubectl get --raw`);
        (status, body): the service's own error answers are the caller's to read, the API server's 401/403 are
        reported like any other read."""
        from kubernetes.client.exceptions import ApiException

        def get(**kw: Any) -> tuple[int, bytes]:
            try:
                resp = self._api.call_api(f"/api/v1/namespaces/{namespace}/services/{service}/proxy/{path}", "GET",
                                          query_params=query, auth_settings=["BearerToken"], **kw)
            except ApiException as e:
                if e.status in (401, 403):
                    raise
                return int(e.status or 0), e.body if isinstance(e.body, bytes) else str(e.body or "").encode()
            return int(resp.status), resp.data

        return self._call(f"services/proxy {namespace}/{service}", get, absent=())

    def pod_log(self, namespace: str, pod: str, container: Optional[str]) -> Optional[str]:
        if "*" in self._logs:  # --logs given: e.g. the container was replaced since the cold start
            return self._logs["*"]
        kwargs = {"container": container} if container else {}
        # 400: the container has not started (or was replaced), no log to read yet; 403: no pods/log permission,
        # the engine phases are then left out (the step note says to pass --logs).
        resp = self._call("pod logs", self._core.read_namespaced_pod_log, pod, namespace, timestamps=True,
                          limit_bytes=LOG_LIMIT_BYTES, absent=(400, 403, 404), **kwargs)
        return None if resp is None else resp.data.decode("utf-8", "replace")


def read_log_file(path: Optional[Path]) -> dict[str, str]:
    """``--logs``: `kubectl logs --timestamps <pod> -c vllm` saved to a file; it belongs to whichever pod is timed."""
    if path is None:
        return {}
    try:
        return {"*": path.read_text(encoding="utf-8", errors="replace")}
    except OSError as e:
        raise BadInput(f"--logs: cannot read {path}: {e.strerror}") from None


def make_reader(from_file: Optional[list[Path]], kubeconfig: Optional[str], context: Optional[str],
                timeout: float = REQUEST_TIMEOUT_S, logs: Optional[Path] = None) -> ClusterReader:
    """A file-backed reader when ``--from-file`` is given, otherwise the live cluster."""
    if not timeout > 0:
        raise BadInput(f"--request-timeout: {timeout:g} must be a positive number of seconds")
    if from_file:
        missing = [str(p) for p in from_file if not p.exists()]
        if missing:
            raise BadInput(f"--from-file: no such file or directory: {', '.join(missing)}")
        return FileClusterReader(*from_file, logs=read_log_file(logs))
    return KubeClusterReader(kubeconfig=kubeconfig, context=context, timeout=timeout, logs=read_log_file(logs))
