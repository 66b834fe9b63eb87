"""Data slots: the schemas that hold each release's data, and the plans that move them. Pure: no I/O.

The application reads one schema, say `phof`. Beside it live the other slots and the retired data:

    phof                live: what the application (and so the public) reads
    phof__backup        backup: the exact previous live, the rollback target
    phof__staging       staging: the next release's data, loaded and smoke-queried days ahead
    phof__loading       a load in progress (renamed to staging when it has loaded and passed)
    phof__old_<n>       retired: data no slot names any more (pruned), kept as the file slots keep releases

Each schema's COMMENT says which release's data it holds (`releaser release <id>`), so status reads the
release id of each data slot from the catalog. Slots move only by renames (ALTER SCHEMA ... RENAME TO),
which change the catalog and nothing else, so a switch costs the same for a thousand rows or a billion.
The data plans mirror the file plans in releaser.slots: go-live makes staging live and today's live the
backup; rollback puts the backup back live and retires the failed release's data (no backup afterwards).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from releaser.errors import FleetMixed, HostUnreachable, PlanRefused

MARKER = "releaser release "
_RETIRED = re.compile(r"__old_([0-9]{1,9})\Z")


@dataclass(frozen=True)
class SchemaNames:
    """The schema name of every data slot beside the one the application reads."""

    live: str
    backup: str
    staging: str
    loading: str

    def slot(self, name: str) -> str:
        """The schema of the named slot (live, backup, staging)."""
        return getattr(self, name)

    def retired(self, number: int) -> str:
        """The schema a retired release's data moves to."""
        return f"{self.live}__old_{number}"

    def is_retired(self, schema: str) -> bool:
        """True for a schema releaser retired beside this live schema."""
        return schema.startswith(f"{self.live}__old_") and _RETIRED.search(schema) is not None


@dataclass(frozen=True)
class DataSlots:
    """Which release's data each data slot holds, read from the catalog; None for a slot with no schema.

    `retired` maps each retired schema to the release id its comment names; `pending` lists two-phase
    transactions releaser prepared and nobody committed or rolled back (a switch that lost the database).
    """

    schema: str
    live: str | None = None
    backup: str | None = None
    staging: str | None = None
    retired: Mapping[str, str | None] = field(default_factory=dict)
    pending: tuple[str, ...] = ()
    unmarked: tuple[str, ...] = ()  # slot schemas without a releaser comment: not releaser's, never moved

    def slot(self, name: str) -> str | None:
        """The release id the named data slot holds."""
        return getattr(self, name)


@dataclass(frozen=True)
class Rename:
    """ALTER SCHEMA `old` RENAME TO `new`."""

    old: str
    new: str


@dataclass(frozen=True)
class DataPlan:
    """The renames one switch makes, in order, and the data slots they lead to."""

    action: str
    before: DataSlots
    after: DataSlots
    renames: tuple[Rename, ...]

    def reversed(self) -> tuple[Rename, ...]:
        """The renames that put every schema back, in the order that frees each name before it is reused."""
        return tuple(Rename(r.new, r.old) for r in reversed(self.renames))


def schema_names(schema: str) -> SchemaNames:
    """The slot schemas beside `schema` (validated by config.Database, checked again here)."""
    if not re.match(r"^(?!pg_)[a-z_][a-z0-9_]{0,39}\Z", schema) or "__" in schema:
        raise ValueError(f"not a plain schema name: {schema!r}")
    return SchemaNames(schema, f"{schema}__backup", f"{schema}__staging", f"{schema}__loading")


def marker(release_id: str) -> str:
    """The schema comment that says which release's data a schema holds."""
    return f"{MARKER}{release_id}"


def release_of(comment: str | None) -> str | None:
    """The release id a schema comment names, or None when it is not releaser's."""
    if comment and comment.startswith(MARKER):
        return comment[len(MARKER):].strip() or None
    return None


def read_slots(schema: str, comments: Mapping[str, str | None], pending: Sequence[str] = ()) -> DataSlots:
    """Turn the schemas that exist (name -> comment) into data slots."""
    names = schema_names(schema)
    found: dict[str, str | None] = {}
    unmarked = []
    for slot in ("live", "backup", "staging"):
        name = names.slot(slot)
        if name in comments:
            found[slot] = release_of(comments[name])
            if found[slot] is None:
                unmarked.append(name)
    retired = {name: release_of(comment) for name, comment in sorted(comments.items()) if names.is_retired(name)}
    return DataSlots(schema, found.get("live"), found.get("backup"), found.get("staging"), retired,
                     tuple(pending), tuple(unmarked))


def next_retired(slots: DataSlots) -> str:
    """A retired schema name not used yet."""
    names = schema_names(slots.schema)
    used = [int(_RETIRED.search(name).group(1)) for name in slots.retired]
    return names.retired(max(used, default=0) + 1)


