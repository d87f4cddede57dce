"""gpu-burst components: every ComponentResource of this library, re-exported from one module.

Installed as the ``gpu_burst`` package (``pip install .`` / ``pip install git+<repo>``); inside this repository the
same folder is importable as ``components``. Imports stay relative so both names work. Type tokens are stable:
``gpu-burst:index:<ClassName>`` (also what the multi-language host in ``provider/`` serves).
"""

from .added_model import AddedModel, AddedModelArgs, SharedClusterArgs, shared_cluster
from .alerts import Alerts, AlertsArgs
from .cluster import EksAddonVersions, EksCluster, EksClusterArgs, SystemNodeGroupArgs, SystemNodeOs
from .dashboards import Dashboards, DashboardsArgs
from .edge_gateway import EdgeGateway, EdgeGatewayArgs, RateLimitRedisArgs
from .global_dns import GlobalDnsHealthCheckArgs, GlobalDnsRecord, GlobalDnsRecordArgs
from .gpu_node_pool import AmiFamily, GpuNodePool, GpuNodePoolArgs, GpuPoolArgs
from .http_addon import KedaHttpAddon, KedaHttpAddonArgs
from .image_cache import ImageCache, ImageCacheArgs
from .karpenter import Karpenter, KarpenterArgs, KarpenterInterruptionQueue, KarpenterInterruptionQueueArgs
from .keda import Keda, KedaArgs
from .load_balancer_controller import LoadBalancerController, LoadBalancerControllerArgs
from .model_route import ModelRoute, ModelRouteArgs
from .model_service import ModelService, ModelServiceArgs, WeightsSourceArgs
from .model_store import ModelStore, ModelStoreArgs, ModelWeights, ModelWeightsArgs
from .monitoring import Monitoring, MonitoringArgs
from .network import NatMode, Network, NetworkArgs
from .nvidia_device_plugin import NvidiaDevicePlugin, NvidiaDevicePluginArgs
from .rate_limit_redis import ElastiCacheRedis, ElastiCacheRedisArgs, InClusterRedis, InClusterRedisArgs
from .usage import ModelPriceArgs, UsageRules, UsageRulesArgs

__version__ = "0.1.0"

#: Every ComponentResource class, in dependency order (what the multi-language host serves).
COMPONENTS = [
    Network,
    EksCluster,
    Karpenter,
    KarpenterInterruptionQueue,
    GpuNodePool,
    NvidiaDevicePlugin,
    Keda,
    KedaHttpAddon,
    Monitoring,
    ImageCache,
    ModelStore,
    ModelWeights,
    ModelService,
    LoadBalancerController,
    ElastiCacheRedis,
    InClusterRedis,
    EdgeGateway,
    ModelRoute,
    AddedModel,
    GlobalDnsRecord,
    Dashboards,
    Alerts,
    UsageRules,
]

__all__ = [
    "COMPONENTS",
    "AddedModel", "AddedModelArgs", "SharedClusterArgs", "shared_cluster",
    "Alerts", "AlertsArgs",
    "AmiFamily",
    "Dashboards", "DashboardsArgs",
    "EksAddonVersions", "EksCluster", "EksClusterArgs", "SystemNodeGroupArgs", "SystemNodeOs",
    "EdgeGateway", "EdgeGatewayArgs", "RateLimitRedisArgs",
    "ElastiCacheRedis", "ElastiCacheRedisArgs", "InClusterRedis", "InClusterRedisArgs",
    "GlobalDnsHealthCheckArgs", "GlobalDnsRecord", "GlobalDnsRecordArgs",
    "GpuNodePool", "GpuNodePoolArgs", "GpuPoolArgs",
    "Karpenter", "KarpenterArgs", "KarpenterInterruptionQueue", "KarpenterInterruptionQueueArgs",
    "Keda", "KedaArgs",
    "KedaHttpAddon", "KedaHttpAddonArgs",
    "LoadBalancerController", "LoadBalancerControllerArgs",
    "ModelRoute", "ModelRouteArgs",
    "ModelService", "ModelServiceArgs", "WeightsSourceArgs",
    "ImageCache", "ImageCacheArgs",
    "ModelStore", "ModelStoreArgs", "ModelWeights", "ModelWeightsArgs",
    "Monitoring", "MonitoringArgs",
    "NatMode", "Network", "NetworkArgs",
    "NvidiaDevicePlugin", "NvidiaDevicePluginArgs",
    "UsageRules", "UsageRulesArgs", "ModelPriceArgs",
]
