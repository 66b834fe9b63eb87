"""Pre-release checks and data uploads against the local transport and the sandbox's real web servers."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from checkenv import SETTINGS, write_environment
from releaser.bundle import read_bundle, seal_directory
from releaser.checks import Limits, check_release
from releaser.clock import FakeClock
from releaser.config import load_environment
from releaser.datasets import RECORDS_FILE, parse_records
from releaser.errors import LockHeld, PlanRefused
from releaser.fleet import connected
from releaser.uploads import read_data_status, sign_off_dataset, upload_dataset

PROJECT = Path(__file__).resolve().parents[2]
EXAMPLES = PROJECT / "examples" / "releases"
ACTOR = "ana@releaser-tests"
# The Monday before the first Tuesday of December 2026: phof is due Tue 1 Dec 09:30 GMT and its data had to be
# uploaded and signed off by Wed 25 Nov 17:00 GMT.
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)
ON_TIME = [{"name": "phof-indicators", "publication": "phof", "file": "public/data/phof-indicators.csv",
            "uploaded_at": "2026-11-24T10:00:00Z", "uploaded_by": "ana@stats",
            "qa_signed_off_by": "ben@stats", "qa_signed_off_at": "2026-11-25T12:00:00Z"}]

def make_release(tmp_path: Path, release_id: str, *, base: str = "r2", datasets=ON_TIME, change=None) -> Path:
    """Copy an example release, let `change` edit its files, and seal it with the given data set records."""
    source = tmp_path / "bundles" / release_id
    shutil.copytree(EXAMPLES / base, source)
    (source / "manifest.json").unlink()
    if change:
        change(source)
    seal_directory(source, release_id, publications=["phof"], datasets=datasets)
    return source


@pytest.fixture
def scene(tmp_path):
    """Build a fleet where r1 is live and a release of the test's choosing is staged; yield a checker."""
    class Scene:
        def __init__(self) -> None:
            self.clock = FakeClock(NOW)
            self.environment = None

        def open(self, actor: str = ACTOR):
            return connected(self.environment, actor=actor, clock=self.clock, journal_path=tmp_path / "journal.jsonl")

        def build(self, staged: Path | None, *, live: bool = True, settings: str = SETTINGS, sandbox: str = "") -> None:
            self.environment = load_environment(str(write_environment(tmp_path, settings=settings, sandbox=sandbox)), PROJECT)
            with self.open() as fleet:
                if live:
                    fleet.stage(read_bundle(EXAMPLES / "r1"))
                    fleet.go_live(reason="test setup")
                if staged is not None:
                    fleet.stage(read_bundle(staged))

        def check(self, only=None) -> dict[tuple[str, str], tuple[str, str]]:
            with self.open() as fleet:
                run = check_release(fleet, Limits(self.environment, actor=ACTOR), now=self.clock.now(), only=only)
            return {(r.check, r.server): (r.status, r.detail) for r in run.results}

        def root(self, server: str = "web-1") -> Path:
            return Path(str(self.environment.app_root(self.environment.server(server))))

    return Scene()


def failed(results) -> set[str]:
    """The names of the checks that FAILed somewhere."""
    return {check for (check, _), (status, _) in results.items() if status == "FAIL"}


def test_good_staged_release_passes_every_check(scene, tmp_path):
    """A release staged everywhere, on time, signed off, private and working passes all fourteen checks."""
    scene.build(make_release(tmp_path, "r2"))
    results = scene.check()
    assert {status for status, _ in results.values()} == {"PASS"}, {k: v for k, v in results.items() if v[0] != "PASS"}
    assert {check for check, _ in results} == {"reachable", "disk", "staged", "rollback-target", "serving", "data-slots", "smoke",
                                               "config-parity", "embargo", "lock", "deadline", "window", "people", "rehearsal"}


def test_late_data_set_fails_the_deadline_check_saying_how_late(scene, tmp_path):
    """A sign-off two days after the Wednesday 17:00 deadline fails `deadline`, naming the data set and the delay."""
    late = [{**ON_TIME[0], "qa_signed_off_at": "2026-11-27T18:30:00Z"}]
    scene.build(make_release(tmp_path, "r2", datasets=late))
    results = scene.check()
    assert failed(results) == {"deadline"}
    status, detail = results[("deadline", "all")]
    assert status == "FAIL"
    assert detail.startswith("phof-indicators: signed off 2 days 1 h late by ben@stats")
    assert detail.endswith("deadline Wed 25 Nov 17:00 GMT")


def test_broken_smoke_endpoint_fails_smoke_on_every_server(scene, tmp_path):
    """A staged release without its health endpoint fails `smoke` with the URL and status, and nothing else."""
    scene.build(make_release(tmp_path, "r2", change=lambda d: (d / "public" / "healthz").unlink()))
    results = scene.check()
    assert failed(results) == {"smoke"}
    for server in ("web-1", "web-2"):
        status, detail = results[("smoke", server)]
        assert status == "FAIL" and "/healthz -> 404, expected 200" in detail


