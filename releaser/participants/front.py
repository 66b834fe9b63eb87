"""The nginx front on one server as a switch participant: what names the live upstream, replaced by rename.

Two ways, chosen by [application.front]. With `socket` the site's `upstream` names `server unix:SOCKET;`, a
symbolic link to the live instance's own unix socket beside it (instance-PORT.sock, where RELEASER_SOCKET
tells the instance to listen): moving traffic is renaming a new link over it, nginx is not reloaded, so no
client's connection to nginx is closed and requests in flight finish on the instance they started on. With
`include` the site's `upstream` block includes a file holding one `server ADDRESS:PORT;` line: moving
traffic is replacing that file and a graceful reload, which closes the idle keep-alive connections clients
hold to nginx's old workers (a client that sends a request at that moment and does not retry loses it).
No process starts or stops either way.

prepare  finds the instance of the release going live (staging's for a go-live, the warm backup's for a
         rollback) and checks it answers its health path on the server (on its socket too, with `socket`); runs
         `nginx -t` on today's configuration (`include`); reads today's include or link (kept in this process,
         nothing is left beside it); writes the new one as .releaser-next
commit   renames .releaser-next over the link, or over the include, then `nginx -t` (a refusal puts the old
         file back: nothing moved) and `nginx -s reload`; one round trip at the second
arm/go   (the socket way) a scheduled go-live starts the commit before T, blocked reading one line, and at T only
         writes "go" to it (releaser.arming); the include way's reload commits at the moment
verify   GETs the server's live URL until the front answers with the release going live: the release header, or
         without one ([application] release_header unset) the release marker (releaser.identity) through the front;
         a front answering with the old release is a stale copy (a cache, a reload that did not take); error
         answers from the new release, a few in a row, fail it at once (the public sees them); it stops when the
         coordinator says another participant's verify failed (stop_verifying)
revert   puts the link or include back as prepare read it, by the same kind of rename (and `nginx -t`, reload),
         then GETs until the front answers from the previous release (after a reload old workers take
         connections for a moment); safe to run twice
abort    removes .releaser-next
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from pathlib import PurePosixPath

from releaser.arming import GO_LINE_PY, NO_GO, ArmedScript, python_first
from releaser.config import Application, instance_socket_name
from releaser.identity import Served, judge_served, read_release_header, read_served
from releaser.participants import SwitchContext
from releaser.switch import StepFailed, unless_unsent
from releaser.transport import once_more_on_a_new_connection
from releaser.web import BODY_LIMIT, Probe, body_summary

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_SETTLED = 3  # answers in a row from the new release before verify believes the reload took
_SETTLE_SECONDS = 0.2  # ... spanning at least this long: after a reload nginx's old workers accept new connections
                       # until their shutdown signal is handled, a few ms after the new workers answer
_FAILING = 5  # failing answers in a row after the reload (the new release's, or any without a release header) that
              # fail verify at once: the public would otherwise see them until the deadline

# Shared by commit and revert: put today's include back as prepare read it ($previous: its bytes in base64, or
# `-` when there was none), by a rename. Nothing of it is kept on the server between commands.
_PUT_BACK = r"""
put_back() {
  rm -f "$include.releaser-back"
  if [ "$previous" = - ]; then
    rm -f "$include"
  else
    printf '%s' "$previous" | base64 -d > "$include.releaser-back" && mv -f "$include.releaser-back" "$include"
  fi
}
first_error() { printf '%s\n' "$1" | grep -v 'test failed' | tail -n 1; }
"""

# Shared by both ways' prepare: $port, the port of $release's instance on this server, which must answer $health
# there (exit 5 with `port N` when nothing answers: the caller starts it again if its process is gone).
_THE_INSTANCE = r"""
port=
for f in .releaser/instances/*.env; do
  [ -f "$f" ] || continue
  if [ "$(sed -n 's/^RELEASER_RELEASE_ID=//p' "$f")" = "$release" ]; then port=${f##*/}; port=${port%.env}; fi
