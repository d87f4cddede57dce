"""System node capacity: what the stacks really render onto the system nodes fits `minSize` nodes of the smallest
configured type, and the config layer's estimate (stacks/config/capacity.py) is never below what is rendered."""

import pytest

from stack_cache import evaluated
from stack_helpers import stack_config
from stacks.config import ConfigError, capacity, validate
from stacks.config.capacity import node_allocatable, parse_cpu_m, parse_memory_mi


def raw_from_file(stack: str) -> dict:
    """The stack file's `gpu-burst:*` values as the config loader sees them (plus the region)."""
    import json

    raw = {k.split(":", 1)[1]: json.loads(v) if v[:1] in "[{" else v
           for k, v in stack_config(stack).items() if k.startswith("gpu-burst:")}
    return {**raw, "region": "us-west-2"}

SYSTEM_SELECTOR = {"gpu-burst.io/node-role": "system"}

# Where each chart takes the requests of the pods it runs on system nodes, and how many replicas each has.
# A chart added to the system nodes needs one entry here and one in capacity.SYSTEM_ADDONS; the coverage test below
# fails until both exist.
RENDERED = {
    "karpenter": [("controller.resources", "replicas")],
    "keda": [("resources.operator", 1), ("resources.metricServer", 1), ("resources.webhooks", 1)],
    "keda-add-ons-http": [("operator.resources", 1), ("scaler.resources", "scaler.replicas"),
                          ("interceptor.resources", "interceptor.replicas.max")],
    "kube-prometheus-stack": [("prometheusOperator.resources", 1), ("prometheus.prometheusSpec.resources", 1),
                              ("alertmanager.alertmanagerSpec.resources", 1), ("grafana.resources", 1)],
    "eg": [("deployment.envoyGateway.resources", "deployment.replicas"),
           # the envoy-ratelimit pods Envoy Gateway runs when a key has a token budget
           ("config.envoyGateway.provider.kubernetes.rateLimitDeployment.container.resources",
            "config.envoyGateway.provider.kubernetes.rateLimitDeployment.replicas")],
    "aieg": [("controller.resources", "controller.replicaCount")],
    "aws-load-balancer-controller": [("resources", "replicaCount")],
}


def _get(values: dict, path: str):
    for part in path.split("."):
        values = values.get(part) if isinstance(values, dict) else None
    return values


def _enabled(values: dict, path: str) -> bool:
    head = path.split(".")[0]
    return _get(values, f"{head}.enabled") is not False


def rendered_requests(mocks) -> dict[str, tuple[int, int]]:
    """(CPU m, memory Mi) per release/object, summed over the pods the stack pins to the system nodes."""
    out = {}
    for r in mocks.of_type("kubernetes:helm.sh/v3:Release"):
        values = r.inputs.get("values") or {}
        name = r.inputs["name"]
        if name not in RENDERED:
            continue
        cpu = mem = 0
        for res_path, replicas in RENDERED[name]:
            if not _enabled(values, res_path) or _get(values, res_path) is None:
                continue
            req = (_get(values, res_path) or {}).get("requests") or {}
            n = replicas if isinstance(replicas, int) else int(_get(values, replicas))
            cpu += parse_cpu_m(req.get("cpu", "0")) * n
            mem += parse_memory_mi(req.get("memory", "0")) * n
        out[name] = (cpu, mem)
    for kind in ("apps/v1:Deployment", "apps/v1:StatefulSet"):
        for r in mocks.of_type(f"kubernetes:{kind}"):
            spec = r.inputs["spec"]["template"]["spec"]
            if spec.get("nodeSelector", {}).get("gpu-burst.io/node-role") != "system" and spec.get("tolerations"):
                continue  # tolerates a taint and is not pinned to system nodes: a GPU workload
            n = r.inputs["spec"].get("replicas", 1)
            reqs = [c.get("resources", {}).get("requests", {}) for c in spec["containers"]]
            out[r.name] = (sum(parse_cpu_m(q.get("cpu", "0")) for q in reqs) * n,
                           sum(parse_memory_mi(q.get("memory", "0")) for q in reqs) * n)
    # Weight-staging Jobs run on the system nodes while a revision is staged; the largest one must fit (others queue).
    jobs = [r.inputs["spec"]["template"]["spec"] for r in mocks.of_type("kubernetes:batch/v1:Job")]
    staged = [spec for spec in jobs if spec.get("nodeSelector", {}).get("gpu-burst.io/node-role") == "system"]
    assert staged and len(staged) == len(jobs), "every staging Job is pinned to the system nodes"
    per_job = [([c.get("resources", {}).get("requests", {}) for c in spec["containers"]]) for spec in staged]
    out["model-staging"] = max((sum(parse_cpu_m(q.get("cpu", "0")) for q in reqs),
                                sum(parse_memory_mi(q.get("memory", "0")) for q in reqs)) for reqs in per_job)
    return out


def _system_releases(mocks) -> set[str]:
    """Releases whose values pin something to the system nodes."""
    def pinned(v) -> bool:
        if isinstance(v, dict):
            return v.get("nodeSelector") == SYSTEM_SELECTOR or any(pinned(x) for x in v.values())
        return False
    return {r.inputs["name"] for r in mocks.of_type("kubernetes:helm.sh/v3:Release") if pinned(r.inputs.get("values"))}


@pytest.fixture(params=["dev", "prod"], scope="module")
def rendered(request):
    mocks, _ = evaluated(request.param, secrets={"hfToken": "hf_x", "apiKey": "sk-x"})
    cfg = validate({**raw_from_file(request.param), "hfTokenSet": True})
    return request.param, cfg, mocks


