"""How releaser reaches a server: a Host runs an argv, puts a file, reads a file.

LocalHost (the sandbox on this machine) and SshHost (fabric over OpenSSH) run the very same argv lists.
Commands are never built by pasting strings: SshHost turns an argv into one shell string with
`shlex.join` in `_command_line`, the only place that does so. Connection, socket and OS errors are
translated here into HostUnreachable, raised from the original.
"""

from __future__ import annotations

import logging
import os
import re
import select
import shlex
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Protocol, TypeVar

from releaser.clock import seconds_text
from releaser.errors import Cancelled, ConfigError, HostKeyChanged, HostUnreachable

if TYPE_CHECKING:
    from releaser.config import Environment

T = TypeVar("T")


@dataclass(frozen=True)
class Completed:
    """The outcome of one command on one server."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        """True when the command exited 0."""
        return self.exit_code == 0

    def reason(self) -> str:
        """Return the last line the command wrote to stderr (or stdout), for one-line error messages."""
        lines = (self.stderr or self.stdout).strip().splitlines()
        return lines[-1] if lines else f"exit status {self.exit_code}"


class Running(Protocol):
    """A command started on a server (Host.start) that reads its stdin while it runs.

    Every method that talks to the server raises HostUnreachable when the server or the way to it is gone.
    """

    def readline(self, timeout: float) -> str:
        """Wait for the command's next line on stdout and return it without its newline."""
        ...

    def send(self, text: str) -> None:
        """Write `text` to the command's stdin at once."""
        ...

    def wait(self, timeout: float, *, stop: Callable[[], bool] | None = None) -> Completed:
        """Wait for the command to exit; its stdout holds what came after the lines readline returned.

        With `stop`, asked a few times a second: once it is true the command's stdin is closed (it reads end
        of file, its cue to stop waiting) and its end is still waited for, within the same `timeout`.
        """
        ...

    def close(self) -> None:
        """Close the command's stdin (it reads end of file) and let go of it; safe to call twice, never raises."""
        ...


class Host(Protocol):
    """A server releaser can act on. LocalHost and SshHost run the very same commands."""

    name: str

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float | None = None) -> Completed:
        """Run argv on the server; a non-zero exit is a Completed, an unreachable server raises HostUnreachable."""
        ...

    def start(self, argv: Sequence[str], *, timeout: float | None = None) -> Running:
        """Start argv on the server with its stdin open to us, and return at once (an armed commit waits on it)."""
        ...

    def put(self, local: Path, remote: PurePosixPath, *, stop: Callable[[], bool] | None = None,
            sent: Callable[[int, int], None] | None = None) -> None:
        """Copy a local file to `remote` on the server; a long copy ends early (Cancelled) once stop() is true.

        `sent(bytes so far, size)`, when given, is called as the copy moves (for a progress bar)."""
        ...

    def read(self, remote: PurePosixPath) -> bytes:
        """Return the content of `remote` on the server."""
        ...

    def open(self) -> None:
        """Connect (or wait for the connection started in the background); HostUnreachable if it cannot."""
        ...

    def reconnect(self, *, even_if_unanswered: bool = False) -> None:
        """Drop the connection and open a new one: a broken connection is not always a lost server. One that did not
        answer a new connection earlier in this command is not tried again unless `even_if_unanswered`."""
        ...

    def broken(self) -> str | None:
        """Why this host's connection is already known to be gone, without asking the server; None when it is not."""
        ...

    def close(self) -> None:
        """Release the connection, if any."""
        ...


