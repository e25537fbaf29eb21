"""Resumes when things go wrong: a slow client during a replay (the replay waits for room in
its buffer; a shutdown does not wait for it), a second resume while one runs (``resume_in_progress``), the replay-slot limit
shared fairly, and the broker lost in the middle of a replay (``resync_required``, then
live)."""

from __future__ import annotations

import asyncio
import os
import socket
from urllib.parse import urlsplit
from uuid import uuid4

import orjson
import pytest

from services.auth import mint_token
from services.gateway.connections import CLOSE_TIMEOUT
from services.gateway.limits import ReplaySlots
from tests.integration.gateway.support import event_frame, without_token
from tests.integration.gateway.test_flow_control import RawSocket
from tests.integration.publishing.proxy import TcpProxy
from tests.support import TEST_SECRET, wait_until

BIG = 16_000  # bytes of text per event: a few fill the socket's buffer
BACKLOG = 400  # events missed: more than the replay's prefetch (256)
KERNEL_SEND_BUFFER = 65_536  # the gateway's side of the slow socket (the kernel doubles it)


class SlowSocket(RawSocket):
    """A raw socket that stays unread until the test reads it."""

    def send_text(self, payload: dict) -> None:
        data, mask = orjson.dumps(payload), os.urandom(4)
        assert len(data) < 65536
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        head = bytes([0x81, 0x80 | 126]) + len(data).to_bytes(2, "big")
        self.writer.write(head + mask + masked)

    async def json_frame(self) -> dict:
        opcode, payload = await asyncio.wait_for(self.read_frame(), 15)
        assert opcode == 0x1, (opcode, payload[:2])
        return orjson.loads(payload)


async def _token_of(gateway, publisher, customer, agent) -> str:
    client = await gateway.connect(customer, agent)
    await client.subscribe(f"agent:{agent}")
    await publisher.publish("message_created", customer, uuid4(), [agent])
    token = (await client.frame())["resume_token"]
    await client.close()
    return token


async def _slow_resume(gateway, publisher) -> tuple[SlowSocket, list[dict], str]:
    """A slow client resuming a backlog of big events; returns once the replay waits for
    room in its send buffer (the socket reads nothing meanwhile)."""
    customer, a = uuid4(), uuid4()
    token = await _token_of(gateway, publisher, customer, a)
    missed = [await publisher.publish("message_created", customer, uuid4(), [a],
                                      {"text": "x" * BIG, "n": i}) for i in range(BACKLOG)]
    await wait_until(lambda: _async(not _sockets_of(gateway, a)), what="the first socket to go")
    slow = await SlowSocket.connect(gateway.base_url, mint_token(TEST_SECRET, customer, a))
    conn = (await wait_until(lambda: _async(_sockets_of(gateway, a)), what="the slow socket"))[0]
    # The kernel's send buffer grows up to tcp_wmem's max (4 MiB here, more elsewhere): pinned
    # small, the backlog is far more than the kernel holds, on any host.
    conn.transport.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_SNDBUF, KERNEL_SEND_BUFFER)
    slow.send_text({"type": "subscribe", "topics": [f"agent:{a}"], "resume_token": token})

    async def waiting_for_room() -> bool:  # the replay is held back by the full buffer
        return conn.replay is not None and conn._pending_bytes > conn.limit // 2  # noqa: SLF001

    await wait_until(waiting_for_room, timeout=15, what="the replay to wait for room")
    return slow, missed, f"agent:{a}"


def _sockets_of(gateway, agent) -> list:
    return [c for c in gateway.hub.connections() if c.agent_id == str(agent)]


async def _async(value):
    return value


@pytest.fixture()
def small_buffers(gateway_settings):
    return gateway_settings.model_copy(update={"gateway_send_buffer_bytes": 65_536})


async def test_a_resume_waits_for_a_slow_clients_buffer_and_loses_nothing(
        small_buffers, start_gateway, publisher):
    gateway = await start_gateway(small_buffers)
    slow, missed, topic = await _slow_resume(gateway, publisher)
    assert await slow.json_frame() == {"type": "subscribed", "topics": [topic]}
    got = [without_token(await slow.json_frame()) for _ in missed]
    assert got == [event_frame(m, topic) for m in missed]
    slow.writer.close()


