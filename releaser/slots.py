"""Slots on a server (live, backup, staging) and the plans that move them. Pure: no I/O, no clock.

A server's state is which release each slot points to and which releases are unpacked on disk.
A plan is the new state plus the link changes and removals that get there. The fleet applies the
same plan on every server, which is why the fleet-level planners first check the servers agree.

Invariants every plan keeps (DESIGN.md):
1. staging never overwrites a release that live or backup points to;
2. after go-live, backup is the exact previous live;
5. pruning never removes a release a slot points to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from releaser.errors import PlanRefused
from releaser.order import counted_items

SLOTS = ("live", "backup", "staging")


@dataclass(frozen=True)
class SlotState:
    """What each slot points to on one server, and which releases are unpacked there."""

    live: str | None
    backup: str | None
    staging: str | None
    on_disk: frozenset[str] = frozenset()

    def slot(self, name: str) -> str | None:
        """Return the release id the named slot points to, or None."""
        return getattr(self, name)

    def pointed_at(self) -> frozenset[str]:
        """Return the release ids some slot points to; these must never be removed."""
        return frozenset(r for r in (self.live, self.backup, self.staging) if r is not None)


@dataclass(frozen=True)
class LinkChange:
    """Point `slot` at release `new` (None removes the link); `old` is what it pointed to."""

    slot: str
    old: str | None
    new: str | None


@dataclass(frozen=True)
class Plan:
    """What one command will do to one server: link changes, unpacking and removals, and the end state."""

    action: str
    before: SlotState
    after: SlotState
    links: tuple[LinkChange, ...] = ()
    unpack: str | None = None
    removals: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def is_noop(self) -> bool:
        """Say whether applying this plan would change nothing."""
        return not self.links and self.unpack is None and not self.removals


def plan_stage(state: SlotState, release_id: str) -> Plan:
    """Point staging at `release_id`, unpacking it first when it is not on disk yet.

    Refused when the release is what live or backup points to: staging must never touch the
    release the public sees or the rollback target.
    """
    for guarded in ("live", "backup"):
        if state.slot(guarded) == release_id:
            raise PlanRefused(
                f"release {release_id} is the {guarded} release; staging must never touch it",
                hint="build the change as a new release id and stage that",
            )
    unpack = None if release_id in state.on_disk else release_id
    after = replace(state, staging=release_id, on_disk=state.on_disk | {release_id})
    links = () if state.staging == release_id else (LinkChange("staging", state.staging, release_id),)
    return Plan("stage", state, after, links=links, unpack=unpack)


def plan_go_live(state: SlotState) -> Plan:
    """Make the staged release live and keep today's live as backup, the rollback target."""
    if state.staging is None:
        raise PlanRefused("nothing is staged", hint="run: invoke deploy --stage --release PATH")
    if state.staging == state.live:
        raise PlanRefused(f"release {state.staging} is already live", hint="stage a new release first")
    links = []
    if state.live is not None:
        links.append(LinkChange("backup", state.backup, state.live))
    links.append(LinkChange("live", state.live, state.staging))
    links.append(LinkChange("staging", state.staging, None))
    after = SlotState(
        live=state.staging,
        backup=state.live if state.live is not None else state.backup,
        staging=None,
        on_disk=state.on_disk,
    )
    notes = () if after.backup else ("there is no backup: this is the first release, nothing to roll back to",)
    return Plan("go-live", state, after, links=tuple(links), notes=notes)


def plan_rollback(state: SlotState) -> Plan:
    """Put the backup release back live; the failed release stays on disk for inspection.

    After a rollback there is no backup until the next go-live: backup pointing at the failed release
    would make a second rollback publish it again.
    """
    if state.backup is None:
        raise PlanRefused(
            "there is no rollback target: backup is empty",
            hint="stage a known-good release and go live with it; see: invoke runbook rollback",
        )
    if state.backup == state.live:
        raise PlanRefused(f"release {state.live} is both live and backup", hint="nothing to roll back to")
    links = (
        LinkChange("live", state.live, state.backup),
        LinkChange("backup", state.backup, None),
    )
    after = replace(state, live=state.backup, backup=None)
    notes = (f"release {state.live} will stay on disk for inspection (a rollback deletes nothing)",) if state.live else ()
    return Plan("rollback", state, after, links=links, notes=notes)


