"""The plan shown before a switch: one set of rows for the servers that change alike, every server named."""

from releaser import ui
from releaser.slots import Plan, SlotState, plan_rollback


def rendered(capsys, plans) -> list[str]:
    ui.err.width = 200
    try:
        ui.show_plan("rollback plan", plans)
    finally:
        ui.err.width = None
    return [line for line in capsys.readouterr().err.splitlines() if "│" in line]


def test_a_fleet_that_changes_alike_gets_one_set_of_rows(capsys):
    state = SlotState("r2", "r1", None, frozenset({"r1", "r2"}))
    rows = rendered(capsys, {f"web-{i}": plan_rollback(state) for i in range(1, 21)})
    assert len(rows) == 2  # live and backup: not forty rows for twenty servers
    assert "all 20 servers" in rows[0] and "live" in rows[0] and "r2" in rows[0] and "r1" in rows[0]
    assert "backup" in rows[1] and "(removed)" in rows[1]


def test_servers_that_differ_are_named_and_one_left_alone_says_so(capsys):
    mixed = SlotState("r2", "r1", None, frozenset({"r1", "r2"}))
    plans = {"web-1": plan_rollback(mixed), "web-3": plan_rollback(mixed)}
    plans["web-2"] = Plan("rollback", SlotState("r1", None, None), SlotState("r1", None, None))
    rows = rendered(capsys, plans)
    assert "web-1, web-3" in rows[0]
    assert any("web-2" in row and "no change" in row for row in rows)
