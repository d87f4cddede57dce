"""`preflight --cluster`: what `pulumi up` cannot know before it runs, read from the live Kubernetes API.

On an existing cluster (`cluster.mode: existing`) each add-on declared present (`install: false`) must really be
there, at a version whose API the stack's objects use, and wired the way the config says: Karpenter's NodePool and
EC2NodeClass v1 CRDs and a version for the cluster's Kubernetes, KEDA's and the HTTP add-on's CRDs and Services,
Prometheus reachable and selecting the stack's monitors and rules by the configured labels, a device plugin for GPU
nodes, Envoy Gateway configured for the AI Gateway, and a load balancer controller with the NLB listener
attributes. An add-on the stack installs must not be there already (two controllers would fight over one API), and
neither may the CRDs it installs: pulumi-kubernetes refuses to create an object that exists (only `up` shows it, a
preview plans a plain create), and Helm refuses CRDs another release owns.
"""

from __future__ import annotations

import re
from typing import Any, Optional, Protocol
from urllib.parse import urlsplit

import yaml

from burstctl.output import Check
from burstctl.program import component
LBC_MIN = (2, 9, 0)
"""The NLB listener-attributes annotation (TCP idle timeout) exists since aws-load-balancer-controller v2.9.0
(kubernetes-sigs/aws-load-balancer-controller docs/guide/service/annotations.md at v2.9.0)."""
EG_CONFIG_MAP = ("envoy-gateway-config", "envoy-gateway.yaml")
"""Where gateway-helm keeps Envoy Gateway's own configuration (envoyproxy/gateway@v1.9.0
charts/gateway-helm/templates/envoy-gateway-config.yaml)."""
GATEWAY_API_GROUPS = ("gateway.networking.k8s.io", "gateway.networking.x-k8s.io")
"""The Gateway API groups of the experimental channel that gateway-crds-helm v1.9.0 installs."""
EG_GROUPS = ("gateway.envoyproxy.io",)
LBC_GROUPS = ("elbv2.k8s.aws", "aga.k8s.aws", "gateway.k8s.aws")
"""The groups of the load balancer controller chart's crds/ (kubernetes-sigs/aws-load-balancer-controller@v3.5.0
helm/aws-load-balancer-controller/crds), which the stack applies itself."""
NFD_GROUPS = ("nfd.k8s-sigs.io",)
MONITORING_GROUP = "monitoring.coreos.com"


class ApiReader(Protocol):
    def raw(self, path: str, what: str, query: Optional[dict[str, str]] = None,
            absent: tuple[int, ...] = (404,)) -> Optional[Any]: ...


