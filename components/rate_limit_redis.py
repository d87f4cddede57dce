"""The Redis that Envoy Gateway's rate-limit service counts in (global request limits and token budgets): a managed
ElastiCache for Valkey replication group, or one Valkey pod in the cluster. Both speak TLS only and require a
password; both hand the edge the same three things: `url` (host:port), `password` (secret) and, when the server's
certificate is not publicly trusted, `ca_pem`. docs/tenants.md compares them (cost, availability)."""

from typing import Optional, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_random as random
import pulumi_tls as tls
from typing_extensions import NotRequired

from ._common import SYSTEM_NODE_SELECTOR, child, deps_of, labels, token

REDIS_PORT = 6379
COMPONENT = "rate-limit-redis"
"""Component label of the in-cluster objects and tag of the AWS ones."""
VALKEY_ENGINE_VERSION = "8.1"
"""ElastiCache for Valkey engine version (major.minor; ElastiCache applies patch releases itself)."""
VALKEY_IMAGE = "valkey/valkey:8.1.4-alpine"
"""The in-cluster Valkey: the official image (built with BUILD_TLS=yes, user valkey uid 999,
valkey-io/valkey-container Dockerfile.template), the same minor version as the managed engine."""
VALKEY_UID = 999
VALKEY_REQUESTS = {"cpu": "10m", "memory": "64Mi"}
"""Requests of the in-cluster Valkey pod (a few counters per key and window)."""
VALKEY_MEMORY_LIMIT = "128Mi"
VALKEY_MAXMEMORY = "96mb"
"""Below the container limit, so Valkey refuses writes (noeviction) before the kernel kills it."""
IN_CLUSTER_NAMESPACE = "gpu-burst-rate-limit"
IN_CLUSTER_SERVICE = "valkey"
"""Fixed names: the server certificate must name the Service before the Service exists."""
CERT_VALIDITY_HOURS = 10 * 365 * 24
CERT_EARLY_RENEWAL_HOURS = 30 * 24
"""A `pulumi up` in the last 30 days of the server certificate's ten years issues a new one."""


class ElastiCacheRedisArgs(TypedDict):
    """Inputs of the ElastiCacheRedis."""

    vpc_id: pulumi.Input[str]
    """VPC of the cluster (the security group's)."""
    subnet_ids: pulumi.Input[list[str]]
    """Private subnets of the cluster's nodes (at least two AZs: the replica lives in another one)."""
    client_security_group_id: pulumi.Input[str]
    """The only security group allowed in on the Redis port: the EKS cluster security group every node carries."""
    node_type: NotRequired[str]
    """ElastiCache node type of the primary and its replica. Default cache.t4g.micro."""
    engine_version: NotRequired[str]
    """Valkey major.minor. Default VALKEY_ENGINE_VERSION."""
    tags: NotRequired[dict[str, str]]
    """Tags of every AWS resource it creates."""


