"""The dashboard's board of an environment with [database]: its data slots, read from a real PostgreSQL."""

from shell.test_data_slots import cluster, environment, fleet_env, stage_both  # noqa: F401 (fixtures)
from releaser.dashboard import read_board


def test_board_shows_which_release_each_data_slot_holds(fleet_env, open_fleet, tmp_path):
    """r1 live with its data, r2 staged with its data: the board's data slots say so, beside the servers' slots."""
    with open_fleet(fleet_env) as fleet:
        stage_both(fleet, fleet_env, tmp_path, "r1")
        fleet.go_live()
        stage_both(fleet, fleet_env, tmp_path, "r2")
        board = read_board(fleet)
    assert board["data"] == {"schema": "phof", "live": "r1", "backup": None, "staging": "r2", "pending": [], "error": None}
    assert {(s["live"], s["staging"]) for s in board["servers"]} == {("r1", "r2")}


def test_a_database_that_does_not_answer_is_named_and_the_rest_still_shows(fleet_env, open_fleet, monkeypatch):
    """With the DSN aimed at a closed port the data slots say why they are missing; the servers are still read."""
    from conftest import free_ports

    monkeypatch.setenv(fleet_env.database.dsn_env, f"postgresql://nobody@127.0.0.1:{free_ports(1)[0]}/none")
    with open_fleet(fleet_env) as fleet:
        board = read_board(fleet)
    assert board["data"]["error"].startswith("not read: ") and len(board["servers"]) == 3
