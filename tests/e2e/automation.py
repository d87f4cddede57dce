"""The real parts of an end-to-end run: the stack through the Pulumi Automation API, burstctl as subprocesses, the
front door through `kubectl port-forward` (the dev gateway is an internal NLB), the wall clock."""

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

from .driver import ROOT, Completed, cluster_name_from_state, front_door_service

BURSTCTL_TIMEOUT_S = 2400.0
"""Above burst's own --deadline (1800 s by default): a hung subprocess fails its step instead of the run."""
FORWARD_WAIT_S = 60.0


def has_aws_credentials() -> bool:
    """Whatever botocore would sign with: environment, profile, SSO, web identity, container or instance role."""
    try:
        import boto3

        return boto3.Session().get_credentials() is not None
    except Exception:
        return False


class AutomationStack:
    """The throwaway stack, in the project's own directory (so `Pulumi.<name>.yaml` lands next to the others until
    `pulumi stack rm` deletes it)."""

    def __init__(self, name: str, env: Mapping[str, str], log: Callable[[str], None] = print,
                 work_dir: Path = ROOT) -> None:
        self.name, self.log, self.work_dir = name, log, work_dir
        self.secrets_provider = env.get("GPU_BURST_E2E_SECRETS_PROVIDER") or None
        self._stack: Any = None

    def _opts(self) -> Any:
        from pulumi import automation as auto

        return auto.LocalWorkspaceOptions(secrets_provider=self.secrets_provider)

    def _existing(self) -> Any:
        from pulumi import automation as auto

        if self._stack is None:
            try:
                self._stack = auto.select_stack(stack_name=self.name, work_dir=str(self.work_dir), opts=self._opts())
            except auto.StackNotFoundError:
                return None
        return self._stack

    def _kw(self) -> dict[str, Any]:
        # Plain lines in CI logs; secrets stay masked in the summary.
        return {"on_output": self.log, "color": "never", "show_secrets": False, "suppress_progress": True}

    def create(self, config: Mapping[str, Any]) -> None:
        from pulumi import automation as auto

        self._stack = auto.create_or_select_stack(stack_name=self.name, work_dir=str(self.work_dir),
                                                  opts=self._opts())
        # Structured values as JSON strings: the program reads every value through json.loads (stacks.config).
        self._stack.set_all_config({k: auto.ConfigValue(value=v if isinstance(v, str) else json.dumps(v))
                                    for k, v in config.items()})

    def up(self) -> dict[str, Any]:
        result = self._stack.up(**self._kw())
        return {k: v.value for k, v in result.outputs.items()}

    def preview(self) -> dict[str, int]:
        result = self._stack.preview(on_output=self.log, color="never", diff=True, suppress_progress=True)
        return {str(getattr(op, "value", op)): int(n) for op, n in (result.change_summary or {}).items()}

    def cluster_name(self) -> Optional[str]:
        stack = self._existing()
        return cluster_name_from_state(stack.export_stack().deployment) if stack is not None else None

    def destroy(self, past_errors: bool = False) -> None:
        stack = self._existing()
        if stack is None:
            self.log(f"stack {self.name} does not exist: nothing to destroy")
            return
        stack.destroy(**self._kw(), continue_on_error=True if past_errors else None)

    def remove(self) -> None:
        stack = self._existing()
        if stack is not None:
            stack.workspace.remove_stack(self.name)
            self._stack = None

    def exists(self) -> bool:
        return self._existing() is not None

    def release_stale_lock(self) -> None:
        """The process that held the lock was killed (one run at a time: nothing else can hold it)."""
        from pulumi import automation as auto

        try:
            self._existing().cancel()
        except auto.CommandError as e:  # no update in progress: nothing to release
            self.log(f"no lock to release ({str(e).strip().splitlines()[-1] if str(e).strip() else 'none'})")


def run_burstctl(args: Sequence[str], env: Mapping[str, str]) -> Completed:
    r = subprocess.run([sys.executable, "-m", "burstctl", *args], cwd=ROOT, env={**os.environ, **env},
                       capture_output=True, text=True, timeout=BURSTCTL_TIMEOUT_S)
    return Completed(r.returncode, r.stdout, r.stderr)


class PortForward:
    """`kubectl port-forward` to the Service behind the endpoint's load balancer (internal by default in dev), or
    the endpoint itself with GPU_BURST_E2E_REACH=endpoint (a runner inside the VPC, or a public gateway)."""

    def __init__(self, mode: str, log: Callable[[str], None] = print, kubectl: str = "kubectl") -> None:
        self.mode, self.log, self.kubectl = mode, log, kubectl
        self.proc: Optional[subprocess.Popen] = None

    def open(self, outputs: Mapping[str, Any], kubeconfig: Path) -> str:
        endpoint = str(outputs["endpoint"])
        if self.mode == "endpoint":
            return endpoint
        got = subprocess.run([self.kubectl, "--kubeconfig", str(kubeconfig), "get", "services", "--all-namespaces",
                              "-o", "json"], capture_output=True, text=True, timeout=120, check=True)
        namespace, name, port = front_door_service(json.loads(got.stdout), endpoint)
        self.proc = subprocess.Popen([self.kubectl, "--kubeconfig", str(kubeconfig), "-n", namespace, "port-forward",
                                      f"svc/{name}", f":{port}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        lines: "queue.Queue[str]" = queue.Queue()
        # Drained for as long as kubectl runs: it prints a line per connection.
        threading.Thread(target=lambda: [lines.put(line) for line in self.proc.stdout], daemon=True).start()
        deadline = time.monotonic() + FORWARD_WAIT_S
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1.0)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            self.log(f"kubectl: {line.rstrip()}")
            if m := re.search(r"Forwarding from 127\.0\.0\.1:(\d+) ->", line):
                path = endpoint.split("://", 1)[-1].partition("/")[2]
                return f"http://127.0.0.1:{m.group(1)}/{path}"
        self.close()
        raise RuntimeError(f"kubectl port-forward to {namespace}/{name}:{port} did not start in "
                           f"{FORWARD_WAIT_S:.0f} s")

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None


class WallClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
