"""The gpu-burst policy pack: `pulumi preview --policy-pack policy` (CI: pulumi/actions `policyPacks: policy`).

Only constructs the PolicyPack (that starts the analyzer server and blocks); the policies live in policies.py.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from policies import POLICIES  # noqa: E402

PolicyPack(
    name="gpu-burst-guardrails",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=POLICIES,
)
