"""The names burstctl looks a model up by are the ones the stack renders.

burstctl keeps its own copies of the label keys and defaults (importing the stack's modules would pull Pulumi into
every CLI start), so this test is what keeps the two from drifting: a renamed label, namespace default or selector on
the stack side makes `verify`/`timeline` find nothing on a real cluster while their fixture tests still pass."""

import pytest

from test_workload_support import named, run_workload


def test_label_keys_are_the_stacks():
    from burstctl import k8s
    from components import _common

    assert k8s.TRAFFIC_CLASS_LABEL == _common.TRAFFIC_CLASS_LABEL
    assert k8s.GPU_PRESENT_LABEL == _common.GPU_PRESENT_LABEL
    assert k8s.NODEPOOL_LABEL == _common.NODEPOOL_LABEL


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_default_target_finds_what_the_stack_renders(mocks, stack):
    from burstctl.cli import NS_OPT, _target
    from burstctl.k8s import GPU_PRESENT_LABEL, TRAFFIC_CLASS_LABEL

    _, _, cfg = run_workload(stack)
    assert cfg.models
    for m in cfg.models:
        t = _target(m.served_name, NS_OPT.default, None, None, None)
        dep = named(mocks, "Deployment", m.served_name)
        so = named(mocks, "ScaledObject", m.served_name)
        assert t.namespace == cfg.gateway.namespace == dep["metadata"]["namespace"] == so["metadata"]["namespace"]
        assert t.scaled_object == so["metadata"]["name"]
        pod = dep["spec"]["template"]
        assert t.selector.items() <= pod["metadata"]["labels"].items()
        assert t.selector.items() <= dep["spec"]["selector"]["matchLabels"].items()
        node_selector = pod["spec"]["nodeSelector"]
        assert node_selector[GPU_PRESENT_LABEL] == "true"
        # verify/timeline read the class the pods select under this key to find the pools that carry it.
        assert node_selector[TRAFFIC_CLASS_LABEL]


def test_readme_names_every_command_the_cli_has():
    # README's command list and table are how an operator finds a command; a command added to the CLI but not to
    # them is invisible there.
    import re
    from pathlib import Path

    import typer.main

    from burstctl.cli import app

    commands = set(typer.main.get_command(app).commands)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    listed = re.search(r"`python -m burstctl --help` lists the operator commands \(([^)]*)\)", readme)
    assert listed, "README lost its `python -m burstctl --help` sentence"
    assert set(re.split(r",\s*", listed[1])) == commands
    table = readme.split("## Operator CLI", 1)[1].split("\n## ", 1)[0]
    assert {c for c in commands if not re.search(rf"^\| `{c}[ `]", table, re.M)} == set()
