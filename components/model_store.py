"""Model weights from S3 instead of the internet: one bucket per stack (ModelStore) and, per model revision, a
staging Job that copies it there once plus a read-only EKS Pod Identity grant for the model's pods (ModelWeights)."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from ._common import SYSTEM_NODE_SELECTOR, child, deps_of, labels, pod_identity_trust, token
from .model_service import DEFAULT_LORA_RANK

STAGING_IMAGE = "public.ecr.aws/docker/library/python:3.12.12-slim-bookworm"
"""Small Python image for the staging Job, from ECR Public's mirror of Docker's official images (no Docker Hub rate
limit behind a NAT)."""
STAGING_PIP = ("boto3==1.44.8", "botocore==1.44.8", "s3transfer==0.19.3")
"""What the staging program needs besides the standard library, pinned like requirements.txt."""
STAGING_REQUESTS = {"cpu": "500m", "memory": "768Mi"}
"""CPU and memory requests of a staging Job (memory bounds the in-flight multipart parts, 8 x 32 MiB)."""
STAGING_PROGRAM = Path(__file__).parent / "staging" / "stage_model.py"
COMPILE_CACHE_PROGRAM = Path(__file__).parent / "staging" / "compile_cache.py"
SYNC_ADAPTERS_PROGRAM = Path(__file__).parent / "staging" / "sync_adapters.py"
MANIFEST_ROOT = "_manifests"
"""Manifests live outside every model prefix, so the model pods' read-only grant does not cover them."""
COMPILE_CACHE_ROOT = "_compile-cache"
"""Compile caches live outside every model prefix too: the pods' write grant on their cache never covers weights."""
HF_TOKEN_KEY = "token"
RUN_AS_UID = 65532
IAM_ROLE_NAME_MAX = 64
"""IAM role names are at most 64 characters; pulumi-aws auto-names a Role `<logical name>-<7 hex>` and refuses a
logical name that leaves no room (pulumi-aws provider/resources.go `aws_iam_role`: AutoName("name", 64, "-"))."""
AUTONAME_SUFFIX = 8
"""`-` and 7 random hex characters."""
ROLE_SUFFIXES = {"reader": "reader", "staging": "writer"}
"""Logical-name suffix of each grant's IAM role: short, so `weights-<40-character served name>-<suffix>` still
auto-names within IAM's limit, and distinct from the Job (`-staging`) and ConfigMap (`-stager`) names."""


def model_prefix(hf_model_id: str, revision: str) -> str:
    """Object prefix of one model revision: `<hfModelId>/<revision>` (no trailing slash)."""
    return f"{hf_model_id}/{revision}"


def manifest_key(hf_model_id: str, revision: str) -> str:
    return f"{MANIFEST_ROOT}/{hf_model_id}/{revision}.json"


def compile_cache_prefix(hf_model_id: str, revision: str, image: str) -> str:
    """Prefix of the torch.compile cache of one model revision served by one vLLM image (the image tag or digest
    names the vLLM version); the program in the pod appends the GPU model."""
    ref = image.rsplit("/", 1)[-1]
    tag = ref.split("@", 1)[1] if "@" in ref else ref
    return f"{COMPILE_CACHE_ROOT}/{hf_model_id}/{revision}/{tag.replace(':', '-')}"


def reader_policy(partition: str, bucket: str, prefix: str, cache_prefix: Optional[str] = None,
                  adapter_prefixes: tuple = ()) -> dict:
    """Read-only access to one model revision: list that prefix, get its objects; nothing else in the bucket. With
    `cache_prefix`, also read and add objects of the model's own compile cache (never its weights); with
    `adapter_prefixes`, also list and read the revisions of its LoRA adapters.

    The Run:ai streamer lists `<prefix>/` (always with the trailing slash) before streaming
    (runai-model-streamer-s3 0.17.1 files.py `list_files`), and HeadObject/GetObject both need s3:GetObject."""
    listed = [f"{prefix}/*"] + ([f"{cache_prefix}/*"] if cache_prefix else []) + [f"{a}/*" for a in adapter_prefixes]
    read = [f"arn:{partition}:s3:::{bucket}/{p}/*" for p in (prefix, *adapter_prefixes)]
    statements = [
        {"Sid": "ListModelPrefix", "Effect": "Allow", "Action": "s3:ListBucket",
         "Resource": f"arn:{partition}:s3:::{bucket}",
         "Condition": {"StringLike": {"s3:prefix": listed}}},
        {"Sid": "ReadModelObjects", "Effect": "Allow", "Action": "s3:GetObject",
         "Resource": read if adapter_prefixes else read[0]},
    ]
    if cache_prefix:
        statements.append({"Sid": "ReadWriteCompileCache", "Effect": "Allow",
                           "Action": ["s3:GetObject", "s3:PutObject"],
                           "Resource": f"arn:{partition}:s3:::{bucket}/{cache_prefix}/*"})
    return {"Version": "2012-10-17", "Statement": statements}


