"""Data slots against a real PostgreSQL cluster: staging loads, switches with the coordinator, faults, readers."""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from conftest import EXAMPLES, read_slots
from pgcluster import PgCluster, pg_bindir
from releaser import datastore
from releaser.bundle import read_bundle, seal_directory
from releaser.config import Environment
from releaser.dataslots import judge_data_agreement
from releaser.errors import ConfigError, FleetReverted, PlanRefused
from releaser.participants import SwitchContext
from releaser.participants.database import DataSlotSwitch, participants
from releaser.switch import Deadlines, Decision, State, StepFailed, run_switch

pytestmark = pytest.mark.skipif(pg_bindir() is None, reason="PostgreSQL server binaries not installed")
DSN_ENV = "RELEASER_TEST_DATABASE_URL"
DEADLINES = Deadlines(prepare=10, commit=5, verify=5, revert=10)
SCHEMA_SQL = """
CREATE TABLE areas (code text PRIMARY KEY, release text NOT NULL);
CREATE TABLE indicators (id integer PRIMARY KEY, area text NOT NULL, release text NOT NULL, value double precision);
"""


@pytest.fixture(scope="module")
def cluster():
    """One private cluster per module (about a second to start); every test gets its own database in it."""
    with PgCluster() as running:
        yield running


@pytest.fixture
def environment(cluster, monkeypatch) -> Environment:
    """An environment with [database] aimed at a fresh database of the cluster, the DSN in a variable."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(cluster.dsn, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    monkeypatch.setenv(DSN_ENV, cluster.dsn.rsplit("/", 1)[0] + f"/{name}")
    return Environment.model_validate({
        "transport": "local",
        "servers": [{"name": "web-1", "root": "servers/web-1", "live_url": "http://127.0.0.1:1",
                     "staging_url": "http://127.0.0.1:2"}],
        "database": {"dsn_env": DSN_ENV, "schema": "phof", "connect_timeout": 2, "fence_timeout": 2,
                     "smoke": [{"name": "every indicator has an area",
                                "sql": "SELECT count(*) FROM indicators i LEFT JOIN areas a ON a.code = i.area "
                                       "WHERE a.code IS NULL", "expect": 0}]},
    })


def make_bundle(base: Path, release_id: str, *, rows: int = 50, claimed_rows: int | None = None,
                orphan: bool = False, files_from: Path | None = None):
    """A bundle directory with a schema script and two CSV tables, every row marked with the release id."""
    source = base / release_id
    if files_from is not None:
        shutil.copytree(files_from, source)
        (source / "manifest.json").unlink()
    (source / "data").mkdir(parents=True)
    (source / "index.html").write_text(f"<h1>{release_id}</h1>\n")
    (source / "data" / "schema.sql").write_text(SCHEMA_SQL)
    (source / "data" / "areas.csv").write_text("code,release\n" + "".join(f"E{i},{release_id}\n" for i in range(5)))
    lines = [f"{i},E{i % 5},{release_id},{i * 0.5}\n" for i in range(rows)]
    if orphan:
        lines.append(f"{rows},NOWHERE,{release_id},1.0\n")
    (source / "data" / "indicators.csv").write_text("id,area,release,value\n" + "".join(lines))
    loaded = rows + (1 if orphan else 0)
    return seal_directory(source, release_id, data_files=[
        {"file": "data/schema.sql", "format": "sql"},
        {"file": "data/areas.csv", "format": "csv", "table": "areas", "rows": 5},
        {"file": "data/indicators.csv", "format": "csv", "table": "indicators",
         "rows": loaded if claimed_rows is None else claimed_rows},
    ])


def live_releases(environment: Environment) -> set[str]:
    """The release ids found in the rows the application reads (schema phof), both tables."""
    with datastore.connect(environment.database, autocommit=True) as connection:
        rows = connection.execute("SELECT release FROM phof.areas UNION SELECT release FROM phof.indicators").fetchall()
    return {release for (release,) in rows}


class Recorder:
    """A stand-in for a server's links: moves a value, can fail at one step, and says where it ended."""

    def __init__(self, name: str = "web-1", *, fail_at: str | None = None) -> None:
        self.name = name
        self.fail_at = fail_at
        self.state = "old"

    def prepare(self, timeout: float) -> None:
        self._maybe_fail("prepare")

    def commit(self, timeout: float) -> float:
        self._maybe_fail("commit")
        self.state = "new"
        return time.time()

    def verify(self, timeout: float) -> None:
        self._maybe_fail("verify")

    def revert(self, timeout: float) -> None:
        self.state = "old"

    def abort(self, timeout: float) -> None:
        pass

    def _maybe_fail(self, step: str) -> None:
        if self.fail_at == step:
            raise StepFailed(f"{step} failed: test says so")


