"""Pre-release checks and a data upload over real OpenSSH servers on loopback (the sshd farm)."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from checkenv import SETTINGS
from conftest import ssh_environment_for
from releaser.bundle import read_bundle, seal_directory
from releaser.checks import Limits, check_release
from releaser.clock import FakeClock
from releaser.fleet import connected
from releaser.uploads import read_data_status, upload_dataset

pytestmark = pytest.mark.ssh

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "releases"
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)
ON_TIME = [{"name": "phof-indicators", "publication": "phof", "file": "public/data/phof-indicators.csv",
            "uploaded_at": "2026-11-24T10:00:00Z", "uploaded_by": "ana@stats",
            "qa_signed_off_by": "ben@stats", "qa_signed_off_at": "2026-11-25T12:00:00Z"}]
# The file's sandbox_token is refused for SSH environments: the token comes from the variable instead.
SSH_SETTINGS = SETTINGS.replace('sandbox_token = "test-preview-token"\n', "")


@pytest.fixture
def ssh_scene(sshd_farm, tmp_path, monkeypatch):
    """r1 live and an on-time r2 staged on three sshd servers; returns (environment, opener)."""
    monkeypatch.setenv("RELEASER_TEST_PREVIEW_TOKEN_UNSET", "ssh-preview-token")
    environment = ssh_environment_for(sshd_farm, tmp_path / "ssh-checks.toml", extra=SSH_SETTINGS)
    release = tmp_path / "r2"
    shutil.copytree(EXAMPLES / "r2", release)
    (release / "manifest.json").unlink()
    seal_directory(release, "r2", publications=["phof"], datasets=ON_TIME)
    clock = FakeClock(NOW)

    def opener(actor: str = "ana@stats"):
        return connected(environment, actor=actor, clock=clock, journal_path=tmp_path / "journal.jsonl")

    with opener() as fleet:
        fleet.stage(read_bundle(EXAMPLES / "r1"))
        fleet.go_live(reason="test setup")
        fleet.stage(read_bundle(release))
    return environment, opener, clock


def run(environment, opener, only=None):
    with opener() as fleet:
        results = check_release(fleet, Limits(environment, actor="ana@stats"), now=NOW, only=only).results
    return {(r.check, r.server): (r.status, r.detail) for r in results}


def test_good_release_passes_every_check_over_ssh(ssh_scene):
    """Every check reads its facts through SSH and the staged release passes them all on three servers."""
    environment, opener, _ = ssh_scene
    results = run(environment, opener)
    assert {status for status, _ in results.values()} == {"PASS"}, {k: v for k, v in results.items() if v[0] != "PASS"}
    assert ("rollback-target", "web-3") in results


def test_corrupt_backup_and_foreign_lock_fail_over_ssh(ssh_scene, sshd_farm):
    """A tampered live release on one server fails rollback-target there; another person's lock fails lock."""
    environment, opener, _ = ssh_scene
    victim = sshd_farm.servers[1]
    (Path(str(victim.root)) / "releases" / "r1" / "public" / "index.html").write_text("tampered\n")
    with opener(actor="dan@elsewhere") as fleet:
        fleet.take_lock("emergency fix", token="t-dan", kind="manual", minutes=60)
    results = run(environment, opener, only="rollback-target,lock")
    failing = {key for key, (status, _) in results.items() if status == "FAIL"}
    assert ("rollback-target", victim.name) in failing
    assert {("lock", s.name) for s in sshd_farm.servers} <= failing
    assert sum(1 for check, _ in failing if check == "rollback-target") == 1


def test_data_upload_over_ssh_reaches_every_server(ssh_scene, sshd_farm, tmp_path):
    """An upload goes over SFTP into the staged release on every server and shows as needing a sign-off."""
    environment, opener, clock = ssh_scene
    data = tmp_path / "fresh.csv"
    data.write_text("area,value\nE1,7\n")
    with opener() as fleet:
        upload_dataset(fleet, "phof-indicators", data)
        status = read_data_status(fleet, Limits(environment), clock.now())
    for server in sshd_farm.servers:
        assert (Path(str(server.root)) / "releases" / "r2" / "public/data/phof-indicators.csv").read_text() == data.read_text()
    assert status.rows[0].state.needs_sign_off()
    assert run(environment, opener, only="staged")[("staged", "web-1")][0] == "PASS"
