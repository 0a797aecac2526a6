"""The web page the gateway serves at `/`: static files shipped in `web/`, without any socket.

`respond(path, host)` answers a plain HTTP GET; the gateway turns the answer into a response.

The page holds the installation's token, so it is handed out with care:
- only to a request whose `Host` is the gateway's own (`127.0.0.1:PORT`, `localhost:PORT`,
  `[::1]:PORT`) or that of a configured allowed origin. A DNS-rebinding page (evil.example
  resolving to 127.0.0.1) is same-origin with the gateway as far as the browser knows, so it
  could fetch `/`; but its requests carry `Host: evil.example:PORT`, which gets 421 and no
  token. (Its WebSocket is refused anyway: its Origin is not on the allow-list.)
- never when every read needs the token (`THREADLINE_REQUIRE_TOKEN`, or a gateway beyond
  loopback): anyone who can reach the port could then read it from the page, which is what
  that setting exists to prevent. The page then asks the user for it (`threadline token`).
- with `Cache-Control: no-store`, so no cache keeps it.
Every file is sent with a Content-Security-Policy that allows scripts, styles and connections
to this origin only, and no inline script or style, so transcript text that slipped into the
markup could not run.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from functools import cache
from importlib import resources
from urllib.parse import urlsplit

# The files of the page, by URL path, and what they are.
FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/client.js": ("client.js", "text/javascript; charset=utf-8"),
    "/dom.js": ("dom.js", "text/javascript; charset=utf-8"),
    "/sessions.js": ("sessions.js", "text/javascript; charset=utf-8"),
    "/conversation.js": ("conversation.js", "text/javascript; charset=utf-8"),
    "/usage.js": ("usage.js", "text/javascript; charset=utf-8"),
    "/search.js": ("search.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}
# Where index.html carries the token (an attribute value: escaped, never markup).
TOKEN_SLOT = 'name="threadline-token" content=""'
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


@cache
def _file(name: str) -> bytes:
    return resources.files("services.stream").joinpath("web", name).read_bytes()


def own_hosts(port: int, origins: tuple[str, ...]) -> frozenset[str]:
    """The `Host` values that name this gateway: loopback on its port, and the host of each
    configured allowed origin (as browsers send it: no port when it is the scheme's own)."""
    hosts = {f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]")}
    hosts.update(urlsplit(origin).netloc.lower() for origin in origins)
    return frozenset(hosts)


def is_page(path: str) -> bool:
    return urlsplit(path).path in FILES


def respond(path: str, host: str | None, hosts: frozenset[str], token: str | None) -> Answer:
    """The answer to `GET path`; `token` is what the page may be given (None: nothing)."""
    name, content_type = FILES[urlsplit(path).path]
    if name == "index.html":
        if host is None or host.lower() not in hosts:
            return _text(421, "misdirected request: this gateway answers to "
                              f"{', '.join(sorted(hosts))}\n")
        body = _file(name)
        if token:
            slot = f'name="threadline-token" content="{html.escape(token, quote=True)}"'
            body = body.replace(TOKEN_SLOT.encode(), slot.encode(), 1)
        # The page holds the token: no cache may keep it.
        return Answer(200, (("Content-Type", content_type), ("Cache-Control", "no-store"),
                            *SECURITY_HEADERS), body)
    return Answer(200, (("Content-Type", content_type), ("Cache-Control", "no-cache"),
                        *SECURITY_HEADERS), _file(name))


def _text(status: int, text: str) -> Answer:
    return Answer(status, (("Content-Type", "text/plain; charset=utf-8"),
                           ("Cache-Control", "no-store"), *SECURITY_HEADERS), text.encode())
