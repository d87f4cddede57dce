"""`pulumi destroy` removes what a controller made from a Kubernetes object before that controller goes.

Pulumi deletes in reverse dependency order: a resource is deleted only after every resource that lists it among its
dependencies (explicit `depends_on`, data dependencies, `deletedWith`, its provider). So for every Kubernetes object
from which a controller creates AWS objects, the whole controller side (Helm release, IAM roles, policies and
attachments, Pod Identity association, node role, queues, rules) and what the controller needs to run (system nodes,
the Pod Identity agent, coredns, the network's routes, NAT and endpoints to the AWS APIs) must be in the object's
transitive dependencies. pulumi-kubernetes then waits, on
delete, until the object is gone, i.e. until the controller has removed its finalizer after deleting its AWS objects
(`service.k8s.aws/resources` for the AWS Load Balancer Controller, `karpenter.k8s.aws/termination` and the NodeClaims'
termination finalizer for Karpenter).

Parent/child edges are deliberately not followed: each such object must depend on the controller by itself.
"""

import copy
import re
from collections import defaultdict

import pytest
import yaml

from stack_cache import evaluated
from stack_helpers import ROOT
from test_workload_support import as_object

from components.edge_gateway import NLB_DELETE_TIMEOUT
from components.gpu_node_pool import GPU_TAINT_KEY, INSTANCE_TERMINATION_SECONDS, STUCK_TERMINATING_SECONDS

LBC = "gpu-burst:index:LoadBalancerController"
KARPENTER = "gpu-burst:index:Karpenter"
RUNTIME = {
    "aws:eks/addon:Addon": ("eks-pod-identity-agent", "coredns"),
    "eks:index:ManagedNodeGroup": None,
}
"""What every controller needs to run until its objects are gone: credentials from the Pod Identity agent, DNS, and
the system nodes it runs on (None: every resource of that type); and the network's way out to the AWS APIs (below)."""
NETWORK = "gpu-burst:index:Network"
NOT_NEEDED = ("aws:ec2/tag:Tag",)
"""Network resources a controller does not need to delete what it made: the discovery tags."""


LBC_GATEWAY_CONTROLLERS = ("gateway.k8s.aws/nlb", "gateway.k8s.aws/alb")
"""The LBC's Gateway API controller names (kubernetes-sigs/aws-load-balancer-controller@v3.5.0
pkg/gateway/constants/controller_constants.go)."""


def _lbc_object(obj: dict) -> bool:
    kind = obj.get("kind")
    if kind == "Service":
        return (obj.get("spec") or {}).get("type") == "LoadBalancer"
    return kind in ("Ingress", "TargetGroupBinding")


def _karpenter_object(obj: dict) -> bool:
    return obj.get("kind") in ("NodePool", "EC2NodeClass", "NodeClaim")


CONTROLLERS = {LBC: _lbc_object, KARPENTER: _karpenter_object}
"""Controller component → which Kubernetes objects make it create AWS objects."""


class Graph:
    """The recorded registrations as a dependency graph keyed by URN."""

    def __init__(self, mocks):
        by_key = {}
        for urn in mocks.monitor.resources:
            qualified, name = urn.split("::")[-2:]
            by_key.setdefault((qualified.split("$")[-1], name), []).append(urn)
        created = {(c.typ, c.name): c for c in mocks.created}
        self.requests, self.edges, self.children, self.created = {}, {}, defaultdict(list), {}
        for typ, requests in mocks.monitor.by_type.items():
            for r in requests:
                if typ == "pulumi:pulumi:Stack":
                    continue  # the root: deleted last, depends on nothing
                (urn,) = by_key[(typ, r.name)]
                if (typ, r.name) in created:
                    self.created[urn] = created[(typ, r.name)]
                deps = set(r.dependencies) | {u for d in r.propertyDependencies.values() for u in d.urns}
                deps |= {r.deletedWith} | {r.provider.rsplit("::", 1)[0]}
                self.requests[urn], self.edges[urn] = r, deps - {""}
                if r.parent:
                    self.children[r.parent].append(urn)

    def closure(self, urn: str) -> set:
        seen, todo = set(), [urn]
        while todo:
            for d in self.edges.get(todo.pop(), ()):
                if d not in seen:
                    seen.add(d)
                    todo.append(d)
        return seen

    def custom_descendants(self, urn: str) -> list:
        out, todo = [], list(self.children[urn])
        while todo:
            u = todo.pop()
            if self.requests[u].custom:
                out.append(u)
            todo.extend(self.children[u])
        return out

    def of_type(self, typ: str) -> list:
        return [u for u, r in self.requests.items() if r.type == typ]


