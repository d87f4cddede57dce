"""A fake Kubernetes API server on 127.0.0.1 for the live-cluster reader, and the kubeconfigs that reach it.

It behaves like the API server where it matters to burstctl: every request must carry ``Authorization: Bearer
<token>`` (401 ``Status`` otherwise, as the EKS authenticator answers an anonymous request), list calls honour
``labelSelector`` and ``fieldSelector=involvedObject.name=...``, pod logs come back as ``text/plain``. The
kubeconfig it writes has the shape ``pulumi stack output kubeconfig`` prints (pulumi-eks generateKubeconfig:
an ``exec`` user running ``aws --region <r> eks get-token --cluster-name <c> --output json``), with a small ``aws``
script on PATH that prints an ExecCredential, so the client's exec-plugin path is the one under test.
"""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator, Optional
from urllib.parse import parse_qs

import pytest
import yaml

TOKEN = "k8s-aws-v1.aHR0cHM6Ly9zdHMudXMtd2VzdC0yLmFtYXpvbmF3cy5jb20vP0FjdGlvbj1HZXRDYWxsZXJJZGVudGl0eQ"
"""What `aws eks get-token` prints as status.token: `k8s-aws-v1.` + base64url of a presigned STS URL."""


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


def _field_selector(query: dict[str, list[str]]) -> dict[str, str]:
    text = query.get("fieldSelector", [""])[0]
    return dict(p.split("=", 1) for p in text.split(",") if p)


def _label_selector(query: dict[str, list[str]]) -> dict[str, str]:
    text = query.get("labelSelector", [""])[0]
    return dict(p.split("=", 1) for p in text.split(",") if p)


