"""docs/library.md, the library's reference page: its component tables are generated from the code and must be
current, and it names every component and every cluster stack output a second program reads."""

import library_reference
from components import COMPONENTS
from components.added_model import SharedClusterArgs, stack_output_name


def test_component_reference_is_current():
    doc = library_reference.DOC.read_text()
    assert library_reference.BEGIN in doc and library_reference.END in doc
    assert doc == library_reference.updated(doc), (
        "docs/library.md is out of date: run `venv/bin/python tests/library_reference.py`")


def test_every_component_and_shared_output_is_documented():
    doc = library_reference.DOC.read_text()
    for component in COMPONENTS:
        assert f"### {component.__name__}\n" in doc
    table = doc.split("### Cluster stack outputs for other programs", 1)[1].split("\n## ", 1)[0]
    for field in SharedClusterArgs.__annotations__:
        assert f"`{stack_output_name(field)}`" in table, field


def test_every_arg_and_output_has_a_description():
    """The reference is only as good as the docstrings it is rendered from (defaults are stated there)."""
    import typing

    missing = []
    for component in COMPONENTS:
        args = typing.get_type_hints(component.__init__)["args"]
        for owner in (args, component):
            missing += [f"{owner.__name__}.{name}" for name, _, doc in library_reference._documented(owner) if not doc]
    assert not missing, f"without a docstring: {missing}"
