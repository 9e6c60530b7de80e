"""A TCP proxy on loopback that makes a real server slow: every chunk a client sends is
forwarded to the server ``delay`` seconds late (an S3 request is one chunk, so each request
takes ``delay`` seconds more). Answers travel back at once.

Used to make the moto S3 server answer late, so a mount check takes as long as a slow
campus S3 endpoint would — without touching the server or the client.
"""

from __future__ import annotations

import socket
import threading
import time

from hubtools.ports import free_port


class SlowProxy:
    """``with SlowProxy(target_port, delay) as proxy:`` — ``proxy.url`` reaches the target."""

    def __init__(self, target_port: int, delay: float, host: str = "127.0.0.1"):
        self.target = (host, target_port)
        self.delay = delay
        self.port = free_port()
        self.url = f"http://{host}:{self.port}"
        self._listener = socket.create_server((host, self.port))
        self._listener.settimeout(0.2)
        self._stopping = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="slow-proxy", daemon=True)

    def __enter__(self) -> "SlowProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(5)
        self._listener.close()
        with self._lock:
            for s in self._sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)  # an idle keep-alive connection may wait
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, self.delay), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, 0.0), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, delay: float) -> None:
        try:
            while not self._stopping.is_set():
                data = source.recv(65536)
                if not data:
                    break
                if delay:
                    time.sleep(delay)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            try:
                sink.shutdown(socket.SHUT_WR)
            except OSError:
                pass
