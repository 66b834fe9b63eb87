"""Files and data switched together: the three-server sshd farm plus one real PostgreSQL, through the fleet.

Each test reads the end state back from both sides: every server's slots from its app root (`read_slots`),
and the data slots from the catalog (`read_data_slots`) and the rows the application reads (`live_releases`).
The faults are real: a server whose prepared link is gone at commit (a Tripwire on its real SshHost), the
prepared renames rolled back by someone else before T, the cluster stopped at the second.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import psycopg
import pytest

from conftest import EXAMPLES, read_slots, ssh_environment_for
from releaser import datastore
from releaser.config import Environment
from releaser.errors import FleetReverted
from releaser.slots import SlotState
from cli.test_cli import invoke
from shell.test_data_slots import DSN_ENV, QUERIES, cluster, environment, live_releases, make_bundle  # noqa: F401
from shell.test_ssh_faults import hosts_with, lock_dirs, meta, script_of

pytestmark = pytest.mark.ssh

SERVERS = ("web-1", "web-2", "web-3")
DATABASE_TOML = f"""
[database]
schema = "phof"
dsn_env = "{DSN_ENV}"
connect_timeout = 2.0
fence_timeout = 2.0

[[database.smoke]]
name = "every indicator has an area"
sql = "SELECT count(*) FROM indicators i LEFT JOIN areas a ON a.code = i.area WHERE a.code IS NULL"
expect = 0
"""


def everywhere(live, backup, staging, *on_disk) -> dict[str, SlotState]:
    return {name: SlotState(live, backup, staging, frozenset(on_disk)) for name in SERVERS}


def data_slots(env: Environment) -> tuple:
    """(live, backup, staging, retired, pending) as the catalog says."""
    slots = datastore.read_data_slots(env)
    return slots.live, slots.backup, slots.staging, dict(slots.retired), slots.pending


def env_file(tmp_path: Path) -> str:
    """The environment file farm_env was loaded from, for `invoke ... --env`."""
    return str(tmp_path / "farm-db.toml")


@pytest.fixture
def farm_env(sshd_farm, environment, tmp_path) -> Environment:
    """The sshd farm's SSH environment with [database] aimed at the test's own database (the DSN in a variable)."""
    return ssh_environment_for(sshd_farm, Path(env_file(tmp_path)), extra=DATABASE_TOML)


def stage(fleet, env: Environment, base: Path, release: str, **data) -> None:
    """Stage an example release's files with data added to its bundle: upload to every server, load the data."""
    fleet.stage(make_bundle(base / "bundles", release, files_from=EXAMPLES / release, **data))


def release_morning(open_fleet, env: Environment, base: Path) -> None:
    """r1 live (files and data) and r2 staged (files and data): the morning of a release."""
    with open_fleet(env) as fleet:
        stage(fleet, env, base, "r1")
        fleet.go_live()
        stage(fleet, env, base, "r2")
    assert read_slots(env) == everywhere("r1", None, "r2", "r1", "r2")
    assert data_slots(env) == ("r1", None, "r2", {}, ())


# ---- the happy path ----

def test_stage_puts_the_files_on_every_server_and_the_data_in_staging(farm_env, open_fleet, tmp_path):
    """After stage the staged files are on all three servers and the data in phof__staging; live has nothing yet."""
    with open_fleet(farm_env) as fleet:
        stage(fleet, farm_env, tmp_path, "r1", rows=300)
    assert read_slots(farm_env) == everywhere(None, None, "r1", "r1")
    assert data_slots(farm_env) == (None, None, "r1", {}, ())
    with datastore.connect(farm_env.database, autocommit=True) as connection:
        assert connection.execute("SELECT count(*), min(release), max(release) FROM phof__staging.indicators"
                                  ).fetchone() == (300, "r1", "r1")
        assert connection.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'phof'").fetchone() == (0,)


