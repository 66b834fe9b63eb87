"""Shared fixtures: generated environments, real sshd farms, the sandbox web servers and a driven clock."""

from __future__ import annotations

import os
import socket
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pytest

from releaser.clock import FakeClock
from releaser.config import Environment, load_environment
from releaser.fleet import connected
from releaser.slots import SlotState

PROJECT = Path(__file__).resolve().parent.parent
EXAMPLES = PROJECT / "examples" / "releases"
ACTOR = "tester@releaser-tests"
# The smallest environment file that loads: one sandbox server (tests add their own tables after it).
ONE_SERVER_TOML = """
transport = "local"

[[servers]]
name = "web-1"
root = "servers/web-1"
live_url = "http://127.0.0.1:8001"
staging_url = "http://127.0.0.1:8002"
"""


def free_ports(count: int) -> list[int]:
    """Return `count` distinct free loopback ports."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def write_environment(path: Path, *, servers: list[dict], transport: str = "local", extra: str = "",
                      ssh: str = "", allow_now: bool = True) -> Path:
    """Write an environment TOML for tests: one [[servers]] table per dict, plus any extra TOML text."""
    blocks = [f'transport = "{transport}"', f"allow_go_live_now = {str(allow_now).lower()}", "keep_releases = 2"]
    for server in servers:
        lines = "\n".join(f"{key} = {value!r}" if isinstance(value, str) else f"{key} = {value}" for key, value in server.items())
        blocks.append("[[servers]]\n" + lines.replace("'", '"'))
    if ssh:
        blocks.append("[ssh]\n" + textwrap.dedent(ssh))
    blocks.append('[health]\npath = "/healthz"\ncontains = "ok"\ntimeout = 2.0\nattempts = 1')
    blocks.append("[sandbox]\nserve = true")
    if extra:
        blocks.append(textwrap.dedent(extra))
    path.write_text("\n\n".join(blocks) + "\n")
    return path


def sandbox_servers(base: Path, count: int) -> list[dict]:
    """Server tables for `count` local sandbox servers with roots under `base` and free web ports."""
    ports = free_ports(2 * count)
    return [
        {"name": f"web-{i + 1}", "root": str(base / f"web-{i + 1}"),
         "live_url": f"http://127.0.0.1:{ports[2 * i]}", "staging_url": f"http://127.0.0.1:{ports[2 * i + 1]}"}
        for i in range(count)
    ]


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock tests drive, starting on a Monday morning in UTC."""
    return FakeClock(datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc))


@pytest.fixture
def local_env(tmp_path) -> Environment:
    """A three-server local sandbox environment under tmp_path, with its own free web ports."""
    path = write_environment(tmp_path / "env.toml", servers=sandbox_servers(tmp_path / "servers", 3))
    return load_environment(str(path), PROJECT)


@pytest.fixture
def open_fleet(fake_clock, tmp_path):
    """Open a fleet on an environment for the length of a `with` block, journaling to tmp_path."""
    def opener(environment: Environment, **kwargs):
        return connected(environment, actor=kwargs.pop("actor", ACTOR), clock=fake_clock,
                         journal_path=tmp_path / "journal.jsonl", **kwargs)
    return opener


def read_slots(environment: Environment) -> dict[str, SlotState]:
    """Read every server's slots straight from its app root on disk (the servers in tests are local paths)."""
    states = {}
    for server in environment.servers:
        root = Path(str(environment.app_root(server)))

        def target(slot: str) -> str | None:
            link = root / slot
            return os.readlink(link).removeprefix("releases/") if link.is_symlink() else None

        on_disk = frozenset(p.name for p in (root / "releases").iterdir()) if (root / "releases").is_dir() else frozenset()
        states[server.name] = SlotState(target("live"), target("backup"), target("staging"), on_disk)
    return states


def sshd_available() -> bool:
    """Say whether a real sshd can be started here."""
    from sshfarm import sshd_path

    return sshd_path() is not None


@pytest.fixture
def sshd_farm(tmp_path):
    """Three real sshd servers on loopback; skipped without openssh-server unless running in CI, where it fails."""
    from sshfarm import SSHD_MISSING, SshdFarm, sshd_path

    if sshd_path() is None:
        if os.environ.get("CI"):
            pytest.fail(SSHD_MISSING)
        pytest.skip(SSHD_MISSING)
    # skip_shell_rc: this machine's root ~/.bashrc runs `pyenv init` (~120 ms) on every SSH command
    with SshdFarm(tmp_path / "farm", 3, skip_shell_rc=True) as farm:
        yield farm


def ssh_environment_for(farm, path: Path, *, extra: str = "") -> Environment:
    """Write and load an SSH environment pointing at a farm, host key checking on, web ports free."""
    ports = free_ports(2 * len(farm.servers))
    servers = [
        {"name": server.name, "host": server.host, "port": server.port, "root": str(server.root),
         "live_url": f"http://127.0.0.1:{ports[2 * i]}", "staging_url": f"http://127.0.0.1:{ports[2 * i + 1]}"}
        for i, server in enumerate(farm.servers)
    ]
    ssh = f'user = "{farm.user}"\nkey_file = "{farm.key_file}"\nknown_hosts = "{farm.known_hosts}"\nconnect_timeout = 5.0\n'
    write_environment(path, servers=servers, transport="ssh", ssh=ssh, extra=extra)
    return load_environment(str(path), PROJECT)


@pytest.fixture
def ssh_env(sshd_farm, tmp_path) -> Environment:
    """An SSH environment over the three-server farm."""
    return ssh_environment_for(sshd_farm, tmp_path / "ssh-env.toml")


@pytest.fixture
def app_farm(sshd_farm, tmp_path, request):
    """r1 live and r2 staged on three servers, every slot's instance running (gunicorn), nginx fronts serving r1.

    The fronts move by socket link; a test parametrized with indirect "include" gets fronts that move by include
    and reload."""
    from apps.appfarm import AppFarm, missing_tools
    from releaser.switch import Decision

    missing = missing_tools()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"missing: {', '.join(missing)}")
        pytest.skip(f"missing: {', '.join(missing)}")
    farm = AppFarm(sshd_farm, tmp_path, way=getattr(request, "param", "socket"))
    try:
        farm.stage("r1")
        report = farm.switch("go-live")
        assert report.decision is Decision.COMMITTED, report
        farm.stage("r2")
        yield farm
    finally:
        farm.close()
