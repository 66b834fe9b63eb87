"""Slots that run application instances (gunicorn) behind real nginx fronts, on the sshd farm, under wrk load.

The coordinator runs the links and the front participants together, as the fleet does. Each load test keeps
wrk sending requests to web-1's public nginx port through the switch and asserts that none failed (socket
errors or non-2xx) out of at least 10,000, and what the fronts serve afterwards, on new connections. The fronts
move by socket link (no reload), and wrk keeps its connections open; the tests marked "include" run the same
through fronts that move by include and graceful reload, with a new connection per request (a reload closes
idle keep-alive connections, and wrk does not retry the request it sent at that moment).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from apps.appfarm import AppFarm, Load
from test_ssh_faults import hosts_with, script_of
from releaser import instances, staging, ui
from releaser.errors import FleetReverted, ReleaserError
from releaser.participants import front as front_participant
from releaser.switch import Deadlines, Decision

pytestmark = pytest.mark.ssh

SERVERS = ("web-1", "web-2", "web-3")
LOAD_REQUESTS = 10_000


def under_load(farm: AppFarm, switch):
    """Run `switch` while wrk loads web-1's front: LOAD_REQUESTS/2 before it, as many after; return (result, tally).

    Keep-alive connections when the fronts move by socket link, a new connection per request when they reload."""
    load = Load(farm.fronts["web-1"], keepalive=farm.environment.application.front.socket is not None)
    try:
        load.wait_for(LOAD_REQUESTS // 2)
        result = switch()
        after = load.served()
        load.wait_for(max(LOAD_REQUESTS, after + LOAD_REQUESTS // 2))
        return result, load.stop()
    finally:
        load.kill()


def front_port(farm: AppFarm, name: str) -> int:
    """The instance port a server's front names: the link's target (instance-PORT.sock), or the include's line."""
    root = Path(str(farm.roots()[name]))
    if farm.environment.application.front.socket is not None:
        return int(os.readlink(root / farm.environment.application.front.socket).removeprefix("instance-")
                   .removesuffix(".sock"))
    return int(farm.fronts[name].include.read_text().split(":")[-1].rstrip(";\n"))


INCLUDE = pytest.mark.parametrize("app_farm", ["include"], indirect=True)
BOTH_WAYS = pytest.mark.parametrize("app_farm", ["socket", "include"], indirect=True)


def slots_of(view: instances.ServerInstances) -> dict[str, tuple[str, int | None]]:
    """slot -> (release, pid) of its instance."""
    return {i.slot: (i.release, i.pid) for i in view.instances if i.slot}


def test_stage_starts_a_healthy_staging_instance_beside_live_and_status_shows_both(app_farm):
    """After the fixture's stage of r2, each server runs r1 (live) and r2 (staging) on ports of its own."""
    for name, view in app_farm.read().items():
        by_slot = {i.slot: i for i in view.instances}
        assert set(by_slot) == {"live", "staging"}, view
        assert (by_slot["live"].release, by_slot["live"].reports, by_slot["live"].health) == ("r1", "r1", 200)
        assert (by_slot["staging"].release, by_slot["staging"].reports, by_slot["staging"].health) == ("r2", "r2", 200)
        assert by_slot["live"].port != by_slot["staging"].port
        assert by_slot["live"].pid and by_slot["staging"].pid
        assert app_farm.served(name) == {(200, "r1")}  # staging is private: the front still serves r1


def test_staging_the_same_release_again_starts_nothing(app_farm):
    before = {name: slots_of(view)["staging"] for name, view in app_farm.read().items()}

    app_farm.start_staging("r2")

    assert {name: slots_of(view)["staging"] for name, view in app_farm.read().items()} == before


@BOTH_WAYS
def test_go_live_under_load_fails_no_request_and_the_front_serves_the_new_release(app_farm):
    before = {name: slots_of(view) for name, view in app_farm.read().items()}

    report, tally = under_load(app_farm, lambda: app_farm.switch("go-live"))

    assert report.decision is Decision.COMMITTED, report
    assert tally["requests"] >= LOAD_REQUESTS and tally["failed"] == 0, tally
    assert set(tally["releases"]) == {"r1", "r2"} and tally["last"] == ["r2"], tally
    for name, view in app_farm.read().items():
        assert app_farm.served(name) == {(200, "r2")}
        # nothing restarted: the staging instance became live, the live one is the warm backup
        assert slots_of(view) == {"live": before[name]["staging"], "backup": before[name]["live"]}
        assert front_port(app_farm, name) == view.of_slot("live").port
        assert not list(app_farm.fronts[name].include.parent.glob("*.releaser-*"))
        assert not list(Path(str(app_farm.roots()[name])).glob(".releaser/front/*.releaser-*"))
    assert sorted(o.name for o in report.outcomes) == sorted([*SERVERS, *(f"{s}:front" for s in SERVERS)])