def staging_policy(partition: str, bucket: str, prefix: str, manifest: str, adapters: tuple = ()) -> dict:
    """What the model's staging Jobs may do: write (and verify, or remove a corrupt upload of) the objects of its own
    model revision and its manifest, and of each `(prefix, manifest)` of its LoRA adapters."""
    pairs = [(prefix, manifest), *adapters]
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "ListModelPrefix", "Effect": "Allow", "Action": "s3:ListBucket",
         "Resource": f"arn:{partition}:s3:::{bucket}",
         "Condition": {"StringLike": {"s3:prefix": [k for p, m in pairs for k in (f"{p}/*", m)]}}},
        {"Sid": "WriteModelObjects", "Effect": "Allow",
         "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
         "Resource": [f"arn:{partition}:s3:::{bucket}/{k}" for p, m in pairs for k in (f"{p}/*", m)]},
    ]}


def bucket_policy(partition: str, bucket: str) -> dict:
    """Refuse plain-HTTP access to the bucket (aws:SecureTransport), whoever the principal is."""
    arn = f"arn:{partition}:s3:::{bucket}"
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [arn, f"{arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }]}


class ModelStoreArgs(TypedDict):
    """Inputs of ModelStore."""

    bucket_prefix: NotRequired[str]
    """Prefix of the auto-named bucket (S3 names are global). Default `gpu-burst-models-`."""
    tags: NotRequired[pulumi.Input[dict[str, str]]]
    """Extra tags of the bucket."""


class ModelStore(pulumi.ComponentResource):
    """The stack's S3 model store: one private bucket (public access blocked, owner-enforced object ownership, SSE-S3
    default encryption, TLS-only policy, no versioning: a revision's objects never change, and a lost one is
    re-staged). `pulumi destroy` empties and removes it: everything in it can be staged again from the Hub."""

    bucket_name: pulumi.Output[str]
    """Name of the bucket."""
    bucket_arn: pulumi.Output[str]
    """ARN of the bucket."""

    def __init__(self, name: str, args: ModelStoreArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__(token("ModelStore"), name, None, opts)
        self.bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket_prefix=args.get("bucket_prefix", "gpu-burst-models-"),
            force_destroy=True,
            tags=args.get("tags"),
            opts=child(self),
        )
        self.public_access_block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access-block",
            bucket=self.bucket.id,
            block_public_acls=True, block_public_policy=True, ignore_public_acls=True, restrict_public_buckets=True,
            opts=child(self),
        )
        self.ownership = aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=self.bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=child(self),
        )
        self.encryption = aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=self.bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
            opts=child(self),
        )
        partition = aws.get_partition_output()
        self.policy = aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=self.bucket.id,
            policy=pulumi.Output.all(partition.partition, self.bucket.bucket).apply(
                lambda a: json.dumps(bucket_policy(*a))),
            # With the public access block in place first, S3 judges the policy against it.
            opts=child(self, depends_on=[self.public_access_block]),
        )
        self.bucket_name = self.bucket.bucket
        self.bucket_arn = self.bucket.arn
        self.register_outputs({"bucket_name": self.bucket_name, "bucket_arn": self.bucket_arn})


class AdapterWeightsArgs(TypedDict):
    """A LoRA adapter of the model, staged next to its weights."""

    name: str
    """Name the adapter is served under (names its staging Job)."""
    hf_model_id: str
    """Hugging Face repository of the PEFT LoRA adapter."""
    revision: str
    """Hugging Face commit hash to stage."""


