"""Sending a release bundle to one server: the archive as it is, streamed, then checked and unpacked there.

A `.tar.gz` built by `invoke build` is uploaded as it is: never unpacked and packed again here. Its sha256
was taken while read_bundle read it (bundle.archive_to_upload), and the server checks the upload against it.
Over SSH with an `ssh` client the archive streams into the server's tar and hasher as it arrives (no copy
of it is stored there, nothing is read twice); otherwise it is put over SFTP, then hashed, unpacked and
every file checked against the sums file that travels beside it. A directory bundle is packed once into a
scratch directory for every server. The fleet runs `send` for every server at once; each reports its bytes
as a `Transfer` message, which ui.progress draws as a bar with the time left.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from releaser import remote
from releaser.bundle import Bundle, archive_to_upload, sha256sums_text
from releaser.errors import Cancelled, HostUnreachable
from releaser.transport import Host, SshHost


@dataclass(frozen=True)
class Upload:
    """A bundle ready to send: its archive and the sums file, each with its sha256, and the bytes its files hold."""

    release_id: str
    archive: Path
    archive_sha256: str
    sums: Path
    sums_sha256: str
    unpacked_bytes: int = 0  # what the server writes and hashes: far more than the archive when it compresses well

    def unpack_deadline(self, step: float) -> float:
        """The server's check-and-unpack deadline for this upload (see unpack_deadline)."""
        return unpack_deadline(step, max(self.archive.stat().st_size, self.unpacked_bytes))


class Transfer(str):
    """A progress message that is also a byte count: plain text for any progress callback, a bar for ui.progress."""

    done: int
    total: int
    started: float

    def __new__(cls, what: str, done: int, total: int, started: float) -> "Transfer":
        message = super().__new__(cls, f"{what}: {_mb(done)} of {_mb(total)}")
        message.done, message.total, message.started = done, total, started
        return message

    def seconds_left(self, now: float) -> float | None:
        """Seconds until the last byte at the rate so far, or None before any byte has moved."""
        elapsed = now - self.started
        if self.done <= 0 or elapsed <= 0:
            return None
        return (self.total - self.done) / (self.done / elapsed)


def prepare_upload(bundle: Bundle, workdir: Path) -> Upload:
    """The archive to send (the bundle's own .tar.gz, or the directory packed once) and its sums file, in workdir."""
    archive, archive_sha256 = archive_to_upload(bundle, workdir)
    text = sha256sums_text(bundle.manifest.files).encode()
    sums = workdir / f"{bundle.release_id}.sha256sums"
    sums.write_bytes(text)
    return Upload(bundle.release_id, archive, archive_sha256, sums, hashlib.sha256(text).hexdigest(), bundle.size)


UNPACK_FLOOR_BYTES_PER_S = 10_000_000  # the slowest a server is expected to hash, gunzip and check a release


def unpack_deadline(step: float, archive_bytes: int) -> float:
    """How long the server's check-and-unpack of an archive may take: a step, plus its bytes at the floor rate
    (the larger of the archive and its files: 600 MB of zeros in a 0.6 MB archive take as long as 600 MB).

    Unpacking hashes the archive, gunzips it and hashes every file again, so its time grows with the bundle:
    a 1 GB bundle on three servers sharing two cores took over a minute. A dead network is still noticed
    within `step` by the keepalives; this bounds only a server that answers but is slow.
    """
    return step + archive_bytes / UNPACK_FLOOR_BYTES_PER_S