@BOTH_WAYS
def test_go_live_that_fails_on_one_server_is_reverted_under_load_with_no_failed_request(app_farm):
    """web-3's front refuses the commit (its nginx configuration broke after prepare; with a socket link, the
    prepared link is gone); every server goes back."""
    site = app_farm.fronts["web-3"].conf
    good = site.read_text()
    by_socket = app_farm.environment.application.front.socket is not None
    prepared = Path(str(app_farm.roots()["web-3"])) / f"{app_farm.environment.application.front.socket}.releaser-next"

    def break_web_3() -> None:
        if by_socket:
            prepared.unlink()
        else:
            site.write_text(good.replace("worker_processes 1;", "worker_processes 1;\nno_such_directive on;"))

    try:
        report, tally = under_load(app_farm, lambda: app_farm.switch("go-live", before_commit=break_web_3))
    finally:
        site.write_text(good)

    assert report.decision is Decision.REVERTED, report
    assert ("the front was not prepared" if by_socket else "nginx -t refuses the new include") \
        in report.cause["web-3:front"], report.cause
    assert tally["requests"] >= LOAD_REQUESTS and tally["failed"] == 0, tally
    assert tally["last"] == ["r1"], tally
    for name, view in app_farm.read().items():
        assert app_farm.served(name) == {(200, "r1")}
        assert {i.slot: i.release for i in view.instances if i.slot} == {"live": "r1", "staging": "r2"}
        assert front_port(app_farm, name) == view.of_slot("live").port  # the front is back on r1
        beside = [*Path(str(app_farm.roots()[name])).glob(".releaser/front/*.releaser-*"),
                  *app_farm.fronts[name].include.parent.glob("*.releaser-*")]
        assert beside == []  # nothing of the switch is left beside the link or the include


def test_a_release_failing_through_the_front_is_reverted_at_once_not_at_the_verify_deadline(app_farm):
    """r2 answers 503 on web-2 once live: verify stops after a few such answers and every server goes back.

    Waiting out verify's window (twice [health] timeout) would leave the public on the failing r2 all that time.
    """
    marker = Path(str(app_farm.roots()["web-2"])) / "unhealthy-r2"  # outside the release: prepare's check still holds
    try:
        report = app_farm.switch("go-live", before_commit=lambda: marker.write_text("x"))
    finally:
        marker.unlink(missing_ok=True)
    assert report.decision is Decision.REVERTED, report
    assert any("503" in why for why in report.cause.values()), report.cause
    assert report.timings["verify"] < app_farm.environment.health.timeout, report.timings
    for name in SERVERS:
        assert app_farm.served(name) == {(200, "r1")}


def test_a_go_live_failing_through_the_front_shows_what_the_failing_answer_said(app_farm, open_fleet):
    """The error carries web-2's failing GET with the first lines of its body (the release's own words): the links'
    verify asks the live URL through nginx, so it sees the 503 first (the front's verify waits for a few in a row)."""
    marker = Path(str(app_farm.roots()["web-2"])) / "unhealthy-r2"
    hosts = hosts_with(app_farm.environment, "web-2", when=lambda argv, env: script_of(argv) == "commit",
                       before=lambda: marker.write_text("x"))
    try:
        with open_fleet(app_farm.environment.model_copy(update={"sandbox": None}), hosts=hosts) as fleet, \
                pytest.raises(FleetReverted) as failure:
            fleet.go_live()
    finally:
        marker.unlink(missing_ok=True)
    probe = failure.value.answers["web-2"]
    assert probe.status == 503 and "unhealthy release=r2" in probe.body_head, probe
    assert set(failure.value.answers) == {"web-2"}
    for name in SERVERS:
        assert app_farm.served(name) == {(200, "r1")}


def test_rollback_under_load_moves_the_front_to_the_warm_backup_and_starts_nothing(app_farm):
    assert app_farm.switch("go-live").decision is Decision.COMMITTED
    backup = {name: slots_of(view)["backup"] for name, view in app_farm.read().items()}

    report, tally = under_load(app_farm, lambda: app_farm.switch("rollback"))

    assert report.decision is Decision.COMMITTED, report
    assert tally["requests"] >= LOAD_REQUESTS and tally["failed"] == 0, tally
    assert tally["last"] == ["r1"], tally
    for name, view in app_farm.read().items():
        assert app_farm.served(name) == {(200, "r1")}
        assert slots_of(view)["live"] == backup[name]  # same release, same pid: the backup was running all along
        assert view.of_release("r2").slot is None  # r2 is retired, still running until prune


def _kill_instance(app_farm, name: str, pid: int) -> None:
    """SIGKILL an instance's master and workers and wait until they are gone."""
    os.killpg(pid, signal.SIGKILL)  # master and workers: supervise starts each instance in a session of its own
    gone = app_farm.hosts[name].run(["sh", "-c", 'i=0; while kill -0 -"$1" 2>/dev/null && [ $i -lt 200 ]; do i=$((i+1)); sleep 0.05; done; ! kill -0 -"$1" 2>/dev/null',
                                     "wait", str(pid)], timeout=15)
    assert gone.ok


