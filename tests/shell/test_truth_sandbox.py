"""Issue 12, item 3: the sandbox serves only its own sites and never takes another server's answer for its own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from conftest import EXAMPLES, PROJECT, free_ports, read_slots, sandbox_servers, write_environment
from releaser.config import load_environment
from releaser.errors import ReleaserError
from releaser.sandbox import IDENTITY_HEADER, serving


def twin_environments(tmp_path):
    """Two sandboxes on the very same ports with different app roots, like two checkouts on one machine."""
    servers = sandbox_servers(tmp_path / "ours", 2)
    theirs = [{**server, "root": str(tmp_path / "theirs" / server["name"])} for server in servers]
    ours = load_environment(str(write_environment(tmp_path / "ours.toml", servers=servers)), PROJECT)
    other = load_environment(str(write_environment(tmp_path / "theirs.toml", servers=theirs)), PROJECT)
    return ours, other


def test_a_port_held_by_another_sandbox_is_refused_by_name(tmp_path):
    """Another checkout's sandbox on our ports is named, with the port, and is left serving its own root."""
    ours, other = twin_environments(tmp_path)
    port = ours.servers[0].live_url.rsplit(":", 1)[1]
    with serving(other):
        with pytest.raises(ReleaserError) as refused:
            with serving(ours):
                pass
        try:
            urllib.request.urlopen(other.servers[0].live_url + "/", timeout=2)
        except urllib.error.HTTPError as error:  # nothing is live there yet: a 404, from their server
            answer = error
    assert f"port {port} (web-1 live_url) is already held by another releaser sandbox" in str(refused.value)
    assert f"lsof -i :{port}" in str(refused.value)
    assert str(tmp_path / "theirs" / "web-1") in answer.headers[IDENTITY_HEADER]


def test_a_port_held_by_this_same_sandbox_is_shared(tmp_path):
    """`invoke serve` in another terminal holds our own ports: a command runs alongside it and starts nothing."""
    ours, _ = twin_environments(tmp_path)
    with serving(ours) as first:
        with serving(ours) as second:
            assert second == []
    assert len(first) == 4


def test_go_live_with_another_sandbox_on_the_ports_fails_and_moves_nothing(tmp_path):
    """The go-live of a release without /healthz is never 'verified' against somebody else's server."""
    ours, other = twin_environments(tmp_path)
    environ = {**os.environ, "RELEASER_ACTOR": "truth@tests", "NO_COLOR": "1", "COLUMNS": "200"}

    def invoke(*args, env):
        return subprocess.run([sys.executable, "-m", "invoke", *args, "--env", str(env.path)], cwd=PROJECT,
                              capture_output=True, text=True, timeout=120, env=environ, stdin=subprocess.DEVNULL)

    for env in (ours, other):
        assert invoke("deploy", "--stage", "--release", str(EXAMPLES / "r1"), env=env).returncode == 0
    assert invoke("go-live", "--now", "--yes", "--override", "rollback-target", "--reason", "t", env=other).returncode in (0, 4)
    before = read_slots(ours)
    with serving(other):
        done = invoke("go-live", "--now", "--yes", env=ours)
    assert done.returncode == 1, done.stderr
    assert "is already held by another releaser sandbox" in done.stderr
    assert read_slots(ours) == before


def demo_project(tmp_path, ports):
    """A copy of the project's sandbox environment and example releases, on free ports, in tmp_path."""
    project = tmp_path / "project"
    (project / "environments").mkdir(parents=True)
    text = (PROJECT / "environments" / "local.toml").read_text()
    for old, new in zip((8101, 8201, 8102, 8202, 8103, 8203), ports):
        text = text.replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}")
    (project / "environments" / "local.toml").write_text(text)
    shutil.copytree(EXAMPLES, project / "examples" / "releases")
    return project


def run_demo_in(project):
    environ = {**os.environ, "RELEASER_PROJECT": str(project), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "invoke", "demo"], cwd=PROJECT, capture_output=True, text=True,
                          timeout=180, env=environ, stdin=subprocess.DEVNULL)


def test_demo_finishes_only_when_every_step_ends_as_told(tmp_path):
    """On free ports the demo ends with r1 live everywhere and says so; exit 0."""
    project = demo_project(tmp_path, free_ports(6))
    done = run_demo_in(project)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "demo finished" in done.stderr
    assert "when every check runs" not in done.stderr  # QA: it said so, and ran none
    assert "waiting until" in done.stderr and "when servers are prepared" in done.stderr
    assert {s.live for s in read_slots(load_environment("local", project)).values()} == {"r1"}


def test_demo_with_another_sandbox_on_its_ports_fails_loudly(tmp_path):
    """Another checkout's sandbox on the demo's ports: exit 1 naming the port, never 'demo finished'."""
    ports = free_ports(6)
    project = demo_project(tmp_path, ports)
    squatter = demo_project(tmp_path / "other", ports)
    with serving(load_environment("local", squatter)):
        done = run_demo_in(project)
    assert done.returncode == 1
    assert f"port {ports[0]} (web-1 live_url) is already held by another releaser sandbox" in done.stderr
    assert "demo finished" not in done.stderr
