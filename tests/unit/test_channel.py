"""The direct call channel (actors/channel.py): a server and its callers over real sockets,
in this process or (to lose the server as a killed host is lost) in a child process."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from actors.channel import (
    DEAD_PEER_S,
    MAGIC,
    MAX_FRAME,
    ChannelAddress,
    ChannelClient,
    ChannelError,
    ChannelLost,
    ChannelServer,
)
from actors.remote import ActorRole, ActorUnavailable
from domain.partitions import NotOwned

ROLE = ActorRole.ORDER_HOST


class Target:
    def __init__(self) -> None:
        self.ran: list[str] = []

    async def echo(self, value: Any, delay: float = 0.0) -> Any:
        await asyncio.sleep(delay)
        return value

    async def refuse(self) -> None:
        raise NotOwned("o-1", 3)

    async def crash(self) -> None:
        raise RuntimeError("the database dropped")

    async def unpicklable(self) -> Any:
        return lambda: 1

    async def hang(self) -> None:
        await asyncio.Event().wait()

    async def secret(self) -> None:
        self.ran.append("secret")


SERVED = ("echo", "refuse", "crash", "unpicklable", "hang")


async def served() -> tuple[ChannelServer, Target, ChannelAddress]:
    target = Target()
    server = ChannelServer(target, SERVED)
    return server, target, await server.start("127.0.0.1")


@asynccontextmanager
async def connected(
    target: Target | None = None, methods: tuple[str, ...] = SERVED
) -> AsyncIterator[tuple[ChannelServer, Target, ChannelClient]]:
    """A server of `target`'s `methods` and a client connected to it, both closed after."""
    target = target or Target()
    server = ChannelServer(target, methods)
    client = await ChannelClient.connect(await server.start("127.0.0.1"), ROLE)
    try:
        yield server, target, client
    finally:
        client.close()
        await server.close()


async def test_overlapping_calls_on_one_connection_each_get_their_own_answer() -> None:
    async with connected() as (server, _, client):
        rng = random.Random(7)
        delays = [rng.uniform(0, 0.05) for _ in range(300)]
        answers = await asyncio.gather(
            *(client.call("echo", ({"n": i, "pad": "x" * i}, d)) for i, d in enumerate(delays))
        )
        assert answers == [{"n": i, "pad": "x" * i} for i in range(300)]
        assert server.calls == 300


async def test_a_refusal_comes_out_as_itself_and_a_failure_as_the_host_failing() -> None:
    async with connected() as (_server, _, client):
        with pytest.raises(NotOwned) as refused:
            await client.call("refuse", ())
        assert (refused.value.order_id, refused.value.host) == ("o-1", 3)
        with pytest.raises(ActorUnavailable) as failed:
            await client.call("crash", ())
        assert failed.value.role is ROLE
        assert failed.value.method == "crash"
        assert isinstance(failed.value.cause, RuntimeError)
        assert str(failed.value.cause) == "the database dropped"
        assert await client.call("echo", ("still open",)) == "still open"


async def test_only_the_calls_on_the_list_are_served() -> None:
    async with connected() as (_server, target, client):
        with pytest.raises(ActorUnavailable) as refused:
            await client.call("secret", ())
        assert isinstance(refused.value.cause, ChannelError)
        assert "no call 'secret'" in str(refused.value.cause)
        assert target.ran == []


async def test_an_answer_that_cannot_be_pickled_fails_that_call_only() -> None:
    async with connected() as (_server, _, client):
        with pytest.raises(ActorUnavailable) as failed:
            await client.call("unpicklable", ())
        assert isinstance(failed.value.cause, ChannelError)
        with pytest.raises(ActorUnavailable) as bad_args:
            await client.call("echo", (lambda: 2,))
        assert isinstance(bad_args.value.cause, ChannelError)
        assert await client.call("echo", (5,)) == 5


async def test_a_caller_without_the_token_is_not_served() -> None:
    server, _, address = await served()
    wrong = ChannelAddress(address.host, address.port, bytes(len(address.token)))
    client = await ChannelClient.connect(wrong, ROLE)
    with pytest.raises(ActorUnavailable) as unreachable:
        await client.call("echo", (1,))
    assert unreachable.value.cause is None
    assert client.lost
    assert server.calls == 0
    await server.close()


async def test_a_frame_past_the_bound_drops_the_connection() -> None:
    server, _, address = await served()
    reader, writer = await asyncio.open_connection(address.host, address.port)
    writer.write(MAGIC + address.token)
    writer.write((MAX_FRAME + 1).to_bytes(4, "big") + (1).to_bytes(8, "big") + b"\x00")
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, nothing read past it
    writer.close()
    await server.close()


