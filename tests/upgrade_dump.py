"""Evaluate one program tree under this repository's mocks and print what it would register, as JSON.

    python tests/upgrade_dump.py --program <tree> --stacks '[{"stack": "dev", "file": "<path>", "secrets": {}}]'

Run as a separate process per program tree (tests/test_upgrade.py does), so an older release's `stacks` and
`components` packages never meet the current ones in one interpreter. The program tree goes first on sys.path; the
mocks are the ones next to this file, so two releases are judged by the same simulated providers.

Output, per stack: {"resources": {urn: {type, name, custom, parent, inputs, aliases, replaceOnChanges,
replacementTrigger}}, "snapshotLookups": [the getSnapshotIds arguments]}. Aliases are resolved to URNs the way the
engine resolves the alias specs the SDK sends (name/type/parent defaults, and every alias a parent has is inherited
by its children).
"""

import argparse
import asyncio
import concurrent.futures
import json
import os
import sys
from pathlib import Path
from typing import Optional

_SECRET_SIG_KEY, _SECRET_SIG = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"


def plain(value):
    """A JSON-able copy of a wire value with secret envelopes unwrapped: making a value secret changes no state."""
    if isinstance(value, dict):
        if value.get(_SECRET_SIG_KEY) == _SECRET_SIG:
            return plain(value.get("value"))
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


_STACK_TYPE = "pulumi:pulumi:Stack"


def engine_urn(urn: str) -> str:
    """A mock URN as the engine writes it: the stack resource does not qualify its children's types (the stock mock
    monitor qualifies them), so top-level resources read `urn:pulumi:<stack>::<project>::<type>::<name>`."""
    return urn.replace(f"::{_STACK_TYPE}$", "::", 1)


def make_urn(stack: str, project: str, parent: str, type_: str, name: str) -> str:
    """The engine's URN: a child's type is qualified by its parent's type chain (`parent` already engine-style, ""
    for a top-level resource)."""
    if parent:
        type_ = f"{parent.split('::')[2]}${type_}"
    return f"urn:pulumi:{stack}::{project}::{type_}::{name}"


def inherited_alias(child_name: str, child_type: str, parent_name: str, parent_alias: str, stack: str,
                    project: str) -> str:
    """A child's URN under one alias of its parent; a name derived from the parent's follows the parent's old name
    (pulumi/runtime/resource.py inherited_child_alias; the engine does the same for alias specs)."""
    name = child_name
    if child_name.startswith(parent_name):
        name = parent_alias.rsplit("::", 1)[1] + child_name[len(parent_name):]
    parent_type = parent_alias.split("::")[2]
    return f"urn:pulumi:{stack}::{project}::{parent_type}${child_type}::{name}"


def resolve_aliases(request, parent: str, parent_aliases: list[str], stack: str, project: str) -> list[str]:
    """Every URN the engine treats as this resource's former self (`parent`: the engine-style parent URN)."""
    own = []
    for alias in request.aliases:
        if alias.WhichOneof("alias") == "urn":
            own.append(engine_urn(alias.urn))
            continue
        spec = alias.spec
        alias_parent = parent
        if spec.WhichOneof("parent") == "noParent" and spec.noParent:
            alias_parent = ""
        elif spec.WhichOneof("parent") == "parentUrn" and spec.parentUrn:
            # The SDK sends an empty parentUrn for "the current parent" (pulumi/runtime/resource.py create_alias_spec).
            alias_parent = engine_urn(spec.parentUrn)
            alias_parent = "" if alias_parent.split("::")[2] == _STACK_TYPE else alias_parent
        own.append(make_urn(spec.stack or stack, spec.project or project, alias_parent, spec.type or request.type,
                            spec.name or request.name))
    own.extend(engine_urn(u) for u in request.aliasURNs)
    result = list(own)
    if parent:
        parent_name = parent.rsplit("::", 1)[1]
        for pa in parent_aliases:
            result.append(inherited_alias(request.name, request.type, parent_name, pa, stack, project))
            for a in own:
                a_type = a.split("::")[2].split("$")[-1]
                result.append(inherited_alias(a.rsplit("::", 1)[1], a_type, parent_name, pa, stack, project))
    return sorted(set(result))


def dump(program: Path, stacks: list[dict]) -> dict:
    """{stack: what the program registers for it}, every stack evaluated on fresh mocks in this process."""
    sys.path.insert(0, str(program))
    os.chdir(program)
    import pulumi_mocks

    loop = asyncio.new_event_loop()
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=32))
    asyncio.set_event_loop(loop)
    pulumi_mocks.EVENT_LOOP = loop
    return {s["stack"]: dump_stack(Path(s["file"]), s["stack"], s.get("secrets") or {}) for s in stacks}


def dump_stack(stack_file: Path, stack: str, secrets: dict[str, str]) -> dict:
    import pulumi
    import yaml
    from google.protobuf.json_format import MessageToDict

    from pulumi_mocks import Mocks, RecordingMonitor
    from stack_helpers import evaluate

    project = "gpu-burst"
    resources: dict[str, dict] = {}

    class DumpingMonitor(RecordingMonitor):
        def RegisterResource(self, request):
            resp = super().RegisterResource(request)
            if request.type != _STACK_TYPE:
                top = not request.parent or request.parent.split("::")[2] == _STACK_TYPE
                parent = "" if top else engine_urn(request.parent)
                parent_aliases = resources.get(parent, {}).get("aliases", [])
                resources[engine_urn(resp.urn)] = {
                    "type": request.type, "name": request.name, "custom": request.custom,
                    "parent": parent, "inputs": plain(MessageToDict(request.object)),
                    "aliases": resolve_aliases(request, parent, parent_aliases, stack, project),
                    "replaceOnChanges": list(request.replaceOnChanges),
                    "replacementTrigger": (plain(MessageToDict(request.replacement_trigger))
                                           if request.HasField("replacement_trigger") else None),
                }
            return resp

    mocks = Mocks()
    monitor = DumpingMonitor(mocks)
    mocks.monitor = monitor
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False, monitor=monitor)
    raw = yaml.safe_load(stack_file.read_text())["config"]
    raw.update({f"{project}:{k}": v for k, v in secrets.items()})
    config = {k: v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}
    pulumi.runtime.set_all_config(config, secret_keys=[f"{project}:{k}" for k in secrets])

    from stacks.config import load
    from stacks.main import build

    evaluate(lambda: build(load()))
    lookups = [plain(c.args) for c in mocks.calls if c.token == "aws:ebs/getSnapshotIds:getSnapshotIds"]
    return {"resources": resources, "snapshotLookups": lookups}


def main(argv: Optional[list[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--program", type=Path, required=True, help="a program tree (Pulumi.yaml, stacks/, components/)")
    p.add_argument("--stacks", required=True,
                   help='JSON list of {"stack": name, "file": stack file, "secrets": {key: value}}; the stack name '
                        "is what URNs and the default cluster name carry")
    a = p.parse_args(argv)
    stacks = [{**s, "file": str(Path(s["file"]).resolve())} for s in json.loads(a.stacks)]
    out = dump(a.program.resolve(), stacks)
    json.dump(out, sys.stdout, sort_keys=True, default=str)


if __name__ == "__main__":
    main()
