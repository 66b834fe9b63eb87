"""The facts script on a real app root: few processes (the slots by `cd -P`, the clock from two files' times,
the release's size recorded once), and what it reports is what the older script with `date`, `find` and `du`
reported."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from conftest import EXAMPLES
from releaser.bundle import read_bundle
from releaser.facts import facts_argv, parse_facts

# What the script may start once the release's size is recorded: nothing else is on its PATH. `find` and `awk`
# look for a file the sums do not list, once per release verified (QA: sha256sum -c reads only the listed ones).
ALLOWED = ("sh", "stat", "sha256sum", "find", "awk", "mv", "tar", "base64", "rm")


def prepared_root(local_env, open_fleet) -> Path:
    """r1 live, r2 staged and rehearsed on the first sandbox server; its app root."""
    with open_fleet(local_env) as fleet:
        fleet.stage(read_bundle(EXAMPLES / "r1"))
        fleet.go_live()
        fleet.stage(read_bundle(EXAMPLES / "r2"))
        fleet.rehearse()
    return Path(str(local_env.app_root(local_env.servers[0])))


def only_these_tools(directory: Path, names) -> dict[str, str]:
    """An environment whose PATH holds only `names` (links to the real programs)."""
    directory.mkdir()
    for name in names:
        (directory / name).symlink_to(shutil.which(name))
    return {**os.environ, "PATH": str(directory)}


def run_facts(root: Path, env: dict[str, str] | None = None) -> tuple[str, float, float]:
    argv = facts_argv(root, None, verify=("staged", "live"), config=("staging/config/app.toml",), rehearsal=True)
    before = time.time()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)
    after = time.time()
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done.stdout, before, after


def test_the_facts_script_needs_only_stat_sha256sum_find_awk_mv_tar_base64_and_rm(local_env, open_fleet, tmp_path):
    """With no `date`, `du`, `cat` or `readlink` to run, every fact is still there (it used to run 12)."""
    root = prepared_root(local_env, open_fleet)
    text, before, after = run_facts(root, only_these_tools(tmp_path / "bin", ALLOWED))
    facts = parse_facts(text, ("staging/config/app.toml",))
    assert dict(facts.slots) == {"live": "r1", "staging": "r2"}
    assert facts.release == "r2" and facts.on_disk and facts.release_kib and facts.free_kib
    assert facts.staged.outcome == "intact" and facts.staged.files == 4
    assert facts.live.release == "r1" and facts.live.outcome == "intact" and facts.live.files == 4
    assert [event["action"] for event in facts.rehearsals] == ["rehearse"]
    assert facts.config[0] and "site_name" in facts.config[0]
    assert (root / ".releaser" / "verified-r2").is_file() and (root / ".releaser" / "verified-r1").is_file()
    left = sorted(p.name for p in (root / ".releaser").iterdir() if p.name.startswith(("clock", "verifying")))
    assert left == []  # nothing of the run stays behind: its clock files, the directory its stamps were made in
    # the server's clock, from the times of the files the script wrote at its start and its end (the kernel
    # stamps them from a clock that may lag by a tick, hence the 20 ms)
    assert facts.clock is not None and before - 0.02 <= facts.clock <= after
    assert 0 <= facts.clock_spent <= after - before + 0.02


def test_the_slots_and_the_size_are_those_find_and_du_give(local_env, open_fleet):
    """The shell's `cd -P` names the same targets as `find -printf %l`, and the recorded size is `du -sk`'s."""
    root = prepared_root(local_env, open_fleet)
    facts = parse_facts(run_facts(root)[0])
    for slot, release in facts.slots.items():
        assert os.readlink(root / slot) == f"releases/{release}"
    measured = subprocess.run(["du", "-sk", str(root / "releases" / "r2")], capture_output=True, text=True, check=True)
    assert facts.release_kib == int(measured.stdout.split()[0])


def test_a_release_without_a_recorded_size_is_measured_once_and_recorded(local_env, open_fleet):
    """A release unpacked before sizes were recorded is measured with `du` the first time, then read back."""
    root = prepared_root(local_env, open_fleet)
    record = root / ".releaser" / "size-r2"
    recorded = int(record.read_text())
    record.unlink()
    assert parse_facts(run_facts(root)[0]).release_kib == recorded
    assert int(record.read_text().split()[0]) == recorded
    record.write_text("7\n")  # read back as recorded, not measured again
    assert parse_facts(run_facts(root)[0]).release_kib == 7


def test_a_run_cut_off_before_its_end_leaves_nothing_past_the_next_run(local_env, open_fleet):
    """A connection reset mid-check leaves that run's stamps directory: the next run removes it once its process is
    gone (a run still going keeps its own)."""
    root = prepared_root(local_env, open_fleet)
    still_running = subprocess.Popen(["sleep", "30"])
    try:
        gone = root / ".releaser" / "verifying-999999"  # no such process
        alive = root / ".releaser" / f"verifying-{still_running.pid}"
        for directory in (gone, alive):
            directory.mkdir()
            (directory / "verified-r2").write_text("")
        run_facts(root)
        assert not gone.exists() and alive.is_dir()
    finally:
        still_running.kill()
        still_running.wait()


def test_a_dangling_slot_still_names_its_target(local_env, open_fleet):
    """A slot pointing at a release no longer on disk is reported with its target (read with `readlink`)."""
    root = prepared_root(local_env, open_fleet)
    (root / "backup").unlink(missing_ok=True)
    (root / "backup").symlink_to("releases/r0")
    facts = parse_facts(run_facts(root)[0])
    assert facts.slots["backup"] == "r0" and facts.slots["live"] == "r1"


def test_on_a_file_system_that_is_not_local_the_clock_is_dates(local_env, open_fleet, tmp_path):
    """On NFS a file's times are the file server's, not this server's: there the clock comes from `date`."""
    root = prepared_root(local_env, open_fleet)
    env = only_these_tools(tmp_path / "bin", (*ALLOWED, "date"))
    (tmp_path / "bin" / "stat").unlink()
    (tmp_path / "bin" / "stat").write_text(  # `stat -f` as on an NFS mount: the same numbers, type "nfs"
        f'#!{shutil.which("sh")}\nout=$({shutil.which("stat")} "$@") || exit $?\nprintf "%s nfs\\n" "${{out%% *}}"\n')
    (tmp_path / "bin" / "stat").chmod(0o755)
    for name in ("clock-start", "clock-end"):
        (root / ".releaser" / name).unlink(missing_ok=True)
    text, before, after = run_facts(root, env)
    facts = parse_facts(text)
    assert "\nclock " in text and "clock-files" not in text
    assert not (root / ".releaser" / "clock-start").exists()
    assert facts.clock is not None and before <= facts.clock <= after and facts.free_kib


