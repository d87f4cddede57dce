"""Model store under mocks: the bucket and its policy, the read-only Pod Identity grant (exact IAM statements, names
from Outputs), the staging Job (token only there, manifest marker, system nodes, awaited by Pulumi) and the wiring
into the model Deployment."""

import json

import pytest
from pulumi_mocks import ACCOUNT
from test_workload_support import (
    as_object,
    dependency_names,
    field_is_secret,
    named,
    of_kind,
    run_workload,
    strict_core_errors,
)

from components.model_store import STAGING_PROGRAM, manifest_key, model_prefix

STACKS = ["dev", "prod"]
CLUSTER = "gpu-burst-eks"  # the Foundation stand-in's cluster name (an Output in the program)


def _aws(mocks, typ: str) -> list:
    return [r for r in mocks.created if r.typ == typ]


def _one(mocks, name: str):
    (r,) = [r for r in mocks.created if r.name == name]
    return r


def _bucket(mocks) -> str:
    return mocks.state("gpu-burst-models-bucket")["bucket"]


@pytest.fixture(scope="module", params=STACKS)
def stack(request):
    """One evaluation of the workload per stack for the whole module (the tests only read what was recorded)."""
    import asyncio

    import pulumi
    from pulumi_mocks import Mocks, RecordingMonitor
    from stack_helpers import shared_loop

    asyncio.set_event_loop(shared_loop())
    mocks = Mocks()
    mocks.monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="gpu-burst", stack=request.param, preview=False, monitor=mocks.monitor)
    pulumi.runtime.set_all_config({})
    outputs, _, cfg = run_workload(request.param)
    return mocks, outputs, cfg


