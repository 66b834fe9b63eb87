"""Uploads streamed through the OpenSSH client into the server's unpack (releaser.openssh, remote.receive_argv).

Real sshd servers, a real `ssh`: the archive goes to the server's tar and hasher as it arrives, and only an
upload whose sha256 matches is renamed into releases/. Whatever refuses or stops it leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path, PurePosixPath

import pytest

from conftest import EXAMPLES, PROJECT, read_slots
from releaser import remote
from releaser.bundle import build_bundle, read_bundle, sha256_file
from releaser.config import load_environment
from releaser.errors import Cancelled, HostKeyChanged, HostUnreachable
from releaser.fleet import make_hosts
from releaser.shipping import prepare_upload
from releaser.transport import SshHost

pytestmark = pytest.mark.ssh


def debris(root: Path) -> list[str]:
    """What uploads left in the app root's .releaser/ (part-written files, unpack directories)."""
    meta = root / ".releaser"
    return sorted(p.name for p in meta.iterdir() if p.name.startswith(("upload-", "unpack-"))) if meta.is_dir() else []


def intact(release: Path) -> bool:
    return subprocess.run(["sha256sum", "--check", "--quiet", "--strict", ".releaser-sha256sums"], cwd=release,
                          capture_output=True).returncode == 0


@pytest.fixture
def big_bundle(tmp_path):
    """r2 with 8 MB of random bytes, as a built .tar.gz: long enough to stop or stall mid-way."""
    source = tmp_path / "big-r2"
    shutil.copytree(EXAMPLES / "r2", source)
    (source / "manifest.json").unlink()
    (source / "public" / "data" / "ballast.bin").write_bytes(os.urandom(8 << 20))
    return build_bundle(source, "r2", tmp_path / "r2.tar.gz")


def receiving(host: SshHost, root: PurePosixPath, bundle, tmp_path, *, sha256: str | None = None, tag: str = "abc123"):
    """Put the sums file where receive_argv wants it, and return (upload, argv) for host.stream."""
    upload = prepare_upload(bundle, tmp_path)
    sums = root / ".releaser" / f"upload-r2-{tag}.sha256sums"
    host.run(["mkdir", "-p", str(root / ".releaser"), str(root / "releases")])
    host.put(upload.sums, sums)
    return upload, remote.receive_argv(root, "r2", tag, sha256 or upload.archive_sha256, sums, upload.sums_sha256)


def test_staging_streams_through_openssh_and_unpacks_the_release(sshd_farm, ssh_env, open_fleet, big_bundle):
    hosts = make_hosts(ssh_env)
    assert all(h.ssh_client and h.stream_argv(["true"]) for h in hosts.values())
    bars = []
    with open_fleet(ssh_env, hosts=hosts, progress=lambda server, message: bars.append((server, message))) as fleet:
        result = fleet.stage(big_bundle)
    assert {r.detail for r in result.results} == {"streamed over OpenSSH, sha256 checked on the server, unpacked"}
    size = big_bundle.path.stat().st_size
    assert {server for server, m in bars if getattr(m, "done", None) == size} == {"web-1", "web-2", "web-3"}
    for server in sshd_farm.servers:
        release = server.root / "releases" / "r2"
        assert intact(release) and (release / "public" / "data" / "ballast.bin").stat().st_size == 8 << 20
        marker = json.loads((release / "public" / ".releaser" / "release.json").read_text())
        assert marker["release_id"] == "r2" and marker["sums_sha256"] == sha256_file(release / ".releaser-sha256sums")
        assert int((server.root / ".releaser" / "size-r2").read_text()) > 8000  # KB, measured once at unpack
        assert debris(server.root) == []
    assert {s.staging for s in read_slots(ssh_env).values()} == {"r2"}


