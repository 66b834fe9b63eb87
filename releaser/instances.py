"""Application instances on one server: which slot's release runs on which port, and the scripts that run them.

When the environment declares [application], every slot is a running instance: its own process on a port of
its own, started and stopped only through the declared commands (or systemd template unit). An instance keeps
its port for its life: staged on a free port, it becomes live when the front moves to that port, then backup
(still running, warm) when the next release goes live, and retired when no slot names its release any more.
Only then may it be stopped (prune, or a stage that needs its port).

    <root>/.releaser/instances/<port>.env   RELEASER_* of the instance on <port> (a systemd unit's EnvironmentFile)
    <root>/.releaser/instances/<port>.pid   its pid file, written by the start command (not used by a unit)
    <root>/.releaser/instances/<port>.told  only while a start waits: its input ended, stop waiting (Ctrl-C)

The planning here is pure (`plan_staging_instance`, `retired_instances`); the server scripts are constant text
taking every value as a positional argument, like releaser.remote, and each sits beside the parser of what it
prints. The three functions at the end run them through a Host they are given.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from releaser.bundle import validate_release_id
from releaser.config import Application, Environment, instance_socket_name
from releaser.errors import Cancelled, PlanRefused
from releaser.slots import SLOTS
from releaser.transport import Host


@dataclass(frozen=True)
class Instance:
    """One running (or recorded) instance: its port, release, pid, the health status it answers and the release it reports."""

    port: int
    release: str
    pid: int | None  # None: no process (it died, or was never started)
    health: int | None  # HTTP status of its health path; None: no answer
    reports: str | None  # the release id its answers name (the release header), when it says
    slot: str | None  # the slot that names its release; None: retired
    socket: bool | None = None  # with a socket front: whether its unix socket is there (None: no socket front)
    front: bool | None = None  # with a socket front: whether the front's link names this instance's socket

    @property
    def is_healthy(self) -> bool:
        """True when it answers its health path with a 2xx status (and, with a socket front, its socket is there)."""
        return self.health is not None and 200 <= self.health < 300 and self.socket is not False


@dataclass(frozen=True)
class ServerInstances:
    """What one server runs: its slots (slot -> release) and every recorded instance."""

    slots: dict[str, str]
    instances: tuple[Instance, ...]
    front: str | None = None  # with a socket front: the name its link holds ("" when there is no link)

    @property
    def front_problem(self) -> str | None:
        """Why the front's link does not send the public to the live instance (the socket way), or None."""
        if self.front is None or "live" not in self.slots:
            return None
        live = self.of_slot("live")
        if self.front == "":
            return "the front's link is missing: nginx has no instance to send the public to"
        if live is not None and self.front == instance_socket_name(live.port):
            return None
        named = next((i for i in self.instances if self.front == instance_socket_name(i.port)), None)
        where = (f"the {named.slot or 'retired'} instance of {named.release} on port {named.port}" if named is not None
                 else f"{self.front}, which no recorded instance listens on")
        return (f"the front's link names {where}, not the live instance"
                + (f" of {live.release} on port {live.port}" if live is not None else f" (none runs {self.slots['live']})"))

    def in_slot_order(self) -> tuple[Instance, ...]:
        """The instances as people read a server: live, backup, staging, then retired ones, each by port."""
        order = {slot: place for place, slot in enumerate(SLOTS)}
        return tuple(sorted(self.instances, key=lambda i: (order.get(i.slot or "", len(order)), i.port)))

    def of_release(self, release: str) -> Instance | None:
        """The instance running `release`, if any."""
        return next((i for i in self.instances if i.release == release), None)

    def of_slot(self, slot: str) -> Instance | None:
        """The instance of the release `slot` names, if any."""
        release = self.slots.get(slot)
        return self.of_release(release) if release else None


@dataclass(frozen=True)
class StagingStart:
    """How to bring up the staging release's instance: on which port, after stopping which retired instances."""

    release: str
    port: int
    stop_first: tuple[int, ...] = ()
    already_running: bool = False  # a healthy instance of the release runs: nothing to start
    restart: bool = False  # an unhealthy instance of the release is stopped and started again on its port


