"""The WebSocket gateway: `ws://host:port/ws`, speaking the JSON protocol of `protocol.py`.

Backpressure policy: each connection has one send queue, written out in turns by the
gateway's dispatcher (`dispatcher.py`), so a client that reads slowly, or has a backlog, only
ever delays itself. The queue is bounded twice: by count
(`subscriber_queue` frames) and by bytes (`SEND_QUEUE_BYTES` of encoded changes and replies; a
single frame larger than that still goes through an empty queue). It holds the shared `Event`s,
not per-client bytes: a frame is built only when it is written. Live changes are appended
without waiting; when either bound is exceeded the client is closed with code 1013
(`SLOW_CONSUMER_CLOSE_CODE`, "Try Again Later") and a reason such as "slow consumer: send queue
full (10000 changes or 33554432 bytes); reconnect with since=4242". The queue is shared by all
of the connection's subscriptions, so `since` is the lowest sequence sent to any of them:
resubscribing every one from there loses nothing. A replay (a subscription with "since")
instead waits for room in the queue, since it is paced by the client anyway, and keeps half of
both bounds free for live traffic.

A connection holds at most `MAX_SUBSCRIPTIONS` subscriptions; a "since" beyond the head is
answered with an error frame naming the head.

Who may connect: a browser always sends `Origin`, so a handshake whose Origin is not in the
allow-list (default: the gateway's own origin, http://127.0.0.1:PORT and http://localhost:PORT,
https with TLS) is refused with 403, which keeps any web page the user visits from reading the
transcripts; `Origin: null` (sandboxed frames, file: pages) is refused too. A client without
an Origin (CLI tools, bridges) is no browser page and must present the installation's token
as `Authorization: Bearer <token>`, else 401. When every read needs the token
(`THREADLINE_REQUIRE_TOKEN`, or a gateway beyond loopback) a browser page, which cannot send
that header, must send `{"type": "auth", "token": ...}` before anything but `ping`: a local
program can forge an allowed Origin, so the Origin alone proves nothing then.

The same port serves the web page (`webpage.py`) to plain HTTP GETs of its files, and the
reads it needs (`reads.py`) as request types of the protocol; each read runs as a task of its
own, at most `MAX_READS` at once per connection, so a slow query holds up no other request.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import itertools
import logging
from collections import deque
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from services.stream import protocol, resume, webpage
from services.stream.dispatcher import Dispatcher
from services.stream.errors import (
    InvalidRequest,
    NotFound,
    SinceBeyondHead,
    SlowConsumer,
    StreamError,
    Unavailable,
)
from services.stream.events import Event
from services.stream.hub import Filter, Hub, Subscription
from services.stream.reads import Reads
from threadline.auth import Security, bearer, is_loopback

log = logging.getLogger(__name__)

WS_PATH = "/ws"
# RFC 6455 "Try Again Later": sent to a client whose send queue overflowed.
SLOW_CONSUMER_CLOSE_CODE = 1013
# How long a slow client gets to read up to our close frame before the socket is aborted.
CLOSE_TIMEOUT = 5.0
# Client requests are small; refuse anything larger than this.
MAX_REQUEST_BYTES = 64 * 1024
# Byte budget of one connection's send queue (the encoded changes it refers to).
SEND_QUEUE_BYTES = 32 * 1024 * 1024
# Subscriptions one connection may hold at once: each costs a hub entry and status output.
MAX_SUBSCRIPTIONS = 64
# Reads one connection may have running at once; a page needs two or three.
MAX_READS = 4
# RFC 6455 "Policy Violation": sent to a client that presented a wrong token.
WRONG_TOKEN_CLOSE_CODE = 1008
# Error codes of the read failures, for the error frame.
READ_ERRORS: dict[type[StreamError], str] = {
    InvalidRequest: "invalid_request", NotFound: "not_found", Unavailable: "unavailable"}


@dataclass(slots=True)
class ClientSubscription:
    id: int
    sub: Subscription
    since: int | None
    task: asyncio.Task[None] | None = None


class Connection:
    """One WebSocket client: its subscriptions and its bounded send queue."""

    def __init__(self, gateway: Gateway, ws: ServerConnection):
        self.gateway = gateway
        self.ws = ws
        self.limit = gateway.queue_limit
        self.byte_limit = gateway.byte_limit
        self.subscriptions: dict[int, ClientSubscription] = {}
        # Highest sequence sent to the client, per subscription: where it should resume.
        self.last_sent: dict[int, int] = {}
        self.closing = False
        self._ids = itertools.count(1)
        # Events, or reply bytes, and beside them the subscription of each (0 for a reply).
        # Two flat deques rather than one of tuples: with hundreds of clients behind, tuples
        # would be millions of objects for the garbage collector to walk in every full pass.
        self._queue: deque[Event | bytes] = deque()
        self._subscriptions: deque[int] = deque()
        self._bytes = 0
        self._room = asyncio.Event()
        # Waiting for the socket buffer to drain: the dispatcher leaves this connection alone.
        self._drainer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        # In the dispatcher's queue of connections (set and cleared by the dispatcher).
        self.scheduled = False
        self._high_water = ws.transport.get_write_buffer_limits()[1]
        # The token came with the handshake (a browser page sends it in an "auth" frame).
        given = ws.request.headers.get_all("Authorization") if ws.request else []
        self.authenticated = (len(given) == 1
                              and gateway.security.accepts(bearer(given[0])))
        self._reads: set[asyncio.Task[None]] = set()

    @property
    def queued(self) -> int:
        """Frames waiting to be written to this client."""
        return len(self._queue)

    # -- sending -----------------------------------------------------------------------------

    def offer(self, item: Event | bytes, size: int, sequence: int = 0,
              subscription: int = 0) -> bool:
        """Queue an event (or a reply) without waiting; False when the queue is full."""
        if self.closing:
            return True  # going away: nothing more is sent, and it is no longer "slow"
        queue = self._queue
        if queue and (len(queue) >= self.limit or self._bytes + size > self.byte_limit):
            return False
        queue.append(item)
        self._subscriptions.append(subscription)
        self._bytes += size
        if self._drainer is None:
            self.gateway.dispatcher.schedule(self, fresh=len(queue) == 1)
        return True

    async def put(self, event: Event, sequence: int, subscription: int) -> None:
        """Queue a replayed event, waiting while the queue is half full (count or bytes)."""
        size = event.size()
        queue = self._queue
        while queue and not self.closing and (len(queue) >= max(1, self.limit // 2)
                                              or self._bytes + size > self.byte_limit // 2):
            self._room.clear()
            await self._room.wait()
        self.offer(event, size, sequence, subscription)

    def send_reply(self, frame: bytes) -> None:
        if not self.offer(frame, len(frame)):
            self._slow()

    def _sink(self, subscription: int):
        offer = self.offer

        def sink(sequence: int, event: object) -> bool:
            return offer(event, event.size(), sequence, subscription)  # type: ignore[arg-type, attr-defined]

        return sink

    def write_some(self, budget: int) -> bool:
        """Write up to `budget` queued frames to the socket without waiting (the dispatcher's
        turn); True if more are queued and the socket has room for them."""
        ws, queue = self.ws, self._queue
        if self.closing or ws.protocol.state is not State.OPEN:
            return False  # closing: what is queued is discarded by _release or by run()
        transport = ws.transport
        if transport.get_write_buffer_size() >= self._high_water:
            # The client reads slower than we write: wait for the buffer to drain away from
            # the dispatcher, which goes on with the others.
            if queue:
                self._drainer = asyncio.create_task(self._drain())
            return False
        protocol = ws.protocol
        for _ in range(min(budget, len(queue))):
            # The Sans-I/O protocol frames the bytes; nothing is written yet.
            protocol.send_text(self._take())
        # One write (one system call) for the whole turn; writing never waits.
        data = b"".join(protocol.data_to_send())
        if data:
            transport.write(data)
        return bool(queue)

    def _take(self) -> bytes:
        """The next queued frame, counted as sent once taken (it goes to the socket now)."""
        item = self._queue.popleft()
        subscription = self._subscriptions.popleft()
        self._room.set()
        if isinstance(item, Event):
            self._bytes -= item.size()
            if subscription in self.last_sent:  # not once unsubscribed
                self.last_sent[subscription] = item.sequence
            return item.frame(subscription)
        self._bytes -= len(item)
        return item

    async def _drain(self) -> None:
        try:
            # send() writes the frame to the socket buffer before it waits for room, so the
            # frame counts as sent even if this task is cancelled during that wait.
            await self.ws.send(self._take(), text=True)
        except ConnectionClosed:
            return
        self._drainer = None
        if self._queue and not self.closing:
            self.gateway.dispatcher.schedule(self, fresh=False)

    # -- slow clients ------------------------------------------------------------------------

    def _on_drop(self, _sub: Subscription, _error: SlowConsumer) -> None:
        self._slow()

    def _slow(self) -> None:
        if self.closing:
            return
        # Every subscription shares the queue and the close: the lowest point any of them
        # reached is where all can resume without loss (the others get some changes twice).
        resume_from = min(self.last_sent.values(), default=self.gateway.hub.head)
        reason = (f"slow consumer: send queue full ({self.limit} changes or "
                  f"{self.byte_limit} bytes); reconnect with since={resume_from}")
        log.info("closing WebSocket client %s: %s", self.ws.remote_address, reason)
        self.gateway.slow_disconnects += 1
        self._release()
        self._closer = asyncio.create_task(self._close(SLOW_CONSUMER_CLOSE_CODE, reason))

    async def _close(self, code: int, reason: str) -> None:
        try:
            await asyncio.wait_for(self.ws.close(code, reason), CLOSE_TIMEOUT)
        except TimeoutError:
            self.ws.transport.abort()

    def _release(self) -> None:
        """Leave the hub and stop sending; queued frames are discarded."""
        self.closing = True
        for cs in self.subscriptions.values():
            if cs.task is not None:
                cs.task.cancel()
            cs.sub.close()
        for task in self._reads:
            task.cancel()
        self._room.set()
        self._queue.clear()
        self._subscriptions.clear()
        self._bytes = 0
        if self._drainer is not None:
            self._drainer.cancel()

    # -- requests ----------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            async for frame in self.ws:
                try:
                    request = protocol.parse(frame)
                except protocol.ProtocolError as e:
                    self.send_reply(protocol.error_reply(e))
                    continue
                if isinstance(request, protocol.Auth):
                    if not await self._authenticate(request):
                        return
                    continue
                if (self.gateway.token_required and not self.authenticated
                        and not isinstance(request, protocol.Ping)):
                    self.send_reply(protocol.error_reply(protocol.ProtocolError(
                        "unauthenticated", 'send {"type": "auth", "token": ...} first (the '
                        "token is what `threadline token` prints)", request.id)))
                    continue
                if isinstance(request, protocol.Read):
                    self._start_read(request)
                    continue
                if isinstance(request, protocol.Subscribe):
                    # Awaited here, so the requests are still answered in order.
                    resolved = await self._resolved(request)
                    if resolved is None:
                        continue
                    request = resolved
                self._handle(request)
        except ConnectionClosed:
            pass
        finally:
            self._release()
            if self._closer is not None:
                await self._closer

    async def _authenticate(self, request: protocol.Auth) -> bool:
        """Accept the token of an "auth" frame; False (and the connection closing) for a
        wrong one, so that guessing costs a handshake per guess."""
        if self.gateway.security.accepts(request.token):
            self.authenticated = True
            self.send_reply(protocol.reply("authenticated", request.id))
            return True
        # Written at once rather than queued: the queue is dropped as the connection closes.
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(protocol.error_reply(protocol.ProtocolError(
                "invalid_token", "wrong token", request.id)), text=True)
        self._closer = asyncio.create_task(self._close(WRONG_TOKEN_CLOSE_CODE, "wrong token"))
        return False

    def _start_read(self, request: protocol.Read) -> None:
        if len(self._reads) >= MAX_READS:
            self.send_reply(protocol.error_reply(protocol.ProtocolError(
                "too_many_requests", f"at most {MAX_READS} reads at once per connection; "
                "wait for an answer first", request.id)))
            return
        task = asyncio.create_task(self._read(request))
        self._reads.add(task)
        task.add_done_callback(self._reads.discard)

    async def _read(self, request: protocol.Read) -> None:
        reads = self.gateway.reads
        try:
            if reads is None:
                raise Unavailable("this gateway has no store to read from")
            fields = await reads.answer(request)
            frame = protocol.reply(protocol.REPLY_TYPES[type(request)], request.id, **fields)
        except StreamError as e:
            code = next((c for k, c in READ_ERRORS.items() if isinstance(e, k)), "internal")
            frame = protocol.error_reply(protocol.ProtocolError(code, str(e), request.id))
        except Exception:
            # A bug must still answer the request: a page waits for its id.
            log.exception("a WebSocket read failed")
            frame = protocol.error_reply(protocol.ProtocolError(
                "internal", "the read failed; see the stream service's log", request.id))
        if not self.closing:
            self.send_reply(frame)

    async def _resolved(self, request: protocol.Subscribe) -> protocol.Subscribe | None:
        """The request with its project and session as the changes name them; None after
        answering with an error frame (a name that fits several, a prefix too short)."""
        if request.project is None and request.session is None:
            return request
        try:
            found = await self.gateway.resolve(Filter(request.project, request.session))
        except InvalidRequest as e:
            self.send_reply(protocol.error_reply(protocol.ProtocolError(
                "invalid_name", str(e), request.id)))
            return None
        return dataclasses.replace(request, project=found.project, session=found.session)

    def _handle(self, request: protocol.Request) -> None:
        if isinstance(request, protocol.Subscribe):
            self._subscribe(request)
        elif isinstance(request, protocol.Unsubscribe):
            cs = self.subscriptions.pop(request.subscription, None)
            if cs is None:
                self.send_reply(protocol.error_reply(protocol.ProtocolError(
                    "unknown_subscription", f"no subscription {request.subscription}",
                    request.id)))
                return
            self.last_sent.pop(cs.id, None)
            if cs.task is not None:
                cs.task.cancel()
            cs.sub.close()
            self.send_reply(protocol.reply("unsubscribed", request.id, subscription=cs.id))
        elif isinstance(request, protocol.Ping):
            self.send_reply(protocol.reply("pong", request.id))
        elif isinstance(request, protocol.Status):
            self.send_reply(protocol.reply(
                "status", request.id, head=self.gateway.hub.head,
                subscriptions=[
                    {"subscription": cs.id, "project": cs.sub.filter.project,
                     "session": cs.sub.filter.session, "since": cs.since,
                     "last_sequence": self.last_sent.get(cs.id, 0)}
                    for cs in self.subscriptions.values()
                ],
                clients=len(self.gateway.connections),
                store_error=self.gateway.hub.store_error,
                capabilities=list(protocol.CAPABILITIES)
                if self.gateway.reads is not None else list(protocol.FEED_CAPABILITIES),
                authenticated=self.authenticated))

    def _subscribe(self, request: protocol.Subscribe) -> None:
        hub = self.gateway.hub
        if len(self.subscriptions) >= MAX_SUBSCRIPTIONS:
            self.send_reply(protocol.error_reply(protocol.ProtocolError(
                "too_many_subscriptions", f"at most {MAX_SUBSCRIPTIONS} subscriptions per "
                "connection; unsubscribe one first", request.id)))
            return
        try:
            resume.check_since(hub, request.since)
        except SinceBeyondHead as e:
            self.send_reply(protocol.reply("error", request.id, error="since_beyond_head",
                                           message=str(e), head=e.head))
            return
        sid = next(self._ids)
        # Registered before anything is replayed, so no live change falls between the two.
        sub = hub.subscribe(Filter(request.project, request.session), self.limit,
                            self._on_drop)
        cs = ClientSubscription(sid, sub, request.since)
        self.subscriptions[sid] = cs
        self.last_sent[sid] = request.since if request.since is not None else hub.head
        self.send_reply(protocol.reply(
            "subscribed", request.id, subscription=sid, project=request.project,
            session=request.session, since=request.since, head=hub.head))
        if request.since is None:
            sub.attach(self._sink(sid))
        else:
            cs.task = asyncio.create_task(self._catch_up(cs, request.since, request.id))

    async def _catch_up(self, cs: ClientSubscription, since: int, request_id: object) -> None:
        try:
            # aclosing: a cancelled replay must end its store call now, not at GC time.
            async with contextlib.aclosing(
                    resume.catch_up(cs.sub, self.gateway.replay, since)) as batches:
                async for batch in batches:
                    for sequence, event in batch:
                        if self.closing:
                            return
                        await self.put(event, sequence, cs.id)  # type: ignore[arg-type]
            cs.sub.attach(self._sink(cs.id))
        except SlowConsumer:
            pass  # the drop callback is closing the connection
        except InvalidRequest as e:
            self._end_subscription(cs, "invalid_request", str(e), request_id)
        except Exception:
            log.exception("replay for a WebSocket subscription failed")
            self._end_subscription(cs, "internal", "replay failed; subscribe again", request_id)

    def _end_subscription(self, cs: ClientSubscription, code: str, message: str,
                          request_id: object) -> None:
        cs.sub.close()
        self.last_sent.pop(cs.id, None)
        if self.subscriptions.pop(cs.id, None) is not None:
            self.send_reply(protocol.error_reply(
                protocol.ProtocolError(code, message, request_id)))


class Gateway:
    """The WebSocket server and its connections."""

    def __init__(self, hub: Hub, replay: resume.Replay, queue_limit: int,
                 byte_limit: int = SEND_QUEUE_BYTES, security: Security | None = None,
                 origins: tuple[str, ...] = (), resolve: resume.Resolve = resume.as_given,
                 reads: Reads | None = None):
        self.hub = hub
        self.reads = reads
        # Set by start: whether every request needs the token, and the page's Host names.
        self.token_required = True
        self._hosts: frozenset[str] = frozenset()
        self._configured_origins = origins
        self.resolve = resolve
        self.security = security or Security()
        # Filled once the port is known (see start); None stands for "no Origin header",
        # which websockets then lets through to the token check of `_check_request`.
        self._origins: list[str | None] = [*origins, None]
        self._default_origins = not origins
        self.replay = replay
        self.queue_limit = queue_limit
        self.byte_limit = byte_limit
        self.connections: set[Connection] = set()
        self.slow_disconnects = 0
        self.dispatcher = Dispatcher()
        self._server: Server | None = None
        hub.on_store_error(self._tell_store_error)

    async def start(self, host: str, port: int) -> int:
        self.security.check_exposure(host, f"WebSocket gateway on {host}:{port}")
        # As for gRPC reads (threadline/auth.py): beyond loopback, or when asked to.
        self.token_required = self.security.require_token or not is_loopback(host)
        self.dispatcher.start()
        self._server = await serve(
            self._handle, host, port, process_request=self._check_request, compression=None,
            max_size=MAX_REQUEST_BYTES, origins=self._origins,
            ssl=self.security.server_ssl_context(),
        )
        bound = self._server.sockets[0].getsockname()[1]
        if self._default_origins:
            # Until this runs the list allows no browser at all: nothing is let through early.
            schemes = ("http", "https") if self.security.serves_tls else ("http",)
            self._origins[:0] = [f"{scheme}://{name}:{bound}" for scheme in schemes
                                 for name in ("127.0.0.1", "localhost", "[::1]")]
        self._hosts = webpage.own_hosts(bound, self._configured_origins)
        return bound

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await self.dispatcher.stop()

    def _tell_store_error(self, write_error: str) -> None:
        """Every client learns at once that the store cannot write (and when it can again)."""
        frame = protocol.reply("store_error", message=write_error)
        for conn in list(self.connections):
            conn.send_reply(frame)

    async def _handle(self, ws: ServerConnection) -> None:
        conn = Connection(self, ws)
        self.connections.add(conn)
        if self.hub.store_error:
            conn.send_reply(protocol.reply("store_error", message=self.hub.store_error))
        try:
            await conn.run()
        finally:
            self.connections.discard(conn)


    def _check_request(self, connection: ServerConnection, request: Request
                       ) -> Response | None:
        if webpage.is_page(request.path):
            return self._page(request)
        if urlsplit(request.path).path != WS_PATH:
            return connection.respond(HTTPStatus.NOT_FOUND, f"not found: use {WS_PATH}\n")
        # With an Origin, websockets checks it against the allow-list after this returns.
        if "Origin" not in request.headers:
            given = request.headers.get_all("Authorization")
            presented = bearer(given[0]) if len(given) == 1 else None
            if not self.security.accepts(presented):
                return connection.respond(
                    HTTPStatus.UNAUTHORIZED,
                    "a client without an Origin must send Authorization: Bearer <token>\n")
        return None

    def _page(self, request: Request) -> Response:
        # A page whose reads need the token is not given it: anyone reaching the port could
        # read it there (webpage.py).
        token = None if self.token_required else self.security.token
        # Exactly one Host: with two, which one a proxy or browser meant is anyone's guess.
        given = request.headers.get_all("Host")
        host = given[0] if len(given) == 1 else None
        answer = webpage.respond(request.path, host, self._hosts, token)
        headers = Headers([("Date", email.utils.formatdate(usegmt=True)),
                           ("Connection", "close"), ("Content-Length", str(len(answer.body))),
                           *answer.headers])
        return Response(answer.status, HTTPStatus(answer.status).phrase, headers, answer.body)
