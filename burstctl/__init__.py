"""burstctl: the operator CLI of gpu-burst.

Commands: ``burst`` (load against the OpenAI-compatible endpoint), ``verify`` and ``timeline`` (did both scaling
loops fire, and how long each step of a scale-from-zero took), ``preflight`` (AWS checks before ``pulumi up``) and
``sweep`` (what Karpenter left behind after ``pulumi destroy``).
"""

__version__ = "0.1.0"

API_KEY_ENV = "GPU_BURST_API_KEY"
"""The one name of the API key variable across the stack's examples, the docs and burstctl."""
API_KEY_FIX = (f"export {API_KEY_ENV}=$(pulumi stack output apiKey --show-secrets) (the first key; "
               "`pulumi stack output apiKeys --show-secrets` has every named key), or pass --api-key")
"""How to get a valid key, as the README and the stack's examples give it: ``apiKey`` is the first key, ``apiKeys``
the secret map of named keys."""
