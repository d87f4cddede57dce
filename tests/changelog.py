"""CHANGELOG.md as data: releases, the commit each was cut from, and what an upgrade to it asks for.

The format (described at the top of CHANGELOG.md and in docs/lifecycle.md "Releasing"):

    ## 0.2.0 (unreleased)          or   ## 0.1.0 (2026-12-02)
    Commit: pending                or   Commit: <40 hex digits>
    ### Upgrading
    ...prose...
    #### Stack-file changes
    - `gpu-burst:cluster.someKey`: `<JSON value>` — why the previous release's stack files need it
    #### Migrations
    - `<resource type>::<logical name>` replaced|deleted: what the operator does

A release is *recorded* once its Commit line names a sha; the newest recorded release is the one an upgrade starts
from, and every newer section (pending or dated) is what the upgrade brings.
"""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

HEADING = re.compile(r"^## (?P<version>\d+\.\d+\.\d+) \((?P<when>unreleased|\d{4}-\d{2}-\d{2})\)\s*$")
COMMIT = re.compile(r"^Commit: (?P<commit>[0-9a-f]{40}|pending)\s*$")
MIGRATION = re.compile(r"^- `(?P<key>[^`\s]+::[^`\s]+)` (?P<verb>replaced|deleted)\b")
STACK_FILE_CHANGE = re.compile(r"^- `(?P<key>[\w-]+:[\w.-]+)`: `(?P<value>[^`]+)`")


class ChangelogError(ValueError):
    pass


@dataclass
class Release:
    version: str
    date: Optional[str]
    """YYYY-MM-DD, or None while unreleased."""
    commit: Optional[str]
    """The full sha once recorded; None while pending."""
    upgrading: str = ""
    migrations: dict[str, str] = field(default_factory=dict)
    """`<type>::<logical name>` -> replaced | deleted."""
    stack_file_changes: dict[str, object] = field(default_factory=dict)
    """`namespace:key.path` -> the value the previous release's stack files must gain."""

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.version.split("."))


def _subsection(lines: list[str], title: str) -> list[str]:
    out, inside = [], False
    for line in lines:
        if line.startswith("#"):
            inside = line.strip() == f"#### {title}"
            continue
        if inside:
            out.append(line)
    return out


def parse(text: str) -> list[Release]:
    """Releases, newest first, with the format checked: a clear error names the section and what is wrong."""
    sections: list[tuple[re.Match, list[str]]] = []
    for line in text.splitlines():
        m = HEADING.match(line)
        if m:
            sections.append((m, []))
        elif line.startswith("## "):
            raise ChangelogError(
                f"CHANGELOG.md: heading {line!r} is not '## <major.minor.patch> (<YYYY-MM-DD>|unreleased)'")
        elif sections:
            sections[-1][1].append(line)
    releases = []
    for m, body in sections:
        where = f"CHANGELOG.md {m['version']}"
        commits = [c for c in (COMMIT.match(l) for l in body) if c]
        if len(commits) != 1:
            raise ChangelogError(
                f"{where}: needs exactly one 'Commit: <40-hex sha>|pending' line, found {len(commits)}")
        commit = None if commits[0]["commit"] == "pending" else commits[0]["commit"]
        if "### Upgrading" not in (l.strip() for l in body):
            raise ChangelogError(f"{where}: has no '### Upgrading' section")
        rel = Release(m["version"], None if m["when"] == "unreleased" else m["when"], commit, "\n".join(body))
        if commit and not rel.date:
            raise ChangelogError(f"{where}: names a commit but is still '(unreleased)'; give it its release date")
        for line in _subsection(body, "Migrations"):
            mm = MIGRATION.match(line)
            if mm:
                rel.migrations[mm["key"]] = mm["verb"]
            elif line.startswith("- "):
                raise ChangelogError(
                    f"{where}: migration {line!r} is not '- `<type>::<logical name>` replaced|deleted: ...'")
        for line in _subsection(body, "Stack-file changes"):
            sm = STACK_FILE_CHANGE.match(line)
            if sm:
                try:
                    rel.stack_file_changes[sm["key"]] = json.loads(sm["value"])
                except json.JSONDecodeError as e:
                    raise ChangelogError(
                        f"{where}: stack-file change {sm['key']}: value is not JSON ({e})") from None
            elif line.startswith("- "):
                raise ChangelogError(
                    f"{where}: stack-file change {line!r} is not '- `<namespace:key.path>`: `<JSON>` ...'")
        releases.append(rel)
    if not releases:
        raise ChangelogError("CHANGELOG.md has no release section")
    for newer, older in zip(releases, releases[1:]):
        if newer.version_tuple <= older.version_tuple:
            raise ChangelogError(f"CHANGELOG.md: {newer.version} is listed above {older.version}; newest first")
        if newer.commit and not older.commit:
            raise ChangelogError(f"CHANGELOG.md: {newer.version} is recorded but the older {older.version} is not")
    return releases


def load(path: Path) -> list[Release]:
    return parse(path.read_text())


def upgrade_from(releases: list[Release]) -> tuple[Release, list[Release]]:
    """(the newest recorded release, the sections newer than it: what upgrading from it to this tree brings)."""
    for i, rel in enumerate(releases):
        if rel.commit:
            return rel, releases[:i]
    raise ChangelogError("CHANGELOG.md records no release commit yet")


def apply_stack_file_changes(config: dict, changes: dict[str, object]) -> dict:
    """A copy of a stack file's `config` mapping with each change set where the key path is absent (a user who
    already set it keeps their value)."""
    out = json.loads(json.dumps(config))
    for key, value in changes.items():
        top, _, rest = key.partition(".")
        if not rest:
            out.setdefault(top, value)
            continue
        node = out.setdefault(top, {})
        parts = rest.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node.setdefault(parts[-1], value)
    return out
