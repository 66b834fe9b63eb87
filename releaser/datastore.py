"""The data slots in PostgreSQL: load a release's data into staging, read the slots, prune retired data.

The shell half of releaser.dataslots: every psycopg call outside the switch participant lives here, and every
psycopg connection error becomes HostUnreachable("database", ...) at this edge. Schema and table names are
validated in dataslots/config/bundle and still always quoted with psycopg.sql.Identifier.

    load_staging(environment, bundle)     COPY / run every data file into <schema>__loading, check the row
                                          counts, run the smoke queries, then (same transaction) replace
                                          <schema>__staging with it: staging changes only if all of it passed
    read_data_slots(environment)          which release's data each data slot holds, from the catalog
    prune_data(environment, keep_ids)     drop retired data schemas no slot and no kept release names
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import tarfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

import psycopg
from psycopg import sql

from releaser.bundle import Bundle, DataFile
from releaser.config import Database, Environment
from releaser.dataslots import (DataSlots, Rename, judge_smoke_value, marker, plan_data_prune, read_slots,
                                retired_copies, schema_names)
from releaser.errors import HostUnreachable, PlanRefused

GID_PREFIX = "releaser:"
_BLOCK = 1 << 20


@dataclass(frozen=True)
class TableLoad:
    """One data file loaded: where, how many rows it must and did load, and how long it took."""

    file: str
    table: str | None
    expected: int | None
    loaded: int | None
    seconds: float


@dataclass(frozen=True)
class SmokeResult:
    """One smoke query against a data slot: its label, whether it passed, and why not."""

    label: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class StagingLoad:
    """A finished staging load: the release, each file's load, the smoke results, and the seconds it took."""

    release_id: str
    tables: tuple[TableLoad, ...]
    smoke: tuple[SmokeResult, ...]
    seconds: float

    @property
    def rows(self) -> int:
        """Rows loaded over all files."""
        return sum(t.loaded or 0 for t in self.tables)


def gid_prefix(schema: str) -> str:
    """The start of every two-phase transaction id releaser prepares for this schema."""
    return f"{GID_PREFIX}{schema}:"


@contextmanager
def connect(database: Database, *, environ: Mapping[str, str] | None = None, timeout: float | None = None,
            autocommit: bool = False) -> Iterator[psycopg.Connection]:
    """An open connection to the environment's database, closed afterwards; HostUnreachable if it cannot open."""
    connection = open_connection(database, environ=environ, timeout=timeout, autocommit=autocommit)
    try:
        yield connection
    finally:
        connection.close()


def open_connection(database: Database, *, environ: Mapping[str, str] | None = None, timeout: float | None = None,
                    autocommit: bool = False) -> psycopg.Connection:
    """Open a connection (the caller closes it); HostUnreachable if the database does not answer."""
    dsn = database.dsn(os.environ if environ is None else environ)
    seconds = max(1, round(min(timeout or database.connect_timeout, database.connect_timeout)))
    try:
        return psycopg.connect(dsn, connect_timeout=seconds, autocommit=autocommit,
                               application_name="releaser")
    except psycopg.OperationalError as error:
        raise HostUnreachable("database", f"cannot connect: {_first_line(error)}",
                              hint=f"check that PostgreSQL is up and ${database.dsn_env} is right") from error


def read_data_slots(environment: Environment) -> DataSlots | None:
    """Which release's data each data slot holds (None when the environment has no [database])."""
    database = environment.database
    if database is None:
        return None
    with connect(database, autocommit=True) as connection:
        return read_slots_on(connection, database.schema_name)


def read_slots_on(connection: psycopg.Connection, schema: str) -> DataSlots:
    """Read the data slots through an open connection (inside its transaction, if one is open)."""
    prefix = f"{schema}\\_\\_%"
    rows = connection.execute(
        "SELECT nspname, obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = %s OR nspname LIKE %s",
        (schema, prefix)).fetchall()
    pending = [gid for (gid,) in connection.execute(
        "SELECT gid FROM pg_prepared_xacts WHERE gid LIKE %s AND database = current_database() ORDER BY prepared",
        (gid_prefix(schema) + "%",))]
    return read_slots(schema, dict(rows), pending)


def roll_back_pending(connection: psycopg.Connection, schema: str) -> list[str]:
    """Roll back switch transactions left prepared by a switch that lost the database; return their ids.

    Such a transaction never committed (its switch was reverted or reported), and while it stays prepared it
    holds the slot schemas' catalog rows, so every later load or switch would wait on it. The deploy lock
    guarantees no other switch is running. The connection must be in autocommit mode.
    """
    gids = [gid for (gid,) in connection.execute(
        "SELECT gid FROM pg_prepared_xacts WHERE gid LIKE %s AND database = current_database()",
        (gid_prefix(schema) + "%",))]
    for gid in gids:
        connection.execute(sql.SQL("ROLLBACK PREPARED {}").format(sql.Literal(gid)))
    return gids