def plan_staging_instance(ports: Sequence[int], view: ServerInstances, release: str) -> StagingStart:
    """Choose the port for `release`'s staging instance; never one the live or backup instance holds.

    A healthy instance of the release already running is kept (staging the same release twice starts
    nothing); an unhealthy one is restarted on its port. Otherwise the first declared port with no instance
    is taken, else the first held by a retired instance, which is stopped first. Raises PlanRefused when
    the release is live or backup, or every port is held by an instance a slot names.
    """
    for guarded in ("live", "backup"):
        if view.slots.get(guarded) == release:
            raise PlanRefused(f"release {release} is the {guarded} release; its instance is not a staging instance",
                              hint="build the change as a new release id and stage that")
    current = view.of_release(release)
    if current is not None:
        if current.is_healthy and current.pid is not None:
            return StagingStart(release, current.port, already_running=True)
        return StagingStart(release, current.port, stop_first=(current.port,), restart=True)
    named = {i.port for i in view.instances if i.slot in ("live", "backup")}
    held = {i.port: i for i in view.instances}
    free = [port for port in ports if port not in held]
    if free:
        return StagingStart(release, free[0])
    retired = [port for port in ports if port not in named]
    if not retired:
        raise PlanRefused(f"every instance port ({_ports(ports)}) runs an instance a slot names",
                          hint="declare one more port in [application] ports (or the server's app_ports)")
    return StagingStart(release, retired[0], stop_first=(retired[0],))


def retired_instances(view: ServerInstances) -> list[Instance]:
    """Instances whose release no slot names: the ones prune may stop. Never the live, backup or staging one."""
    named = set(view.slots.values())
    return [instance for instance in view.instances if instance.release not in named]


# ---- server scripts, each beside its parser ----

# How an instance is found: the pid file its start command wrote (kill -0 says it runs), or systemd's MainPID.
_PID = r"""
instance_pid() {
  if [ "$mode" = unit ]; then
    p=$(systemctl show -p MainPID --value "${how%@.service}@$1.service" 2>/dev/null)
    [ -n "$p" ] && [ "$p" != 0 ] && echo "$p"
  elif [ -f ".releaser/instances/$1.pid" ]; then
    IFS= read -r p < ".releaser/instances/$1.pid" && [ -n "$p" ] && kill -0 "$p" 2>/dev/null && echo "$p"
  fi
  return 0
}
release_of() { sed -n 's/^RELEASER_RELEASE_ID=//p' ".releaser/instances/$1.env"; }
"""

_READ = _PID + r"""
cd "$1" 2>/dev/null || { echo noroot; exit 0; }
address=$2 health=$3 header=$4 mode=$5 how=$6 sockets=$7 link=${8:--}
for s in live backup staging; do [ -L "$s" ] && printf 'slot %s %s\n' "$s" "$(readlink "$s")"; done
# the front's link (the socket way): the instance socket it names, `-` when there is no link there
if [ "$link" != - ]; then if [ -L "$link" ]; then printf 'front %s\n' "$(readlink "$link")"; else echo 'front -'; fi; fi
for f in .releaser/instances/*.env; do
  [ -f "$f" ] || continue
  port=${f##*/}; port=${port%.env}
  answer=$(curl -g -s -m 2 -o /dev/null -D - -w 'code %{http_code}\n' "http://$address:$port$health" 2>/dev/null | tr -d '\r')
  code=$(printf '%s\n' "$answer" | sed -n 's/^code //p')
  reports=
  [ "$header" = - ] || reports=$(printf '%s\n' "$answer" | grep -i "^$header:" | head -n 1 | cut -d: -f2- | tr -d ' ')
  pid=$(instance_pid "$port")
  sock=-
  if [ "$sockets" != - ]; then if [ -S "$sockets/instance-$port.sock" ]; then sock=yes; else sock=no; fi; fi
  printf 'instance %s %s %s %s %s %s\n' "$port" "$(release_of "$port")" "${pid:--}" "${code:-000}" "${reports:--}" "$sock"
done
exit 0
"""