def test_on_a_full_disk_the_facts_take_the_clock_from_date_and_leave_no_clock_file(tmp_path):
    """A tmpfs filled to the last byte: the clock file is created but its bytes refused; nothing of it stays."""
    root = tmp_path / "full"
    root.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(root)], capture_output=True, text=True)
    if mounted.returncode != 0:
        import pytest

        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        (root / ".releaser").mkdir()
        subprocess.run(["dd", "if=/dev/zero", f"of={root / 'ballast'}", "bs=4k"], capture_output=True)  # until ENOSPC
        before = time.time()
        done = subprocess.run(facts_argv(root, None, verify=(), config=(), rehearsal=False), capture_output=True,
                              text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        facts = parse_facts(done.stdout, ())
        assert facts.clock is not None and before - 1 <= facts.clock <= time.time() + 1
        assert sorted(p.name for p in (root / ".releaser").iterdir()) == []
    finally:
        subprocess.run(["umount", "-l", str(root)], check=True)


def read_again(root: Path) -> tuple[object, object]:
    """The staged and the live release's verification of one more facts run."""
    facts = parse_facts(run_facts(root)[0], ("staging/config/app.toml",))
    return facts.staged, facts.live


def test_a_release_read_lately_and_unchanged_since_is_not_read_again_and_says_when_it_was(local_env, open_fleet):
    """Two checks in a row: the second reuses the first's reading (its stamp, no inode changed after it) and says so."""
    root = prepared_root(local_env, open_fleet)
    (root / ".releaser" / "verified-r2").unlink()  # staging stamped it: no reading to reuse
    first, _ = read_again(root)
    stamp = (root / ".releaser" / "verified-r2").stat().st_mtime
    second, live = read_again(root)
    assert first.outcome == "intact" and first.read_at is None
    assert second.outcome == "intact" and second.files == 4 and abs(second.read_at - stamp) < 1e-3
    assert second.read_note().startswith("checked at ") and live.outcome == "intact" and live.read_at is not None


def test_a_byte_changed_after_a_check_is_read_again_and_fails_even_with_its_times_put_back(local_env, open_fleet):
    """Writing a file changes its inode's change time, which utime cannot set back: the next check reads it."""
    root = prepared_root(local_env, open_fleet)
    read_again(root)
    page = root / "releases" / "r2" / "public" / "index.html"
    before = page.stat()
    data = bytearray(page.read_bytes())
    data[0] ^= 1
    page.write_bytes(bytes(data))
    os.utime(page, ns=(before.st_atime_ns, before.st_mtime_ns))
    staged, _ = read_again(root)
    assert staged.outcome == "corrupt" and "public/index.html" in staged.detail and staged.read_at is None


def test_a_file_added_or_removed_after_a_check_is_seen_by_the_next(local_env, open_fleet):
    """A new file is named as unlisted; a removed one changes its directory, so the files are read (and fail)."""
    root = prepared_root(local_env, open_fleet)
    read_again(root)
    (root / "releases" / "r2" / "public" / "extra.html").write_text("x")
    staged, _ = read_again(root)
    assert staged.outcome == "corrupt" and "public/extra.html" in staged.detail
    (root / "releases" / "r2" / "public" / "extra.html").unlink()
    assert read_again(root)[0].outcome == "intact"
    (root / "releases" / "r1" / "public" / "index.html").unlink()
    _, live = read_again(root)
    assert live.outcome == "corrupt" and live.read_at is None


def test_a_stamp_older_than_fifteen_minutes_or_dated_ahead_is_not_trusted(local_env, open_fleet):
    """The reading is reused for 15 minutes at most, and never from a stamp the server's clock has not reached."""
    root = prepared_root(local_env, open_fleet)
    read_again(root)
    stamp = root / ".releaser" / "verified-r2"
    old = time.time() - 16 * 60
    os.utime(stamp, (old, old))
    assert read_again(root)[0].read_at is None  # read again, and stamped anew
    assert read_again(root)[0].read_at is not None
    ahead = time.time() + 3600
    os.utime(stamp, (ahead, ahead))
    assert read_again(root)[0].read_at is None