def plan_prune(state: SlotState, keep: int, oldest_first: Sequence[str]) -> Plan:
    """Remove old releases so at most `keep` unpointed ones remain; never one a slot points to.

    `oldest_first` orders the releases on disk by age; releases missing from it count as newest.
    """
    if keep < 0:
        raise PlanRefused(f"keep must be 0 or more, got {keep}", hint="pass --keep N with N >= 0")
    ordered = [r for r in oldest_first if r in state.on_disk]
    ordered += sorted(state.on_disk - set(ordered))
    unpointed = [r for r in ordered if r not in state.pointed_at()]
    doomed = tuple(unpointed[: max(0, len(unpointed) - keep)])
    after = replace(state, on_disk=state.on_disk - set(doomed))
    return Plan("prune", state, after, removals=doomed)


def broken_invariants(state: SlotState) -> list[str]:
    """List, in words, every way this state breaks the slot model (empty when healthy)."""
    problems = []
    for name in SLOTS:
        release = state.slot(name)
        if release is not None and release not in state.on_disk:
            problems.append(f"{name} points at {release}, which is not on disk")
    if state.live is not None and state.live == state.backup:
        problems.append(f"live and backup both point at {state.live}")
    if state.staging is not None and state.staging in (state.live, state.backup):
        problems.append(f"staging points at {state.staging}, which live or backup also uses")
    return problems


# ---- the fleet: one plan for every server, or a refusal naming the servers that disagree ----


def plan_fleet_stage(states: Mapping[str, SlotState], release_id: str) -> dict[str, Plan]:
    """Plan staging `release_id` on every server; refused if any server would have to touch live or backup."""
    return {server: _on(server, plan_stage, state, release_id) for server, state in states.items()}


def plan_fleet_go_live(states: Mapping[str, SlotState]) -> dict[str, Plan]:
    """Plan go-live on every server; refused unless all servers stage the same release and serve the same live."""
    _require_same(states, "staging", hint="run: invoke deploy --stage --release PATH to stage it everywhere")
    _require_same(states, "live", hint="the fleet is mixed; run: invoke status, then see: invoke runbook rollback")
    return {server: _on(server, plan_go_live, state) for server, state in states.items()}


def plan_fleet_rollback(states: Mapping[str, SlotState]) -> dict[str, Plan]:
    """Plan a rollback to one release id on every server.

    Normally every backup is the same release. Rollback is also how a mixed fleet is repaired: when a
    server died just after its rename, the others were reverted and it was not. Then the target is the one
    release every server either serves already (no change there) or holds as its backup.
    """
    if len({state.backup for state in states.values()}) == 1:
        return {server: _on(server, plan_rollback, state) for server, state in states.items()}
    target = repair_target(states)
    if target is None:
        _require_same(states, "backup", hint="see: invoke runbook rollback")
    return {server: Plan("rollback", state, state, notes=(f"{server} already serves {target}",))
            if state.live == target else _on(server, plan_rollback, state)
            for server, state in states.items()}


def repair_target(states: Mapping[str, SlotState]) -> str | None:
    """Return the one release a mixed fleet can be rolled back to (each server serves it or backs it up), else None."""
    candidates = {release for state in states.values() for release in (state.live, state.backup) if release}
    fits = [release for release in candidates
            if all(release in (state.live, state.backup) for state in states.values())
            and any(state.live != release for state in states.values())]
    return fits[0] if len(fits) == 1 else None


def fleet_release(states: Mapping[str, SlotState], slot: str) -> str | None:
    """Return the release the slot points to on every server, or None if the servers disagree or have none."""
    values = {state.slot(slot) for state in states.values()}
    return values.pop() if len(values) == 1 else None


def _require_same(states: Mapping[str, SlotState], slot: str, *, hint: str) -> None:
    values = {server: state.slot(slot) for server, state in states.items()}
    if len(set(values.values())) > 1:
        listed = ", ".join(f"{server} {release or 'empty'}" for server, release in counted_items(values))
        raise PlanRefused(f"servers disagree on {slot} ({listed})", hint=hint)


def _on(server: str, planner, state: SlotState, *args) -> Plan:
    try:
        return planner(state, *args)
    except PlanRefused as refusal:
        raise PlanRefused(f"{server}: {refusal.what}", hint=refusal.hint) from refusal