class ElastiCacheRedis(pulumi.ComponentResource):
    """ElastiCache for Valkey: a primary and a replica in two AZs with automatic failover, TLS required in transit,
    encrypted at rest, an AUTH token from a Pulumi secret, reachable only from the cluster security group on 6379.
    Counters are disposable: no snapshots."""

    url: pulumi.Output[str]
    """host:port of the primary endpoint (follows a failover)."""
    password: pulumi.Output[str]
    """The AUTH token (secret)."""
    security_group_id: pulumi.Output[str]
    """The Redis's own security group (its one ingress rule admits `client_security_group_id`)."""

    def __init__(self, name: str, args: ElastiCacheRedisArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__(token("ElastiCacheRedis"), name, None, opts)
        deps = deps_of(opts)
        tags = {**(args.get("tags") or {}), "gpu-burst.io/component": COMPONENT}
        # AUTH tokens are 16-128 printable characters without @, " or / (ElastiCache auth docs); letters and digits.
        auth = random.RandomPassword(f"{name}-auth", length=64, special=False, opts=child(self))
        self.password = pulumi.Output.secret(auth.result)
        self.security_group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            vpc_id=args["vpc_id"],
            # EC2 accepts only a-z, A-Z, 0-9, spaces and ._-:/()#,@[]+=&;{}!$* here (no apostrophe).
            description="gpu-burst rate-limit Redis: TLS from the cluster nodes only",
            tags=tags,
            opts=child(self, deps),
        )
        self.security_group_id = self.security_group.id
        # No egress rule (the provider removes AWS's default one): Redis only answers connections.
        self.ingress = aws.vpc.SecurityGroupIngressRule(
            f"{name}-from-nodes",
            security_group_id=self.security_group.id,
            referenced_security_group_id=args["client_security_group_id"],
            ip_protocol="tcp",
            from_port=REDIS_PORT,
            to_port=REDIS_PORT,
            description="Redis (TLS) from the EKS cluster security group",
            tags=tags,
            opts=child(self, deps),
        )
        self.subnet_group = aws.elasticache.SubnetGroup(
            f"{name}-subnets",
            subnet_ids=args["subnet_ids"],
            description="gpu-burst rate-limit Redis: the cluster's private subnets",
            tags=tags,
            opts=child(self, deps),
        )
        # Auto-named replicationGroupId: at most 40 characters, so a short logical name.
        self.replication_group = aws.elasticache.ReplicationGroup(
            f"{name}-cache",
            description="gpu-burst rate-limit counters (requests and tokens per API key)",
            engine="valkey",
            engine_version=args.get("engine_version", VALKEY_ENGINE_VERSION),
            node_type=args.get("node_type", "cache.t4g.micro"),
            num_cache_clusters=2,
            automatic_failover_enabled=True,
            multi_az_enabled=True,
            port=REDIS_PORT,
            subnet_group_name=self.subnet_group.name,
            security_group_ids=[self.security_group.id],
            transit_encryption_enabled=True,
            transit_encryption_mode="required",
            auth_token=self.password,
            at_rest_encryption_enabled=True,
            snapshot_retention_limit=0,
            auto_minor_version_upgrade=True,
            apply_immediately=True,
            tags=tags,
            opts=child(self, [*deps, self.ingress], additional_secret_outputs=["authToken"]),
        )
        self.url = self.replication_group.primary_endpoint_address.apply(lambda h: f"{h}:{REDIS_PORT}")
        self.register_outputs({"url": self.url, "password": self.password,
                               "security_group_id": self.security_group_id})


class InClusterRedisArgs(TypedDict):
    """Inputs of the InClusterRedis."""

    node_selector: NotRequired[dict[str, str]]
    """Where the pod runs. Default: the system node group."""
    image: NotRequired[str]
    """Valkey image. Default VALKEY_IMAGE."""


def valkey_conf(password: str) -> str:
    """Valkey configuration: TLS only (the plain port off), a password, no persistence, bounded memory."""
    return "\n".join([
        "port 0",
        f"tls-port {REDIS_PORT}",
        "tls-cert-file /tls/tls.crt",
        "tls-key-file /tls/tls.key",
        "tls-ca-cert-file /tls/ca.crt",
        # Clients authenticate with the password; they present no certificate.
        "tls-auth-clients no",
        f"requirepass {password}",
        'save ""',
        "appendonly no",
        f"maxmemory {VALKEY_MAXMEMORY}",
        "maxmemory-policy noeviction",
        "",
    ])


