"""The scale-from-zero path's sharp edges, as the program renders them under mocks."""

import pytest

from stack_helpers import evaluate_stack
from test_workload_support import DEV_MODELS, named


@pytest.mark.parametrize("target", [8, 64])
def test_concurrency_target_change_changes_the_scaled_object(mocks, target):
    """KEDA re-reads an external scaler's metric spec (the HPA target) only when the ScaledObject's generation
    changes (kedacore/http-add-on#1656): the route's target must also be in the ScaledObject's spec."""
    model = {**DEV_MODELS[0], "targetConcurrency": target}
    evaluate_stack("dev", overrides={"models": [model]})
    route = named(mocks, "InterceptorRoute", model["servedName"])["spec"]
    so = named(mocks, "ScaledObject", model["servedName"])["spec"]
    (push,) = [t for t in so["triggers"] if t["type"] == "external-push"]
    assert route["scalingMetric"]["concurrency"]["targetValue"] == target
    assert push["metadata"]["concurrencyTargetValue"] == str(target)
