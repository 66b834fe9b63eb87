"""The database's data slots as a switch participant: schema renames prepared before T, committed at T.

prepare  reads the data slots from the catalog and refuses unless they match the servers' (staging holds the
         release going live, live the release leaving); then, in one transaction, renames the schemas
         (live -> backup, staging -> live; a rollback: live -> retired, backup -> live) and PREPAREs it
         (two-phase commit). The renames are invisible until COMMIT PREPARED; the transaction survives a
         dropped session and a database restart, and holds only the slot schemas' catalog rows, so queries
         on the live data run on as before. A second connection is opened for the fence.
commit   fences, then COMMIT PREPARED. The fence is a LOCK of every live table in ACCESS EXCLUSIVE mode,
         taken just before the commit and released just after it: a query already reading the old data
         finishes first (at most `fence_timeout`), and a query arriving meanwhile waits and then resolves all
         its table names against the new schemas. Without it, a statement that resolved `phof.a` just
         before the commit and `phof.b` just after could join old and new tables.
verify   reads the catalog back (live holds the target) and runs the smoke queries against live
revert   rolls the prepared transaction back if it never committed; after a commit, renames everything back
         in one transaction behind the same fence; on a new connection when the old one broke
abort    rolls the prepared (or still open) transaction back
"""

from __future__ import annotations

import os
import select
import threading
import time
import uuid

import psycopg
from psycopg import sql

from releaser import datastore
from releaser.config import Database
from releaser.dataslots import DataPlan, is_moved, plan_data_switch, schema_names
from releaser.errors import HostUnreachable, PlanRefused
from releaser.participants import SwitchContext
from releaser.switch import StepFailed

NAME = "database"


class CommitUnknown(Exception):
    """COMMIT PREPARED was sent and no answer came back: the renames may or may not have committed."""


def participants(context: SwitchContext) -> list["DataSlotSwitch"]:
    """The database participant, when the environment declares [database] and the switch moves live."""
    database = context.environment.database
    if database is None or context.rehearsal or context.action not in ("go-live", "rollback"):
        return []  # staging data is loaded by datastore.load_staging at stage time, not switched
    database.dsn(os.environ)  # a connection string that is not set is a ConfigError now, before any phase
    return [DataSlotSwitch(database, context.action, context.target, context.previous)]