def plan_data_go_live(slots: DataSlots, target: str | None, previous: str | None) -> DataPlan:
    """Make the staged data live and today's live data the backup; the old backup is retired, not dropped.

    Refused when staging does not hold the release going live, or live does not hold the release the
    servers leave: then files and data would disagree after the switch.
    """
    names = schema_names(slots.schema)
    _refuse_unmarked(slots)
    if slots.staging is None:
        raise PlanRefused(f"the database has no staged data for {target}",
                          hint="stage the release again: invoke deploy --stage --release PATH")
    if slots.staging != target:
        raise PlanRefused(f"the database's staging holds {slots.staging}'s data, not {target}'s",
                          hint="stage the release again so files and data agree: invoke deploy --stage --release PATH")
    if slots.live is not None and previous is not None and slots.live != previous:
        raise PlanRefused(f"the database's live data is {slots.live}'s but the servers' live release is {previous}",
                          hint="see: invoke status; then: invoke runbook rollback (section FILES AND DATA DISAGREE)")
    renames = []
    retired = dict(slots.retired)
    if slots.live is not None:
        if slots.backup is not None:
            old = next_retired(slots)
            renames.append(Rename(names.backup, old))
            retired[old] = slots.backup
        renames.append(Rename(names.live, names.backup))
    renames.append(Rename(names.staging, names.live))
    after = DataSlots(slots.schema, slots.staging, slots.live if slots.live is not None else slots.backup, None,
                      retired, slots.pending)
    return DataPlan("go-live", slots, after, tuple(renames))


def plan_data_rollback(slots: DataSlots, target: str | None, previous: str | None) -> DataPlan:
    """Put the backup data back live; the failed release's data is retired (kept, pruned later).

    As with the files, there is no backup afterwards: a second rollback must not publish the failed data.
    """
    names = schema_names(slots.schema)
    _refuse_unmarked(slots)
    if slots.backup is None:
        raise PlanRefused("the database has no backup data to roll back to",
                          hint="see: invoke status; then: invoke runbook rollback")
    if target is not None and slots.backup != target:
        raise PlanRefused(f"the database's backup holds {slots.backup}'s data but the servers' backup is {target}",
                          hint="see: invoke status; then: invoke runbook rollback (section FILES AND DATA DISAGREE)")
    if previous is not None and slots.live is not None and slots.live != previous:
        raise PlanRefused(f"the database's live data is {slots.live}'s but the servers' live release is {previous}",
                          hint="see: invoke status; then: invoke runbook rollback (section FILES AND DATA DISAGREE)")
    renames = []
    retired = dict(slots.retired)
    if slots.live is not None:
        old = next_retired(slots)
        renames.append(Rename(names.live, old))
        retired[old] = slots.live
    renames.append(Rename(names.backup, names.live))
    after = DataSlots(slots.schema, slots.backup, None, slots.staging, retired, slots.pending)
    return DataPlan("rollback", slots, after, tuple(renames))


def plan_data_switch(action: str, slots: DataSlots, target: str | None, previous: str | None) -> DataPlan:
    """The data plan for a go-live or a rollback."""
    if action == "go-live":
        return plan_data_go_live(slots, target, previous)
    if action == "rollback":
        return plan_data_rollback(slots, target, previous)
    raise ValueError(f"data slots do not move on {action!r}")


def is_moved(current: DataSlots, plan: DataPlan) -> bool:
    """True when the catalog shows the plan's end state (the switch committed), False for its start."""
    return _slots_of(current) == _slots_of(plan.after) and _slots_of(current) != _slots_of(plan.before)


def plan_data_prune(slots: DataSlots, keep_ids: Sequence[str] = ()) -> tuple[str, ...]:
    """The retired schemas to drop: every one whose release is not in `keep_ids` and no slot holds.

    A slot's schema is never in the answer: only `<schema>__old_<n>` schemas are ever dropped.
    """
    held = {slots.live, slots.backup, slots.staging} | set(keep_ids)
    return tuple(name for name, release in sorted(slots.retired.items()) if release is None or release not in held)


def retired_copies(slots: DataSlots, release_id: str) -> tuple[str, ...]:
    """The retired schemas holding `release_id`'s data: a stage of that release again replaces them.

    After a rollback and a new stage of the same release id, they would otherwise carry the same comment as the
    new staging (later live) schema, and an application finding its data by the release it runs could read one.
    """
    return tuple(name for name, release in sorted(slots.retired.items()) if release == release_id)


def judge_data_agreement(files: Mapping[str, str | None], data: DataSlots) -> list[str]:
    """What disagrees between the servers' slots (slot -> release id) and the data slots; empty when they agree.

    Live must agree always. Backup and staging must agree too, except that a data slot may be empty
    while the files' is not (data staged later than files is reported by the staged check, not here).
    """
    return [d.describe() for d in slot_disagreements(files, data)] + pending_problems(data)