def rolled_back(app_farm, open_fleet):
    """A rollback through the fleet, as the CLI runs it (the fronts hold the live ports: no sandbox server); every
    server OK, back on r1; its result."""
    with open_fleet(app_farm.environment.model_copy(update={"sandbox": None})) as fleet:
        result = fleet.rollback()
    assert result.release == "r1" and all(r.ok for r in result.results), result
    return result


def test_the_journal_says_when_each_front_moved_beside_when_its_links_did(app_farm, open_fleet, tmp_path):
    """The rename skew a switch prints counts the fronts; the journal keeps each one's moment too, by name."""
    assert app_farm.switch("go-live").decision is Decision.COMMITTED

    rolled_back(app_farm, open_fleet)

    event = json.loads((tmp_path / "journal.jsonl").read_text().splitlines()[-1])
    assert event["action"] == "rollback" and set(event["renamed_at"]) == set(SERVERS), event
    assert set(event["moved_at"]) == {f"{name}:front" for name in SERVERS}, event
    for name in SERVERS:
        assert abs(event["moved_at"][f"{name}:front"] - event["renamed_at"][name]) < 2.0, event


def test_rollback_to_a_backup_instance_that_died_starts_it_again_before_anything_moves(app_farm, open_fleet):
    """A warm backup whose process is gone (a crash, a reboot) must not stand between the on-call and a rollback:
    prepare starts it again on its own port and waits for its health path; then the switch goes as usual, and the
    result says it was started again."""
    assert app_farm.switch("go-live").decision is Decision.COMMITTED
    dead = app_farm.read()["web-2"].of_slot("backup")
    _kill_instance(app_farm, "web-2", dead.pid)

    result = rolled_back(app_farm, open_fleet)

    assert result.warnings == (f"web-2: the backup instance of r1 on port {dead.port} was not running (its process "
                               "was gone); it was started again before the switch",)
    again = app_farm.read()["web-2"].of_slot("live")
    assert (again.release, again.port, again.reports, again.health) == ("r1", dead.port, "r1", 200)
    assert again.pid and again.pid != dead.pid
    for name in SERVERS:
        assert app_farm.served(name) == {(200, "r1")}


def test_rollback_to_a_backup_instance_that_hangs_is_refused_before_anything_moves(app_farm):
    """A backup whose process runs but does not answer is not started twice on its port: refused, nothing moved."""
    assert app_farm.switch("go-live").decision is Decision.COMMITTED
    hung = app_farm.read()["web-2"].of_slot("backup")
    os.killpg(hung.pid, signal.SIGSTOP)
    try:
        report = app_farm.switch("rollback")
    finally:
        os.killpg(hung.pid, signal.SIGCONT)

    assert report.decision is Decision.REFUSED, report
    cause = report.cause["web-2:front"]
    assert "could not be started again" in cause and f"runs (pid {hung.pid}) but does not answer" in cause, cause
    for name in SERVERS:
        assert app_farm.served(name) == {(200, "r2")}


def test_a_front_whose_nginx_is_stopped_refuses_the_switch_before_anything_moves(app_farm):
    """nginx stopped on web-3: `nginx -t` still passes, so prepare asks the front itself; nothing moves anywhere."""
    app_farm.stop_front("web-3")
    try:
        report = app_farm.switch("go-live")
    finally:
        app_farm.start_front("web-3")

    assert report.decision is Decision.REFUSED, report
    assert "is nginx running on web-3?" in report.cause["web-3:front"], report.cause
    for name in SERVERS:
        assert app_farm.served(name) == {(200, "r1")}


def test_prune_stops_retired_instances_and_never_one_a_slot_names(app_farm):
    assert app_farm.switch("go-live").decision is Decision.COMMITTED
    assert app_farm.switch("rollback").decision is Decision.COMMITTED  # live r1, no backup, r2 retired
    server = app_farm.environment.servers[0]
    host, root = app_farm.hosts[server.name], app_farm.environment.app_root(server)
    live = app_farm.read()[server.name].of_slot("live")

    refused = host.run(instances.stop_argv(app_farm.environment.application, root, live.port), timeout=30)
    stopped = instances.stop_retired_instances(host, app_farm.environment, root)

    assert refused.exit_code == 3 and "live points at it" in refused.stderr
    assert [i.release for i in stopped] == ["r2"]
    after = app_farm.read()[server.name]
    assert [(i.release, i.slot, i.pid) for i in after.instances] == [("r1", "live", live.pid)]
    assert app_farm.served(server.name) == {(200, "r1")}


def test_a_rehearsal_or_a_stage_has_no_front_participant(app_farm):
    """Only a switch that moves live moves the front; a rehearsal must never reload the real nginx."""
    from releaser.participants import SwitchContext
    from releaser.slots import plan_go_live
    from conftest import read_slots

    plans = {name: plan_go_live(state) for name, state in read_slots(app_farm.environment).items()}
    context = SwitchContext(environment=app_farm.environment, hosts=app_farm.hosts, roots=app_farm.roots(),
                            action="rehearsal", slot="live", plans=plans, target="r2", previous="r1", rehearsal=True)

    assert front_participant.participants(context) == []


