"""Who may call the services: the installation's token, TLS, and when either is required.

The token is one secret per installation, presented as `authorization: Bearer <token>` (gRPC
metadata, or the WebSocket handshake header). `THREADLINE_TOKEN` sets it; otherwise it lives
in the file `token` beside the database, created on first run (mode 0600, folder 0700). Every
process of an installation (the services `up` starts, `serve` under compose with a shared
volume, the CLI) finds the same database folder, hence the same token.

Policy (`Policy.required`): mutating RPCs always need the token; reads need it when the server
listens beyond loopback or when `require_token` is set; health checks never do. A server that
listens beyond loopback without TLS refuses to start (`check_exposure`).
"""

from __future__ import annotations

import errno
import hmac
import ipaddress
import os
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

from threadline.config import Settings, data_folder

TOKEN_FILE = "token"
METADATA_KEY = "authorization"
SCHEME = "Bearer "


class RefusedToStart(Exception):
    """A service would listen where it is not safe to: the message is the one-line reason."""


# --- the token -------------------------------------------------------------------------------

def bearer(value: str | None) -> str | None:
    """The token of an `authorization` value "Bearer <token>" (scheme in any case), or None."""
    if value is None or value[:len(SCHEME)].lower() != SCHEME.lower():
        return None
    return value[len(SCHEME):].strip()


def token_path(db: Path | str) -> Path:
    return data_folder(db) / TOKEN_FILE


def read_token(path: Path) -> str | None:
    try:
        token = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    return token or None


def ensure_token(path: Path) -> str:
    """The token in `path`, created first if there is none.

    Written to a private temporary file, then linked into place: `link` fails when the name
    exists, so of two processes starting at once exactly one token wins and both read it, and
    nobody ever reads a half-written file."""
    token = read_token(path)
    if token is not None:
        return token
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
        try:
            os.link(tmp, path)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise
    finally:
        tmp.unlink(missing_ok=True)
    token = read_token(path)
    if token is None:
        raise OSError(f"token file {path} is empty")
    return token


# --- where a service listens -----------------------------------------------------------------

def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost; anything else (0.0.0.0, "", a name) is beyond."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Security:
    """What one process knows to serve and call securely; built by `for_server`/`for_client`."""

    token: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # What clients trust to verify the servers (a self-signed certificate is its own CA).
    tls_ca: Path | None = None
    require_token: bool = False
    allow_insecure_network: bool = False

    @property
    def serves_tls(self) -> bool:
        return self.tls_cert is not None and self.tls_key is not None

    @property
    def client_trust(self) -> Path | None:
        return self.tls_ca or self.tls_cert

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return ((METADATA_KEY, SCHEME + self.token),) if self.token else ()

    def accepts(self, presented: str | None) -> bool:
        if not self.token or presented is None:
            return False
        return hmac.compare_digest(presented.encode(), self.token.encode())

    # -- servers --------------------------------------------------------------------------

    def check_exposure(self, host: str, what: str) -> None:
        """Refuse to listen beyond loopback without TLS (unless explicitly allowed)."""
        if is_loopback(host):
            return
        if not self.token:
            raise RefusedToStart(f"{what} would listen on {host} without a token")
        if not self.serves_tls and not self.allow_insecure_network:
            raise RefusedToStart(
                f"{what} would listen on {host} without TLS: give --tls-cert and --tls-key "
                "(THREADLINE_TLS_CERT/KEY), or bind 127.0.0.1")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise RefusedToStart(f"{what}: give both --tls-cert and --tls-key")

    def server_credentials(self) -> grpc.ServerCredentials | None:
        if not self.serves_tls:
            return None
        return grpc.ssl_server_credentials(
            [(self.tls_key.read_bytes(), self.tls_cert.read_bytes())])  # type: ignore[union-attr]

    def server_ssl_context(self) -> ssl.SSLContext | None:
        if not self.serves_tls:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.tls_cert, self.tls_key)  # type: ignore[arg-type]
        return context

    # -- clients --------------------------------------------------------------------------

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        trust = self.client_trust
        if trust is None:
            return None
        return grpc.ssl_channel_credentials(root_certificates=trust.read_bytes())

    def client_ssl_context(self) -> ssl.SSLContext | None:
        trust = self.client_trust
        return None if trust is None else ssl.create_default_context(cafile=str(trust))

    def environment(self) -> dict[str, str]:
        """What a child process (the analysis follower) needs to call as this one does."""
        env = {"THREADLINE_TOKEN": self.token} if self.token else {}
        if self.client_trust is not None:
            env["THREADLINE_TLS_CA"] = str(self.client_trust)
        return env


def _common(settings: Settings, token: str | None) -> Security:
    return Security(token=token, tls_cert=settings.tls_cert, tls_key=settings.tls_key,
                    tls_ca=settings.tls_ca, require_token=settings.require_token,
                    allow_insecure_network=settings.allow_insecure_network)


def for_server(settings: Settings) -> Security:
    """A service's security: its token is created on first run when none is set."""
    return _common(settings, settings.token or ensure_token(token_path(settings.db)))


def for_client(settings: Settings) -> Security:
    """A client's security: the token if this installation has one (never creates it)."""
    return _common(settings, settings.token or read_token(token_path(settings.db)))
