"""The command line as a user meets it: `invoke ...` run as a subprocess, messages and exit codes."""

import json
import os
import re
import subprocess
import sys

import pytest

from checkenv import write_environment as complete_environment
from conftest import EXAMPLES, PROJECT, read_slots, sandbox_servers, write_environment
from releaser.config import load_environment

def task_names() -> list[str]:
    """Every task Invoke finds in tasks.py, dashed as users type them."""
    import importlib

    from invoke import Collection

    return sorted(Collection.from_module(importlib.import_module("tasks")).task_names)


TASKS = task_names()


def invoke(*args, env_extra=None):
    """Run `invoke ARGS` in the project directory and return the finished process."""
    import os

    environ = {**os.environ, "RELEASER_ACTOR": "cli@tests", "NO_COLOR": "1", "COLUMNS": "200", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=PROJECT, capture_output=True, text=True,
                          timeout=120, env=environ, stdin=subprocess.DEVNULL)


@pytest.fixture
def env_file(tmp_path):
    """A complete local sandbox environment (publications, people, checks) with free ports, roots under tmp_path."""
    return complete_environment(tmp_path, servers=2)


def go_live_now(env_file, *extra):
    """`invoke go-live --now`, accepting the two checks whose verdict depends on the day the tests run.

    The first release has no rollback target, and the example data sets are dated for particular months.
    """
    return invoke("go-live", "--now", "--yes", "--override", "rollback-target", "--override", "deadline",
                  "--reason", "tests", "--env", str(env_file), *extra)


@pytest.mark.parametrize("task", TASKS)
def test_every_task_has_help(task):
    """`invoke TASK --help` describes the task and every flag."""
    done = invoke(task, "--help")
    assert done.returncode == 0
    assert "Docstring:\n  none" not in done.stdout
    options = [line for line in done.stdout.split("Options:")[-1].splitlines() if re.match(r"  -\S", line)]
    assert all(re.search(r"\S\s{2,}\S", line) for line in options), options


def test_a_short_flag_means_the_same_long_flag_in_every_task():
    """-r is --reason wherever it exists (it was --release in deploy), -y is --yes (it was --dry-run in data-upload),
    -o is --hosts (it was --override in go-live): a letter learnt on one task does not do another thing on the next."""
    import importlib

    from invoke import Collection
    from releaser.cli_tasks import SHORT_FLAGS

    collection = Collection.from_module(importlib.import_module("tasks"))
    meaning: dict[str, set[str]] = {}
    for name in TASKS:
        for argument in collection[name].get_arguments():
            long_name = next(n for n in argument.names if len(n) > 1)
            for letter in (n for n in argument.names if len(n) == 1):
                meaning.setdefault(letter, set()).add(long_name)
                assert SHORT_FLAGS[(argument.attr_name or argument.name).strip("_")] == letter, (name, argument.names)
    assert all(len(names) == 1 for names in meaning.values()), meaning
    assert "h" not in meaning and {"r", "y", "o", "d", "e"} <= set(meaning)
    assert meaning["r"] == {"reason"} and meaning["y"] == {"yes"} and meaning["o"] == {"hosts"}


def test_unknown_environment_lists_the_known_ones():
    """A typo in --env names what exists."""
    done = invoke("status", "--env", "prdo")
    assert done.returncode == 2
    assert "releaser: unknown environment 'prdo'; environments/ has: local" in done.stderr


def test_bad_field_names_file_and_field(tmp_path):
    """A bad value names the file, the field path and what was expected."""
    bad = tmp_path / "bad.toml"
    bad.write_text('transport = "ssh"\n[[servers]]\nname = "web-1"\nroot = "/srv"\nlive_url = "http://a"\n'
                   'staging_url = "http://b"\nport = "22a"\n')
    done = invoke("status", "--env", str(bad))
    assert done.returncode == 2
    assert f"{bad}: servers[0].port: input should be a valid integer" in done.stderr


def test_unknown_key_is_rejected(tmp_path):
    """A typo in a key is an error, never silently ignored."""
    bad = tmp_path / "typo.toml"
    bad.write_text('transport = "local"\nkeep_relases = 3\n[[servers]]\nname = "w"\nroot = "/tmp/x"\n'
                   'live_url = "http://a"\nstaging_url = "http://b"\n')
    done = invoke("status", "--env", str(bad))
    assert done.returncode == 2 and "keep_relases: unknown field (a typo?)" in done.stderr


