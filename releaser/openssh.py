"""Bulk bytes through the OpenSSH client: a local file fed to a command on the server as its stdin.

paramiko's SFTP moves ~60 MB/s on one stream and every server's transport shares this process's GIL;
the `ssh` binary encrypts in a process of its own per server, at the speed scp does. SshHost.stream
runs `ssh` with the very settings of its paramiko connection (user, port, key, known_hosts, host key
policy, the environment's deadlines; no ssh_config read), and this module feeds it the file a chunk
at a time, so progress, Ctrl-C (`stop`) and the stall deadline work as they do for SFTP. The ssh
child runs in a session of its own: Ctrl-C reaches releaser, which closes the stream and waits for
the server to clean up, instead of killing ssh mid-way.

`ssh_argv` is pure; `stream` runs the child; `translate` turns ssh's own failures (exit 255) into
the same errors the paramiko connection raises.
"""

from __future__ import annotations

import math
import os
import re
import select
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from releaser.clock import seconds_text
from releaser.errors import Cancelled, HostKeyChanged, HostUnreachable

CHUNK = 1 << 20  # bytes handed to ssh per write: progress, stop() and the stall deadline are checked this often
STOP_POLL = 0.25  # seconds between looks at stop() while ssh takes no bytes
# AES-GCM first (servers have AES instructions: ~2x chacha20's speed here), then OpenSSH's own default list
CIPHERS = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr"


@dataclass(frozen=True)
class Reach:
    """How one server is reached: the fields of SshHost's paramiko connection, and the environment's deadlines."""

    host: str
    port: int
    user: str | None
    key_file: str | None
    known_hosts: str | None
    check_host_keys: bool
    connect_timeout: float
    keepalive: float
    step: float


def ssh_argv(client: str, reach: Reach, command: str) -> list[str] | None:
    """The argv running `command` (one shell string, already quoted) on the server, or None if ssh cannot say it.

    Mirrors SshHost._connect: no ssh_config (-F /dev/null), the key file alone when one is named (else
    the agent and default keys), host keys only from the environment's known_hosts (strict), or none
    at all and any key accepted when check_host_keys is off (paramiko's AutoAddPolicy). A known_hosts
    path with a double quote or a newline cannot be written as an ssh option: None, and SFTP is used.
    """
    if reach.check_host_keys:
        known = _option_path(os.path.expanduser(reach.known_hosts or "~/.ssh/known_hosts"))
        if known is None:
            return None
        keys = ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known}"]
    else:
        keys = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
    identity = (["-i", os.path.expanduser(reach.key_file).replace("%", "%%"), "-o", "IdentitiesOnly=yes",
                 "-o", "IdentityAgent=none"] if reach.key_file else [])
    alive = max(1, round(reach.keepalive))
    return [
        client, "-F", "/dev/null", "-T", "-x", "-a", "-p", str(reach.port), *(["-l", reach.user] if reach.user else []),
        "-o", "BatchMode=yes", *keys, "-o", "GlobalKnownHostsFile=/dev/null", "-o", "CheckHostIP=no",
        "-o", "UpdateHostKeys=no", "-o", "LogLevel=INFO", *identity,
        "-o", f"ConnectTimeout={max(1, math.ceil(reach.connect_timeout))}",
        "-o", f"ServerAliveInterval={alive}", "-o", f"ServerAliveCountMax={max(1, math.ceil(reach.step / alive))}",
        "-o", f"Ciphers={CIPHERS}", "--", reach.host, command,
    ]