def test_go_live_then_rollback_switch_files_and_data_together(farm_env, open_fleet, tmp_path):
    """Go-live makes r2 live on every server and in phof; rollback brings r1 back on both sides."""
    release_morning(open_fleet, farm_env, tmp_path)
    with open_fleet(farm_env) as fleet:
        fleet.go_live()
    assert read_slots(farm_env) == everywhere("r2", "r1", None, "r1", "r2")
    assert data_slots(farm_env) == ("r2", "r1", None, {}, ()) and live_releases(farm_env) == {"r2"}

    with open_fleet(farm_env) as fleet:
        fleet.rollback(reason="wrong figures in table 3")
    assert {name: (s.live, s.backup) for name, s in read_slots(farm_env).items()} == {n: ("r1", None) for n in SERVERS}
    assert data_slots(farm_env) == ("r1", None, None, {"phof__old_1": "r2"}, ()) and live_releases(farm_env) == {"r1"}
    assert lock_dirs(farm_env) == []


# ---- faults ----

def test_a_server_failing_at_commit_puts_the_data_back(farm_env, open_fleet, tmp_path):
    """web-2's prepared link vanishes before its rename: every server is put back, and so is the data."""
    release_morning(open_fleet, farm_env, tmp_path)
    prepared = meta(farm_env, "web-2") / "next-live"
    hosts = hosts_with(farm_env, "web-2", when=lambda argv, env: script_of(argv) == "commit", before=prepared.unlink)
    with open_fleet(farm_env, hosts=hosts) as fleet, pytest.raises(FleetReverted) as failure:
        fleet.go_live()
    assert "go-live failed on web-2" in str(failure.value) and "every server is back on r1" in str(failure.value)
    assert read_slots(farm_env) == everywhere("r1", None, "r2", "r1", "r2")
    assert data_slots(farm_env) == ("r1", None, "r2", {}, ()) and live_releases(farm_env) == {"r1"}
    assert lock_dirs(farm_env) == []


def test_the_database_failing_at_commit_puts_every_server_back(farm_env, open_fleet, tmp_path):
    """Between prepare and T someone rolls the prepared renames back: COMMIT PREPARED fails, the servers revert."""
    release_morning(open_fleet, farm_env, tmp_path)

    def someone_rolls_the_renames_back() -> None:
        with datastore.connect(farm_env.database, autocommit=True) as connection:
            assert datastore.roll_back_pending(connection, "phof")

    with open_fleet(farm_env) as fleet, pytest.raises(FleetReverted) as failure:
        fleet.go_live(before_commit=someone_rolls_the_renames_back)
    assert "database" in str(failure.value) and "every server is back on r1" in str(failure.value)
    assert read_slots(farm_env) == everywhere("r1", None, "r2", "r1", "r2")
    assert data_slots(farm_env) == ("r1", None, "r2", {}, ()) and live_releases(farm_env) == {"r1"}
    assert lock_dirs(farm_env) == []


def test_the_database_unreachable_at_t_puts_every_server_back(farm_env, open_fleet, cluster, tmp_path):
    """The cluster stops at the second: the servers revert; back up, the catalog still shows r1 live with the
    switch's transaction left prepared, which status and check report and the next go-live clears."""
    release_morning(open_fleet, farm_env, tmp_path)
    try:
        with open_fleet(farm_env) as fleet, pytest.raises(FleetReverted) as failure:
            fleet.go_live(before_commit=cluster.stop)
    finally:
        cluster.start()
    assert "database" in str(failure.value) and "every server is back on r1" in str(failure.value)
    assert read_slots(farm_env) == everywhere("r1", None, "r2", "r1", "r2")
    live, backup, staging, retired, pending = data_slots(farm_env)
    assert (live, backup, staging, retired, len(pending)) == ("r1", None, "r2", {}, 1)
    assert live_releases(farm_env) == {"r1"} and lock_dirs(farm_env) == []

    done = invoke("status", "--json", "--env", env_file(tmp_path))
    assert done.returncode == 0, done.stderr  # live data agrees: not MIXED, only a warning
    data = json.loads(done.stdout)["data"]
    assert (data["live"], data["staging"], data["agrees"], data["live_differs"]) == ("r1", "r2", False, False)
    assert data["pending"] == list(pending) and "left prepared" in data["problems"][0]

    with open_fleet(farm_env) as fleet:  # the next switch rolls the leftover back, then moves both sides
        fleet.go_live()
    assert read_slots(farm_env) == everywhere("r2", "r1", None, "r1", "r2")
    assert data_slots(farm_env) == ("r2", "r1", None, {}, ())