done
[ -n "$port" ] || { echo "no instance of $release runs on this server; stage it again to start one" >&2; exit 3; }
code=$(curl -g -s -m 2 -o /dev/null -w '%{http_code}' "http://$address:$port$health" 2>/dev/null)
case $code in
  2??) ;;
  000|'') echo "port $port"; echo "the instance of $release on port $port does not answer GET $health (no answer)" >&2; exit 5 ;;
  *) echo "the instance of $release on port $port does not answer GET $health (status $code)" >&2; exit 4 ;;
esac
"""

_PREPARE = r"""
cd "$1" || exit 3
include=$2 release=$3 address=$4 health=$5; shift 5
""" + _THE_INSTANCE + r"""
out=$("$@" -q -t 2>&1) || { echo "nginx -t fails before the switch: $(printf '%s\n' "$out" | grep -v 'test failed' | tail -n 1)" >&2; exit 4; }
dir=$(dirname "$include")
[ -d "$dir" ] || mkdir -p "$dir" || exit 3
rm -f "$include.releaser-prev" "$include.releaser-absent" "$include.releaser-next"  # (older releasers kept these)
previous=-
if [ -f "$include" ]; then
  previous=$(base64 -w 0 < "$include") || { echo "cannot read $include" >&2; exit 3; }
fi
printf '# written by releaser: the live instance, release %s\nserver %s:%s;\n' "$release" "$address" "$port" \
  > "$include.releaser-next" || { echo "cannot write $include.releaser-next" >&2; exit 3; }
echo "port $port"
printf 'previous %s\n' "$previous"
"""

_COMMIT = _PUT_BACK + r"""
cd "$1" || exit 3
include=$2 previous=$3; shift 3
[ -f "$include.releaser-next" ] || { echo "the front was not prepared (no $include.releaser-next)" >&2; exit 3; }
mv -f "$include.releaser-next" "$include" || exit 3
if ! out=$("$@" -q -t 2>&1); then
  put_back
  echo "nginx -t refuses the new include, so nothing was switched here: $(first_error "$out")" >&2; exit 4
fi
date +%s.%N
out=$("$@" -s reload 2>&1) || { echo "nginx -s reload failed: $(first_error "$out")" >&2; exit 5; }
exit 0
"""

_RESTORE = _PUT_BACK + r"""
cd "$1" || exit 3
include=$2 previous=$3; shift 3
rm -f "$include.releaser-next"
put_back || { echo "cannot put $include back" >&2; exit 5; }
out=$("$@" -q -t 2>&1) || { echo "nginx -t fails on the restored include: $(first_error "$out")" >&2; exit 5; }
out=$("$@" -s reload 2>&1) || { echo "nginx -s reload failed: $(first_error "$out")" >&2; exit 5; }
exit 0
"""

_ABORT = r"""cd "$1" 2>/dev/null && rm -f "$2.releaser-next"; exit 0"""

# The socket way ([application.front] socket): nginx connects to the unix socket path `$sock` for every new
# upstream connection, and that path is a symbolic link to the live instance's own socket beside it
# (instance-PORT.sock). Moving traffic is renaming a new link over it, as the slot links move: nginx is not
# reloaded, so no connection a client holds to nginx is closed; requests under way finish on the old instance.
_PREPARE_LINK = r"""
cd "$1" || exit 3
sock=$2 release=$3 address=$4 health=$5
""" + _THE_INSTANCE + r"""
dir=$(dirname "$sock") name=instance-$port.sock
[ -S "$dir/$name" ] || { echo "port $port"; echo "the instance of $release on port $port has no unix socket at $dir/$name, where the front would connect" >&2; exit 6; }
code=$(curl -g -s -m 2 --unix-socket "$dir/$name" -o /dev/null -w '%{http_code}' "http://localhost$health" 2>/dev/null)
case $code in
  2??) ;;
  000|'') echo "the instance of $release does not answer GET $health on its socket $dir/$name (no answer), where the front would connect" >&2; exit 4 ;;
  *) echo "the instance of $release does not answer GET $health on its socket $dir/$name (status $code), where the front would connect" >&2; exit 4 ;;
