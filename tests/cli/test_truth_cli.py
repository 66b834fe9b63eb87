"""Issue 12: everything releaser says is true. `invoke ...` run as a subprocess, as a user meets it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import EXAMPLES, PROJECT, read_slots, sandbox_servers, write_environment
from releaser.config import load_environment


def invoke(*args, env_extra=None, columns: int = 200):
    """Run `invoke ARGS` in the project directory and return the finished process."""
    environ = {**os.environ, "RELEASER_ACTOR": "truth@tests", "NO_COLOR": "1", "COLUMNS": str(columns), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=PROJECT, capture_output=True, text=True,
                          timeout=120, env=environ, stdin=subprocess.DEVNULL)


def environment_file(base: Path, name: str, *, servers: int = 2, extra: str = "") -> Path:
    """A local sandbox environment called `name` with its own roots and free ports under `base`."""
    return write_environment(base / f"{name}.toml", servers=sandbox_servers(base / name, servers), extra=extra)


REHEARSAL_REQUIRED = "[go_live]\nrehearsal_max_age_days = 7\n"


# ---- 1. one journal per environment ----

def test_rehearsal_on_uat_does_not_count_for_production(tmp_path):
    """A rehearsal on uat leaves production's rehearsal check FAIL and its history without uat's events."""
    uat = environment_file(tmp_path, "uat", extra=REHEARSAL_REQUIRED)
    production = environment_file(tmp_path, "production", extra=REHEARSAL_REQUIRED)
    for env in (uat, production):
        assert invoke("deploy", "--stage", "--release", str(EXAMPLES / "r1"), "--env", str(env)).returncode == 0
    assert invoke("rehearse", "--yes", "--env", str(uat)).returncode == 0

    checked = invoke("check", "--only", "rehearsal", "--env", str(production))
    assert checked.returncode == 4
    assert "no rehearsal on record" in checked.stdout
    history = json.loads(invoke("history", "--json", "--env", str(production)).stdout)
    assert {e["environment"] for e in history} == {"production"}
    assert "rehearse" not in {e["action"] for e in history}
    assert (tmp_path / "uat.journal.jsonl").is_file() and (tmp_path / "production.journal.jsonl").is_file()


def test_rebuilt_servers_do_not_inherit_old_rehearsals(tmp_path):
    """Servers rebuilt from scratch FAIL the rehearsal check; the old rehearsal shows as this machine's only."""
    production = environment_file(tmp_path, "production", extra=REHEARSAL_REQUIRED)
    assert invoke("deploy", "--stage", "--release", str(EXAMPLES / "r1"), "--env", str(production)).returncode == 0
    assert invoke("rehearse", "--yes", "--env", str(production)).returncode == 0
    assert invoke("check", "--only", "rehearsal", "--env", str(production)).returncode == 0

    shutil.rmtree(tmp_path / "production")  # the servers are rebuilt; this machine's journal remains
    assert invoke("deploy", "--stage", "--release", str(EXAMPLES / "r1"), "--env", str(production)).returncode == 0
    checked = invoke("check", "--only", "rehearsal", "--env", str(production))
    assert checked.returncode == 4, checked.stdout
    history = json.loads(invoke("history", "--json", "--env", str(production)).stdout)
    rehearsals = [e for e in history if e["action"] == "rehearse"]
    assert rehearsals and all(e.get("local_only") and e["seen_on"] == [] for e in rehearsals)


# ---- 4. --dry-run, and Invoke's --dry, change nothing ----

def go_live_now(env):
    """`invoke go-live --now`, accepting the two checks whose verdict depends on the first release and the day."""
    return invoke("go-live", "--now", "--yes", "--override", "rollback-target", "--override", "deadline",
                  "--reason", "tests", "--env", str(env))