class LocalHost:
    """A 'server' that is a directory on this machine: the embedded sandbox and the tests' pure shell runs."""

    def __init__(self, name: str, *, step_timeout: float | None = None) -> None:
        self.name = name
        self.step_timeout = step_timeout

    def open(self) -> None:
        """Nothing to connect to; present so every Host opens the same way."""

    def reconnect(self, *, even_if_unanswered: bool = False) -> None:
        """Nothing to reconnect."""

    def broken(self) -> str | None:
        """A local host has no connection to lose."""
        return None

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float | None = None) -> Completed:
        """Run argv as a local process, with `env` added to this process's environment."""
        try:
            done = subprocess.run(
                list(argv), capture_output=True, text=True, timeout=timeout or self.step_timeout,
                env={**os.environ, **env} if env else None, stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise HostUnreachable(self.name, f"cannot run {argv[0]}: {error}") from error
        return Completed(done.returncode, done.stdout, done.stderr)

    def start(self, argv: Sequence[str], *, timeout: float | None = None) -> Running:
        """Start argv as a local process with pipes to its stdin, stdout and stderr."""
        try:
            process = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as error:
            raise HostUnreachable(self.name, f"cannot run {argv[0]}: {error}") from error
        return _LocalRunning(self.name, argv, process)

    def put(self, local: Path, remote: PurePosixPath, *, stop: Callable[[], bool] | None = None,
            sent: Callable[[int, int], None] | None = None) -> None:
        """Copy a file into the sandbox server's directory (a local copy is quick: `stop` is not needed)."""
        try:
            shutil.copyfile(local, remote)
        except OSError as error:
            raise HostUnreachable(self.name, f"cannot write {remote}: {error.strerror}") from error
        if sent is not None:
            size = Path(remote).stat().st_size
            sent(size, size)

    def read(self, remote: PurePosixPath) -> bytes:
        """Read a file from the sandbox server's directory."""
        try:
            return Path(remote).read_bytes()
        except OSError as error:
            raise HostUnreachable(self.name, f"cannot read {remote}: {error.strerror}", answered=True) from error

    def close(self) -> None:
        """Nothing to close."""


_STOP_EVERY = 0.1  # how often a wait with a stop() asks it
_SFTP_CHUNK = 32768  # bytes per SFTP write, as paramiko's own put: its largest request
SHELLS_KEPT = 3  # idle shells kept per connection: a server's links and front at once, and one more (sshd's MaxSessions is 10)
SPARE_WAIT = 1.0  # seconds a step waits for a shell keep_shells is starting (two round trips) before starting its own:
                  # the step's own deadline is not spent on it


class _LineReader:
    """readline() for a started command: `out` fills from `_read_some` until a whole line is there."""

    out: "_Lines"

    def readline(self, timeout: float) -> str:
        """The command's next line on stdout; HostUnreachable if it ends, breaks, or says nothing within `timeout`."""
        deadline = time.monotonic() + timeout
        while (line := self.out.take()) is None:
            if not self._read_some(deadline):
                raise self._no_line(timeout, ended=time.monotonic() < deadline)
        return line

    def _read_to_the_end(self, deadline: float, stop: Callable[[], bool] | None) -> None:
        """Read the command's output until it has ended or `deadline`; once stop() is true, end its input (once)."""
        while True:
            if stop is not None and stop():
                self._end_input()
                stop = None
            look = deadline if stop is None else min(deadline, time.monotonic() + _STOP_EVERY)
            if not self._read_some(look) and (self._ended() or time.monotonic() >= deadline):
                return

    def _read_some(self, deadline: float) -> bool:
        raise NotImplementedError

    def _ended(self) -> bool:
        raise NotImplementedError

    def _end_input(self) -> None:
        raise NotImplementedError

    def _no_line(self, timeout: float, *, ended: bool) -> HostUnreachable:
        raise NotImplementedError


class _LocalRunning(_LineReader):
    """A local process started by LocalHost.start: lines read from its stdout, text written to its stdin."""

    def __init__(self, name: str, argv: Sequence[str], process: subprocess.Popen) -> None:
        self.name, self.argv, self.process = name, argv, process
        self.out = _Lines()
        self.err = b""

    def _no_line(self, timeout: float, *, ended: bool) -> HostUnreachable:
        return HostUnreachable(self.name, f"{_label(self.argv)} ended or said nothing within {seconds_text(timeout)} s")

    def send(self, text: str) -> None:
        """Write to the process's stdin."""
        try:
            self.process.stdin.write(text.encode())
            self.process.stdin.flush()
        except (OSError, ValueError) as error:
            raise HostUnreachable(self.name, f"{_label(self.argv)} no longer reads its input: {error}") from error

    def wait(self, timeout: float, *, stop: Callable[[], bool] | None = None) -> Completed:
        """Read the rest of the process's output, then its exit status; once stop() is true, close its stdin."""
        deadline = time.monotonic() + timeout
        self._read_to_the_end(deadline, stop)
        try:
            code = self.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired as error:
            self.process.kill()
            raise HostUnreachable(self.name, f"{_label(self.argv)} did not end within {seconds_text(timeout)} s") from error
        finally:
            self.close()
        return Completed(code, self.out.rest().decode(errors="replace"), self.err.decode(errors="replace"))

    def close(self) -> None:
        """Close the process's stdin (it reads end of file) and our ends of its output pipes once it has ended."""
        for stream in (self.process.stdin,):
            _close_quietly(stream)
        if self.process.poll() is not None:
            _close_quietly(self.process.stdout)
            _close_quietly(self.process.stderr)

    def _ended(self) -> bool:
        return all(s is None or s.closed for s in (self.process.stdout, self.process.stderr))

    def _end_input(self) -> None:
        _close_quietly(self.process.stdin)

    def _read_some(self, deadline: float) -> bool:
        """Read what stdout or stderr has; False once both ended, or at the deadline."""
        streams = [s for s in (self.process.stdout, self.process.stderr) if s is not None and not s.closed]
        if not streams:
            return False
        ready, _, _ = select.select(streams, [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return False
        for stream in ready:
            data = os.read(stream.fileno(), 65536)
            if not data:
                stream.close()
            elif stream is self.process.stdout:
                self.out.feed(data)
            else:
                self.err += data
        return True


class _Lines:
    """Bytes from a command's stdout, handed out line by line, the rest kept for the end."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> None:
        """Take what arrived."""
        self.buffer += data

    def take(self) -> str | None:
        """The next whole line without its newline, or None until one has arrived."""
        line, newline, rest = self.buffer.partition(b"\n")
        if not newline:
            return None
        self.buffer = rest
        return line.decode(errors="replace")

    def rest(self) -> bytes:
        """Everything after the lines taken so far."""
        return self.buffer


def once_more_on_a_new_connection(host: Host, step: Callable[[], T], *, after_silence: bool = True) -> T:
    """Run a step; if it found the connection broken, reconnect once and run it again: the server may still be up.

    For steps that must reach a server even after a network blip and are safe to run twice (putting links
    back, removing prepared files, freeing the lock). A server really gone raises HostUnreachable again.
    Without `after_silence`, a server that said nothing until the step's deadline is not asked again.
    """
    try:
        return step()
    except HostUnreachable as error:
        if error.silent and not after_silence:
            raise
    host.reconnect()
    return step()


def make_hosts(environment: Environment, *, start: bool = False, warm: Mapping[str, SshHost] | None = None
               ) -> dict[str, Host]:
    """Build one Host per server from the environment (LocalHost for the sandbox, SshHost otherwise).

    With `start`, every SSH connection starts opening in the background at once, so whatever the command
    does before its first step (imports, rendering) overlaps the handshakes. `warm`: hosts warm_hosts() began
    connecting before the environment was validated; each is used where it was made with exactly the settings
    the validated environment gives, and let go of otherwise.
    """
    warm = dict(warm or {})
    try:
        if environment.transport == "local":
            return {server.name: LocalHost(server.name, step_timeout=environment.deadlines.step)
                    for server in environment.servers}
        ssh = environment.ssh
        _require_key_files(environment)
        client = shutil.which("ssh")  # bulk uploads go through it (releaser.openssh); without it, over SFTP
        hosts = {}
        for server in environment.servers:
            settings = dict(
                host=server.host, port=server.port or ssh.port, user=server.user or ssh.user,
                key_file=_resolve(server.key_file or ssh.key_file, environment),
                known_hosts=_resolve(ssh.known_hosts, environment),
                check_host_keys=ssh.check_host_keys, connect_timeout=ssh.connect_timeout,
                step_timeout=environment.deadlines.step, upload_stall=environment.deadlines.upload_stall,
                keepalive=environment.deadlines.keepalive, ssh_client=client,
            )
            early = warm.get(server.name)
            if early is not None and early.made_with == settings:
                hosts[server.name] = warm.pop(server.name)
            else:
                hosts[server.name] = SshHost(server.name, **settings)
                if start:
                    hosts[server.name].start_opening()
        return hosts
    finally:
        let_go(warm.values())


def warm_hosts(env: str, project_dir: Path) -> dict[str, SshHost]:
    """Start connecting to the SSH servers an environment file names, before pydantic has validated it.

    Validating the environment costs a cold command ~150 ms (importing pydantic, building the models); the
    handshakes need only a few fields, read here from the TOML as written, so they run meanwhile. Nothing is
    run on a server: make_hosts uses a warm host only where the validated settings are the very same, and lets
    go of the rest. Anything unusual (no such file, bad TOML, a value of the wrong type, a host or user that
    is not plain) means no warm host for it; load_environment then says what is wrong.
    """
    try:
        path = Path(env) if env.endswith(".toml") or "/" in env else project_dir / "environments" / f"{env}.toml"
        import tomllib

        data = tomllib.loads(path.read_text(encoding="utf-8"))
        made = _settings_as_written(data, path.resolve())
    except Exception:  # load_environment reads the same file and says what is wrong with it
        return {}
    hosts = {}
    for name, settings in made.items():
        hosts[name] = SshHost(name, **settings)
        hosts[name].start_opening()
    return hosts


def let_go(hosts) -> None:
    """Close hosts nobody will use, in the background: a handshake under way must not hold the command."""
    for host in list(hosts):
        threading.Thread(target=host.close, name=f"let-go-{host.name}", daemon=True).start()


_PLAIN_HOST = re.compile(r"^(?:[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}|[0-9A-Fa-f:.]{2,45})\Z")  # as config.py's, roughly
_PLAIN_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@$-]{0,63}\Z")


def _settings_as_written(data: dict, path: Path) -> dict[str, dict]:
    """SshHost's settings per server from an environment file's TOML, with config.py's defaults; {} unless plain."""
    if data.get("transport") != "ssh":
        return {}
    ssh, deadlines = data.get("ssh", {}), data.get("deadlines", {})

    made = {}
    client = shutil.which("ssh")
    for server in data.get("servers", []):
        name, host, user = server.get("name"), server.get("host"), server.get("user") or ssh.get("user")
        port = server.get("port") or ssh.get("port", 22)
        if not (isinstance(name, str) and isinstance(host, str) and _PLAIN_HOST.match(host)
                and (user is None or (isinstance(user, str) and _PLAIN_USER.match(user)))
                and isinstance(port, int) and 0 < port < 65536):
            continue
        made[name] = dict(
            host=host, port=port, user=user, key_file=_resolved(server.get("key_file") or ssh.get("key_file"), path),
            known_hosts=_resolved(ssh.get("known_hosts", "~/.ssh/known_hosts"), path),
            check_host_keys=ssh.get("check_host_keys", True), connect_timeout=ssh.get("connect_timeout", 10.0),
            step_timeout=deadlines.get("step", 20.0), upload_stall=deadlines.get("upload_stall", 30.0),
            keepalive=deadlines.get("keepalive", 5.0), ssh_client=client,
        )
    return made


def _require_key_files(environment: Environment) -> None:
    """Refuse a key file that is not there: otherwise every server would read as DOWN, which sends people to the wrong runbook."""
    for i, server in enumerate(environment.servers):
        field, path = (f"servers[{i}].key_file", server.key_file) if server.key_file else ("ssh.key_file", environment.ssh.key_file)
        resolved = _resolve(path, environment)
        if resolved is not None and not os.path.isfile(resolved):
            where = environment.path or environment.name
            raise ConfigError(f"{where}: {field}: no key file at {resolved}",
                              hint="fix the path in the environment file, or create the key (ssh-keygen -t ed25519)")
    known = _resolve(environment.ssh.known_hosts, environment)
    if environment.ssh.check_host_keys and known is not None and not os.path.isfile(known):
        raise ConfigError(f"{environment.path or environment.name}: ssh.known_hosts: no known_hosts file at {known}",
                          hint="fix the path, or fill it with each server's verified host key (ssh-keyscan -p PORT HOST)")


def _resolve(path: str | None, environment: Environment) -> str | None:
    """A path from the environment file: ~ expanded, relative ones taken from the file's directory."""
    return _resolved(path, environment.path)


def _resolved(path: str | None, env_file: Path | None) -> str | None:
    """`path` as written in the environment file `env_file` (None: relative to here), ~ expanded."""
    if path is None:
        return None
    expanded = Path(path).expanduser()
    if not expanded.is_absolute() and env_file is not None:
        expanded = env_file.parent / expanded
    return str(expanded)


class SshHost:
    """A real server reached over SSH with fabric; one connection per command run, reused for every step."""

    def __init__(
        self, name: str, host: str, *, port: int = 22, user: str | None = None, key_file: str | None = None,
        known_hosts: str | None = None, check_host_keys: bool = True, connect_timeout: float = 10.0,
        step_timeout: float = 20.0, upload_stall: float = 30.0, keepalive: float = 5.0, ssh_client: str | None = None,
    ) -> None:
        self.name = name
        self.made_with = dict(host=host, port=port, user=user, key_file=key_file, known_hosts=known_hosts,
                              check_host_keys=check_host_keys, connect_timeout=connect_timeout, step_timeout=step_timeout,
                              upload_stall=upload_stall, keepalive=keepalive, ssh_client=ssh_client)
        self.ssh_client = ssh_client  # the OpenSSH client that streams uploads (stream()); None: put() over SFTP only
        self.step_timeout = step_timeout  # every run() without a timeout of its own gets this one
        self.upload_stall = upload_stall
        self.keepalive = keepalive
        self.address = f"{user + '@' if user else ''}{host}:{port}"
        self._settings = dict(host=host, port=port, user=user, key_file=key_file, known_hosts=known_hosts,
                              check_host_keys=check_host_keys, connect_timeout=connect_timeout)
        self._connection = None
        self._sftp = None
        self._shells = _ShellPool()
        self._opening: threading.Thread | None = None
        self._opening_error: BaseException | None = None
        self._silent: str | None = None  # why a step here ended by its deadline with no answer, until a reconnect
        self._unanswered: str | None = None  # why a new connection got no answer within connect_timeout, this command
        self._reconnecting = threading.Lock()  # one reconnect at a time: the links' and the front's reverts both ask
        self._reconnects = 0  # reconnect attempts made, so one that waited for another's knows it was done meanwhile

    def start_opening(self) -> None:
        """Start connecting in a background thread; open() waits for it and raises what it raised."""
        if self._connection is None and self._opening is None:
            self._opening = threading.Thread(target=self._connect_noting_error, name=f"ssh-{self.name}", daemon=True)
            self._opening.start()

    def open(self) -> None:
        """Connect now, or wait for the connection start_opening began (fleet opens every server in parallel)."""
        opening = self._opening
        if opening is not None:
            opening.join()
            self._opening = None
            error, self._opening_error = self._opening_error, None
            if error is not None:
                raise error
        if self._connection is None:
            self._connect()

    def _connect_noting_error(self) -> None:
        try:
            self._connect()
        except BaseException as error:  # handed to whoever calls open()
            self._opening_error = error

    def _connect(self) -> None:
        import fabric  # imported here so `invoke --list` and the local sandbox never pay for paramiko
        import paramiko

        s = self._settings
        config = fabric.Config(overrides={"load_ssh_configs": False})
        kwargs = {"key_filename": os.path.expanduser(s["key_file"])} if s["key_file"] else {}
        limits = {"banner_timeout": s["connect_timeout"], "auth_timeout": s["connect_timeout"],
                  "channel_timeout": s["connect_timeout"]}  # a silent server must not hold the handshake for paramiko's defaults
        connection = fabric.Connection(
            s["host"], user=s["user"], port=s["port"], config=config, connect_timeout=s["connect_timeout"],
            connect_kwargs={**kwargs, **limits, "allow_agent": not kwargs, "look_for_keys": not kwargs},
        )
        if s["check_host_keys"]:
            connection.client.set_missing_host_key_policy(paramiko.RejectPolicy())
            known = os.path.expanduser(s["known_hosts"] or "~/.ssh/known_hosts")
            try:
                _trust_known_keys(connection.client.get_host_keys(), known, s["host"], s["port"])
            except OSError as error:
                raise HostUnreachable(self.name, f"cannot read known_hosts {known}: {error.strerror}",
                                      hint="add the server's key (ssh-keyscan) or name the file in [ssh] known_hosts") from error
        sock = None
        try:
            sock = _PromptSocket.connect(s["host"], s["port"], s["connect_timeout"], give_up_after=self.step_timeout)
            connection.connect_kwargs = {**connection.connect_kwargs, "sock": sock}
            connection.open()
        except paramiko.BadHostKeyException as error:
            _close_quietly(sock)
            raise HostKeyChanged(
                self.name, f"ssh to {self.address} refused: the server's host key has changed since it was put in known_hosts "
                f"(it now offers a {error.key.get_name()} key, fingerprint {_fingerprint(error.key)}); someone may be "
                f"intercepting the connection, or the server was rebuilt",
                hint="verify the new key with the server's administrators out of band, then replace its line in known_hosts "
                     "(ssh-keygen -R HOST, then ssh-keyscan); nothing was changed") from error
        except paramiko.SSHException as error:
            _close_quietly(sock)
            if _closed_before_the_greeting(error):  # paramiko says "banner" for a closed connection too
                raise HostUnreachable(self.name, f"ssh to {self.address} failed: the connection was closed or reset before the SSH "
                                      "greeting (is sshd running there, or is something in front of it closing it?)",
                                      hint="see: invoke runbook server-failure") from error
            if _SILENT.search(str(error)):  # paramiko says this when no SSH greeting came before its deadline
                raise HostUnreachable(self.name, f"ssh to {self.address} failed: the connection ended before login (no SSH "
                                      f"greeting within {seconds_text(s['connect_timeout'])} s: the server, or the network to it, "
                                      "may be silent)", hint="see: invoke runbook server-failure") from error
            hint = ("its host key is not in known_hosts; verify it, then add it (ssh-keyscan -p PORT HOST)"
                    if "not found in known_hosts" in str(error) else "check the server is up and your key is authorised")
            raise HostUnreachable(self.name, f"ssh to {self.address} failed: {_why(error)}", hint=hint) from error
        except (OSError, EOFError) as error:
            _close_quietly(sock)
            raise HostUnreachable(self.name, f"ssh to {self.address} failed: {_why(error)}",
                                  hint="check the server is up; see: invoke runbook server-failure") from error
        self._connection = connection
        connection.client.get_transport().set_keepalive(max(1, int(self.keepalive)))
        try:  # the shell starts with the connection, so it too overlaps whatever the command does meanwhile
            self._shells.give_back(_Shell(connection.client.get_transport()))
        except (OSError, EOFError, paramiko.SSHException):
            pass  # run() starts one, and reports what it finds

    def broken(self) -> str | None:
        """Why the connection is already known to be gone (the server's end closed it, or it went silent earlier in
        this command), read from this process alone: a switch asks every server this at the second, before any moves."""
        if self._silent is not None:
            return f"{self.address} did not answer earlier in this command ({self._silent})"
        connection = self._connection
        transport = connection.client.get_transport() if connection is not None else None
        if connection is not None and (transport is None or not transport.is_active()):
            return f"the connection to {self.address} was closed (the server went away, or its sshd ended the session)"
        return None

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float | None = None) -> Completed:
        """Run argv on the server in one of the connection's long-lived shells (a new one while every one is busy).

        A server that went silent earlier in this command is not asked, and no new connection is opened for it
        here (that would wait out the handshake's deadline again): only reconnect() tries it again.
        """
        why = self._silent or self._unanswered
        if why is not None:  # waiting out another deadline here would learn nothing new; reconnect() may
            raise HostUnreachable(self.name, f"not asked to run {_label(argv)}: {self.address} did not answer earlier "
                                  f"in this command ({why})", hint="see: invoke runbook server-failure", silent=True,
                                  unsent=True)
        self.open()
        timeout = timeout or self.step_timeout
        pool = self._shells  # this connection's: a reconnect() in another thread meanwhile makes a new pool
        shell = pool.take(within=min(timeout, SPARE_WAIT))
        try:
            if shell is None:
                shell = _Shell.started(self._connection.client.get_transport())
            done = shell.run(_shell_step(argv, env), timeout)
        except (OSError, EOFError, AttributeError, _ssh_exception()) as error:
            _close_quietly(shell)  # a shell that timed out or lost its server cannot take the next command
            raise self._noted(HostUnreachable(
                self.name, f"lost the connection to {self.address} while running {_label(argv)}: {_why(error)}",
                hint="see: invoke runbook server-failure", silent=_is_silence(error),
                unsent=isinstance(error, _Unsent))) from error
        finally:
            pool.done_with()
        pool.give_back(shell)
        return done

    def keep_shells(self, count: int) -> None:
        """Start, in the background, the shells `count` steps at once will need, so none pays for one when they run.

        A switch moves several participants on one server at the same moment (its links and its front): the one
        that finds every shell busy would otherwise pay a channel, an sshd session and a shell at T. Needs an open
        connection; a shell that cannot start is simply not kept (run() starts one and reports what it finds).
        """
        connection = self._connection
        if connection is None or self._silent is not None:
            return
        for _ in range(self._shells.missing(count)):
            threading.Thread(target=_start_spare, args=(connection.client.get_transport(), self._shells),
                             name=f"shell-{self.name}", daemon=True).start()

    def start(self, argv: Sequence[str], *, timeout: float | None = None) -> Running:
        """Start argv on an exec channel of its own, its stdin kept open for send(); return without waiting."""
        self.open()
        timeout = timeout or self.step_timeout
        try:
            channel = _opened_session(self._connection.client.get_transport(), timeout)
            channel.exec_command(_command_line(argv, None))
        except (OSError, EOFError, AttributeError, _ssh_exception()) as error:
            raise HostUnreachable(self.name, f"lost the connection to {self.address} while starting {_label(argv)}: {_why(error)}",
                                  hint="see: invoke runbook server-failure", unsent=isinstance(error, _Unsent)) from error
        return _ChannelRunning(self.name, self.address, argv, channel, noted=self._noted)

    def put(self, local: Path, remote: PurePosixPath, *, stop: Callable[[], bool] | None = None,
            sent: Callable[[int, int], None] | None = None) -> None:
        """Stream a file over SFTP on the open connection, in chunks: stop() and sent() after every one.

        The file is read and written a chunk at a time, so memory stays flat whatever its size; the server checks
        what arrived by its sha256 (remote.unpack_argv). The first chunk waits for the server's answer, so a full
        disk or a refused path is known at once (pipelined, paramiko reads the answers only every 100 chunks, and
        the other servers' uploads, which stop when one fails, ran on meanwhile); the rest is pipelined.
        """
        self.open()

        def after_chunk(done: int, size: int) -> None:
            if stop is not None and stop():
                raise Cancelled(f"upload to {self.address}:{remote} stopped after {done} of {size} bytes")
            if sent is not None:
                sent(done, size)

        try:
            if self._sftp is None:
                self._sftp = self._connection.client.open_sftp()
            self._sftp.get_channel().settimeout(self.upload_stall)  # an upload that stops moving ends here
            with open(local, "rb") as source, self._sftp.open(str(remote), "wb") as handle:
                size, done = os.fstat(source.fileno()).st_size, 0
                while chunk := source.read(_SFTP_CHUNK):
                    handle.write(chunk)  # the first, not yet pipelined: its answer is read before the next
                    handle.set_pipelined(True)
                    done += len(chunk)
                    after_chunk(done, size)
            kept = self._sftp.stat(str(remote)).st_size
            if kept != done:
                raise OSError(f"the server kept {kept} of {done} bytes (is its disk full?)")
        except (OSError, EOFError, _ssh_exception()) as error:
            # an SFTP status (no space, permission denied) or a short file is the server answering; the rest is the
            # connection or the server going away
            answered = (isinstance(error, OSError) and not isinstance(error, (ConnectionError, TimeoutError))
                        and not _CLOSED.search(str(error)))  # paramiko's "Socket is closed": the server went away
            raise HostUnreachable(self.name, f"upload to {self.address}:{remote} failed: {_why(error)}",
                                  hint="check the server is up and its disk and permissions, then run the command again",
                                  answered=answered) from error

    def stream_argv(self, argv: Sequence[str]) -> list[str] | None:
        """The OpenSSH client's argv running argv on this server, or None when there is no client or it cannot say
        these settings (then put() over SFTP is the way)."""
        from releaser import openssh

        if self.ssh_client is None:
            return None
        s = self._settings
        reach = openssh.Reach(s["host"], s["port"], s["user"], s["key_file"], s["known_hosts"], s["check_host_keys"],
                              s["connect_timeout"], self.keepalive, self.step_timeout)
        return openssh.ssh_argv(self.ssh_client, reach, _command_line(argv, None))

    def stream(self, local: Path, argv: Sequence[str], *, timeout: float, stop: Callable[[], bool] | None = None,
               sent: Callable[[int, int], None] | None = None) -> Completed:
        """Run argv on the server through the OpenSSH client with `local`'s bytes as its stdin, and return how it ended.

        The same user, key, known_hosts and deadlines as the paramiko connection, in a process of its own (no
        GIL shared with the other servers' uploads). stop() and sent() after every chunk; no byte moving for
        `upload_stall` seconds, or the command not ending `timeout` seconds after the last byte, raises
        HostUnreachable; stop() raises Cancelled once the server's command has seen the short stream and ended.
        The client connects inside that window too (an archive smaller than a pipe's buffer is all handed over
        before it has), so the window is `timeout` plus the connect deadline: 20 servers connecting at once on
        a loaded machine took over 3 s. Requires stream_argv(argv) to be an argv.
        """
        from releaser import openssh

        command = self.stream_argv(argv)
        if command is None:
            raise ValueError(f"{self.name}: no OpenSSH client can reach {self.address} with these settings")
        finish = timeout + self._settings["connect_timeout"]
        try:
            return openssh.stream(command, local, name=self.name, address=self.address, what="upload",
                                  stall=self.upload_stall, finish=finish, stop=stop, sent=sent)
        except HostUnreachable as error:
            raise self._noted(error) from None

    def _noted(self, error: HostUnreachable) -> HostUnreachable:
        """Remember a server gone silent: later steps here fail at once (run), until reconnect() reaches it again.

        A step past its deadline is silence only if sshd does not open a channel either (a slow command on a
        live server still gets its channel within a second or two); a closed or reset connection is not silence.
        """
        if error.silent and self._answers_a_channel():
            error.silent = False
        if error.silent:
            self._silent = error.what.removeprefix(f"{self.name}: ")
        return error

    def _answers_a_channel(self, within: float = 2.0) -> bool:
        """Whether sshd on this connection still opens a session channel within `within` seconds (then closes it)."""
        try:
            channel = self._connection.client.get_transport().open_session(timeout=min(within, self.step_timeout))
        except Exception:  # timed out, or the connection is gone: silent either way
            return False
        _close_quietly(channel)
        return True

    def read(self, remote: PurePosixPath) -> bytes:
        """Read a file over SFTP on the open connection."""
        self.open()
        try:
            if self._sftp is None:
                self._sftp = self._connection.client.open_sftp()
            self._sftp.get_channel().settimeout(self.step_timeout)
            with self._sftp.open(str(remote), "rb") as handle:
                return handle.read()
        except (OSError, EOFError, _ssh_exception()) as error:
            answered = isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError))  # SFTP said so
            raise HostUnreachable(self.name, f"cannot read {remote} on {self.address}: {_why(error)}",
                                  answered=answered) from error

    def reconnect(self, *, even_if_unanswered: bool = False) -> None:
        """Drop this connection and open a new one: a lost connection is not always a lost server.

        A server that did not answer a new connection within connect_timeout earlier in this command is not tried
        again (raises at once): every later step would wait that deadline out once more (QA: a frozen server's
        links and front each reverting cost it twice). A page left open all morning passes `even_if_unanswered`.
        Two steps asking at once share one attempt: the second gets the first's connection, or its failure.
        """
        asked = self._reconnects
        with self._reconnecting:
            if self._reconnects != asked and self._connection is not None:
                return  # another step reconnected while this one waited: its new connection serves this one too
            if self._unanswered is not None and not even_if_unanswered:
                raise HostUnreachable(self.name, f"no new connection tried: {self.address} did not answer one earlier in "
                                      f"this command ({self._unanswered})", hint="see: invoke runbook server-failure",
                                      silent=True, unsent=True)
            self.close()
            started = time.monotonic()
            try:
                self._connect()
            except HostUnreachable as error:
                if time.monotonic() - started >= 0.9 * self._settings["connect_timeout"]:
                    self._unanswered = error.what.removeprefix(f"{self.name}: ")
                raise
            finally:
                self._reconnects += 1
            self._silent = self._unanswered = None  # it answered the handshake: its next steps are asked again

    def close(self) -> None:
        """Close the shell, the SFTP session and the connection."""
        if self._opening is not None:
            self._opening.join()
        for closable in (*self._shells.drain(), self._sftp, self._connection):
            try:
                if closable is not None:
                    closable.close()
            except Exception:  # closing a dead connection must never hide the real outcome
                pass
        self._sftp = self._connection = None
        self._shells = _ShellPool()  # a spare still starting on the old connection lands in the old pool, unused


