"""One pipelined connection to Redis for the gate's script calls, without redis-py's per-command
machinery.

Every signed request waits on one gate check (`persistence.redis_store.RedisGate`). Through
redis-py a command cost about 210 µs of the API process's CPU on this machine (a PING; the
gate's EVALSHA about 330), most of it the client around the socket: the pool's checkout and
release, a task per reply timeout, observability hooks. The same PING written on one
connection and read back with hiredis cost 60 µs.

`RedisPipe` keeps one connection. Commands are written as they come and their replies are
read in order (RESP2, parsed by hiredis), so any number may be in flight at once. Each reply
is awaited at most `timeout_s`. Any failure (a reply that does not come in time, a lost or
refused connection, bytes that are not RESP) closes the connection and fails every command
waiting on it, since after a missing reply the rest cannot be matched to their commands. The
next command connects anew. An error reply (`-ERR …`, `-NOSCRIPT …`) fails only its own
command, as `RedisReplyError`.

Only a plain TCP connection is made here, with the URL's user, password and database
(`from_client` reads them from a redis-py client's pool). For TLS, a Unix socket, a
credential provider or a cluster client `from_client` returns None, and the gate keeps
redis-py. Unlike redis-py, a server still loading its data set (`-LOADING`) is not waited
for: the call fails (and the gate with it, closed) until it is ready.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, cast

import hiredis
import redis.asyncio
import redis.exceptions

_DEFAULT_TIMEOUT_S = 5.0


class RedisReplyError(redis.exceptions.ResponseError):
    """Redis answered a command with an error."""


class _Connection(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.closed = False
        self._reader = hiredis.Reader()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses, but have its methods.)
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._reader.feed(data)
            while (reply := self._reader.gets()) is not False:
                future = self.waiting.popleft()  # (an empty queue: bytes nobody asked for)
                if future.done():  # its caller gave up (cancelled); the reply is dropped
                    continue
                if isinstance(reply, hiredis.ReplyError):
                    future.set_exception(RedisReplyError(str(reply)))
                else:
                    future.set_result(reply)
        except Exception as exc:  # not RESP, or more replies than commands
            self.fail(ConnectionError(f"redis: unreadable reply ({exc!r})"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(ConnectionError(f"redis: connection lost ({exc!r})"))

    def fail(self, exc: Exception) -> None:
        """Close the connection and fail every command waiting on it."""
        self.closed = True
        if self.transport is not None and not self.loop.is_closed():
            self.transport.abort()
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(exc)


def _expire(connection: _Connection, future: asyncio.Future[Any]) -> None:
    if not future.done():
        connection.fail(TimeoutError("redis: no reply in time"))


class RedisPipe:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        db: int = 0,
        timeout_s: float = _DEFAULT_TIMEOUT_S,
        connect_timeout_s: float = _DEFAULT_TIMEOUT_S,
    ) -> None:
        self._host, self._port = host, port
        self._hello: list[tuple[Any, ...]] = []
        if username or password:  # as redis-py: a user alone logs in with an empty password
            self._hello.append(
                ("AUTH", username, password or "") if username else ("AUTH", password)
            )
        if db:
            self._hello.append(("SELECT", db))
        self._timeout = timeout_s
        self._connect_timeout = connect_timeout_s
        self._connection: _Connection | None = None
        self._connecting: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    @classmethod
    def from_client(cls, client: redis.asyncio.Redis) -> RedisPipe | None:
        """A pipe to the Redis `client` talks to, with its credentials, database and
        timeouts; None when it does not connect over plain TCP."""
        pool = getattr(client, "connection_pool", None)  # (a cluster client has none)
        if pool is None or pool.connection_class is not redis.asyncio.Connection:
            return None
        kw = pool.connection_kwargs
        if kw.get("credential_provider") is not None:
            return None
        return cls(
            str(kw.get("host", "localhost")),
            int(kw.get("port", 6379)),
            username=kw.get("username"),
            password=kw.get("password"),
            db=int(kw.get("db") or 0),
            timeout_s=kw.get("socket_timeout") or _DEFAULT_TIMEOUT_S,
            connect_timeout_s=kw.get("socket_connect_timeout") or _DEFAULT_TIMEOUT_S,
        )

    async def call(self, *args: str | bytes | int) -> Any:
        """Send one command and return its reply (bytes, int, list, None)."""
        connection = self._connection
        loop = asyncio.get_running_loop()
        if connection is None or connection.closed or connection.loop is not loop:
            connection = await self._connect()
        return await self._send(connection, args)

    async def _send(self, connection: _Connection, args: tuple[Any, ...]) -> Any:
        if connection.transport is None or connection.closed:
            raise ConnectionError("redis: connection closed")
        frame = hiredis.pack_command(args)  # (raises before anything is queued or written)
        future: asyncio.Future[Any] = connection.loop.create_future()
        connection.waiting.append(future)
        connection.transport.write(frame)
        expiry = connection.loop.call_later(self._timeout, _expire, connection, future)
        try:
            return await future
        finally:
            expiry.cancel()

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        if self._connecting is None or self._connecting[0] is not loop:
            # A connection, and a lock, belong to one event loop: another loop starts over.
            self._connecting = (loop, asyncio.Lock())
            self.close()
        # One attempt at a time (the others use its connection), and a caller waits one
        # connect timeout in all, however many attempts are queued before it.
        async with asyncio.timeout(self._connect_timeout), self._connecting[1]:
            current = self._connection
            if current is not None and not current.closed and current.loop is loop:
                return current
            connection = _Connection(loop)
            try:
                await loop.create_connection(lambda: connection, self._host, self._port)
                for command in self._hello:
                    await self._send(connection, command)
            except BaseException as exc:
                connection.fail(ConnectionError(f"redis: could not connect ({exc!r})"))
                raise
            self._connection = connection
            return connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.fail(ConnectionError("redis: pipe closed"))
            self._connection = None