@pytest.fixture(scope="module")
def two_live(tmp_path_factory):
    """r1 went live, then r2 (r1 is the backup), and r3 is staged: every command has something to change."""
    from checkenv import write_environment as complete_environment

    path = complete_environment(tmp_path_factory.mktemp("two-live"), servers=2)
    for release in ("r1", "r2"):
        assert invoke("deploy", "--stage", "--release", str(EXAMPLES / release), "--env", str(path)).returncode == 0
        assert go_live_now(path).returncode == 0
    assert invoke("deploy", "--stage", "--release", str(EXAMPLES / "r3"), "--env", str(path)).returncode == 0
    return path


def server_files(env: Path) -> dict[str, bytes]:
    """Every file and link under every server's root, and the local journal: what a dry run must not touch."""
    environment = load_environment(str(env), PROJECT)
    seen = {}
    for server in environment.servers:
        root = Path(str(environment.app_root(server)))
        for path in sorted(root.rglob("*")):
            seen[str(path)] = os.readlink(path).encode() if path.is_symlink() else path.read_bytes() if path.is_file() else b"dir"
    journal = env.with_name(f"{env.stem}.journal.jsonl")
    seen["journal"] = journal.read_bytes() if journal.exists() else b""
    return seen


DRY_RUNS = [
    pytest.param(["deploy", "--stage", "--release", str(EXAMPLES / "r3"), "--dry-run"],  # QA: it said "would stage"
                 "r3 is already staged on every server: the deploy would check its files there and change nothing",
                 id="deploy-already-staged"),
    pytest.param(["go-live", "--now", "--dry-run"], "would switch r3 live now", id="go-live"),
    pytest.param(["go-live", "--dry-run"], "would switch r3 live at", id="go-live-scheduled"),
    pytest.param(["rollback", "--yes", "--dry-run"], "would put r1 back live", id="rollback"),
    pytest.param(["--dry", "rollback", "--yes"], "would put r1 back live", id="invoke-dry-rollback"),
    pytest.param(["prune", "--keep", "0", "--yes", "--dry-run"], "would remove old releases", id="prune"),
    pytest.param(["lock", "--reason", "t", "--dry-run"], "would lock every server", id="lock"),
    pytest.param(["unlock", "--dry-run"], "nothing is locked: unlock would change nothing", id="unlock"),
    pytest.param(["notice", "--message", "late", "--dry-run"], "would publish a delay notice", id="notice"),
    pytest.param(["data-upload", "--dataset", "phof-indicators", "--file", __file__, "--dry-run"],
                 "would put", id="data-upload"),
    pytest.param(["data-sign-off", "--dataset", "phof-indicators", "--dry-run"], "would record your sign-off", id="data-sign-off"),
]


@pytest.mark.parametrize(("args", "headline"), DRY_RUNS)
def test_dry_run_shows_the_plan_and_changes_nothing(two_live, args, headline):
    """Every task that changes servers has a dry run: it says what it would do and no file on any server moves."""
    before = server_files(two_live)
    done = invoke(*args, "--env", str(two_live))
    assert done.returncode == 0, done.stderr
    assert headline in done.stderr
    assert "dry run: nothing was changed on any server and nothing was journaled" in done.stderr
    assert server_files(two_live) == before


@pytest.mark.parametrize("args", [["rollback", "--yes", "--dry-run"], ["go-live", "--now", "--dry-run"],
                                  ["deploy", "--stage", "--release", str(EXAMPLES / "r3"), "--dry-run"],
                                  ["prune", "--keep", "0", "--yes", "--dry-run"]], ids=lambda a: a[0])
def test_a_dry_run_is_refused_by_someone_else_s_lock_as_the_command_would_be(two_live, args):
    """ana's lock (left by her go-live, or taken with invoke lock): ben's dry run says it would be refused, exit 3,
    with the real command's words, instead of promising a change the command would refuse."""
    ana = {"RELEASER_ACTOR": "ana@laptop"}
    assert invoke("lock", "--reason", "data fix", "--env", str(two_live), env_extra=ana).returncode == 0
    try:
        done = invoke(*args, "--env", str(two_live))
        assert done.returncode == 3, done.stderr
        assert 'lock held by ana@laptop since' in done.stderr and '(reason: "data fix"' in done.stderr, done.stderr
        assert "would " not in done.stderr
        mine = invoke(*args, "--env", str(two_live), env_extra=ana)  # her own commands go through her manual lock
        assert mine.returncode == 0, mine.stderr
    finally:
        assert invoke("unlock", "--reason", "t", "--yes", "--env", str(two_live)).returncode == 0