def _routes(objects: list[dict[str, Any]], logs: dict[str, str]) -> list[tuple[re.Pattern[str], Callable]]:
    def of(kind: str) -> list[dict[str, Any]]:
        return [o for o in objects if o["kind"] == kind]

    def one(kind: str):
        def get(m: re.Match[str], query: dict[str, list[str]]) -> Any:
            for o in of(kind):
                md = o["metadata"]
                if md.get("namespace") == m["ns"] and md["name"] == m["name"]:
                    return o
            return None
        return get

    def many(kind: str, namespaced: bool):
        def lst(m: re.Match[str], query: dict[str, list[str]]) -> Any:
            sel, fields = _label_selector(query), _field_selector(query)
            items = []
            for o in of(kind):
                if namespaced and o["metadata"].get("namespace") != m["ns"]:
                    continue
                if not all((o["metadata"].get("labels") or {}).get(k) == v for k, v in sel.items()):
                    continue
                ref = o.get("involvedObject") or {}
                if any(ref.get(k.removeprefix("involvedObject.")) != v for k, v in fields.items()):
                    continue
                # Built-in lists carry kind/apiVersion once, not per item (custom resource lists do per item).
                custom = "/" in o["apiVersion"] and "." in o["apiVersion"].split("/")[0] \
                    and not o["apiVersion"].startswith("apiextensions.k8s.io/")
                items.append(o if custom else {k: v for k, v in o.items() if k not in ("kind", "apiVersion")})
            api = of(kind)[0]["apiVersion"] if of(kind) else "v1"
            return {"apiVersion": api, "kind": f"{kind}List", "metadata": {"resourceVersion": "1"}, "items": items}
        return lst

    def log(m: re.Match[str], query: dict[str, list[str]]) -> Any:
        return logs.get(m["name"])

    def cluster_scoped(kind: str):
        def get(m: re.Match[str], query: dict[str, list[str]]) -> Any:
            return next((o for o in of(kind) if o["metadata"]["name"] == m["name"]), None)
        return get

    return [
        (re.compile(r"^/apis/keda\.sh/v1alpha1/namespaces/(?P<ns>[^/]+)/scaledobjects/(?P<name>[^/]+)$"),
         one("ScaledObject")),
        (re.compile(r"^/apis/autoscaling/v2/namespaces/(?P<ns>[^/]+)/horizontalpodautoscalers/(?P<name>[^/]+)$"),
         one("HorizontalPodAutoscaler")),
        (re.compile(r"^/apis/apps/v1/namespaces/(?P<ns>[^/]+)/deployments/(?P<name>[^/]+)$"), one("Deployment")),
        (re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<name>[^/]+)/log$"), log),
        (re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods$"), many("Pod", True)),
        (re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/events$"), many("Event", True)),
        (re.compile(r"^/apis/karpenter\.sh/v1/nodeclaims$"), many("NodeClaim", False)),
        (re.compile(r"^/api/v1/nodes$"), many("Node", False)),
        # What `preflight --cluster` reads: CRDs, namespaces, Services, ConfigMaps, controllers, Prometheus CRs.
        (re.compile(r"^/apis/apiextensions\.k8s\.io/v1/customresourcedefinitions/(?P<name>[^/]+)$"),
         cluster_scoped("CustomResourceDefinition")),
        (re.compile(r"^/apis/apiextensions\.k8s\.io/v1/customresourcedefinitions$"),
         many("CustomResourceDefinition", False)),
        (re.compile(r"^/api/v1/namespaces/(?P<name>[^/]+)$"), cluster_scoped("Namespace")),
        (re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/services/(?P<name>[^/]+)$"), one("Service")),
        (re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/configmaps/(?P<name>[^/]+)$"), one("ConfigMap")),
        (re.compile(r"^/apis/apps/v1/namespaces/(?P<ns>[^/]+)/daemonsets/(?P<name>[^/]+)$"), one("DaemonSet")),
        (re.compile(r"^/apis/apps/v1/deployments$"), many("Deployment", False)),
        (re.compile(r"^/apis/apps/v1/daemonsets$"), many("DaemonSet", False)),
        (re.compile(r"^/apis/monitoring\.coreos\.com/v1/prometheuses$"), many("Prometheus", False)),
    ]


_PROXY = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/services/(?P<svc>[^/]+)/proxy(?P<rest>/.*)$")


@dataclass
class FakeApiServer:
    """The server's state; tests read ``requests`` to see what the client sent."""

    objects: list[dict[str, Any]]
    logs: dict[str, str] = field(default_factory=dict)
    token: str = TOKEN
    forbid: bool = False
    forbid_suffixes: tuple[str, ...] = ()
    """Paths ending so get 403 (an identity whose RBAC lacks e.g. `list events` or `get pods/log`)."""
    fail_status: Optional[int] = None
    server_version: dict[str, str] = field(default_factory=lambda: {
        "major": "1", "minor": "35", "gitVersion": "v1.35.3-eks-4b2a1c7", "platform": "linux/amd64"})
    """What GET /version answers (EKS puts `-eks-<hash>` in gitVersion)."""
    proxies: dict[tuple[str, str], Callable[[str, dict[str, list[str]]], tuple[int, Any, str]]] = \
        field(default_factory=dict)
    """Service proxy (`/api/v1/namespaces/<ns>/services/<name[:port]>/proxy/<path>`) per (namespace, name[:port]):
    a handler of (path, query) answering (status, body, content type), as the proxied service would."""
    requests: list[dict[str, str]] = field(default_factory=list)
    port: int = 0

    def handler(self) -> type[BaseHTTPRequestHandler]:
        routes = _routes(self.objects, self.logs)
        state = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, status: int, body: Any, ctype: str = "application/json") -> None:
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                path, _, query = self.path.partition("?")
                state.requests.append({"path": path, "authorization": self.headers.get("Authorization", "")})
                # The API server's bearer authenticator takes the scheme case-insensitively (the in-cluster loader
                # sends "bearer <token>").
                scheme, _, sent = self.headers.get("Authorization", "").partition(" ")
                if scheme.lower() != "bearer" or sent != state.token:
                    return self._send(401, _status(401, "Unauthorized", "Unauthorized"))
                if state.forbid or path.endswith(state.forbid_suffixes or ("\0",)):
                    return self._send(403, _status(403, "Forbidden", f'{path} is forbidden: User "arn:aws:sts::'
                                                   '123456789012:assumed-role/dev/me" cannot get resource'))
                if state.fail_status:
                    return self._send(state.fail_status, _status(state.fail_status, "InternalError",
                                                                 "etcdserver: request timed out"))
                if path == "/version":
                    return self._send(200, state.server_version)
                proxied = _PROXY.match(path)
                if proxied:
                    target = state.proxies.get((proxied["ns"], proxied["svc"]))
                    if target is None:
                        name = proxied["svc"].split(":")[0]
                        return self._send(404, _status(404, "NotFound", f'services "{name}" not found'))
                    return self._send(*target(proxied["rest"], parse_qs(query)))
                for rx, fn in routes:
                    m = rx.match(path)
                    if m:
                        got = fn(m, parse_qs(query))
                        if isinstance(got, str):
                            return self._send(200, got, "text/plain")
                        if got is not None:
                            return self._send(200, got)
                        break
                self._send(404, _status(404, "NotFound", f"{path} not found"))

        return Handler


def write_exec_kubeconfig(path: Path, server: str, bin_dir: Path, token: str = TOKEN, exit_code: int = 0,
                          cluster: str = "gpu-burst-dev", hang_s: float = 0) -> Path:
    """The kubeconfig `pulumi stack output kubeconfig` prints (pulumi-eks generateKubeconfig), and an `aws`
    script in ``bin_dir`` answering `eks get-token` with an ExecCredential (put ``bin_dir`` first on PATH)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "aws"
    credential = {"kind": "ExecCredential", "apiVersion": "client.authentication.k8s.io/v1beta1", "spec": {},
                  "status": {"expirationTimestamp": "2099-01-01T00:00:00Z", "token": token}}
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys, time\n"
        f"time.sleep({hang_s})\n"
        "args = sys.argv[1:]\n"
        "assert args[:4] == ['--region', 'us-west-2', 'eks', 'get-token'], args\n"
        "assert json.loads(os.environ['KUBERNETES_EXEC_INFO'])['apiVersion'].startswith('client.authentication')\n"
        f"if {exit_code}:\n"
        "    sys.stderr.write('Unable to locate credentials. You can configure credentials by running "
        "\"aws configure\".\\n')\n"
        f"    sys.exit({exit_code})\n"
        f"print(json.dumps({credential!r}))\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    path.write_text(json.dumps({
        "apiVersion": "v1",
        "clusters": [{"cluster": {"server": server}, "name": "kubernetes"}],
        "contexts": [{"context": {"cluster": "kubernetes", "user": "aws"}, "name": "aws"}],
        "current-context": "aws",
        "kind": "Config",
        "users": [{"name": "aws", "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "aws",
            "args": ["--region", "us-west-2", "eks", "get-token", "--cluster-name", cluster, "--output", "json"],
            "env": [{"name": "KUBERNETES_EXEC_INFO",
                     "value": '{"apiVersion": "client.authentication.k8s.io/v1beta1"}'}],
        }}}],
    }))
    return path


def write_token_kubeconfig(path: Path, server: str, token: str = TOKEN) -> Path:
    """A static bearer-token user (what `kubectl config set-credentials --token` writes), two contexts."""
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}},
                     {"name": "other", "context": {"cluster": "fake", "user": "fake"}}],
        "users": [{"name": "fake", "user": {"token": token}}],
    }))
    return path


@pytest.fixture
def fake_kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Path]]:
    """Factory: serve a dump's objects over the Kubernetes REST paths; returns a kubeconfig path.

    ``auth="exec"`` (default) writes the pulumi-eks exec kubeconfig, ``auth="token"`` a static token one;
    ``token=`` is what the client will send (the server always expects :data:`TOKEN`). The server object is
    ``factory.last`` for assertions on the requests it saw."""
    servers: list[ThreadingHTTPServer] = []

    def start(fixture: Path, *, auth: str = "exec", token: str = TOKEN, logs: Optional[dict[str, str]] = None,
              exec_exit: int = 0, exec_hang_s: float = 0, **behaviour: Any) -> Path:
        doc = yaml.safe_load(fixture.read_text())
        objects = doc["items"] if doc.get("kind") == "List" else [doc]
        state = FakeApiServer(objects, logs=logs or {}, **behaviour)
        server = ThreadingHTTPServer(("127.0.0.1", 0), state.handler())
        state.port = server.server_port
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        start.last = state  # type: ignore[attr-defined]
        url = f"http://127.0.0.1:{server.server_port}"
        kubeconfig = tmp_path / f"kubeconfig-{len(servers)}"
        if auth == "exec":
            bin_dir = tmp_path / f"bin-{len(servers)}"
            write_exec_kubeconfig(kubeconfig, url, bin_dir, token=token, exit_code=exec_exit, hang_s=exec_hang_s)
            monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
        else:
            write_token_kubeconfig(kubeconfig, url, token=token)
        return kubeconfig

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and its key), what a cluster CA bundle would hold for the test server."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "ca.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def in_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., FakeApiServer]]:
    """Factory: the fake API server over TLS, reachable the way a pod reaches it (KUBERNETES_SERVICE_HOST/PORT, the
    service account token and CA files) and no kubeconfig anywhere."""
    import ssl

    from kubernetes.config import incluster_config, kube_config

    servers: list[ThreadingHTTPServer] = []

    def start(fixture: Path, token: str = TOKEN) -> FakeApiServer:
        cert, key = self_signed_cert(tmp_path)
        doc = yaml.safe_load(fixture.read_text())
        state = FakeApiServer(doc["items"])
        server = ThreadingHTTPServer(("127.0.0.1", 0), state.handler())
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        token_file = tmp_path / "token"
        token_file.write_text(token)
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(server.server_port))
        monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token_file))
        monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(cert))
        monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(tmp_path / "no-kubeconfig"))
        monkeypatch.delenv("KUBECONFIG", raising=False)
        return state

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server on 127.0.0.1 that accepts connections (the kernel completes the handshake from the listen
    backlog) and never answers: what a hung API server or a black-holed AWS endpoint looks like."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()