def test_every_system_chart_is_in_the_capacity_model(rendered):
    _, _, mocks = rendered
    modelled = {a.name for a in capacity.SYSTEM_ADDONS}
    assert _system_releases(mocks) <= set(RENDERED) <= modelled


def test_estimate_is_not_below_what_the_stack_renders(rendered):
    name, cfg, mocks = rendered
    estimate = {a.name: (sum(p.cpu_m * p.replicas for p in a.pods(cfg)), sum(p.memory_mi * p.replicas for p in a.pods(cfg)))
                for a in capacity.SYSTEM_ADDONS}
    got = rendered_requests(mocks)
    assert set(RENDERED) <= set(got), f"{name}: releases not rendered: {set(RENDERED) - set(got)}"
    for release, (cpu, mem) in got.items():
        assert release in estimate, f"{name}: {release} runs on system nodes but is not in capacity.SYSTEM_ADDONS"
        assert estimate[release][0] >= cpu and estimate[release][1] >= mem, (name, release, estimate[release], cpu, mem)


def test_rendered_requests_fit_min_size_nodes_of_the_smallest_type(rendered):
    name, cfg, mocks = rendered
    sysn = cfg.system_nodes
    smallest = capacity.smallest(list(sysn.instance_types))
    alloc = node_allocatable(smallest)
    got = rendered_requests(mocks)
    eks = next(a for a in capacity.SYSTEM_ADDONS if a.name == "eks")
    daemons = [p for a in capacity.SYSTEM_ADDONS for p in a.per_node(cfg)]
    cpu = sum(c for c, _ in got.values()) + sum(p.cpu_m * p.replicas for p in eks.pods(cfg)) \
        + sysn.min_size * sum(p.cpu_m for p in daemons)
    mem = sum(m for _, m in got.values()) + sum(p.memory_mi * p.replicas for p in eks.pods(cfg)) \
        + sysn.min_size * sum(p.memory_mi for p in daemons)
    assert cpu <= sysn.min_size * alloc.cpu_m * (1 - capacity.HEADROOM), (name, cpu, alloc)
    assert mem <= sysn.min_size * alloc.memory_mi * (1 - capacity.HEADROOM), (name, mem, alloc)
    assert capacity.fit(cfg, smallest, sysn.min_size).ok


def test_allocatable_follows_the_eks_ami_formula():
    # m6i.large: 2 vCPU → 60m + 10m kube-reserved; 29 max pods → 11×29+255 = 574Mi; 8 GiB less 7.5% VM overhead.
    a = node_allocatable("m6i.large")
    assert (a.cpu_m, a.pods) == (1930, 29)
    assert a.memory_mi == int(8192 * 0.925) - 574 - 100
    # m6i.xlarge: 4 vCPU → 60 + 10 + 10 = 80m; 58 pods.
    assert (node_allocatable("m6i.xlarge").cpu_m, node_allocatable("m6i.xlarge").pods) == (3920, 58)
    # 16 vCPU: 60 + 10 + 10 + 12000×0.25% = 110m.
    assert node_allocatable("m6i.4xlarge").cpu_m == 16000 - 110


def test_one_small_system_node_is_refused_naming_the_key():
    # The dev shape before: one m6i.large with a 1-CPU Karpenter.
    raw = raw_from_file("dev")
    raw["systemNodes"] = {"instanceTypes": ["m6i.large"], "desiredSize": 1, "minSize": 1, "maxSize": 2}
    raw["karpenter"] = {"chartVersion": "1.14.1"}
    with pytest.raises(ConfigError) as e:
        validate(raw)
    (line,) = [ln for ln in e.value.lines if "systemNodes" in ln]
    assert line.startswith("gpu-burst:systemNodes: 1 × m6i.large")
    assert "systemNodes.minSize" in line and "karpenter" in line


def test_the_smallest_configured_type_decides():
    raw = raw_from_file("prod")
    raw["systemNodes"] = {"instanceTypes": ["m6i.xlarge", "m6i.large"], "desiredSize": 2, "minSize": 2, "maxSize": 4}
    with pytest.raises(ConfigError, match=r"gpu-burst:systemNodes: 2 × m6i.large"):
        validate(raw)


def test_unknown_instance_type_has_no_capacity_figures():
    raw = raw_from_file("dev")
    raw["systemNodes"] = {**raw["systemNodes"], "instanceTypes": ["m6i.large", "m9i.large"]}
    with pytest.raises(ConfigError, match=r"gpu-burst:systemNodes.instanceTypes: no capacity figures for \['m9i.large'\]"):
        validate(raw)


def test_karpenter_replicas_repel_each_other_onto_min_size_nodes():
    # desiredSize 2 allows two replicas, but only minSize 1 node is sure to exist: the second replica has no node.
    raw = raw_from_file("dev")
    raw["karpenter"] = {**raw["karpenter"], "replicas": 2}
    raw["systemNodes"] = {"instanceTypes": ["m6i.2xlarge"], "minSize": 1, "desiredSize": 2, "maxSize": 3}
    with pytest.raises(ConfigError, match=r"gpu-burst:systemNodes: 1 × m6i.2xlarge .* no room for karpenter;"):
        validate(raw)


def test_adding_a_chart_is_one_entry(monkeypatch):
    cfg = validate({**raw_from_file("dev"), "hfTokenSet": True})
    assert capacity.fit(cfg, "m6i.large", 2).ok
    big = capacity.SystemAddon("gateway", lambda c: [capacity.PodRequest("envoy", 1000, 1024, replicas=2)])
    monkeypatch.setattr(capacity, "SYSTEM_ADDONS", [*capacity.SYSTEM_ADDONS, big])
    assert not capacity.fit(cfg, "m6i.large", 2).ok
    assert capacity.fit(cfg, "m6i.xlarge", 2).ok