# ---- the smoke checks ask the staging instance, from its server ----

def smoke_results(farm: AppFarm, *smoke: dict) -> dict[str, tuple[str, str]]:
    """Run the smoke check over the farm's servers with these [[smoke]] entries: server -> (status, detail)."""
    from datetime import datetime, timezone

    from releaser.checks import Limits, check_release
    from releaser.clock import FakeClock
    from releaser.config import SmokeCheck
    from releaser.fleet import Fleet

    environment = farm.environment.model_copy(update={"smoke": [SmokeCheck.model_validate(s) for s in smoke]})
    now = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)
    with Fleet(environment, actor="tester", clock=FakeClock(now)) as fleet:
        run = check_release(fleet, Limits(environment), now=now, only="smoke")
    return {r.server: (r.status, r.detail) for r in run.results}


def test_the_smoke_checks_ask_the_staging_instance_on_its_private_port(app_farm):
    """r1 is live behind the fronts and r2 staged on its own instance; the staging URLs answer nothing. The smoke
    check passes on r2's body and names the instance's port: it asked the staging instance, from each server."""
    ports = {name: slots_of(view)["staging"] for name, view in app_farm.read().items()}
    staged_port = {name: next(i.port for i in view.instances if i.slot == "staging")
                   for name, view in app_farm.read().items()}
    results = smoke_results(app_farm, {"path": "/", "contains": "release=r2"},
                            {"path": "/healthz", "contains": "ok"})
    assert {name: status for name, (status, _) in results.items()} == {name: "PASS" for name in SERVERS}, results
    for name, (_, detail) in results.items():
        assert detail == f"2 passed on the staging instance of r2 (port {staged_port[name]}): /, /healthz"
    assert {name: slots_of(view)["staging"] for name, view in app_farm.read().items()} == ports  # nothing restarted


def test_a_smoke_check_the_staging_instance_fails_names_its_url_and_what_came_back(app_farm):
    """Expecting live's text from staging fails on every server, quoting the instance's URL and its body."""
    results = smoke_results(app_farm, {"path": "/", "contains": "release=r1"})
    for name, view in app_farm.read().items():
        port = next(i.port for i in view.instances if i.slot == "staging")
        status, detail = results[name]
        assert status == "FAIL"
        assert detail.startswith(f"GET http://127.0.0.1:{port}/ -> 200 but the body lacks 'release=r1': ok release=r2")


def test_a_smoke_path_with_brackets_and_braces_is_asked_as_written(app_farm):
    """QA: curl reads [1-3] and {a,b} in a URL as globs (many requests, or exit 3 'bad range'), so a path the
    environment file allows was asked as other URLs, or failed as `curl exit 3`: it is now asked literally."""
    results = smoke_results(app_farm, {"path": "/search?ids=[1]&fields={code,value}", "contains": "release=r2"})
    assert {name: status for name, (status, _) in results.items()} == {name: "PASS" for name in SERVERS}, results
    assert all(detail.endswith(": /search?ids=[1]&fields={code,value}") for _, detail in results.values()), results


def test_the_smoke_check_fails_where_the_staging_instance_is_not_running(app_farm):
    """web-2's staging instance is stopped: its smoke check FAILs saying so, the others still PASS."""
    view = app_farm.read()["web-2"]
    staging = next(i for i in view.instances if i.slot == "staging")
    stopped = app_farm.hosts["web-2"].run(instances.stop_argv(app_farm.environment.application,
                                                              app_farm.roots()["web-2"], staging.port,
                                                              retired_only=False), timeout=30)
    assert stopped.ok, stopped.stderr
    results = smoke_results(app_farm, {"path": "/healthz", "contains": "ok"})
    assert results["web-2"][0] == "FAIL" and "no instance of the staged release r2 runs" in results["web-2"][1]
    assert results["web-1"][0] == results["web-3"][0] == "PASS"


# ---- what the public sees through the front: status, and verify without a release header ----

def with_release_header(environment, header: str | None):
    """The environment with [application] release_header set to `header` (None: the instance names none)."""
    return environment.model_copy(update={"application": environment.application.model_copy(
        update={"release_header": header})})


def frozen_front(farm: AppFarm, name: str, release: str) -> str:
    """Make a server's nginx send the public to `release`'s instance whatever its include says (a front whose
    reloads do not take, as with a stray upstream or a cache); the configuration to put back."""
    front = farm.fronts[name]
    good = front.conf.read_text()
    port = farm.read()[name].of_release(release).port
    front.conf.write_text(good.replace(front.upstream, f"server 127.0.0.1:{port};"))
    return good


def reload_front(farm: AppFarm, name: str, serving: str) -> None:
    """Reload a server's nginx by its PID and wait until it answers from the instance of `serving`."""
    farm.fronts[name].process.send_signal(signal.SIGHUP)
    wait_until_served(farm, name, serving)


