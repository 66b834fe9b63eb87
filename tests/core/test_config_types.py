"""Environment files are typed strictly: TOML has real numbers and booleans, so a quoted one is a mistake.

`port = "58953"` or `allow_go_live_now = "yes"` used to be converted silently. Now each is refused with the
file and the field named; an integer where a float is expected (connect_timeout = 10) is still fine, and
TOML dates load as before.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path, PurePosixPath

import pytest

from releaser.config import load_environment
from releaser.errors import ConfigError

from conftest import ONE_SERVER_TOML, PROJECT

SERVERS = ONE_SERVER_TOML


def write(tmp_path, top: str = "", tables: str = "") -> str:
    """An environment file: `top` keys before the server, `tables` after it (bare keys there belong to the server)."""
    path = tmp_path / "env.toml"
    path.write_text(top + SERVERS + tables)
    return str(path)


def config_error(tmp_path, top: str = "", tables: str = "") -> str:
    """The ConfigError such a file raises, one line, as read in the file's folder."""
    with pytest.raises(ConfigError) as caught:
        load_environment(write(tmp_path, top, tables), PROJECT)
    text = str(caught.value)
    assert "\n" not in text and text.startswith(f"{tmp_path}/env.toml: ")
    return text.replace(f"{tmp_path}/", "")


@pytest.mark.parametrize(("top", "tables", "message"), [
    pytest.param("", '[ssh]\nport = "58953"\n',
                 "env.toml: ssh.port: input should be a valid integer, got '58953'", id="ssh-port-string"),
    pytest.param("", 'port = "58953"\n',  # right after SERVERS, so still in its [[servers]] table
                 "env.toml: servers[0].port: input should be a valid integer, got '58953'", id="server-port-string"),
    pytest.param('allow_go_live_now = "yes"\n', "",
                 "env.toml: allow_go_live_now: input should be a valid boolean, got 'yes'", id="bool-yes"),
    pytest.param('allow_go_live_now = "true"\n', "",
                 "env.toml: allow_go_live_now: input should be a valid boolean, got 'true'", id="bool-quoted-true"),
    pytest.param("", '[ssh]\ncheck_host_keys = "false"\n',
                 "env.toml: ssh.check_host_keys: input should be a valid boolean, got 'false'", id="host-keys-quoted"),
    pytest.param("", '[ssh]\nconnect_timeout = "10"\n',
                 "env.toml: ssh.connect_timeout: input should be a valid number, got '10'", id="float-string"),
    pytest.param('keep_releases = "3"\n', "",
                 "env.toml: keep_releases: input should be a valid integer, got '3'", id="keep-string"),
    pytest.param("parallel = true\n", "",
                 "env.toml: parallel: input should be a valid integer, got True", id="int-given-bool"),
    pytest.param("", "[sandbox]\nserve = 1\n",
                 "env.toml: sandbox.serve: input should be a valid boolean, got 1", id="bool-given-int"),
    pytest.param("", '[thresholds]\nmin_free_mib = "1024"\n',
                 "env.toml: thresholds.min_free_mib: input should be a valid integer, got '1024'", id="threshold-string"),
    pytest.param("", '[health]\nstatus = "200"\n',
                 "env.toml: health.status: input should be a valid integer, got '200'", id="health-status-string"),
    pytest.param("", '[[people.on_call]]\nname = "ben"\ncan_rollback = "yes"\n',
                 "env.toml: people.on_call[0].can_rollback: input should be a valid boolean, got 'yes'",
                 id="can-rollback-string"),
    pytest.param("", '[go_live]\nlead_minutes = "10"\n',
                 "env.toml: go_live.lead_minutes: input should be a valid number, got '10'", id="go-live-string"),
])
def test_a_quoted_number_or_boolean_names_the_file_and_field(tmp_path, top, tables, message):
    """A string where TOML has a number or boolean is refused, with the file, the field and what was written."""
    assert config_error(tmp_path, top, tables).startswith(message)


def test_notification_channel_fields_are_strict_too(tmp_path):
    """A channel's port and starttls are typed like everything else."""
    email = ('[[notifications]]\nkind = "email"\nname = "team"\nhost = "smtp.example.org"\nsender = "r@example.org"\n'
             'to = ["t@example.org"]\nevents = ["go-live-done"]\n')
    assert config_error(tmp_path, tables=email + 'port = "587"\n').startswith(
        "env.toml: notifications[0].email.port: input should be a valid integer, got '587'")
    assert config_error(tmp_path, tables=email + 'starttls = "yes"\n').startswith(
        "env.toml: notifications[0].email.starttls: input should be a valid boolean, got 'yes'")