def switch(environment: Environment, action: str, target: str | None, previous: str | None, *others,
           before_commit=None):
    """Run one coordinator switch over the database participant and `others`; return the report."""
    database = DataSlotSwitch(environment.database, action, target, previous)
    try:
        return run_switch([database, *others], deadlines=DEADLINES, before_commit=before_commit,
                          keep_unhealthy=action == "rollback")
    finally:
        database.close()


def staged_and_live(environment: Environment, base: Path, *releases: str) -> None:
    """Stage and go live with each release in turn, so the last is live and the one before it backup."""
    previous = None
    for release in releases:
        datastore.load_staging(environment, make_bundle(base, release))
        report = switch(environment, "go-live", release, previous)
        assert report.decision is Decision.COMMITTED, report
        previous = release


# ---- stage ----

def test_stage_loads_every_table_with_copy_and_checks_counts_and_smoke(environment, tmp_path):
    """A staging load fills phof__staging, marks it with the release id and leaves live alone."""
    load = datastore.load_staging(environment, make_bundle(tmp_path, "r1", rows=1000))
    assert [(t.table, t.loaded) for t in load.tables] == [(None, None), ("areas", 5), ("indicators", 1000)]
    assert [(s.label, s.ok) for s in load.smoke] == [("every indicator has an area", True)]
    slots = datastore.read_data_slots(environment)
    assert (slots.live, slots.backup, slots.staging) == (None, None, "r1")
    with datastore.connect(environment.database, autocommit=True) as connection:
        assert connection.execute("SELECT count(*) FROM phof__staging.indicators").fetchone() == (1000,)


def test_stage_with_a_wrong_row_count_keeps_what_staging_held(environment, tmp_path):
    """The manifest says 60 rows, the file has 50: refused, and staging still holds r1."""
    datastore.load_staging(environment, make_bundle(tmp_path, "r1"))
    with pytest.raises(PlanRefused, match=r"loaded 50 rows into indicators, the manifest says 60"):
        datastore.load_staging(environment, make_bundle(tmp_path, "r2", claimed_rows=60))
    assert datastore.read_data_slots(environment).staging == "r1"


def test_stage_with_a_failing_smoke_query_is_refused(environment, tmp_path):
    """An indicator pointing at no area fails the smoke query, and nothing is staged."""
    with pytest.raises(PlanRefused, match=r"smoke query 'every indicator has an area' failed .*returned 1, expected 0"):
        datastore.load_staging(environment, make_bundle(tmp_path, "r1", orphan=True))
    slots = datastore.read_data_slots(environment)
    assert slots.staging is None and not slots.retired