@pytest.fixture(params=["dev", "prod"], scope="module")
def stack(request):
    mocks, _ = evaluated(request.param, secrets={"hfToken": "hf_destroy_test", "apiKey": "sk-destroy-test"})
    return request.param, mocks, Graph(mocks)


def _objects(graph: Graph, wanted) -> list:
    """(urn, object) of every Kubernetes object the program declares (not Helm releases) that `wanted` selects."""
    objects = [(u, as_object(c)) for u, c in graph.created.items()
               if c.typ.startswith("kubernetes:") and not c.typ.startswith("kubernetes:helm.sh")]
    return [(u, o) for u, o in objects if wanted(o)]


def _runtime(graph: Graph) -> list:
    network = [u for c in graph.of_type(NETWORK) for u in graph.custom_descendants(c)
               if graph.requests[u].type not in NOT_NEEDED]
    return network + [u for typ, names in RUNTIME.items() for u in graph.of_type(typ)
                      if names is None or graph.created[u].inputs.get("addonName") in names]


@pytest.mark.parametrize("controller", sorted(CONTROLLERS))
def test_controller_objects_are_deleted_before_the_controller_and_its_iam(stack, controller):
    name, _, graph = stack
    (component,) = graph.of_type(controller)
    needs = graph.custom_descendants(component) + _runtime(graph)
    kinds = {r.type for u, r in graph.requests.items() if u in needs}
    # The controller side really is there: release, role, policy, attachment, Pod Identity association.
    assert {"kubernetes:helm.sh/v3:Release", "aws:iam/role:Role", "aws:iam/policy:Policy",
            "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
            "aws:eks/podIdentityAssociation:PodIdentityAssociation", "aws:eks/addon:Addon",
            "eks:index:ManagedNodeGroup", "aws:ec2/natGateway:NatGateway",
            "aws:ec2/routeTableAssociation:RouteTableAssociation", "aws:ec2/vpcEndpoint:VpcEndpoint"} <= kinds, kinds
    objects = _objects(graph, CONTROLLERS[controller])
    assert objects, f"{name}: no Kubernetes object of {controller}"
    missing = [f"{obj['kind']} {graph.requests[u].name} is not deleted before {graph.requests[n].type} "
               f"{graph.requests[n].name}"
               for u, obj in objects for n in needs if n not in graph.closure(u)]
    assert missing == [], f"{name}:\n" + "\n".join(missing)


def test_every_nlb_belongs_to_a_service_pulumi_deletes_and_waits_for(stack):
    """Envoy Gateway's own Service stays ClusterIP (the EnvoyProxy default is LoadBalancer: a Service nobody waits
    for on delete); the one LoadBalancer Service is ours, awaited on delete for longer than the default 10 min."""
    name, _, graph = stack
    for u, proxy in _objects(graph, lambda o: o.get("kind") == "EnvoyProxy"):
        assert proxy["spec"]["provider"]["kubernetes"]["envoyService"]["type"] == "ClusterIP", name
    lbs = _objects(graph, _lbc_object)
    assert [o["kind"] for _, o in lbs] == ["Service"], name
    for u, svc in lbs:
        # pulumi-kubernetes waits for the object to be gone (finalizers included) unless skipAwait is set.
        assert (svc["metadata"].get("annotations") or {}).get("pulumi.com/skipAwait") != "true"
        timeout = graph.requests[u].customTimeouts.delete
        assert timeout == NLB_DELETE_TIMEOUT and int(timeout.rstrip("m")) > 10


def _seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return sum(int(n) * units[u] for n, u in re.findall(r"([0-9]+)(s|m|h)", duration))