def test_an_integer_where_a_float_is_expected_is_accepted(tmp_path):
    """connect_timeout = 10 and the like are numbers, so they load, as floats."""
    tables = ("[ssh]\nconnect_timeout = 10\n[health]\ntimeout = 3\n[thresholds]\nmax_clock_skew_seconds = 2\n"
              "min_release_gap_days = 7\n[go_live]\nlead_minutes = 10\nprepare_seconds = 60\n"
              '[[smoke]]\npath = "/healthz"\ntimeout = 4\n'
              '[[notifications]]\nkind = "webhook"\nname = "chat"\nurl = "https://hooks.example.org"\n'
              'events = ["go-live-done"]\ntimeout = 10\n')
    environment = load_environment(write(tmp_path, tables=tables), PROJECT)
    values = [environment.ssh.connect_timeout, environment.health.timeout, environment.thresholds.max_clock_skew_seconds,
              environment.thresholds.min_release_gap_days, environment.go_live.lead_minutes,
              environment.go_live.prepare_seconds, environment.smoke[0].timeout, environment.notifications[0].timeout]
    assert values == [10.0, 3.0, 2.0, 7.0, 10.0, 60.0, 4.0, 10.0]
    assert all(type(value) is float for value in values)


def test_real_numbers_booleans_and_dates_load(tmp_path):
    """The same fields written as TOML values load; TOML dates (and dates written as text) still read as dates."""
    top = "allow_go_live_now = true\nkeep_releases = 5\nparallel = 8\n"
    tables = ('[ssh]\nport = 58953\ncheck_host_keys = false\n[sandbox]\nserve = false\n'
              '[[publications]]\nname = "phof"\nrule = "first Tuesday of every month at 09:30"\n'
              'deadline = "Wednesday before at 17:00"\nextra_dates = [2026-12-24]\ncancelled_dates = ["2027-01-05"]\n'
              '[[people.on_call]]\nname = "ben"\ncan_rollback = true\nleave = [{ start = 2026-12-21, end = 2027-01-01 }]\n'
              '[[smoke]]\npath = "/healthz"\njson_field = "rows"\njson_equals = 3\n'
              '[[smoke]]\npath = "/"\njson_field = "ok"\njson_equals = "3"\n')
    environment = load_environment(write(tmp_path, top, tables), PROJECT)
    assert (environment.allow_go_live_now, environment.keep_releases, environment.parallel) == (True, 5, 8)
    assert (environment.ssh.port, environment.ssh.check_host_keys, environment.sandbox.serve) == (58953, False, False)
    publication = environment.publications[0]
    assert (publication.extra_dates, publication.cancelled_dates) == ([date(2026, 12, 24)], [date(2027, 1, 5)])
    leave = environment.people.on_call[0].leave[0]
    assert (leave.start, leave.end) == (date(2026, 12, 21), date(2027, 1, 1))
    assert [check.json_equals for check in environment.smoke] == [3, "3"]
    assert environment.path == Path(write(tmp_path, top, tables)).resolve()


def test_shipped_environment_and_readme_examples_load(tmp_path):
    """environments/*.toml and the README's environment examples are all valid under strict types."""
    for path in sorted((PROJECT / "environments").glob("*.toml")):
        assert load_environment(str(path), PROJECT).servers
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", readme, flags=re.DOTALL)
    environment_blocks = [block for block in blocks if "[[servers]]" in block or "[[publications]]" in block]
    assert environment_blocks
    path = tmp_path / "readme.toml"
    path.write_text("\n".join(environment_blocks))
    assert load_environment(str(path), PROJECT).servers


def test_an_ssh_server_root_must_be_absolute(tmp_path):
    """Over SSH a relative root would resolve wherever the login lands; the file and field are named."""
    path = tmp_path / "prod.toml"
    path.write_text('transport = "ssh"\n[[servers]]\nname = "web-1"\nhost = "web-1.example.org"\nroot = "app"\n'
                    'live_url = "http://127.0.0.1:8080"\nstaging_url = "http://127.0.0.1:8081"\n')
    with pytest.raises(ConfigError, match=r"prod\.toml: servers\[0\]\.root: must be an absolute path on the server, got 'app'"):
        load_environment(str(path), tmp_path)