async def test_a_shutdown_does_not_wait_for_a_client_that_reads_nothing(
        small_buffers, start_gateway, publisher):
    gateway = await start_gateway(small_buffers)
    slow, _, _ = await _slow_resume(gateway, publisher)  # its writer waits on the transport
    # The closing handshake cannot finish: the link is aborted CLOSE_TIMEOUT after it began.
    await asyncio.wait_for(gateway.stop(), CLOSE_TIMEOUT + 5)
    assert len(gateway.hub) == 0
    slow.writer.close()


async def test_replay_slots_are_shared_fairly_and_a_second_resume_is_refused(
        gateway, publisher):
    hub = gateway.hub
    hub.replay_slots = ReplaySlots(2, per_customer=2, per_agent=1)
    customer, a, b = uuid4(), uuid4(), uuid4()
    token_a = await _token_of(gateway, publisher, customer, a)
    token_b = await _token_of(gateway, publisher, customer, b)
    missed_a = [await publisher.publish("message_created", customer, uuid4(), [a])
                for _ in range(5)]
    missed_b = [await publisher.publish("message_created", customer, uuid4(), [b])
                for _ in range(5)]

    held, release = asyncio.Event(), asyncio.Event()

    async def hold_as_a() -> None:  # another resume of agent a, holding its one slot
        async with hub.replay_slots.hold(str(customer), str(a)):
            held.set()
            await release.wait()

    holder = asyncio.create_task(hold_as_a())
    await held.wait()
    client_a = await gateway.connect(customer, a)
    await client_a.subscribe(f"agent:{a}", resume_token=token_a)  # queues behind a's own
    await client_a.send({"type": "subscribe", "topics": [f"agent:{a}"],
                         "resume_token": token_a})
    frame = await client_a.frame()
    assert (frame["type"], frame["error"]) == ("error", "resume_in_progress")

    client_b = await gateway.connect(customer, b)  # not held up by agent a's resumes
    await client_b.subscribe(f"agent:{b}", resume_token=token_b)
    assert [without_token(f) for f in await client_b.frames(5)] == [
        event_frame(m, f"agent:{b}") for m in missed_b]
    conn_a = next(c for c in hub.connections() if c.agent_id == str(a))
    assert conn_a.replay is not None  # still queued

    release.set()
    await holder
    assert [without_token(f) for f in await client_a.frames(5)] == [
        event_frame(m, f"agent:{a}") for m in missed_a]


@pytest.fixture()
async def proxied_gateway(small_buffers, start_gateway):
    target = urlsplit(small_buffers.amqp_url)
    proxy = await TcpProxy(target.hostname or "127.0.0.1", target.port or 5672).start()
    try:
        gateway = await start_gateway(small_buffers.model_copy(update={
            "amqp_url": proxy.url(target.username or "guest", target.password or "guest")}))
        yield proxy, gateway
    finally:
        await proxy.close()


async def test_the_broker_lost_during_a_resume_gives_resync_required_then_live(
        proxied_gateway, publisher):
    proxy, gateway = proxied_gateway
    slow, missed, topic = await _slow_resume(gateway, publisher)
    proxy.cut()  # only the gateway's connections go through the proxy
    assert await slow.json_frame() == {"type": "subscribed", "topics": [topic]}
    replayed = []
    while (frame := await slow.json_frame())["type"] != "resync_required":
        replayed.append(without_token(frame))
    assert replayed == [event_frame(m, topic) for m in missed[:len(replayed)]]
    assert len(replayed) < len(missed)

    proxy.restore()
    ready = gateway.hub.feed.ready

    async def attached() -> bool:
        return ready.is_set()

    await wait_until(attached, timeout=20, what="the gateway to re-attach")
    live = await publisher.publish("message_updated", customer_of(missed), uuid4(),
                                   audience_of(missed))
    assert without_token(await slow.json_frame()) == event_frame(live, topic)
    slow.writer.close()


def customer_of(bodies: list[dict]) -> str:
    return bodies[0]["customer_id"]


def audience_of(bodies: list[dict]) -> list[str]:
    return bodies[0]["audience"]
