"""SshHost over a real sshd: the long-lived shell that runs a command's steps returns exactly what an exec channel would."""

from __future__ import annotations

import threading
import time

import pytest

from releaser.errors import HostUnreachable
from releaser.fleet import make_hosts
from releaser.transport import SHELLS_KEPT, Completed, _Framed, _ShellPool

pytestmark = pytest.mark.ssh


@pytest.fixture
def web1(ssh_env):
    host = make_hosts(ssh_env)["web-1"]
    host.open()
    yield host
    host.close()


def test_steps_keep_their_own_exit_status_output_and_stderr(web1):
    assert web1.run(["sh", "-c", "printf 'no newline'; echo oops >&2; exit 7"]) == Completed(7, "no newline", "oops\n")
    assert web1.run(["sh", "-c", "exit 0"]) == Completed(0, "", "")  # `exit` ends the step, never the shell
    assert web1.run(["echo", "$(touch /tmp/PWNED)", "; rm -rf /", "`id`"]).stdout == "$(touch /tmp/PWNED) ; rm -rf / `id`\n"


def test_nothing_leaks_from_one_step_into_the_next(web1):
    web1.run(["sh", "-c", "cd /tmp"])
    web1.run(["env", "RELEASER_X=1", "true"])
    assert web1.run(["sh", "-c", "pwd; echo \"[$RELEASER_X]\""]).stdout.splitlines()[1] == "[]"
    assert web1.run(["cat"]).stdout == ""  # stdin is /dev/null: a step that reads it cannot swallow the next one


def test_a_megabyte_on_each_stream_at_once_does_not_deadlock(web1):
    script = "head -c 1048576 /dev/zero | tr '\\0' o; head -c 1048576 /dev/zero | tr '\\0' e >&2"
    done = web1.run(["sh", "-c", script])
    assert (len(done.stdout), len(done.stderr)) == (1048576, 1048576) and set(done.stdout) == {"o"} and set(done.stderr) == {"e"}


def test_a_step_leaving_a_process_in_the_background_returns_at_once(web1):
    started = time.monotonic()
    assert web1.run(["sh", "-c", "sleep 3 & echo started"]).stdout == "started\n"
    assert time.monotonic() - started < 2.5