def wait_until_served(farm: AppFarm, name: str, release: str) -> None:
    """Wait until a front answers only from `release` (the workers a graceful reload retires finish first).

    Two rounds in a row: on a loaded CI machine a retiring worker still took a new connection just after one
    round of 5 had all come from the new workers, and status's marker then came from the old upstream.
    """
    deadline = time.monotonic() + 10
    rounds = 0
    while rounds < 2:
        rounds = rounds + 1 if farm.served(name, 10) == {(200, release)} else 0
        assert time.monotonic() < deadline, f"{name}'s front does not serve {release}: {farm.served(name, 5)}"
        if rounds < 2:
            time.sleep(0.05)


@pytest.mark.parametrize("header", ["X-Release-Id", None], ids=["release-header", "marker-through-the-front"])
def test_status_shows_the_release_a_stale_front_serves(app_farm, open_fleet, capsys, monkeypatch, header):
    """After go-live to r2, web-2's front keeps sending the public to r1's instance: status says STALE r1 there."""
    app_farm.environment = with_release_header(app_farm.environment, header)
    assert app_farm.switch("go-live").decision is Decision.COMMITTED
    good = frozen_front(app_farm, "web-2", "r1")
    try:
        reload_front(app_farm, "web-2", "r1")
        served_by_nginx = app_farm.environment.model_copy(update={"sandbox": None})  # the fronts hold the live ports
        with open_fleet(served_by_nginx) as fleet:
            reports = fleet.read_status()
        capsys.readouterr()
        ui.show_status(app_farm.environment.name, reports, as_json=True)
        servers = {s["server"]: s for s in json.loads(capsys.readouterr().out)["servers"]}
        assert servers["web-2"]["live"] == "r2" and servers["web-2"]["health"]["ok"]  # healthy, yet not r2
        seen = servers["web-2"]["public_sees"]
        assert (seen["release"], seen["stale"]) == ("r1", True), seen
        assert [(servers[n]["public_sees"]["release"], servers[n]["public_sees"]["stale"]) for n in ("web-1", "web-3")] \
            == [("r2", False), ("r2", False)]
        assert seen["url"].endswith("/healthz" if header else "/.releaser/release.json")
        assert (seen["sums_sha256"] is None) == (header is not None)  # a header names the release, not its files
        monkeypatch.setenv("COLUMNS", "200")
        ui.show_status(app_farm.environment.name, reports)
        out = capsys.readouterr()
        assert "STALE r1" in out.out
        assert "web-2's public URL serves r1 while its live link points at r2" in out.err
    finally:
        app_farm.fronts["web-2"].conf.write_text(good)


@BOTH_WAYS
def test_without_a_release_header_verify_reads_the_marker_through_the_front(app_farm):
    """No release header declared: verify reads the release marker through web-2's front, finds r1, reverts, and
    says what fixes it by the way the front moves: a reload cannot help a socket way whose nginx connects elsewhere."""
    app_farm.environment = with_release_header(app_farm.environment, None)
    good = {}

    def freeze_web_2() -> None:
        good["conf"] = frozen_front(app_farm, "web-2", "r1")
        if app_farm.environment.application.front.socket is not None:  # the commit reloads nothing: reload it here
            app_farm.fronts["web-2"].process.send_signal(signal.SIGHUP)
            time.sleep(0.5)  # the old workers, which would follow the link, stop taking connections

    try:
        report = app_farm.switch("go-live", before_commit=freeze_web_2)
    finally:
        if "conf" in good:
            app_farm.fronts["web-2"].conf.write_text(good["conf"])
    assert report.decision is Decision.REVERTED, report
    cause = report.cause["web-2:front"]
    assert "/.releaser/release.json -> release r1, expected r2" in cause, cause
    if app_farm.environment.application.front.socket is not None:
        assert "nginx does not connect through " in cause and "reload" not in cause, cause
    else:
        assert "the front is serving a stale copy; reload nginx" in cause, cause
    for name in SERVERS:  # every front is back on r1
        wait_until_served(app_farm, name, "r1")


def test_a_rehearsal_of_an_application_release_asks_the_staging_instance(app_farm, open_fleet):
    """Nothing serves the staging URL with an application's staged release: the rehearsal's verify asks the
    staging instance on its server (its private port), so a healthy one passes, and a dead one fails by name."""
    environment = app_farm.environment.model_copy(update={"sandbox": None})  # the fronts hold the live ports
    with open_fleet(environment) as fleet:
        result = fleet.rehearse()
    assert result.release == "r2" and all(r.ok for r in result.results), result

    dead = app_farm.read()["web-3"].of_slot("staging")
    _kill_instance(app_farm, "web-3", dead.pid)
    with open_fleet(environment) as fleet, pytest.raises(FleetReverted) as failed:
        fleet.rehearse()
    message = str(failed.value)
    assert f"web-3 (the staging instance of r2 on port {dead.port} fails GET /healthz (no answer))" in message, message
    assert "web-1" not in message and "web-2" not in message
    for name in SERVERS:
        assert app_farm.served(name) == {(200, "r1")}  # a rehearsal never touches the public site


