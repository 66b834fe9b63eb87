"""`--hosts web-1,web-2` on the read-only tasks, refused on the switching ones, run as the installed `releaser`."""

import json

import pytest

from checkenv import write_environment as complete_environment
from conftest import EXAMPLES, PROJECT, read_slots
from releaser.config import load_environment
from test_program import releaser


@pytest.fixture
def live_r1(tmp_path):
    """Three sandbox servers with r1 live and r2 staged; returns (environment file, directory to run from)."""
    env_file = str(complete_environment(tmp_path, servers=3))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for args in (["deploy", "--stage", "--release", str(EXAMPLES / "r1")],
                 ["go-live", "--now", "--yes", "--override", "rollback-target", "--override", "deadline", "--reason", "t"],
                 ["deploy", "--stage", "--release", str(EXAMPLES / "r2")]):
        done = releaser(*args, "--env", env_file, cwd=elsewhere)
        assert done.returncode == 0, done.stderr
    return env_file, elsewhere


def test_status_hosts_reads_only_the_named_servers(live_r1):
    """status --hosts web-3,web-1 shows web-1 and web-3, in the file's order, and nothing of web-2."""
    env_file, elsewhere = live_r1
    done = releaser("status", "--json", "--hosts", "web-3,web-1", "--env", env_file, cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert [(s["server"], s["live"]) for s in json.loads(done.stdout)["servers"]] == [("web-1", "r1"), ("web-3", "r1")]


def test_status_hosts_title_says_it_shows_a_subset(live_r1):
    """The table is not the whole environment, and its title says so (and --json says how many there are)."""
    env_file, elsewhere = live_r1
    done = releaser("status", "--hosts", "web-1", "--env", env_file, cwd=elsewhere, env_extra={"COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    assert "releaser status: env (only web-1: 1 of 3 servers, --hosts)" in done.stdout
    whole = releaser("status", "--env", env_file, cwd=elsewhere, env_extra={"COLUMNS": "200"})
    assert "releaser status: env\n" in whole.stdout or "releaser status: env " in whole.stdout
    assert "of 3 servers" not in whole.stdout
    listed = json.loads(releaser("status", "--json", "--hosts", "web-1,web-2", "--env", env_file, cwd=elsewhere).stdout)
    assert listed["servers_in_environment"] == 3 and len(listed["servers"]) == 2


def test_check_hosts_judges_only_the_named_servers(live_r1):
    """check --hosts web-2 gives per-server verdicts for web-2 alone."""
    env_file, elsewhere = live_r1
    done = releaser("check", "--json", "--only", "staged,disk,smoke", "--hosts", "web-2", "--env", env_file, cwd=elsewhere)
    results = json.loads(done.stdout)
    servers = {r["server"] for r in (results["results"] if isinstance(results, dict) else results)}
    assert "web-2" in servers and not servers & {"web-1", "web-3"}, servers


def test_history_hosts_shows_what_the_named_server_holds(live_r1):
    """history --hosts web-1 lists the go-live and the stages, each held by web-1."""
    env_file, elsewhere = live_r1
    done = releaser("history", "--json", "--hosts", "web-1", "--env", env_file, cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    events = json.loads(done.stdout)
    events = events["events"] if isinstance(events, dict) else events
    assert {"stage", "go-live"} <= {e["action"] for e in events}
    assert all("web-1" in (e.get("seen_on") or []) + (e.get("servers") or []) for e in events)


@pytest.mark.parametrize("args", [
    pytest.param(["go-live", "--now", "--yes"], id="go-live"),
    pytest.param(["rollback", "--yes"], id="rollback"),
    pytest.param(["deploy", "--stage", "--release", str(EXAMPLES / "r3")], id="deploy"),
    pytest.param(["rehearse", "--yes"], id="rehearse"),
])
def test_a_switching_task_refuses_hosts_and_moves_nothing(live_r1, args):
    """--hosts on a task that changes servers: exit 3 with the reason, and every slot as it was."""
    env_file, elsewhere = live_r1
    before = read_slots(load_environment(env_file, PROJECT))
    done = releaser(*args, "--hosts", "web-1", "--env", env_file, cwd=elsewhere)
    assert done.returncode == 3, done.stderr
    assert f"releaser: {args[0]} does not take --hosts: a switch moves every server or none" in done.stderr
    assert read_slots(load_environment(env_file, PROJECT)) == before


def test_an_unknown_server_in_hosts_names_the_servers(live_r1):
    """A typo in --hosts is a usage error (exit 2) listing the servers the environment has."""
    env_file, elsewhere = live_r1
    done = releaser("status", "--hosts", "web-9", "--env", env_file, cwd=elsewhere)
    assert done.returncode == 2 and "has no server 'web-9'; its servers are: web-1, web-2, web-3" in done.stderr


def test_dash_h_still_means_help(tmp_path):
    """`releaser status -h` prints help: no task flag takes -h, though --hosts starts with h."""
    done = releaser("status", "-h", cwd=tmp_path)
    assert done.returncode == 0 and "--hosts=STRING" in done.stdout and "-h STRING" not in done.stdout
