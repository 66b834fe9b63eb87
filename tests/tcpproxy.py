"""A TCP relay on loopback that a test controls: forward, drop silently, or reset every connection.

`drop()` is the fault no sshd can produce by dying: packets vanish and nothing is closed. The relay stops
moving bytes both ways and keeps every socket open, so the client sees neither an answer nor an error,
exactly as when a switch or firewall in between starts discarding traffic. `heal()` moves bytes again.
"""

from __future__ import annotations

import select
import socket
import struct
import threading


class TcpProxy:
    """Relay 127.0.0.1:<port> to 127.0.0.1:<target>, with faults switched on and off by the test."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.dropping = threading.Event()
        self.closed = threading.Event()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        self.accepting = threading.Thread(target=self._accept, daemon=True, name=f"proxy-{self.port}")
        self.accepting.start()

    def drop(self) -> None:
        """From now on nothing passes either way, and nothing is closed."""
        self.dropping.set()

    def heal(self) -> None:
        """Let bytes pass again (what was held back is delivered late)."""
        self.dropping.clear()

    def reset(self) -> None:
        """Close every relayed connection with a TCP reset, as a rebooted middlebox would."""
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for sock in pair:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.close()
                except OSError:
                    pass

    def close(self) -> None:
        """Stop relaying and close everything; the port stops listening before this returns."""
        self.closed.set()
        try:  # close() alone leaves a thread blocked in accept() holding the port open; shutdown wakes it
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        self.accepting.join(timeout=5)
        self.reset()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        peers = {client: upstream, upstream: client}
        try:
            while not self.closed.is_set():
                if self.dropping.is_set():
                    self.closed.wait(0.02)  # read nothing: the bytes wait in the kernel, unanswered
                    continue
                ready, _, _ = select.select(list(peers), [], [], 0.05)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if self.dropping.is_set():
                        continue  # dropped on the way
                    peers[sock].sendall(data)
        except (OSError, ValueError):  # ValueError: reset() closed a socket under select (its fd is -1)
            return
        finally:
            for sock in peers:
                try:
                    sock.close()
                except OSError:
                    pass
