"""gpu-burst: a serverless GPU cluster for LLM inference. Config is validated once, then the stack is wired."""

from stacks.config import load
from stacks.main import build

build(load())