@pytest.mark.parametrize("task", ["rehearse", "demo", "demo-app"])
def test_invoke_dry_on_a_task_without_a_dry_run_is_refused(two_live, task):
    """`invoke --dry rehearse` is refused with exit 2 rather than rehearsing for real."""
    before = server_files(two_live)
    done = invoke("--dry", task, *(["--env", str(two_live)] if task == "rehearse" else []))
    assert done.returncode == 2
    assert f"releaser: {task} has no dry run, and invoke --dry would not stop it; nothing was done" in done.stderr
    assert server_files(two_live) == before


# ---- 5. unlock says what it removed, and nothing when nothing is locked ----

def test_unlock_with_nothing_locked_says_so_and_journals_nothing(tmp_path):
    """No server is locked: unlock says so, exits 0, and writes no 'unlock done' event."""
    env = environment_file(tmp_path, "uat")
    done = invoke("unlock", "--reason", "tidy", "--yes", "--env", str(env))
    assert done.returncode == 0
    assert "nothing is locked on web-1, web-2: nothing was changed or journaled" in done.stderr
    assert "unlocked" not in done.stderr
    assert "unlock" not in {e["action"] for e in json.loads(invoke("history", "--json", "--env", str(env)).stdout)}


def test_unlock_names_the_lock_it_removed(tmp_path):
    """A held lock is named, removed everywhere and journaled."""
    env = environment_file(tmp_path, "uat")
    assert invoke("lock", "--reason", "hotfix r41", "--env", str(env)).returncode == 0
    done = invoke("unlock", "--reason", "done", "--yes", "--env", str(env))
    assert done.returncode == 0
    assert "removed the lock on web-1, web-2" in done.stderr
    assert 'lock held by truth@tests since' in done.stderr and '(reason: "hotfix r41"' in done.stderr
    assert "dry run" not in done.stdout + done.stderr  # QA: the plan shown before it asks was headed "dry run"
    status = json.loads(invoke("status", "--json", "--env", str(env)).stdout)
    assert [s["lock"] for s in status["servers"]] == [None, None]
    assert "unlock" in {e["action"] for e in json.loads(invoke("history", "--json", "--env", str(env)).stdout)}


# ---- 6. build refuses a --source that holds no release ----

@pytest.mark.parametrize(("make", "said"), [
    pytest.param(lambda base: base / "missing", "no such directory", id="missing"),
    pytest.param(lambda base: (base / "a-file").write_text("x") and base / "a-file", "is a file, not a directory", id="a-file"),
    pytest.param(lambda base: (base / "empty").mkdir() or base / "empty", "the directory holds no files", id="empty"),
])
def test_build_refuses_a_source_without_files(tmp_path, make, said):
    """A missing path, a file or an empty directory is a usage error, and no bundle is written."""
    source = make(tmp_path)
    out = tmp_path / "dist" / "r9.tar.gz"
    done = invoke("build", "--source", str(source), "--release-id", "r9", "--out", str(out))
    assert done.returncode == 2
    assert f"releaser: --source {source}: {said}" in done.stderr
    assert not out.exists()


def test_build_says_when_it_replaced_a_bundle_already_there(tmp_path):
    """A rebuild to the same --out replaces the file whole and says so; a first build says nothing of it."""
    out = tmp_path / "r9.tar.gz"
    first = invoke("build", "--source", str(EXAMPLES / "r1"), "--release-id", "r9", "--out", str(out))
    again = invoke("build", "--source", str(EXAMPLES / "r2"), "--release-id", "r9", "--out", str(out))
    assert first.returncode == 0 and again.returncode == 0, again.stderr
    assert "replaced" not in first.stderr and "; it replaced the file that was there)" in again.stderr