class ModelWeightsArgs(TypedDict):
    """Inputs of ModelWeights."""

    bucket_name: pulumi.Input[str]
    """The ModelStore bucket."""
    cluster_name: pulumi.Input[str]
    """Real EKS cluster name (Pod Identity associations and the trust policy's session-tag condition)."""
    namespace: pulumi.Input[str]
    """Namespace of the staging Job and of the model's service account (the model's own namespace)."""
    served_name: str
    """The model's served name; names the service accounts and the Job."""
    hf_model_id: str
    """Hugging Face repository id."""
    revision: str
    """Hugging Face commit hash to stage and serve."""
    hf_token: NotRequired[pulumi.Input[str]]
    """Hub token (a Pulumi secret) for gated repositories; only the staging Jobs (the model's and its adapters') see
    it."""
    adapters: NotRequired[list[AdapterWeightsArgs]]
    """LoRA adapters of the model: each staged by a Job of its own (with the token, when given), readable by the
    model's pods. Their files are checked in the Job against what vLLM loads (a PEFT LoRA adapter of rank at most
    `adapter_max_rank`), so a bad adapter fails `pulumi up` instead of every replica's start."""
    adapter_max_rank: NotRequired[int]
    """`--max-lora-rank` the model serves its adapters with. Default 16."""
    compile_cache_image: NotRequired[str]
    """vLLM image whose torch.compile cache the model pods may keep in the store (read and add, under a prefix
    keyed by model, revision and image). Omit to keep the cache node-local."""
    staging_image: NotRequired[str]
    """Image of the staging Job (Python 3.10+). Default STAGING_IMAGE."""
    staging_deadline_seconds: NotRequired[int]
    """activeDeadlineSeconds of the Job; `pulumi up` waits this long plus a margin. Default 3600."""
    node_selector: NotRequired[dict[str, str]]
    """Where the Job runs. Default the system nodes (never a GPU node: it carries no GPU toleration)."""
    tags: NotRequired[pulumi.Input[dict[str, str]]]
    """Extra tags of the IAM roles and associations."""
    region: NotRequired[pulumi.Input[str]]
    """The bucket's region: the staging Job's S3 client talks to that region's endpoint (through the VPC's S3
    gateway endpoint) instead of the global one, which redirects and leaves through the NAT."""


def _check_name(name: str) -> None:
    """ValueError when `name` leaves no room for the auto-named IAM roles, before anything is registered."""
    allowed = IAM_ROLE_NAME_MAX - AUTONAME_SUFFIX - 1 - max(map(len, ROLE_SUFFIXES.values()))
    if len(name) > allowed:
        raise ValueError(f"ModelWeights '{name}': name longer than {allowed} characters, too long for its IAM "
                         f"role names (at most {IAM_ROLE_NAME_MAX} with the auto-name suffix)")


@dataclass(frozen=True)
class _WeightsPlan:
    """What every step of a ModelWeights reads: its arguments, the store's paths and the account it runs in."""

    name: str
    args: ModelWeightsArgs
    deps: list
    """The caller's `depends_on`, passed to the Kubernetes children."""
    served: str
    namespace: pulumi.Input[str]
    prefix: str
    """The revision's prefix in the bucket (no trailing slash)."""
    manifest: str
    labels: dict
    partition: pulumi.Output[str]
    account: pulumi.Output[str]
    bucket: pulumi.Output[str]
    cache: Optional[str]
    """The compile cache's prefix, or None to keep the cache node-local."""
    adapters: list
    adapter_paths: dict
    """Adapter name → (its prefix, its manifest key)."""
    deadline: int
    """activeDeadlineSeconds of each staging Job."""



