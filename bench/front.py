"""Instances behind nginx fronts: load through go-live and rollback at N = 3, the switch at T at N = 20.

    .venv/bin/python bench/front.py [--load-servers 3] [--switch-servers 20] [--repeat 3] [--requests 20000]

Part 1 starts N sshd servers (tests/sshfarm.py), one nginx and two gunicorn instances each (tests/apps), and keeps
wrk on web-1's public port while the coordinator switches every server's links and front: requests/s and failed
requests (socket errors + non-2xx), for each way the front moves (a socket link, or an include and reload), once
with a new connection per request and once with keep-alive. Part 2 times the commit (what happens at T) at N
servers, with and without the front participants, for each way, the time from T to each rename in a scheduled
go-live (the socket way's front is armed ahead, as the links are), and splits one include-way front commit into
its server-side steps. Everything started is stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "tests")]

from apps.appfarm import AppFarm, Load, missing_tools  # noqa: E402
from sshfarm import SshdFarm  # noqa: E402


@contextmanager
def r1_live(servers: int, *, way: str, workers: int = 2) -> Iterator[AppFarm]:
    """N sshd servers, each with a front moving `way` and gunicorn instances, r1 live; all stopped afterwards."""
    with tempfile.TemporaryDirectory(prefix="bench-front-") as base, SshdFarm(Path(base) / "farm", servers, skip_shell_rc=True) as farm:
        app = AppFarm(farm, Path(base), workers=workers, way=way)
        try:
            app.stage("r1")
            app.switch("go-live")
            yield app
        finally:
            app.close()


def load_rows(servers: int, requests: int, way: str) -> list[tuple]:
    """Rate and failures on web-1's front through go-live and rollback, per connection mode."""
    rows = []
    with r1_live(servers, way=way) as app:
        for keepalive in (False, True):
            for action in ("go-live", "rollback"):
                if action == "go-live":
                    app.stage("r2")
                load = Load(app.fronts["web-1"], keepalive=keepalive)
                try:
                    load.wait_for(requests // 2)
                    report = app.switch(action)
                    load.wait_for(load.served() + requests // 2)
                    tally = load.stop()
                finally:
                    load.kill()
                rows.append((way, action, "keep-alive" if keepalive else "new per request", tally["requests"],
                             tally["rate"], tally["failed"], report.decision.value, report.timings["commit"] * 1000))
    return rows


def switch_rows(servers: int, repeat: int, way: str) -> tuple[list[tuple], dict[str, float]]:
    """Commit (at T) and whole-switch seconds with and without fronts, and (the include way) one front commit's steps."""
    timings: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    steps: dict[str, float] = {}
    with r1_live(servers, workers=1, way=way) as app:
        for _ in range(repeat):
            for links_only in (False, True):
                label = "links" if links_only else f"links + front ({way})"
                for action in ("go-live", "rollback"):
                    if action == "go-live":
                        app.stage("r2")
                    report = app.switch(action, links_only=links_only)
                    assert report.decision.value == "committed", report
                    timings.setdefault((action, label), []).append(
                        (report.timings["prepare"], report.timings["commit"], report.timings["switch"],
                         front_after_links(report)))
        if way == "include":
            steps = front_steps(app, repeat * 3)
    rows = [(action, label, *(statistics.median(t[i] for t in values) * 1000 for i in range(3)),
             max(t[3] for t in values) * 1000 if values[0][3] is not None else None)
            for (action, label), values in timings.items()]
    return rows, steps


def front_after_links(report) -> float | None:
    """The widest gap on one server between its links' rename and its front's (server clocks), or None without fronts."""
    moved = {outcome.name: outcome.moved_at for outcome in report.outcomes}
    gaps = [abs(at - moved[name.removesuffix(":front")]) for name, at in moved.items()
            if name.endswith(":front") and at is not None and moved.get(name.removesuffix(":front")) is not None]
    return max(gaps) if gaps else None


def at_t_rows(servers: int, repeat: int, way: str) -> dict[str, list[float]]:
    """A scheduled go-live at N servers, `repeat` times: ms from T to each server's front rename and links' rename
    (the moved_at the servers print), with the participants armed during the wait as a scheduled go-live arms them."""
    after: dict[str, list[float]] = {"front": [], "links": []}
    with r1_live(servers, workers=1, way=way) as app:
        for _ in range(repeat):
            app.stage("r2")
            moment = time.time() + 2.0

            def wait_for_the_second() -> None:
                while time.time() < moment:
                    time.sleep(0.0005)

            report = app.switch("go-live", before_commit=wait_for_the_second,
                                until_commit=lambda: moment - time.time())
            assert report.decision.value == "committed", report
            for outcome in report.outcomes:
                kind = "front" if outcome.name.endswith(":front") else "links"
                if outcome.moved_at is not None:
                    after[kind].append((outcome.moved_at - moment) * 1000)
            assert app.switch("rollback").decision.value == "committed"
    return after


def front_steps(app: AppFarm, repeat: int) -> dict[str, float]:
    """Median ms of one round trip, and of each server-side step of a front commit, on web-1."""
    host = app.hosts["web-1"]
    root = str(app.environment.app_root(app.environment.server("web-1")))
    nginx = app.environment.application.front.nginx
    measured: dict[str, list[float]] = {}
    for name, argv in (("round trip (true)", ["true"]),
                       ("mv of the include", ["sh", "-c", 'cd "$1" && cp ../nginx/live.upstream ../nginx/x && mv -f ../nginx/x ../nginx/y', "-", root]),
                       ("nginx -t", ["sh", "-c", 'cd "$1" && shift && "$@" -q -t', "-", root, *nginx]),
                       ("nginx -s reload", ["sh", "-c", 'cd "$1" && shift && "$@" -s reload', "-", root, *nginx])):
        for _ in range(repeat):
            started = time.perf_counter()
            done = host.run(argv, timeout=30)
            assert done.ok, done
            measured.setdefault(name, []).append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(values) for name, values in measured.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load-servers", type=int, default=3)
    parser.add_argument("--switch-servers", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20_000, help="at least this many per run, half before the switch")
    parser.add_argument("--only", choices=("load", "switch", "at-t"), help="run one part only")
    args = parser.parse_args()
    if missing_tools():
        sys.exit(f"missing: {', '.join(missing_tools())}")
    if args.only in (None, "load"):
        print_load(args)
    if args.only in (None, "switch"):
        print_switch(args)
    if args.only in (None, "at-t"):
        print_at_t(args)


def print_load(args) -> None:
    """Part 1: requests and failures through each switch, per way and connection mode."""
    print(f"## load on web-1's front through each switch, N = {args.load_servers} (wrk -t1 -c6)\n")
    print("| front moves by | switch | connections | requests | requests/s | failed | decision | commit ms |\n"
          "| --- | --- | --- | ---: | ---: | ---: | --- | ---: |")
    for way in ("socket", "include"):
        for row in load_rows(args.load_servers, args.requests, way):
            way_, action, mode, count, rate, failed, decision, commit = row
            print(f"| {way_} | {action} | {mode} | {count} | {rate:.0f} | {failed} | {decision} | {commit:.0f} |",
                  flush=True)


def print_switch(args) -> None:
    """Part 2: prepare, commit and the whole switch with and without fronts; one include-way commit's steps."""
    rows, steps = [], {}
    for way in ("socket", "include"):
        way_rows, way_steps = switch_rows(args.switch_servers, args.repeat, way)
        rows += [row for row in way_rows if way == "socket" or row[1] != "links"]  # links alone: measured once
        steps = steps or way_steps
    print(f"\n## switch time, N = {args.switch_servers}, median of {args.repeat} (no load)\n")
    print("| switch | participants | prepare ms | commit (at T) ms | whole switch ms | front vs links, one server, worst ms |\n"
          "| --- | --- | ---: | ---: | ---: | ---: |")
    for action, label, prepare, commit, whole, gap in rows:
        print(f"| {action} | {label} | {prepare:.0f} | {commit:.0f} | {whole:.0f} | {'-' if gap is None else f'{gap:.0f}'} |")
    print("\n## one include-way front commit on web-1, step by step (each one round trip through the open connection)\n")
    print("| step | ms |\n| --- | ---: |")
    for name, ms in steps.items():
        print(f"| {name} | {ms:.1f} |")


def print_at_t(args) -> None:
    """Part 3: a scheduled go-live's renames after T, per way."""
    print(f"\n## a scheduled go-live, N = {args.switch_servers}, {args.repeat} rounds: ms from T to each server's rename\n")
    print("| front moves by | what | median | worst | earliest |\n| --- | --- | ---: | ---: | ---: |")
    for way in ("socket", "include"):
        for kind, values in at_t_rows(args.switch_servers, args.repeat, way).items():
            print(f"| {way} | {kind} | {statistics.median(values):.1f} | {max(values):.1f} | {min(values):.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