def test_invalid_toml_names_the_line(tmp_path):
    """Broken TOML says it is not valid TOML and where."""
    bad = tmp_path / "broken.toml"
    bad.write_text('transport = "local"\n[[servers]\n')
    done = invoke("status", "--env", str(bad))
    assert done.returncode == 2 and "not valid TOML" in done.stderr and "line 2" in done.stderr


def test_deploy_without_stage_flag_says_what_to_do(env_file):
    """deploy only stages, and says so."""
    done = invoke("deploy", "--release", str(EXAMPLES / "r1"), "--env", str(env_file))
    assert done.returncode == 2 and "pass --stage" in done.stderr


def test_stage_go_live_status_json_round_trip(env_file):
    """Stage and go-live through the CLI; status --json prints only JSON that shows r1 live everywhere."""
    assert invoke("deploy", "--stage", "--release", str(EXAMPLES / "r1"), "--env", str(env_file)).returncode == 0
    done = go_live_now(env_file)
    assert done.returncode == 0, done.stderr
    status = invoke("status", "--json", "--env", str(env_file))
    report = json.loads(status.stdout)
    assert [s["live"] for s in report["servers"]] == ["r1", "r1"]
    assert all(s["health"]["ok"] for s in report["servers"])


def test_status_exits_7_when_the_fleet_is_mixed(env_file):
    """A server pointed at another release by hand: the table and a warning say MIXED, and so does the exit code."""
    import os

    assert invoke("deploy", "--stage", "--release", str(EXAMPLES / "r1"), "--env", str(env_file)).returncode == 0
    assert go_live_now(env_file).returncode == 0
    assert invoke("status", "--env", str(env_file)).returncode == 0
    environment = load_environment(str(env_file), PROJECT)
    live = os.path.join(str(environment.app_root(environment.servers[1])), "live")
    os.remove(live)
    os.symlink("releases/r0", live)
    done = invoke("status", "--env", str(env_file))
    assert done.returncode == 7 and "the fleet is MIXED: servers serve r0 on web-2; r1 on web-1; " in done.stderr


def test_rollback_without_terminal_needs_yes(env_file):
    """With no terminal to ask on, rollback refuses unless --yes, and nothing moves."""
    for release in ("r1", "r2"):
        invoke("deploy", "--stage", "--release", str(EXAMPLES / release), "--env", str(env_file))
        go_live_now(env_file)
    done = invoke("rollback", "--env", str(env_file))
    assert done.returncode == 130 and "rollback cancelled; nothing was changed; pass --yes" in done.stderr
    assert {s.live for s in read_slots(load_environment(str(env_file), PROJECT)).values()} == {"r2"}


def test_failed_go_live_exits_6_and_names_the_runbook(env_file):
    """Checks stop broken r3 on staging (exit 4); overridden, it fails live verification and every server is back (exit 6)."""
    for release in ("r1",):
        invoke("deploy", "--stage", "--release", str(EXAMPLES / release), "--env", str(env_file))
        go_live_now(env_file)
    invoke("deploy", "--stage", "--release", str(EXAMPLES / "r3"), "--env", str(env_file))
    stopped = go_live_now(env_file)
    assert stopped.returncode == 4 and "smoke on web-1" in stopped.stderr and "nothing was switched" in stopped.stderr
    done = go_live_now(env_file, "--override", "smoke", "--override", "config-parity")
    assert done.returncode == 6
    assert re.search(r"every server is back on r1 \(r3 was live for at most [0-9.]+ s, from the commit to the end of the "
                     r"revert\); next: invoke runbook go-live", " ".join(done.stderr.split())), done.stderr


def test_now_is_refused_where_the_environment_forbids_it(tmp_path):
    """go-live --now in a production-like environment needs --force --reason."""
    path = write_environment(tmp_path / "prod.toml", servers=sandbox_servers(tmp_path / "s", 1), allow_now=False)
    done = invoke("go-live", "--now", "--yes", "--env", str(path))
    assert done.returncode == 3 and "add --force --reason TEXT" in done.stderr


def test_status_says_when_host_keys_are_not_checked(tmp_path):
    """An SSH environment with check_host_keys = false is named in status, loudly."""
    from releaser import ui

    with ui.err.capture() as captured:
        ui.show_status("prod", [], host_keys_checked=False)
    assert "host key checking is OFF for prod" in captured.get()


