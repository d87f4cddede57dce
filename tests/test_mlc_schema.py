"""The components as a multi-language package: Pulumi's own schema analyzer must express every component's args.

`pulumi package add <repo>/provider` runs provider/__main__.py, which hands components.COMPONENTS to
`component_provider_host`; that builds its schema with `pulumi.provider.experimental.analyzer.Analyzer`. An arg it
cannot express (Union, Literal, a bare `dict`, a string forward reference, a non-string map key) fails here, offline,
instead of at a consumer's `pulumi package add`.
"""

import ast
import importlib
import inspect
import json
import pkgutil
import re
import tomllib
from pathlib import Path

import pulumi
import pytest
import yaml
from pulumi.provider.experimental.analyzer import Analyzer
from pulumi.provider.experimental.component import ComponentProvider

import components

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "gpu-burst"


def _all_component_classes() -> set:
    found = set()
    for mod_info in pkgutil.iter_modules(components.__path__):
        mod = importlib.import_module(f"components.{mod_info.name}")
        for obj in vars(mod).values():
            if (inspect.isclass(obj) and issubclass(obj, pulumi.ComponentResource)
                    and obj.__module__ == mod.__name__):
                found.add(obj)
    return found


def test_every_component_is_re_exported_and_hosted():
    missing = {c.__name__ for c in _all_component_classes()} - {c.__name__ for c in components.COMPONENTS}
    assert not missing, f"ComponentResource classes not in components.COMPONENTS / __init__: {sorted(missing)}"
    for c in components.COMPONENTS:
        assert getattr(components, c.__name__) is c
        assert c.__name__ in components.__all__


@pytest.mark.parametrize("component", components.COMPONENTS, ids=lambda c: c.__name__)
def test_schema_analyzer_expresses_args_and_outputs(component):
    try:
        result = Analyzer(PACKAGE).analyze([component])
    except Exception as e:  # noqa: BLE001 - the analyzer raises plain exceptions (and crashes on Literal/str refs)
        pytest.fail(f"{component.__name__}: the MLC schema analyzer cannot express it: {type(e).__name__}: {e}")
    definition = result["component_definitions"][component.__name__]
    assert definition.inputs, f"{component.__name__}: no inputs inferred from its `args` TypedDict"


@pytest.mark.parametrize("component", components.COMPONENTS, ids=lambda c: c.__name__)
def test_type_token_is_stable(component):
    """The class registers `gpu-burst:index:<ClassName>`: the one module the Python MLC host accepts."""
    src = inspect.getsource(component.__init__)
    calls = re.findall(r'super\(\)\.__init__\(\s*token\("([^"]+)"\)', src)
    assert calls == [component.__name__], f"{component.__name__} must call super().__init__(token({component.__name__!r}), ...)"
    from components._common import token

    assert token(component.__name__) == f"{PACKAGE}:index:{component.__name__}"


def test_whole_package_schema():
    """What `pulumi package add` sees: one schema, every resource under gpu-burst:index, names unique."""
    provider = ComponentProvider(components.COMPONENTS, PACKAGE, version=components.__version__)
    schema = json.loads(provider.schema)
    assert schema["name"] == PACKAGE and schema["version"] == components.__version__
    assert set(schema["resources"]) == {f"{PACKAGE}:index:{c.__name__}" for c in components.COMPONENTS}
    assert all(t.startswith(f"{PACKAGE}:index:") for t in schema.get("types", {}))


def test_plugin_manifest_and_entry_point():
    manifest = yaml.safe_load((ROOT / "provider" / "PulumiPlugin.yaml").read_text())
    assert manifest["runtime"] == "python"
    # The entry point calls component_provider_host with the re-exported list, the package name and the version,
    # behind a __main__ guard (so importing it, e.g. from a test, never starts a gRPC server).
    tree = ast.parse((ROOT / "provider" / "__main__.py").read_text())
    src = ast.unparse(tree)
    assert "component_provider_host(components.COMPONENTS, PACKAGE, version=components.__version__)" in src
    assert "PACKAGE = 'gpu-burst'" in src
    assert any(isinstance(n, ast.If) and "__main__" in ast.unparse(n.test) for n in tree.body)


def test_versions_agree():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == components.__version__


def test_plugin_requirements_match_the_program_pins():
    def pins(path):
        return {l.split("==")[0].lower(): l.split("==")[1] for l in path.read_text().splitlines()
                if "==" in l and not l.lstrip().startswith("#")}

    root, plugin = pins(ROOT / "requirements.txt"), pins(ROOT / "provider" / "requirements.txt")
    assert plugin and all(root.get(k) == v for k, v in plugin.items()), (plugin, root)
    # and every distribution the components import at runtime is in the plugin's requirements
    imported = set()
    for f in (ROOT / "components").glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    dist = {"pulumi": "pulumi", "pulumi_aws": "pulumi-aws", "pulumi_eks": "pulumi-eks",
            "pulumi_kubernetes": "pulumi-kubernetes", "pulumi_random": "pulumi-random", "pulumi_tls": "pulumi-tls",
            "grafana_foundation_sdk": "grafana-foundation-sdk"}
    for mod in imported & set(dist):
        assert dist[mod] in plugin, f"provider/requirements.txt lacks {dist[mod]} (imported by components/)"
    third_party = {m for m in imported if m not in dist and m not in ("typing_extensions",)} - set(
        __import__("sys").stdlib_module_names)
    assert not third_party, f"components import undeclared distributions: {sorted(third_party)}"
