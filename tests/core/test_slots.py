"""Slot plans: state in, plan or refusal out; and random sequences never break an invariant."""

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from releaser.errors import PlanRefused
from releaser.slots import (
    SlotState,
    broken_invariants,
    plan_fleet_go_live,
    plan_fleet_rollback,
    plan_fleet_stage,
    plan_go_live,
    plan_prune,
    plan_rollback,
    plan_stage,
)

R = frozenset({"r1", "r2", "r3", "r4"})


def test_stage_points_staging_and_unpacks_a_new_release():
    """A release not on disk is unpacked and staging points at it."""
    plan = plan_stage(SlotState("r1", None, None, frozenset({"r1"})), "r2")
    assert plan.unpack == "r2"
    assert plan.after == SlotState("r1", None, "r2", frozenset({"r1", "r2"}))


def test_go_live_keeps_previous_live_as_backup():
    """Go-live moves staging to live and the old live to backup, and empties staging."""
    plan = plan_go_live(SlotState("r1", None, "r2", frozenset({"r1", "r2"})))
    assert (plan.after.live, plan.after.backup, plan.after.staging) == ("r2", "r1", None)


def test_rollback_restores_backup_and_keeps_failed_release_on_disk():
    """Rollback puts the backup live; the failed release is still on disk."""
    plan = plan_rollback(SlotState("r2", "r1", None, frozenset({"r1", "r2"})))
    assert plan.after.live == "r1" and plan.after.backup is None
    assert "r2" in plan.after.on_disk


def test_first_go_live_says_there_is_no_backup():
    """The first go-live has nothing to keep as backup and says so."""
    plan = plan_go_live(SlotState(None, None, "r1", frozenset({"r1"})))
    assert plan.after.backup is None and "no backup" in plan.notes[0]


@pytest.mark.parametrize(
    "planner, state, message",
    [
        pytest.param(lambda s: plan_stage(s, "r1"), SlotState("r1", None, None, R), "is the live release", id="stage-over-live"),
        pytest.param(lambda s: plan_stage(s, "r1"), SlotState("r2", "r1", None, R), "is the backup release", id="stage-over-backup"),
        pytest.param(plan_go_live, SlotState("r1", None, None, R), "nothing is staged", id="empty-staging"),
        pytest.param(plan_rollback, SlotState("r2", None, None, R), "no rollback target", id="no-backup"),
        pytest.param(lambda s: plan_prune(s, -1, []), SlotState("r2", None, None, R), "keep must be 0", id="negative-keep"),
    ],
)
def test_refusals_say_why(planner, state, message):
    """Each refused plan raises PlanRefused with a reason a user understands."""
    with pytest.raises(PlanRefused, match=message):
        planner(state)


def test_prune_never_removes_a_slot_release():
    """Prune removes the oldest unpointed releases and keeps every slot's release."""
    state = SlotState("r3", "r1", "r4", frozenset({"r0", "r1", "r2", "r3", "r4"}))
    plan = plan_prune(state, keep=0, oldest_first=["r0", "r1", "r2", "r3", "r4"])
    assert plan.removals == ("r0", "r2")
    assert plan.after.on_disk == {"r1", "r3", "r4"}


def test_prune_keeps_the_newest_unpointed():
    """With keep=1 the newest unpointed release survives."""
    state = SlotState("r3", None, None, frozenset({"r0", "r1", "r2", "r3"}))
    assert plan_prune(state, keep=1, oldest_first=["r0", "r1", "r2", "r3"]).removals == ("r0", "r1")


def test_fleet_go_live_refuses_when_staging_differs():
    """Servers staging different releases cannot go live together; the message names them."""
    states = {"web-1": SlotState("r1", None, "r2", R), "web-2": SlotState("r1", None, "r3", R)}
    with pytest.raises(PlanRefused, match=r"servers disagree on staging \(web-1 r2, web-2 r3\)"):
        plan_fleet_go_live(states)


def test_fleet_rollback_brings_a_mixed_fleet_to_one_release():
    """Rollback works when live differs but every backup is the same release."""
    states = {"web-1": SlotState("r2", "r1", None, R), "web-2": SlotState("r3", "r1", None, R)}
    plans = plan_fleet_rollback(states)
    assert {p.after.live for p in plans.values()} == {"r1"}


def test_fleet_rollback_repairs_a_server_left_on_the_new_release():
    """A server that renamed then died is rolled back to the release the others were reverted to; they stay put."""
    states = {"web-1": SlotState("r1", None, "r2", R), "web-2": SlotState("r2", "r1", None, R),
              "web-3": SlotState("r1", None, "r2", R)}
    plans = plan_fleet_rollback(states)
    assert {p.after.live for p in plans.values()} == {"r1"}
    assert plans["web-1"].is_noop() and plans["web-3"].is_noop() and not plans["web-2"].is_noop()


def test_fleet_rollback_refuses_when_no_single_release_fits():
    """Backups that disagree with no common release are refused, naming each server's backup."""
    states = {"web-1": SlotState("r3", "r2", None, R), "web-2": SlotState("r4", "r1", None, R)}
    with pytest.raises(PlanRefused, match=r"servers disagree on backup \(web-1 r2, web-2 r1\)"):
        plan_fleet_rollback(states)


def test_fleet_stage_names_the_server_that_refuses():
    """A refusal on one server names that server."""
    states = {"web-1": SlotState("r2", None, None, R), "web-2": SlotState("r2", "r1", None, R)}
    with pytest.raises(PlanRefused, match="web-2: release r1 is the backup release"):
        plan_fleet_stage(states, "r1")


def apply_or_keep(planner, state, *args):
    """Return the planned end state, or the same state when the plan is refused."""
    try:
        return planner(state, *args).after
    except PlanRefused:
        return state


class SlotSequences(RuleBasedStateMachine):
    """Random stage / go-live / rollback / prune runs never break a slot invariant."""

    def __init__(self):
        super().__init__()
        self.state = SlotState(None, None, None, frozenset())
        self.order: list[str] = []

    @rule(release=st.sampled_from(["r1", "r2", "r3", "r4", "r5"]))
    def stage(self, release):
        before = self.state
        self.state = apply_or_keep(plan_stage, before, release)
        if self.state != before:
            assert before.live == self.state.live and before.backup == self.state.backup
            if release not in self.order:
                self.order.append(release)
        else:
            assert release in (before.live, before.backup) or before.staging == release

    @rule()
    def go_live(self):
        before = self.state
        self.state = apply_or_keep(plan_go_live, before)
        if self.state != before:
            assert self.state.live == before.staging
            if before.live is not None:
                assert self.state.backup == before.live

    @rule()
    def rollback(self):
        before = self.state
        self.state = apply_or_keep(plan_rollback, before)
        if self.state != before:
            assert self.state.live == before.backup
            assert before.live in self.state.on_disk

    @rule(keep=st.integers(min_value=0, max_value=3))
    def prune(self, keep):
        before = self.state
        self.state = apply_or_keep(plan_prune, before, keep, self.order)
        assert before.pointed_at() <= self.state.on_disk

    @invariant()
    def no_invariant_is_broken(self):
        assert broken_invariants(self.state) == []


TestSlotSequences = SlotSequences.TestCase
TestSlotSequences.settings = settings(max_examples=500, stateful_step_count=30, deadline=None)