async def test_nothing_listening_is_a_lost_channel() -> None:
    server, _, address = await served()
    await server.close()
    with pytest.raises(ChannelLost):
        await ChannelClient.connect(address, ROLE)


async def test_a_caller_that_gives_up_leaves_the_connection_usable() -> None:
    async with connected() as (_server, _, client):
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.call("hang", ()), 0.1)
        assert await client.call("echo", ("after",)) == "after"
        assert not client.lost


_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from actors.channel import ChannelServer

    class Target:
        async def hang(self):
            await asyncio.Event().wait()

    async def main():
        server = ChannelServer(Target(), ["hang"])
        address = await server.start("127.0.0.1")
        print(address.port, address.token.hex(), flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)


async def test_calls_in_flight_fail_as_unreachable_when_the_server_process_is_killed() -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CHILD,
        stdout=asyncio.subprocess.PIPE,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    try:
        assert child.stdout is not None
        port, token = (await asyncio.wait_for(child.stdout.readline(), 30)).decode().split()
        client = await ChannelClient.connect(
            ChannelAddress("127.0.0.1", int(port), bytes.fromhex(token)), ROLE
        )
        calls = [asyncio.ensure_future(client.call("hang", ())) for _ in range(20)]
        await asyncio.sleep(0.2)
        assert not any(c.done() for c in calls)
        child.send_signal(signal.SIGKILL)
        done = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 5)
        assert all(isinstance(e, ActorUnavailable) and e.cause is None for e in done)
        assert client.lost
        with pytest.raises(ActorUnavailable):
            await client.call("hang", ())
    finally:
        if child.returncode is None:
            child.kill()
        await child.wait()


class Big(Target):
    async def huge(self) -> bytes:
        return b"x" * (MAX_FRAME + 1)

    async def cancelled(self) -> None:
        raise asyncio.CancelledError


async def test_an_answer_past_a_frame_fails_alone_and_one_cancelled_in_the_host_is_lost() -> None:
    async with connected(Big(), ("huge", "cancelled", "echo")) as (_, _, client):
        with pytest.raises(ActorUnavailable) as too_big:
            await client.call("huge", ())
        assert isinstance(too_big.value.cause, ChannelError)
        with pytest.raises(ActorUnavailable) as lost:
            await client.call("cancelled", ())
        assert lost.value.cause is None  # as a call to a host that stopped
        assert await client.call("echo", ("open",)) == "open"
        assert not client.lost


async def test_both_ends_look_for_a_dead_peer() -> None:
    import socket

    async with connected() as (_, _, client):
        sock = client._writer.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == DEAD_PEER_S * 1000


class Incarnations:
    """An order host as its router sees it: `channel()` is the Ray call that gives the
    address of whichever incarnation now runs."""

    def __init__(self) -> None:
        self.asked = 0
        self.server: ChannelServer | None = None

    async def restart(self) -> None:
        self.server = ChannelServer(Target(), SERVED)
        await self.server.start("127.0.0.1")

    async def channel(self) -> ChannelAddress:
        self.asked += 1
        await asyncio.sleep(0.01)
        assert self.server is not None
        assert self.server.address is not None
        return self.server.address


async def test_a_router_opens_one_channel_per_host_and_a_new_one_once_it_is_lost() -> None:
    from actors.routing import OrderHosts

    router = OrderHosts(None, None)  # type: ignore[arg-type]  # (only its channels are used)
    host = Incarnations()
    await host.restart()
    opened = await asyncio.gather(
        *(router._channel(0, "actor-1", host, "echo") for _ in range(50))  # type: ignore[arg-type]
    )
    assert len({id(c) for c in opened}) == 1
    assert host.asked == 1
    first = opened[0]
    assert await first.call("echo", (1,)) == 1

    # Restarted in place (the same actor): the old connection is lost, the next call opens
    # one to the new incarnation.
    await host.restart()
    first.close()
    again = await router._channel(0, "actor-1", host, "echo")  # type: ignore[arg-type]
    assert again is not first
    assert host.asked == 2
    assert await again.call("echo", (2,)) == 2
    assert host.server is not None
    assert host.server.calls == 1

    # Replaced (another actor): the channel to the old one is closed.
    newer = await router._channel(0, "actor-2", host, "echo")  # type: ignore[arg-type]
    assert newer is not again
    assert again.lost
    assert await newer.call("echo", (3,)) == 3
    newer.close()