esac
if [ -e "$sock" ] && [ ! -L "$sock" ]; then
  echo "$sock is not a symbolic link: releaser keeps it a link to the live instance's socket; let no process listen there (the instances listen on RELEASER_SOCKET)" >&2; exit 4
fi
previous=-
if [ -L "$sock" ]; then
  previous=$(readlink "$sock") || exit 3
  case $previous in *"
"*|-) echo "$sock links to a name releaser cannot hand back ($(printf '%s' "$previous" | tr '\n' ' ')): point it at the live instance's socket (ln -sfn instance-PORT.sock)" >&2; exit 4 ;; esac
fi
rm -f "$sock.releaser-next"
ln -s "$name" "$sock.releaser-next" || { echo "cannot make $sock.releaser-next" >&2; exit 3; }
echo "port $port"
printf 'previous %s\n' "$previous"
"""

_COMMIT_LINK = r"""
cd "$1" || exit 3
sock=$2 name=$3
if [ ! -L "$sock.releaser-next" ]; then
  # an armed commit whose rename and its bound came at the same instant moved it, and said it had not
  if [ "$(readlink "$sock" 2>/dev/null)" = "$name" ]; then date +%s.%N; exit 0; fi
  echo "the front was not prepared (no $sock.releaser-next)" >&2; exit 3
fi
mv -fT "$sock.releaser-next" "$sock" || exit 3
date +%s.%N
"""

# The same commit started ahead of a scheduled go-live (releaser.arming): it prints "armed" and waits for the
# line "go", then renames. Where the server has python3 that is one python3 process started ahead (nothing starts
# at T); else sh, whose gate shell becomes the `mv` at T. End of file before "go", or `bound` seconds without it,
# moves nothing: exit 8.
_ARMED_COMMIT_LINK_PY = GO_LINE_PY + r"""
os.chdir(sys.argv[1])
sock, bound = sys.argv[2], float(sys.argv[3])
if not os.path.islink(sock + ".releaser-next"):
    sys.stderr.write("the front was not prepared (no %s.releaser-next)\n" % sock)
    sys.exit(3)
deadline = time.monotonic() + bound
sys.stdout.write("armed\n")
sys.stdout.flush()
if not go_line(deadline):
    sys.stderr.write("no go line came (the connection closed, or %s s passed); nothing was switched here\n" % sys.argv[3])
    sys.exit(8)
try:
    os.rename(sock + ".releaser-next", sock)
except OSError as error:
    sys.stderr.write("mv: cannot move %s.releaser-next to %s: %s\n" % (sock, sock, error.strerror))
    sys.exit(3)
sys.stdout.write("%.6f\n" % time.time())
"""

_ARMED_COMMIT_LINK_SH = r"""
cd "$1" || exit 3
sock=$2 bound=$3
[ -L "$sock.releaser-next" ] || { echo "the front was not prepared (no $sock.releaser-next)" >&2; exit 3; }
echo armed
timeout "$bound" sh -c 'IFS= read -r word && [ "$word" = go ] || exit 8; exec mv -fT "$1.releaser-next" "$1"' \
  releaser-gate "$sock"
case $? in
  0) date +%s.%N; exit 0 ;;
  8|124|125|126|127) echo "no go line came (the connection closed, or $bound s passed); nothing was switched here" >&2; exit 8 ;;
  *) exit 3 ;;
esac
"""
_ARMED_COMMIT_LINK = python_first(_ARMED_COMMIT_LINK_PY) + _ARMED_COMMIT_LINK_SH  # python3 starts nothing at T

# The link as prepare found it: to the name it read (`-`: there was none), by the same kind of rename.
_RESTORE_LINK = r"""
cd "$1" || exit 3
sock=$2 previous=$3
rm -f "$sock.releaser-next" "$sock.releaser-back"
if [ "$previous" = - ]; then
  rm -f "$sock" || { echo "cannot remove $sock" >&2; exit 5; }