# ---- 10. no value is ever cut ----

LONG_ID = "2026-12-phof-indicators-final-revised"


@pytest.mark.parametrize("columns", [80, 60])
def test_status_and_history_at_narrow_widths_keep_every_value_whole(tmp_path, columns):
    """At 80 columns or less a long release id and a long URL are printed whole (a list layout), never 'p…'."""
    env = environment_file(tmp_path, "uat")
    bundle = tmp_path / f"{LONG_ID}.tar.gz"
    assert invoke("build", "--source", str(EXAMPLES / "r1"), "--release-id", LONG_ID, "--out", str(bundle)).returncode == 0
    reason = "see https://example.org/releases/2026/12/phof-indicators-final-revised/notes.html for why"
    assert invoke("deploy", "--stage", "--release", str(bundle), "--reason", reason, "--env", str(env)).returncode == 0

    status = invoke("status", "--env", str(env), columns=columns)
    history = invoke("history", "--env", str(env), columns=columns)
    for done in (status, history):
        assert "…" not in done.stdout
        assert LONG_ID in done.stdout
    assert "https://example.org/releases/2026/12/phof-indicators-final-revised/notes.html" in history.stdout
    assert "server: web-2" in status.stdout  # the list layout, one block per server


# ---- 11. one --at parser; every usage error exits 2 ----

@pytest.fixture
def complete_env(tmp_path):
    """A local sandbox with publications, people and checks (what check and go-live read)."""
    from checkenv import write_environment as complete_environment

    return complete_environment(tmp_path, servers=2)


def test_check_takes_the_same_at_as_go_live(complete_env):
    """`check --at 09:30` is read like `go-live --at 09:30`: today at 09:30 in the publication's zone."""
    done = invoke("check", "--only", "window", "--at", "09:30", "--json", "--env", str(complete_env))
    assert done.returncode in (0, 4), done.stderr
    assert json.loads(done.stdout)["results"][0]["check"] == "window"


@pytest.mark.parametrize("args", [
    pytest.param(["check", "--at", "tomorrow"], id="check-at"),
    pytest.param(["go-live", "--at", "tomorrow", "--yes"], id="go-live-at"),
    pytest.param(["data-status", "--at", "tomorrow"], id="data-status-at"),
    pytest.param(["breach-report", "--release", "r1", "--scheduled", "tomorrow"], id="breach-scheduled"),
])
def test_an_unreadable_time_is_a_usage_error_worded_the_same_everywhere(complete_env, args):
    """Every --at (and --scheduled) goes through one parser: exit 2 and one message shape."""
    done = invoke(*args, "--env", str(complete_env))
    assert done.returncode == 2, done.stderr
    flag = "--scheduled" if "--scheduled" in args else "--at"
    assert f"releaser: {flag} 'tomorrow': cannot read the time; write HH:MM (today)" in done.stderr


@pytest.mark.parametrize(("args", "said"), [
    pytest.param(["data-upload", "--file", "x.csv"], "data-upload needs --dataset NAME and --file PATH", id="no-dataset"),
    pytest.param(["data-sign-off"], "data-sign-off needs --dataset NAME", id="sign-off-no-dataset"),
    pytest.param(["go-live", "--now", "--override", "deadline", "--yes"], "--override needs --reason TEXT", id="override-no-reason"),
    pytest.param(["go-live", "--now", "--at", "09:30", "--yes", "--force", "--reason", "x"], "--now and --at do not go together",
                 id="now-and-at"),
])
def test_a_missing_or_clashing_flag_exits_2(complete_env, args, said):
    """What the README lists as a usage error is exit 2, and nothing on the servers moves."""
    before = server_files(complete_env)
    done = invoke(*args, "--env", str(complete_env))
    assert done.returncode == 2, done.stderr
    assert said in done.stderr
    assert server_files(complete_env) == before


# ---- a path or number this machine cannot use: one line and exit 2, never a traceback ----