def test_stage_whose_database_goes_silent_mid_load_ends_within_the_load_timeout(environment, tmp_path, monkeypatch):
    """The network to the database starts dropping packets as the first file loads: statement_timeout is the
    server's and never comes, yet the stage ends (HostUnreachable) within load_timeout and a little, not never."""
    from tcpproxy import TcpProxy

    from releaser.errors import HostUnreachable

    direct = os.environ[DSN_ENV]
    proxy = TcpProxy(int(direct.rsplit(":", 1)[1].split("/")[0]))
    monkeypatch.setenv(DSN_ENV, direct.replace(f":{proxy.target}/", f":{proxy.port}/"))
    quick = environment.model_copy(update={"database": environment.database.model_copy(update={"load_timeout": 2.0})})
    bundle = make_bundle(tmp_path, "r1")
    ended: list[BaseException | None] = []

    def load() -> None:
        try:
            datastore.load_staging(quick, bundle, on_progress=lambda text: proxy.drop())
            ended.append(None)
        except BaseException as error:
            ended.append(error)

    loading = threading.Thread(target=load, daemon=True)
    started = time.monotonic()
    try:
        loading.start()
        loading.join(20)
        took = time.monotonic() - started
    finally:
        proxy.close()
        monkeypatch.setenv(DSN_ENV, direct)
    assert not loading.is_alive(), "the stage still waits on the silent database"
    assert isinstance(ended[0], HostUnreachable) and "no answer within" in ended[0].what, ended
    assert took < 2.0 + 6, took
    assert datastore.read_data_slots(environment).staging is None


def test_stage_never_touches_the_live_release_data(environment, tmp_path):
    """Staging the id that is live is refused before anything is loaded."""
    staged_and_live(environment, tmp_path / "a", "r1")
    with pytest.raises(PlanRefused, match="r1's data is the live data"):
        datastore.load_staging(environment, make_bundle(tmp_path / "b", "r1"))
    assert live_releases(environment) == {"r1"}


# ---- go-live and rollback ----

def test_go_live_makes_staging_live_and_live_the_backup(environment, tmp_path):
    """Two go-lives: r2 is what phof holds, r1 is the backup, nothing is staged."""
    staged_and_live(environment, tmp_path, "r1", "r2")
    slots = datastore.read_data_slots(environment)
    assert (slots.live, slots.backup, slots.staging, slots.pending) == ("r2", "r1", None, ())
    assert live_releases(environment) == {"r2"}


def test_a_third_go_live_retires_the_oldest_data_and_prune_drops_it(environment, tmp_path):
    """r1's data moves to phof__old_1 (kept); prune drops it, never a slot's schema."""
    staged_and_live(environment, tmp_path, "r1", "r2", "r3")
    slots = datastore.read_data_slots(environment)
    assert (slots.live, slots.backup, dict(slots.retired)) == ("r3", "r2", {"phof__old_1": "r1"})
    assert datastore.prune_data(environment, keep_ids=["r1"]) == ()
    assert datastore.prune_data(environment) == ("phof__old_1",)
    slots = datastore.read_data_slots(environment)
    assert (slots.live, slots.backup, dict(slots.retired)) == ("r3", "r2", {})


def test_rollback_puts_the_backup_data_back_live(environment, tmp_path):
    """After rollback phof holds r1 again, there is no backup, and r2's data is kept retired."""
    staged_and_live(environment, tmp_path, "r1", "r2")
    report = switch(environment, "rollback", "r1", "r2")
    assert report.decision is Decision.COMMITTED, report
    slots = datastore.read_data_slots(environment)
    assert (slots.live, slots.backup, dict(slots.retired)) == ("r1", None, {"phof__old_1": "r2"})
    assert live_releases(environment) == {"r1"}


def test_staging_a_rolled_back_release_again_replaces_its_retired_copy(environment, tmp_path):
    """Rollback retires r2's data; staging r2 again drops that copy, so one schema carries r2's comment (an
    application finding its data by the release it runs cannot read the retired one), and the new r2 goes live."""
    staged_and_live(environment, tmp_path, "r1", "r2")
    assert switch(environment, "rollback", "r1", "r2").decision is Decision.COMMITTED
    assert dict(datastore.read_data_slots(environment).retired) == {"phof__old_1": "r2"}

    datastore.load_staging(environment, make_bundle(tmp_path / "again", "r2"))
    slots = datastore.read_data_slots(environment)
    assert (slots.live, slots.staging, dict(slots.retired)) == ("r1", "r2", {})
    assert switch(environment, "go-live", "r2", "r1").decision is Decision.COMMITTED
    slots = datastore.read_data_slots(environment)
    assert (slots.live, slots.backup, dict(slots.retired)) == ("r2", "r1", {})


