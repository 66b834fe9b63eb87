"""Connections started from the environment file as written, before pydantic validated it (transport.warm_hosts).

A cold command's validation of the environment (~150 ms) then overlaps the handshakes. Only a host made with
exactly the validated settings is used; anything else is let go, and nothing runs on a server before then.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import PROJECT, ssh_environment_for
from releaser.config import load_environment
from releaser.selection import select_servers
from releaser.transport import make_hosts, warm_hosts

pytestmark = pytest.mark.ssh


def test_warm_hosts_are_the_ones_the_validated_environment_uses_and_they_work(sshd_farm, tmp_path):
    env = ssh_environment_for(sshd_farm, tmp_path / "prod.toml", extra="[deadlines]\nstep = 12\n")
    warm = warm_hosts(str(env.path), PROJECT)
    assert sorted(warm) == ["web-1", "web-2", "web-3"]
    hosts = make_hosts(load_environment(str(env.path), PROJECT), start=True, warm=warm)
    try:
        assert all(hosts[name] is warm[name] for name in warm)  # the very same settings: adopted, not made again
        assert {name: host.run(["echo", name]).stdout.strip() for name, host in hosts.items()} == \
            {name: name for name in hosts}
    finally:
        for host in hosts.values():
            host.close()


def test_a_setting_the_file_leaves_to_its_default_is_the_same_default_here(sshd_farm, tmp_path):
    """known_hosts, port, timeouts and deadlines left out of the file: the warm host's defaults match config.py's."""
    path = tmp_path / "defaults.toml"
    servers = "".join(f'[[servers]]\nname = "{s.name}"\nhost = "{s.host}"\nport = {s.port}\nroot = "{s.root}"\n'
                      f'live_url = "http://127.0.0.1:1"\nstaging_url = "http://127.0.0.1:2"\n' for s in sshd_farm.servers)
    path.write_text(f'transport = "ssh"\n[ssh]\nkey_file = "{sshd_farm.key_file}"\ncheck_host_keys = false\n{servers}')
    warm = warm_hosts(str(path), PROJECT)
    hosts = make_hosts(load_environment(str(path), PROJECT), warm=warm)
    try:
        assert all(hosts[name] is warm[name] for name in warm) and len(warm) == 3
    finally:
        for host in hosts.values():
            host.close()


def test_servers_left_out_by_hosts_or_made_otherwise_are_let_go(sshd_farm, tmp_path):
    """--hosts web-2: only web-2's warm host is used; a warm host whose settings differ is never used."""
    env = ssh_environment_for(sshd_farm, tmp_path / "prod.toml")
    warm = warm_hosts(str(env.path), PROJECT)
    warm["web-2"].made_with = {**warm["web-2"].made_with, "connect_timeout": 1.0}  # as if the file said otherwise
    hosts = make_hosts(select_servers(load_environment(str(env.path), PROJECT), "web-2,web-3"), warm=warm)
    try:
        assert sorted(hosts) == ["web-2", "web-3"]
        assert hosts["web-2"] is not warm["web-2"] and hosts["web-3"] is warm["web-3"]
    finally:
        for host in hosts.values():
            host.close()


@pytest.mark.parametrize("text", ["transport = 'ssh'\n[[servers]]\nname = 'web-1'\nhost = '-oProxyCommand=touch x'\n",
                                  "transport = 'ssh'\n[[servers]\n", "transport = 'local'\n"])
def test_nothing_unusual_is_connected_to_early(tmp_path, text):
    """A host that is not plain, TOML that does not parse, a local sandbox: no warm host; validation says the rest."""
    path = tmp_path / "odd.toml"
    path.write_text(text)
    assert warm_hosts(str(path), PROJECT) == {}
    assert warm_hosts(str(tmp_path / "missing.toml"), PROJECT) == {}
