"""burstctl: the operator CLI of gpu-burst.

Commands: ``burst`` (load against the OpenAI-compatible endpoint), ``verify`` and ``timeline`` (did both scaling
loops fire, and how long each step of a scale-from-zero took), ``preflight`` (AWS checks before ``pulumi up``) and
``sweep`` (what Karpenter left behind after ``pulumi destroy``).
"""

__version__ = "0.1.0"
