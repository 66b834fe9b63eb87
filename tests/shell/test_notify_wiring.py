"""Notifications wired into fleet commands: a real receiver hears about a failed go-live; a dead channel is journaled."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import EXAMPLES, PROJECT, free_ports, read_slots, sandbox_servers, write_environment
from releaser.bundle import read_bundle
from releaser.config import load_environment
from releaser.errors import FleetReverted


@pytest.fixture
def receiver():
    """A real HTTP server on loopback that records every JSON body posted to it."""
    bodies = []

    class Record(BaseHTTPRequestHandler):
        def do_POST(self):
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Record)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", bodies
    server.shutdown()
    server.server_close()


def test_failed_go_live_is_announced_and_a_dead_channel_is_journaled(tmp_path, receiver, open_fleet):
    """The live receiver gets go-live-failed; the channel on a closed port is journaled as failed; slots are all-old."""
    url, bodies = receiver
    closed = free_ports(1)[0]
    extra = f"""
    [[notifications]]
    kind = "webhook"
    name = "ops-chat"
    url = "{url}"
    events = ["go-live-done", "go-live-failed"]

    [[notifications]]
    kind = "webhook"
    name = "dead"
    url = "http://127.0.0.1:{closed}/hook"
    events = ["go-live-failed"]
    timeout = 2.0
    """
    path = write_environment(tmp_path / "env.toml", servers=sandbox_servers(tmp_path / "s", 2), extra=extra)
    environment = load_environment(str(path), PROJECT)
    with open_fleet(environment) as fleet:
        fleet.stage(read_bundle(EXAMPLES / "r1"))
        fleet.go_live()
        fleet.stage(read_bundle(EXAMPLES / "r3"))
        with pytest.raises(FleetReverted):
            fleet.go_live()
    assert [body["event"] for body in bodies] == ["go-live-done", "go-live-failed"]
    assert "healthz -> 404" in bodies[1]["detail"]
    assert [(d.channel, d.ok) for d in fleet.deliveries] == [("ops-chat", True), ("ops-chat", True), ("dead", False)]
    journal = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()]
    assert [(e["action"], e["outcome"]) for e in journal][-1] == ("notify", "failed")
    assert {s.live for s in read_slots(environment).values()} == {"r1"}
