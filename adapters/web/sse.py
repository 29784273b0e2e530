"""The live event feed (GET /events with Accept: text/event-stream).

One thread follows the store (a single subscription, however many clients) and hands each batch
to the reactor with callFromThread; the reactor thread fans it out. It reads FEED_COALESCE_S
after a commit rather than at once, so that a patch's commits reach it as one batch.

A client first catches up from the store (pages read in the thread pool) while live events for
it are held back, then gets the held events it has not seen: `position > cursor` makes the
hand-over gap- and duplicate-free whatever the timing (an event is either committed before the
client registered, so the catch-up reads it, or fanned out after, so it was held).

Each client is a push producer on its connection: when the socket's buffer fills, twisted pauses
it and frames wait in a bounded queue; a client that falls further behind is disconnected (it
reconnects with Last-Event-ID and catches up from the store), so one slow reader can never grow
the node's memory.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from twisted.internet import task, threads
from twisted.internet.defer import Deferred

from adapters.web.http import TwistedRequest, dumps
from eventstore.events import RecordedEvent
from eventstore.protocol import EventStore

log = logging.getLogger(__name__)

CATCH_UP_PAGE = 500
MAX_QUEUED_FRAMES = 5_000
# How long the feed lets a burst of commits settle before it reads them (see _follow): well
# under what a person watching the dashboard notices.
FEED_COALESCE_S = 0.02


def frame(event: RecordedEvent) -> bytes:
    return b"id: %d\ndata: %s\n\n" % (event.position, dumps(event.as_dict()))


class SSEClient:
    """An IPushProducer (duck-typed: twisted only calls the three methods) on its request."""

    def __init__(
        self,
        request: TwistedRequest,
        after: int,
        types: frozenset[str] | None,
        stream: str | None,
        max_queued: int = MAX_QUEUED_FRAMES,
        owner: str = "",
    ) -> None:
        self.request: Any = request
        self.owner = owner  # the client's address: streams are capped per client too
        self.cursor = after  # the last position written (or skipped by the filters)
        self.types = types
        self.stream = stream
        self.catching_up = True
        self.held: list[RecordedEvent] = []  # live events that arrived during the catch-up
        self.queue: deque[bytes] = deque()
        self.paused = False
        self.closed = False
        self._max_queued = max_queued

    def wants(self, event: RecordedEvent) -> bool:
        if self.types is not None and event.type not in self.types:
            return False
        return self.stream is None or event.stream == self.stream

    def offer(self, events: Iterable[RecordedEvent]) -> None:
        """Reactor thread: events in position order; those at or below the cursor are skipped."""
        for event in events:
            if event.position <= self.cursor:
                continue
            self.cursor = event.position
            if self.wants(event):
                self.send(frame(event))

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        if self.paused or self.queue:
            self.queue.append(data)
            if len(self.queue) > self._max_queued:
                log.info("SSE client too slow (%d frames waiting): disconnecting", len(self.queue))
                self.drop()
            return
        self.request.write(data)

    # IPushProducer: twisted calls these when the connection's buffer fills and drains.
    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        while self.queue and not self.paused and not self.closed:
            self.request.write(self.queue.popleft())

    def stopProducing(self) -> None:
        self.closed = True
        self.queue.clear()

    def drop(self) -> None:
        """Disconnect (the client resumes later with Last-Event-ID)."""
        if self.closed:
            return
        self.closed = True
        self.queue.clear()
        transport = self.request.channel.transport if self.request.channel else None
        if transport is not None:
            transport.abortConnection()

    def finish(self) -> None:
        """Clean end of the stream (the node is stopping)."""
        if self.closed:
            return
        self.closed = True
        self.queue.clear()
        self.request.unregisterProducer()
        self.request.finish()


class EventHub:
    """Owned by the WebhookActor: `start()` and `close()` run on the reactor thread."""

    def __init__(
        self,
        store: EventStore,
        reactor: Any,
        heartbeat_s: float = 15.0,
        max_clients: int = 1000,
        on_events: Callable[[Sequence[RecordedEvent]], None] | None = None,
        coalesce_s: float = FEED_COALESCE_S,
    ) -> None:
        self._store = store
        self._coalesce_s = coalesce_s
        self._reactor = reactor
        self._heartbeat_s = heartbeat_s
        self.max_clients = max_clients
        self._on_events = on_events
        self.clients: set[SSEClient] = set()
        self.position = 0  # the last position fanned out
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._heartbeat: task.LoopingCall | None = None
        self._subscription: Any = None

    @property
    def committed(self) -> int:
        """The store's last committed position (the feed may not have fanned it out yet)."""
        if self._subscription is None:
            return self.position
        return max(self.position, int(self._subscription.committed))

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self.position = self._store.last_position()
        self._subscription = self._store.subscribe(after=self.position)
        self._thread = threading.Thread(target=self._follow, name="ghost-sse-feed", daemon=True)
        self._thread.start()
        self._heartbeat = task.LoopingCall(self._ping)
        self._heartbeat.clock = self._reactor
        self._heartbeat.start(self._heartbeat_s, now=False)

    def close(self) -> None:
        self._stop.set()
        if self._subscription is not None:
            self._subscription.close()
        if self._heartbeat is not None and self._heartbeat.running:
            self._heartbeat.stop()
        for client in list(self.clients):
            client.finish()
        self.clients.clear()

    def join(self, timeout: float) -> None:
        """Off the reactor thread: wait for the feed thread to end."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _follow(self) -> None:
        subscription = self._subscription
        while not self._stop.is_set():
            if not subscription.wait(timeout=0.5):
                continue
            # A patch commits two or three times within a few ms. Reading at the first commit
            # took the GIL from the patch's own thread in the middle of its fsyncs (~1.5 ms of
            # a 12 ms webhook round trip here); after a short pause one read takes them all.
            self._stop.wait(self._coalesce_s)
            try:
                batch = subscription.poll(timeout=0, max_count=1000)
            except Exception:
                log.exception("SSE feed: reading the store failed; retrying")
                self._stop.wait(1.0)
                continue
            if not batch:
                continue
            if self._on_events is not None:
                self._on_events(batch)
            self._reactor.callFromThread(self._fan_out, batch)

    # --- reactor thread ------------------------------------------------------------------------
    def _fan_out(self, batch: list[RecordedEvent]) -> None:
        self.position = max(self.position, batch[-1].position)
        for client in list(self.clients):
            if client.catching_up:
                client.held.extend(batch)
                if len(client.held) > MAX_QUEUED_FRAMES:
                    client.drop()  # a catch-up too long to hold live events for: resume later
            else:
                client.offer(batch)

    def _ping(self) -> None:
        for client in list(self.clients):
            if not client.paused and not client.queue:
                client.send(b": ping\n\n")

    def attach(self, client: SSEClient) -> Deferred[None]:
        """Register, then catch up from the store; the Deferred fires once live."""
        self.clients.add(client)
        client.request.registerProducer(client, True)
        client.request.notifyFinish().addBoth(lambda _: self._detach(client))

        def failed(failure: Any) -> None:
            log.error("SSE catch-up failed: %s", failure.getErrorMessage())
            client.drop()

        return self._catch_up(client).addErrback(failed)

    def _detach(self, client: SSEClient) -> None:
        client.closed = True
        client.queue.clear()
        client.held.clear()
        self.clients.discard(client)

    def _catch_up(self, client: SSEClient) -> Deferred[None]:
        types = sorted(client.types) if client.types is not None else None
        streams = [client.stream] if client.stream is not None else None
        d: Deferred[list[RecordedEvent]] = threads.deferToThreadPool(
            self._reactor,
            self._reactor.getThreadPool(),
            self._store.read_all,
            client.cursor,
            CATCH_UP_PAGE,
            types,
            streams,
        )

        def got(page: list[RecordedEvent]) -> Deferred[None] | None:
            if client.closed:
                return None
            client.offer(page)
            if len(page) == CATCH_UP_PAGE:
                return self._catch_up(client)  # a slow socket: its bounded queue decides
            client.catching_up = False
            held, client.held = client.held, []
            client.offer(held)
            return None

        return d.addCallback(got)
