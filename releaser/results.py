"""What a fleet command did, as data the UI renders: one result per server, the release moved, timings, notes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from releaser.locking import LockSession


@dataclass(frozen=True)
class HostResult:
    """What one command did on one server."""

    server: str
    ok: bool
    detail: str
    renamed_at: float | None = None


@dataclass(frozen=True)
class FleetResult:
    """What a fleet command did: the release now in the slot it moved, one result per server, timings."""

    action: str
    release: str | None
    previous: str | None
    results: tuple[HostResult, ...]
    notes: tuple[str, ...] = ()
    seconds: Mapping[str, float] | None = None
    skew: float | None = None

    def renames(self) -> dict[str, float]:
        """When each server's live link was renamed (for the journal), where it moved."""
        return {r.server: r.renamed_at for r in self.results if r.renamed_at}


def with_leftovers(result: FleetResult, session: LockSession) -> FleetResult:
    """The result, with a loud note when some server kept the lock or missed the journal lines."""
    if not session.stuck:
        return result
    return replace(result, notes=(*result.notes, f"WARNING: {session.leftover_warning()}"))