def test_config_difference_fails_config_parity_with_the_diff(scene, tmp_path):
    """A staged config/app.toml whose database differs from live's fails `config-parity` and shows both values."""
    def change(directory: Path) -> None:
        config = directory / "config" / "app.toml"
        config.write_text(config.read_text().replace('database = "phof-live"', 'database = "phof-live-2"')
                          .replace("cache_seconds = 300", "cache_seconds = 60"))
    scene.build(make_release(tmp_path, "r2", change=change))
    results = scene.check()
    assert failed(results) == {"config-parity"}
    status, detail = results[("config-parity", "web-2")]
    assert "database: live 'phof-live', staged 'phof-live-2'" in detail
    assert "cache_seconds" not in detail  # declared slot-specific


def test_missing_backup_fails_rollback_target(scene, tmp_path):
    """With nothing live, going live would leave no rollback target: `rollback-target` fails, never warns."""
    scene.build(make_release(tmp_path, "r2"), live=False)
    results = scene.check()
    assert results[("rollback-target", "web-1")][0] == "FAIL"
    assert "NO rollback target" in results[("rollback-target", "web-1")][1]


def test_corrupt_live_release_fails_rollback_target(scene, tmp_path):
    """A live release whose files no longer match their checksums would be a broken backup: FAIL on that server."""
    scene.build(make_release(tmp_path, "r2"))
    (scene.root("web-2") / "releases" / "r1" / "public" / "index.html").write_text("tampered\n")
    results = scene.check(only="rollback-target")
    assert results[("rollback-target", "web-1")][0] == "PASS"
    assert results[("rollback-target", "web-2")][0] == "FAIL"
    assert "public/index.html: FAILED" in results[("rollback-target", "web-2")][1]


def test_staging_reachable_in_public_fails_embargo(scene, tmp_path):
    """A staging server that answers a request without the credential fails `embargo` on every server."""
    scene.build(make_release(tmp_path, "r2"), sandbox="protect_staging = false")
    results = scene.check()
    assert failed(results) == {"embargo"}
    assert "-> 200: the public can see the release" in results[("embargo", "web-1")][1]


def test_full_disk_fails_the_disk_check(scene, tmp_path):
    """Free space under the environment's minimum (a threshold no disk meets) fails `disk` on every server."""
    scene.build(make_release(tmp_path, "r2"), settings=SETTINGS.replace("min_free_mib = 1\n", "min_free_mib = 1000000000\n"))
    results = scene.check()
    assert failed(results) == {"disk"}
    assert "minimum" in results[("disk", "web-1")][1]


def test_lock_held_by_someone_else_fails_the_lock_check(scene, tmp_path):
    """A manual lock taken by another person fails `lock`, naming who holds it and why."""
    scene.build(make_release(tmp_path, "r2"))
    with scene.open(actor="dan@elsewhere") as fleet:
        fleet.take_lock("hotfix for another site", token="t-dan", kind="manual", minutes=120)
    results = scene.check()
    assert failed(results) == {"lock"}
    assert 'lock held by dan@elsewhere' in results[("lock", "web-1")][1]
    assert "hotfix for another site" in results[("lock", "web-2")][1]


def test_nothing_staged_fails_staged_and_the_release_checks(scene, tmp_path):
    """With only a live release and nothing staged, `staged` fails and says how to stage."""
    scene.build(None)
    results = scene.check(only="staged,deadline")
    assert results[("staged", "web-1")] == ("FAIL", "nothing is staged; run: invoke deploy --stage --release PATH")
    assert results[("deadline", "all")][0] == "FAIL"


def test_upload_puts_the_file_in_staging_everywhere_and_records_who_and_when(scene, tmp_path):
    """An upload replaces the data file in the staged release on every server, keeps its sums valid and records it."""
    scene.build(make_release(tmp_path, "r2"))
    data = tmp_path / "new.csv"
    data.write_text("area,value\nE1,42\n")
    scene.clock = FakeClock(datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc))
    with scene.open() as fleet:
        change = upload_dataset(fleet, "phof-indicators", data)
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    assert change.sha256 == digest and change.by == ACTOR
    for server in ("web-1", "web-2"):
        release = scene.root(server) / "releases" / "r2"
        assert (release / "public/data/phof-indicators.csv").read_bytes() == data.read_bytes()
        subprocess.run(["sha256sum", "--check", "--quiet", "--strict", ".releaser-sha256sums"], cwd=release, check=True)
        record = parse_records((release / RECORDS_FILE).read_text())["phof-indicators"]
        assert record.uploads[-1].by == ACTOR and record.uploads[-1].sha256 == digest
        assert record.uploads[-1].at == datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc)
        assert not list(release.glob(".releaser-upload-*"))
    assert (scene.root() / "releases" / "r1" / "public/data/phof-indicators.csv").read_bytes() != data.read_bytes()


