"""The socket under every SSH connection: no small packet waits for a delayed ACK in either direction."""

import socket

import pytest

from releaser.transport import _PromptSocket

QUICKACK = getattr(socket, "TCP_QUICKACK", None)


class RecordingSocket:
    """A real socket that also notes the options set on it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.options = sock, []

    def recv(self, size: int) -> bytes:
        return self.sock.recv(size)

    def setsockopt(self, level: int, option: int, value: int) -> None:
        self.options.append(option)
        self.sock.setsockopt(level, option, value)


@pytest.fixture
def pair():
    """A TCP connection on loopback: (our end as connected by _PromptSocket, the peer's end)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        ours = _PromptSocket.connect("127.0.0.1", server.getsockname()[1], timeout=5)
        peer, _ = server.accept()
    yield ours, peer
    ours.close()
    peer.close()


def test_requests_leave_at_once(pair):
    ours, _ = pair
    assert ours.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


@pytest.mark.skipif(QUICKACK is None, reason="TCP_QUICKACK is Linux only")
def test_every_read_asks_for_a_quick_ack_again(pair):
    ours, peer = pair
    recording = RecordingSocket(ours._sock)
    prompt = _PromptSocket(recording)
    for chunk in (b"SSH-2.0-one\r\n", b"two"):
        peer.sendall(chunk)
        assert prompt.recv(64) == chunk
    assert recording.options == [QUICKACK, QUICKACK]  # the kernel leaves quick-ACK mode by itself


def test_a_closed_peer_reads_as_end_of_stream_without_asking(pair):
    ours, peer = pair
    recording = RecordingSocket(ours._sock)
    peer.close()
    assert _PromptSocket(recording).recv(64) == b""
    assert recording.options == []


def test_everything_else_is_the_socket_paramiko_expects(pair):
    ours, _ = pair
    ours.settimeout(0.25)
    assert ours.gettimeout() == 0.25
    assert ours.fileno() == ours._sock.fileno()