def test_a_start_that_never_answers_leaves_no_process_behind(app_farm):
    """r3's instance answers 503 until start_timeout (2 s here): the start fails, naming why, and its process is
    stopped with the declared stop command (in command mode, as a unit is stopped), not left running unhealthy."""
    server = app_farm.environment.servers[0]
    host, root = app_farm.hosts[server.name], app_farm.environment.app_root(server)
    quick = app_farm.environment.model_copy(update={"application": app_farm.environment.application.model_copy(
        update={"start_timeout": 2.0})})
    (Path(str(root)) / "unhealthy-r3").write_text("")
    running = app_farm.read()[server.name]
    free = next(p for p in quick.instance_ports(server) if p not in {i.port for i in running.instances})

    with pytest.raises(Exception) as failed:
        instances._start(host, instances.start_argv(quick.application, root, free, "r3", "staging"), 30.0)

    assert "did not start: no answer to GET /healthz within 2 s (last status 503)" in str(failed.value), failed.value
    after = app_farm.read()[server.name].of_release("r3")
    assert after is not None and after.pid is None and after.health is None, after  # recorded, stopped, not answering


def test_a_stage_whose_instance_does_not_start_is_no_refusal_and_says_staging_moved(app_farm, open_fleet):
    """QA: staging r3 whose instance never answered exited 3, which the exit-code table keeps for refusals that
    change nothing; staging had moved to r3. It is a failure (exit 1) that says so, and journals it."""
    quick = app_farm.environment.model_copy(update={"sandbox": None, "application": app_farm.environment.application.model_copy(
        update={"start_timeout": 2.0})})
    for server in quick.servers:
        (Path(str(quick.app_root(server))) / "unhealthy-r3").write_text("")
    app_farm.environment = quick
    assert app_farm.switch("stage", release="r3").decision is Decision.COMMITTED

    with open_fleet(quick) as fleet, pytest.raises(ReleaserError) as failed:
        staging._start_staging_instances(fleet, "r3", "r2")
    assert type(failed.value) is ReleaserError and failed.value.exit_code == 1, failed.value
    assert failed.value.what.startswith("staging now points at r3, but its instance did not start on "), failed.value.what
    assert "live and backup were not touched" in failed.value.hint
    for name in SERVERS:
        assert app_farm.served(name) == {(200, "r1")}  # the public never saw r3


# ---- a front that moves by socket link: what the instance and the link must be ----

def test_an_instance_that_does_not_listen_on_its_socket_does_not_start_and_says_where(app_farm):
    """The front connects to the instance's own unix socket: an instance listening only on its port fails its start,
    naming the socket and RELEASER_SOCKET, and is stopped (a stage, not go-live, finds it out)."""
    server = app_farm.environment.servers[0]
    host, root = app_farm.hosts[server.name], app_farm.environment.app_root(server)
    application = app_farm.environment.application
    portless = application.model_copy(update={"start": f"env -u RELEASER_SOCKET {application.start}",
                                              "start_timeout": 2.0})
    running = app_farm.read()[server.name]
    free = next(p for p in app_farm.environment.instance_ports(server) if p not in {i.port for i in running.instances})
    socket = app_farm.environment.instance_socket(server, free)

    with pytest.raises(Exception) as failed:
        instances._start(host, instances.start_argv(portless, root, free, "r3", "staging", socket=socket), 30.0)

    assert (f"did not start: it answers GET /healthz on its port but made no unix socket at {socket} within 2 s (the "
            "front connects there: have it listen on RELEASER_SOCKET too)") in str(failed.value), failed.value
    after = app_farm.read()[server.name].of_release("r3")
    assert after is not None and after.pid is None, after  # stopped, not left running


def test_a_socket_front_whose_path_is_not_a_link_refuses_before_anything_moves(app_farm):
    """Something other than releaser's link at the socket path (a process listening there itself): prepare refuses
    on that server, so nothing moves anywhere and the front keeps serving r1."""
    link = Path(str(app_farm.roots()["web-2"])) / app_farm.environment.application.front.socket
    target = os.readlink(link)
    link.unlink()
    link.write_text("")
    try:
        report = app_farm.switch("go-live")
    finally:
        link.unlink()
        link.symlink_to(target)

    assert report.decision is Decision.REFUSED, report
    assert f"{app_farm.environment.application.front.socket} is not a symbolic link" in report.cause["web-2:front"]
    for name in SERVERS:
        assert app_farm.served(name) == {(200, "r1")}
        assert front_port(app_farm, name) == app_farm.read()[name].of_slot("live").port


class Recording:
    """A server's real Host that notes each script started on a channel of its own (an armed commit is one)."""

    def __init__(self, host) -> None:
        self.host, self.name, self.started = host, host.name, []

    def __getattr__(self, name):
        return getattr(self.host, name)

    def start(self, argv, **kwargs):
        self.started.append(list(argv))
        return self.host.start(argv, **kwargs)


