"""End-to-end proof of a release on a real AWS account (opt-in: GPU_BURST_E2E=1 and AWS credentials).

driver.py holds the steps and their verdicts, automation.py the real stack (Pulumi Automation API), burstctl
runner and front-door tunnel, test_release.py the opt-in test, cleanup.py the workflow's always-run clean-up.
"""
