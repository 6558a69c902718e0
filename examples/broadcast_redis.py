"""Broadcast across worker processes, and machines, through Redis pub/sub.

    python examples/broadcast_redis.py --redis redis://127.0.0.1:6379/0 --port 9001 --workers 2

Every TEXT or BINARY message a client sends reaches every client of every worker
(its sender included), exactly once, in the order its sender sent it.  The workers
share the port as in multiprocess_server.py; each keeps its own clients and relays
through one Redis channel (``pip install redis``; Debian ``redis-server``):

* A worker publishes what its clients send from one task, over one connection, in
  the order the messages arrived (pipelined in batches).  Redis hands a channel's
  messages to every subscriber in the order they were published, so per-sender order
  holds everywhere.  On Redis each message is one byte of kind (``T``/``B``) and the
  payload.
* A worker subscribes (and waits for Redis to confirm) before it says it is ready,
  then sends each published message to its own clients.

Slow clients.  ``send`` never blocks: what a socket cannot take waits in that
connection's write buffer, and waiting for one client would stall everyone else.
A client that reads slowly still gets everything; one that has stopped reading is
disconnected:

* stalled: its write buffer is over the high-water mark (picows called
  ``pause_writing``) and not one byte of it has drained for ``--stall-timeout``
  seconds (10).  A burst that a client is still working through does not count;
* or its unsent data passes ``--max-buffer`` (16 MiB), whatever its pace: a bound
  on the memory one client can hold.

It is disconnected at once, without a closing handshake (a CLOSE frame would wait
behind the data it is not reading); its queued messages go with it.  It sees an
abnormal closure (1006) and must reconnect and catch up from the application's own
state.  Nobody else waits or loses anything.  Skipping messages for a slow client
instead would silently break "every message, in order".

Redis pub/sub delivers at most once: messages published while a worker is not
connected are lost to it, and Redis drops a subscriber whose own buffer passes
``client-output-buffer-limit pubsub`` (32 MiB by default).  A worker that loses Redis
exits, and the supervisor stops the service (for systemd to restart).  Use Redis
Streams when clients must be able to replay what they missed.  Nothing here bounds
how fast clients publish: a real service would rate-limit them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import sys
from collections import deque
from typing import Any, Union

from multiprocess_server import Worker, announce, close_gracefully, pid_response, run_workers
from redis.asyncio import Redis

import picows
from picows import (
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponseWithListener,
)

MAX_BUFFER = 16 << 20  # bytes of unsent data any client may have
STALL_TIMEOUT = 10.0  # seconds a client may be over its high-water mark without progress
BATCH = 512  # messages per Redis pipeline
KINDS = {WSMsgType.TEXT: b"T", WSMsgType.BINARY: b"B"}


class Member(WSListener):
    """One client of this worker."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.transport: Union[WSTransport, None] = None
        self.paused = False  # its write buffer is over the high-water mark
        # For the stall check: the write buffer's size at the last check, payload bytes
        # queued since, and for how long nothing has drained.
        self.backlog = 0
        self.queued = 0
        self.stalled_for = 0.0

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.hub.members.add(self)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.hub.members.discard(self)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        # Fragmented messages are not reassembled here: clients send whole messages.
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type in KINDS:
            self.hub.publish(KINDS[frame.msg_type] + frame.get_payload_as_bytes())