class DataSlotSwitch:
    """The data slots of one database, moved by one switch together with the servers' links."""

    def __init__(self, database: Database, action: str, target: str | None, previous: str | None, *,
                 environ=None) -> None:
        self.name = NAME
        self.database = database
        self.action = action
        self.target = target
        self.previous = previous
        self.environ = environ
        self.names = schema_names(database.schema_name)
        self.gid = f"{datastore.gid_prefix(database.schema_name)}{action}:{uuid.uuid4().hex[:12]}"
        self.plan: DataPlan | None = None
        self.fenced: list[str] = []  # the live tables the fence locks
        self.connection: psycopg.Connection | None = None
        self.fence: psycopg.Connection | None = None
        self.prepared = False  # PREPARE TRANSACTION succeeded and nobody committed or rolled it back yet
        self.moved_at: float | None = None
        self.fence_note = ""  # why a commit went ahead without the fence, if it did
        self.seconds: dict[str, float] = {}
        self._busy = threading.Lock()  # verify and revert never share the connection at once
        self._stopping = False  # stop_verifying was called: a verify still to start or under way fails
        self._fence_silent = False  # the fence's LOCK got no answer at all (not even lock_timeout's error)

    # ---- the five steps ----

    def prepare(self, timeout: float) -> None:
        """Check the data slots agree with the servers, then rename the schemas in a prepared transaction."""
        started = time.perf_counter()
        try:
            connection = self._open(timeout, autocommit=True)
        except HostUnreachable as error:
            raise StepFailed(f"cannot reach the database: {error.what.removeprefix('database: ')}") from error
        self.connection = connection
        try:
            datastore.roll_back_pending(connection, self.database.schema_name)
            connection.autocommit = False
            connection.tpc_begin(self.gid)
            _set_timeouts(connection, lock_ms=timeout * 1000, statement_ms=timeout * 1000)
            slots = datastore.read_slots_on(connection, self.database.schema_name)
            self.plan = plan_data_switch(self.action, slots, self.target, self.previous)
            if self.plan.before.live is not None:
                self.fenced = datastore.live_tables(connection, self.names.live)
            for rename in self.plan.renames:
                connection.execute(datastore.rename_sql(rename))
            connection.tpc_prepare()
            self.prepared = True
            if self.fenced:
                self.fence = self._open(timeout, autocommit=False)
        except PlanRefused as refused:
            self._rollback_quietly()
            raise StepFailed(str(refused)) from refused
        except psycopg.Error as error:
            self._rollback_quietly()
            raise StepFailed(f"preparing the schema renames failed: {_first_line(error)}") from error
        except HostUnreachable:
            pass  # no fence connection: commit goes ahead without it, or opens one then
        self.seconds["prepare"] = time.perf_counter() - started

    def commit(self, timeout: float) -> float | None:
        """Fence the live tables and COMMIT PREPARED the renames; return the epoch second they committed."""
        started = time.perf_counter()
        deadline = time.monotonic() + timeout
        fenced = self._take_fence(min(self.database.fence_timeout, timeout / 2))
        if self._fence_silent:
            # A database that answers says no to a lock within lock_timeout; this one said nothing: it (or the
            # network to it) is silent, so COMMIT PREPARED would go unanswered and leave the data unknown.
            self.seconds["commit"] = time.perf_counter() - started
            raise StepFailed(f"the database did not answer at T ({self.fence_note.removeprefix('went ahead without the fence: ')}), "
                             "so COMMIT PREPARED was not sent: its renames were not committed")
        try:
            if not _is_alive(self.connection):
                # The session is gone (the database restarted, the network dropped): COMMIT PREPARED was
                # never sent, so nothing moved. A new session can still commit the prepared transaction.
                self._commit_on_a_new_connection(deadline)
            else:
                try:
                    self.connection.tpc_commit()
                except psycopg.OperationalError as error:
                    self._resolve_unknown_commit(deadline, error)
                except psycopg.Error as error:  # the server answered no: COMMIT PREPARED did not happen
                    raise StepFailed(f"COMMIT PREPARED failed: {_first_line(error)}") from error
            self.prepared = False
            self.moved_at = time.time()
        finally:
            if fenced:
                self._release_fence()
        self.seconds["commit"] = time.perf_counter() - started
        return self.moved_at

    @property
    def warnings(self) -> list[str]:
        """What the switch's result must say beyond OK: a commit that went ahead without the fence came late."""
        if not self.fence_note or self.moved_at is None:
            return []
        waited = self.seconds.get("commit", 0.0)
        return [f"database: the data's commit ended {waited:.2f} s after the commit phase began ({self.fence_note}); "
                "queries in that time may have read the old data while the servers served the new release"]

    def verify(self, timeout: float) -> None:
        """Read the catalog back and run the smoke queries against the live data."""
        with self._busy:
            if self._stopping:
                raise StepFailed("verify stopped (another participant's verify failed)")
            self._verify(timeout)

    def stop_verifying(self) -> None:
        """Cancel a verify query under way (the switch reverts); its revert then gets the connection at once."""
        self._stopping = True
        _cancel(self.connection)

    def stop_preparing(self) -> None:
        """Cancel a prepare statement under way (Ctrl-C cancelled the switch), e.g. a rename waiting on a lock: the
        prepare then fails at once and rolls back, where it would have waited out the prepare deadline."""
        _cancel(self.connection)

    def _verify(self, timeout: float) -> None:
        try:
            connection = self._usable_connection(timeout)
            connection.autocommit = False
            with connection.transaction():
                connection.execute("SET TRANSACTION READ ONLY")
                _set_timeouts(connection, lock_ms=timeout * 1000, statement_ms=timeout * 1000)
                slots = datastore.read_slots_on(connection, self.database.schema_name)
                if slots.live != self.plan.after.live:
                    raise StepFailed(f"the database's live data is {slots.live or 'nothing'}'s, "
                                     f"expected {self.plan.after.live}'s", moved=True)
                connection.execute(sql.SQL("SET LOCAL search_path = {}").format(sql.Identifier(self.names.live)))
                failed = [r for r in datastore.run_smoke(connection, self.database.smoke) if not r.ok]
                if failed:
                    raise StepFailed(f"smoke query {failed[0].label!r} on the live data: {failed[0].detail}")
        except psycopg.Error as error:
            raise StepFailed(f"verifying the live data failed: {_first_line(error)}") from error
        except HostUnreachable as error:
            raise StepFailed(f"cannot reach the database to verify: {error.what.removeprefix('database: ')}") from error

    def revert(self, timeout: float) -> None:
        """Put every data slot back: roll back the prepared renames, or rename back after a commit."""
        # a verify under way was cancelled (stop_verifying) and ends at once; one stuck on a silent connection does
        # not hold the revert past a few seconds: it then goes ahead on a new connection (_usable_connection)
        got = self._busy.acquire(timeout=min(5.0, timeout / 2))
        try:
            self._revert(timeout)
        finally:
            if got:
                self._busy.release()

    def _revert(self, timeout: float) -> None:
        try:
            connection = self._usable_connection(timeout)
            connection.autocommit = True
            if self._still_prepared(connection):
                _finish_prepared(connection, "ROLLBACK", self.gid)
                self.prepared = False
                return
            slots = datastore.read_slots_on(connection, self.database.schema_name)
            if self.plan is None or not is_moved(slots, self.plan):
                return  # never moved, or already put back
            self._rename_back(connection, timeout)
        except psycopg.Error as error:
            raise StepFailed(f"putting the data slots back failed: {_first_line(error)}", moved=True) from error
        except HostUnreachable as error:
            raise StepFailed(f"cannot reach the database to put the data back: "
                             f"{error.what.removeprefix('database: ')}", moved=True) from error
        finally:
            self.close()

    def abort(self, timeout: float) -> None:
        """Roll back the prepared renames (nothing moved); also on a new connection if the old one broke."""
        try:
            if self.connection is not None and _is_alive(self.connection) and not self.prepared:
                self.connection.rollback()
                return
            if not self.prepared:
                return
            connection = self._usable_connection(timeout)
            connection.autocommit = True
            if self._still_prepared(connection):
                _finish_prepared(connection, "ROLLBACK", self.gid)
            self.prepared = False
        except psycopg.Error as error:
            raise StepFailed(f"rolling back the prepared renames failed: {_first_line(error)}") from error
        except HostUnreachable as error:
            raise StepFailed(f"its renames stay prepared in the database as {self.gid}, which no query sees, until the "
                             f"next switch, stage or prune rolls them back (the database could not be reached to do it "
                             f"now: {error.what.removeprefix('database: ')})") from error
        finally:
            self.close()

    def close(self) -> None:
        """Close both connections (idempotent)."""
        for connection in (self.connection, self.fence):
            if connection is not None:
                try:
                    connection.close()
                except Exception:
                    pass
        self.connection = self.fence = None

    # ---- the fence ----

    def _take_fence(self, seconds: float) -> bool:
        """Lock every live table, waiting at most `seconds`; False (and a note) when it could not."""
        if not self.fenced or seconds <= 0:
            return False
        deadline = time.monotonic() + seconds
        while True:
            try:
                if self.fence is None or not _is_alive(self.fence):
                    self.fence = self._open(seconds, autocommit=False)
                left = max(1, int((deadline - time.monotonic()) * 1000))
                fence = self.fence
                if not _within(fence, left / 1000 + FENCE_GRACE_S, lambda: (
                        _set_timeouts(fence, lock_ms=left, statement_ms=left + 1000),
                        fence.execute(datastore.fence_sql(self.names.live, self.fenced)))):
                    self._fence_silent = True
                    self.fence = None
                    self.fence_note = f"went ahead without the fence: no answer within {left / 1000 + FENCE_GRACE_S:.1f} s"
                    return False
                return True
            except (psycopg.Error, HostUnreachable) as error:
                self._rollback_fence()
                # A deadlock with a reader is broken by PostgreSQL within deadlock_timeout: try again.
                if isinstance(error, psycopg.errors.DeadlockDetected) and time.monotonic() < deadline:
                    continue
                self.fence_note = f"went ahead without the fence: {_first_line(error)}"
                return False

    def _release_fence(self) -> None:
        try:
            self.fence.commit()
        except psycopg.Error:
            pass  # the locks go with the session either way

    def _rollback_fence(self) -> None:
        try:
            if self.fence is not None:
                self.fence.rollback()
        except psycopg.Error:
            self.fence = None

    # ---- commit's edge cases ----

    def _commit_on_a_new_connection(self, deadline: float) -> None:
        try:
            connection = self._open(max(0.5, deadline - time.monotonic()), autocommit=True)
        except HostUnreachable as error:
            raise StepFailed(f"the database is unreachable at T, so its renames were not committed: "
                             f"{error.what.removeprefix('database: ')}") from error
        try:
            if not self._still_prepared(connection):
                raise StepFailed(f"the prepared renames ({self.gid}) are gone: rolled back by someone else")
            _finish_prepared(connection, "COMMIT", self.gid)
        except psycopg.OperationalError as error:
            raise CommitUnknown(f"the database stopped answering during COMMIT PREPARED: {_first_line(error)}") from error
        except psycopg.Error as error:
            raise StepFailed(f"COMMIT PREPARED failed: {_first_line(error)}") from error
        finally:
            self.connection, old = connection, self.connection
            if old is not None:
                old.close()

    def _resolve_unknown_commit(self, deadline: float, error: Exception) -> None:
        """COMMIT PREPARED was sent and the session broke: ask a new session whether it happened."""
        try:
            connection = self._open(max(0.5, deadline - time.monotonic()), autocommit=True)
        except HostUnreachable:
            raise CommitUnknown(f"the database stopped answering during COMMIT PREPARED ({_first_line(error)}); "
                                "whether the data switched is not known") from error
        self.connection = connection
        if self._still_prepared(connection):
            _finish_prepared(connection, "COMMIT", self.gid)
            return
        slots = datastore.read_slots_on(connection, self.database.schema_name)
        if not is_moved(slots, self.plan):
            raise StepFailed(f"COMMIT PREPARED failed and the data did not switch: {_first_line(error)}")

    def _rename_back(self, connection: psycopg.Connection, timeout: float) -> None:
        """Rename every schema back in one transaction, behind a fence on the (new) live tables."""
        tables = datastore.live_tables(connection, self.names.live)
        connection.autocommit = False
        for fenced in (True, False):
            try:
                with connection.transaction():
                    _set_timeouts(connection, lock_ms=self.database.fence_timeout * 1000 if fenced else timeout * 1000,
                                  statement_ms=timeout * 1000)
                    if fenced and tables and self.database.fence_timeout > 0:
                        connection.execute(datastore.fence_sql(self.names.live, tables))
                    for rename in self.plan.reversed():
                        connection.execute(datastore.rename_sql(rename))
                return
            except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected):
                if not fenced:
                    raise

    # ---- connections ----

    def _open(self, timeout: float, *, autocommit: bool) -> psycopg.Connection:
        return datastore.open_connection(self.database, environ=self.environ, timeout=timeout, autocommit=autocommit)

    def _usable_connection(self, timeout: float) -> psycopg.Connection:
        """The switch's connection when it still works outside a transaction, else a new one."""
        connection = self.connection
        # a session holding the prepared transaction cannot run anything else until it commits or rolls back
        if connection is not None and not self.prepared and _is_alive(connection):
            if connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                return connection
        if connection is not None:
            try:
                connection.close()
            except Exception:
                pass
        self.connection = self._open(timeout, autocommit=True)
        return self.connection

    def _still_prepared(self, connection: psycopg.Connection) -> bool:
        return connection.execute("SELECT 1 FROM pg_prepared_xacts WHERE gid = %s", (self.gid,)).fetchone() is not None

    def _rollback_quietly(self) -> None:
        try:
            if self.connection is not None:
                if self.prepared:
                    self.connection.tpc_rollback()
                else:
                    self.connection.rollback()
        except psycopg.Error:
            pass
        self.prepared = False
        self.close()


