"""Which RPC needs the token, enforced on the server and presented by every client.

One table, `RPCS`, names every RPC of protos/threadline/v1 with what it does: WRITE (changes
stored state: always needs the token) or READ (needs it when the server listens beyond
loopback or `require_token` is set). A new RPC missing from the table needs the token always,
so forgetting it fails closed (and a test lists every RPC of the protos against it).

Health checks never need it: they say only SERVING / NOT_SERVING, and the probes of
orchestrators (compose, Kubernetes) that ask them hold no token.

Raw transcript lines are a permission of their own: `GetSessionMessages` with `include_raw`
is refused with PERMISSION_DENIED unless the caller presents the token, whatever the read
policy. The caller asked for raw bytes explicitly, so an error says why it gets none; an empty
field would look like a record without a line.
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Callable

import grpc

from threadline.auth import METADATA_KEY, Security, bearer


class Access(enum.Enum):
    READ = "read"
    WRITE = "write"
    OPEN = "open"


RPCS: dict[str, Access] = {
    "/threadline.v1.StoreService/Write": Access.WRITE,
    "/threadline.v1.StoreService/Changes": Access.READ,
    "/threadline.v1.StoreService/ListProjects": Access.READ,
    "/threadline.v1.StoreService/ListSessions": Access.READ,
    "/threadline.v1.StoreService/GetSessionMessages": Access.READ,
    "/threadline.v1.StoreService/GetOffsets": Access.READ,
    "/threadline.v1.StoreService/ListParseErrors": Access.READ,
    "/threadline.v1.StoreService/GetStats": Access.READ,
    "/threadline.v1.StoreService/GetUsage": Access.READ,
    "/threadline.v1.StoreService/ResolveNames": Access.READ,
    "/threadline.v1.StoreService/Search": Access.READ,
    "/threadline.v1.AnalysisService/Process": Access.WRITE,
    "/threadline.v1.AnalysisService/GetThreads": Access.READ,
    "/threadline.v1.AnalysisService/GetSessionAnalysis": Access.READ,
    "/threadline.v1.AnalysisService/GetToolStats": Access.READ,
    "/threadline.v1.AnalysisService/GetRecommendations": Access.READ,
    "/threadline.v1.IngestService/GetStatus": Access.READ,
    "/threadline.v1.StreamService/Subscribe": Access.READ,
    "/threadline.v1.StreamService/GetStatus": Access.READ,
    "/grpc.health.v1.Health/Check": Access.OPEN,
    "/grpc.health.v1.Health/Watch": Access.OPEN,
    # The contract itself (protos/ is public), asked for by grpcurl and Postman: a read.
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": Access.READ,
}

# Requests that ask for raw transcript lines: method -> does this request ask for them?
RAW_REQUESTS: dict[str, Callable[[object], bool]] = {
    "/threadline.v1.StoreService/GetSessionMessages": lambda r: r.include_raw,  # type: ignore[attr-defined]
}


def presented_token(metadata) -> str | None:
    for key, value in metadata or ():
        if key == METADATA_KEY and isinstance(value, str):
            return bearer(value)
    return None


def needs_token(method: str, security: Security, loopback: bool) -> bool:
    access = RPCS.get(method, Access.WRITE)
    if access is Access.OPEN:
        return False
    if access is Access.WRITE:
        return True
    return security.require_token or not loopback


# --- server ----------------------------------------------------------------------------------

def _refusing(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str
              ) -> grpc.RpcMethodHandler:
    async def refuse(request_or_iterator, context):
        await context.abort(code, message)

    _, wrap = _handler_kind(handler)
    return wrap(refuse, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)


def _handler_kind(handler: grpc.RpcMethodHandler):
    if handler.request_streaming and handler.response_streaming:
        return handler.stream_stream, grpc.stream_stream_rpc_method_handler
    if handler.request_streaming:
        return handler.stream_unary, grpc.stream_unary_rpc_method_handler
    if handler.response_streaming:
        return handler.unary_stream, grpc.unary_stream_rpc_method_handler
    return handler.unary_unary, grpc.unary_unary_rpc_method_handler


def _guarding_raw(handler: grpc.RpcMethodHandler, asks_raw: Callable[[object], bool]
                  ) -> grpc.RpcMethodHandler:
    """The handler, refusing a request that asks for raw lines (unary requests only)."""
    behavior, wrap = _handler_kind(handler)

    async def guarded(request, context):
        if asks_raw(request):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                "raw transcript lines need the token (authorization: Bearer)")
        return await behavior(request, context)

    return wrap(guarded, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)


class TokenInterceptor(grpc.aio.ServerInterceptor):
    """Applies `RPCS` to every call: UNAUTHENTICATED when the token is needed and missing,
    PERMISSION_DENIED when the one presented is wrong."""

    def __init__(self, security: Security, loopback: bool):
        self._security = security
        self._loopback = loopback

    async def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        presented = presented_token(handler_call_details.invocation_metadata)
        authorised = self._security.accepts(presented)
        if not authorised and needs_token(method, self._security, self._loopback):
            if presented is None:
                return _refusing(handler, grpc.StatusCode.UNAUTHENTICATED,
                                 f"{method} needs the token (authorization: Bearer)")
            return _refusing(handler, grpc.StatusCode.PERMISSION_DENIED,
                             f"{method}: wrong token")
        asks_raw = RAW_REQUESTS.get(method)
        if asks_raw is not None and not authorised:
            return _guarding_raw(handler, asks_raw)
        return handler


# --- clients ---------------------------------------------------------------------------------

class _SyncDetails(collections.namedtuple(
        "_SyncDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready",
                         "compression")), grpc.ClientCallDetails):
    pass


class _AioToken:
    def __init__(self, metadata: tuple[tuple[str, str], ...]):
        self._metadata = metadata

    async def _call(self, continuation, details, request):
        metadata = grpc.aio.Metadata(*(details.metadata or ()), *self._metadata)
        return await continuation(details._replace(metadata=metadata), request)


# grpc.aio files an interceptor under the first of the four kinds it is: one class per kind.
class _AioUnaryUnary(_AioToken, grpc.aio.UnaryUnaryClientInterceptor):
    intercept_unary_unary = _AioToken._call


class _AioUnaryStream(_AioToken, grpc.aio.UnaryStreamClientInterceptor):
    intercept_unary_stream = _AioToken._call


class _AioStreamUnary(_AioToken, grpc.aio.StreamUnaryClientInterceptor):
    intercept_stream_unary = _AioToken._call


class _AioStreamStream(_AioToken, grpc.aio.StreamStreamClientInterceptor):
    intercept_stream_stream = _AioToken._call


def aio_client_interceptors(security: Security | None) -> list:
    """Interceptors that add the token of `security` to every call (none without a token)."""
    if security is None or not security.token:
        return []
    metadata = security.metadata()
    return [kind(metadata) for kind in (_AioUnaryUnary, _AioUnaryStream, _AioStreamUnary,
                                        _AioStreamStream)]


class _SyncTokenClient(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                       grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    def __init__(self, metadata: tuple[tuple[str, str], ...]):
        self._metadata = metadata

    def _call(self, continuation, details, request):
        return continuation(_SyncDetails(
            details.method, details.timeout, [*(details.metadata or ()), *self._metadata],
            details.credentials, details.wait_for_ready,
            getattr(details, "compression", None)), request)

    intercept_unary_unary = _call
    intercept_unary_stream = _call
    intercept_stream_unary = _call
    intercept_stream_stream = _call


def sync_channel(address: str, security: Security | None, options=None) -> grpc.Channel:
    """A blocking channel (CLI, bench) that presents the token and verifies TLS when known."""
    credentials = security.channel_credentials() if security is not None else None
    channel = (grpc.secure_channel(address, credentials, options=options) if credentials
               else grpc.insecure_channel(address, options=options))
    if security is None or not security.token:
        return channel
    return grpc.intercept_channel(channel, _SyncTokenClient(security.metadata()))