def stream(argv: Sequence[str], local: Path, *, name: str, address: str, what: str, stall: float, finish: float,
           stop: Callable[[], bool] | None = None, sent: Callable[[int, int], None] | None = None):
    """Run argv (an ssh_argv) with `local`'s bytes as its stdin; return the command's Completed.

    The file goes a chunk at a time; after each, stop() and sent(bytes so far, size). Once stop() is
    true the stream is closed early, the server's command is left to see the short input and clean up,
    and Cancelled is raised when it has ended. No byte taken for `stall` seconds ends the upload
    (HostUnreachable), as does the command not ending within `finish` seconds after the last byte.
    """
    from releaser.transport import Completed

    size = local.stat().st_size
    with open(local, "rb") as source, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            child = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=out, stderr=err, start_new_session=True)
        except OSError as error:
            raise HostUnreachable(name, f"cannot run {argv[0]}: {error.strerror}") from error
        done, stopped, ended = 0, False, False
        try:
            done, stopped = _feed(child, source, size, stall=stall, stop=stop, sent=sent)
            child.stdin.close()
            child.wait(finish)
            ended = True
        except subprocess.TimeoutExpired as error:
            raise HostUnreachable(name, f"{what} on {address} did not end within {finish:.1f} s of its last byte",
                                  hint="see: invoke runbook server-failure", silent=True) from error
        except _Stalled as error:
            raise HostUnreachable(name, f"{what} to {address} stalled: no byte moved for {seconds_text(stall)} s "
                                  f"({error.done} of {size} sent)", hint="see: invoke runbook server-failure", silent=True) from None
        finally:
            if not ended:
                _end(child)
        out.seek(0), err.seek(0)
        completed = Completed(child.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"))
    if stopped:
        raise Cancelled(f"{what} to {address} stopped after {done} of {size} bytes")
    if child.returncode == 255:
        raise translate(name, address, what, completed.stderr)
    return completed


class _Stalled(Exception):
    def __init__(self, done: int) -> None:
        self.done = done


def _feed(child: subprocess.Popen, source, size: int, *, stall: float, stop, sent) -> tuple[int, bool]:
    """Write the file to the child's stdin; return (bytes written, whether stop() ended it early).

    A child that stops reading (it exited: the server refused, or the connection is gone) ends the
    feed quietly; its exit status says why.
    """
    pipe = child.stdin.fileno()
    os.set_blocking(pipe, False)
    _widen(pipe)
    send = _sendfile if hasattr(os, "sendfile") else _copy
    done, stalls_at = 0, time.monotonic() + stall
    while done < size:
        if stop is not None and stop():
            return done, True
        _, ready, _ = select.select([], [pipe], [], max(0.0, min(STOP_POLL, stalls_at - time.monotonic())))
        if not ready:
            if time.monotonic() >= stalls_at:
                raise _Stalled(done)
            continue  # a server slow to take bytes: look at stop() again meanwhile
        try:
            moved = send(pipe, source, done, min(CHUNK, size - done))
        except BlockingIOError:
            continue
        except BrokenPipeError:
            return done, False
        except OSError as error:
            if send is _sendfile and error.errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: no sendfile to a pipe
                send = _copy
                continue
            raise
        if moved == 0:  # the file shrank since read_bundle read it: the server's sha256 check refuses what came
            return done, False
        done, stalls_at = done + moved, time.monotonic() + stall
        if sent is not None:
            sent(done, size)
    return done, False


def _sendfile(pipe: int, source, offset: int, count: int) -> int:
    return os.sendfile(pipe, source.fileno(), offset, count)


def _copy(pipe: int, source, offset: int, count: int) -> int:
    data = os.pread(source.fileno(), count, offset)
    return os.write(pipe, data) if data else 0


def _widen(pipe: int) -> None:
    """Ask for a 1 MB pipe (Linux), so ssh finds a whole chunk waiting; the default 64 KB works too."""
    try:
        import fcntl

        fcntl.fcntl(pipe, fcntl.F_SETPIPE_SZ, CHUNK)
    except (ImportError, AttributeError, OSError):
        pass


def _end(child: subprocess.Popen, grace: float = 5.0) -> None:
    """Close the stream and give the server's command `grace` seconds to see it and clean up; then kill ssh."""
    try:
        child.stdin.close()
    except OSError:
        pass
    try:
        child.wait(grace)
    except BaseException:  # the grace ran out, or Ctrl-C was pressed again
        child.kill()
        child.wait()


_CHANGED = re.compile(r"REMOTE HOST IDENTIFICATION HAS CHANGED.*?fingerprint for the (\S+) key sent by the remote host is\s+(\S+?)\.?\s",
                      re.DOTALL)
_CLOSED = re.compile(r"closed by remote host|connection (was )?(reset|closed)|broken pipe", re.IGNORECASE)


def translate(name: str, address: str, what: str, stderr: str):
    """The error for an ssh that failed itself (exit 255), worded like the paramiko connection's."""
    changed = _CHANGED.search(stderr)
    if changed:
        return HostKeyChanged(
            name, f"ssh to {address} refused: the server's host key has changed since it was put in known_hosts "
            f"(it now offers a {changed.group(1)} key, fingerprint {changed.group(2)}); someone may be "
            f"intercepting the connection, or the server was rebuilt",
            hint="verify the new key with the server's administrators out of band, then replace its line in known_hosts "
                 "(ssh-keygen -R HOST, then ssh-keyscan); nothing was changed")
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    last = lines[-1].strip() if lines else "ssh exited 255 without a word"
    if "Host key verification failed" in stderr:
        return HostUnreachable(name, f"ssh to {address} failed: {lines[0].strip()}",
                               hint="its host key is not in known_hosts; verify it, then add it (ssh-keyscan -p PORT HOST)")
    if "Connection refused" in stderr:
        return HostUnreachable(name, f"ssh to {address} failed: connection refused: nothing listens on that port "
                               "(is sshd running there?)", hint="see: invoke runbook server-failure")
    if "Permission denied" in stderr:
        return HostUnreachable(name, f"ssh to {address} failed: {last}", hint="check the server is up and your key is authorised")
    if _CLOSED.search(stderr):
        return HostUnreachable(name, f"{what} to {address} failed: the connection was closed (ssh: {last})",
                               hint="check the server is up; see: invoke runbook server-failure")
    # LogLevel=INFO: ssh says why it ended ("Connection reset by ..." and "Timeout, server ... not responding." are
    # INFO lines; at ERROR a reset met while writing said nothing, and passed for the silence of ServerAlive)
    return HostUnreachable(name, f"{what} to {address} failed: ssh: {last}", hint="see: invoke runbook server-failure",
                           silent=not lines or "timed out" in stderr.lower() or "not responding" in stderr)


def _option_path(path: str) -> str | None:
    """A path as an ssh -o value: `%` doubled (ssh expands %-tokens), in double quotes if it holds a space."""
    if '"' in path or "\n" in path:
        return None
    path = path.replace("%", "%%")
    return f'"{path}"' if any(c.isspace() for c in path) else path