def send(host: Host, root: PurePosixPath, upload: Upload, *, stop: Callable[[], bool],
         progress: Callable[[str], None], step: float = 20.0) -> tuple[bool, str]:
    """Put the release on the server, checked and unpacked in releases/ID; return (ok, detail).

    Over SSH with an OpenSSH client the archive streams into the server's unpack (_stream); otherwise it
    is put whole over SFTP, then checked and unpacked (_put_then_unpack). The sums file goes first, over
    the connection. Nothing part-written stays: HostUnreachable and Cancelled go on once it is removed.
    `step` is the environment's step deadline; the server's work after the last byte gets more in
    proportion to the archive's size (unpack_deadline).
    """
    made = host.run(["mkdir", "-p", str(root / ".releaser"), str(root / "releases")])
    if not made.ok:
        return False, made.reason()
    tag = uuid.uuid4().hex[:8]
    stem = root / ".releaser" / f"upload-{upload.release_id}-{tag}"
    sums = PurePosixPath(f"{stem}.sha256sums")
    receive = remote.receive_argv(root, upload.release_id, tag, upload.archive_sha256, sums, upload.sums_sha256)
    if isinstance(host, SshHost) and host.stream_argv(receive) is not None:
        work = root / ".releaser" / f"unpack-{upload.release_id}-{tag}"
        return _stream(host, upload, receive, sums, work, stop=stop, progress=progress, step=step)
    return _put_then_unpack(host, root, upload, PurePosixPath(f"{stem}.tar.gz"), sums, stop=stop, progress=progress, step=step)


def _stream(host: SshHost, upload: Upload, receive: list[str], sums: PurePosixPath, work: PurePosixPath, *,
            stop: Callable[[], bool], progress: Callable[[str], None], step: float) -> tuple[bool, str]:
    """Stream the archive through OpenSSH into remote.receive_argv: hashed and unpacked as it arrives, never stored.

    The server re-reads nothing: the sha256 of the bytes that came must equal the one read_bundle took
    while it checked every member against the manifest. Every file is checked on the server again before
    any slot points at the release (prepare), as for every release.
    """
    what, started = f"uploading {upload.release_id}", time.monotonic()

    def sent(done: int, total: int) -> None:
        progress(Transfer(what, done, total, started))
        if done == total:
            progress(f"verifying and unpacking {upload.release_id}")

    try:
        host.put(upload.sums, sums, stop=stop)
        done = host.stream(upload.archive, receive, stop=stop, sent=sent,
                           timeout=upload.unpack_deadline(step))
    except (HostUnreachable, Cancelled):
        _remove_quietly(host, sums, work)  # the server's script removes both itself, unless it was cut off too
        raise
    return (True, "streamed over OpenSSH, sha256 checked on the server, unpacked") if done.ok else (False, done.reason())


def _put_then_unpack(host: Host, root: PurePosixPath, upload: Upload, archive: PurePosixPath, sums: PurePosixPath, *,
                     stop: Callable[[], bool], progress: Callable[[str], None], step: float) -> tuple[bool, str]:
    """Upload the archive and sums file into root/.releaser (host.put), then have the server check and unpack them.

    The server hashes the archive, unpacks it aside and checks every file against the sums before renaming
    it into releases/. A Ctrl-C (stop) between the upload and the unpacking removes the upload.
    """
    what, started = f"uploading {upload.release_id}", time.monotonic()
    try:
        host.put(upload.archive, archive, stop=stop, sent=lambda done, total: progress(Transfer(what, done, total, started)))
        host.put(upload.sums, sums, stop=stop)
    except (HostUnreachable, Cancelled):
        _remove_quietly(host, archive, sums)  # a part-written archive must not keep the disk full
        raise
    if stop():  # Ctrl-C, or the stage failed on another server meanwhile: nothing to unpack for
        _remove_quietly(host, archive, sums)
        raise Cancelled(f"upload of {upload.release_id} stopped before it was unpacked")
    progress(f"verifying and unpacking {upload.release_id}")
    done = host.run(remote.unpack_argv(root, upload.release_id, archive, upload.archive_sha256, sums, upload.sums_sha256),
                    timeout=upload.unpack_deadline(step))
    return (True, "uploaded, verified, unpacked") if done.ok else (False, done.reason())


def _remove_quietly(host: Host, *paths: PurePosixPath) -> None:
    try:
        host.run(["rm", "-rf", "--", *map(str, paths)])
    except HostUnreachable:
        pass  # the server is gone; its leftover upload is cleaned in the next lock's round trip


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"
