"""A health check that fails shows the first lines of what the server answered, escaped, and says what it left out.

`invoke go-live`, `rollback` and `status` run as a subprocess on the local sandbox, whose releases carry a
hostile page: terminal escapes, a bell, a right-to-left override, a 5,000-character line and more lines than
are shown. [health] asks that page in the environment the failing command runs with.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import EXAMPLES, read_slots, sandbox_servers, write_environment
from releaser.bundle import read_bundle, seal_directory
from releaser.config import load_environment
from conftest import PROJECT
from test_truth_cli import invoke

HOSTILE = ("Internal failure: \x1b[2J\x1b[31mFAKE: all good\x07\r\n"
           "right-to-left \u202etxt.exe\n"
           + "x" * 5000 + "\n"
           + "".join(f"trace line {i}\n" for i in range(3, 13)))  # 13 lines, none with the word [health] wants
QUICK = "[go_live]\nrehearsal_max_age_days = 0\n"


def release_with_hostile_page(base: Path, release_id: str) -> Path:
    """r1's files as `release_id`, plus public/hostile.txt (its /healthz still answers "ok")."""
    source = base / "bundles" / release_id
    shutil.copytree(EXAMPLES / "r1", source)
    (source / "public" / "hostile.txt").write_bytes(HOSTILE.encode())
    manifest = read_bundle(EXAMPLES / "r1").manifest
    seal_directory(source, release_id, publications=list(manifest.publications),
                   datasets=[d.model_dump(mode="json", exclude_none=True) for d in manifest.datasets])
    return source


@pytest.fixture
def hostile(tmp_path):
    """r1 live, r2 staged (both with the hostile page); `good.toml` checks /healthz, `hostile.toml` the hostile page."""
    good = write_environment(tmp_path / "good.toml", servers=sandbox_servers(tmp_path / "servers", 2), extra=QUICK)
    bad = tmp_path / "hostile.toml"
    bad.write_text(good.read_text().replace('path = "/healthz"', 'path = "/hostile.txt"'))
    for release in ("r1", "r2"):
        staged = invoke("deploy", "--stage", "--release", str(release_with_hostile_page(tmp_path, release)),
                        "--env", str(good))
        assert staged.returncode == 0, staged.stderr
        if release == "r1":
            done = go_live_now(good)
            assert done.returncode == 0, done.stderr
    return good, bad


def go_live_now(env: Path):
    return invoke("go-live", "--now", "--yes", "--override", "rollback-target", "--override", "deadline", "--override", "people",
                  "--reason", "tests", "--env", str(env))


def assert_bodies_shown(stderr: str, servers: tuple[str, ...]) -> None:
    """Each server's failing GET is named, then its first five lines escaped, the long one cut saying by how much,
    and the eight lines not shown counted; nothing of the body reaches the terminal raw."""
    for server in servers:
        assert f"{server}: GET http://127.0.0.1:" in stderr and "/hostile.txt -> 200 but the body lacks 'ok'; the body began:" in stderr
    lines = stderr.splitlines()
    assert lines.count("  | Internal failure: \\x1b[2J\\x1b[31mFAKE: all good\\x07") == len(servers), stderr
    assert lines.count("  | right-to-left \\u202etxt.exe") == len(servers)
    assert lines.count("  | " + "x" * 200 + " ... (4800 more characters)") == len(servers)
    assert lines.count("  | trace line 4") == len(servers) and "trace line 5" not in stderr
    assert lines.count("  ... and 8 more lines") == len(servers)
    assert "\x1b" not in stderr and "\x07" not in stderr and "\u202e" not in stderr


def test_a_go_live_whose_verification_fails_shows_each_servers_body_before_its_one_line(hostile, tmp_path):
    good, bad = hostile
    done = go_live_now(bad)
    assert done.returncode == 6, done.stderr
    assert_bodies_shown(done.stderr, ("web-1", "web-2"))
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("releaser: go-live failed on web-1 (GET ") and "every server is back on r1" in last, last
    assert {s.live for s in read_slots(load_environment(str(bad), PROJECT)).values()} == {"r1"}


def test_a_rollback_whose_check_after_it_fails_shows_each_servers_body(hostile):
    good, bad = hostile
    assert go_live_now(good).returncode == 0
    done = invoke("rollback", "--yes", "--reason", "tests", "--env", str(bad))
    assert done.returncode == 1, done.stderr
    assert_bodies_shown(done.stderr, ("web-1", "web-2"))
    assert done.stderr.strip().splitlines()[-1].startswith("releaser: every server's live link is back on r1, but the ")
    assert {s.live for s in read_slots(load_environment(str(bad), PROJECT)).values()} == {"r1"}


def test_status_shows_the_body_of_a_failing_health_check_and_json_carries_it(hostile):
    good, bad = hostile
    shown = invoke("status", "--env", str(bad))
    assert "FAIL" in shown.stdout
    assert_bodies_shown(shown.stderr, ("web-1", "web-2"))
    data = json.loads(invoke("status", "--json", "--env", str(bad)).stdout)
    health = data["servers"][0]["health"]
    assert health["body_head"][0] == "Internal failure: \x1b[2J\x1b[31mFAKE: all good\x07"
    assert (health["body_more_lines"], health["body_cut"]) == (8, False)
