"""burstctl: the operator CLI of gpu-burst.

Commands: ``burst`` (load against the OpenAI-compatible endpoint), ``verify`` and ``timeline`` (did both scaling
loops fire, and how long each step of a scale-from-zero took), ``preflight`` (AWS checks before ``pulumi up``) and
``sweep`` (what Karpenter left behind after ``pulumi destroy``).
"""

__version__ = "0.1.0"

API_KEY_ENV = "GPU_BURST_API_KEY"
"""The one name of the API key variable across the stack's examples, the docs and burstctl."""
API_KEY_FIX = (f"export {API_KEY_ENV}=$(pulumi stack output apiKeys --show-secrets --json | jq -r 'to_entries[0].value')"
               " (or pass --api-key)")
"""How to get a valid key: the stack's ``apiKeys`` output is a secret map of named keys."""