else
  { ln -s "$previous" "$sock.releaser-back" && mv -fT "$sock.releaser-back" "$sock"; } || { echo "cannot put $sock back" >&2; exit 5; }
fi
exit 0
"""


def _script(name: str, body: str, *args: str) -> list[str]:
    return ["sh", "-c", body, f"releaser-front-{name}", *args]


def prepare_argv(application: Application, root: PurePosixPath, release: str) -> list[str]:
    """Check `release`'s instance (and nginx, or the instance's socket), keep today's include or link aside and
    write the new one under a temporary name."""
    front = application.front
    if front.socket is not None:
        return _script("prepare", _PREPARE_LINK, str(root), front.socket, release, application.address,
                       application.health_path)
    return _script("prepare", _PREPARE, str(root), front.include, release, application.address,
                   application.health_path, *front.nginx)


def commit_argv(application: Application, root: PurePosixPath, previous: str | None = None,
                port: int | None = None) -> list[str]:
    """Rename the prepared link over the live one (to the instance on `port`), or the prepared include (`nginx -t`,
    graceful reload; a refusal puts back `previous`, what prepare read); prints the second of the move."""
    front = application.front
    if front.socket is not None:
        return _script("commit", _COMMIT_LINK, str(root), front.socket, instance_socket_name(port))
    return _script("commit", _COMMIT, str(root), front.include, _or_none(previous), *front.nginx)


def armed_commit_argv(application: Application, root: PurePosixPath, *, bound: float, python: bool = True) -> list[str]:
    """The socket way's commit, started ahead: prints "armed", renames the prepared link when the line "go" comes;
    exit 8, nothing moved, on end of file or after `bound` seconds without it. In python3 where the server has it
    (and `python`), so no process starts at T; else in sh."""
    return _script("commit", _ARMED_COMMIT_LINK if python else _ARMED_COMMIT_LINK_SH, str(root),
                   application.front.socket, f"{max(0.001, bound):.3f}")


def restore_argv(application: Application, root: PurePosixPath, previous: str | None = None) -> list[str]:
    """Put back the link or include as prepare read it: `previous` is the name the link held, or the include's
    bytes in base64 (None: there was none); the include way then runs `nginx -t` and a graceful reload."""
    front = application.front
    if front.socket is not None:
        return _script("restore", _RESTORE_LINK, str(root), front.socket, _or_none(previous))
    return _script("restore", _RESTORE, str(root), front.include, _or_none(previous), *front.nginx)


def _or_none(previous: str | None) -> str:
    """How the server scripts are told there was no link or include: `-` (neither a link name nor base64)."""
    return "-" if previous is None else previous


def abort_argv(application: Application, root: PurePosixPath) -> list[str]:
    """Remove the prepared include or link."""
    front = application.front
    return _script("abort", _ABORT, str(root), front.socket or front.include)


def participants(context: SwitchContext) -> list["ServerFront"]:
    """One front participant per server whose live slot moves, when [application.front] is declared.

    None for a rehearsal (it must not reload the real web server) or a switch that leaves live alone (a stage).
    """
    application = context.environment.application
    if application is None or application.front is None or context.rehearsal:
        return []
    fronts = []
    for server, plan in context.plans.items():
        change = next((c for c in plan.links if c.slot == "live" and c.new), None)
        if change is not None:
            fronts.append(ServerFront(context, server, change.new, change.old))
    return fronts


class ServerFront:
    """The nginx front of one server, moved from the instance of one release to another's."""

    def __init__(self, context: SwitchContext, server: str, release: str, previous: str | None) -> None:
        self.name = f"{server}:front"
        self.server = server
        self.context = context
        self.application: Application = context.environment.application
        self.host = context.hosts[server]
        self.root = context.roots[server]
        self.release = release
        self.previous = previous
        self.port: int | None = None
        self.found: str | None = None  # what prepare read: the link's name, or the include in base64 (None: none)
        self.moved_at: float | None = None
        self.started_again: str | None = None  # the instance prepare had to start again, said in the result
        self.probe: Probe | None = None  # verify's last failing answer through the front (body kept), once it failed
        self._stop = threading.Event()  # set by stop_verifying: the switch reverts, verify need not go on
        self._gate = ArmedScript(self.host)  # the socket way's commit started ahead of T, waiting for its go line

    def prepare(self, timeout: float) -> None:
        """Check the front answers, the instance going live answers (starting it again if its process is gone), and
        nginx's configuration or the instance's socket; write the new include or link aside."""
        end = time.monotonic() + timeout
        if self.application.front.socket is None or self.context.action != "rollback":
            # a link renamed while nginx is down harms nothing (nginx follows it when it runs again): a rollback that
            # withdraws a release from every other server must not wait for this one's nginx
            self._require_the_front_answers()
        done = self.host.run(prepare_argv(self.application, self.root, self.release), timeout=timeout)
        port = _port_in(done.stdout)
        # nothing answers on its port (its process died), or it runs without the socket the front connects to
        # (removed by hand, a restart that did not make it): start it again, as the stage would have
        if done.exit_code in (5, 6) and port is not None:
            self._start_again(port, stop_first=done.exit_code == 6, end=end)
            done = self.host.run(prepare_argv(self.application, self.root, self.release),
                                 timeout=max(1.0, end - time.monotonic()))
            port = _port_in(done.stdout)
        if not done.ok:
            raise StepFailed(f"front: {done.reason()}")
        self.port = port
        self.found = _previous_in(done.stdout)

    def _start_again(self, port: int, *, stop_first: bool, end: float) -> None:
        """Start the instance going live again on its port (stopping it first when its process still runs) and wait
        for its health path; StepFailed naming why when it does not come up."""
        from releaser.errors import PlanRefused
        from releaser.instances import start_again, stop_argv

        slot = "backup" if self.context.action == "rollback" else "staging"
        environment = self.context.environment
        try:
            if stop_first:
                stopped = self.host.run(stop_argv(self.application, self.root, port, retired_only=False),
                                        timeout=self.application.stop_timeout + 10.0)
                if not stopped.ok:
                    raise PlanRefused(f"{self.server}: {stopped.reason()}")
            start_again(self.host, environment, self.root, self.release, port, slot,
                        timeout=max(1.0, min(self.application.start_timeout + 10.0, end - time.monotonic() - 5.0)))
        except PlanRefused as refused:
            trouble = "had no unix socket where the front connects" if stop_first else "did not answer"
            raise StepFailed(f"front: the instance of {self.release} on port {port} {trouble}, and could not be "
                             f"started again: {refused.what.removeprefix(self.server + ': ')}") from None
        was = ("was running without its unix socket (where the front connects); it was stopped and started again"
               if stop_first else "was not running (its process was gone); it was started again")
        self.started_again = f"{self.server}: the {slot} instance of {self.release} on port {port} {was} before the switch"

    @property
    def warnings(self) -> list[str]:
        """What the switch's result says beyond OK: an instance prepare found dead and started again."""
        return [self.started_again] if self.started_again else []

    def _require_the_front_answers(self) -> None:
        """Refuse before anything moves when nothing answers at the server's live URL (nginx stopped): a reload
        would fail there after the other servers' fronts had moved."""
        url = self.context.environment.server(self.server).live_url + self.application.health_path
        status, _, _ = _get(url, None, timeout=max(1.0, self.context.environment.health.timeout))
        if status is None:
            raise StepFailed(f"front: nothing answers GET {url}: is nginx running on {self.server}? start it, check "
                             "that the page loads, then run the command again")

    def ready(self) -> str | None:
        """At the second, before anyone moves: why this front cannot be told to commit (its server's connection is gone)."""
        return self.host.broken()

    def arm(self, bound: float, timeout: float) -> None:
        """The socket way: start the commit ahead of a scheduled go-live's second, blocked until go() (the include
        way's reload is not armed: it commits at the moment)."""
        if self.application.front.socket is not None and self.port is not None:
            self._gate.arm(armed_commit_argv(self.application, self.root, bound=bound), timeout)

    def go(self) -> None:
        """Write the go line to the armed commit, if it is armed; never waits for its answer (commit reads it)."""
        self._gate.go()

    def commit(self, timeout: float) -> float | None:
        """Rename the prepared link over the live one, or the prepared include (then reload nginx gracefully); an
        armed commit told go is only read here."""
        done = self._gate.answer(timeout)
        if done is None or done.exit_code == NO_GO:
            self._gate.disarm()
            done = unless_unsent(lambda: self.host.run(commit_argv(self.application, self.root, self.found, self.port),
                                                       timeout=timeout), "front: ")
        moment = done.stdout.split()[0] if done.stdout.strip() else ""
        self.moved_at = float(moment) if moment.replace(".", "", 1).isdigit() else None
        if not done.ok:
            raise StepFailed(f"front: {done.reason()}", moved=done.exit_code not in (3, 4))
        return self.moved_at

    def verify(self, timeout: float) -> None:
        """GET the server's live URL until the front answers from the release going live, a few times in a row."""
        self._wait_for(self.release, timeout, stoppable=True)

    def _wait_for(self, release: str | None, timeout: float, *, stoppable: bool) -> None:
        """Until the front answers healthy from `release` _SETTLED times in a row (over _SETTLE_SECONDS after a
        reload: a renamed socket link leaves no old worker to answer); StepFailed when it fails _FAILING times in a
        row, or has not settled within twice [health] timeout (at most `timeout`)."""
        base = self.context.environment.server(self.server).live_url
        url = base + self.application.health_path
        deadline = time.monotonic() + min(timeout, self.context.environment.health.timeout * 2)
        in_a_row, failing, last, since = 0, 0, "", 0.0
        settle = 0.0 if self.application.front.socket is not None else _SETTLE_SECONDS
        while True:
            if stoppable and self._stop.is_set():  # stopped, not failed: its last answer is no failure to show
                self.probe = None
                raise StepFailed(f"front: verify stopped (another participant's verify failed); last answer: {last or 'none'}")
            left = max(0.5, deadline - time.monotonic())
            status, reports, body = _get(url, self.application.release_header, timeout=left)
            stale, named = None, None
            if self.application.release_header is None and status is not None and 200 <= status < 300:
                served = read_served(base, timeout=left)  # the marker, through the front
                stale, named = judge_served(served, release), served.release
                if stale is not None and named is not None:  # what to do about it is said once, by the way it moves
                    stale = f"GET {served.url} -> release {named}, expected {release}"
            good = status is not None and 200 <= status < 300 and stale is None and (
                self.application.release_header is None or reports == release)
            if good and in_a_row == 0:
                since = time.monotonic()
            in_a_row = in_a_row + 1 if good else 0
            if in_a_row >= _SETTLED and time.monotonic() - since >= settle:
                if stoppable:
                    self.probe = None
                return
            last = stale or f"GET {url} -> {status or 'no answer'}" + (f", release {reports}" if reports else "")
            if stoppable and not good:  # verify's last answer that failed: what its failure shows (not a revert's)
                head, more, cut = body_summary(body)
                self.probe = Probe(url, False, status, last, head, body_more=more, body_cut=cut)
            # an error status from the release going live (or from whatever answers, when nothing names it) is
            # that release failing where the public sees it: a few in a row and the switch reverts now
            failing = failing + 1 if _failing(status, reports, release, self.application.release_header) else 0
            if failing >= _FAILING:
                raise StepFailed(f"front: release {release} fails through the front: {last} ({failing} times in a row)")
            if time.monotonic() >= deadline:
                old = status is not None and 200 <= status < 300 and (reports or named) not in (None, release)
                why = (": " + self._why_the_old_release_answers() if old else "")
                raise StepFailed(f"front: expected release {release} from the front; {last}{why}")
            if not good or in_a_row >= _SETTLED:
                if stoppable:
                    self._stop.wait(0.02)  # ends early once stop_verifying is called
                else:
                    time.sleep(0.02)  # a revert: the stop a verify was given may already be set

    def _why_the_old_release_answers(self) -> str:
        """What to do when the front keeps answering from the release it left; by the way it moves, since a reload
        cannot fix an upstream that never connects through the link releaser renames."""
        socket = self.application.front.socket
        if socket is None:
            return "the front is serving a stale copy; reload nginx and purge any cache in front of it"
        return (f"nginx does not connect through {self.root / socket} (its upstream must name `server unix:"
                f"{self.root / socket};` and nothing else), or a cache in front of it serves a stale copy")

    def stop_verifying(self) -> None:
        """End a verify under way at its next look (the switch reverts: another participant's verify failed)."""
        self._stop.set()

    def revert(self, timeout: float) -> None:
        """Put the link or include back on the previous instance (and reload); once more on a new connection if it broke.

        nginx's reload is a signal: its old workers may still take new connections for a moment. The revert ends
        once the front answers from the previous release, so "back on" is said only when the public sees it.
        """
        self._gate.disarm()
        done = once_more_on_a_new_connection(self.host, 
            lambda: self.host.run(restore_argv(self.application, self.root, self.found), timeout=timeout))
        if not done.ok:
            raise StepFailed(f"front: {done.reason()}", moved=True)
        if self.previous is not None:
            try:
                self._wait_for(self.previous, timeout, stoppable=False)
            except StepFailed as failure:
                what = "link" if self.application.front.socket is not None else "include"
                raise StepFailed(f"{failure.detail} (after putting the {what} back)", moved=True) from None

    def abort(self, timeout: float) -> None:
        """Remove the prepared include or link; nginx was not touched."""
        self._gate.disarm()
        done = once_more_on_a_new_connection(self.host, 
            lambda: self.host.run(abort_argv(self.application, self.root), timeout=timeout))
        if not done.ok:
            raise StepFailed(f"front: {done.reason()}")