def test_go_live_refuses_when_the_database_staged_another_release(environment, tmp_path):
    """Files going live with r3 while the data staged is r2: refused at prepare, nothing moves."""
    staged_and_live(environment, tmp_path, "r1")
    datastore.load_staging(environment, make_bundle(tmp_path, "r2"))
    servers = Recorder()
    report = switch(environment, "go-live", "r3", "r1", servers)
    assert report.decision is Decision.REFUSED
    assert "staging holds r2's data, not r3's" in report.cause["database"]
    assert servers.state == "old" and live_releases(environment) == {"r1"}
    assert datastore.read_data_slots(environment).pending == ()


# ---- faults ----

def test_a_server_failing_at_commit_puts_the_data_back(environment, tmp_path):
    """web-1's commit fails: the database's committed renames are reversed, phof holds r1 again."""
    staged_and_live(environment, tmp_path, "r1")
    datastore.load_staging(environment, make_bundle(tmp_path, "r2"))
    report = switch(environment, "go-live", "r2", "r1", Recorder(fail_at="commit"))
    assert report.decision is Decision.REVERTED
    assert report.outcome("database").state in (State.REVERTED, State.ABORTED)
    slots = datastore.read_data_slots(environment)
    assert (slots.live, slots.backup, slots.staging, slots.pending) == ("r1", None, "r2", ())
    assert live_releases(environment) == {"r1"}


def test_the_database_failing_at_commit_puts_the_servers_back(environment, tmp_path):
    """The prepared renames vanish before T (rolled back by someone): the database reports it, web-1 is reverted."""
    staged_and_live(environment, tmp_path, "r1")
    datastore.load_staging(environment, make_bundle(tmp_path, "r2"))
    servers = Recorder()

    def someone_rolls_it_back() -> None:
        with datastore.connect(environment.database, autocommit=True) as connection:
            assert datastore.roll_back_pending(connection, "phof")

    report = switch(environment, "go-live", "r2", "r1", servers, before_commit=someone_rolls_it_back)
    assert report.decision is Decision.REVERTED
    assert report.outcome("database").state is State.FAILED
    assert "COMMIT PREPARED failed" in report.cause["database"]
    assert report.outcome("web-1").state is State.REVERTED and servers.state == "old"
    assert live_releases(environment) == {"r1"}


def test_the_database_unreachable_at_t_puts_the_servers_back_and_the_data_never_moves(environment, cluster, tmp_path):
    """The cluster is down at the second: web-1 is reverted; once it is back, phof holds r1 and the leftover
    prepared transaction is rolled back by the next prune."""
    staged_and_live(environment, tmp_path, "r1")
    datastore.load_staging(environment, make_bundle(tmp_path, "r2"))
    servers = Recorder()
    try:
        report = switch(environment, "go-live", "r2", "r1", servers, before_commit=cluster.stop)
    finally:
        cluster.start()
    assert report.decision is Decision.REVERTED, report.outcomes
    assert "unreachable at T" in report.cause["database"]
    assert servers.state == "old"
    slots = datastore.read_data_slots(environment)
    assert (slots.live, slots.staging) == ("r1", "r2") and len(slots.pending) == 1  # it survived the restart
    datastore.prune_data(environment)
    assert datastore.read_data_slots(environment).pending == ()
    assert live_releases(environment) == {"r1"}



