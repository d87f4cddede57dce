"""The components' own constants that the config checks use, so a number both need has one source: the requests of
the system pods (capacity.py), the NLB idle limit and the hop timeouts (the gateway checks), the rules of a route and
the LoRA limits (the adapter checks).

In a checkout the components are the `components` package; an installed gpu-burst ships them as `gpu_burst`, the
parent of this package (pyproject.toml `package-dir`)."""

if __package__ == "gpu_burst.config":
    from .. import (edge_gateway, http_addon, keda, load_balancer_controller, model_route, model_service, model_store,
                   monitoring, rate_limit_redis)
else:
    from components import (edge_gateway, http_addon, keda, load_balancer_controller, model_route, model_service,
                            model_store, monitoring, rate_limit_redis)

__all__ = ["edge_gateway", "http_addon", "keda", "load_balancer_controller", "model_route", "model_service", "model_store",
           "monitoring", "rate_limit_redis"]
