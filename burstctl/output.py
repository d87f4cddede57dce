"""Shared output conventions: exit codes, pass/fail checks, JSON and rich rendering.

Every command prints exactly one JSON document to stdout with ``--json`` (humans get rich tables instead) and
exits with one of three codes, so scripts can branch on the outcome without parsing text.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Optional

from rich.console import Console
from rich.table import Table

EXIT_OK = 0
EXIT_FAILED = 1
"""A check failed (verify/preflight), leftovers were found (sweep dry run) or the run missed its success target."""
EXIT_USAGE = 2
"""Bad flags, unreadable or malformed input files, unusable configuration; the same code click uses for usage errors."""

Status = Literal["pass", "fail", "warn", "skip"]

_STYLE = {"pass": "green", "fail": "bold red", "warn": "yellow", "skip": "dim"}


class BadInput(Exception):
    """Input the command cannot work with. The message names the flag (or file) and what is allowed; exit 2."""


class CheckError(Exception):
    """The command could not complete its checks (cluster or AWS unreachable, access denied); exit 1."""


@dataclass
class Check:
    """One line of a pass/fail report. ``cause`` carries the likely reason and next step when it did not pass."""

    name: str
    status: Status
    detail: str
    cause: str = ""
    data: dict[str, Any] = field(default_factory=dict)


def _width(stream: object) -> Optional[int]:
    # Terminals report their width; pipes and files (CI logs, captured output) get a fixed, readable one.
    return None if getattr(stream, "isatty", lambda: False)() else 120


def stdout() -> Console:
    # Built per call: CliRunner swaps sys.stdout between invocations, a module-level Console would keep the old one.
    return Console(file=sys.stdout, width=_width(sys.stdout), soft_wrap=False)


def stderr() -> Console:
    return Console(file=sys.stderr, width=_width(sys.stderr), soft_wrap=False)


def print_json(data: Any) -> None:
    """The one machine-readable document a command prints with ``--json``."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def print_error(message: str, code: int, as_json: bool) -> None:
    """An error as one line on stderr and, with ``--json``, as the one document on stdout."""
    from rich.text import Text

    stderr().print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
    if as_json:
        print_json({"error": message, "exit_code": code})


def check_writable(path: Path, flag: str) -> Path:
    """Raise BadInput unless ``path`` can be created or overwritten as a regular file, without leaving anything
    behind. Opening it is the only reliable test (permission bits do not bind root, read-only mounts do)."""
    if path.is_dir():
        raise BadInput(f"{flag}: {path} is a directory; give a file name")
    parent = path.parent
    if not parent.is_dir():
        raise BadInput(f"{flag}: directory {parent} does not exist")
    existed = path.exists()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.close(fd)
    except OSError as e:
        raise BadInput(f"{flag}: cannot write {path}: {e.strerror}") from None
    if not existed:
        path.unlink(missing_ok=True)
    return path


def checks_ok(checks: Iterable[Check]) -> bool:
    return all(c.status != "fail" for c in checks)


def checks_json(checks: list[Check], **extra: Any) -> dict[str, Any]:
    return {"ok": checks_ok(checks), **extra, "checks": [asdict(c) for c in checks]}


def checks_table(checks: list[Check], title: str) -> Table:
    """Pass/fail table; the cause column only appears when something needs attention."""
    show_cause = any(c.cause and c.status != "pass" for c in checks)
    table = Table(title=title, title_justify="left", show_lines=show_cause)
    table.add_column("check", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("detail")
    if show_cause:
        table.add_column("likely cause / next step")
    first_with: dict[str, str] = {}
    for c in checks:
        row = [c.name, f"[{_STYLE[c.status]}]{c.status.upper()}[/]", c.detail]
        if show_cause:
            cause = c.cause if c.status != "pass" else ""
            # One root cause often fails several checks; spell it out once and point back to it.
            if cause and cause in first_with:
                cause = f"same as '{first_with[cause]}'"
            elif cause:
                first_with[cause] = c.name
            row.append(cause)
        table.add_row(*row)
    return table


def print_checks(checks: list[Check], title: str, as_json: bool, **extra: Any) -> int:
    """Render a check list and return the exit code it implies."""
    if as_json:
        print_json(checks_json(checks, **extra))
    else:
        con = stdout()
        con.print(checks_table(checks, title))
        failed = [c for c in checks if c.status == "fail"]
        con.print(f"[bold red]{len(failed)} check(s) failed[/]" if failed else "[green]all checks passed[/]")
    return EXIT_OK if checks_ok(checks) else EXIT_FAILED


def fmt_seconds(value: float | None) -> str:
    """Human duration: ms below one second, then s, then m+s."""
    if value is None:
        return "-"
    if abs(value) < 1:
        return f"{value * 1000:.0f} ms"
    if abs(value) < 120:
        return f"{value:.2f} s"
    minutes, seconds = divmod(value, 60)
    return f"{int(minutes)}m{seconds:04.1f}s"
