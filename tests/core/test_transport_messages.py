"""How transport words a server that went away: one phrase whatever shape the error arrived in."""

import pytest

from releaser.transport import _why


@pytest.mark.parametrize("error", [
    EOFError(),
    OSError("Socket is closed"),
    ConnectionResetError(104, "Connection reset by peer"),
    BrokenPipeError(32, "Broken pipe"),
    Exception("Server connection dropped: "),
    Exception(""),
], ids=["eof", "socket-closed", "reset", "broken-pipe", "dropped", "no-text"])
def test_a_lost_server_reads_the_same_whatever_the_error(error):
    assert _why(error).startswith("the connection was closed (")


def test_other_errors_keep_their_own_words():
    assert _why(OSError("No route to host")) == "No route to host"


def test_a_failed_sftp_write_names_the_disk():
    """OpenSSH's sftp-server answers a write on a full disk (and a few other failures) with one bare "Failure"."""
    assert _why(OSError("Failure")) == 'the server could not write it, SFTP answered "Failure" (is its disk full?)'
    assert _why(OSError(5, "Failure")) != _why(OSError("Failure"))  # a local errno is not the server's answer


def test_a_refused_connection_says_nothing_listens():
    """Not "the connection was closed": nothing was ever open, and the fix is on the server (sshd, port)."""
    assert _why(ConnectionRefusedError(111, "Connection refused")).startswith("connection refused: nothing listens")