@pytest.mark.parametrize(("args", "said"), [
    (["calendar", "--ics", "{tmp}/no/such/dir/x.ics"], "cannot write --ics {tmp}/no/such/dir/x.ics: No such file or directory"),
    (["calendar", "--months", "100000"], "--months takes a whole number from 0 to 1200, got 100000"),
    (["calendar", "--from", "0001-01-01"], "the calendar covers the years 1970 to 2199"),
    (["calendar", "--from", "9999-12-31"], "the calendar covers the years 1970 to 2199"),
    (["lock", "--reason", "x", "--minutes", "99999999999999999999999"], "--minutes takes a whole number from 0 to 525600"),
    (["build", "--source", "examples/releases/r1", "--release-id", "r9", "--out", "/proc/none/r9.tar.gz"],
     "cannot write --out /proc/none/r9.tar.gz: No such file or directory"),
    (["dashboard", "--port", "99999"], "--port takes a whole number from 0 to 65535, got 99999"),
    (["dashboard", "--every", "0"], "--every takes a whole number of seconds from 1 to 3600, got 0"),
    (["dashboard", "--port", "0", "--bind", "no.such.host.invalid"], "cannot serve the dashboard on no.such.host.invalid:0"),
], ids=["ics-dir", "months", "from-early", "from-late", "minutes", "build-out-dir", "port", "every", "bind"])
def test_what_this_machine_cannot_use_is_one_line_and_exit_2(args, said, tmp_path):
    """QA hostile input: each of these ended in a Python traceback, exit 1."""
    from checkenv import write_environment as complete_environment

    env = [] if args[0] == "build" else ["--env", str(complete_environment(tmp_path, servers=2))]
    done = invoke(*[a.replace("{tmp}", str(tmp_path)) for a in args], *env)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr and said.replace("{tmp}", str(tmp_path)) in done.stderr, done.stderr


@pytest.mark.parametrize("args", [["unlock", "--reason", "   ", "--yes"], ["lock", "--reason", "  "],
                                  ["notice", "--message", "   "],
                                  ["go-live", "--now", "--override", "lock", "--reason", "  ", "--dry-run"]],
                         ids=["unlock", "lock", "notice", "go-live-dry"])
def test_a_blank_reason_or_notice_is_refused_before_any_server_is_asked(args, tmp_path):
    """QA: blank reasons were journaled, a blank notice published an empty banner, and a go-live dry run with a
    blank --reason promised a switch the real command refused with exit 1."""
    env = environment_file(tmp_path, "uat")
    done = invoke(*args, "--env", str(env))
    assert done.returncode == 2 and "is blank; say it in words" in done.stderr, (done.returncode, done.stderr)


@pytest.mark.parametrize(("args", "said", "code"), [
    (["--at", "1900-01-01 00:00"], "passed", 3),
    (["--now", "--at", "09:30"], "--now and --at do not go together", 2),
    (["--override", "no-such-check", "--reason", "x"], "no-such-check", 2),
], ids=["at-passed", "now-and-at", "unknown-override"])
def test_a_go_live_dry_run_refuses_what_the_go_live_would(args, said, code, tmp_path):
    """QA: `go-live --at "1900-01-01 00:00" --dry-run` said it would switch in 1900; the command refuses."""
    env = environment_file(tmp_path, "uat")
    dry = invoke("go-live", *args, "--dry-run", "--env", str(env))
    real = invoke("go-live", *args, "--yes", "--env", str(env))
    assert dry.returncode == real.returncode == code and said in dry.stderr and said in real.stderr, (dry.stderr, real.stderr)
    assert "would switch" not in dry.stderr


def test_history_of_a_release_nobody_journaled_says_so(tmp_path):
    """QA: `history --release nonexistent` printed an empty table and nothing else."""
    env = environment_file(tmp_path, "uat")
    done = invoke("history", "--release", "r404", "--env", str(env))
    assert done.returncode == 0 and "the journal holds no events about release r404" in done.stderr, done.stderr
