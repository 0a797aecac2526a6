"""The exception root of the ingest service, and its mapping to gRPC status codes.

Ingest's own RPC (GetStatus) only reads a snapshot; subclasses set `code` if they need a
status other than INTERNAL.
"""

from __future__ import annotations

import grpc


class IngestError(Exception):
    """Base of every error ingest reports to a caller."""

    code = grpc.StatusCode.INTERNAL


def status_code(exc: IngestError) -> grpc.StatusCode:
    return exc.code