class _ChannelRunning(_LineReader):
    """A command on an SSH exec channel of its own (SshHost.start): lines from its stdout, text to its stdin."""

    def __init__(self, name: str, address: str, argv: Sequence[str], channel,
                 noted: Callable[[HostUnreachable], HostUnreachable] | None = None) -> None:
        self.name, self.address, self.argv, self.channel = name, address, argv, channel
        self.out = _Lines()
        self.err = b""
        self._noted = noted  # the host's: a command silent past its deadline makes the host's next steps fail at once

    def _no_line(self, timeout: float, *, ended: bool) -> HostUnreachable:
        return self._lost("it ended" if ended else f"no line from it within {seconds_text(timeout)} s")

    def send(self, text: str) -> None:
        """Write to the command's stdin (one SSH packet for a short text)."""
        try:
            self.channel.sendall(text.encode())
        except (OSError, EOFError, _ssh_exception()) as error:
            raise self._lost(_why(error)) from error

    def wait(self, timeout: float, *, stop: Callable[[], bool] | None = None) -> Completed:
        """Read the rest of the command's output and its exit status; once stop() is true, send end of file to its stdin."""
        deadline = time.monotonic() + timeout
        try:
            self._read_to_the_end(deadline, stop)
            if time.monotonic() >= deadline and not self.channel.exit_status_ready():
                silence = self._lost(f"no answer within {seconds_text(timeout)} s")
                silence.silent = True
                raise self._noted(silence) if self._noted is not None else silence
            code = self.channel.exit_status if self.channel.exit_status_ready() else -1
        finally:
            self.close()
        if code == -1:  # closed without an exit status: the connection, or the server, went away
            raise self._lost("the connection was closed before it said how it ended")
        return Completed(code, self.out.rest().decode(errors="replace"), self.err.decode(errors="replace"))

    def close(self) -> None:
        """Send end of file to the command's stdin and close the channel."""
        self._end_input()
        _close_quietly(self.channel)

    def _end_input(self) -> None:
        try:
            if not self.channel.closed:
                self.channel.shutdown_write()
        except Exception:  # a channel whose connection broke cannot say goodbye
            pass

    def _ended(self) -> bool:
        return self.channel.closed or (self.channel.eof_received and self.channel.exit_status_ready())

    def _read_some(self, deadline: float) -> bool:
        """Read what stdout or stderr has; False once the channel has ended and been read out, or at the deadline."""
        try:
            while True:
                if self.channel.recv_ready():
                    self.out.feed(self.channel.recv(65536))
                    return True
                if self.channel.recv_stderr_ready():
                    self.err += self.channel.recv_stderr(65536)
                    return True
                if self._ended():
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                select.select([self.channel], [], [], left)
        except (OSError, EOFError, _ssh_exception()) as error:
            raise self._lost(_why(error)) from error

    def _lost(self, why: str) -> HostUnreachable:
        return HostUnreachable(self.name, f"lost {_label(self.argv)} on {self.address}: {why}",
                               hint="see: invoke runbook server-failure")