class ModelWeights(pulumi.ComponentResource):
    """One model revision in the store: a staging Job (on system nodes, HF token only there, idempotent through a
    manifest object, awaited by `pulumi up` so a failed copy fails the deployment) and the model pods' read-only
    Pod Identity grant on `<hfModelId>/<revision>/`. Make the model's Deployment depend on `staging_job`."""

    model_uri: pulumi.Output[str]
    """`s3://<bucket>/<hfModelId>/<revision>/`: what vLLM loads with `--load-format runai_streamer`."""
    service_account_name: pulumi.Output[str]
    """Service account of the model pods, from the Pod Identity association (so the two cannot disagree)."""
    reader_role_arn: pulumi.Output[str]
    """Role the model pods assume (read-only on the prefix)."""
    staging_job_name: pulumi.Output[str]
    """Name of the staging Job (`kubectl logs job/<name>` shows its progress)."""
    manifest_uri: pulumi.Output[str]
    """`s3://` URI of the manifest that marks the revision as completely staged."""
    compile_cache_uri: pulumi.Output[str]
    """`s3://` prefix of the model's torch.compile cache ("" when compile_cache_image is not set)."""
    tools_config_map: pulumi.Output[str]
    """ConfigMap holding compile_cache.py (and sync_adapters.py with adapters), mounted by the model pods."""
    adapter_uris: pulumi.Output[dict[str, str]]
    """Per adapter name: `s3://<bucket>/<hfModelId>/<revision>/` of its files."""

    def __init__(self, name: str, args: ModelWeightsArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        _check_name(name)
        super().__init__(token("ModelWeights"), name, None, opts)
        p = self._plan(name, args, deps_of(opts))
        self._grants(p)
        token_secret, program = self._staging_inputs(p)
        self._staging_jobs(p, token_secret, program)
        self._tools(p)
        self._outputs(p)

    def _plan(self, name: str, args: ModelWeightsArgs, deps: list) -> "_WeightsPlan":
        served = args["served_name"]
        adapters = list(args.get("adapters", []))
        # Through the component's own AWS provider (opts.providers), like its resources.
        invoke = pulumi.InvokeOutputOptions(parent=self)
        return _WeightsPlan(
            name=name, args=args, deps=deps, served=served, namespace=args["namespace"],
            prefix=model_prefix(args["hf_model_id"], args["revision"]),
            manifest=manifest_key(args["hf_model_id"], args["revision"]),
            labels=labels("model-weights", served, {"gpu-burst.io/model": served}),
            partition=aws.get_partition_output(opts=invoke).partition,
            account=aws.get_caller_identity_output(opts=invoke).account_id,
            bucket=pulumi.Output.from_input(args["bucket_name"]),
            cache=(compile_cache_prefix(args["hf_model_id"], args["revision"], args["compile_cache_image"])
                   if args.get("compile_cache_image") else None),
            adapters=adapters,
            adapter_paths={a["name"]: (model_prefix(a["hf_model_id"], a["revision"]),
                                       manifest_key(a["hf_model_id"], a["revision"])) for a in adapters},
            deadline=args.get("staging_deadline_seconds", 3600))

    def _grants(self, p: "_WeightsPlan") -> None:
        """The model pods' read-only grant and the staging Jobs' write grant on the model's prefix (and its
        adapters')."""
        # Without adapters the policies are exactly what they were before adapters existed (no update on upgrade).
        reader_extra = [tuple(prefix for prefix, _ in p.adapter_paths.values())] if p.adapters else []
        staging_extra = [tuple(p.adapter_paths.values())] if p.adapters else []
        self.reader_role, self.reader_identity = self._grant(p, "reader", f"{p.served}-weights", reader_policy,
                                                             p.prefix, p.cache, *reader_extra)
        self.staging_role, self.staging_identity = self._grant(p, "staging", f"{p.served}-staging", staging_policy,
                                                               p.prefix, p.manifest, *staging_extra)

    def _grant(self, p: "_WeightsPlan", role: str, sa_name: str, policy_fn, *policy_args) -> tuple:
        """A service account, the IAM role it assumes through EKS Pod Identity with `policy_fn(partition, bucket,
        *policy_args)` inline, and the association: (the role, the association)."""
        name, args = p.name, p.args
        sa = k8s.core.v1.ServiceAccount(
            f"{name}-{role}-sa",
            metadata={"name": sa_name, "namespace": p.namespace, "labels": p.labels},
            automount_service_account_token=False,
            opts=child(self, p.deps),
        )
        iam_role = aws.iam.Role(
            f"{name}-{ROLE_SUFFIXES[role]}",
            assume_role_policy=pulumi.Output.all(p.account, args["cluster_name"], sa.metadata.namespace,
                                                 sa.metadata.name).apply(
                lambda a: json.dumps(pod_identity_trust(*a))),
            description=f"{p.served}: {role} of s3 prefix {p.prefix}/ (EKS Pod Identity)",
            tags=args.get("tags"),
            opts=child(self),
        )
        policy = aws.iam.RolePolicy(
            f"{name}-{role}-policy",
            role=iam_role.id,
            policy=pulumi.Output.all(p.partition, p.bucket).apply(
                lambda a: json.dumps(policy_fn(a[0], a[1], *policy_args))),
            opts=child(self),
        )
        association = aws.eks.PodIdentityAssociation(
            f"{name}-{role}-identity",
            cluster_name=args["cluster_name"],
            namespace=sa.metadata.namespace,
            service_account=sa.metadata.name,
            role_arn=iam_role.arn,
            tags=args.get("tags"),
            opts=child(self, depends_on=[policy]),
        )
        return iam_role, association

    def _staging_inputs(self, p: "_WeightsPlan") -> tuple:
        """What every staging Job mounts: the Hub token Secret (None without a token) and the staging program."""
        token_secret = None
        if p.args.get("hf_token") is not None:
            token_secret = k8s.core.v1.Secret(
                f"{p.name}-hf-token",
                metadata={"namespace": p.namespace, "labels": p.labels},
                type="Opaque",
                string_data={HF_TOKEN_KEY: pulumi.Output.secret(p.args["hf_token"])},
                opts=child(self, p.deps, additional_secret_outputs=["data", "stringData"]),
            )
        program = k8s.core.v1.ConfigMap(
            f"{p.name}-stager",
            metadata={"namespace": p.namespace, "labels": p.labels},
            data={"stage_model.py": STAGING_PROGRAM.read_text()},
            opts=child(self, p.deps),
        )
        return token_secret, program

    def _staging_jobs(self, p: "_WeightsPlan", token_secret, program) -> None:
        """The model's staging Job and one per adapter."""
        args = p.args
        self.staging_job = self._staging_job(
            p, f"{p.name}-staging", f"stage-{p.served}-{args['revision'][:10]}", p.labels,
            ["--repo", args["hf_model_id"], "--revision", args["revision"], "--bucket", p.bucket, "--prefix", p.prefix,
             "--manifest-key", p.manifest], program, token_secret)
        # Adapter names are unique among the served names of the namespace, so `stage-<adapter>-...` is too.
        rank = str(args.get("adapter_max_rank", DEFAULT_LORA_RANK))
        self.adapter_staging_jobs = [self._staging_job(
            p, f"{p.name}-adapter-{a['name']}", f"stage-{a['name']}-{a['revision'][:10]}",
            {**p.labels, "gpu-burst.io/adapter": a["name"]},
            ["--repo", a["hf_model_id"], "--revision", a["revision"], "--bucket", p.bucket,
             "--prefix", p.adapter_paths[a["name"]][0], "--manifest-key", p.adapter_paths[a["name"]][1],
             "--adapter-max-rank", rank], program, token_secret) for a in p.adapters]
        self.staging_jobs = [self.staging_job, *self.adapter_staging_jobs]

    def _staging_job(self, p: "_WeightsPlan", logical: str, job_name: str, job_labels: dict, stage_args: list,
                     program, token_secret) -> k8s.batch.v1.Job:
        return k8s.batch.v1.Job(
            logical,
            metadata={
                # A new revision is a new Job; the old one goes when the new one is done.
                "name": job_name,
                "namespace": p.namespace, "labels": job_labels,
                "annotations": {
                    # pulumi-kubernetes awaits Jobs until Complete and fails at once on the Failed condition
                    # (provider/pkg/await/job.go, checker/job/check.go @v4.32.0); its default wait is 10 minutes.
                    "pulumi.com/timeoutSeconds": str(p.deadline + 300),
                    # A Job that failed is replaced (retried) by the next `pulumi up` (provider.go replaceUnready).
                    "pulumi.com/replaceUnready": "true",
                }},
            spec=self._job_spec(p.args, stage_args, program, token_secret, self.staging_identity, job_labels,
                                p.deadline),
            opts=child(self, p.deps + [self.staging_identity], delete_before_replace=True),
        )

    def _tools(self, p: "_WeightsPlan") -> None:
        """The programs the model pods run from the store: compile_cache.py, and sync_adapters.py with adapters."""
        tools = {"compile_cache.py": COMPILE_CACHE_PROGRAM.read_text()}
        if p.adapters:
            tools["sync_adapters.py"] = SYNC_ADAPTERS_PROGRAM.read_text()
        self.tools = k8s.core.v1.ConfigMap(
            f"{p.name}-tools",
            metadata={"namespace": p.namespace, "labels": p.labels},
            data=tools,
            opts=child(self, p.deps),
        )

    def _outputs(self, p: "_WeightsPlan") -> None:
        prefix, manifest, cache, adapter_paths = p.prefix, p.manifest, p.cache, p.adapter_paths
        self.model_uri = p.bucket.apply(lambda b: f"s3://{b}/{prefix}/")
        self.adapter_uris = p.bucket.apply(lambda b: {n: f"s3://{b}/{pre}/" for n, (pre, _) in adapter_paths.items()})
        self.compile_cache_uri = p.bucket.apply(lambda b: f"s3://{b}/{cache}/" if cache else "")
        self.tools_config_map = self.tools.metadata.name
        self.manifest_uri = p.bucket.apply(lambda b: f"s3://{b}/{manifest}")
        self.service_account_name = self.reader_identity.service_account
        self.reader_role_arn = self.reader_role.arn
        self.staging_job_name = self.staging_job.metadata.name
        self.register_outputs({"model_uri": self.model_uri, "adapter_uris": self.adapter_uris,
                               "manifest_uri": self.manifest_uri,
                               "compile_cache_uri": self.compile_cache_uri, "tools_config_map": self.tools_config_map,
                               "service_account_name": self.service_account_name,
                               "reader_role_arn": self.reader_role_arn, "staging_job_name": self.staging_job_name})

    @staticmethod
    def _job_spec(args: ModelWeightsArgs, stage_args: list, program, token_secret, identity, lbl: dict,
                  deadline: int) -> dict:
        env = [{"name": "HOME", "value": "/work"}, {"name": "PYTHONPATH", "value": "/work/site"},
               {"name": "TMPDIR", "value": "/work/tmp"}, {"name": "PYTHONUNBUFFERED", "value": "1"},
               {"name": "PIP_DISABLE_PIP_VERSION_CHECK", "value": "1"}]
        if args.get("region"):
            env += [{"name": "AWS_REGION", "value": args["region"]},
                    {"name": "AWS_DEFAULT_REGION", "value": args["region"]}]
        if token_secret is not None:
            env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": token_secret.metadata.name,
                                                                            "key": HF_TOKEN_KEY}}})
        script = ("mkdir -p /work/tmp && "
                  f"pip install --quiet --no-cache-dir --target /work/site {' '.join(STAGING_PIP)} && "
                  'exec python /stager/stage_model.py "$@"')
        security = {"allowPrivilegeEscalation": False, "privileged": False, "capabilities": {"drop": ["ALL"]},
                    "runAsNonRoot": True, "runAsUser": RUN_AS_UID, "runAsGroup": RUN_AS_UID,
                    "readOnlyRootFilesystem": True, "seccompProfile": {"type": "RuntimeDefault"}}
        return {
            # Retries cover a pod created before its Pod Identity association reached the admission webhook, and
            # transient Hub errors; completed files are not copied again.
            "backoffLimit": 3,
            "activeDeadlineSeconds": deadline,
            "template": {
                "metadata": {"labels": lbl},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": identity.service_account,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "nodeSelector": dict(args.get("node_selector", SYSTEM_NODE_SELECTOR)),
                    "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS_UID, "runAsGroup": RUN_AS_UID,
                                        "fsGroup": RUN_AS_UID, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "stage",
                        "image": args.get("staging_image", STAGING_IMAGE),
                        "command": ["sh", "-c", script, "stage"],
                        "args": stage_args,
                        "env": env,
                        # Memory bounds the in-flight multipart parts (8 x 32 MiB); the disk only holds boto3.
                        "resources": {"requests": {**STAGING_REQUESTS, "ephemeral-storage": "1Gi"},
                                      "limits": {"memory": "1Gi", "ephemeral-storage": "1Gi"}},
                        "volumeMounts": [{"name": "work", "mountPath": "/work"},
                                         {"name": "stager", "mountPath": "/stager", "readOnly": True}],
                        "securityContext": security,
                    }],
                    "volumes": [{"name": "work", "emptyDir": {"sizeLimit": "512Mi"}},
                                {"name": "stager", "configMap": {"name": program.metadata.name}}],
                },
            },
        }

