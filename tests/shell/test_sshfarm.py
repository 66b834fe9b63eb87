"""The sshd farm itself: real OpenSSH servers on loopback, with host key checking on."""

from __future__ import annotations

import pwd
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import paramiko
import pytest
from fabric import Config, Connection

import sshfarm
from sshfarm import FarmServer, SshdFarm, pid_alive, sshd_path

needs_sshd = pytest.mark.skipif(sshd_path() is None, reason="sshd not found; install openssh-server")

DEAD_CONNECTION = (paramiko.SSHException, EOFError, OSError)


def connect(farm: SshdFarm, server: FarmServer, known_hosts: Path | None = None) -> Connection:
    """A fabric connection that trusts only the host keys in ``known_hosts`` (the farm's by default)."""
    conn = Connection(
        server.host,
        port=server.port,
        user=farm.user,
        config=Config(ssh_config=paramiko.SSHConfig()),  # no ~/.ssh/config or /etc/ssh/ssh_config influence
        connect_timeout=5,
        connect_kwargs={
            "key_filename": str(farm.key_file),
            "look_for_keys": False,
            "allow_agent": False,
            "banner_timeout": 5,
            "auth_timeout": 5,
        },
    )
    client = paramiko.SSHClient()  # replaces fabric's client, which auto-adds unknown host keys
    client.load_host_keys(str(known_hosts or farm.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    conn.client = client
    return conn


def eventually(predicate, timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it holds or the deadline passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return predicate()
        time.sleep(0.02)
    return True


def run(conn: Connection, command: str) -> str:
    return conn.run(command, hide=True, in_stream=False).stdout.strip()


@pytest.fixture
def farm3(tmp_path):
    with SshdFarm(tmp_path, 3) as farm:
        yield farm


@needs_sshd
def test_each_server_runs_commands_in_its_own_root(farm3, tmp_path):
    """Every server of a 3-server farm runs commands over checked host keys, and files land in its own root."""
    home = pwd.getpwnam(farm3.user).pw_dir
    upload = tmp_path / "upload.txt"
    upload.write_text("payload\n")
    for server in farm3.servers:
        with connect(farm3, server) as conn:
            assert run(conn, "echo ok") == "ok"
            assert run(conn, "pwd") == home
            with conn.cd(str(server.root)):
                assert run(conn, "pwd") == str(server.root)
                run(conn, f"echo {server.name} > marker")
            conn.put(str(upload), remote=str(server.root / "upload.txt"))
    for server in farm3.servers:
        assert sorted(p.name for p in server.root.iterdir()) == ["marker", "upload.txt"]
        assert (server.root / "marker").read_text() == f"{server.name}\n"
        assert (server.root / "upload.txt").read_text() == "payload\n"


@needs_sshd
@pytest.mark.parametrize("trusted", ["empty", "other-server-key"])
def test_unknown_or_wrong_host_key_is_refused(farm3, tmp_path, trusted):
    """A client that does not know the server's real host key refuses to talk to it."""
    web1, web2 = farm3.servers[0], farm3.servers[1]
    known_hosts = tmp_path / f"known_hosts.{trusted}"
    if trusted == "empty":
        known_hosts.write_text("")
        expected = paramiko.SSHException  # "not found in known_hosts"
    else:  # web-1's address with web-2's key
        lines = farm3.known_hosts.read_text().splitlines()
        web2_key = next(line for line in lines if line.startswith(f"[{web2.host}]:{web2.port} ")).split(" ", 1)[1]
        known_hosts.write_text(f"[{web1.host}]:{web1.port} {web2_key}\n")
        expected = paramiko.BadHostKeyException
    conn = connect(farm3, web1, known_hosts=known_hosts)
    with pytest.raises(expected):
        run(conn, "echo ok")
    assert not conn.is_connected
    assert list(web1.root.iterdir()) == []


@needs_sshd
def test_stop_kills_open_sessions_and_restart_brings_the_server_back(farm3):
    """Stopping a server breaks its open connection and refuses new ones; restart serves again; others never notice."""
    web1, web2, web3 = farm3.servers
    others = {s.name: connect(farm3, s) for s in (web1, web3)}
    victim = connect(farm3, web2)
    try:
        for conn in [*others.values(), victim]:
            assert run(conn, "echo ok") == "ok"
        old_listener = web2.pid
        victim_processes = farm3.pids("web-2")
        other_processes = farm3.pids("web-1") + farm3.pids("web-3")
        assert len(victim_processes) > 1  # the listener and the open session's processes

        farm3.stop("web-2")
        farm3.stop("web-2")  # idempotent

        assert web2.pid is None
        assert not pid_alive(old_listener)
        with pytest.raises(DEAD_CONNECTION):
            victim.client.exec_command("echo still here", timeout=5)  # the already-open transport, no reconnect
        assert eventually(lambda: not victim.transport.is_active())  # its reader thread may see EOF a moment later
        with pytest.raises(DEAD_CONNECTION):
            run(connect(farm3, web2), "echo ok")
        for name, conn in others.items():
            assert run(conn, f"echo {name}") == name
        assert [pid for pid in victim_processes if pid_alive(pid)] == []
        assert all(pid_alive(pid) for pid in other_processes)

        farm3.restart("web-2")

        assert web2.pid is not None and web2.pid != old_listener and pid_alive(web2.pid)
        with connect(farm3, web2) as fresh:  # same port and host key, so the same known_hosts still works
            assert run(fresh, "echo back") == "back"
        for name, conn in others.items():
            assert run(conn, f"echo {name}") == name
    finally:
        for conn in [*others.values(), victim]:
            conn.close()


@needs_sshd
def test_twenty_servers_start_answer_and_close_cleanly(tmp_path):
    """A 20-server farm starts, answers 20 parallel connections, and close() leaves none of its processes alive."""
    started = time.monotonic()
    farm = SshdFarm(tmp_path, 20).start()
    print(f"\n20-server farm started in {time.monotonic() - started:.2f} s")
    conns = [connect(farm, server) for server in farm.servers]
    try:
        with ThreadPoolExecutor(max_workers=20) as pool:
            answers = list(pool.map(lambda pair: run(pair[0], f"echo {pair[1].name}"), zip(conns, farm.servers)))
        assert answers == [server.name for server in farm.servers]
        listeners = [server.pid for server in farm.servers]
        everything = farm.pids()  # listeners plus the session processes of the 20 open connections
        assert set(listeners) <= set(everything) and len(everything) > len(listeners)
    finally:
        farm.close()
        farm.close()  # idempotent
        for conn in conns:
            conn.close()
    assert [server.pid for server in farm.servers] == [None] * 20
    assert [pid for pid in everything if pid_alive(pid)] == []


@needs_sshd
def test_restart_on_a_taken_port_fails_loudly_and_leaves_nothing_running(farm3):
    """A server that cannot come back raises an error naming it and its log, and leaves no process behind."""
    web1 = farm3.servers[0]
    farm3.stop("web-1")
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind((web1.host, web1.port))
        squatter.listen()
        with pytest.raises(RuntimeError, match=r"(?s)web-1: sshd exited.*Address already in use"):
            farm3.restart("web-1")
    assert web1.pid is None and farm3.pids("web-1") == []
    farm3.restart("web-1")  # the port is free again
    with connect(farm3, web1) as conn:
        assert run(conn, "echo ok") == "ok"


def test_start_without_sshd_says_how_to_install_it(tmp_path, monkeypatch):
    """Without an sshd binary, start() fails with the apt-get hint instead of a confusing error."""
    monkeypatch.setattr(sshfarm, "sshd_path", lambda: None)
    with pytest.raises(RuntimeError, match=r"sshd not found; install openssh-server \(apt-get install openssh-server\)"):
        SshdFarm(tmp_path, 2).start()
    assert list(tmp_path.iterdir()) == []