class _PromptSocket:
    """A TCP socket to an sshd that neither side lets sit on a small packet (~40 ms saved per exchange).

    We send with TCP_NODELAY: paramiko writes each request as a small packet, and with Nagle's algorithm
    each would wait for the ACK of the one before. sshd keeps Nagle on for sessions without a terminal,
    so when it answers with two small packets (after login: a host-key notice, then the channel) the
    second waits for our ACK of the first, which Linux holds back up to 40 ms. Asking for quick ACKs
    after every read sends them at once; the kernel drops that mode by itself, hence after every read.
    """

    _QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only; elsewhere this is a plain socket

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    @classmethod
    def connect(cls, host: str, port: int, timeout: float, *, give_up_after: float = 20.0) -> "_PromptSocket":
        """Open the TCP connection to host:port with both delays turned off, and a silent peer detected.

        TCP keepalives notice a peer that went quiet while we wait, and TCP_USER_TIMEOUT makes the kernel
        drop the connection when what we sent is not acknowledged within `give_up_after` seconds (a silent
        network drop otherwise retransmits for ~15 minutes). Linux only; elsewhere the step deadlines remain.
        """
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option, value in (("TCP_KEEPIDLE", 5), ("TCP_KEEPINTVL", 2), ("TCP_KEEPCNT", 3),
                              ("TCP_USER_TIMEOUT", int(give_up_after * 1000))):
            if hasattr(socket, option):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
        return cls(sock)

    def recv(self, size: int) -> bytes:
        """Read like socket.recv, then ask the kernel to acknowledge what came in without delay."""
        data = self._sock.recv(size)
        if self._QUICKACK is not None and data:
            try:
                self._sock.setsockopt(socket.IPPROTO_TCP, self._QUICKACK, 1)
            except OSError:  # the socket closed under us; the next read reports it
                pass
        return data

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


