"""A TCP proxy on loopback that can go silent: a half-open connection, made to order.

It forwards bytes both ways until told to hold. Holding a connection stops it
forwarding a single byte while its sockets stay open and acknowledged by the
kernel, as when a NAT or firewall silently drops a connection's state: neither
end hears an error, and TCP keepalives (answered by this proxy's kernel) do not
help. `hold_existing()` holds the connections open now while new ones pass;
`hold_all()` also holds every new one (accepted, never connected upstream).
`release()` lets go of what is held by closing it, as a NAT does in the end.

It runs its own asyncio loop in a thread, so sync and async tests can drive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

CHUNK = 64 * 1024


@dataclass(eq=False)
class _Link:
    """One client connection and its upstream, forwarding while `flowing` is set."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    flowing: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for writer in (self.client, self.upstream):
            if writer is not None:
                writer.close()


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._hold_new = False
        self.accepted = 0

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def hold_existing(self) -> int:
        """Stop forwarding on every connection open now; new ones still pass. Returns how many."""
        return int(self._call(self._hold(new_too=False)))

    def hold_all(self) -> int:
        """Hold the connections open now and every new one until `release()`."""
        return int(self._call(self._hold(new_too=True)))

    def release(self) -> int:
        """Close every held connection (the peers see it end) and pass new ones again."""
        return int(self._call(self._release()))

    @property
    def open_links(self) -> int:
        return int(self._call(self._count()))

    def _call(self, coroutine: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout=10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.close()
        self._links.clear()

    async def _count(self) -> int:
        return len(self._links)

    async def _hold(self, *, new_too: bool) -> int:
        self._hold_new = self._hold_new or new_too
        for link in self._links:
            link.flowing.clear()
        return len(self._links)

    async def _release(self) -> int:
        self._hold_new = False
        held = [link for link in self._links if not link.flowing.is_set()]
        for link in held:
            link.close()
            self._links.discard(link)
        return len(held)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        link = _Link(writer)
        self._links.add(link)
        if self._hold_new:
            return  # accepted, never connected upstream: the client waits in silence
        link.flowing.set()
        try:
            up_reader, link.upstream = await asyncio.open_connection(*self.target)
        except OSError:
            link.close()
            self._links.discard(link)
            return
        link.tasks = [
            asyncio.create_task(self._pipe(link, reader, link.upstream)),
            asyncio.create_task(self._pipe(link, up_reader, writer)),
        ]

    async def _pipe(
        self, link: _Link, source: asyncio.StreamReader, sink: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while True:
                await link.flowing.wait()
                data = await source.read(CHUNK)
                await link.flowing.wait()  # held meanwhile: what was read is never sent
                if not data:
                    break
                sink.write(data)
                await sink.drain()
        if link.flowing.is_set():  # a held link ends only on release
            link.close()
            self._links.discard(link)


@contextmanager
def tcp_proxy(target_host: str, target_port: int) -> Iterator[TcpProxy]:
    proxy = TcpProxy(target_host, target_port).start()
    try:
        yield proxy
    finally:
        proxy.stop()


def url_through(proxy: TcpProxy, url: str) -> str:
    """`url` (a database URL on loopback) with its port replaced by the proxy's."""
    parts = urlsplit(url)
    netloc = parts.netloc.replace(f":{parts.port}", f":{proxy.port}")
    return urlunsplit(parts._replace(netloc=netloc))


def target_of(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 5432