@dataclass(frozen=True)
class SlotDisagreement:
    """One slot where the servers' files and the database's data name different releases (None: nothing)."""

    slot: str
    files: str | None
    data: str | None

    @property
    def blocks_go_live(self) -> bool:
        """True when the next go-live would be refused or would leave files and data apart: live, or staged files
        whose data is not staging's."""
        return self.slot == "live" or (self.slot == "staging" and self.files is not None)

    def describe(self) -> str:
        """One line naming both sides, in the words status and check print."""
        if self.slot != "live" and self.data is None and self.files is not None:
            return f"{self.slot}: the servers have {self.files}, the database has no data staged for it"
        return f"{self.slot}: the servers have {self.files or 'nothing'}, the database has {self.data or 'nothing'}"


def slot_disagreements(files: Mapping[str, str | None] | object, data: DataSlots) -> tuple[SlotDisagreement, ...]:
    """Every slot (live, backup, staging) where one server's slots and the data slots differ, in that order.

    `files` is a mapping slot -> release id, or anything with live/backup/staging attributes (a SlotState).
    """
    disagreements = []
    for slot in ("live", "backup", "staging"):
        want = files.get(slot) if isinstance(files, Mapping) else getattr(files, slot)
        have = data.slot(slot)
        if want != have:
            disagreements.append(SlotDisagreement(slot, want, have))
    return tuple(disagreements)


def pending_problems(data: DataSlots) -> list[str]:
    """A line about switch transactions left prepared in the database (empty when there are none)."""
    if not data.pending:
        return []
    return [f"{len(data.pending)} switch transaction(s) left prepared in the database "
            f"({', '.join(data.pending)}); the next switch or prune rolls them back"]


@dataclass(frozen=True)
class DataStatus:
    """The data slots beside the servers': what the catalog holds, or why it could not be read, and what disagrees.

    `problems` are the lines status prints (servers named when they do not all see the same slots);
    `live_differs` says the data's live release is not some answering server's live release.
    """

    schema: str
    slots: DataSlots | None
    error: str | None = None
    problems: tuple[str, ...] = ()
    live_differs: bool = False

    @property
    def agrees(self) -> bool:
        """True when the catalog was read and every answering server's slots match the data slots."""
        return self.error is None and not self.problems


def judge_data_status(schema: str, data: DataSlots | None, servers: Mapping[str, object], *,
                      error: str | None = None) -> DataStatus:
    """Compare the data slots with each answering server's slots (name -> SlotState, None when it did not answer).

    Servers that see the same slots share one set of lines; the server names lead each line only when
    the servers themselves differ.
    """
    if data is None:
        return DataStatus(schema, None, error or "the data slots were not read")
    groups: dict[tuple, list[str]] = {}
    for name, state in servers.items():
        if state is not None:
            groups.setdefault((state.live, state.backup, state.staging), []).append(name)
    problems: list[str] = []
    live_differs = False
    for (live, backup, staging), names in groups.items():
        found = slot_disagreements({"live": live, "backup": backup, "staging": staging}, data)
        live_differs = live_differs or any(d.slot == "live" for d in found)
        prefix = f"{', '.join(names)}: " if len(groups) > 1 else ""
        problems.extend(prefix + d.describe() for d in found)
    return DataStatus(schema, data, None, tuple(problems + pending_problems(data)), live_differs)


def status_exit_code_with_data(servers_code: int, data: DataStatus | None) -> int:
    """What status exits with once the data slots are counted: 7 (MIXED) when the data's live release differs
    from the servers', 5 when the database did not answer, else the servers' own code (7 beats 5 beats 0)."""
    if data is None:
        return servers_code
    if data.live_differs or servers_code == FleetMixed.exit_code:
        return FleetMixed.exit_code
    if data.error is not None:
        return HostUnreachable.exit_code
    return servers_code


def judge_smoke_value(row: Sequence[object] | None, expect: object) -> str | None:
    """Why a smoke query's first row fails (None when it passes): no row, or a first value unlike `expect`."""
    if row is None:
        return "returned no row"
    if expect is None:
        return None
    value = row[0] if row else None
    if value == expect or str(value) == str(expect):
        return None
    return f"returned {value!r}, expected {expect!r}"


def _slots_of(slots: DataSlots) -> tuple[str | None, str | None, str | None]:
    return slots.live, slots.backup, slots.staging


def _refuse_unmarked(slots: DataSlots) -> None:
    if slots.unmarked:
        raise PlanRefused(f"schema {slots.unmarked[0]} exists but has no releaser comment, so releaser will not move it",
                          hint=f"rename it out of the way, or mark it: COMMENT ON SCHEMA {slots.unmarked[0]} IS "
                               f"'{MARKER}<release id>'")
