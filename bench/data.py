"""What the data slots cost: staging load throughput, and the time the database participant adds at T.

    python bench/data.py [--rows 1000000] [--repeat 10] [--readers 4]

Starts a private PostgreSQL cluster (tests/pgcluster.py; Debian's postgresql binaries, as the postgres user when
run as root), builds a bundle with one CSV table of --rows rows (plus a small one), and:

- times datastore.load_staging (COPY, row count checks, smoke query, replace staging) and prints rows/s;
- alternates go-live and rollback --repeat times through the coordinator, over a stand-in server participant
  alone and over it plus the database participant, and prints the median commit phase of each (the
  difference is what the database adds at T) and the database's own commit (fence + COMMIT PREPARED);
- repeats the switches with --readers threads querying the live tables without pause, since the fence waits
  for queries already reading the old data.

The cluster runs with fsync off (a throwaway one); a production server's load rate will be lower, its
switch at T about the same (a catalog change). Not a test: timings go here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import psycopg  # noqa: E402

from pgcluster import PgCluster  # noqa: E402
from releaser import datastore  # noqa: E402
from releaser.bundle import seal_directory  # noqa: E402
from releaser.config import Environment  # noqa: E402
from releaser.participants.database import DataSlotSwitch  # noqa: E402
from releaser.switch import Deadlines, Decision, run_switch  # noqa: E402

DSN_ENV = "RELEASER_BENCH_DATABASE_URL"
SCHEMA_SQL = """
CREATE TABLE areas (code text PRIMARY KEY, release text NOT NULL);
CREATE TABLE indicators (id integer, area text NOT NULL, release text NOT NULL, period text, value double precision);
"""


class StandIn:
    """A participant that moves nothing: what the switch costs without the database."""

    name = "web-1"

    def prepare(self, timeout): pass
    def commit(self, timeout): return time.time()
    def verify(self, timeout): pass
    def revert(self, timeout): pass
    def abort(self, timeout): pass


def build(base: Path, release_id: str, rows: int):
    source = base / release_id
    (source / "data").mkdir(parents=True)
    (source / "data" / "schema.sql").write_text(SCHEMA_SQL)
    (source / "data" / "areas.csv").write_text("code,release\n" + "".join(f"E{i:05d},{release_id}\n" for i in range(300)))
    with open(source / "data" / "indicators.csv", "w") as out:
        out.write("id,area,release,period,value\n")
        for start in range(0, rows, 100_000):
            out.write("".join(f"{i},E{i % 300:05d},{release_id},2026-Q{i % 4 + 1},{i * 0.25}\n"
                              for i in range(start, min(rows, start + 100_000))))
    return seal_directory(source, release_id, data_files=[
        {"file": "data/schema.sql", "format": "sql"},
        {"file": "data/areas.csv", "format": "csv", "table": "areas", "rows": 300},
        {"file": "data/indicators.csv", "format": "csv", "table": "indicators", "rows": rows}])


def switches(environment: Environment, repeat: int, with_database: bool) -> tuple[list[float], list[float]]:
    """Alternate go-live (r2) and rollback (r1); return the coordinator's commit phases and the database's own."""
    phases, own = [], []
    moves = [("go-live", "r2", "r1"), ("rollback", "r1", "r2")]
    for i in range(repeat):
        action, target, previous = moves[i % 2]
        if action == "go-live" and with_database:
            restage(environment, target)
        participants = [StandIn()]
        database = None
        if with_database:
            database = DataSlotSwitch(environment.database, action, target, previous)
            participants.append(database)
        report = run_switch(participants, deadlines=Deadlines(prepare=30, commit=10, verify=10, revert=30),
                            verify=False, keep_unhealthy=True)
        assert report.decision is Decision.COMMITTED, report
        phases.append(report.timings["commit"])
        if database is not None:
            own.append(database.seconds["commit"])
            database.close()
    return phases, own


def restage(environment: Environment, release_id: str) -> None:
    """Put r2's data back in staging after a rollback retired it (cheaply: rename the retired schema back)."""
    slots = datastore.read_data_slots(environment)
    if slots.staging == release_id:
        return
    old = next(name for name, release in slots.retired.items() if release == release_id)
    with datastore.connect(environment.database, autocommit=True) as connection:
        connection.execute(f'ALTER SCHEMA "{old}" RENAME TO phof__staging')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--readers", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="releaser-bench-") as work, PgCluster() as cluster:
        os.environ[DSN_ENV] = cluster.dsn
        environment = Environment.model_validate({
            "transport": "local",
            "servers": [{"name": "web-1", "root": "servers/web-1", "live_url": "http://127.0.0.1:1",
                         "staging_url": "http://127.0.0.1:2"}],
            "database": {"dsn_env": DSN_ENV, "schema": "phof",
                         "smoke": [{"sql": "SELECT count(*) > 0 FROM indicators", "expect": True}]}})
        base = Path(work)
        print(f"PostgreSQL cluster on port {cluster.port}; building bundles of {args.rows:,} rows ...", flush=True)
        first, second = build(base, "r1", 1000), build(base, "r2", args.rows)
        datastore.load_staging(environment, first)
        assert run_switch([DataSlotSwitch(environment.database, "go-live", "r1", None)]).decision is Decision.COMMITTED
        size = (second.path / "data" / "indicators.csv").stat().st_size
        load = datastore.load_staging(environment, second)
        print(f"staging load: {load.rows:,} rows ({size / 1e6:.0f} MB CSV) in {load.seconds:.2f} s "
              f"= {load.rows / load.seconds:,.0f} rows/s (COPY, count checks, smoke query, replace staging)")

        bare, _ = switches(environment, args.repeat, with_database=False)
        with_db, own = switches(environment, args.repeat, with_database=True)
        print(f"commit phase at T, median of {args.repeat}: servers only {statistics.median(bare) * 1000:.2f} ms, "
              f"with the database {statistics.median(with_db) * 1000:.2f} ms "
              f"(the database's own commit: median {statistics.median(own) * 1000:.2f} ms, max {max(own) * 1000:.2f} ms)")

        stop = threading.Event()
        counts = [0] * args.readers

        def read(index: int) -> None:
            with psycopg.connect(cluster.dsn, autocommit=True) as connection:
                while not stop.is_set():
                    try:
                        connection.execute("SELECT a.release, count(*) FROM phof.areas a JOIN phof.indicators i "
                                           "ON i.area = a.code WHERE i.id < 2000 GROUP BY 1").fetchall()
                        counts[index] += 1
                    except psycopg.Error:
                        pass

        readers = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(args.readers)]
        for reader in readers:
            reader.start()
        started = time.perf_counter()
        try:
            busy, own_busy = switches(environment, args.repeat, with_database=True)
        finally:
            stop.set()
            for reader in readers:
                reader.join(10)
        rate = sum(counts) / (time.perf_counter() - started)
        print(f"with {args.readers} readers ({rate:,.0f} queries/s on the live tables): commit phase median "
              f"{statistics.median(busy) * 1000:.2f} ms, the database's own median {statistics.median(own_busy) * 1000:.2f} ms, "
              f"max {max(own_busy) * 1000:.2f} ms")


if __name__ == "__main__":
    main()