class InClusterRedis(pulumi.ComponentResource):
    """One Valkey pod on the system nodes in a namespace of its own (restricted Pod Security): TLS only, with a
    certificate from a CA this component makes, a password from a Pulumi secret, no persistence (a restart forgets
    the counters), non-root with a read-only root filesystem."""

    url: pulumi.Output[str]
    """host:port of the Service; resolves once the Deployment exists."""
    password: pulumi.Output[str]
    """The password (secret)."""
    ca_pem: pulumi.Output[str]
    """The CA that signed the server certificate."""

    def __init__(self, name: str, args: InClusterRedisArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__(token("InClusterRedis"), name, None, opts)
        deps = deps_of(opts)
        lbl = labels(COMPONENT, name)
        selector = {k: lbl[k] for k in ("app.kubernetes.io/component", "app.kubernetes.io/instance")}
        ns = IN_CLUSTER_NAMESPACE
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": ns, "labels": {**lbl, "pod-security.kubernetes.io/enforce": "restricted",
                                             "pod-security.kubernetes.io/warn": "restricted"}},
            opts=child(self, deps),
        )
        secret_pw = random.RandomPassword(f"{name}-password", length=48, special=False, opts=child(self))
        self.password = pulumi.Output.secret(secret_pw.result)
        ca_pem, cert_pem, key_pem = self._certificates(name, ns)
        self.ca_pem = ca_pem
        self.tls_secret = k8s.core.v1.Secret(
            f"{name}-tls",
            metadata={"namespace": ns, "labels": lbl},
            type="kubernetes.io/tls",
            string_data={"tls.crt": cert_pem, "tls.key": pulumi.Output.secret(key_pem), "ca.crt": ca_pem},
            opts=child(self, [self.namespace], additional_secret_outputs=["data", "stringData"]),
        )
        self.config_secret = k8s.core.v1.Secret(
            f"{name}-config",
            metadata={"namespace": ns, "labels": lbl},
            type="Opaque",
            string_data={"valkey.conf": pulumi.Output.secret(self.password.apply(valkey_conf))},
            opts=child(self, [self.namespace], additional_secret_outputs=["data", "stringData"]),
        )
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-valkey",
            metadata={"namespace": ns, "labels": lbl},
            spec={
                "replicas": 1,
                # One counter store at a time: a surge pod would count apart from the old one.
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": selector},
                "template": {"metadata": {"labels": {**lbl, **selector}}, "spec": self._pod_spec(args)},
            },
            opts=child(self, [self.namespace, self.tls_secret, self.config_secret]),
        )
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata={"name": IN_CLUSTER_SERVICE, "namespace": ns, "labels": lbl},
            spec={"type": "ClusterIP", "selector": selector,
                  "ports": [{"name": "redis-tls", "port": REDIS_PORT, "targetPort": "redis-tls", "protocol": "TCP"}]},
            opts=child(self, [self.namespace]),
        )
        # An Output of both the Service and the Deployment: whatever reads the URL waits for a running server.
        self.url = pulumi.Output.all(self.service.metadata, self.deployment.metadata).apply(
            lambda v: f"{v[0]['name']}.{v[0]['namespace']}.svc.cluster.local:{REDIS_PORT}")
        self.register_outputs({"url": self.url, "password": self.password, "ca_pem": self.ca_pem})

    def _certificates(self, name: str, ns: str) -> tuple:
        """A CA of this Redis alone and the server certificate it signs for the Service's DNS names."""
        ca_key = tls.PrivateKey(f"{name}-ca-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child(self))
        ca = tls.SelfSignedCert(
            f"{name}-ca",
            private_key_pem=ca_key.private_key_pem,
            is_ca_certificate=True,
            subject={"common_name": "gpu-burst rate-limit Redis CA"},
            validity_period_hours=CERT_VALIDITY_HOURS,
            allowed_uses=["cert_signing", "crl_signing"],
            opts=child(self),
        )
        key = tls.PrivateKey(f"{name}-server-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child(self))
        svc = IN_CLUSTER_SERVICE
        csr = tls.CertRequest(
            f"{name}-server-csr",
            private_key_pem=key.private_key_pem,
            subject={"common_name": f"{svc}.{ns}.svc"},
            dns_names=[svc, f"{svc}.{ns}", f"{svc}.{ns}.svc", f"{svc}.{ns}.svc.cluster.local"],
            opts=child(self),
        )
        cert = tls.LocallySignedCert(
            f"{name}-server-cert",
            cert_request_pem=csr.cert_request_pem,
            ca_private_key_pem=ca_key.private_key_pem,
            ca_cert_pem=ca.cert_pem,
            validity_period_hours=CERT_VALIDITY_HOURS,
            early_renewal_hours=CERT_EARLY_RENEWAL_HOURS,
            allowed_uses=["digital_signature", "key_encipherment", "server_auth"],
            opts=child(self),
        )
        return ca.cert_pem, cert.cert_pem, key.private_key_pem

    def _pod_spec(self, args: InClusterRedisArgs) -> dict:
        return {
            "nodeSelector": dict(args.get("node_selector", SYSTEM_NODE_SELECTOR)),
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": VALKEY_UID, "runAsGroup": VALKEY_UID,
                                "fsGroup": VALKEY_UID, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "valkey",
                "image": args.get("image", VALKEY_IMAGE),
                # The server itself, not the image's entrypoint (which would switch users).
                "command": ["valkey-server", "/etc/valkey/valkey.conf"],
                "ports": [{"name": "redis-tls", "containerPort": REDIS_PORT, "protocol": "TCP"}],
                "readinessProbe": {"tcpSocket": {"port": "redis-tls"}, "periodSeconds": 5},
                "livenessProbe": {"tcpSocket": {"port": "redis-tls"}, "periodSeconds": 10, "failureThreshold": 6},
                "resources": {"requests": dict(VALKEY_REQUESTS), "limits": {"memory": VALKEY_MEMORY_LIMIT}},
                "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [{"name": "config", "mountPath": "/etc/valkey", "readOnly": True},
                                 {"name": "tls", "mountPath": "/tls", "readOnly": True},
                                 {"name": "data", "mountPath": "/data"}],
            }],
            "volumes": [
                {"name": "config", "secret": {"secretName": self.config_secret.metadata.apply(lambda m: m["name"])}},
                {"name": "tls", "secret": {"secretName": self.tls_secret.metadata.apply(lambda m: m["name"])}},
                {"name": "data", "emptyDir": {"sizeLimit": "64Mi"}},
            ],
        }
