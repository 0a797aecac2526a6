"""Building, running and stopping a gRPC server the same way in every service.

`create_server` is kept apart from `run_until_stopped` so tests can build a server on port 0
in their own event loop; `run_until_stopped` adds signal handling and graceful shutdown for a
process. `Backoff` is the one reconnect policy of every client stream.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Iterable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from threadline import access, auth, heap, telemetry
from threadline.auth import Security

log = logging.getLogger(__name__)

# Transcript lines of tens of megabytes exist (base64 screenshots); batches must carry them.
MAX_MESSAGE_BYTES = 512 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # Loopback peers restart (supervisor, compose): retry connecting quickly.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
# gRPC sets SO_REUSEPORT by default, which lets a second instance bind the same port and
# silently share the traffic: a port in use must be an error instead.
SERVER_OPTIONS = [*CHANNEL_OPTIONS[:2], ("grpc.so_reuseport", 0)]
SHUTDOWN_GRACE_SECONDS = 5.0

Registrar = Callable[[grpc.aio.Server], None]


class Service:
    """A started gRPC server with its health servicer."""

    def __init__(self, server: grpc.aio.Server, port: int,
                 health_servicer: health.aio.HealthServicer, names: list[str]):
        self.server = server
        self.port = port
        self.health = health_servicer
        self.names = names

    async def stop(self, grace: float = SHUTDOWN_GRACE_SECONDS) -> None:
        for name in [*self.names, ""]:
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.stop(grace)


async def create_server(registrars: Iterable[Registrar], service_names: Iterable[str],
                        host: str = "127.0.0.1", port: int = 0,
                        security: Security | None = None) -> Service:
    """Start a server with the given servicers, health checking and tracing; returns it bound.

    `security` decides who may call what (threadline.access); without one no token is known,
    so every mutating RPC is refused. Listening beyond loopback without TLS raises
    `auth.RefusedToStart` before anything is bound."""
    security = security or Security()
    security.check_exposure(host, f"gRPC server on {host}:{port}")
    interceptors = [access.TokenInterceptor(security, auth.is_loopback(host)),
                    *telemetry.server_interceptors()]
    server = grpc.aio.server(interceptors=interceptors, options=SERVER_OPTIONS)
    for register in registrars:
        register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = list(service_names)
    # Server reflection: grpcurl, Postman and other tools list and call the services without
    # the .proto files (reading the contract needs the same token as any read).
    reflection.enable_server_reflection(
        [*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    credentials = security.server_credentials()
    try:
        bound = (server.add_secure_port(f"{host}:{port}", credentials) if credentials
                 else server.add_insecure_port(f"{host}:{port}"))
    except RuntimeError as exc:  # grpc's way of saying the address is taken or invalid
        raise OSError(f"cannot bind {host}:{port}: {exc}") from exc
    if bound == 0:
        raise OSError(f"cannot bind {host}:{port}")
    await server.start()
    for name in [*names, ""]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return Service(server, bound, health_servicer, names)


def channel(address: str, security: Security | None = None) -> grpc.aio.Channel:
    """A traced client channel to another service, presenting the token of `security` (when
    it knows one) on every call and verifying the server's TLS certificate when it has one."""
    interceptors = [*access.aio_client_interceptors(security), *telemetry.client_interceptors()]
    credentials = security.channel_credentials() if security is not None else None
    if credentials is not None:
        return grpc.aio.secure_channel(address, credentials, options=CHANNEL_OPTIONS,
                                       interceptors=interceptors)
    return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS, interceptors=interceptors)


class Backoff:
    """How every client stream waits before reconnecting to a peer that went away: 100 ms,
    doubling up to 1 s, back to 100 ms once a connection did useful work. Peers are local
    processes that restart in well under a second, so waiting longer only adds latency."""

    START = 0.1
    MAX = 1.0

    def __init__(self) -> None:
        self.delay = self.START

    def reset(self) -> None:
        self.delay = self.START

    async def wait(self) -> None:
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, self.MAX)


async def run_until_stopped(start: Callable[[], Awaitable[Callable[[], Awaitable[None]]]]) -> None:
    """Run a service until SIGTERM/SIGINT/SIGHUP, then stop it gracefully.

    `start` starts everything and returns the coroutine function that stops it. SIGHUP is
    what a service run in a terminal gets when the terminal closes; a service run by `up`
    gets SIGTERM when `up` dies, however it dies (lifeline.py).
    """
    loop = asyncio.get_running_loop()
    stop_event = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop_event.set)
    stop = await start()
    trimmer = asyncio.create_task(heap.trim_periodically())
    try:
        await stop_event.wait()
    finally:
        log.info("stopping")
        trimmer.cancel()
        await stop()
        telemetry.shutdown_tracing()