def load_staging(environment: Environment, bundle: Bundle, release_id: str | None = None, *,
                 on_progress=None) -> StagingLoad | None:
    """Load the bundle's data into the staging data slot: COPY, row counts, smoke queries, all or nothing.

    Returns None when the environment has no [database]. Raises PlanRefused when the release carries no
    data, a count differs, a smoke query fails or a file's checksum changed (staging keeps what it held),
    and HostUnreachable when the database does not answer.
    """
    database = environment.database
    if database is None:
        return None
    release_id = release_id or bundle.release_id
    files = bundle.manifest.data_files
    if not files:
        raise PlanRefused(f"release {release_id} carries no data, but {environment.name or 'the environment'} "
                          f"declares [database] (schema {database.schema_name})",
                          hint="list the release's data in manifest.json data_files and rebuild it")
    progress = on_progress or (lambda text: None)
    names = schema_names(database.schema_name)
    started = time.perf_counter()
    bound = database.load_timeout + LOAD_GRACE_S
    with connect(database, autocommit=True) as connection, silent_after(connection, bound) as silent:
        try:
            slots = read_slots_on(connection, database.schema_name)
            for guarded in ("live", "backup"):
                if slots.slot(guarded) == release_id:
                    raise PlanRefused(f"release {release_id}'s data is the {guarded} data; staging must never touch it",
                                      hint="build the change as a new release id and stage that")
            roll_back_pending(connection, database.schema_name)
            connection.autocommit = False
            try:
                with connection.transaction():
                    connection.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(
                        sql.Literal(f"{int(database.load_timeout * 1000)}ms")))
                    connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(names.loading)))
                    connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(names.loading)))
                    connection.execute(sql.SQL("SET LOCAL search_path = {}").format(sql.Identifier(names.loading)))
                    loads = []
                    for data in files:
                        progress(f"loading {data.file}")
                        loads.append(_load_file(connection, bundle, data))
                    smoke = tuple(run_smoke(connection, database.smoke))
                    failed = [s for s in smoke if not s.ok]
                    if failed:
                        raise PlanRefused(f"smoke query {failed[0].label!r} failed on {release_id}'s staged data: "
                                          f"{failed[0].detail}; staging keeps {slots.staging or 'nothing'}",
                                          hint="fix the data or the query and stage again")
                    # Replace staging only now, so its readers (the staging instance) wait a moment, not the whole load.
                    connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(names.staging)))
                    for retired in retired_copies(slots, release_id):  # one schema per release id carries its comment
                        connection.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(retired)))
                    _rename(connection, Rename(names.loading, names.staging))
                    connection.execute(sql.SQL("COMMENT ON SCHEMA {} IS {}").format(
                        sql.Identifier(names.staging), sql.Literal(marker(release_id))))
            except psycopg.OperationalError:
                raise
            except psycopg.Error as error:
                raise PlanRefused(f"staging {release_id}'s data failed: {_first_line(error)}; "
                                  f"staging keeps {slots.staging or 'nothing'}",
                                  hint="fix the data file it names and stage again") from error
        except psycopg.OperationalError as error:
            why = f"no answer within {bound:g} s (load_timeout + {LOAD_GRACE_S:g} s)" if silent.fired else _first_line(error)
            raise HostUnreachable("database", f"staging {release_id}'s data failed: {why}",
                                  hint="staging keeps what it held; check the database and stage again") from error
    return StagingLoad(release_id, tuple(loads), smoke, time.perf_counter() - started)


# psycopg logs what it drops on a connection already lost ("error ignored terminating <psycopg.Copy [BAD]>"); with no
# handler Python prints that to stderr beside releaser's own message, which already says the connection was lost
logging.getLogger("psycopg").addHandler(logging.NullHandler())

LOAD_GRACE_S = 5.0  # past load_timeout (the server's statement_timeout), how long the client waits for its answer


class _Silence:
    fired = False


def shut_down_session(connection: psycopg.Connection) -> None:
    """Shut the session's socket down from this side, so a call waiting on it in any thread ends at once (it sees
    the session break): the one way out of a wait on a silent database, whose own timeouts never arrive."""
    try:
        socket.socket(fileno=os.dup(connection.pgconn.socket)).shutdown(socket.SHUT_RDWR)
    except (OSError, psycopg.Error):
        pass  # already closed: nothing is waiting on it


