"""The stream service's exceptions: one root, each carrying what a client needs to act.

    StreamError
     ├── SlowConsumer      a subscriber fell too far behind and was dropped (resume with `since`)
     ├── InvalidRequest    a subscription request that cannot be served (e.g. negative since)
     ├── SinceBeyondHead   `since` is past the newest change (e.g. the store was replaced)
     ├── ShuttingDown      the service is stopping (resubscribe elsewhere or later with `since`)
     ├── NotFound          a read named a session that is not stored
     ├── Unavailable       a read the store or analysis service could not answer right now
     └── ProtocolError     (protocol.py) a WebSocket frame that cannot be understood

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


class SinceBeyondHead(StreamError):
    """A subscription asked to resume after a sequence the service has not seen yet.

    Waiting would look like silence until the head passes it; after the store's database was
    replaced it may never do so. The client should resume from `head` (or from its own data).
    """

    def __init__(self, since: int, head: int):
        self.since = since
        self.head = head
        super().__init__(f"since={since} is beyond the head sequence {head}; "
                         f"subscribe again with since <= {head}")


class ShuttingDown(StreamError):
    """The service is stopping; subscribers should resume later with `since`."""

    def __init__(self, last_sequence: int):
        self.last_sequence = last_sequence
        super().__init__(f"stream service shutting down; resubscribe with since={last_sequence}")


class NotFound(StreamError):
    """A read named something (a session) that the store does not hold."""


class Unavailable(StreamError):
    """The store or the analysis service could not answer a read; asking again may work."""