class _Shell:
    """One `sh` on the server, started once and kept (in its connection's _ShellPool), that runs steps one after another.

    A command on an exec channel of its own costs a channel, an sshd session process and the login shell
    (with its rc files) on the server; here each step costs one write and one read. Every step is framed
    by marks on both streams, runs in a subshell with stdin from /dev/null, and leaves nothing behind.
    """

    def __init__(self, transport) -> None:
        self.channel = transport.open_session()
        self.channel.exec_command("exec sh")

    @classmethod
    def started(cls, transport) -> "_Shell":
        """A new shell on the connection; _Unsent when it cannot be started (no command of the step was sent)."""
        try:
            return cls(transport)
        except (OSError, EOFError, AttributeError, _ssh_exception()) as error:
            raise _Unsent(_why(error)) from error

    def run(self, command: str, timeout: float | None) -> Completed:
        """Run one shell command line and return its exit status, stdout and stderr.

        _Unsent when the connection refused the very first byte: the server cannot have run any of it.
        """
        mark = uuid.uuid4().hex
        _send_all(self.channel, (f"printf '%s\\n' {mark}; printf '%s\\n' {mark} >&2\n( {command}\n) </dev/null\n"
                                 f"rc=$?; printf '\\n%s %s\\n' {mark} $rc; printf '\\n%s\\n' {mark} >&2\n").encode())
        out, err = _Framed(mark), _Framed(mark)
        deadline = None if timeout is None else time.monotonic() + timeout
        while not (out.done and err.done):
            if self.channel.recv_ready():
                out.feed(self.channel.recv(65536))
            elif self.channel.recv_stderr_ready():
                err.feed(self.channel.recv_stderr(65536))
            elif self.channel.closed or self.channel.eof_received:
                raise EOFError("the server's shell went away")
            else:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    self.close()
                    raise TimeoutError(f"no answer within {seconds_text(timeout)} s")
                select.select([self.channel], [], [], left)
        return Completed(int(out.status), out.text(), err.text())

    def close(self) -> None:
        """End the shell (closing its channel)."""
        self.channel.close()


