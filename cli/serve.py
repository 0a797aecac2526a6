"""Running the services: `threadline serve NAME...` (one or several services in this
process, what compose and the supervisor's children run) and `threadline up` (all four,
supervised, on this machine)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from cli.options import settings as resolve_settings
from threadline import config

SERVICES = ("ingest", "analysis", "store", "stream")


def _ports(values: list[str] | None, services: list[str]) -> dict[str, int | None]:
    """`--port N` (one service) or `--port NAME=N` (repeatable, several services)."""
    ports: dict[str, int | None] = dict.fromkeys(services)
    for value in values or []:
        name, _, number = value.rpartition("=")
        if not name:
            if len(services) != 1:
                raise SystemExit("threadline serve: give --port NAME=N for each service")
            name = services[0]
        if name not in ports:
            raise SystemExit(f"threadline serve: --port names {name!r}, which is not served")
        ports[name] = int(number)
    return ports


async def _serve(services: list[str], settings: config.Settings,
                 ports: dict[str, int | None]) -> None:
    import importlib

    from threadline import bootstrap

    async def start():
        running = []
        ready: dict = {"ports": {}}
        try:
            for name in services:
                module = importlib.import_module(f"services.{name}.server")
                port = ports[name]
                service = await module.start(settings if port is None
                                             else settings.replace(port=port))
                running.append(service)
                ready["ports"][name] = service.port
                where = f"gRPC on {settings.host}:{service.port}"
                if hasattr(service, "ws_port"):
                    ready["ws_port"] = service.ws_port
                    scheme = "wss" if settings.tls_cert else "ws"
                    where += f", WebSocket on {scheme}://{settings.ws_host}:{service.ws_port}/ws"
                print(f"threadline {name}: serving {where}", file=sys.stderr, flush=True)
        except BaseException:
            for service in reversed(running):
                await service.stop()
            raise
        if settings.ready_file is not None:
            tmp = settings.ready_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(ready))
            tmp.replace(settings.ready_file)

        async def stop():
            for service in reversed(running):
                await service.stop()
        return stop

    await bootstrap.run_until_stopped(start)


def _exposure_refused(settings: config.Settings, gateway: bool) -> str | None:
    """Why the services may not listen where they are told to (checked before anything
    starts; each server checks again as it binds), or None."""
    from threadline import auth

    try:
        security = auth.for_server(settings)
        security.check_exposure(settings.host, "gRPC server")
        if gateway:
            security.check_exposure(settings.ws_host, "WebSocket gateway")
    except (OSError, auth.RefusedToStart) as exc:
        return str(exc)
    return None


def cmd_serve(args: argparse.Namespace) -> int:
    from threadline import telemetry
    from threadline.auth import RefusedToStart
    from threadline.dblock import DatabaseLocked

    services = list(dict.fromkeys(args.services))
    ports = _ports(args.port, services)
    settings = resolve_settings(args)
    if (reason := _exposure_refused(settings, "stream" in services)) is not None:
        print(f"threadline serve {' '.join(services)}: {reason}", file=sys.stderr)
        return 1
    telemetry.setup_logging(settings.log_level)
    telemetry.setup_tracing("threadline-" + "-".join(services))
    from threadline.redaction import PatternError

    try:
        asyncio.run(_serve(services, settings, ports))
    except (OSError, DatabaseLocked, RefusedToStart, PatternError) as exc:  # a port or
        # database in use, an exposed port without TLS, a bad redaction pattern...
        print(f"threadline serve {' '.join(services)}: {exc}", file=sys.stderr)
        return 1
    return 0


def database_ok(settings: config.Settings, command: str) -> bool:
    """Whether the database is threadline's or new; another program's file is said here in
    one line, before a store that would fail on it (or fill it with tables) starts."""
    from cli.db import refuse_foreign
    from threadline.storage.errors import StoreError

    try:
        refuse_foreign(settings.db)
    except StoreError as exc:
        print(f"threadline {command}: {exc}", file=sys.stderr)
        return False
    return True


def redaction_ok(settings: config.Settings, command: str) -> bool:
    """Whether the `redact_patterns` file loads; its error is said here in one line, before
    services that would fail on it start (their own output may be silenced)."""
    from services.ingest.server import load_redactor
    from threadline.redaction import PatternError

    try:
        load_redactor(settings)
    except (OSError, PatternError) as exc:
        print(f"threadline {command}: {exc}", file=sys.stderr)
        return False
    return True


def cmd_up(args: argparse.Namespace) -> int:
    from threadline.storage import files
    from threadline.supervisor import Interrupted, StopSignals, Supervisor

    signals = StopSignals()  # first: a signal at any later instant stops cleanly
    supervisor = None
    try:
        settings = resolve_settings(args)
        if not database_ok(settings, "up"):
            return 1
        # Said here once, rather than by each child as it fails to start.
        if (reason := _exposure_refused(settings, gateway=True)) is not None:
            print(f"threadline up: {reason}", file=sys.stderr)
            return 1
        if not redaction_ok(settings, "up"):
            return 2
        files.private_directory(config.data_folder(settings.db))
        supervisor = Supervisor(settings, command="threadline up", signals=signals)
        return _up(settings, supervisor)
    except Interrupted:
        return 0
    finally:
        if supervisor is not None:
            supervisor.stop()


def _up(settings: config.Settings, supervisor) -> int:
    from threadline.dblock import DatabaseLocked

    try:
        supervisor.start()
    except DatabaseLocked as exc:
        print(f"threadline: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:
        print(f"threadline up: {exc} (is another instance using ports "
              f"{settings.grpc_port}-{settings.grpc_port + 3} or {settings.ws_port}? "
              "see --grpc-port and --ws-port)", file=sys.stderr)
        return 1
    roots = ", ".join(str(r) for r in settings.roots)
    processes = ", ".join(f"{c.name} (pid {c.process.pid})" for c in supervisor.children.values())
    print(f"""threadline is running (Ctrl-C to stop)
  database:    {settings.db}
  watching:    {roots}
  web page:    {"https" if settings.tls_cert else "http"}://{settings.ws_host}:{supervisor.ports['ws']}/
  WebSocket:   {"wss" if settings.tls_cert else "ws"}://{settings.ws_host}:{supervisor.ports['ws']}/ws
  gRPC store:  {supervisor.address('store')}   (queries, Changes)
  gRPC stream: {supervisor.address('stream')}   (Subscribe)
  gRPC ingest: {supervisor.address('ingest')}   analysis: {supervisor.address('analysis')}
  processes:   {processes}""",
          flush=True)
    supervisor.run_forever()
    return 0

