"""disk: free space on each server is above the threshold and enough for one more release of this size."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from releaser.checks import CheckResult, Limits, ReleaseView, Unreadable, not_checked, server_facts

NAME = "disk"
MIB = 1024 * 1024


@dataclass(frozen=True)
class DiskFacts:
    """Free bytes on the app root's file system, and the bytes the release under check takes (None: unknown)."""

    free_bytes: int
    release_bytes: int | None


def gather(fleet, view: ReleaseView, limits: Limits) -> dict[str, object]:
    """Free space and the release's size on every server (`df`, `du`), from its facts."""
    found: dict[str, object] = {}
    for name in fleet.hosts:
        facts = server_facts(view, name)
        if isinstance(facts, Unreadable):
            found[name] = facts
        elif facts.free_kib is None:
            found[name] = Unreadable("cannot read its free disk space (is the app root there?)")
        else:
            size = facts.release_kib * 1024 if facts.release_kib is not None else None
            found[name] = DiskFacts(facts.free_kib * 1024, size)
    return found


def judge(facts: Mapping[str, object], limits: Limits, now: datetime) -> list[CheckResult]:
    """FAIL below the minimum plus one more release of this size; WARN below the warning level plus that release."""
    thresholds = limits.environment.thresholds
    minimum = thresholds.min_free_mib * MIB
    warning = (thresholds.warn_free_mib if thresholds.warn_free_mib is not None else 2 * thresholds.min_free_mib) * MIB
    results = []
    for server, disk in facts.items():
        if isinstance(disk, Unreadable):
            results.append(not_checked(NAME, server, disk))
            continue
        release = disk.release_bytes or 0
        one_more = f" + {size_text(release)} for one more release this size" if release else ""
        said = f"{size_text(disk.free_bytes)} free"
        if disk.free_bytes < minimum + release:
            results.append(CheckResult(NAME, server, "FAIL", f"{said}; needs {size_text(minimum + release)} "
                                                            f"({size_text(minimum)} minimum{one_more}): free space or prune"))
        elif disk.free_bytes < warning + release:
            results.append(CheckResult(NAME, server, "WARN", f"{said}; below the warning level of "
                                                            f"{size_text(warning)}{one_more}"))
        else:
            results.append(CheckResult(NAME, server, "PASS", f"{said} (minimum {size_text(minimum)}{one_more})"))
    return results


def size_text(count: int) -> str:
    """Say a byte count the way people read disks: "512 B", "3.4 MiB", "12.0 GiB"."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"