class _ShellPool:
    """The idle shells of one connection, and how many are busy or starting: steps at once each take one.

    At most SHELLS_KEPT stay open between steps (sshd allows few sessions per connection, and uploads and
    armed commits need theirs); a step that finds none idle starts its own, which is kept if there is room.
    """

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._idle: list[_Shell] = []
        self._busy = 0
        self._starting = 0
        self._waiting = 0  # takers waiting for a shell that is starting: one each

    def take(self, within: float) -> "_Shell | None":
        """An idle shell, or None (the caller starts one); either way the caller counts as busy until done_with().

        With none idle but one starting (keep_shells), waits up to `within` seconds for it: begun earlier, it is up
        sooner than a new one would be.
        """
        with self._ready:
            self._busy += 1
            end = time.monotonic() + within
            try:
                while not self._idle and self._starting > self._waiting and time.monotonic() < end:
                    self._waiting += 1
                    try:
                        self._ready.wait(end - time.monotonic())
                    finally:
                        self._waiting -= 1
            except BaseException:  # Ctrl-C while waiting: this caller never ran a step
                self._busy -= 1
                raise
            return self._idle.pop() if self._idle else None

    def done_with(self) -> None:
        """The caller's step has ended, however it ended."""
        with self._ready:
            self._busy -= 1

    def give_back(self, shell: "_Shell") -> None:
        """Keep a shell that finished its step cleanly, or close it when enough are kept."""
        with self._ready:
            if len(self._idle) < SHELLS_KEPT:
                self._idle.append(shell)
                self._ready.notify()
                return
        _close_quietly(shell)

    def missing(self, count: int) -> int:
        """How many shells to start so that `count` steps at once find one each; counted as starting."""
        with self._ready:
            missing = max(0, min(count, SHELLS_KEPT) - len(self._idle) - self._busy - self._starting)
            self._starting += missing
            return missing

    def started(self, shell: "_Shell") -> None:
        """A shell missing() asked for is up."""
        with self._ready:
            self._starting -= 1
        self.give_back(shell)

    def not_started(self) -> None:
        """A shell missing() asked for could not start: whoever waits for it starts its own."""
        with self._ready:
            self._starting -= 1
            self._ready.notify_all()

    def drain(self) -> list["_Shell"]:
        """Every idle shell, handed over to be closed (the connection is closing)."""
        with self._ready:
            idle, self._idle = self._idle, []
            return idle


