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
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Optional, Protocol

import yaml

from burstctl.output import BadInput, CheckError

Obj = dict[str, Any]

GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
LOG_LIMIT_BYTES = 8 * 1024 * 1024
"""Start-up logs of vLLM are a few hundred KiB; this bounds what a chatty container can make us download."""
NODEPOOL_LABEL = "karpenter.sh/nodepool"


class ClusterReader(Protocol):
    """What verify/timeline need from a cluster. Missing objects are ``None`` / empty lists, never errors."""

    def scaled_object(self, namespace: str, name: str) -> Optional[Obj]: ...

    def hpa(self, namespace: str, name: str) -> Optional[Obj]: ...

    def pods(self, namespace: str, selector: dict[str, str]) -> list[Obj]: ...

    def nodeclaims(self) -> list[Obj]: ...

    def nodes(self, selector: dict[str, str]) -> list[Obj]: ...

    def events(self, namespace: str, kind: str, name: str) -> list[Obj]:
        """Core/v1 Events whose involvedObject is the given object (the API server keeps them ~1 h)."""
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

    def events(self, namespace: str, kind: str, name: str) -> list[Obj]:
        return [o for o in self._of("Event", namespace)
                if (o.get("involvedObject") or {}).get("kind") == kind
                and (o.get("involvedObject") or {}).get("name") == name]

    def pod_log(self, namespace: str, pod: str, container: Optional[str]) -> Optional[str]:
        return self.logs.get(pod, self.logs.get("*"))


REQUEST_TIMEOUT_S = 10.0
"""Default bound on each Kubernetes API call (connect and read); a hung API server fails in seconds, not never."""


def _server_of(api: Any) -> str:
    return getattr(getattr(api, "configuration", None), "host", "") or "the API server"


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
                config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
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
            return json.loads(resp.data)
        except ValueError:
            raise CheckError(f"the API server answered {what} with something that is not JSON") from None

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

    def events(self, namespace: str, kind: str, name: str) -> list[Obj]:
        got = self._json(self._call("events", self._core.list_namespaced_event, namespace,
                                    field_selector=f"involvedObject.kind={kind},involvedObject.name={name}"),
                         "events")
        return list((got or {}).get("items") or [])

    def pod_log(self, namespace: str, pod: str, container: Optional[str]) -> Optional[str]:
        if "*" in self._logs:  # --logs given: e.g. the container was replaced since the cold start
            return self._logs["*"]
        kwargs = {"container": container} if container else {}
        # 400: the container has not started (or was replaced); there is simply no log to read yet.
        resp = self._call("pod logs", self._core.read_namespaced_pod_log, pod, namespace, timestamps=True,
                          limit_bytes=LOG_LIMIT_BYTES, absent=(400, 404), **kwargs)
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