def test_changed_data_needs_a_new_sign_off(scene, tmp_path):
    """A data set uploaded again after its sign-off shows as needing a new sign-off until QA signs it off again."""
    scene.build(make_release(tmp_path, "r2"))
    data = tmp_path / "new.csv"
    data.write_text("area,value\nE1,43\n")
    scene.clock = FakeClock(datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc))
    with scene.open() as fleet:
        upload_dataset(fleet, "phof-indicators", data)
        status = read_data_status(fleet, Limits(scene.environment), scene.clock.now())
    assert status.rows[0].state.needs_sign_off() and status.rows[0].verdict.status == "WARN"
    scene.clock.advance(3600)
    with scene.open(actor="ben@stats") as fleet:
        sign_off_dataset(fleet, "phof-indicators")
        status = read_data_status(fleet, Limits(scene.environment), scene.clock.now())
    row = status.rows[0]
    assert not row.state.needs_sign_off() and row.verdict.status == "PASS"
    assert row.state.signed_off.by == "ben@stats" and row.state.signed_off.sha256 == row.state.sha256
    scene.clock = FakeClock(NOW)
    assert scene.check(only="deadline,staged")[("deadline", "all")][0] == "PASS"


def test_upload_refuses_when_staging_is_the_live_release(scene, tmp_path):
    """Data never goes into live: with staging pointed at live by hand, the upload is refused, live untouched."""
    scene.build(None)
    for server in ("web-1", "web-2"):
        (scene.root(server) / "staging").symlink_to("releases/r1")
    before = (scene.root() / "releases" / "r1" / "public/data/phof-indicators.csv").read_bytes()
    data = tmp_path / "new.csv"
    data.write_text("x\n")
    with scene.open() as fleet, pytest.raises(PlanRefused, match="live release r1"):
        upload_dataset(fleet, "phof-indicators", data)
    assert (scene.root() / "releases" / "r1" / "public/data/phof-indicators.csv").read_bytes() == before


def test_upload_of_a_data_set_the_release_lacks_is_refused_naming_those_it_has(scene, tmp_path):
    """A mistyped --dataset is refused (exit 3) with the names the manifest declares, the lock freed, nothing written."""
    scene.build(make_release(tmp_path, "r2"))
    data = tmp_path / "new.csv"
    data.write_text("x\n")
    with scene.open() as fleet, pytest.raises(PlanRefused, match="r2 has no data set 'phof-indicator'") as caught:
        upload_dataset(fleet, "phof-indicator", data)
    assert "phof-indicators" in caught.value.hint and caught.value.exit_code == 3
    for server in ("web-1", "web-2"):
        assert not (scene.root(server) / ".releaser" / "lock").exists()
        assert not list((scene.root(server) / "releases" / "r2").glob(".releaser-upload-*"))


def test_upload_refuses_when_nothing_is_staged(tmp_path, scene):
    """With an empty staging slot there is nowhere for data to go: refused, nothing written."""
    scene.build(None, live=False)
    data = tmp_path / "new.csv"
    data.write_text("x\n")
    with scene.open() as fleet, pytest.raises(PlanRefused, match="nothing is staged"):
        upload_dataset(fleet, "phof-indicators", data)
    assert not (scene.root() / "releases").exists() or not any((scene.root() / "releases").iterdir())


def test_upload_refuses_while_someone_else_holds_the_lock(scene, tmp_path):
    """A data upload takes the deploy lock, so another person's lock refuses it and the file stays as it was."""
    scene.build(make_release(tmp_path, "r2"))
    with scene.open(actor="dan@elsewhere") as fleet:
        fleet.take_lock("maintenance", token="t-dan", kind="manual", minutes=120)
    data = tmp_path / "new.csv"
    data.write_text("x\n")
    with scene.open() as fleet, pytest.raises(LockHeld):
        upload_dataset(fleet, "phof-indicators", data)
    assert (scene.root() / "releases" / "r2" / "public/data/phof-indicators.csv").read_bytes() != b"x\n"


def test_check_run_is_journaled_by_the_cli_task_shape(scene, tmp_path):
    """fleet.record("check", ...) lands in every server's journal with the failures listed."""
    scene.build(make_release(tmp_path, "r2", change=lambda d: (d / "public" / "healthz").unlink()))
    with scene.open() as fleet:
        run = check_release(fleet, Limits(scene.environment, actor=ACTOR), now=scene.clock.now())
        fleet.record("check", "failed" if run.failed else "passed", releases={"staging": run.release},
                     extra={"checks": [r.check for r in run.results if r.status == "FAIL"]})
    last = json.loads((scene.root("web-2") / ".releaser" / "journal.jsonl").read_text().splitlines()[-1])
    assert last["action"] == "check" and last["outcome"] == "failed" and "smoke" in last["checks"]