def _start_spare(transport, pool: _ShellPool) -> None:
    """Start one shell for SshHost.keep_shells and hand it to the pool that asked (a closed host's is dropped)."""
    try:
        shell = _Shell(transport)
    except Exception:  # not kept: run() starts one when it needs it
        pool.not_started()
        return
    pool.started(shell)


class _Unsent(OSError):
    """The connection failed before one byte of the command was handed to it: nothing of it can have run."""


def _send_all(channel, data: bytes) -> None:
    """channel.sendall, telling a failure before the first byte (_Unsent) from one part way through."""
    sent = 0
    try:
        while sent < len(data):
            sent += channel.send(data[sent:])
    except (OSError, EOFError) as error:
        if sent == 0:
            raise _Unsent(_why(error)) from error
        raise


def _opened_session(transport, timeout: float):
    """A new exec channel; _Unsent when the connection cannot open one (no command has been sent on it)."""
    try:
        return transport.open_session(timeout=timeout)
    except (OSError, EOFError, AttributeError, _ssh_exception()) as error:
        raise _Unsent(_why(error)) from error


class _Framed:
    """One stream of a shell step: what arrives between the step's opening mark and its closing one."""

    def __init__(self, mark: str) -> None:
        self.opening, self.closing = f"{mark}\n".encode(), f"\n{mark}".encode()
        self.buffer = b""
        self.done = False
        self.body = b""
        self.status = ""

    def feed(self, data: bytes) -> None:
        """Take what arrived; a step's output ends at its closing mark (stdout's also carries the exit status)."""
        if not data:
            raise EOFError("the server's shell went away")
        self.buffer += data
        start = self.buffer.find(self.opening)
        end = self.buffer.find(self.closing, start + len(self.opening)) if start >= 0 else -1
        tail = self.buffer[end + len(self.closing):] if end >= 0 else b""
        if end >= 0 and tail.endswith(b"\n"):
            self.body = self.buffer[start + len(self.opening):end]
            self.status = tail.strip().decode()
            self.done = True

    def text(self) -> str:
        """The step's output as text."""
        return self.body.decode(errors="replace")