def test_a_database_gone_silent_at_t_is_never_sent_the_commit_and_the_servers_are_put_back(environment, tmp_path,
                                                                                          monkeypatch):
    """Between prepare and T every packet to the database starts to vanish (nothing is closed): the fence gets no
    answer, so COMMIT PREPARED is never sent. The commit fails within about the fence timeout, not the commit
    deadline, as a clean failure (the data did not move): web-1 is put back and the switch is REVERTED, not MIXED."""
    from tcpproxy import TcpProxy

    staged_and_live(environment, tmp_path, "r1")
    datastore.load_staging(environment, make_bundle(tmp_path, "r2"))
    direct = os.environ[DSN_ENV]
    proxy = TcpProxy(int(direct.rsplit(":", 1)[1].split("/")[0]))
    monkeypatch.setenv(DSN_ENV, direct.replace(f":{proxy.target}/", f":{proxy.port}/"))
    servers = Recorder()
    try:
        started = time.monotonic()
        report = switch(environment, "go-live", "r2", "r1", servers, before_commit=proxy.drop)
        took = time.monotonic() - started
    finally:
        proxy.close()
        monkeypatch.setenv(DSN_ENV, direct)
    assert report.decision is Decision.REVERTED, report.outcomes
    database = report.outcome("database")
    assert not database.may_have_moved and "COMMIT PREPARED was not sent" in database.detail, database
    assert servers.state == "old"
    assert took < DEADLINES.commit + 1, took  # the fence (2 s + 1 s) and the abort (connect_timeout 2 s), not lost
    slots = datastore.read_data_slots(environment)
    assert (slots.live, slots.staging) == ("r1", "r2") and live_releases(environment) == {"r1"}