# ---- readers through the switch ----

def test_queries_through_go_live_and_rollback_on_the_farm_see_old_or_new_data_never_a_mix(farm_env, open_fleet,
                                                                                         tmp_path):
    """Four readers query both tables without pause while the fleet goes live with r2 over SSH, rolls back to r1
    and goes live with r2 again: every answer comes from one release, and both releases were seen."""
    release_morning(open_fleet, farm_env, tmp_path)
    stop = threading.Event()
    seen: list[tuple] = []
    broken: list[str] = []

    def read(query: str) -> None:
        with datastore.connect(farm_env.database, autocommit=True) as connection:
            while not stop.is_set():
                try:
                    seen.append(connection.execute(query).fetchone())
                except psycopg.errors.DeadlockDetected as error:  # a broken wait: the query saw nothing
                    broken.append(str(error))

    readers = [threading.Thread(target=read, args=(QUERIES[i % 2],), daemon=True) for i in range(4)]
    for reader in readers:
        reader.start()
    try:
        deadline = time.monotonic() + 10
        while len(seen) < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
        with open_fleet(farm_env) as fleet:
            fleet.go_live()
            fleet.rollback(reason="readers test")
            fleet.prune(keep=2)  # drops r2's retired data, so r2 can be staged again
            stage(fleet, farm_env, tmp_path / "again", "r2")
            fleet.go_live()
    finally:
        stop.set()
        for reader in readers:
            reader.join(10)
    mixed = [row for row in seen if row[0] != row[1]]
    assert not mixed, f"{len(mixed)} of {len(seen)} queries saw a mix, e.g. {mixed[:3]}"
    assert {row[0] for row in seen} == {"r1", "r2"} and len(broken) < len(seen) / 10
    assert {(s.live, s.backup) for s in read_slots(farm_env).values()} == {("r2", "r1")}
    assert data_slots(farm_env)[:3] == ("r2", "r1", None) and live_releases(farm_env) == {"r2"}


# ---- status and check show the data slots beside the servers' ----

def test_status_and_check_show_agreeing_data_then_fail_when_the_data_moved_alone(farm_env, open_fleet, tmp_path):
    """After go-live status has a database row agreeing with the servers and the data-slots check passes; when
    someone renames the schemas by hand so r1's data is live again, status exits 7 (MIXED) and the check FAILs."""
    release_morning(open_fleet, farm_env, tmp_path)
    with open_fleet(farm_env) as fleet:
        fleet.go_live()

    done = invoke("status", "--env", env_file(tmp_path))
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if "database (phof)" in line)
    header = next(line for line in done.stdout.splitlines() if line.startswith("┃"))
    cells = dict(zip([c.strip() for c in header.split("┃")[1:-1]], [c.strip() for c in row.split("│")[1:-1]]))
    assert (cells["live"], cells["public sees"], cells["backup"], cells["staging"]) == ("r2", "-", "r1", "-"), cells
    assert cells["health"] == "PASS agrees with the servers", cells
    checked = invoke("check", "--only", "data-slots", "--json", "--env", env_file(tmp_path))
    results = json.loads(checked.stdout)["results"]
    assert {(r["server"], r["status"]) for r in results} == {(name, "PASS") for name in SERVERS}

    with datastore.connect(farm_env.database, autocommit=True) as connection:  # the data alone goes back to r1
        with connection.transaction():
            connection.execute("ALTER SCHEMA phof RENAME TO phof__x")
            connection.execute("ALTER SCHEMA phof__backup RENAME TO phof")
            connection.execute("ALTER SCHEMA phof__x RENAME TO phof__backup")

    done = invoke("status", "--json", "--env", env_file(tmp_path))
    assert done.returncode == 7, done.stderr
    data = json.loads(done.stdout)["data"]
    assert (data["live"], data["backup"], data["live_differs"]) == ("r1", "r2", True)
    assert data["problems"] == ["live: the servers have r2, the database has r1",
                                "backup: the servers have r1, the database has r2"]
    table = invoke("status", "--env", env_file(tmp_path))
    assert table.returncode == 7 and "FAIL 2 disagreements, below" in table.stdout
    assert "files and data disagree: live: the servers have r2, the database has r1" in table.stderr
    checked = invoke("check", "--only", "data-slots", "--json", "--env", env_file(tmp_path))
    assert checked.returncode == 4
    results = json.loads(checked.stdout)["results"]
    assert {(r["server"], r["status"]) for r in results} == {(name, "FAIL") for name in SERVERS}
    assert results[0]["detail"].startswith("live: the servers have r2, the database has r1")


