"""A key file named in the environment must exist: a typo is a config error, not every server DOWN."""

import pytest

from releaser.config import load_environment
from releaser.errors import ConfigError
from releaser.transport import make_hosts

SERVER = """
[[servers]]
name = "web-{n}"
host = "127.0.0.1"
root = "/srv/app"
live_url = "http://127.0.0.1:8080"
staging_url = "http://127.0.0.1:8081"
"""


def environment(tmp_path, ssh: str, servers: str, *, known_hosts: str = 'known_hosts = "known_hosts"'):
    path = tmp_path / "prod.toml"
    (tmp_path / "known_hosts").touch()
    path.write_text(f'transport = "ssh"\n[ssh]\n{known_hosts}\n{ssh}\n{servers}')
    return load_environment(str(path), tmp_path)


def test_a_missing_key_file_names_the_file_and_the_field(tmp_path):
    env = environment(tmp_path, 'key_file = "keys/deploy"', SERVER.format(n=1))
    with pytest.raises(ConfigError, match=r"prod\.toml: ssh\.key_file: no key file at .*keys/deploy") as refused:
        make_hosts(env)
    assert "ssh-keygen" in refused.value.hint


def test_a_server_s_own_missing_key_file_names_that_server_s_field(tmp_path):
    (tmp_path / "deploy").write_text("key")
    env = environment(tmp_path, 'key_file = "deploy"', SERVER.format(n=1) + SERVER.format(n=2) + 'key_file = "/nowhere/id"\n')
    with pytest.raises(ConfigError, match=r"servers\[1\]\.key_file: no key file at /nowhere/id"):
        make_hosts(env)


def test_key_files_that_exist_relative_to_the_environment_file_are_fine(tmp_path):
    (tmp_path / "deploy").write_text("key")
    env = environment(tmp_path, 'key_file = "deploy"', SERVER.format(n=1))
    assert list(make_hosts(env)) == ["web-1"]


def test_a_missing_known_hosts_file_is_a_config_error_not_every_server_down(tmp_path):
    (tmp_path / "deploy").write_text("key")
    env = environment(tmp_path, 'key_file = "deploy"', SERVER.format(n=1), known_hosts='known_hosts = "keys/known"')
    with pytest.raises(ConfigError, match=r"prod\.toml: ssh\.known_hosts: no known_hosts file at .*keys/known") as refused:
        make_hosts(env)
    assert "ssh-keyscan" in refused.value.hint


def test_without_host_key_checking_no_known_hosts_file_is_needed(tmp_path):
    (tmp_path / "deploy").write_text("key")
    env = environment(tmp_path, 'key_file = "deploy"\ncheck_host_keys = false', SERVER.format(n=1),
                      known_hosts='known_hosts = "keys/known"')
    assert list(make_hosts(env)) == ["web-1"]
