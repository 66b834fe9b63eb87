"""Staging sends a built .tar.gz as it is (no repack), with its sums file beside it, and reports bytes as it goes."""

import os
import tarfile
import tracemalloc
from pathlib import Path

from conftest import EXAMPLES, read_slots
from releaser.bundle import MANIFEST, SUMS, build_bundle, read_bundle, sha256_file
from releaser.shipping import Transfer
from releaser.transport import LocalHost, make_hosts


class Recording(LocalHost):
    """A sandbox server that notes every file it was sent and every byte count it reported."""

    def __init__(self, name: str) -> None:
        super().__init__(name, step_timeout=20)
        self.sent: list[tuple[Path, bytes]] = []
        self.counts: list[tuple[int, int]] = []

    def put(self, local, remote, *, stop=None, sent=None):
        self.sent.append((Path(local), Path(local).read_bytes()))
        super().put(local, remote, stop=stop, sent=lambda done, total: (self.counts.append((done, total)),
                                                                          sent and sent(done, total)))


def test_a_built_archive_is_uploaded_byte_for_byte_and_staged_everywhere(local_env, open_fleet, tmp_path):
    built = build_bundle(EXAMPLES / "r1", "r1", tmp_path / "r1.tar.gz")
    assert built.archive_sha256 == sha256_file(built.path)  # taken while read_bundle read it, no second pass
    hosts = {name: Recording(name) for name in make_hosts(local_env)}
    messages = []
    with open_fleet(local_env, hosts=hosts, progress=lambda server, message: messages.append((server, message))) as fleet:
        fleet.stage(built)
    for host in hosts.values():
        (archive, data), (sums, text) = host.sent
        assert archive == built.path and data == built.path.read_bytes()  # the bundle itself, never a repacked copy
        assert text.decode() == "".join(f"{d}  {n}\n" for n, d in sorted(built.manifest.files.items()))
        assert host.counts[0] == (built.path.stat().st_size,) * 2
    bars = [m for _, m in messages if isinstance(m, Transfer)]
    assert {server for server, m in messages if isinstance(m, Transfer)} == set(hosts)
    assert all(m.total == built.path.stat().st_size and str(m).startswith("uploading r1: ") for m in bars)
    assert {s.staging for s in read_slots(local_env).values()} == {"r1"}


def test_a_wrong_sums_file_inside_the_archive_is_replaced_by_the_manifests(local_env, open_fleet, tmp_path):
    """An archive carrying its own, wrong .releaser-sha256sums still stages, checked against the manifest's sums."""
    source = tmp_path / "r1.tar.gz"
    with tarfile.open(source, "w:gz") as archive:
        archive.add(EXAMPLES / "r1" / MANIFEST, arcname=MANIFEST)
        for name in read_bundle(EXAMPLES / "r1").manifest.files:
            archive.add(EXAMPLES / "r1" / name, arcname=name)
        wrong = tmp_path / "sums"
        wrong.write_text("0" * 64 + "  index.html\n")
        archive.add(wrong, arcname=SUMS)
    with open_fleet(local_env) as fleet:
        fleet.stage(read_bundle(source))
    for server in local_env.servers:
        placed = Path(str(local_env.app_root(server))) / "releases" / "r1" / SUMS
        assert "0" * 64 not in placed.read_text()


def test_reading_a_large_archive_keeps_memory_flat(tmp_path):
    """read_bundle hashes members in blocks: reading a 24 MB file must not hold it whole (the old code did)."""
    source = tmp_path / "big"
    source.mkdir()
    with open(source / "data.bin", "wb") as handle:
        for _ in range(24):
            handle.write(os.urandom(1 << 20))  # random: gzip cannot shrink it, so no block inflates into a large buffer
    built = build_bundle(source, "big", tmp_path / "big.tar.gz")
    tracemalloc.start()
    again = read_bundle(built.path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert again.archive_sha256 == sha256_file(built.path)
    assert peak < 8 * 1024 * 1024, f"read_bundle peaked at {peak / 1e6:.1f} MB for a 24 MB member"


def test_time_left_follows_the_rate_so_far():
    transfer = Transfer("uploading r9", 100_000_000, 300_000_000, started=10.0)
    assert str(transfer) == "uploading r9: 100.0 MB of 300.0 MB"
    assert transfer.seconds_left(now=12.0) == 4.0  # 50 MB/s, 200 MB to go
    assert Transfer("uploading r9", 0, 300, started=10.0).seconds_left(now=12.0) is None