class Hub:
    """This worker's clients and its two Redis links (publish, subscribe)."""

    def __init__(self, redis: Redis, channel: str, max_buffer: int, stall_timeout: float) -> None:
        self.redis = redis
        self.channel = channel
        self.max_buffer = max_buffer
        self.stall_timeout = stall_timeout
        self.members: set[Member] = set()
        self.outbox: deque[bytes] = deque()
        self.wakeup = asyncio.Event()

    def route(self, request: WSUpgradeRequest) -> WSUpgradeResponseWithListener:
        return WSUpgradeResponseWithListener(pid_response(), Member(self))

    def publish(self, message: bytes) -> None:
        self.outbox.append(message)
        self.wakeup.set()

    async def publish_forever(self) -> None:
        """The only publisher of this worker: one batch at a time, in arrival order."""
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            while self.outbox:
                pipe = self.redis.pipeline(transaction=False)
                for _ in range(min(len(self.outbox), BATCH)):
                    pipe.publish(self.channel, self.outbox.popleft())
                await pipe.execute()

    async def relay_forever(self, pubsub: Any) -> None:
        """Sends every message published on the channel to this worker's clients."""
        async for message in pubsub.listen():
            if message["type"] == "message":
                self.deliver(message["data"])

    def deliver(self, message: bytes) -> None:
        msg_type = WSMsgType.TEXT if message[:1] == b"T" else WSMsgType.BINARY
        payload = message[1:]
        for member in list(self.members):
            transport = member.transport
            assert transport is not None
            transport.send(msg_type, payload)
            member.queued += len(payload)
            if member.paused and (
                transport.underlying_transport.get_write_buffer_size() > self.max_buffer
            ):
                self.drop(member)

    async def drop_stalled_forever(self) -> None:
        """Every quarter of the stall timeout: who is behind and has not moved?"""
        interval = self.stall_timeout / 4
        while True:
            await asyncio.sleep(interval)
            for member in list(self.members):
                assert member.transport is not None
                size = member.transport.underlying_transport.get_write_buffer_size()
                # Nothing drained if the buffer holds at least all it held plus all
                # that was added (frame headers make it a little more).
                stuck = member.paused and size >= member.backlog + member.queued
                member.stalled_for = member.stalled_for + interval if stuck else 0.0
                member.backlog, member.queued = size, 0
                if member.stalled_for >= self.stall_timeout:
                    self.drop(member)

    def drop(self, member: Member) -> None:
        """The slow-client policy (see the top of this file)."""
        self.members.discard(member)
        assert member.transport is not None
        member.transport.disconnect(graceful=False)


async def broadcast_worker(
    redis_url: str,
    channel: str,
    max_buffer: int,
    stall_timeout: float,
    worker: Worker,
    **server_options: Any,
) -> None:
    """One worker: subscribe, serve, and on stop close every client with 1001.

    ``server_options`` go to ``ws_create_server`` (benchmarks/scale.py passes some).
    """
    redis = Redis.from_url(redis_url)
    pubsub = redis.pubsub()
    try:
        await pubsub.subscribe(channel)
        # Until Redis confirms, messages published by the other workers would miss us.
        confirmation = await pubsub.get_message(timeout=10)
        if confirmation is None or confirmation["type"] != "subscribe":
            raise RuntimeError(f"Redis did not confirm the subscription: {confirmation!r}")
        hub = Hub(redis, channel, max_buffer, stall_timeout)
        # A backlog above asyncio's 100: clients reconnect all at once after a restart.
        options = {"backlog": 1024, **server_options}
        server = await picows.ws_create_server(
            hub.route, worker.host, worker.port, reuse_port=True, **options
        )
        tasks = [
            asyncio.ensure_future(hub.publish_forever()),
            asyncio.ensure_future(hub.relay_forever(pubsub)),
            asyncio.ensure_future(hub.drop_stalled_forever()),
        ]
        worker.ready(server.sockets[0].getsockname()[1])
        stopped = asyncio.ensure_future(worker.stop.wait())
        await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
        members = [m.transport for m in hub.members if m.transport is not None]
        await close_gracefully(server, members)
        for task in [stopped, *tasks]:
            task.cancel()
        await asyncio.gather(stopped, *tasks, return_exceptions=True)
        errors = [t.exception() for t in tasks if not t.cancelled() and t.exception()]
        if errors:  # Redis failed: the worker ends with an error, the service stops
            raise errors[0]
    finally:
        with contextlib.suppress(Exception):  # Redis may be the thing that failed
            await pubsub.aclose()
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Redis URL")
    parser.add_argument("--channel", default="picows-broadcast")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001, help="0 picks a free port")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--max-buffer", type=int, default=MAX_BUFFER, help="bytes (16 MiB)")
    parser.add_argument("--stall-timeout", type=float, default=STALL_TIMEOUT, help="s (10)")
    args = parser.parse_args()
    worker = functools.partial(
        broadcast_worker, args.redis, args.channel, args.max_buffer, args.stall_timeout
    )
    on_ready = functools.partial(announce, host=args.host)
    sys.exit(run_workers(worker, args.host, args.port, args.workers, on_ready))


if __name__ == "__main__":
    main()