def test_bucket_is_private_encrypted_and_owner_enforced(stack):
    mocks, outputs, _ = stack
    (bucket,) = _aws(mocks, "aws:s3/bucket:Bucket")
    assert bucket.inputs["bucketPrefix"] == "gpu-burst-models-" and bucket.inputs["forceDestroy"] is True
    assert _aws(mocks, "aws:s3/bucketVersioning:BucketVersioning") == []
    pab = _one(mocks, "gpu-burst-models-public-access-block").inputs
    assert {k: pab[k] for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                "restrictPublicBuckets")} == dict.fromkeys(
        ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"), True)
    assert _one(mocks, "gpu-burst-models-ownership").inputs["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
    assert _one(mocks, "gpu-burst-models-encryption").inputs["rules"] == [
        {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]
    name = _bucket(mocks)
    # Every sub-resource targets the auto-named bucket (an Output), never a guessed name.
    for sub in ("public-access-block", "ownership", "encryption", "policy"):
        assert _one(mocks, f"gpu-burst-models-{sub}").inputs["bucket"] == name
    policy = json.loads(_one(mocks, "gpu-burst-models-policy").inputs["policy"])
    assert policy["Statement"] == [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]
    assert "gpu-burst-models-public-access-block" in dependency_names(mocks, "gpu-burst-models-policy")


def test_model_pods_get_read_only_access_to_their_prefix(stack):
    mocks, _, cfg = stack
    name = _bucket(mocks)
    for m in cfg.models:
        prefix = f"{m.hf_model_id}/{m.revision}"
        role = _one(mocks, f"weights-{m.served_name}-reader").inputs
        assert json.loads(role["assumeRolePolicy"])["Statement"] == [{
            "Sid": "AllowEksAuthToAssumeRoleForPodIdentity", "Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Condition": {"StringEquals": {
                "aws:SourceAccount": ACCOUNT, "aws:RequestTag/eks-cluster-name": CLUSTER,
                "aws:RequestTag/kubernetes-namespace": "inference",
                "aws:RequestTag/kubernetes-service-account": f"{m.served_name}-weights"}}}]
        policy = json.loads(_one(mocks, f"weights-{m.served_name}-reader-policy").inputs["policy"])
        cache = f"_compile-cache/{prefix}/vllm-openai-v0.33.0"
        assert policy["Statement"] == [
            {"Sid": "ListModelPrefix", "Effect": "Allow", "Action": "s3:ListBucket",
             "Resource": f"arn:aws:s3:::{name}",
             "Condition": {"StringLike": {"s3:prefix": [f"{prefix}/*", f"{cache}/*"]}}},
            {"Sid": "ReadModelObjects", "Effect": "Allow", "Action": "s3:GetObject",
             "Resource": f"arn:aws:s3:::{name}/{prefix}/*"},
            # The only writable objects: the model's own compile cache, keyed by model, revision and image.
            {"Sid": "ReadWriteCompileCache", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
             "Resource": f"arn:aws:s3:::{name}/{cache}/*"}]
        assert m.compile_cache and m.image == "vllm/vllm-openai:v0.33.0"
        assoc = _one(mocks, f"weights-{m.served_name}-reader-identity").inputs
        assert (assoc["clusterName"], assoc["namespace"], assoc["serviceAccount"]) == (
            CLUSTER, "inference", f"{m.served_name}-weights")
        assert assoc["roleArn"] == mocks.state(f"weights-{m.served_name}-reader")["arn"]
        sa = named(mocks, "ServiceAccount", f"{m.served_name}-weights")
        assert sa["automountServiceAccountToken"] is False
        # The Deployment's service account is the association's output (a data dependency), not a literal.
        dep = named(mocks, "Deployment", m.served_name)
        assert dep["spec"]["template"]["spec"]["serviceAccountName"] == assoc["serviceAccount"]
        deps = mocks.monitor.requests[f"model-{m.served_name}"].propertyDependencies["spec"].urns
        assert any(u.endswith(f"::weights-{m.served_name}-reader-identity") for u in deps)


def test_staging_job_is_the_only_place_the_token_goes(stack):
    mocks, _, cfg = stack
    for dep in of_kind(mocks, "Deployment"):
        assert "HF_TOKEN" not in json.dumps(as_object(dep))
    for m in cfg.models:
        job = named(mocks, "Job", f"stage-{m.served_name}-{m.revision[:10]}")
        pod = job["spec"]["template"]["spec"]
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        token_secret = [r for r in of_kind(mocks, "Secret") if r.name == f"weights-{m.served_name}-hf-token"]
        if m.needs_hf_token:
            (sec,) = token_secret
            assert field_is_secret(mocks, sec.name, "stringData")
            assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": mocks.state(sec.name)["metadata"]["name"],
                                                                    "key": "token"}
            assert "hf_secret_token_value" not in json.dumps(job)
        else:
            assert token_secret == [] and "HF_TOKEN" not in env


def test_staging_job_shape(stack):
    mocks, _, cfg = stack
    bucket = _bucket(mocks)
    for m in cfg.models:
        job_name = f"stage-{m.served_name}-{m.revision[:10]}"
        job = named(mocks, "Job", job_name)
        assert strict_core_errors(job, "V1Job") == []
        ann = job["metadata"]["annotations"]
        assert ann["pulumi.com/replaceUnready"] == "true"
        assert int(ann["pulumi.com/timeoutSeconds"]) > job["spec"]["activeDeadlineSeconds"] >= 1800
        assert "pulumi.com/skipAwait" not in ann  # `pulumi up` waits for the copy and fails with it
        pod = job["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"gpu-burst.io/node-role": "system"}
        assert "tolerations" not in pod and "nvidia.com/gpu" not in json.dumps(pod)
        assert pod["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] >= 1
        assert pod["serviceAccountName"] == f"{m.served_name}-staging"
        c = pod["containers"][0]
        assert c["args"] == ["--repo", m.hf_model_id, "--revision", m.revision, "--bucket", bucket,
                             "--prefix", model_prefix(m.hf_model_id, m.revision),
                             "--manifest-key", manifest_key(m.hf_model_id, m.revision)]
        # The bucket's own region: its regional S3 endpoint (the VPC's gateway endpoint), not the global one.
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == cfg.region
        # No model-sized disk: a small emptyDir for boto3, the program from a ConfigMap.
        vols = {v["name"]: v for v in pod["volumes"]}
        assert vols["work"]["emptyDir"]["sizeLimit"] == "512Mi"
        assert c["resources"]["limits"]["ephemeral-storage"] == "1Gi"
        cm = [r for r in of_kind(mocks, "ConfigMap") if r.name == f"weights-{m.served_name}-stager"][0]
        assert cm.inputs["data"]["stage_model.py"] == STAGING_PROGRAM.read_text()
        assert vols["stager"]["configMap"]["name"] == mocks.state(cm.name)["metadata"]["name"]
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["runAsNonRoot"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]} and sc["readOnlyRootFilesystem"] is True
        # Staging role: write only its own revision and manifest.
        policy = json.loads(_one(mocks, f"weights-{m.served_name}-staging-policy").inputs["policy"])
        prefix, manifest = model_prefix(m.hf_model_id, m.revision), manifest_key(m.hf_model_id, m.revision)
        assert policy["Statement"][1] == {
            "Sid": "WriteModelObjects", "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            "Resource": [f"arn:aws:s3:::{bucket}/{prefix}/*", f"arn:aws:s3:::{bucket}/{manifest}"]}
        # The Job waits for its Pod Identity association; the model waits for the Job.
        assert f"weights-{m.served_name}-staging-identity" in dependency_names(mocks, f"weights-{m.served_name}-staging")
        assert f"weights-{m.served_name}-staging" in dependency_names(mocks, f"model-{m.served_name}")


def test_replicas_need_no_internet_or_token(stack):
    mocks, _, cfg = stack
    for m in cfg.models:
        c = named(mocks, "Deployment", m.served_name)["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["HF_HUB_OFFLINE"] == "1" and env["AWS_REGION"] == cfg.region
        assert c["args"][0] == f"s3://{_bucket(mocks)}/{m.hf_model_id}/{m.revision}/"
        assert "HF_TOKEN" not in env


def test_iam_role_names_of_the_longest_served_name_fit_iam(mocks):
    """pulumi-aws auto-names a Role `<logical name>-<7 hex>` and refuses one beyond IAM's 64 characters
    (provider/resources.go aws_iam_role AutoName("name", 64, "-")); the config allows 40-character served names."""
    from stack_helpers import evaluate

    from components.model_store import ModelWeights
    from stacks.config.models import ModelConfig

    served = "m" * ModelConfig.model_fields["served_name"].metadata[0].max_length
    evaluate(lambda: ModelWeights(f"weights-{served}", {
        "bucket_name": "b", "cluster_name": CLUSTER, "namespace": "inference", "served_name": served,
        "hf_model_id": "o/m", "revision": "0" * 40}))
    roles = [r.name for r in mocks.created if r.typ == "aws:iam/role:Role"]
    assert len(roles) == 2 and all(len(n) + 8 <= 64 for n in roles), roles


def test_a_name_too_long_for_iam_is_refused_before_any_resource(mocks):
    from components.model_store import ModelWeights

    with pytest.raises(ValueError, match="too long for its IAM role names"):
        ModelWeights("w" * 50, {"bucket_name": "b", "cluster_name": CLUSTER, "namespace": "inference",
                                "served_name": "m", "hf_model_id": "o/m", "revision": "0" * 40})
    assert mocks.created == []