def _gpu_pods(graph: Graph) -> list:
    """(urn, pod spec) of every Deployment whose pods may run on GPU nodes (they tolerate the GPU taint)."""
    out = []
    for u, d in _objects(graph, lambda o: o.get("kind") == "Deployment"):
        pod = d["spec"]["template"]["spec"]
        if any(t.get("key") == GPU_TAINT_KEY for t in pod.get("tolerations") or []):
            out.append((u, pod))
    return out


def assert_drain_fits_the_delete_timeout(name: str, graph: Graph) -> int:
    """Every NodePool and EC2NodeClass waits on delete for the slowest drain Karpenter can do on its nodes, plus the
    instance's termination: a terminating pod holds the drain until a minute past its grace period (the model
    Deployments are deleted without waiting, so their pods are still terminating), and the NodePool's
    terminationGracePeriod caps the drain. pulumi-kubernetes' own default (10 minutes) is not enough.
    Returns the longest drain found."""
    pools = _objects(graph, lambda o: o.get("kind") == "NodePool")
    pods = _gpu_pods(graph)
    assert pools and pods, name
    drain = max([_seconds(p["spec"]["template"]["spec"]["terminationGracePeriod"]) for _, p in pools]
                + [pod["terminationGracePeriodSeconds"] + STUCK_TERMINATING_SECONDS for _, pod in pods])
    for u, obj in _objects(graph, lambda o: o.get("kind") in ("NodePool", "EC2NodeClass")):
        timeout = graph.requests[u].customTimeouts.delete
        assert timeout, f"{name}: {obj['kind']} {obj['metadata']['name']} waits only the provider's 10 minutes"
        assert _seconds(timeout) >= drain + INSTANCE_TERMINATION_SECONDS > 600, (name, obj["kind"], timeout, drain)
    # The model pods are already terminating when the pools go: their Deployments are deleted first.
    for u, _ in pods:
        for p, _ in pools:
            assert p in graph.closure(u), f"{name}: {graph.requests[u].name} is not deleted before its NodePools"
    return drain


def test_karpenter_objects_are_awaited_on_delete(stack):
    """Foreground deletion (pulumi-kubernetes' default) keeps a NodePool until its NodeClaims, which block their
    owner's deletion (kubernetes-sigs/karpenter@v1.14.1 nodeclaimtemplate.go), are gone with their instances;
    orphan would leave them behind. The wait is long enough for the slowest drain."""
    name, _, graph = stack
    for u, obj in _objects(graph, _karpenter_object):
        annotations = obj["metadata"].get("annotations") or {}
        assert annotations.get("pulumi.com/skipAwait") != "true", f"{name}: {obj['kind']}"
        assert annotations.get("pulumi.com/deletionPropagationPolicy", "foreground") == "foreground"
    assert_drain_fits_the_delete_timeout(name, graph)


def test_a_model_that_drains_longer_than_the_pools_grace_period_lengthens_the_wait():
    """drainTimeout 1h (pods get 1h30s) on a pool with terminationGracePeriod 30m: the pods' grace sets the wait."""
    config = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    models = copy.deepcopy(config["gpu-burst:models"])
    models[0]["drainTimeout"] = "1h"
    gpu = copy.deepcopy(config["gpu-burst:gpu"])
    for pool in gpu["pools"]:
        pool["terminationGracePeriod"] = "30m"
    mocks, _ = evaluated("dev", {"models": models, "gpu": gpu},
                         secrets={"hfToken": "hf_destroy_test", "apiKey": "sk-destroy-test"})
    drain = assert_drain_fits_the_delete_timeout("dev with a 1h drain", Graph(mocks))
    assert drain == 3600 + 30 + STUCK_TERMINATING_SECONDS


def test_no_gateway_class_hands_gateways_to_the_load_balancer_controller(stack):
    """A Gateway of such a class would be one more LBC object (not covered by the pairs above): extend them first."""
    name, _, graph = stack
    classes = [o["spec"]["controllerName"] for _, o in _objects(graph, lambda o: o.get("kind") == "GatewayClass")]
    assert classes and not set(classes) & set(LBC_GATEWAY_CONTROLLERS), name