@contextmanager
def silent_after(connection: psycopg.Connection, seconds: float) -> Iterator[_Silence]:
    """Past `seconds`, shut the session's socket down, so a call waiting on a silent database ends (it raises
    OperationalError; `fired` says why). statement_timeout is the server's: a server gone silent (stopped, or the
    network dropping packets) never sends it, and without this the client would wait for ever."""
    silence = _Silence()

    def fire() -> None:
        silence.fired = True
        shut_down_session(connection)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield silence
    finally:
        timer.cancel()


def run_smoke(connection: psycopg.Connection, queries: Sequence, *, read_only: bool = False) -> Iterator[SmokeResult]:
    """Run each smoke query in its own savepoint, on the connection's current search_path."""
    for query in queries:
        try:
            with connection.transaction():
                row = connection.execute(query.sql).fetchone()
        except psycopg.OperationalError:
            raise
        except psycopg.Error as error:
            yield SmokeResult(query.label, False, _first_line(error))
            continue
        why = judge_smoke_value(row, query.expect)
        yield SmokeResult(query.label, why is None, why or "")


def prune_data(environment: Environment, keep_ids: Sequence[str] = ()) -> tuple[str, ...]:
    """Drop the retired data schemas that no slot and no release in `keep_ids` names; return what was dropped.

    Also drops a load that never finished (<schema>__loading). Never drops live, backup or staging.
    """
    database = environment.database
    if database is None:
        return ()
    names = schema_names(database.schema_name)
    with connect(database, autocommit=True) as connection:
        roll_back_pending(connection, database.schema_name)
        slots = read_slots_on(connection, database.schema_name)
        doomed = plan_data_prune(slots, keep_ids)
        with connection.transaction():
            for schema in doomed:
                connection.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
            connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(names.loading)))
    return doomed


def live_tables(connection: psycopg.Connection, schema: str) -> list[str]:
    """The tables (and materialized views) in one schema, sorted: what the switch's fence locks."""
    return [name for (name,) in connection.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'm') ORDER BY c.relname", (schema,))]


def rename_sql(rename: Rename) -> sql.Composed:
    """ALTER SCHEMA old RENAME TO new, both names quoted."""
    return sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(rename.old), sql.Identifier(rename.new))


def fence_sql(schema: str, tables: Sequence[str]) -> sql.Composed:
    """LOCK every table of a schema at once, in ACCESS EXCLUSIVE mode (see participants.database)."""
    return sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
        sql.SQL(", ").join(sql.Identifier(schema, table) for table in tables))


def _rename(connection: psycopg.Connection, rename: Rename) -> None:
    connection.execute(rename_sql(rename))


def _load_file(connection: psycopg.Connection, bundle: Bundle, data: DataFile) -> TableLoad:
    """Load one data file inside the open transaction, checking its sha256 as it streams and its row count."""
    started = time.perf_counter()
    digest = hashlib.sha256()
    with _open_member(bundle, data.file) as handle:
        if data.format == "csv":
            statement = sql.SQL("COPY {} FROM STDIN WITH (FORMAT csv, HEADER true)").format(sql.Identifier(data.table))
            with connection.cursor() as cursor:
                with cursor.copy(statement) as copy:
                    while block := handle.read(_BLOCK):
                        digest.update(block)
                        copy.write(block)
                loaded = cursor.rowcount
        else:
            text = handle.read()
            digest.update(text)
            connection.execute(text.decode("utf-8"))
            loaded = None
    if digest.hexdigest() != bundle.manifest.files.get(data.file):
        raise PlanRefused(f"{data.file} changed since the bundle was checked (sha256 differs from the manifest)",
                          hint="rebuild the bundle with: invoke build")
    if data.table is not None and data.format == "sql":
        loaded = connection.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(data.table))).fetchone()[0]
    if data.rows is not None and loaded != data.rows:
        raise PlanRefused(f"{data.file} loaded {loaded} rows into {data.table}, the manifest says {data.rows}",
                          hint="fix the file or the manifest's row count, rebuild and stage again")
    return TableLoad(data.file, data.table, data.rows, loaded, time.perf_counter() - started)


@contextmanager
def _open_member(bundle: Bundle, name: str) -> Iterator[IO[bytes]]:
    """Open one file of a bundle directory or .tar.gz for reading, streamed."""
    if bundle.path.is_dir():
        with open(bundle.path / name, "rb") as handle:
            yield handle
        return
    with tarfile.open(bundle.path, "r:gz") as archive:
        for member in archive:
            if member.isfile() and member.name.removeprefix("./") == name:
                handle = archive.extractfile(member)
                yield handle
                return
    raise PlanRefused(f"{bundle.path}: {name} is listed in data_files but not in the archive",
                      hint="rebuild the bundle with: invoke build")


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