_START = _PID + r"""
cd "$1" || exit 3
port=$2 release=$3 slot=$4 address=$5 health=$6 timeout_ms=$7 mode=$8 how=$9 again=${10} stop_how=${11} stop_s=${12}
sock=${13}
d=$PWD/.releaser/instances
[ -d "releases/$release" ] || { echo "release $release is not on this server" >&2; exit 3; }
mkdir -p "$d" || exit 3
if [ -f "$d/$port.env" ]; then
  # again: the recorded instance of this very release, whose process is gone (a crash, a reboot), starts anew
  if [ "$again" != again ] || [ "$(release_of "$port")" != "$release" ]; then
    echo "port $port still has the instance of $(release_of "$port"); stop it first" >&2; exit 3
  fi
  pid=$(instance_pid "$port")
  [ -z "$pid" ] || { echo "the instance of $release on port $port runs (pid $pid) but does not answer GET $health; restart it with its own command, or stop it" >&2; exit 3; }
fi
code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://$address:$port/" 2>/dev/null)
case $code in 000|'') ;; *) echo "something not started by releaser already answers on $address:$port" >&2; exit 3 ;; esac
export RELEASER_RELEASE_ID="$release" RELEASER_RELEASE_DIR="$PWD/releases/$release" RELEASER_PORT="$port" \
  RELEASER_SLOT="$slot" RELEASER_ADDRESS="$address" RELEASER_PID_FILE="$d/$port.pid" RELEASER_ROOT="$PWD"
socket_line=
if [ "$sock" != - ]; then
  case $sock in /*) ;; *) sock=$PWD/$sock ;; esac
  mkdir -p "$(dirname "$sock")" || exit 3
  export RELEASER_SOCKET="$sock"; socket_line="RELEASER_SOCKET=$sock"
  rm -f "$sock"  # a socket left by an instance on this port that was killed: nothing listens on it (checked above)
fi
# recorded before the start, so an instance that half-started can still be found and stopped
printf '%s\n' "RELEASER_RELEASE_ID=$RELEASER_RELEASE_ID" "RELEASER_RELEASE_DIR=$RELEASER_RELEASE_DIR" \
  "RELEASER_PORT=$port" "RELEASER_SLOT=$slot" "RELEASER_ADDRESS=$address" "RELEASER_PID_FILE=$RELEASER_PID_FILE" \
  "RELEASER_ROOT=$RELEASER_ROOT" ${socket_line:+"$socket_line"} > "$d/$port.env.tmp" && mv -f "$d/$port.env.tmp" "$d/$port.env" || exit 3
rm -f "$d/$port.pid"
# told to stop waiting when this script's input ends: releaser closes it on Ctrl-C (so does a lost connection)
told=$d/$port.told
rm -f "$told"
exec 3<&0
( while IFS= read -r _; do :; done; : >"$told" ) <&3 >/dev/null 2>&1 &
listener=$!
exec 3<&-
trap 'kill "$listener" 2>/dev/null; wait "$listener" 2>/dev/null; rm -f "$told"' EXIT
# the start command's output goes to a file: a process it leaves running must not hold this session's streams
if [ "$mode" = unit ]; then
  systemctl start "${how%@.service}@$port.service" </dev/null >"$d/$port.start.log" 2>&1; rc=$?
else
  sh -c "$how" </dev/null >"$d/$port.start.log" 2>&1; rc=$?
fi
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
end=$(( $(now_ms) + timeout_ms ))
why= nosock=
while :; do
  [ "$rc" = 0 ] || { why="the start command exited $rc: $(tail -n 3 "$d/$port.start.log" | tr '\n' ' ')"; break; }
  [ ! -e "$told" ] || { why="releaser stopped waiting for it (Ctrl-C, or its connection was lost)"; break; }
  code=$(curl -g -s -m 2 -o /dev/null -w '%{http_code}' "http://$address:$port$health" 2>/dev/null)
  case $code in
    2??)
      if [ "$sock" = - ] || [ -S "$sock" ]; then pid=$(instance_pid "$port"); echo "started $port ${pid:--}"; exit 0; fi
      nosock="it answers GET $health on its port but made no unix socket at $sock within $((timeout_ms / 1000)) s (the front connects there: have it listen on RELEASER_SOCKET too)" ;;
    *) nosock= ;;
  esac
  if [ "$mode" != unit ] && [ -f "$d/$port.pid" ] && [ -z "$(instance_pid "$port")" ]; then
    why="its process ended before answering GET $health"; break
  fi
  [ "$(now_ms)" -lt "$end" ] || [ -z "$nosock" ] || { why=$nosock; break; }
  [ "$(now_ms)" -lt "$end" ] || { why="no answer to GET $health within $((timeout_ms / 1000)) s (last status ${code:-none})"; break; }
  sleep 0.05
done
# a failed start leaves nothing running behind it (after a Ctrl-C, the stage stops it itself: stop_started_instance)
if [ "$mode" = unit ]; then systemctl stop "${how%@.service}@$port.service" >/dev/null 2>&1
elif [ ! -e "$told" ] && [ -n "$stop_how" ]; then
  if command -v timeout >/dev/null 2>&1; then bound="timeout $stop_s"; else bound=; fi
  $bound sh -c "$stop_how" </dev/null >"$d/$port.stop.log" 2>&1 || true
fi
echo "the instance of $release on port $port did not start: $why" >&2
exit 4
"""

