"""The stream service's exceptions: one root, each carrying what a client needs to act.

    StreamError
     ├── SlowConsumer      a subscriber fell too far behind and was dropped (resume with `since`)
     ├── InvalidRequest    a subscription request that cannot be served (e.g. negative since)
     └── ShuttingDown      the service is stopping (resubscribe elsewhere or later with `since`)

The gRPC status of each is decided in one place, `servicer.STATUS_FOR`; the WebSocket gateway
turns them into close codes or error frames.
"""

from __future__ import annotations


class StreamError(Exception):
    """Root of every error the stream service raises on purpose."""


class SlowConsumer(StreamError):
    """A subscriber's bounded queue overflowed; it was dropped without slowing anyone else."""

    def __init__(self, queue_limit: int, last_sequence: int, what: str = "queue"):
        self.queue_limit = queue_limit
        # Highest sequence handed to the consumer before it was dropped: resume after it.
        self.last_sequence = last_sequence
        super().__init__(
            f"slow consumer: {what} full ({queue_limit} changes); "
            f"reconnect with since={last_sequence}"
        )


class InvalidRequest(StreamError):
    """A request the service cannot serve as asked."""


class ShuttingDown(StreamError):
    """The service is stopping; subscribers should resume later with `since`."""

    def __init__(self, last_sequence: int):
        self.last_sequence = last_sequence
        super().__init__(f"stream service shutting down; resubscribe with since={last_sequence}")
