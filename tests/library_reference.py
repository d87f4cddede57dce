"""The component reference of docs/library.md, rendered from the code: each component's args TypedDict (name, schema
name, type, required, docstring), the TypedDicts and enums those args use, and its outputs (class annotations).

tests/test_library_doc.py fails when docs/library.md differs; rewrite it with
`venv/bin/python tests/library_reference.py`.
"""

import ast
import enum
import inspect
import re
import sys
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "library.md"
BEGIN = "<!-- BEGIN GENERATED: tests/library_reference.py -->"
END = "<!-- END GENERATED -->"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.capitalize() for w in rest)


def _parse_components() -> dict:
    # Parsed once, when this module is imported (test collection): CPython 3.11's C AST conversion keeps its
    # recursion depth in shared state, and ast.parse fails at random while other threads (earlier mock runs) use it.
    import components

    names = {c.__module__ for c in components.COMPONENTS}
    for c in components.COMPONENTS:
        names |= {getattr(sys.modules[c.__module__], n).__module__ for n in dir(sys.modules[c.__module__])
                  if inspect.isclass(getattr(sys.modules[c.__module__], n))
                  and getattr(sys.modules[c.__module__], n).__module__.startswith("components.")}
    return {n: ast.parse(inspect.getsource(sys.modules[n])) for n in names}


_TREES = _parse_components()


def _documented(cls: type) -> list[tuple[str, str, str]]:
    """(name, annotation source, docstring) of each annotated attribute of a class, in source order."""
    tree = _TREES[cls.__module__]
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls.__name__)
    out = []
    body = node.body
    for i, stmt in enumerate(body):
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            doc = ""
            nxt = body[i + 1] if i + 1 < len(body) else None
            if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
                doc = inspect.cleandoc(nxt.value.value)
            out.append((stmt.target.id, ast.unparse(stmt.annotation), doc))
    return out


def _type(annotation: str) -> tuple[str, bool]:
    """A readable type and whether the field is required."""
    required = not annotation.startswith("NotRequired[")
    if not required:
        annotation = annotation[len("NotRequired["):-1]
    return annotation.replace("pulumi.", ""), required


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _referenced(annotation: str, module) -> list[type]:
    """TypedDicts and enums named in an annotation (nested args such as SharedClusterArgs, AmiFamily)."""
    found = []
    for name in re.findall(r"\b[A-Z]\w+\b", annotation):
        obj = getattr(module, name, None)
        if inspect.isclass(obj) and (typing.is_typeddict(obj) or issubclass(obj, enum.Enum)):
            found.append(obj)
    return found


def _args_table(cls: type) -> list[str]:
    lines = ["| arg | schema name | type | required | description |", "| --- | --- | --- | --- | --- |"]
    for name, ann, doc in _documented(cls):
        typ, required = _type(ann)
        lines.append(f"| `{name}` | `{_camel(name)}` | `{typ}` | {'yes' if required else 'no'} | {_cell(doc)} |")
    return lines


def _enum_table(cls: type) -> list[str]:
    return [f"`{cls.__name__}` values: " + ", ".join(f"`{m.value}`" for m in cls), ""]


def _args_class(component: type) -> type:
    hints = typing.get_type_hints(component.__init__)
    return hints["args"]


def render() -> str:
    import components

    out = []
    for component in components.COMPONENTS:
        module = sys.modules[component.__module__]
        args = _args_class(component)
        summary = inspect.cleandoc(component.__doc__ or "").split("\n\n")[0]
        out += [f"### {component.__name__}", "",
                f"`gpu-burst:index:{component.__name__}` · `{component.__module__.replace('components', 'gpu_burst')}`",
                "", _cell(summary), "", f"**Args** (`{args.__name__}`):", ""]
        out += _args_table(args)
        out.append("")
        seen: list[type] = []
        queue = [t for _, ann, _ in _documented(args) for t in _referenced(ann, module)]
        while queue:
            t = queue.pop(0)
            if t in seen:
                continue
            seen.append(t)
            if typing.is_typeddict(t):
                out += [f"`{t.__name__}`:", ""] + _args_table(t) + [""]
                queue += [r for _, ann, _ in _documented(t) for r in _referenced(ann, sys.modules[t.__module__])]
            else:
                out += _enum_table(t)
        outputs = [(n, a, d) for n, a, d in _documented(component) if a.startswith(("pulumi.Output", "Output"))]
        out += ["**Outputs**:", "", "| output | type | description |", "| --- | --- | --- |"]
        out += [f"| `{n}` | `{_type(a)[0]}` | {_cell(d)} |" for n, a, d in outputs]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def updated(doc: str) -> str:
    """docs/library.md with the generated part replaced by `render()`."""
    head, _, rest = doc.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n\n{render()}\n{END}{tail}"


if __name__ == "__main__":
    DOC.write_text(updated(DOC.read_text()))
    print(f"wrote {DOC.relative_to(ROOT)}")