_STOP = _PID + r"""
cd "$1" || exit 3
port=$2 mode=$3 how=$4 timeout_ms=$5 which=$6
d=$PWD/.releaser/instances
[ -f "$d/$port.env" ] || exit 0
release=$(release_of "$port")
if [ "$which" = retired ]; then
  for s in live backup staging; do
    if [ "$(readlink "$s" 2>/dev/null)" = "releases/$release" ]; then
      echo "refusing to stop the instance of $release on port $port: $s points at it" >&2; exit 3
    fi
  done
fi
while IFS='=' read -r key value; do case $key in RELEASER_*) export "$key=$value" ;; esac; done < "$d/$port.env"
pid=$(instance_pid "$port")
if [ "$mode" = unit ]; then
  systemctl stop "${how%@.service}@$port.service" </dev/null >"$d/$port.stop.log" 2>&1; rc=$?
else
  sh -c "$how" </dev/null >"$d/$port.stop.log" 2>&1; rc=$?
fi
[ "$rc" = 0 ] || { echo "the stop command for port $port exited $rc: $(tail -n 3 "$d/$port.stop.log" | tr '\n' ' ')" >&2; exit 5; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
end=$(( $(now_ms) + timeout_ms ))
while [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; do
  [ "$(now_ms)" -lt "$end" ] || { echo "the instance of $release on port $port (pid $pid) still runs after its stop command" >&2; exit 5; }
  sleep 0.05
done
# a master that ended before its workers (gunicorn does when its socket file was removed) leaves them answering
while curl -s -m 1 -o /dev/null "http://${RELEASER_ADDRESS:-127.0.0.1}:$port/" 2>/dev/null; do
  [ "$(now_ms)" -lt "$end" ] || { echo "something still answers on port $port after the stop command of the instance of $release" >&2; exit 5; }
  sleep 0.05
done
[ -z "${RELEASER_SOCKET:-}" ] || rm -f "$RELEASER_SOCKET"  # its own socket, never the front's link
rm -f "$d/$port.env" "$d/$port.pid"
echo "stopped $port $release"
"""


def _script(name: str, body: str, *args: str) -> list[str]:
    return ["sh", "-c", body, f"releaser-{name}", *args]


def _how(application: Application) -> tuple[str, str]:
    return ("unit", application.unit) if application.unit else ("command", "")