@pytest.mark.parametrize("host_line", ["", 'host = ""\n'], ids=["missing", "empty"])
def test_an_ssh_server_needs_a_host(tmp_path, host_line):
    """Without host, paramiko would quietly connect to this machine; the field is named instead."""
    path = tmp_path / "prod.toml"
    path.write_text(f'transport = "ssh"\n[[servers]]\nname = "web-1"\n{host_line}root = "/srv/app"\n'
                    'live_url = "http://127.0.0.1:8080"\nstaging_url = "http://127.0.0.1:8081"\n')
    with pytest.raises(ConfigError, match=r"prod\.toml: servers\[0\]\.host: "):
        load_environment(str(path), tmp_path)


def test_a_webhook_token_is_refused_over_plain_http_to_another_host(tmp_path):
    path = tmp_path / "prod.toml"
    base = ('transport = "local"\n[[servers]]\nname = "web-1"\nroot = "s"\nlive_url = "http://127.0.0.1:1"\n'
            'staging_url = "http://127.0.0.1:2"\n[[notifications]]\nkind = "webhook"\nname = "ops"\nevents = ["go-live-done"]\ntoken_env = "HOOK_TOKEN"\n')
    path.write_text(base + 'url = "http://hooks.example.org/x"\n')
    with pytest.raises(ConfigError, match=r"notifications.*plain http to another host"):
        load_environment(str(path), tmp_path)
    path.write_text(base + 'url = "http://127.0.0.1:9/x"\n')
    assert load_environment(str(path), tmp_path).notifications[0].url == "http://127.0.0.1:9/x"


@pytest.mark.parametrize(("tables", "field", "expected"), [
    pytest.param('host = "$(touch /tmp/pwned)"\n', "servers[0].host", "expected a DNS name", id="host-substitution"),
    pytest.param('host = "web-1;reboot"\n', "servers[0].host", "expected a DNS name", id="host-semicolon"),
    pytest.param('host = "-oProxyCommand=sh"\n', "servers[0].host", "expected a DNS name", id="host-option"),
    pytest.param('host = "web\u202e1.example.org"\n', "servers[0].host", "expected a DNS name", id="host-rtl-override"),
    pytest.param('user = "-oProxyCommand=sh"\n', "servers[0].user", "expected a login name", id="user-option"),
    pytest.param('[ssh]\nuser = "deploy;id"\n', "ssh.user", "expected a login name", id="ssh-user-semicolon"),
    pytest.param('[deadlines]\ncommit = inf\n', "deadlines.commit", "less than or equal to 3600", id="deadline-inf"),
    pytest.param('[ssh]\nconnect_timeout = 1e300\n', "ssh.connect_timeout", "less than or equal to 300", id="connect-huge"),
])
def test_what_reaches_ssh_or_the_servers_file_system_is_checked_first(tmp_path, tables, field, expected):
    """A host, a login name or an app root that ssh or the servers would read as something else is a config
    error naming the field (exit 2), never a connection attempt or a directory made at /."""
    text = config_error(tmp_path, "", tables)
    assert text.startswith(f"env.toml: {field}: ") and expected in text, text


@pytest.mark.parametrize("host", ["web-1.example.org", "10.0.0.7", "::1", "[fe80::1]", "localhost", "web-1.example.org.",
                                  "web_1.internal"])
def test_dns_names_and_addresses_are_hosts(tmp_path, host):
    environment = load_environment(write(tmp_path, "", f'host = "{host}"\n'), PROJECT)
    assert environment.servers[0].host == host.strip("[]")


@pytest.mark.parametrize(("root", "expected"), [("/", "expected the app's own directory"), ("//", "expected the app's own directory"),
                                                ("/srv/app/../../etc", "without '..'"),
                                                ("/srv/a\\nb", "printable characters, got '/srv/a\\nb' (a newline '\\n' at character 7)"),
                                                ("/srv/\\u001b[2Japp", "(an escape '\\x1b' at character 6)")])
def test_an_app_root_that_is_the_file_system_root_or_climbs_out_is_refused(tmp_path, root, expected):
    path = tmp_path / "env.toml"
    path.write_text(SERVERS.replace('root = "servers/web-1"', f'root = "{root}"'))
    with pytest.raises(ConfigError, match=re.escape("env.toml: servers[0].root: ")) as refused:
        load_environment(str(path), PROJECT)
    assert expected in str(refused.value)


def test_an_env_that_is_a_directory_says_so(tmp_path):
    with pytest.raises(ConfigError, match=re.escape(f"--env {tmp_path}/ is a directory, not an environment file")):
        load_environment(f"{tmp_path}/", PROJECT)


@pytest.mark.parametrize("user", ["deploy", "deploy.bot-1", "jdoe@corp.example", "svc$", "1deploy", "a" * 40])
def test_login_names_as_directories_give_them_are_accepted(tmp_path, user):
    environment = load_environment(write(tmp_path, "", f'user = "{user}"\n'), PROJECT)
    assert environment.servers[0].user == user