FENCE_GRACE_S = 1.0  # past the fence's own lock_timeout, how long a database that answers may take to say so


def _within(connection: psycopg.Connection, seconds: float, step) -> bool:
    """Run `step` (statements on `connection`) for at most `seconds`; False when no answer came in that time.

    statement_timeout and lock_timeout are the server's: a server that has gone silent (stopped, or the network
    to it dropping packets) never sends their error, and the client would wait for ever. Past `seconds` the
    session's socket is shut down, which ends the wait at once (the step's thread sees the session break), and
    the session is closed: nothing more is sent on it.
    """
    errors: list[BaseException] = []

    def run() -> None:
        try:
            step()
        except BaseException as error:  # the caller's to judge, in its own thread
            errors.append(error)

    worker = threading.Thread(target=run, daemon=True, name="database-step")
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        datastore.shut_down_session(connection)
        worker.join(1.0)
        try:
            connection.close()
        except Exception:
            pass
        return False
    if errors:
        raise errors[0]
    return True


def _cancel(connection: psycopg.Connection | None) -> None:
    """Ask the server to cancel the statement running on `connection` (a second, short connection); never raises."""
    if connection is not None:
        try:
            connection.cancel_safe(timeout=1.0) if hasattr(connection, "cancel_safe") else connection.cancel()
        except Exception:  # a connection that already broke has nothing to cancel
            pass


def _finish_prepared(connection: psycopg.Connection, verb: str, gid: str) -> None:
    """COMMIT PREPARED or ROLLBACK PREPARED a transaction by its id, from any session (autocommit)."""
    connection.execute(sql.SQL(verb + " PREPARED {}").format(sql.Literal(gid)))


def _set_timeouts(connection: psycopg.Connection, *, lock_ms: float, statement_ms: float) -> None:
    connection.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(f"{max(1, int(lock_ms))}ms")))
    connection.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(f"{max(1, int(statement_ms))}ms")))


def _is_alive(connection: psycopg.Connection | None) -> bool:
    """True when the session has not been closed or cut, checked without a round trip."""
    if connection is None or connection.closed or connection.broken:
        return False
    pgconn = connection.pgconn
    try:
        # An idle session hears from the server only when something happened to it (a termination notice,
        # then the end of the stream): read all of that, without blocking, before trusting the session.
        for _ in range(16):
            readable, _, _ = select.select([pgconn.socket], [], [], 0)
            if not readable:
                break
            pgconn.consume_input()
    except (psycopg.OperationalError, OSError, ValueError):
        return False
    return pgconn.status == psycopg.pq.ConnStatus.OK


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
