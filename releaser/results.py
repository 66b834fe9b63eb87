"""What a fleet command did, as data the UI renders: one result per server, the release moved, timings, notes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from releaser.locking import LockSession
    from releaser.web import Probe


@dataclass(frozen=True)
class HostResult:
    """What one command did on one server; `health`: the check after a switch, whose body says why it failed."""

    server: str
    ok: bool
    detail: str
    renamed_at: float | None = None
    health: Probe | None = None


@dataclass(frozen=True)
class FleetResult:
    """What a fleet command did: the release now in the slot it moved, one result per server, timings.

    `notes` are the plan's (a command that showed its plan before asking need not show them again);
    `warnings` are what went wrong after the work itself was done (a server kept the lock or lacks the
    journal lines), and are always shown.
    """

    action: str
    release: str | None
    previous: str | None
    results: tuple[HostResult, ...]
    notes: tuple[str, ...] = ()
    seconds: Mapping[str, float] | None = None
    skew: float | None = None
    warnings: tuple[str, ...] = ()
    others_moved_at: Mapping[str, float] | None = None  # participant (a front, ...) -> when it moved, besides links

    def journal_moments(self) -> dict[str, dict[str, float]]:
        """When each server's live link was renamed and, where others moved too, when each of them did."""
        return {"renamed_at": self.renames(), **({"moved_at": dict(self.others_moved_at)} if self.others_moved_at else {})}

    def renames(self) -> dict[str, float]:
        """When each server's live link was renamed (for the journal), where it moved."""
        return {r.server: r.renamed_at for r in self.results if r.renamed_at}


def with_leftovers(result: FleetResult, session: LockSession) -> FleetResult:
    """The result, with a warning when some server kept (or may keep) the lock or missed the journal lines."""
    if not session.stuck:
        return result
    session.reported = True
    return replace(result, warnings=(*result.warnings, session.leftover_warning()))