# paramiko logs every failure of its transport thread (with a traceback) to stderr when nothing else handles its
# logger; releaser translates those failures into one line itself, so its own log stays out of the terminal.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

_known_hosts_lock = threading.Lock()
_known_hosts_parsed: dict[tuple, object] = {}


def _trust_known_keys(trusted, path: str, host: str, port: int) -> None:
    """Add the keys known_hosts lists for this server to `trusted`; the file is parsed once per version, not per server."""
    import paramiko

    info = os.stat(path)
    version = (path, info.st_mtime_ns, info.st_size, info.st_ino)
    with _known_hosts_lock:  # every server connects at once: one parse for all of them
        if version not in _known_hosts_parsed:
            _known_hosts_parsed.clear()
            _known_hosts_parsed[version] = paramiko.HostKeys(path)
        known = _known_hosts_parsed[version]
    name = host if port == 22 else f"[{host}]:{port}"
    for key_type, key in (known.lookup(name) or {}).items():
        trusted.add(name, key_type, key)


def _command_line(argv: Sequence[str], env: Mapping[str, str] | None) -> str:
    """Turn an argv (and extra environment) into the one shell string sshd runs, every word quoted."""
    prefix = ["env", *(f"{key}={value}" for key, value in env.items())] if env else []
    return shlex.join([*prefix, *argv])


def _shell_step(argv: Sequence[str], env: Mapping[str, str] | None) -> str:
    """The text the long-lived shell runs for argv, in a subshell of its own.

    releaser's own scripts (`sh -c SCRIPT releaser-NAME ARG...`, constant text) run right in that subshell
    with their arguments set by `set --`, sparing one `sh` per step; anything else is quoted as on a channel.
    """
    if not env and len(argv) > 3 and list(argv[:2]) == ["sh", "-c"] and argv[3].startswith("releaser-"):
        return f"set -- {shlex.join(argv[4:])}\n{argv[2]}"
    return _command_line(argv, env)


def _is_silence(error: BaseException) -> bool:
    """Whether a failed step ended by a deadline with nothing from the server (not a closed or reset connection)."""
    return isinstance(error, TimeoutError) or "Timeout opening channel" in str(error)


def _fingerprint(key) -> str:
    """A host key's SHA256 fingerprint as OpenSSH prints it (ssh-keygen -lf)."""
    import base64
    import hashlib

    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def _close_quietly(closable) -> None:
    try:
        if closable is not None:
            closable.close()
    except Exception:  # closing what already broke must never hide the real outcome
        pass


def _label(argv: Sequence[str]) -> str:
    """Name a command for messages: releaser's scripts by their $0 ("releaser-commit"), others by argv[0]."""
    return argv[3] if len(argv) > 3 and list(argv[:2]) == ["sh", "-c"] else argv[0]


def _why(error: BaseException) -> str:
    """Say in words what went wrong; paramiko raises some errors with no text at all (a closed connection)."""
    text = str(error).strip()
    if isinstance(error, _Unsent):
        return text  # already said in words where it was raised
    if isinstance(error, ConnectionRefusedError):
        return "connection refused: nothing listens on that port (is sshd running there?)"
    if text == "Failure" and type(error) is OSError:  # SFTP's one status for a failed write, ENOSPC included
        return 'the server could not write it, SFTP answered "Failure" (is its disk full?)'
    if not text or isinstance(error, (EOFError, ConnectionError)) or _CLOSED.search(text):
        # the same event (the server went away) reaches us in many shapes, depending on the moment it happened
        return f"the connection was closed ({type(error).__name__}{': ' + text if text else ''})"
    return text


def _closed_before_the_greeting(error: BaseException) -> bool:
    """True when paramiko's "Error reading SSH protocol banner" came from the connection closing (EOF, reset), not from
    its deadline passing: the message is the same, the exception it was raised from says which."""
    return "protocol banner" in str(error) and isinstance(error.__context__, (EOFError, ConnectionError))


_SILENT = re.compile(r"Error reading SSH protocol banner|No existing session|Authentication timeout", re.IGNORECASE)
_CLOSED = re.compile(r"socket is closed|connection (was )?(dropped|reset|closed|aborted)|broken pipe", re.IGNORECASE)


def _ssh_exception() -> type[Exception]:
    import paramiko

    return paramiko.SSHException
