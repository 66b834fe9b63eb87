"""The release marker on a real three-server sshd farm: verification proves which release the public sees.

web-2's public site is a separate web server process that resolved its directory once, when it started (as a
web server that follows the live link only at start, or a cache in front of one, does): after the live link
moves it keeps serving the old release, and its health path still answers "ok".
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import EXAMPLES, free_ports, read_slots, ssh_environment_for
from releaser import ui
from releaser.bundle import read_bundle
from releaser.checks import Limits, run_checks
from releaser.config import load_environment
from releaser.errors import FleetReverted
from releaser.sandbox import serving
from releaser.slots import SlotState

pytestmark = pytest.mark.ssh

SERVERS = ("web-1", "web-2", "web-3")
OLD = SlotState("r1", None, "r2", frozenset({"r1", "r2"}))

# A web server that picks its directory once, at start: the directory the link pointed at then.
STALE_SERVER = r"""
import functools, http.server, os, sys
directory = os.path.realpath(sys.argv[1])
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=directory)
handler.func.log_message = lambda *args: None
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), handler).serve_forever()
"""


def environment_without_sandbox(farm, tmp_path):
    """The farm's SSH environment with the sandbox web servers off: the test runs them itself."""
    env = ssh_environment_for(farm, tmp_path / "identity.toml")
    path = Path(env.path)
    path.write_text(path.read_text().replace("[sandbox]\nserve = true", "[sandbox]\nserve = false"))
    return load_environment(str(path), Path(__file__).resolve().parents[2])


def others_served(env, stale_server: str):
    """Every live and staging site of the sandbox but `stale_server`'s live one (given a throwaway port)."""
    taken = {int(url.rsplit(":", 1)[1]) for s in env.servers for url in (s.live_url, s.staging_url)}
    spare = next(port for port in free_ports(len(taken) + 1) if port not in taken)  # free now, and no other site's
    servers = [s.model_copy(update={"live_url": f"http://127.0.0.1:{spare}"}) if s.name == stale_server else s
               for s in env.servers]
    return serving(env.model_copy(update={"servers": servers}))


def start_stale_server(directory: Path, url: str) -> subprocess.Popen:
    """Serve `directory` (resolved now, once) on the URL's port; return once it answers."""
    port = int(url.rsplit(":", 1)[1])
    process = subprocess.Popen([sys.executable, "-c", STALE_SERVER, str(directory), str(port)])
    deadline = time.monotonic() + 10
    while True:
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=1).read()
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"the stale web server did not start on {url}")
            time.sleep(0.05)


def test_a_web_server_serving_the_old_release_fails_go_live_and_status_shows_it(sshd_farm, open_fleet, tmp_path, capsys,
                                                                               monkeypatch):
    env = environment_without_sandbox(sshd_farm, tmp_path)
    web2 = env.server("web-2")
    with others_served(env, "web-2"):
        with open_fleet(env) as fleet:
            fleet.stage(read_bundle(EXAMPLES / "r1"))
        stale = start_stale_server(Path(str(env.app_root(web2))) / "releases" / "r1" / "public", web2.live_url)
        try:
            with open_fleet(env) as fleet:
                fleet.go_live()  # web-2's web server serves r1: right, for now
                fleet.stage(read_bundle(EXAMPLES / "r2"))
                with pytest.raises(FleetReverted) as failure:
                    fleet.go_live()
            message = str(failure.value)
            assert "go-live failed on web-2 (GET " in message and "/.releaser/release.json -> release r1, expected r2" in message
            assert "the web server is serving a stale copy" in message and "reload the web server" in message
            assert "purge any cache in front of it" in message and "every server is back on r1" in message
            assert read_slots(env) == {name: OLD for name in SERVERS}  # the links, read back from every server

            # Someone moves the links without verifying (by hand, or an older releaser): status tells the truth.
            with open_fleet(env) as fleet:
                fleet.go_live(verify=False)
                reports = fleet.read_status()
                checked = {r.server: r for r in run_checks(fleet, Limits(env), now=datetime.now(timezone.utc),
                                                           only="serving")}
            # `invoke check` finds it before the next go-live would (its verification would put every server back)
            assert checked["web-2"].status == "FAIL", checked["web-2"]
            assert "-> release r1, but live points at r2: the web server serves a stale copy" in checked["web-2"].detail
            assert "reload the web server" in checked["web-2"].detail
            assert [(checked[n].status, checked[n].detail) for n in ("web-1", "web-3")] == [
                ("PASS", "the public sees r2, where live points")] * 2
            assert {name: state.live for name, state in read_slots(env).items()} == dict.fromkeys(SERVERS, "r2")
            capsys.readouterr()
            ui.show_status(env.name, reports, as_json=True)
            servers = {s["server"]: s for s in json.loads(capsys.readouterr().out)["servers"]}
            assert servers["web-2"]["live"] == "r2" and servers["web-2"]["health"]["ok"]  # healthy, yet not r2
            assert servers["web-2"]["public_sees"]["release"] == "r1" and servers["web-2"]["public_sees"]["stale"]
            assert [servers[n]["public_sees"]["release"] for n in ("web-1", "web-3")] == ["r2", "r2"]
            assert not servers["web-1"]["public_sees"]["stale"]
            monkeypatch.setenv("COLUMNS", "200")
            ui.show_status(env.name, reports)
            out = capsys.readouterr()
            assert "STALE r1" in out.out
            assert "web-2's public URL serves r1 while its live link points at r2" in out.err
        finally:
            stale.terminate()
            stale.wait(timeout=10)