def read_argv(application: Application, root: PurePosixPath, socket: PurePosixPath | None = None) -> list[str]:
    """Print the server's slots, where the front's link `socket` points (the socket way), and one line per recorded
    instance: port, release, pid, health status, reported release, and whether its unix socket is beside `socket`."""
    mode, unit = _how(application)
    return _script("instances", _READ, str(root), application.address, application.health_path,
                   application.release_header or "-", mode, unit, str(socket.parent) if socket is not None else "-",
                   str(socket) if socket is not None else "-")


def parse_instances(stdout: str) -> ServerInstances:
    """Read what `read_argv` printed (an app root that is not there reads as no slots and no instances)."""
    slots: dict[str, str] = {}
    rows = []
    front = None  # None: no socket front; "": the front's link is not there
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "slot":
            slots[parts[1]] = parts[2].removeprefix("releases/")
        elif line.startswith("front "):
            front = "" if line == "front -" else line.removeprefix("front ")
        elif len(parts) in (6, 7) and parts[0] == "instance" and parts[1].isdigit():
            _, port, release, pid, code, reports, *sock = parts
            rows.append((int(port), release, int(pid) if pid.isdigit() else None,
                         int(code) if code.isdigit() and code != "000" else None, None if reports == "-" else reports,
                         {"yes": True, "no": False}.get(sock[0]) if sock else None))
    by_release = {release: slot for slot, release in slots.items()}
    instances = tuple(Instance(port, release, pid, code, reports, by_release.get(release), socket,
                               None if front is None else front == instance_socket_name(port))
                      for port, release, pid, code, reports, socket in sorted(rows))
    return ServerInstances(slots, instances, front)


def start_argv(application: Application, root: PurePosixPath, port: int, release: str, slot: str, *,
               again: bool = False, socket: PurePosixPath | None = None) -> list[str]:
    """Record and start `release`'s instance on `port` with the declared command, then wait for its health path.

    Prints 'started <port> <pid>'; exits 4 with the reason when it never answers (and stops what it started),
    3 when the port is taken. It also stops waiting (exit 4) once its stdin ends, so run it with Host.start and
    end that input to stop it (Host.run gives a step /dev/null: it would stop at once). With `again`, the port's recorded instance of the same release whose process is
    gone is started anew (the server re-checks both). With `socket` (Environment.instance_socket) the instance is
    also told to listen on that unix socket, RELEASER_SOCKET, and counts as started once it is there too.
    """
    mode, unit = _how(application)
    return _script("start", _START, str(root), str(port), validate_release_id(release), slot, application.address,
                   application.health_path, str(math.ceil(application.start_timeout * 1000)), mode,
                   unit if mode == "unit" else application.start or "", "again" if again else "-",
                   "" if mode == "unit" else application.stop or "", str(math.ceil(application.stop_timeout)),
                   str(socket) if socket is not None else "-")


def stop_argv(application: Application, root: PurePosixPath, port: int, *, retired_only: bool = True) -> list[str]:
    """Stop the instance on `port` with the declared command, wait for its process to end, forget it.

    With `retired_only` (prune) the server refuses, exit 3, when a slot names the instance's release.
    Nothing recorded on the port is success: stopping twice is safe.
    """
    mode, unit = _how(application)
    return _script("stop", _STOP, str(root), str(port), mode, unit if mode == "unit" else application.stop or "",
                   str(math.ceil(application.stop_timeout * 1000)), "retired" if retired_only else "any")


# ---- through a Host: what fleet calls for stage, status and prune ----


def read_instances(host: Host, environment: Environment, root: PurePosixPath, *,
                   timeout: float | None = 30.0) -> ServerInstances:
    """Read one server's slots and instances (port, pid, health, reported release); empty without [application]."""
    application = environment.application
    if application is None:
        return ServerInstances({}, ())
    socket = environment.front_socket(environment.server(host.name))
    done = host.run(read_argv(application, root, socket), timeout=timeout)
    if not done.ok:
        raise PlanRefused(f"{host.name}: cannot read the instances: {done.reason()}")
    return parse_instances(done.stdout)