def test_list_is_fast_to_import():
    """`invoke --list` must not import fabric, paramiko or rich (the on-call's first command answers at once)."""
    code = "import sys, tasks; print(sorted(m for m in ('fabric', 'paramiko', 'rich', 'pydantic') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("args, flag, expected", [
    (["prune", "--keep", "abc", "--yes"], "--keep", "of 0 or more"),
    (["prune", "--keep", "-1", "--yes"], "--keep", "of 0 or more"),
    (["lock", "--reason", "x", "--minutes", "ten"], "--minutes", "from 0 to 525600"),
    (["calendar", "--months", "2.5"], "--months", "from 0 to 1200"),
    (["calendar", "--months", "-1"], "--months", "from 0 to 1200"),  # QA: it said "0 or more", then refused 5000
])
def test_a_number_flag_given_something_else_is_one_usage_line(args, flag, expected):
    """Not a ValueError traceback: exit 2, naming the flag, the range it takes and what it got."""
    done = invoke(*args)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"releaser: {flag} takes a whole number {expected}, got" in done.stderr


def test_a_down_server_makes_status_exit_5_and_history_say_what_is_missing(sshd_farm, ssh_env):
    """Over real SSH with web-2's sshd stopped: status exits 5 naming it; history still shows the rest, and says so."""
    env_file = str(ssh_env.path)
    sshd_farm.stop("web-2")
    status = invoke("status", "--env", env_file)
    assert status.returncode == 5 and "web-2 did not answer; see: invoke runbook server-failure" in status.stderr
    history = invoke("history", "--env", env_file)
    assert history.returncode == 0
    assert "web-2 did not answer: what only its journal holds is missing above" in " ".join(history.stderr.split())


@pytest.mark.parametrize("args, flag, shown", [
    (["notice", "--message", "Delayed \x1b[2J\x1b[31mRED\nsecond line"], "--message", "an escape '\\x1b' at character 9"),
    (["lock", "--reason", "maintenance\nsecond line"], "--reason", "a newline '\\n' at character 12"),
    (["go-live", "--now", "--yes", "--reason", "tab\there"], "--reason", "a tab '\\t' at character 4"),
    (["notice", "--message", "figures \u202edelayed"], "--message", "a bidirectional control '\\u202e' at character 9"),
])
def test_a_control_character_in_a_notice_or_reason_is_one_usage_line_before_any_server(env_file, args, flag, shown):
    """Exit 2 with one line naming the flag and the character (escaped); no server was asked: nothing written."""
    done = invoke(*args, "--env", str(env_file))
    assert done.returncode == 2 and "Traceback" not in done.stderr and "\x1b" not in done.stderr
    assert done.stderr.splitlines() == [f"releaser: {flag} holds {shown}; it must be one line of plain text (no newline, "
                                        "tab, terminal codes or direction overrides); nothing was asked of any server"]
    assert not list(env_file.parent.glob("web-*/**/notice.txt")) and not list(env_file.parent.glob("web-*/**/*.lock"))
    assert not list(env_file.parent.glob("web-*"))  # not even a server's root was made


def test_an_actor_with_a_direction_override_is_one_usage_line(tmp_path):
    """RELEASER_ACTOR goes into every lock, journal line and history row: a control there is refused, exit 2."""
    from checkenv import write_environment as complete_environment

    env_file = complete_environment(tmp_path, servers=1)
    done = subprocess.run([sys.executable, "-m", "invoke", "lock", "--reason", "x", "--env", str(env_file)], cwd=PROJECT,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                          env={**os.environ, "RELEASER_ACTOR": "ana\u202e@laptop", "NO_COLOR": "1"})
    assert done.returncode == 2 and "RELEASER_ACTOR holds a bidirectional control '\\u202e'" in done.stderr, done.stderr
    assert not list(tmp_path.glob("web-*/**/lock"))


def test_a_user_name_with_a_control_character_is_named_as_such_not_as_releaser_actor(tmp_path):
    """QA: a hostile LOGNAME was refused with a message blaming RELEASER_ACTOR, which was not set."""
    from checkenv import write_environment as complete_environment

    env_file = complete_environment(tmp_path, servers=1)
    environ = {k: v for k, v in os.environ.items() if k != "RELEASER_ACTOR"}
    done = subprocess.run([sys.executable, "-m", "invoke", "status", "--env", str(env_file)], cwd=PROJECT,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                          env={**environ, "LOGNAME": "ev\x1bil", "USER": "ev\x1bil", "NO_COLOR": "1"})
    assert done.returncode == 2, done.stderr
    assert "your user name and host name (LOGNAME, USER or the account's) holds an escape" in done.stderr
    assert "set RELEASER_ACTOR to plain text" in done.stderr
