"""Runbooks: the Markdown procedures in releaser/runbook_docs/ (runbooks/ in the checkout) that a person follows when a release goes wrong.

Pure apart from reading the directory it is given: list the runbooks with their titles, find one by name
(or say which exist), and pull every `invoke ...` command out of a runbook's text so a test can check each
one names a real task and real flags.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from releaser.errors import ReleaserError

INDEX = "README.md"
# The runbooks ship inside the package, so an installed `releaser runbook rollback` finds them anywhere;
# `runbooks/` at the top of the checkout is a symbolic link to this directory.
RUNBOOK_DIR = Path(__file__).resolve().parent / "runbook_docs"

_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")  # any indent: fences sit inside numbered steps
_INLINE = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)")
_PROMPT = re.compile(r"^(?:\$\s+)?(?:\S*/)?(invoke(?:\s.*)?)$")


@dataclass(frozen=True)
class Runbook:
    """One runbook file: its name (the file name without .md), its title (first heading) and path."""

    name: str
    title: str
    path: Path

    def read(self) -> str:
        """Return the runbook's Markdown text."""
        return self.path.read_text(encoding="utf-8")


def list_runbooks(directory: Path) -> list[Runbook]:
    """Return every runbook in `directory` (each *.md but the README index), sorted by name."""
    if not directory.is_dir():
        return []
    return [
        Runbook(path.stem, title_of(path.read_text(encoding="utf-8"), default=path.stem), path)
        for path in sorted(directory.glob("*.md"))
        if path.name != INDEX
    ]


def find_runbook(directory: Path, name: str) -> Runbook:
    """Return the runbook called `name` (with or without .md), or raise ReleaserError listing the known ones."""
    wanted = name.strip().removesuffix(".md")
    runbooks = list_runbooks(directory)
    for runbook in runbooks:
        if runbook.name == wanted:
            return runbook
    known = ", ".join(r.name for r in runbooks) or f"none (no runbooks in {directory})"
    raise ReleaserError(f"no runbook named {name!r}", hint=f"runbooks are: {known}")


def title_of(markdown: str, *, default: str = "") -> str:
    """Return the text of the first Markdown heading outside code blocks, or `default`."""
    fence = None
    for line in markdown.splitlines():
        fence, in_code = _fence_state(line, fence)
        if in_code:
            continue
        match = _HEADING.match(line)
        if match:
            return match.group(1).strip()
    return default


def invoke_commands(markdown: str, *, inline: bool = True) -> list[str]:
    """Return every `invoke ...` command in the text, in order: lines of fenced code blocks, and inline code.

    A `$ ` prompt or a path before `invoke` (`.venv/bin/invoke`) is dropped, lines ending in a backslash are
    joined with the next, and inline code counts only outside fenced blocks (and not at all with inline=False).
    """
    commands: list[str] = []
    fence = None
    pending = ""
    for line in markdown.splitlines():
        fence, in_code = _fence_state(line, fence)
        if in_code:
            text = pending + line.strip()
            if text.endswith("\\"):
                pending = text[:-1].rstrip() + " "
                continue
            pending = ""
            command = _as_command(text)
            if command:
                commands.append(command)
            continue
        pending = ""
        if inline and fence is None and not _FENCE.match(line):
            for match in _INLINE.finditer(line):
                command = _as_command(match.group(2).strip())
                if command:
                    commands.append(command)
    return commands


def _as_command(text: str) -> str | None:
    match = _PROMPT.match(text.strip())
    return match.group(1).strip() if match else None


def _fence_state(line: str, fence: str | None) -> tuple[str | None, bool]:
    """Track fenced code blocks: return (the open fence after this line, whether this line is code)."""
    match = _FENCE.match(line)
    if fence is None:
        if match:
            return match.group(1), False
        return None, False
    if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence) and not line.strip()[len(match.group(1)):]:
        return None, False
    return fence, True
