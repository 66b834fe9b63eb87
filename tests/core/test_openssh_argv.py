"""The ssh argv an upload streams through says what the paramiko connection does, and nothing a path can subvert."""

from releaser.openssh import Reach, ssh_argv


def reach(**changes) -> Reach:
    fields = dict(host="web-1.example.org", port=2222, user="deploy", key_file="/keys/id_ed25519",
                  known_hosts="/etc/releaser/known_hosts", check_host_keys=True, connect_timeout=7.5, keepalive=5.0, step=20.0)
    return Reach(**{**fields, **changes})


def options(argv: list[str]) -> dict[str, str]:
    return dict(argv[i + 1].split("=", 1) for i, word in enumerate(argv) if word == "-o")


def test_the_connections_settings_and_deadlines_become_ssh_options():
    argv = ssh_argv("/usr/bin/ssh", reach(), "sh -c 'x'")
    assert argv[:3] == ["/usr/bin/ssh", "-F", "/dev/null"]  # no ssh_config, as fabric is told not to load one
    assert argv[-3:] == ["--", "web-1.example.org", "sh -c 'x'"]  # the host can never be read as an option
    assert argv[argv.index("-p") + 1] == "2222" and argv[argv.index("-l") + 1] == "deploy"
    assert argv[argv.index("-i") + 1] == "/keys/id_ed25519"
    said = options(argv)
    assert said["BatchMode"] == "yes" and said["StrictHostKeyChecking"] == "yes"
    assert said["UserKnownHostsFile"] == "/etc/releaser/known_hosts" and said["GlobalKnownHostsFile"] == "/dev/null"
    assert said["IdentitiesOnly"] == "yes" and said["IdentityAgent"] == "none"  # the key alone, as paramiko's
    assert said["ConnectTimeout"] == "8" and said["ServerAliveInterval"] == "5" and said["ServerAliveCountMax"] == "4"


def test_without_a_key_file_or_user_ssh_picks_as_paramiko_does():
    argv = ssh_argv("ssh", reach(key_file=None, user=None), "true")
    assert "-i" not in argv and "-l" not in argv and "IdentitiesOnly" not in options(argv)


def test_host_key_checking_off_accepts_any_key_and_remembers_none():
    said = options(ssh_argv("ssh", reach(check_host_keys=False), "true"))
    assert said["StrictHostKeyChecking"] == "no" and said["UserKnownHostsFile"] == "/dev/null"


def test_paths_are_written_so_ssh_reads_them_back_unchanged():
    argv = ssh_argv("ssh", reach(known_hosts="/srv/known hosts 100%d", key_file="/keys/50%h key"), "true")
    assert options(argv)["UserKnownHostsFile"] == '"/srv/known hosts 100%%d"'  # quoted, %-tokens escaped
    assert argv[argv.index("-i") + 1] == "/keys/50%%h key"
    assert ssh_argv("ssh", reach(known_hosts='/srv/"known"'), "true") is None  # cannot be said: SFTP instead