@BOTH_WAYS
def test_a_scheduled_go_live_arms_the_socket_front_and_moves_it_at_the_second(app_farm):
    """With a second to wait for, the socket way's front commit is started ahead on every server and only told go
    at T: its rename comes after T, never before. The include way's reload is not armed (it commits at T)."""
    app_farm.hosts = {name: Recording(host) for name, host in app_farm.hosts.items()}
    moment = time.time() + 1.5

    def wait_for_the_second() -> None:
        while time.time() < moment:
            time.sleep(0.001)

    report = app_farm.switch("go-live", before_commit=wait_for_the_second, until_commit=lambda: moment - time.time())

    assert report.decision is Decision.COMMITTED, report
    by_socket = app_farm.environment.application.front.socket is not None
    for name in SERVERS:
        gates = [argv for argv in app_farm.hosts[name].started if argv[3] == "releaser-front-commit"]
        assert len(gates) == (1 if by_socket else 0), app_farm.hosts[name].started
        moved = report.outcome(f"{name}:front").moved_at
        assert moved is not None and moment <= moved < moment + 2.0, (moved, moment)
        assert app_farm.served(name) == {(200, "r2")}
        assert not list(Path(str(app_farm.roots()[name])).glob(".releaser/front/*.releaser-*"))


def test_an_armed_socket_front_never_told_go_moves_nothing(app_farm):
    """The wait for the second ends without the moment (Ctrl-C, a refusal): the armed fronts read end of file and
    rename nothing, and nothing of them is left beside the link."""
    app_farm.hosts = {name: Recording(host) for name, host in app_farm.hosts.items()}
    moment = time.time() + 30

    def stop_before_the_second() -> None:
        deadline = time.monotonic() + 10
        while not all(any(argv[3] == "releaser-front-commit" for argv in host.started)
                      for host in app_farm.hosts.values()) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # past their "armed" lines
        raise RuntimeError("stopped before the second")

    with pytest.raises(RuntimeError, match="stopped before the second"):
        app_farm.switch("go-live", before_commit=stop_before_the_second, until_commit=lambda: moment - time.time())

    for name, view in app_farm.read().items():
        assert front_port(app_farm, name) == view.of_slot("live").port and view.of_slot("live").release == "r1"
        assert app_farm.served(name) == {(200, "r1")}
        assert not list(Path(str(app_farm.roots()[name])).glob(".releaser/front/*.releaser-*"))


@pytest.mark.parametrize("python", [True, False], ids=["python3", "sh"])
def test_the_socket_fronts_armed_commit_renames_on_go_and_nothing_without_it(app_farm, python):
    """Each way the armed front commit runs (one python3 process where the server has python3, else sh): told go it
    renames the prepared link and prints a time after the go line; no go line within its bound renames nothing,
    exit 8."""
    server = app_farm.environment.server("web-1")
    host, root = app_farm.hosts["web-1"], app_farm.environment.app_root(server)
    application = app_farm.environment.application
    link = Path(str(root)) / application.front.socket
    before = os.readlink(link)
    staging = app_farm.read()["web-1"].of_slot("staging")
    for told in (False, True):
        (link.parent / f"{link.name}.releaser-next").symlink_to(f"instance-{staging.port}.sock")
        running = host.start(front_participant.armed_commit_argv(application, root, bound=30 if told else 1.0,
                                                                 python=python))
        assert running.readline(5) == "armed"
        sent = time.time()
        if not told:
            done = running.wait(10)
            assert done.exit_code == 8 and "no go line came" in done.stderr, done
            assert os.readlink(link) == before  # nothing renamed
            os.unlink(link.parent / f"{link.name}.releaser-next")
            continue
        running.send("go\n")
        done = running.wait(10)
        assert done.exit_code == 0 and float(done.stdout.split()[-1]) >= sent, done
        assert os.readlink(link) == f"instance-{staging.port}.sock"
        assert not list(link.parent.glob("*.releaser-*"))
    os.replace(link, link.parent / "moved")  # put web-1's front back on r1's instance
    (link.parent / "back").symlink_to(before)
    os.replace(link.parent / "back", link)
    os.unlink(link.parent / "moved")
    assert app_farm.served("web-1") == {(200, "r1")}


def test_an_armed_socket_front_frozen_past_its_bound_moves_nothing_on_the_go_line_it_reads_late(app_farm):
    """web-1 stops (SIGSTOP: a paused VM) while its front commit is armed; the go line waits in its socket past the
    bound. Thawed, the script reads it at once and must rename nothing: the coordinator has given web-1 up and put
    the others back, so a rename now would make the fleet MIXED after the command ended (it did, before the fix)."""
    server = app_farm.environment.server("web-1")
    host, root = app_farm.hosts["web-1"], app_farm.environment.app_root(server)
    link = Path(str(root)) / app_farm.environment.application.front.socket
    before = os.readlink(link)
    staging = app_farm.read()["web-1"].of_slot("staging")
    (link.parent / f"{link.name}.releaser-next").symlink_to(f"instance-{staging.port}.sock")
    running = host.start(front_participant.armed_commit_argv(app_farm.environment.application, root, bound=3.0))
    assert running.readline(5) == "armed"
    armed_at = time.monotonic()
    app_farm.farm.freeze("web-1")
    try:
        assert time.monotonic() - armed_at < 2.0  # frozen well within the bound
        running.send("go\n")
        time.sleep(4.0)
    finally:
        app_farm.farm.thaw("web-1")
    done = running.wait(10)
    assert done.exit_code == 8 and "no go line came" in done.stderr, done
    assert os.readlink(link) == before
    assert app_farm.served("web-1") == {(200, "r1")}
    os.unlink(link.parent / f"{link.name}.releaser-next")


