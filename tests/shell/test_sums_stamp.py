"""The checksum stamp prepare trusts: a release checked within 15 minutes, and unchanged since, is not read again;
any change after the check, or an old stamp, has every file read again."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path, PurePosixPath

from conftest import EXAMPLES
from releaser import remote
from releaser.bundle import read_bundle
from releaser.slots import LinkChange

# prepare's tools, without sha256sum: a prepare that must read the files fails, one that trusts the stamp passes
WITHOUT_SHA256SUM = ("sh", "find", "ln", "mv", "mkdir", "rm", "cat", "cut")


def staged_root(local_env, open_fleet) -> Path:
    """r1 staged (checked and stamped by its unpack's check) on the first sandbox server; its app root."""
    with open_fleet(local_env) as fleet:
        fleet.stage(read_bundle(EXAMPLES / "r1"))
    return Path(str(local_env.app_root(local_env.servers[0])))


def prepare(root: Path, tools: Path | None = None) -> subprocess.CompletedProcess:
    argv = remote.prepare_argv(PurePosixPath(root), (LinkChange("live", None, "r1"),))
    env = {**os.environ, "PATH": str(tools)} if tools else None
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)


def only(directory: Path, names) -> Path:
    directory.mkdir()
    for name in names:
        (directory / name).symlink_to(shutil.which(name))
    return directory


def check_and_stamp(root: Path) -> None:
    """What a passing prepare (or check) leaves: every file read, and .releaser/verified-r1 written."""
    done = prepare(root)
    assert done.returncode == 0, done.stderr
    assert (root / ".releaser" / "verified-r1").is_file()


def test_a_fresh_stamp_spares_reading_the_files_again(local_env, open_fleet, tmp_path):
    root = staged_root(local_env, open_fleet)
    check_and_stamp(root)
    done = prepare(root, only(tmp_path / "bin", WITHOUT_SHA256SUM))
    assert done.returncode == 0, done.stderr
    assert os.readlink(root / ".releaser" / "next-live") == "releases/r1"


def test_a_file_changed_after_the_check_is_read_again(local_env, open_fleet, tmp_path):
    root = staged_root(local_env, open_fleet)
    check_and_stamp(root)
    time.sleep(0.02)  # the change must come after the stamp by more than the file system's clock tick
    (root / "releases" / "r1" / "public" / "index.html").chmod(0o600)  # a change of the inode only, not of its bytes
    done = prepare(root, only(tmp_path / "bin", WITHOUT_SHA256SUM))
    assert done.returncode == 4 and "release r1 fails its checksums on this server" in done.stderr


def test_a_stamp_older_than_15_minutes_is_not_trusted(local_env, open_fleet, tmp_path):
    root = staged_root(local_env, open_fleet)
    check_and_stamp(root)
    stamp = root / ".releaser" / "verified-r1"
    old = time.time() - 16 * 60
    os.utime(stamp, (old, old))
    done = prepare(root, only(tmp_path / "bin", WITHOUT_SHA256SUM))
    assert done.returncode == 4 and "release r1 fails its checksums on this server" in done.stderr
    assert not stamp.exists()  # a check that failed leaves no stamp behind


def test_a_tampered_file_fails_prepare_even_with_a_fresh_stamp(local_env, open_fleet):
    root = staged_root(local_env, open_fleet)
    check_and_stamp(root)
    time.sleep(0.02)
    (root / "releases" / "r1" / "public" / "index.html").write_text("<html>tampered</html>")
    done = prepare(root)
    assert done.returncode == 4 and "release r1 fails its checksums on this server" in done.stderr


def test_a_go_live_prepare_trusts_both_stamps_and_names_the_release_that_changed(local_env, open_fleet, tmp_path):
    """Live and backup are judged by one find; a change in either one has that release read again."""
    with open_fleet(local_env) as fleet:
        fleet.stage(read_bundle(EXAMPLES / "r1"))
        fleet.go_live()
        fleet.stage(read_bundle(EXAMPLES / "r2"))
    root = Path(str(local_env.app_root(local_env.servers[0])))
    changes = (LinkChange("backup", None, "r1"), LinkChange("live", "r1", "r2"))
    argv = remote.prepare_argv(PurePosixPath(root), changes)
    assert subprocess.run(argv, capture_output=True, timeout=30).returncode == 0  # both read, both stamped
    env = {**os.environ, "PATH": str(only(tmp_path / "bin", WITHOUT_SHA256SUM))}
    trusted = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)
    assert trusted.returncode == 0, trusted.stderr
    time.sleep(0.02)
    (root / "releases" / "r1" / "public" / "index.html").chmod(0o600)
    refused = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)
    assert refused.returncode == 4 and "release r1 fails its checksums on this server" in refused.stderr
