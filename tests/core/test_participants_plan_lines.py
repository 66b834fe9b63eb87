"""The plan a person approves names what moves besides the slot links: the front's upstream and the data slots."""

from checkenv import environment
from releaser.participants import moves_beside_the_links
from releaser.slots import SlotState, plan_fleet_go_live, plan_fleet_rollback

APP = {"application": {"start": "run start", "stop": "run stop", "ports": [8101, 8102, 8103],
                       "front": {"include": "/etc/nginx/live.upstream"}},
       "database": {"dsn_env": "PHOF_DATABASE_URL", "schema": "phof"}}


def morning() -> dict[str, SlotState]:
    return {f"web-{n}": SlotState("r1", "r0", "r2", frozenset({"r0", "r1", "r2"})) for n in (1, 2)}


def test_a_go_live_plan_says_nginx_and_the_data_move_too():
    lines = moves_beside_the_links(environment(**APP), "go-live", plan_fleet_go_live(morning()))
    assert lines == [
        "nginx on 2 server(s): the public moves to the staging instance of r2 on its own port (one whose process is "
        "gone is started again first; the include is replaced, then a graceful reload)",
        "database schema phof: r2's staged data becomes live, r1's becomes the backup and any older backup is retired, "
        "in one transaction at the second"]


def test_a_first_go_live_plan_names_no_backup_to_make_or_retire():
    """QA: a first release's plan said "nothing's becomes the backup and the old backup is retired"."""
    first = {f"web-{n}": SlotState(None, None, "r1", frozenset({"r1"})) for n in (1, 2)}
    lines = moves_beside_the_links(environment(**APP), "go-live", plan_fleet_go_live(first))
    assert lines[1] == "database schema phof: r1's staged data becomes live, in one transaction at the second"


def test_a_rollback_plan_names_the_warm_backup_and_the_data_put_back():
    lines = moves_beside_the_links(environment(**APP), "rollback", plan_fleet_rollback(morning()))
    assert lines[0].startswith("nginx on 2 server(s): the public moves to the warm backup instance of r0")
    assert lines[1] == ("database schema phof: r0's backup data becomes live again and r1's is retired, in one "
                        "transaction at the second")


def test_a_static_site_plan_has_nothing_beside_the_links():
    assert moves_beside_the_links(environment(), "go-live", plan_fleet_go_live(morning())) == []


def test_a_socket_front_says_nginx_is_not_reloaded():
    app = {**APP, "application": {**APP["application"], "front": {"socket": ".releaser/front/live.sock"}}}
    lines = moves_beside_the_links(environment(**app), "go-live", plan_fleet_go_live(morning()))
    assert lines[0] == ("nginx on 2 server(s): the public moves to the staging instance of r2 on its own socket (one "
                        "whose process is gone is started again first; the link to it is replaced; nginx is not "
                        "reloaded)")
