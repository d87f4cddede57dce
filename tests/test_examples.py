"""examples/add-model: a second Pulumi program importing the components, evaluated under mocks."""

import runpy
from pathlib import Path

import pulumi
import yaml

from stack_helpers import evaluate

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "add-model"


def _config(values: dict, secrets: tuple = ()):
    pulumi.runtime.set_all_config({f"add-model:{k}": v for k, v in values.items()},
                                  secret_keys=[f"add-model:{k}" for k in secrets])


def test_project_file():
    project = yaml.safe_load((EXAMPLE / "Pulumi.yaml").read_text())
    assert project["name"] == "add-model" and project["runtime"]["name"] == "python"
    assert "../.." in (EXAMPLE / "requirements.txt").read_text()


def test_add_model_to_existing_cluster(mocks):
    _config({"kubeconfig": '{"apiVersion": "v1", "kind": "Config"}', "apiKeySecretName": "gateway-api-key-abc",
             "namespace": "inference", "model": '{"servedName": "qwen-small", "hfModelId": "Qwen/Qwen2.5-0.5B"}',
             "prometheusUrl": "http://prom.monitoring.svc:9090",
             "externalScalerAddress": "keda-add-ons-http-external-scaler.keda:9090"}, secrets=("kubeconfig",))
    evaluate(lambda: runpy.run_path(str(EXAMPLE / "__main__.py"), run_name="__main__"))

    (provider,) = mocks.of_type("pulumi:providers:kubernetes")
    components = mocks.monitor.by_type["gpu-burst:index:ModelService"]
    assert [c.name for c in components] == ["model-qwen-small"]

    (dep,) = mocks.of_type("kubernetes:apps/v1:Deployment")
    (so,) = mocks.of_type("kubernetes:keda.sh/v1alpha1:ScaledObject")
    assert dep.inputs["metadata"]["namespace"] == "inference"
    assert dep.inputs["spec"]["replicas"] == 0  # created without a GPU, then KEDA's
    container = dep.inputs["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][0] == "Qwen/Qwen2.5-0.5B"  # positional: `serve --model=X` is deprecated
    assert so.inputs["spec"]["scaleTargetRef"]["name"] == dep.inputs["metadata"]["name"]
    triggers = {t["type"]: t["metadata"] for t in so.inputs["spec"]["triggers"]}
    assert triggers["prometheus"]["serverAddress"] == "http://prom.monitoring.svc:9090"
    assert triggers["external-push"]["scalerAddress"] == "keda-add-ons-http-external-scaler.keda:9090"
    # every object goes through the kubeconfig provider of the existing cluster
    dep_req = mocks.monitor.requests[dep.name]
    assert dep_req.provider.split("::")[-2] == provider.name
    assert "pulumi:providers:kubernetes" in dep_req.provider
