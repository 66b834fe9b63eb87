"""The lock on a full disk: taken only when info.json was written whole, else no lock is left and the fleet says why.

On tmpfs a directory needs no data block, so `mkdir .releaser/lock` succeeds on a full disk while writing
info.json fails. A lock left with an empty info.json is held by "an unknown owner" forever: it never expires
and no token frees it. These tests fill real tmpfs mounts (size, then inodes), so they need root.
"""

import errno
import os
import subprocess
from pathlib import Path, PurePosixPath

import pytest

from releaser import remote
from releaser.errors import HostUnreachable
from releaser.transport import LocalHost

HOLDER = '{"owner": "ana@build-01", "reason": "deploy", "since": "2026-11-30T09:00:00+00:00", "token": "t-ana"}'
C_LOCALE = {"LC_ALL": "C"}  # mkdir's own reason ("No space left on device") in English


@pytest.fixture
def tmpfs():
    """Mount a small tmpfs on a directory, with the given mount options; unmounted at teardown."""
    mounted = []

    def mount(where: Path, options: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a full tmpfs needs root")
        where.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (a container without CAP_SYS_ADMIN?): {done.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill_space(root: Path) -> None:
    """Write one file until the file system says ENOSPC."""
    with open(root / "filler", "wb", buffering=0) as out:
        chunk = b"\0" * 4096
        try:
            while True:
                out.write(chunk)
        except OSError as error:
            assert error.errno == errno.ENOSPC, error


def fill_inodes(root: Path, *, leave: int = 0) -> None:
    """Create empty files until no inode is left, then remove `leave` of them again."""
    made = []
    try:
        for i in range(100_000):
            (root / f"inode-{i}").touch()
            made.append(root / f"inode-{i}")
    except OSError as error:
        assert error.errno == errno.ENOSPC, error
    else:
        pytest.fail("the tmpfs never ran out of inodes")
    for path in made[:leave]:
        path.unlink()


def take(root: Path, **kwargs):
    return LocalHost("web-1").run(remote.lock_argv(PurePosixPath(root), HOLDER, **kwargs), env=C_LOCALE)


def assert_refused_with_no_lock_left(done, root: Path, says: str) -> None:
    assert not done.ok and "taken" not in done.stdout.split() and not done.stdout.startswith("held")
    assert says in done.reason() and str(root) in done.reason(), done
    assert not (root / ".releaser" / "lock").exists()


def test_the_lock_is_taken_and_written_whole_on_a_disk_with_room(tmp_path):
    done = take(tmp_path)
    assert done.ok and done.stdout.splitlines()[0] == "taken", done
    assert (tmp_path / ".releaser" / "lock" / "info.json").read_text() == HOLDER + "\n"
    assert f"lock {HOLDER}" in done.stdout.splitlines()


def test_a_second_taker_still_reads_the_holder(tmp_path):
    assert take(tmp_path).stdout.splitlines()[0] == "taken"
    again = take(tmp_path)
    assert again.ok and again.stdout.splitlines()[0] == f"held {HOLDER}", again


@pytest.mark.parametrize("prepare_for", [None, "go-live"])
def test_a_full_disk_leaves_no_lock_and_says_the_disk_is_full(tmp_path, tmpfs, prepare_for):
    """mkdir succeeds on the full tmpfs, printf fails: the directory goes again and the script fails."""
    root = tmpfs(tmp_path / "app", "size=64k")
    (root / ".releaser").mkdir()
    fill_space(root)
    done = take(root, prepare_for=prepare_for)
    assert_refused_with_no_lock_left(done, root, "is its disk full?")
    assert sorted(p.name for p in (root / ".releaser").iterdir()) == []


def test_the_lock_can_be_taken_once_space_is_freed(tmp_path, tmpfs):
    root = tmpfs(tmp_path / "app", "size=64k")
    (root / ".releaser").mkdir()
    fill_space(root)
    assert not take(root).ok
    (root / "filler").unlink()
    done = take(root)
    assert done.ok and done.stdout.splitlines()[0] == "taken", done
    assert (root / ".releaser" / "lock" / "info.json").read_text() == HOLDER + "\n"


def test_no_inode_left_for_info_json_leaves_no_lock(tmp_path, tmpfs):
    """One inode left: mkdir takes it, info.json cannot be created; the directory goes again."""
    root = tmpfs(tmp_path / "app", "size=1m,nr_inodes=16")
    (root / ".releaser").mkdir()
    fill_inodes(root, leave=1)
    done = take(root)
    assert_refused_with_no_lock_left(done, root, "is its disk full?")


def test_no_inode_left_for_the_lock_is_not_reported_as_a_lock_held(tmp_path, tmpfs):
    """mkdir itself fails and no lock is there: an error with mkdir's reason, not 'held' by an unknown owner."""
    root = tmpfs(tmp_path / "app", "size=1m,nr_inodes=16")
    (root / ".releaser").mkdir()
    fill_inodes(root)
    done = take(root)
    assert_refused_with_no_lock_left(done, root, "No space left on device")
    assert done.reason() == f"cannot create the lock on {root}: No space left on device"


def test_the_fleet_names_the_full_server_and_frees_the_others(local_env, open_fleet, tmpfs):
    """What the user sees: one error naming web-2 and its full disk; no server keeps a lock."""
    web2 = tmpfs(Path(str(local_env.app_root(local_env.servers[1]))), "size=64k")
    (web2 / ".releaser").mkdir()
    fill_space(web2)
    with open_fleet(local_env) as fleet:
        with pytest.raises(HostUnreachable) as caught:
            fleet.take_lock("hotfix", token="t-mine", kind="manual", minutes=60)
        with pytest.raises(HostUnreachable, match="web-2: cannot take the lock: cannot write the lock on"):
            with fleet.locked("go-live", prepare_for="go-live"):
                pytest.fail("the block must not run without the lock on every server")
    assert str(caught.value) == (f"web-2: cannot take the lock: cannot write the lock on {web2}: is its disk full?; "
                                 "nothing was changed; check the server, then run the command again")
    locked = [s.name for s in local_env.servers if (Path(str(local_env.app_root(s))) / ".releaser" / "lock").exists()]
    assert locked == []
