"""This installation: `threadline token` (the secret clients present), `threadline health`
(a service's gRPC health) and `threadline config` (the settings in effect)."""

from __future__ import annotations

import argparse
import sys

from cli.options import settings
from threadline import config


def cmd_health(args: argparse.Namespace) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from threadline import access, auth

    # Health needs no token; TLS trust comes from the settings (THREADLINE_TLS_CA/CERT).
    resolved = settings(args)
    security = auth.Security(tls_cert=resolved.tls_cert, tls_ca=resolved.tls_ca)
    try:
        with access.sync_channel(args.address, security) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout)
    except grpc.RpcError as exc:
        print(f"{args.address}: {exc.code().name}", file=sys.stderr)
        return 1
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{args.address}: {name}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


def cmd_token(args: argparse.Namespace) -> int:
    from threadline import auth

    resolved = settings(args)
    try:
        token = auth.for_server(resolved).token
    except OSError as exc:
        print(f"threadline token: {exc}", file=sys.stderr)
        return 1
    print(token)
    return 0


def cmd_config(args: argparse.Namespace) -> int:  # noqa: ARG001 - uniform signature
    for env, default, help_text in config.describe():
        print(f"{env:32} {default:40} {help_text}")
    return 0

