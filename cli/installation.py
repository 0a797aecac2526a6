"""This installation: `threadline token` (the secret clients present), `threadline health`
(a service's gRPC health) and `threadline config` (the settings in effect, and where each
came from)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping

from cli.options import FLAGS, flag_values, settings
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


# Settings whose value is a secret: `config` says whether one is set, never what it is.
SECRET = frozenset({"token"})


def _shown(name: str, value: object) -> str:
    if value is None:
        return "(none)"
    if name in SECRET:
        return "(set; `threadline token` prints it)"
    if isinstance(value, tuple):
        separator = os.pathsep if name == "roots" else ","
        return separator.join(str(v) for v in value)
    return str(value)


def config_rows(flags: dict[str, object], environ: Mapping[str, str]) -> list[dict]:
    """Every setting of threadline/config.py's table with the value in effect and where it
    came from: a flag, its environment variable, or its default (resolved as config.resolve
    does: flag > environment > default)."""
    resolved = config.resolve(flags, environ)
    rows = []
    for setting in config.SETTINGS:
        if flags.get(setting.name) is not None:
            source = f"flag {FLAGS.get(setting.name, setting.name)}"
        elif setting.env in environ:
            source = f"env {setting.env}"
        else:
            source = "default"
        rows.append({"name": setting.name, "env": setting.env,
                     "value": _shown(setting.name, getattr(resolved, setting.name)),
                     "source": source, "help": setting.help})
    return rows


def cmd_config(args: argparse.Namespace) -> int:
    from threadline.tables import render

    rows = config_rows(flag_values(args), os.environ)
    if args.json:
        print(json.dumps(rows))
        return 0
    print(render(["VARIABLE", "VALUE", "FROM", "WHAT IT SETS"],
                 [[r["env"], r["value"], r["source"], r["help"]] for r in rows], max_width=70))
    return 0