def test_a_byte_flipped_on_the_way_is_refused_and_nothing_is_left(sshd_farm, ssh_env, big_bundle, tmp_path):
    host, root = make_hosts(ssh_env)["web-2"], sshd_farm.server("web-2").root
    upload, argv = receiving(host, PurePosixPath(root), big_bundle, tmp_path)
    flipped = bytearray(upload.archive.read_bytes())
    flipped[len(flipped) // 2] ^= 0x01  # one bit, in the middle of the archive
    (tmp_path / "flipped.tar.gz").write_bytes(bytes(flipped))
    try:
        done = host.stream(tmp_path / "flipped.tar.gz", argv, timeout=30)
    finally:
        host.close()
    assert (done.exit_code, done.reason()) == (4, "upload of r2 arrived corrupt (sha256 differs)")
    assert debris(root) == [] and not (root / "releases" / "r2").exists()


def test_an_archive_with_another_sha256_than_promised_is_refused_and_nothing_is_left(sshd_farm, ssh_env, big_bundle, tmp_path):
    host, root = make_hosts(ssh_env)["web-1"], sshd_farm.server("web-1").root
    _, argv = receiving(host, PurePosixPath(root), big_bundle, tmp_path, sha256="0" * 64)
    try:
        done = host.stream(big_bundle.path, argv, timeout=30)
    finally:
        host.close()
    assert (done.exit_code, done.reason()) == (4, "upload of r2 arrived corrupt (sha256 differs)")
    assert debris(root) == [] and not (root / "releases").joinpath("r2").exists()


def test_stop_mid_stream_raises_cancelled_once_the_server_has_removed_everything(sshd_farm, ssh_env, big_bundle, tmp_path):
    """stop() ends the stream early; stream() returns only after the server saw the short input and cleaned up."""
    host, root = make_hosts(ssh_env)["web-3"], sshd_farm.server("web-3").root
    _, argv = receiving(host, PurePosixPath(root), big_bundle, tmp_path)
    seen = []
    try:
        with pytest.raises(Cancelled, match=r"upload to .* stopped after \d+ of \d+ bytes"):
            host.stream(big_bundle.path, argv, timeout=30, stop=lambda: len(seen) >= 2, sent=lambda done, total: seen.append(done))
    finally:
        host.close()
    assert 0 < seen[-1] < big_bundle.path.stat().st_size
    assert debris(root) == [] and not (root / "releases" / "r2").exists()  # at once: nothing still running there


def test_an_upload_the_server_stops_reading_ends_at_the_stall_deadline(sshd_farm, ssh_env, big_bundle):
    host = make_hosts(ssh_env)["web-1"]
    host.upload_stall = 1.0
    started = time.monotonic()
    try:
        with pytest.raises(HostUnreachable, match=r"upload to .* stalled: no byte moved for 1 s"):
            host.stream(big_bundle.path, ["sleep", "60"], timeout=30)
    finally:
        host.close()
    assert time.monotonic() - started < 15


def test_stop_is_seen_while_the_server_takes_no_bytes(sshd_farm, ssh_env, big_bundle):
    """Ctrl-C does not wait for the stall deadline: stop() is looked at while ssh's pipe is full."""
    host = make_hosts(ssh_env)["web-2"]
    host.upload_stall = 60.0
    asked = time.monotonic() + 1.0
    try:
        with pytest.raises(Cancelled):
            host.stream(big_bundle.path, ["sh", "-c", "sleep 3; cat > /dev/null"], timeout=30,
                        stop=lambda: time.monotonic() > asked)
    finally:
        host.close()
    assert time.monotonic() - asked < 10  # the server's sleep, then its end: not the 60 s stall deadline


def test_without_an_ssh_client_the_upload_goes_over_sftp(sshd_farm, ssh_env, open_fleet, big_bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no-ssh-here"))
    hosts = make_hosts(ssh_env)
    monkeypatch.undo()
    assert {h.ssh_client for h in hosts.values()} == {None}
    with open_fleet(ssh_env, hosts=hosts) as fleet:
        result = fleet.stage(big_bundle)
    assert {r.detail for r in result.results} == {"uploaded, verified, unpacked"}
    assert all(intact(s.root / "releases" / "r2") and debris(s.root) == [] for s in sshd_farm.servers)


def test_an_app_root_and_known_hosts_path_full_of_shell_and_ssh_syntax_arrive_as_they_are(sshd_farm, open_fleet, tmp_path):
    """The root reaches the server only through shlex.quote; the known_hosts path (a space, a %) through ssh's own quoting."""
    hostile = "app 'root' \"q\" $(touch PWNED) `touch PWNED2`; x & %d"
    known = tmp_path / "known hosts 100%d"
    shutil.copy(sshd_farm.known_hosts, known)
    servers = "".join(
        f'[[servers]]\nname = "{s.name}"\nhost = "{s.host}"\nport = {s.port}\nroot = {json.dumps(str(s.root / hostile))}\n'
        f'live_url = "http://127.0.0.1:1"\nstaging_url = "http://127.0.0.1:2"\n\n' for s in sshd_farm.servers)
    env_file = tmp_path / "hostile.toml"
    env_file.write_text(f'transport = "ssh"\nkeep_releases = 2\n\n{servers}[ssh]\nuser = "{sshd_farm.user}"\n'
                        f'key_file = "{sshd_farm.key_file}"\nknown_hosts = {json.dumps(str(known))}\n')
    env = load_environment(str(env_file), PROJECT)
    hosts = make_hosts(env)
    assert all(h.stream_argv(["true"]) for h in hosts.values())
    with open_fleet(env, hosts=hosts) as fleet:
        result = fleet.stage(read_bundle(EXAMPLES / "r1"))
    assert {r.detail for r in result.results} == {"streamed over OpenSSH, sha256 checked on the server, unpacked"}
    for server in sshd_farm.servers:
        assert intact(server.root / hostile / "releases" / "r1")
        assert not list(server.root.rglob("PWNED*")) and not list(Path.home().glob("PWNED*"))


def test_a_changed_host_key_refuses_the_stream_with_the_same_error_as_the_connection(sshd_farm, ssh_env, tmp_path):
    """web-1 listed with web-2's key: ssh refuses like paramiko does (HostKeyChanged, same fingerprint), nothing sent."""
    lines = sshd_farm.known_hosts.read_text().splitlines()
    one, two = (f"[{s.host}]:{s.port} " for s in sshd_farm.servers[:2])
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text("".join(one + line.removeprefix(two) + "\n" for line in lines if line.startswith(two)))
    s = sshd_farm.servers[0]
    host = SshHost("web-1", s.host, port=s.port, user=sshd_farm.user, key_file=str(sshd_farm.key_file),
                   known_hosts=str(wrong), ssh_client=shutil.which("ssh"))
    (tmp_path / "payload").write_bytes(b"x" * 1000)
    with pytest.raises(HostKeyChanged) as streamed:
        host.stream(tmp_path / "payload", ["sh", "-c", "cat > \"$1\"", "x", str(s.root / "written")], timeout=10)
    with pytest.raises(HostKeyChanged) as connected:
        host.open()
    fingerprint = lambda error: error.what.split("fingerprint ")[1].split(")")[0]  # noqa: E731
    assert fingerprint(streamed.value) == fingerprint(connected.value)
    assert streamed.value.hint == connected.value.hint and not (s.root / "written").exists()

    wrong.write_text("")  # not listed at all: refused too, with the connection's hint
    with pytest.raises(HostUnreachable, match="No ED25519 host key is known") as unknown:
        host.stream(tmp_path / "payload", ["true"], timeout=10)
    assert "ssh-keyscan" in unknown.value.hint


def path_without(tmp_path: Path, *missing: str) -> Path:
    """A directory of links to every tool in /usr/bin and /bin but `missing`: a PATH for a server lacking them."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in ("/usr/bin", "/bin"):
        for tool in Path(folder).iterdir():
            if not tool.name.startswith(missing) and not (bin_dir / tool.name).exists():
                (bin_dir / tool.name).symlink_to(tool)
    return bin_dir


@pytest.mark.parametrize("missing", ["openssl", "python3"])
def test_the_receive_script_works_without_openssl_or_python3(big_bundle, tmp_path, missing):
    """Run locally with a PATH lacking openssl (the coreutils hasher) or python3 (gzip inflates): the same outcome."""
    bin_dir = path_without(tmp_path, missing)
    root = tmp_path / "root"
    (root / ".releaser").mkdir(parents=True)
    upload = prepare_upload(big_bundle, tmp_path)
    sums = root / ".releaser" / "upload-r2-1.sha256sums"
    shutil.copy(upload.sums, sums)
    argv = remote.receive_argv(PurePosixPath(root), "r2", "1", upload.archive_sha256, PurePosixPath(sums), upload.sums_sha256)
    with open(upload.archive, "rb") as stdin:
        done = subprocess.run(argv, stdin=stdin, capture_output=True, text=True, env={"PATH": str(bin_dir)})
    assert done.returncode == 0, done.stderr
    assert intact(root / "releases" / "r2") and debris(root) == []


def test_a_streamed_release_is_stamped_verified_so_the_stages_prepare_reads_nothing_again(sshd_farm, ssh_env, big_bundle,
                                                                                        tmp_path):
    """The receive script stamps the release after its rename: prepare, without sha256sum on its PATH, trusts it."""
    from releaser.slots import LinkChange

    host, root = make_hosts(ssh_env)["web-1"], sshd_farm.server("web-1").root
    _, argv = receiving(host, PurePosixPath(root), big_bundle, tmp_path)
    try:
        assert host.stream(big_bundle.path, argv, timeout=30).ok
    finally:
        host.close()
    assert (root / ".releaser" / "verified-r2").is_file()
    tools = tmp_path / "tools"
    tools.mkdir()
    for name in ("sh", "find", "ln", "mv", "mkdir", "rm", "cat", "cut"):  # no sha256sum: reading the files would fail
        (tools / name).symlink_to(shutil.which(name))
    prepare = remote.prepare_argv(PurePosixPath(root), (LinkChange("staging", None, "r2"),))
    done = subprocess.run(prepare, capture_output=True, text=True, env={"PATH": str(tools)}, timeout=30)
    assert done.returncode == 0, done.stderr
    assert os.readlink(root / ".releaser" / "next-staging") == "releases/r2"


@pytest.mark.parametrize("missing", ["nothing", "python3"])
def test_inflate_gives_every_member_and_fails_on_a_cut_or_foreign_stream(tmp_path, missing):
    """The receive script's inflater, python3's zlib or gzip, against what `gzip -dc` would give."""
    import gzip

    env = {"PATH": str(path_without(tmp_path, missing)) if missing != "nothing" else os.environ["PATH"]}
    payload = b"\0" * (64 << 20) + os.urandom(1 << 20) + b"figures" * 100_000  # 64 MB of zeros: a big expansion
    whole = gzip.compress(payload, 6) + gzip.compress(b"second member")

    def inflate(data: bytes) -> subprocess.CompletedProcess:
        return subprocess.run(["sh", "-c", remote.INFLATE + "inflate"], input=data, capture_output=True, env=env, timeout=60)

    done = inflate(whole)
    assert done.returncode == 0 and done.stdout == payload + b"second member"
    assert inflate(whole[: len(whole) // 2]).returncode != 0  # cut short: tar would be told its input ended early
    assert inflate(b"not gzip at all").returncode != 0