@pytest.mark.parametrize(("tables", "field"), [
    pytest.param('[health]\npath = "/healthz x"\n', "health.path", id="health-path-space"),
    pytest.param('[[smoke]]\npath = "/a\\tb"\n', "smoke[0].path", id="smoke-path-tab"),
    pytest.param('[health]\npath = "healthz"\n', "health.path", id="health-path-relative"),
])
def test_a_url_path_an_http_client_would_refuse_is_a_config_error(tmp_path, tables, field):
    """QA: a health path with a space loaded, then every status and check ended in a traceback and every go-live
    went live for a moment before its verify failed on every server. It is refused at load, the field named."""
    text = config_error(tmp_path, "", tables)
    assert text.startswith(f"env.toml: {field}: expected a URL path starting with '/', without spaces"), text


@pytest.mark.parametrize("url", ["http://127.0.0.1:8001/a b", "http://127.0.0.1:99999", r"http://127.0.0.1:8001/a\nb"])
def test_a_live_url_an_http_client_would_refuse_is_a_config_error(tmp_path, url):
    """The same for a server's URLs: a space, a port out of range, a newline (TOML's escape)."""
    path = tmp_path / "env.toml"
    path.write_text(SERVERS.replace('live_url = "http://127.0.0.1:8001"', f'live_url = "{url}"'))  # TOML reads \n as a newline
    with pytest.raises(ConfigError, match=r"env\.toml: servers\[0\]\.live_url: expected an http:// or https:// URL"):
        load_environment(str(path), PROJECT)


def test_an_env_path_that_is_not_a_regular_file_is_said_as_such():
    """QA: --env /dev/null said 'does not exist' and suggested copying the example over /dev/null."""
    with pytest.raises(ConfigError, match=r"^--env /dev/null is not a regular file \(a device, a FIFO or a socket\)"):
        load_environment("/dev/null", PROJECT)


def test_a_relative_root_is_taken_from_the_project_wherever_the_file_is(tmp_path):
    """QA: --env rel/sub/e.toml put root "relroot" at rel/relroot, the file's grandparent, not the project."""
    project, elsewhere = tmp_path / "project", tmp_path / "rel" / "sub"
    (project / "environments").mkdir(parents=True)
    elsewhere.mkdir(parents=True)
    for path in (project / "environments" / "uat.toml", elsewhere / "e.toml"):
        path.write_text(SERVERS)
    by_name = load_environment("uat", project)
    by_path = load_environment(str(elsewhere / "e.toml"), project)
    expected = PurePosixPath((project / "servers" / "web-1").resolve().as_posix())
    assert by_name.app_root(by_name.servers[0]) == expected
    assert by_path.app_root(by_path.servers[0]) == expected


def test_the_project_is_not_a_field_a_person_writes(tmp_path):
    """load_environment fills it in, as it does name and path."""
    path = tmp_path / "env.toml"
    path.write_text('project = "/srv"\n' + SERVERS)
    with pytest.raises(ConfigError, match=re.escape("env.toml: project: unknown field")):
        load_environment(str(path), tmp_path)


@pytest.mark.parametrize(("top", "tables", "field"), [
    ('description = "prod\\u001b[2J"\n', "", "description"),
    ("", '[[publications]]\nname = "phof"\ntitle = "PHOF\\nBEGIN:VEVENT"\nrule = "first Tuesday of every month at 09:30"\n'
         'deadline = "Wednesday before at 17:00"\n', "publications[0].title"),
    ("", '[breach]\nproducer = "PHE\\u202e"\n', "breach.producer"),
    ("", '[people]\nrelease_manager = "ana\\r"\n', "people.release_manager"),
    ("", '[people]\nescalation = ["ICT\\u0007"]\n', "people.escalation[0]"),
    ("", '[[people.on_call]]\nname = "ben"\ncontact = "07700\\u001b]8;;http://x\\u0007"\n', "people.on_call[0].contact"),
], ids=["description", "title", "breach", "release-manager", "escalation", "contact"])
def test_text_a_person_reads_is_one_line_of_printable_characters(tmp_path, top, tables, field):
    """QA: a publication title with a newline and ESC [2J went raw into the breach report on the terminal (the
    screen cleared) and broke its Markdown table; such text is refused when the file loads, naming the field."""
    message = config_error(tmp_path, top, tables)
    assert message.startswith(f"env.toml: {field}: ") and "one line of plain text" in message, message