def _port_in(stdout: str) -> int | None:
    """The instance's port from prepare's `port N` line."""
    words = stdout.split()
    return int(words[1]) if len(words) >= 2 and words[0] == "port" and words[1].isdigit() else None


def _previous_in(stdout: str) -> str | None:
    """What prepare read, from its `previous ...` line: the name the link held, or the include's bytes in base64
    (`-`: there was none)."""
    line = next((line for line in stdout.splitlines() if line.startswith("previous ")), "previous -")
    name = line.removeprefix("previous ")
    return None if name == "-" else name


def _failing(status: int | None, reports: str | None, release: str | None, header: str | None) -> bool:
    """Whether an answer through the front is the release going live failing: an error status (5xx or 4xx) that
    names that release, or, when the instance names no release, any error status once nginx reloaded."""
    if status is None or status < 400:
        return False
    return reports == release if header else True


def public_release(application: Application, base_url: str, *, timeout: float) -> Served:
    """What the public sees through a server's front: the release the instance answering there names.

    Its release header on the health path when [application] declares one, else the release marker read
    through the front (releaser.identity); `status` shows it beside where the live link points.
    """
    if application.release_header:
        return read_release_header(base_url + application.health_path, application.release_header, timeout=timeout)
    return read_served(base_url, timeout=timeout)


def _get(url: str, header: str | None, *, timeout: float) -> tuple[int | None, str | None, bytes]:
    """GET url: its status, the release header's value and the body's first BODY_LIMIT + 1 bytes (None, None, b""
    when nothing answers)."""
    try:
        with _OPENER.open(urllib.request.Request(url, headers={"User-Agent": "releaser"}), timeout=timeout) as response:
            return response.status, response.headers.get(header) if header else None, response.read(BODY_LIMIT + 1)
    except urllib.error.HTTPError as error:
        body = error.read(BODY_LIMIT + 1) if error.fp else b""
        return error.code, error.headers.get(header) if header else None, body
    except (urllib.error.URLError, OSError):
        return None, None, b""