def test_a_rollback_moves_a_socket_front_whose_nginx_is_stopped_and_says_it_is_unhealthy(app_farm):
    """nginx stopped on web-3: renaming its link harms nothing, so the rollback withdraws r2 from every server
    (web-3's nginx finds r1 when it starts again) and reports web-3 unhealthy instead of refusing everywhere."""
    assert app_farm.switch("go-live").decision is Decision.COMMITTED
    app_farm.stop_front("web-3")
    try:
        report = app_farm.switch("rollback", deadlines=Deadlines(verify=3.0))
    finally:
        app_farm.start_front("web-3")

    assert report.decision is Decision.UNHEALTHY, report
    assert set(report.cause) <= {"web-3", "web-3:front"}, report.cause
    for name, view in app_farm.read().items():
        assert view.of_slot("live").release == "r1" and front_port(app_farm, name) == view.of_slot("live").port
        assert app_farm.served(name) == {(200, "r1")}


def test_an_instance_whose_socket_is_gone_is_said_by_status_restarted_by_a_stage_and_by_a_rollback(app_farm, open_fleet):
    """The socket of web-2's staging instance, then of its backup, is removed (the process still answers on its
    port): status says FAIL no socket; staging the same release again restarts it; a rollback stops and starts
    the backup again before anything moves, says so, and the public gets r1 from the new process."""
    server = app_farm.environment.server("web-2")
    staging = app_farm.read()["web-2"].of_slot("staging")
    Path(str(app_farm.environment.instance_socket(server, staging.port))).unlink()
    gone = app_farm.read()["web-2"].of_slot("staging")
    assert gone.socket is False and not gone.is_healthy and gone.health == 200

    app_farm.start_staging("r2")
    again = app_farm.read()["web-2"].of_slot("staging")
    assert again.socket is True and again.is_healthy and again.pid != staging.pid and again.port == staging.port

    assert app_farm.switch("go-live").decision is Decision.COMMITTED
    backup = app_farm.read()["web-2"].of_slot("backup")
    Path(str(app_farm.environment.instance_socket(server, backup.port))).unlink()
    result = rolled_back(app_farm, open_fleet)

    assert result.warnings == (f"web-2: the backup instance of r1 on port {backup.port} was running without its unix "
                               "socket (where the front connects); it was stopped and started again before the switch",)
    live = app_farm.read()["web-2"].of_slot("live")
    assert (live.release, live.port, live.socket) == ("r1", backup.port, True) and live.pid != backup.pid
    for name in SERVERS:
        assert app_farm.served(name) == {(200, "r1")}


def test_status_shows_where_the_front_link_points_and_warns_when_it_is_not_the_live_instance(app_farm, open_fleet,
                                                                                             capsys, monkeypatch):
    """web-2's link is pointed at the backup instance by hand (a switch cut off half-way): status's instances table
    says which instance the front names, its JSON too, and a warning says what the public gets there."""
    assert app_farm.switch("go-live").decision is Decision.COMMITTED  # r2 live, r1 the warm backup
    view = app_farm.read()["web-2"]
    live, backup = view.of_slot("live"), view.of_slot("backup")
    link = Path(str(app_farm.roots()["web-2"])) / app_farm.environment.application.front.socket
    (link.parent / "wrong").symlink_to(f"instance-{backup.port}.sock")
    os.replace(link.parent / "wrong", link)
    try:
        with open_fleet(app_farm.environment.model_copy(update={"sandbox": None})) as fleet:
            reports = fleet.read_status()
        capsys.readouterr()
        ui.show_status(app_farm.environment.name, reports, as_json=True)
        servers = {s["server"]: s for s in json.loads(capsys.readouterr().out)["servers"]}
        assert servers["web-1"]["front"] == {"link": f"instance-{app_farm.read()['web-1'].of_slot('live').port}.sock",
                                             "problem": None}
        expected = (f"the front's link names the backup instance of r1 on port {backup.port}, not the live instance of "
                    f"r2 on port {live.port}")
        assert servers["web-2"]["front"] == {"link": f"instance-{backup.port}.sock", "problem": expected}
        assert [(i["port"], i["front"]) for i in servers["web-2"]["instances"] if i["slot"] in ("live", "backup")] \
            == sorted([(live.port, False), (backup.port, True)])
        monkeypatch.setenv("COLUMNS", "200")
        ui.show_status(app_farm.environment.name, reports)
        err = capsys.readouterr().err
        assert f"web-2: {expected}: the public there gets what that link leads to" in err, err
        assert "web-1: the front's link" not in err
    finally:
        (link.parent / "right").symlink_to(f"instance-{live.port}.sock")
        os.replace(link.parent / "right", link)