def start_staging_instance(host: Host, environment: Environment, root: PurePosixPath, release: str, *,
                           stop: Callable[[], bool] | None = None,
                           starting: Callable[[int], None] | None = None) -> Instance | None:
    """Start the instance of the staged `release` on its port and wait until it answers its health path.

    Stops the retired instance holding that port first. `starting(port)` is called just before the start,
    so a caller can stop what was started if it undoes the stage; once stop() is true (Ctrl-C) the server
    stops waiting for the health path at once and this raises Cancelled. Returns the healthy instance (None
    without [application]); raises PlanRefused naming the server and why when it does not come up.
    """
    application = environment.application
    if application is None:
        return None
    ports = environment.instance_ports(environment.server(host.name))
    plan = plan_staging_instance(ports, read_instances(host, environment, root), release)
    timeout = application.start_timeout + application.stop_timeout + 30.0
    if not plan.already_running:
        for port in plan.stop_first:
            _run(host, stop_argv(application, root, port, retired_only=not plan.restart), timeout, "stop")
        if starting is not None:
            starting(plan.port)
        socket = environment.instance_socket(environment.server(host.name), plan.port)
        _start(host, start_argv(application, root, plan.port, release, "staging", socket=socket), timeout, stop=stop)
    started = read_instances(host, environment, root).of_release(release)
    if started is None or not started.is_healthy:
        raise PlanRefused(f"{host.name}: the instance of {release} on port {plan.port} stopped answering after its start",
                          hint="look at its log, then run the stage again")
    return started


def start_again(host: Host, environment: Environment, root: PurePosixPath, release: str, port: int, slot: str, *,
                timeout: float) -> None:
    """Start anew the recorded instance of `release` on `port` whose process is gone (a crash, a reboot), and wait
    until it answers its health path: a warm backup that died must not stand between the on-call and a rollback.

    Raises PlanRefused naming the server and why when its process still runs or it does not come up.
    """
    application = environment.application
    socket = environment.instance_socket(environment.server(host.name), port)
    _start(host, start_argv(application, root, port, release, slot, again=True, socket=socket), timeout)


def stop_started_instance(host: Host, environment: Environment, root: PurePosixPath, release: str, port: int) -> None:
    """Stop the instance of `release` on `port` that a stage started and then gave up on (Ctrl-C), and forget it.

    Nothing is stopped when the port holds no instance of that release (its start was refused, say):
    whatever runs there was not started by that stage. Raises PlanRefused when the stop command fails.
    """
    application = environment.application
    instance = read_instances(host, environment, root).of_release(release)
    if instance is not None and instance.port == port:
        _run(host, stop_argv(application, root, port, retired_only=False), application.stop_timeout + 30.0, "stop")


def stop_retired_instances(host: Host, environment: Environment, root: PurePosixPath) -> list[Instance]:
    """Stop every instance no slot names (the server re-checks each against its slots); return those stopped."""
    application = environment.application
    if application is None:
        return []
    retired = retired_instances(read_instances(host, environment, root))
    for instance in retired:
        _run(host, stop_argv(application, root, instance.port), application.stop_timeout + 30.0, "stop")
    return retired


def _start(host: Host, argv: Sequence[str], timeout: float, *, stop: Callable[[], bool] | None = None) -> None:
    """Run a start script on a channel of its own, its stdin open: ending that input (once stop() is true) is the
    script's cue to stop waiting for the health path, so a Ctrl-C ends the wait at once instead of at start_timeout."""
    done = host.start(argv).wait(timeout, stop=stop)
    if stop is not None and stop():
        raise Cancelled(f"{host.name}: stopped waiting for the instance (Ctrl-C)")
    if not done.ok:
        raise PlanRefused(f"{host.name}: {done.reason()}",
                          hint="fix the [application] start and stop commands, or the release, then run it again")


def _run(host: Host, argv: Sequence[str], timeout: float, what: str) -> str:
    done = host.run(argv, timeout=timeout)
    if not done.ok:
        raise PlanRefused(f"{host.name}: {done.reason()}", hint=f"see the instance's {what} log under .releaser/instances/")
    return done.stdout


def _ports(ports: Sequence[int]) -> str:
    return ", ".join(str(port) for port in ports)