def _version(text: str) -> Optional[tuple[int, ...]]:
    m = re.search(r"v?(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    return tuple(int(x) for x in m.groups(default="0")) if m else None


def _shown(v: tuple[int, ...]) -> str:
    return ".".join(map(str, v))


def selects(selector: Optional[dict], labels: dict[str, str]) -> bool:
    """Whether a Kubernetes LabelSelector matches `labels` (None matches nothing, {} everything)."""
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        ok = {"In": key in labels and labels[key] in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}.get(op, False)
        if not ok:
            return False
    return True


def served(crd: Optional[dict], version: str) -> bool:
    return bool(crd) and any(v.get("name") == version and v.get("served")
                             for v in (crd.get("spec") or {}).get("versions") or [])


def _schema_has(crd: dict, version: str, field: str) -> bool:
    """Whether `field` appears anywhere in the OpenAPI schema of a CRD version (a field the stack sets)."""
    for v in (crd.get("spec") or {}).get("versions") or []:
        if v.get("name") == version:
            return f"'{field}'" in repr((v.get("schema") or {}).get("openAPIV3Schema") or {})
    return False


def _owner(crd: dict) -> str:
    """Who installed a CRD, as far as its metadata tells: a Helm release, or the manager label."""
    md = crd.get("metadata") or {}
    ann, lbl = md.get("annotations") or {}, md.get("labels") or {}
    release = ann.get("meta.helm.sh/release-name")
    if release:
        return f"Helm release {ann.get('meta.helm.sh/release-namespace', '?')}/{release}"
    manager = lbl.get("app.kubernetes.io/managed-by")
    return f"managed by {manager}" if manager else "no Helm release owns them"


class ClusterChecks:
    """The checks, over one API reader and the validated stack config."""

    def __init__(self, reader: ApiReader, cfg: Any):
        self.r, self.cfg = reader, cfg
        self._crds: dict[str, Optional[dict]] = {}
        self._all_crds: Optional[list[dict]] = None

    def crd(self, name: str) -> Optional[dict]:
        if name not in self._crds:
            self._crds[name] = self.r.raw(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}",
                                          f"customresourcedefinition {name}")
        return self._crds[name]

    def crds_of(self, groups: tuple[str, ...]) -> list[dict]:
        """The CRDs in the cluster whose API group is one of `groups` (one list call for every check)."""
        if self._all_crds is None:
            self._all_crds = self.items("/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                                        "customresourcedefinitions")
        return [c for c in self._all_crds if (c.get("spec") or {}).get("group") in groups]

    def crd_conflict(self, check: str, groups: tuple[str, ...], installer: str, turn_off: str) -> Optional[Check]:
        """A failed check when CRDs of `groups`, which the stack would install, already exist."""
        found = self.crds_of(groups)
        if not found:
            return None
        names = sorted(c["metadata"]["name"] for c in found)
        shown = names[0] + (f" and {len(names) - 1} more" if len(names) > 1 else "")
        owners = sorted({_owner(c) for c in found})
        return Check(check, "fail", f"{shown} already exist ({', '.join(groups)}; {'; '.join(owners)})",
                     f"the stack would install them for {installer}, and `pulumi up` would stop on objects that "
                     f"already exist (a preview does not show it): set gpu-burst:{turn_off}",
                     {"crds": names, "owners": owners})

    def items(self, path: str, what: str, query: Optional[dict[str, str]] = None) -> list[dict]:
        return list((self.r.raw(path, what, query) or {}).get("items") or [])

    def deployments(self, name_label: str) -> list[dict]:
        return self.items("/apis/apps/v1/deployments", "deployments",
                          {"labelSelector": f"app.kubernetes.io/name={name_label}"})

    @staticmethod
    def image_version(deployment: dict) -> Optional[tuple[int, ...]]:
        """The controller's version from its image tag (`...controller:1.14.1@sha256:...`), else its chart label."""
        containers = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
        for c in containers:
            tag = str(c.get("image", "")).split("@")[0].rpartition(":")[2]
            v = _version(tag) if re.match(r"v?\d", tag) else None
            if v:
                return v
        return _version(((deployment.get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/version", ""))

    def service(self, namespace: str, name: str) -> Optional[dict]:
        return self.r.raw(f"/api/v1/namespaces/{namespace}/services/{name}", f"service {namespace}/{name}")

    def service_check(self, check: str, key: str, namespace: str, name: str, port: int) -> Check:
        svc = self.service(namespace, name)
        if svc is None:
            return Check(check, "fail", f"no Service {namespace}/{name} (gpu-burst:{key})",
                         f"the stack would send traffic to a Service that does not exist: set gpu-burst:{key} to the "
                         "existing one (`kubectl get svc -A`)")
        ports = [p.get("port") for p in (svc.get("spec") or {}).get("ports") or []]
        if port not in ports:
            return Check(check, "fail", f"Service {namespace}/{name} has ports {ports}, not {port}",
                         f"set the port in gpu-burst:{key} to the Service's", {"ports": ports})
        return Check(check, "pass", f"Service {namespace}/{name} serves port {port}")

    # -- the cluster itself ----------------------------------------------------------------------------------
    def kubernetes_minor(self) -> Optional[str]:
        v = self.r.raw("/version", "the server version") or {}
        m = re.match(r"(\d+)", str(v.get("minor", "")))
        return f"{v.get('major', '1')}.{m.group(1)}" if m else None

    def system_nodes(self) -> list[Check]:
        selector = self.cfg.cluster.system_node_selector or {}
        query = {"labelSelector": ",".join(f"{k}={v}" for k, v in selector.items())} if selector else None
        nodes = self.items("/api/v1/nodes", "nodes", query)
        shown = ", ".join(f"{k}={v}" for k, v in selector.items()) or "(any node)"
        if not nodes:
            return [Check("system nodes", "fail", f"no node matches cluster.systemNodeSelector {shown}",
                          "every controller the stack installs would stay Pending: set gpu-burst:cluster."
                          "systemNodeSelector to the labels of existing nodes (`kubectl get nodes --show-labels`)")]
        replicas = self.cfg.karpenter_replicas if self.cfg.karpenter.install else 0
        if len(nodes) < replicas:
            # The Karpenter chart's replicas repel each other by hostname (a required anti-affinity).
            return [Check("system nodes", "fail", f"{len(nodes)} node(s) match {shown}, fewer than the {replicas} "
                          "Karpenter replicas, which need a node each", "set gpu-burst:karpenter.replicas to at most "
                          f"{len(nodes)}, or widen cluster.systemNodeSelector")]
        return [Check("system nodes", "pass", f"{len(nodes)} node(s) match {shown}")]

    def pod_identity_agent(self) -> list[Check]:
        ds = self.r.raw("/apis/apps/v1/namespaces/kube-system/daemonsets/eks-pod-identity-agent",
                        "daemonset kube-system/eks-pod-identity-agent")
        if ds is None and not self.cfg.cluster.install_pod_identity_agent:
            return [Check("pod identity agent", "fail", "no eks-pod-identity-agent DaemonSet in kube-system",
                          "the model store's Jobs (and the Karpenter and load balancer controllers the stack installs) "
                          "get no AWS credentials: install the eks-pod-identity-agent add-on, or set "
                          "gpu-burst:cluster.installPodIdentityAgent: true")]
        if ds is None:
            return [Check("pod identity agent", "pass", "absent; the stack installs the eks-pod-identity-agent add-on "
                          "(cluster.installPodIdentityAgent)")]
        return [Check("pod identity agent", "pass", "eks-pod-identity-agent runs in kube-system")]

    # -- Karpenter --------------------------------------------------------------------------------------------
    def karpenter(self, minimum: dict[str, str], field_minimum: dict[str, str]) -> list[Check]:
        k = self.cfg.karpenter
        pools, classes = self.crd("nodepools.karpenter.sh"), self.crd("ec2nodeclasses.karpenter.k8s.aws")
        running = self.deployments("karpenter")
        if k.install:
            if pools or running:
                return [Check("karpenter", "fail", "Karpenter is already installed in the cluster",
                              "a second Karpenter would fight the first over every NodePool: set gpu-burst:karpenter."
                              "install: false with its nodeRoleName and discoveryTag")]
            return [Check("karpenter", "pass", "not installed yet; the stack installs it")]
        checks = []
        if not (served(pools, "v1") and served(classes, "v1")):
            checks.append(Check("karpenter API", "fail", "the NodePool (karpenter.sh/v1) and EC2NodeClass "
                                "(karpenter.k8s.aws/v1) APIs are not served",
                                "the stack's GPU NodePools need Karpenter 1.0 or later with its CRDs: install or "
                                "upgrade Karpenter (or set gpu-burst:karpenter.install: true)"))
            return checks
        checks.append(Check("karpenter API", "pass", "NodePool karpenter.sh/v1 and EC2NodeClass karpenter.k8s.aws/v1 "
                            "are served"))
        if k.node_role_name:
            checks.append(self.aws_auth(k.node_role_name))
        g = self.cfg.gpu
        if g.volume_initialization_rate_mibps and g.data_volume_snapshot_id \
                and not _schema_has(classes, "v1", "volumeInitializationRate"):
            checks.append(Check("karpenter API fields", "fail", "the EC2NodeClass CRD has no volumeInitializationRate",
                                f"gpu.volumeInitializationRateMibps needs Karpenter "
                                f"{field_minimum['volumeInitializationRate']} or later: upgrade it, or remove the key"))
        if g.slice_counts:
            checks.append(self.node_overlay(running))
        minor = self.kubernetes_minor()
        need = _version(minimum.get(minor or "", "")) if minor else None
        have = self.image_version(running[0]) if running else None
        if have is None:
            checks.append(Check("karpenter version", "warn", "cannot tell the running Karpenter's version (no "
                                "Deployment labelled app.kubernetes.io/name=karpenter)",
                                f"the stack needs Karpenter {minimum.get(minor or '', '1.9')} or later on Kubernetes "
                                f"{minor or '1.35+'}: check `kubectl get deploy -A -l "
                                "app.kubernetes.io/name=karpenter`"))
        elif need and have < need:
            checks.append(Check("karpenter version", "fail", f"Karpenter {_shown(have)} runs on Kubernetes {minor}",
                                f"Karpenter supports Kubernetes {minor} from {_shown(need)} (its compatibility "
                                "matrix): upgrade Karpenter", {"version": _shown(have), "minimum": _shown(need)}))
        else:
            checks.append(Check("karpenter version", "pass", f"Karpenter {_shown(have)} on Kubernetes {minor}",
                                data={"version": _shown(have)}))
        return checks

    def aws_auth(self, role: str) -> Check:
        """Whether the aws-auth ConfigMap maps the node role (the other way nodes join, next to an access entry)."""
        cm = self.r.raw("/api/v1/namespaces/kube-system/configmaps/aws-auth", "configmap kube-system/aws-auth",
                        absent=(403, 404))
        try:
            roles = yaml.safe_load(((cm or {}).get("data") or {}).get("mapRoles") or "") or []
        except yaml.YAMLError:
            roles = []
        mapped = [r for r in roles if isinstance(r, dict) and str(r.get("rolearn", "")).split("/")[-1] == role]
        if mapped:
            return Check("node role mapping", "pass", f"aws-auth maps {role} ({mapped[0].get('username', '')})")
        return Check("node role mapping", "skip", f"aws-auth does not map {role}: its nodes join through an access "
                     "entry (the AWS checks read it)")

    def node_overlay(self, running: list[dict]) -> Check:
        """Time-sliced pools need NodeOverlays (karpenter.sh/v1alpha1, Karpenter 1.7+) and the controller's
        NodeOverlay feature gate, which the chart passes as FEATURE_GATES (charts/karpenter deployment.yaml)."""
        containers = [c for d in running for c in
                      ((d.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []]
        gates = " ".join(str(e.get("value", "")) for c in containers for e in c.get("env") or []
                         if e.get("name") == "FEATURE_GATES")
        if not served(self.crd("nodeoverlays.karpenter.sh"), "v1alpha1"):
            return Check("karpenter node overlays", "fail", "the NodeOverlay API (karpenter.sh/v1alpha1) is not served",
                         "time-sliced pools (gpu.pools[].timeSlicing) need Karpenter 1.7 or later")
        if "NodeOverlay=true" not in gates:
            return Check("karpenter node overlays", "fail", "Karpenter runs without the NodeOverlay feature gate "
                         f"(FEATURE_GATES: {gates or 'not found'})", "time-sliced pools need it: set the chart's "
                         "settings.featureGates.nodeOverlay: true, or remove timeSlicing from the pools")
        return Check("karpenter node overlays", "pass", "NodeOverlay is served and its feature gate is on")

    # -- KEDA and the HTTP add-on -----------------------------------------------------------------------------
    def keda(self) -> list[Check]:
        present = served(self.crd("scaledobjects.keda.sh"), "v1alpha1")
        if self.cfg.addons.keda.install:
            if present:
                return [Check("keda", "fail", "KEDA is already installed (scaledobjects.keda.sh exists)",
                              "one KEDA per cluster (it owns the external.metrics.k8s.io API): set gpu-burst:addons."
                              "keda.install: false")]
            return [Check("keda", "pass", "not installed yet; the stack installs it")]
        if not present:
            return [Check("keda", "fail", "the ScaledObject API (keda.sh/v1alpha1) is not served",
                          "the models scale through ScaledObjects: install KEDA 2.x, or set addons.keda.install: true")]
        return [Check("keda", "pass", "ScaledObject keda.sh/v1alpha1 is served")]

    def http_addon(self) -> list[Check]:
        h = self.cfg.addons.http_addon
        present = served(self.crd("interceptorroutes.http.keda.sh"), "v1beta1")
        if h.install:
            if present:
                return [Check("http add-on", "fail", "the KEDA HTTP add-on is already installed",
                              "set gpu-burst:addons.httpAddon.install: false with its interceptor and scaler "
                              "addresses")]
            return [Check("http add-on", "pass", "not installed yet; the stack installs it")]
        if not present:
            return [Check("http add-on", "fail", "the InterceptorRoute API (http.keda.sh/v1beta1) is not served",
                          "the models' routes need the HTTP add-on 0.15 or later: upgrade it, or set "
                          "addons.httpAddon.install: true")]
        host, _, port = h.external_scaler_address.rpartition(":")
        name, _, namespace = host.partition(".")
        checks = [Check("http add-on", "pass", "InterceptorRoute http.keda.sh/v1beta1 is served"),
                  self.service_check("interceptor", "addons.httpAddon.interceptorService", h.interceptor_namespace,
                                     h.interceptor_service, h.interceptor_port)]
        if namespace and "." not in namespace.removesuffix(".svc").removesuffix(".svc.cluster.local"):
            checks.append(self.service_check("external scaler", "addons.httpAddon.externalScalerAddress",
                                             namespace.split(".")[0], name, int(port)))
        return checks

    # -- Prometheus -------------------------------------------------------------------------------------------
    def monitoring(self) -> list[Check]:
        m = self.cfg.addons.monitoring
        crds = {k: self.crd(f"{k}.monitoring.coreos.com") for k in ("servicemonitors", "podmonitors",
                                                                    "prometheusrules")}
        if m.install:
            if self.cfg.existing_cluster:
                # Helm refuses CRDs another release owns; adopting them would let a destroy delete them, and with
                # them every ServiceMonitor, PrometheusRule and Prometheus of the cluster.
                conflict = self.crd_conflict(
                    "prometheus operator", (MONITORING_GROUP,), "kube-prometheus-stack (its prometheus-operator-crds "
                    "release)", "addons.monitoring.install: false with the existing Prometheus' prometheusUrl, "
                    "serviceMonitorLabels and ruleLabels (docs/existing-cluster.md)")
                if conflict:
                    return [conflict]
            elif any(crds.values()):
                return [Check("prometheus operator", "warn", "a Prometheus Operator's CRDs are already installed",
                              "kube-prometheus-stack would add a second operator and Prometheus: consider "
                              "addons.monitoring.install: false with the existing Prometheus's URL and labels")]
            return [Check("prometheus operator", "pass", "not installed yet; the stack installs kube-prometheus-stack")]
        missing = sorted(k for k, crd in crds.items() if not served(crd, "v1"))
        if missing:
            return [Check("prometheus operator", "fail", f"monitoring.coreos.com/v1 {', '.join(missing)} not served",
                          "the stack's monitors and alerts need the Prometheus Operator's CRDs")]
        return [Check("prometheus operator", "pass", "ServiceMonitor, PodMonitor and PrometheusRule are served"),
                *self.prometheus_reachable(), *self.prometheus_selects()]

    def prometheus_reachable(self) -> list[Check]:
        url = urlsplit(self.cfg.addons.monitoring.prometheus_url)
        parts = (url.hostname or "").split(".")
        if len(parts) < 2 or (len(parts) > 2 and parts[2] != "svc"):
            return [Check("prometheus", "warn", f"{url.hostname} is not an in-cluster Service name",
                          "only <service>.<namespace>.svc URLs can be checked from here")]
        name, namespace = parts[0], parts[1]
        port = url.port or (443 if url.scheme == "https" else 80)
        svc = self.service_check("prometheus service", "addons.monitoring.prometheusUrl", namespace, name, port)
        if svc.status != "pass":
            return [svc]
        prefix = "https:" if url.scheme == "https" else ""
        got = self.r.raw(f"/api/v1/namespaces/{namespace}/services/{prefix}{name}:{port}/proxy"
                         f"{url.path.rstrip('/')}/api/v1/query", "prometheus through the API server proxy",
                         {"query": "up"}, absent=(403, 404, 502, 503))
        if got is None:
            return [svc, Check("prometheus", "warn", f"could not query {self.cfg.addons.monitoring.prometheus_url} "
                               "through the API server's service proxy (no endpoints, or no services/proxy access)",
                               "check that Prometheus answers: kubectl -n {ns} port-forward svc/{name} {port}".format(
                                   ns=namespace, name=name, port=port))]
        if got.get("status") != "success":
            return [svc, Check("prometheus", "fail", f"{self.cfg.addons.monitoring.prometheus_url} answered "
                               f"{str(got)[:120]}", "KEDA's prometheus trigger reads this URL: point "
                               "addons.monitoring.prometheusUrl at a Prometheus")]
        return [svc, Check("prometheus", "pass", f"{self.cfg.addons.monitoring.prometheus_url} answers queries")]

    def namespace_labels(self, name: str, extra: Optional[dict] = None) -> dict[str, str]:
        ns = self.r.raw(f"/api/v1/namespaces/{name}", f"namespace {name}") or {}
        return {**(extra or {}), **((ns.get("metadata") or {}).get("labels") or {}),
                "kubernetes.io/metadata.name": name}

    def prometheus_selects(self) -> list[Check]:
        """Some Prometheus selects the stack's monitors (and rules) by the configured labels, in their namespaces:
        a nil selector selects nothing, a nil namespace selector only the Prometheus's own namespace."""
        cfg, m = self.cfg, self.cfg.addons.monitoring
        proms = self.items("/apis/monitoring.coreos.com/v1/prometheuses", "prometheuses")
        if not proms:
            return [Check("prometheus selectors", "warn", "no Prometheus resource found",
                          "the stack's monitors only take effect if a Prometheus Operator's Prometheus selects them")]
        own = {k: v for k, v in component("_common").labels("", "").items()
               if k in ("app.kubernetes.io/part-of", "app.kubernetes.io/managed-by")}
        # The models' namespace is the stack's own (not there before the first `up`): the labels it will carry.
        models_ns = self.namespace_labels(cfg.gateway.namespace, own)
        interceptor = cfg.addons.http_addon.interceptor_namespace or component("http_addon").DEFAULT_NAMESPACE
        envoy = cfg.gateway.envoy_gateway.namespace or component("edge_gateway").EG_NAMESPACE
        service_ns = {cfg.gateway.namespace: models_ns, interceptor: self.namespace_labels(interceptor)}
        want = [("serviceMonitor", "serviceMonitorLabels", m.service_monitor_labels or {}, service_ns),
                ("podMonitor", "serviceMonitorLabels", m.service_monitor_labels or {},
                 {envoy: self.namespace_labels(envoy)})]
        # Alerts and usage recording rules: one label set, in the models' namespace.
        want.append(("rule", "ruleLabels", m.rule_labels or {}, {cfg.gateway.namespace: models_ns}))
        checks = []
        for kind, key, labels, namespaces in want:
            ok = []
            for p in proms:
                spec, home = p.get("spec") or {}, (p.get("metadata") or {}).get("namespace")
                ns_sel = spec.get(f"{kind}NamespaceSelector")
                if selects(spec.get(f"{kind}Selector"), {**own, **labels}) and all(
                        (n == home) if ns_sel is None else selects(ns_sel, nl) for n, nl in namespaces.items()):
                    ok.append(f"{home}/{p['metadata']['name']}")
            shown = ", ".join(f"{k}={v}" for k, v in labels.items()) or "no labels"
            if ok:
                checks.append(Check(f"{kind} selection", "pass", f"{', '.join(ok)} selects {kind}s with {shown} in "
                                    f"{', '.join(namespaces)}"))
            else:
                selectors = "; ".join(f"{p['metadata'].get('namespace')}/{p['metadata']['name']}: "
                                      f"{(p.get('spec') or {}).get(f'{kind}Selector')}" for p in proms)
                checks.append(Check(f"{kind} selection", "fail", f"no Prometheus selects {kind}s with {shown} in "
                                    f"{', '.join(namespaces)} ({selectors})",
                                    f"set gpu-burst:addons.monitoring.{key} to the labels its {kind}Selector matches "
                                    f"(and let its {kind}NamespaceSelector include those namespaces)"))
        return checks

    # -- GPU nodes --------------------------------------------------------------------------------------------
    def device_plugin(self) -> list[Check]:
        cfg = self.cfg
        if not cfg.gpu.needs_device_plugin:
            return [Check("device plugin", "skip", "Bottlerocket's NVIDIA variant runs the device plugin itself")]
        sets = self.items("/apis/apps/v1/daemonsets", "daemonsets")
        plugins = [d for d in sets if any("device-plugin" in str(c.get("image", "")) for c in
                                          ((d.get("spec") or {}).get("template") or {}).get("spec", {}).get(
                                              "containers") or [])]
        dp = cfg.addons.nvidia_device_plugin
        nfd = self.crd_conflict(
            "feature discovery CRDs", NFD_GROUPS, "GPU feature discovery's node-feature-discovery",
            "addons.nvidiaDevicePlugin.gfdEnabled: false (the running node-feature-discovery, e.g. the GPU "
            "Operator's, keeps labelling nodes), or addons.nvidiaDevicePlugin.install: false if its device plugin "
            "also covers the GPU nodes") if cfg.existing_cluster and dp.install and dp.gfd_enabled else None
        if dp.install:
            if nfd:
                return [nfd]
            if plugins:
                names = ", ".join(f"{d['metadata'].get('namespace')}/{d['metadata']['name']}" for d in plugins)
                return [Check("device plugin", "warn", f"an NVIDIA device plugin already runs ({names})",
                              "two plugins on one node both advertise nvidia.com/gpu: set gpu-burst:addons."
                              "nvidiaDevicePlugin.install: false if it covers GPU nodes")]
            return [Check("device plugin", "pass", "not installed yet; the stack installs it")]

        def tolerates(d: dict) -> bool:
            tol = ((d.get("spec") or {}).get("template") or {}).get("spec", {}).get("tolerations") or []
            return any((t.get("operator") == "Exists" and t.get("key") in (None, "", "nvidia.com/gpu"))
                       or (t.get("key") == "nvidia.com/gpu" and t.get("value") == "present") for t in tol)
        good = [d for d in plugins if tolerates(d)]
        if not good:
            return [Check("device plugin", "fail", "no NVIDIA device plugin DaemonSet tolerates the GPU nodes' "
                          "nvidia.com/gpu=present:NoSchedule taint",
                          "AL2023 GPU nodes would never advertise nvidia.com/gpu: install the device plugin with that "
                          "toleration, or set addons.nvidiaDevicePlugin.install: true")]
        d = good[0]["metadata"]
        return [Check("device plugin", "pass", f"{d.get('namespace')}/{d['name']} tolerates the GPU taint")]

    # -- the front door ---------------------------------------------------------------------------------------
    def gateway(self) -> list[Check]:
        gw, checks = self.cfg.gateway, []
        eg_present = served(self.crd("envoyproxies.gateway.envoyproxy.io"), "v1alpha1")
        if gw.envoy_gateway.install:
            existing = self.cfg.existing_cluster
            eg = existing and self.crd_conflict(
                "envoy gateway", EG_GROUPS, "Envoy Gateway", "gateway.envoyGateway.install: false (and aiGateway) "
                "with the namespace of the Envoy Gateway that runs")
            if eg:
                checks.append(eg)
            elif eg_present:
                checks.append(Check("envoy gateway", "fail", "Envoy Gateway is already installed",
                                    "set gpu-burst:gateway.envoyGateway.install: false (and aiGateway) with its "
                                    "namespace"))
            # Often there already (for Istio, Cilium or the LBC's Gateway support): the stack installs
            # them with Envoy Gateway's CRD chart and has no switch for them alone.
            api = existing and self.crd_conflict(
                "gateway API CRDs", GATEWAY_API_GROUPS, "Envoy Gateway (its CRD chart, experimental channel)",
                "gateway.envoyGateway.install: false (and aiGateway), with an Envoy Gateway 1.9 installed next to "
                "these CRDs, configured as docs/existing-cluster.md says")
            if api:
                checks.append(api)
        else:
            checks += self.envoy_gateway(eg_present, gw.envoy_gateway.namespace)
        ai_present = served(self.crd("aigatewayroutes.aigateway.envoyproxy.io"), "v1beta1")
        if not gw.ai_gateway.install:
            ok = ai_present and served(self.crd("gatewayconfigs.aigateway.envoyproxy.io"), "v1beta1")
            checks.append(Check("ai gateway", "pass", "AIGatewayRoute and GatewayConfig "
                                "aigateway.envoyproxy.io/v1beta1 are served") if ok else
                          Check("ai gateway", "fail", "the AI Gateway v1beta1 APIs (AIGatewayRoute, GatewayConfig) are "
                                "not served", "the edge needs Envoy AI Gateway 1.1 or later"))
        elif ai_present:
            checks.append(Check("ai gateway", "fail", "Envoy AI Gateway is already installed",
                                "set gpu-burst:gateway.aiGateway.install: false"))
        checks += self.load_balancer_controller()
        return checks

    def envoy_gateway(self, present: bool, namespace: str) -> list[Check]:
        if not present:
            return [Check("envoy gateway", "fail", "the EnvoyProxy API (gateway.envoyproxy.io/v1alpha1) is not served",
                          "install Envoy Gateway 1.9, or set gateway.envoyGateway.install: true")]
        name, key = EG_CONFIG_MAP
        cm = self.r.raw(f"/api/v1/namespaces/{namespace}/configmaps/{name}", f"configmap {namespace}/{name}")
        if cm is None:
            return [Check("envoy gateway", "fail", f"no ConfigMap {namespace}/{name}",
                          "set gpu-burst:gateway.envoyGateway.namespace to the namespace Envoy Gateway runs in")]
        try:
            conf = yaml.safe_load((cm.get("data") or {}).get(key) or "") or {}
        except yaml.YAMLError:
            conf = {}
        problems = []
        if not (conf.get("extensionApis") or {}).get("enableBackend"):
            problems.append("extensionApis.enableBackend is not true (the edge's Backend to the interceptor)")
        hooks = (conf.get("extensionManager") or {})
        if not ((hooks.get("service") or {}).get("fqdn") or {}).get("hostname"):
            problems.append("no extensionManager service (the AI Gateway's ext_proc is never inserted)")
        deploy = (((conf.get("provider") or {}).get("kubernetes") or {}).get("deploy") or {}).get("type")
        if deploy == "GatewayNamespace" and namespace != self.cfg.gateway.namespace:
            problems.append(f"proxies run in the Gateway's namespace ({self.cfg.gateway.namespace}), not {namespace}")
        if problems:
            return [Check("envoy gateway", "fail", f"Envoy Gateway in {namespace}: " + "; ".join(problems),
                          "configure it as the AI Gateway's install docs do (envoyproxy/ai-gateway "
                          "manifests/envoy-gateway-values.yaml), or let the stack install both")]
        return [Check("envoy gateway", "pass", f"Envoy Gateway in {namespace} has the Backend API and the AI "
                      "Gateway extension manager")]

    def load_balancer_controller(self) -> list[Check]:
        running = self.deployments("aws-load-balancer-controller")
        if self.cfg.gateway.load_balancer_controller.install:
            if running:
                return [Check("load balancer controller", "fail", "the AWS Load Balancer Controller is already "
                              "installed", "set gpu-burst:gateway.loadBalancerController.install: false")]
            crds = self.cfg.existing_cluster and self.crd_conflict(
                "load balancer controller", LBC_GROUPS, "the AWS Load Balancer Controller",
                "gateway.loadBalancerController.install: false, with a controller (2.9.0 or later) running next to "
                "these CRDs")
            if crds:
                return [crds]
            return [Check("load balancer controller", "pass", "not installed yet; the stack installs it")]
        if not running:
            return [Check("load balancer controller", "fail", "no AWS Load Balancer Controller Deployment (label "
                          "app.kubernetes.io/name=aws-load-balancer-controller)",
                          "the edge's NLB is made by it: install it, or set gateway.loadBalancerController.install: "
                          "true")]
        have = self.image_version(running[0])
        if have is None or have < LBC_MIN:
            return [Check("load balancer controller", "fail" if have else "warn",
                          f"AWS Load Balancer Controller {_shown(have) if have else '(unknown version)'}",
                          f"the NLB's TCP idle timeout (listener-attributes annotation) needs {_shown(LBC_MIN)} or "
                          "later: upgrade it")]
        return [Check("load balancer controller", "pass", f"AWS Load Balancer Controller {_shown(have)}")]


def cluster_checks(reader: ApiReader, cfg: Any, karpenter_minimum: dict[str, str],
                   karpenter_field_minimum: dict[str, str]) -> list[Check]:
    """Every in-cluster check for the stack (the existing-cluster ones only when `cluster.mode` is existing)."""
    c = ClusterChecks(reader, cfg)
    checks: list[Check] = []
    if cfg.existing_cluster:
        checks += c.system_nodes() + c.pod_identity_agent()
    checks += (c.karpenter(karpenter_minimum, karpenter_field_minimum) + c.keda() + c.http_addon() + c.monitoring()
               + c.device_plugin() + c.gateway())
    return checks
