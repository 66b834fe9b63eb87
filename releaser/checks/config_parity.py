"""config-parity: the staged release's configuration equals live's, apart from keys declared slot-specific.

In 2014 a configuration problem showed only on the live servers. Comparing the staged release's files with
live's before release day turns that surprise into a diff, shown in the detail.
"""

from __future__ import annotations

import difflib
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath

from releaser.checks import CheckResult, Limits, ReleaseView, Unreadable, not_checked

NAME = "config-parity"
CONFIG = True  # the facts' round trip reads [config_parity] files from the staged release and from live
SHOWN = 3


@dataclass(frozen=True)
class ConfigPair:
    """One configuration file's text in the staged and the live release (None: the file is not there)."""

    file: str
    staged: str | None
    live: str | None


@dataclass(frozen=True)
class ParityFacts:
    """The live release id on one server and each configured file in both releases."""

    live: str | None
    pairs: tuple[ConfigPair, ...]


def gather(fleet, view: ReleaseView, limits: Limits) -> dict[str, object]:
    """Each configured file in the staged release and in live on every server, read with the server's facts."""
    files = limits.environment.config_parity.files
    found: dict[str, object] = {}
    for name in fleet.hosts:
        server = view.servers.get(name)
        if server is None or server.error:
            found[name] = Unreadable(server.error if server else "not read")
        elif not server.release:
            found[name] = Unreadable("nothing is staged")
        elif server.facts is None or len(server.facts.config) != 2 * len(files):
            found[name] = Unreadable("cannot read its configuration files")
        else:
            staged, live = server.facts.config[:len(files)], server.facts.config[len(files):]
            found[name] = ParityFacts(server.live, tuple(ConfigPair(f, s, l) for f, s, l in zip(files, staged, live)))
    return found


def judge(facts: Mapping[str, object], limits: Limits, now: datetime) -> list[CheckResult]:
    """FAIL where a configuration file differs from live (outside slot-specific keys) or is missing from one side."""
    ignored = tuple(limits.environment.config_parity.slot_specific)
    results = []
    for server, fact in facts.items():
        if isinstance(fact, Unreadable):
            results.append(not_checked(NAME, server, fact))
            continue
        if fact.live is None:
            results.append(CheckResult(NAME, server, "WARN", "no live release to compare the configuration with"))
            continue
        results.append(CheckResult(NAME, server, *judge_files(fact.pairs, ignored)))
    return results


def judge_files(pairs: tuple[ConfigPair, ...], ignored: tuple[str, ...]) -> tuple[str, str]:
    """Return (status, detail) for a server's configuration files."""
    problems, notes, same = [], [], []
    for pair in pairs:
        if pair.staged is None and pair.live is None:
            notes.append(f"{pair.file} is in neither release")
            continue
        if pair.staged is None or pair.live is None:
            problems.append(f"{pair.file} is missing from the {'staged' if pair.staged is None else 'live'} release")
            continue
        try:
            differences, skipped = diff_config(pair.file, pair.staged, pair.live, ignored)
        except ValueError as error:
            problems.append(f"{pair.file}: {error}")
            continue
        if differences:
            shown = "; ".join(differences[:SHOWN]) + (f" (and {len(differences) - SHOWN} more)" if len(differences) > SHOWN else "")
            problems.append(f"{pair.file} differs from live: {shown}")
        else:
            same.append(pair.file + (f" (ignoring slot-specific {', '.join(skipped)})" if skipped else ""))
    if problems:
        return "FAIL", "; ".join(problems)
    if notes and not same:
        return "WARN", "; ".join(notes)
    return "PASS", "same as live: " + ", ".join(same) + (f"; {'; '.join(notes)}" if notes else "")


def diff_config(file: str, staged: str, live: str, ignored: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """Compare two versions of a configuration file key by key (TOML, JSON) or line by line (anything else).

    Returns the differences as "key: live 'a', staged 'b'" lines and the slot-specific keys that differed but
    were ignored. Raises ValueError when a TOML or JSON file cannot be parsed, naming which side.
    """
    suffix = PurePosixPath(file).suffix
    if suffix not in (".toml", ".json"):
        lines = [line for line in difflib.unified_diff(live.splitlines(), staged.splitlines(), "live", "staged", lineterm="", n=0)
                 if line[:1] in "+-" and not line.startswith(("+++", "---"))]
        return lines, []
    flat_staged, flat_live = _flat(_parse(suffix, staged, "staged")), _flat(_parse(suffix, live, "live"))
    differences, skipped = [], []
    for key in sorted(flat_staged.keys() | flat_live.keys()):
        before, after = flat_live.get(key, _ABSENT), flat_staged.get(key, _ABSENT)
        if before == after:
            continue
        if any(key == name or key.startswith(name + ".") for name in ignored):
            skipped.append(key)
        elif before is _ABSENT:
            differences.append(f"{key}: only in staged ({after!r})")
        elif after is _ABSENT:
            differences.append(f"{key}: only in live ({before!r})")
        else:
            differences.append(f"{key}: live {before!r}, staged {after!r}")
    return differences, skipped


_ABSENT = object()


def _parse(suffix: str, text: str, side: str) -> dict:
    try:
        data = tomllib.loads(text) if suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as error:
        raise ValueError(f"the {side} copy is not valid {suffix[1:].upper()}: {error}") from error
    return data if isinstance(data, dict) else {"(top level)": data}


def _flat(data: dict, prefix: str = "") -> dict[str, object]:
    flat = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flat(value, name + "."))
        else:
            flat[name] = value
    return flat