def test_a_switch_left_prepared_in_another_database_of_the_cluster_is_not_this_ones(environment, cluster, tmp_path):
    """Another database on the same cluster has the same schema name and a switch transaction left prepared: this
    environment's data slots do not list it (its next switch could not roll it back: it belongs to the other)."""
    other = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(cluster.dsn, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{other}"')
    with psycopg.connect(cluster.dsn.rsplit("/", 1)[0] + f"/{other}") as connection:
        connection.execute("CREATE SCHEMA phof")
        connection.execute("PREPARE TRANSACTION 'releaser:phof:go-live:elsewhere'")
    try:
        staged_and_live(environment, tmp_path, "r1")
        assert datastore.read_data_slots(environment).pending == ()
    finally:
        with psycopg.connect(cluster.dsn.rsplit("/", 1)[0] + f"/{other}", autocommit=True) as connection:
            connection.execute("ROLLBACK PREPARED 'releaser:phof:go-live:elsewhere'")


def test_ctrl_c_while_the_database_prepare_waits_on_a_lock_cancels_at_once(environment, tmp_path):
    """Someone's open transaction holds phof__staging's catalog row, so the prepare's rename waits (up to the
    prepare deadline). Ctrl-C then cancels the switch within a second or two, not when that wait ends: the
    rename is cancelled in the database, nothing is left prepared and both slots are as they were."""
    import _thread

    from releaser.switch import PrepareCancelled

    staged_and_live(environment, tmp_path, "r1")
    datastore.load_staging(environment, make_bundle(tmp_path, "r2"))
    blocker = datastore.open_connection(environment.database)
    blocker.execute("ALTER SCHEMA phof__staging RENAME TO phof__elsewhere")
    blocker.execute("ALTER SCHEMA phof__elsewhere RENAME TO phof__staging")

    def waiting() -> bool:
        with datastore.connect(environment.database, autocommit=True) as connection:
            return connection.execute("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                      "AND query LIKE 'ALTER SCHEMA%%' AND datname = current_database()"
                                      ).fetchone() is not None

    def press_when_waiting() -> None:
        deadline = time.monotonic() + 10
        while not waiting() and time.monotonic() < deadline:
            time.sleep(0.02)
        pressed.append(time.monotonic())
        _thread.interrupt_main()

    pressed: list[float] = []
    presser = threading.Thread(target=press_when_waiting, daemon=True)
    servers = Recorder()
    try:
        presser.start()
        with pytest.raises(PrepareCancelled):
            switch(environment, "go-live", "r2", "r1", servers)
        took = time.monotonic() - pressed[0]
    finally:
        blocker.rollback()
        blocker.close()
    assert took < 3, took  # the prepare deadline here is 10 s
    slots = datastore.read_data_slots(environment)
    assert (slots.live, slots.staging, slots.pending) == ("r1", "r2", ()) and servers.state == "old"


# ---- readers through the switch ----

QUERIES = [
    # one statement reading both tables: both answers must come from one release
    "SELECT (SELECT min(release) FROM phof.areas), (SELECT max(release) FROM phof.indicators)",
    "SELECT min(a.release), max(i.release) FROM phof.areas a JOIN phof.indicators i ON i.area = a.code",
]


def test_queries_running_through_switches_see_old_or_new_data_never_a_mix(environment, tmp_path):
    """Four readers query both tables without pause while the data goes live, rolls back and goes live again."""
    staged_and_live(environment, tmp_path / "a", "r1")
    datastore.load_staging(environment, make_bundle(tmp_path / "b", "r2", rows=2000))
    stop = threading.Event()
    seen: list[tuple] = []
    errors: list[str] = []

    def read(query: str) -> None:
        with datastore.connect(environment.database, autocommit=True) as connection:
            while not stop.is_set():
                try:
                    seen.append(connection.execute(query).fetchone())
                except psycopg.errors.DeadlockDetected as error:  # PostgreSQL broke a wait; the query saw nothing
                    errors.append(str(error))

    readers = [threading.Thread(target=read, args=(QUERIES[i % 2],), daemon=True) for i in range(4)]
    for reader in readers:
        reader.start()
    try:
        deadline = time.monotonic() + 10
        while len(seen) < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
        for action, target, previous in [("go-live", "r2", "r1"), ("rollback", "r1", "r2")] * 3:
            if action == "go-live" and target == "r2" and datastore.read_data_slots(environment).staging != "r2":
                datastore.prune_data(environment)
                datastore.load_staging(environment, make_bundle(tmp_path / uuid.uuid4().hex, "r2", rows=2000))
            assert switch(environment, action, target, previous).decision is Decision.COMMITTED
    finally:
        stop.set()
        for reader in readers:
            reader.join(10)
    mixed = [row for row in seen if row[0] != row[1]]
    assert not mixed, f"{len(mixed)} of {len(seen)} queries saw a mix, e.g. {mixed[:3]}"
    assert {row[0] for row in seen} == {"r1", "r2"}
    assert len(errors) < len(seen) / 10


def test_a_transaction_reading_the_old_data_at_t_finishes_on_the_old_data(environment, tmp_path):
    """A transaction has read phof.areas when T comes: the switch waits for it (the fence), so its next
    statement still reads r1's indicators, and the next transaction reads r2's. Without the fence the
    second statement would resolve phof.indicators to the new schema: half old, half new."""
    staged_and_live(environment, tmp_path, "r1")
    datastore.load_staging(environment, make_bundle(tmp_path, "r2"))
    with datastore.connect(environment.database) as reader, \
            datastore.connect(environment.database, autocommit=True) as watcher:
        first = reader.execute("SELECT min(release) FROM phof.areas").fetchone()[0]
        result = {}
        switching = threading.Thread(target=lambda: result.setdefault(
            "report", switch(environment, "go-live", "r2", "r1")), daemon=True)
        switching.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not watcher.execute(
                "SELECT 1 FROM pg_locks WHERE NOT granted AND mode = 'AccessExclusiveLock'").fetchone():
            time.sleep(0.01)  # poll until the fence is waiting for this transaction
        second = reader.execute("SELECT min(release) FROM phof.indicators").fetchone()[0]
        reader.commit()
        switching.join(10)
        after = reader.execute("SELECT (SELECT min(release) FROM phof.areas), "
                               "(SELECT min(release) FROM phof.indicators)").fetchone()
        reader.commit()
    assert (first, second) == ("r1", "r1")
    assert result["report"].decision is Decision.COMMITTED and after == ("r2", "r2")


# ---- through the fleet: the sandbox servers' links and the database in one switch ----

@pytest.fixture
def fleet_env(local_env, environment) -> Environment:
    """Three sandbox servers (conftest's local_env) plus the [database] of `environment`."""
    return local_env.model_copy(update={"database": environment.database})


def stage_both(fleet, environment: Environment, base: Path, release: str) -> None:
    """Stage the example release's files, with data added to its bundle: fleet.stage loads both."""
    fleet.stage(make_bundle(base / "bundles", release, files_from=EXAMPLES / release))
    assert datastore.read_data_slots(environment).staging == release


def test_fleet_go_live_switches_files_and_data_together(fleet_env, open_fleet, tmp_path):
    """After two go-lives every server and the database hold r2 live and r1 as backup."""
    with open_fleet(fleet_env) as fleet:
        for release in ("r1", "r2"):
            stage_both(fleet, fleet_env, tmp_path, release)
            fleet.go_live()
    assert {(s.live, s.backup) for s in read_slots(fleet_env).values()} == {("r2", "r1")}
    data = datastore.read_data_slots(fleet_env)
    assert (data.live, data.backup) == ("r2", "r1") and live_releases(fleet_env) == {"r2"}
    assert judge_data_agreement({"live": "r2", "backup": "r1", "staging": None}, data) == []


def test_fleet_stage_with_bad_data_moves_no_staging_and_removes_the_unpacked_release(fleet_env, open_fleet, tmp_path):
    """r2's data loads 50 rows where the manifest says 60: no server's staging moves, r2 leaves the disks."""
    with open_fleet(fleet_env) as fleet:
        stage_both(fleet, fleet_env, tmp_path, "r1")
        with pytest.raises(PlanRefused, match="the manifest says 60"):
            fleet.stage(make_bundle(tmp_path / "bundles", "r2", claimed_rows=60, files_from=EXAMPLES / "r2"))
    assert {(s.staging, "r2" in s.on_disk) for s in read_slots(fleet_env).values()} == {("r1", False)}
    assert datastore.read_data_slots(fleet_env).staging == "r1"


def test_fleet_go_live_failing_verification_puts_files_and_data_back(fleet_env, open_fleet, tmp_path):
    """r3's health check fails on the servers: the data committed with them and is renamed back to r2."""
    with open_fleet(fleet_env) as fleet:
        for release in ("r1", "r2"):
            stage_both(fleet, fleet_env, tmp_path, release)
            fleet.go_live()
        stage_both(fleet, fleet_env, tmp_path, "r3")
        with pytest.raises(FleetReverted, match="every server is back on r2"):
            fleet.go_live()
    assert {(s.live, s.backup, s.staging) for s in read_slots(fleet_env).values()} == {("r2", "r1", "r3")}
    data = datastore.read_data_slots(fleet_env)
    assert (data.live, data.backup, data.staging, data.pending) == ("r2", "r1", "r3", ())


def test_fleet_rollback_puts_the_backup_files_and_data_back(fleet_env, open_fleet, tmp_path):
    """Rollback through the fleet: r1 live on every server and in the database."""
    with open_fleet(fleet_env) as fleet:
        for release in ("r1", "r2"):
            stage_both(fleet, fleet_env, tmp_path, release)
            fleet.go_live()
        fleet.rollback(reason="bad figures")
    assert {s.live for s in read_slots(fleet_env).values()} == {"r1"}
    assert datastore.read_data_slots(fleet_env).live == "r1" and live_releases(fleet_env) == {"r1"}


def test_a_go_live_whose_fence_timed_out_says_the_data_came_late(fleet_env, open_fleet, tmp_path):
    """A reader holding r1's table past fence_timeout (2 s here): the switch goes ahead without the fence, the data
    commits that much after the servers, and the result says so instead of a plain OK."""
    with open_fleet(fleet_env) as fleet:
        stage_both(fleet, fleet_env, tmp_path, "r1")
        fleet.go_live()
        stage_both(fleet, fleet_env, tmp_path, "r2")
        with psycopg.connect(os.environ[DSN_ENV]) as reader:
            reader.execute("SELECT count(*) FROM phof.indicators").fetchone()  # its transaction holds the table
            result = fleet.go_live()
            reader.rollback()
    assert {s.live for s in read_slots(fleet_env).values()} == {"r2"} and datastore.read_data_slots(fleet_env).live == "r2"
    [warning] = [w for w in result.warnings if w.startswith("database:")]
    assert "went ahead without the fence" in warning and "after the commit phase began" in warning, warning


def test_a_go_live_whose_database_went_down_after_prepare_says_its_renames_stay_prepared(fleet_env, open_fleet, tmp_path,
                                                                                          cluster, monkeypatch):
    """The cluster stops once the database has prepared: the commit cannot reach it, the servers go back, and the
    rollback of the prepared renames cannot reach it either. The message says the renames stay prepared (by
    their id) until the next switch, stage or prune, which, once the cluster is back, rolls them back.
    (QA: the message said only that the commit failed; pg_prepared_xacts kept the transaction, unsaid.)"""
    with open_fleet(fleet_env) as fleet:
        stage_both(fleet, fleet_env, tmp_path, "r1")
        fleet.go_live()
        stage_both(fleet, fleet_env, tmp_path, "r2")
        prepare = DataSlotSwitch.prepare

        def prepare_then_stop(self, *args, **kwargs):
            prepare(self, *args, **kwargs)
            cluster.stop()
        monkeypatch.setattr(DataSlotSwitch, "prepare", prepare_then_stop)
        try:
            with pytest.raises(FleetReverted) as failure:
                fleet.go_live()
        finally:
            cluster.start()
        monkeypatch.setattr(DataSlotSwitch, "prepare", prepare)
        [pending] = datastore.read_data_slots(fleet_env).pending
        message = str(failure.value)
        assert "every server is back on r1" in message and f"its renames stay prepared in the database as {pending}" in message
        assert "until the next switch, stage or prune rolls them back" in message, message
        assert "temporary links" not in message, message
        fleet.prune()
    assert datastore.read_data_slots(fleet_env).pending == ()
    assert {s.live for s in read_slots(fleet_env).values()} == {"r1"} and live_releases(fleet_env) == {"r1"}


def test_a_rollback_without_the_connection_string_is_a_config_error_and_moves_nothing(fleet_env, open_fleet, tmp_path,
                                                                                       monkeypatch):
    """$DSN_ENV unset at 09:31: one line saying which variable to set (exit 2), not "the database did not answer",
    and neither the servers nor the data move."""
    with open_fleet(fleet_env) as fleet:
        for release in ("r1", "r2"):
            stage_both(fleet, fleet_env, tmp_path, release)
            fleet.go_live()
    dsn = os.environ[DSN_ENV]
    monkeypatch.delenv(DSN_ENV)
    with open_fleet(fleet_env) as fleet, pytest.raises(ConfigError) as refused:
        fleet.rollback(reason="bad figures")
    assert refused.value.exit_code == 2 and f"${DSN_ENV}, which is not set" in str(refused.value)
    assert "did not answer" not in str(refused.value)
    assert {(s.live, s.backup) for s in read_slots(fleet_env).values()} == {("r2", "r1")}
    monkeypatch.setenv(DSN_ENV, dsn)
    assert datastore.read_data_slots(fleet_env).live == "r2"


# ---- which switches the database takes part in ----

def test_the_database_takes_part_only_in_go_live_and_rollback(environment):
    """No participant for a stage or a rehearsal, or without [database]; one for go-live and rollback."""
    def context(env, action, rehearsal=False):
        return SwitchContext(env, {}, {}, action, "live", {}, "r2", "r1", rehearsal=rehearsal)

    assert [p.name for p in participants(context(environment, "go-live"))] == ["database"]
    assert [p.name for p in participants(context(environment, "rollback"))] == ["database"]
    assert participants(context(environment, "stage")) == []
    assert participants(context(environment, "rehearsal", rehearsal=True)) == []
    assert participants(context(environment.model_copy(update={"database": None}), "go-live")) == []