# ---- Ctrl-C during a stage's data load ----

def stage_big_r3(farm_env, tmp_path):
    """`invoke deploy --stage` of a release with 600,000 rows, returned once its COPY runs in the database."""
    import os
    import subprocess
    import sys

    from conftest import PROJECT

    make_bundle(tmp_path / "big", "r3", rows=600_000, files_from=EXAMPLES / "r2")
    environ = {**os.environ, "RELEASER_ACTOR": "cli@tests", "NO_COLOR": "1", "COLUMNS": "200"}
    process = subprocess.Popen([sys.executable, "-m", "invoke", "deploy", "--stage", "--release",
                                str(tmp_path / "big" / "r3"), "--env", env_file(tmp_path)], cwd=PROJECT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=environ)

    def copying() -> bool:
        with datastore.connect(farm_env.database, autocommit=True) as connection:
            return connection.execute("SELECT 1 FROM pg_stat_activity WHERE query LIKE 'COPY%%' "
                                      "AND pid <> pg_backend_pid()").fetchone() is not None
    deadline = time.monotonic() + 60
    while not copying() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    if process.poll() is not None:
        process.kill()
        pytest.fail(f"the stage ended before its COPY was seen: {process.communicate()}")
    return process


def test_the_database_stopping_mid_load_fails_the_stage_in_releasers_words_only(farm_env, open_fleet, cluster,
                                                                                tmp_path):
    """PostgreSQL stops while the stage's COPY runs: exit 5, staging still r2 on both sides, r3 removed from every
    server, and stderr holds releaser's own message only (no psycopg log line about a Copy object it dropped)."""
    release_morning(open_fleet, farm_env, tmp_path)
    process = stage_big_r3(farm_env, tmp_path)
    try:
        cluster.stop()
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        cluster.start()
    assert process.returncode == 5, err
    assert err.startswith("releaser: database: staging r3's data failed") and "psycopg" not in err, err
    assert read_slots(farm_env) == everywhere("r1", None, "r2", "r1", "r2")
    assert data_slots(farm_env) == ("r1", None, "r2", {}, ())


def test_ctrl_c_while_a_stage_loads_its_data_removes_the_unpacked_release_and_keeps_both_stagings(farm_env, open_fleet,
                                                                                              tmp_path):
    """SIGINT to `invoke deploy --stage` while its COPY runs: exit 130 within a few seconds, r3 (unpacked on every
    server just before the load) is removed again, staging is still r2 on every server and in the database, and
    the message says how far the stage had come."""
    import signal

    release_morning(open_fleet, farm_env, tmp_path)
    process = stage_big_r3(farm_env, tmp_path)
    try:
        pressed = time.monotonic()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
        took = time.monotonic() - pressed
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert took < 8, took
    assert "r3" in err and "removed" in err and "data" in err, err
    assert read_slots(farm_env) == everywhere("r1", None, "r2", "r1", "r2")
    assert data_slots(farm_env) == ("r1", None, "r2", {}, ())
    assert lock_dirs(farm_env) == []