def test_steps_from_two_threads_on_one_host_both_come_back_whole(web1):
    results = {}

    def run(tag: str) -> None:
        results[tag] = web1.run(["sh", "-c", f"sleep 0.2; echo {tag}"])

    threads = [threading.Thread(target=run, args=(tag,)) for tag in ("a", "b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {tag: done.stdout for tag, done in results.items()} == {"a": "a\n", "b": "b\n", "c": "c\n"}


def test_steps_at_once_come_back_to_the_shells_kept_for_them(web1):
    """A server's links and front commit at the same moment: both find a shell, and the same two every time."""
    web1.keep_shells(2)

    def shells_of_one_round() -> set[str]:
        seen = []
        threads = [threading.Thread(target=lambda: seen.append(web1.run(["sh", "-c", "sleep 0.3; echo $$", "releaser-test"]).stdout))
                   for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return set(seen)

    first = shells_of_one_round()
    assert len(first) == 2 and shells_of_one_round() == first == shells_of_one_round()


def test_the_shells_kept_are_bounded_and_a_broken_one_is_never_handed_out_again():
    pool = _ShellPool()
    closed = []

    class Shell:
        def close(self):
            closed.append(self)

    assert pool.missing(SHELLS_KEPT + 5) == SHELLS_KEPT  # sshd's sessions per connection are few
    assert pool.missing(SHELLS_KEPT) == 0  # already starting
    for _ in range(SHELLS_KEPT):
        pool.started(Shell())
    extra = Shell()
    pool.give_back(extra)
    assert closed == [extra]
    taken = [pool.take(within=0) for _ in range(SHELLS_KEPT + 1)]
    assert taken[-1] is None and all(taken[:-1])  # the one past them starts its own
    assert pool.missing(SHELLS_KEPT) == 0  # every one busy
    for _ in taken:
        pool.done_with()
    assert pool.missing(2) == 2 and pool.drain() == []


def test_a_step_waits_for_the_shell_already_starting_for_it_rather_than_starting_another():
    pool = _ShellPool()

    class Shell:
        def close(self):
            pass

    assert pool.missing(1) == 1
    spare = Shell()
    threading.Timer(0.2, pool.started, args=(spare,)).start()
    assert pool.take(within=5) is spare
    pool.done_with()
    assert pool.missing(1) == 1
    threading.Timer(0.2, pool.not_started).start()
    started = time.monotonic()
    assert pool.take(within=5) is None and time.monotonic() - started < 2  # it failed: the step starts its own
    pool.done_with()
    started = time.monotonic()
    assert pool.take(within=0.3) is None and time.monotonic() - started < 0.2  # nothing starting: no wait


def test_a_step_past_its_timeout_is_reported_and_the_next_step_gets_a_fresh_shell(web1):
    with pytest.raises(HostUnreachable, match=r"web-1: lost the connection to .* while running sleep: .*no answer within 0.5 s"):
        web1.run(["sleep", "5"], timeout=0.5)
    assert web1.run(["echo", "again"]).stdout == "again\n"


def test_a_server_dying_during_a_step_is_named(sshd_farm, web1):
    web1.run(["true"])
    sshd_farm.stop("web-1")
    with pytest.raises(HostUnreachable, match=r"web-1: .*(lost the connection|ssh to) "):
        web1.run(["true"])


def test_the_frame_skips_what_the_login_shell_printed_and_reassembles_split_chunks():
    frame = _Framed("m1")
    for chunk in (b"motd junk\nm", b"1\nline one\nno newline", b"\nm1 ", b"3\n"):
        assert not frame.done
        frame.feed(chunk)
    assert frame.done and (frame.text(), frame.status) == ("line one\nno newline", "3")


def test_a_closed_stream_is_a_lost_server():
    with pytest.raises(EOFError):
        _Framed("m1").feed(b"")


def test_releaser_scripts_run_in_the_shell_with_their_arguments_untouched(web1):
    script = ["sh", "-c", 'cd /tmp; echo "$#|$1|$2"; exit 5', "releaser-test", "a b", "$(touch /tmp/PWNED) `id` ;|&"]
    assert web1.run(script) == Completed(5, "2|a b|$(touch /tmp/PWNED) `id` ;|&\n", "")
    assert web1.run(["sh", "-c", 'pwd; echo "$#"', "releaser-test"]).stdout.splitlines()[1] == "0"


def test_connections_started_in_the_background_hand_their_failure_to_open(sshd_farm, ssh_env):
    sshd_farm.stop("web-2")
    hosts = make_hosts(ssh_env, start=True)
    try:
        hosts["web-1"].open()
        assert hosts["web-1"].run(["echo", "up"]).stdout == "up\n"
        with pytest.raises(HostUnreachable, match=r"web-2: ssh to root@127\.0\.0\.1:\d+ failed: .*refused"):
            hosts["web-2"].open()
    finally:
        for host in hosts.values():
            host.close()


def test_a_connection_closed_before_the_greeting_is_not_called_silent(tmp_path):
    """QA: in front of a dead sshd, a relay (as a load balancer does) accepted and closed at once; releaser said
    "no SSH greeting within 2 s ... may be silent" after 0.1 s. A close is named as a close; a listener that
    never speaks is still the silent case, after the connect deadline."""
    import socket

    from releaser.transport import SshHost

    closing, quiet = socket.socket(), socket.socket()
    for listener in (closing, quiet):
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)

    def close_each():
        while True:
            try:
                conn, _ = closing.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=close_each, daemon=True).start()
    try:
        for listener, expected in ((closing, r"the connection was closed or reset before the SSH greeting \(is sshd running there"),
                                   (quiet, r"no SSH greeting within 1 s: the server, or the network to it, may be silent")):
            host = SshHost("web-9", "127.0.0.1", port=listener.getsockname()[1], user="root",
                           known_hosts=str(tmp_path / "none"), check_host_keys=False, connect_timeout=1.0)
            started = time.monotonic()
            with pytest.raises(HostUnreachable, match=expected):
                host.open()
            took = time.monotonic() - started
            assert took < 0.9 if listener is closing else took >= 0.9, took
            host.close()
    finally:
        closing.close(), quiet.close()


def test_a_server_that_did_not_answer_a_new_connection_is_not_waited_for_again_in_the_same_command(sshd_farm, tmp_path):
    """A frozen server (a paused VM): the first reconnect waits out connect_timeout; two more at once (a switch's
    links and front both reverting), and a step after them, fail at once instead of waiting it out again."""
    from conftest import PROJECT, ssh_environment_for
    from releaser.config import load_environment

    env_file = tmp_path / "env.toml"
    ssh_environment_for(sshd_farm, env_file)
    env_file.write_text(env_file.read_text().replace("connect_timeout = 5.0", "connect_timeout = 1.0"))
    host = make_hosts(load_environment(str(env_file), PROJECT))["web-1"]
    host.open()
    sshd_farm.freeze("web-1")
    try:
        started = time.monotonic()
        with pytest.raises(HostUnreachable):
            host.reconnect()
        first = time.monotonic() - started
        errors = []

        def again() -> None:
            try:
                host.reconnect()
            except HostUnreachable as error:
                errors.append(str(error))

        started = time.monotonic()
        threads = [threading.Thread(target=again) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with pytest.raises(HostUnreachable, match="did not answer earlier in this command"):
            host.run(["true"])
        later = time.monotonic() - started
    finally:
        sshd_farm.thaw("web-1")
    assert first >= 0.9 and later < 0.5, (first, later)
    assert len(errors) == 2 and all("no new connection tried" in e for e in errors), errors
    host.reconnect(even_if_unanswered=True)  # a page left open all morning tries again, and finds it back
    assert host.run(["echo", "back"]).stdout == "back\n"
    host.close()
