"""A fake Procore login + API server for tests, `--demo` mode and offline cron-script testing.

`FakeProcore` serves, on one base URL, the OAuth 2.0 endpoints of Procore's login
server (Doorkeeper's exact error bodies and statuses, single-use rotating refresh
tokens) and a few REST API endpoints (`/rest/v1.0/me`, `/companies`, `/projects`).
It can inject faults (error statuses, rate limits, hangs, dropped connections, and
"processed but the response was lost") to exercise retry and token-chain handling.

Standard library only. Typical use::

    with FakeProcore() as fake:
        code = fake.issue_code()          # as if the user had logged in
        ...  # point the client at fake.url, client id/secret "demo-client-id"/"demo-client-secret"
        assert fake.counts["refresh_ok"] == 1

A demo service account (Procore's Developer Managed Service Accounts: the client-credentials
grant) has its own client, "demo-service-account-id"/"demo-dmsa-client-secret"
(`service_account_client_id`/`service_account_client_secret`), installed in the companies
`service_account_companies` (by default the first of DEFAULT_COMPANIES). Its tokens come with
no refresh token and `"token_type": "Bearer"` (capital B, as Doorkeeper writes it), and, as in
Procore's Multiple Procore Zones, `/rest/v1.0/me` and `/rest/v1.0/companies` answer them only
with a `Procore-Company-Id` header naming one of those companies: without it they answer 400
`invalid_request` (the header is a required parameter, as on every other endpoint), with a
company the app is not installed in 403 `forbidden`.

Other processes can drive it through the admin endpoints under `/_fake/`
(`POST /_fake/code`, `GET /_fake/stats`, `POST|GET|DELETE /_fake/faults`,
`POST /_fake/chaos`, `POST /_fake/revoke-all`, `POST /_fake/expire-access-tokens`,
`POST /_fake/config`). Admin requests are never faulted and never counted.

The REST API side, for `procore-setup api` and `ProcoreClient`: `/rest/v1.0/projects` is a v1 list
(`project_count` projects per company, 2 by default, `page`/`per_page`, answered with `Link`,
`Total` and `Per-Page`; POST creates a project and counts it in `projects_created`), and
`/rest/v2.0/companies/{id}/projects` a v2 list (`{"data": [...]}`, string ids, 10 a page by
default, 100 at most, a `Link` header). Every `/rest/` answer carries `X-Rate-Limit-Limit`,
`X-Rate-Limit-Remaining` and `X-Rate-Limit-Reset` for a fixed window (`set_rate_limit(limit,
window)`: 100,000 an hour by default, so that long soak runs are never refused; a short window keeps
tests quick); a request past the limit is
refused with 429 and counted in `rate_limited` (requests sent while over the limit), and refused
requests count against the window, as at Procore. `latency` seconds are added to every `/rest/`
answer (outside the lock: concurrent requests overlap), and `api_in_flight_max` counts the most
`/rest/` requests seen at once.

Hostile answers, for testing that a client stays bounded: `inject(gzip_bomb=N)` answers a small
gzip stream that inflates to N bytes, `inject(huge_body=N)` streams N bytes (chunked, no length), `inject(headers=...)`
adds headers, and (in Python only) `inject(edit=f)` passes the real JSON answer through `f`, and
`inject(hook=f)` calls `f()` while the request is handled, after processing, before answering;
`inject(gate=f)` calls it before processing.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import math
import random
import secrets
import socket
import struct
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Mapping, Sequence
from urllib.parse import parse_qs, urlencode, urlsplit

__all__ = [
    "FakeProcore",
    "OOB_REDIRECT_URI",
    "DEFAULT_USER",
    "DEFAULT_COMPANIES",
    "SERVICE_ACCOUNT_CLIENT_ID",
    "SERVICE_ACCOUNT_CLIENT_SECRET",
    "SERVICE_ACCOUNT_USER",
    "INVALID_GRANT",
    "INVALID_CLIENT",
    "INVALID_TOKEN",
    "UNSUPPORTED_GRANT_TYPE",
    "WWW_AUTHENTICATE_INVALID_TOKEN",
]

OOB_REDIRECT_URI = "urn:ietf:wg:oauth:2.0:oob"

DEFAULT_USER: dict[str, Any] = {"id": 4242, "login": "pat@example.com", "name": "Pat Builder"}

SERVICE_ACCOUNT_CLIENT_ID = "demo-service-account-id"
SERVICE_ACCOUNT_CLIENT_SECRET = "demo-dmsa-client-secret"
# Who /rest/v1.0/me says a service account's token belongs to (DMSA: a user the app's install creates).
SERVICE_ACCOUNT_USER: dict[str, Any] = {"id": 9001, "login": "robot@builder-demo.example",
                                        "name": "Demo Service Account"}

DEFAULT_COMPANIES: list[dict[str, Any]] = [
    {"id": 8675309, "name": "Builder Demo Co.", "is_active": True, "my_company": True, "logo_url": None},
    # Company ids may exceed 32 bits: keep one that does, to catch int32 assumptions.
    {"id": 562949953421313, "name": "Zone Two Contractors", "is_active": True, "my_company": False, "logo_url": None},
    {"id": 31337, "name": "Retired Projects LLC", "is_active": False, "my_company": False, "logo_url": None},
]

# Doorkeeper's error bodies, verbatim.
INVALID_GRANT: dict[str, str] = {
    "error": "invalid_grant",
    "error_description": (
        "The provided authorization grant is invalid, expired, revoked, does not match "
        "the redirection URI used in the authorization request, or was issued to another client."
    ),
}
INVALID_CLIENT: dict[str, str] = {
    "error": "invalid_client",
    "error_description": (
        "Client authentication failed due to unknown client, no client authentication "
        "included, or unsupported authentication method."
    ),
}
INVALID_TOKEN: dict[str, str] = {
    "error": "invalid_token",
    "error_description": "The access token is invalid",
    "state": "unauthorized",
}
UNSUPPORTED_GRANT_TYPE: dict[str, str] = {
    "error": "unsupported_grant_type",
    "error_description": "The authorization grant type is not supported by the authorization server.",
}
UNAUTHORIZED_REVOKE: dict[str, str] = {
    "error": "unauthorized_client",
    "error_description": "You are not authorized to revoke this token",
}
WWW_AUTHENTICATE_INVALID_TOKEN = (
    'Bearer realm="Doorkeeper", error="invalid_token", error_description="The access token is invalid"'
)
WWW_AUTHENTICATE_INVALID_CLIENT = (
    'Bearer realm="Doorkeeper", error="invalid_client", '
    f'error_description="{INVALID_CLIENT["error_description"]}"'
)

ADMIN_PREFIX = "/_fake/"

# Counter keys that always exist (so `counts[key]` / `stats()[key]` never fail).
COUNTER_KEYS: tuple[str, ...] = (
    "requests",  # every non-admin request, faulted or not
    "faults",  # requests that got an injected fault (incl. hang-only and chaos)
    "authorize",
    "authorize_page",
    "token:authorization_code",
    "token:refresh_token",
    "token:client_credentials",
    "token:invalid",
    "code_ok",
    "refresh_ok",
    "client_credentials_ok",
    "invalid_grant",
    "token_info",
    "revoke",
    "me",
    "companies",
    "projects",
    "not_found",
    "status_401",
    "api_requests",  # every /rest/ request (refused by the rate limit or not)
    "rate_limited",  # /rest/ requests refused with 429 because the window's limit was used up
    "projects_created",  # POST /rest/v1.0/projects that created a project
    "v2_projects",
    "api_in_flight_max",  # the most /rest/ requests in progress at once
)

_FAULT_KINDS = ("drop", "500", "502", "503", "504", "429", "delay")


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


_ZEROS = bytes(1 << 20)


@functools.lru_cache(maxsize=4)
def make_gzip_bomb(size: int) -> bytes:
    """A valid gzip stream of `size` zero bytes (rounded up to whole MiB), about 1 KB per MiB.

    Built from one independently compressed MiB repeated (a full flush resets the compressor,
    so every MiB compresses to the same bytes): quick even for gigabytes.
    """
    mib = max(1, -(-size // len(_ZEROS)))
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    head = z.compress(b"")
    block = z.compress(_ZEROS) + z.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(_ZEROS, crc)
    tail = b"\x03\x00" + struct.pack("<II", crc, (mib * len(_ZEROS)) & 0xFFFFFFFF)  # last block, CRC, size
    return head + block * mib + tail


def _huge_body(size: int) -> Iterable[bytes]:
    """`size` bytes of a token answer that never ends, made as they are sent, in chunked encoding
    (so no Content-Length warns the client)."""
    start = b'{"access_token":"'
    left = size
    chunk = start + b"a" * (65536 - len(start))
    while left > 0:
        piece = chunk[: min(left, len(chunk))]
        yield b"%x\r\n%s\r\n" % (len(piece), piece)
        left -= len(piece)
        chunk = b"a" * 65536
    yield b"0\r\n\r\n"


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    drop: bool = False
    stream: Iterable[bytes] | None = None  # sent after `body`, as it is made (Content-Length set by the maker)
    cut: bool = False  # the headers promise the whole body; half of it is sent, then the connection closes

    @classmethod
    def json(cls, status: int, obj: Any, headers: Iterable[tuple[str, str]] = ()) -> "_Response":
        return cls(status, _json_bytes(obj), [("Content-Type", "application/json; charset=utf-8"), *headers])

    @classmethod
    def html(cls, status: int, text: str, headers: Iterable[tuple[str, str]] = ()) -> "_Response":
        return cls(status, text.encode("utf-8"), [("Content-Type", "text/html; charset=utf-8"), *headers])


@dataclass
class _Code:
    code: str
    redirect_uri: str
    issued_at: float
    used: bool = False
    revoked: bool = False


@dataclass
class _TokenPair:
    access_token: str
    refresh_token: str
    grant_id: int
    issued_at: float
    created_at: int
    life: int
    access_revoked: bool = False
    access_expired: bool = False  # forced by expire_access_tokens()
    refresh_state: str = "active"  # active | used | revoked | none (a service account's token has none)
    service_account: bool = False  # issued by the client-credentials grant


@dataclass
class _Fault:
    status: int | None = None
    count: int = 1
    paths: tuple[str, ...] | None = None
    retry_after: int | float | str | None = None
    hang: float | None = None
    drop: bool = False
    consume: bool = False
    body: Any = None
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    gzip_bomb: int | None = None
    huge_body: int | None = None
    edit: Callable[[Any], Any] | None = None
    hook: Callable[[], None] | None = None
    gate: Callable[[], None] | None = None
    cut: bool = False

    def matches(self, path: str) -> bool:
        return self.paths is None or any(path.startswith(p) for p in self.paths)

    def describe(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "count": self.count,
            "paths": list(self.paths) if self.paths is not None else None,
            "retry_after": self.retry_after,
            "hang": self.hang,
            "drop": self.drop,
            "consume": self.consume,
            "body": self.body,
            "content_type": self.content_type,
            "headers": [list(h) for h in self.headers],
            "gzip_bomb": self.gzip_bomb,
            "huge_body": self.huge_body,
            "edit": self.edit is not None,
            "hook": self.hook is not None,
            "gate": self.gate is not None,
            "cut": self.cut,
        }

    @property
    def replaces(self) -> bool:
        """Whether the answer is a made-up one (not the real answer, possibly edited)."""
        return self.drop or self.status is not None or self.gzip_bomb is not None or self.huge_body is not None


@dataclass
class _Chaos:
    rate: float
    kinds: tuple[str, ...]
    rng: random.Random
    consume_share: float
    delay: float
    paths: tuple[str, ...] | None


def _norm_paths(paths: str | Sequence[str] | None) -> tuple[str, ...] | None:
    if paths is None:
        return None
    if isinstance(paths, str):
        return (paths,)
    return tuple(paths)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: "FakeProcore"

    def handle_error(self, request: Any, client_address: Any) -> None:
        if self.fake.verbose:
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out without the 40 ms delayed-ACK stall
    server_version = "FakeProcore/1.0"
    server: _Server

    # -- plumbing ---------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if self.server.fake.verbose:
            super().log_message(format, *args)

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._track(self.connection, add=False)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        # a GET without its body, as Rails answers HEAD
        self._head = True
        try:
            self._dispatch("GET")
        finally:
            self._head = False

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self, method: str) -> None:
        fake = self.server.fake
        try:
            body = self._read_body()
        except (OSError, ValueError):
            self.close_connection = True
            return
        split = urlsplit(self.path)
        path = split.path
        req = _Request(
            method=method,
            path=path,
            query=split.query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        if path.startswith(ADMIN_PREFIX) or path == ADMIN_PREFIX.rstrip("/"):
            self._send(fake._handle_admin(req))
            return

        if path.startswith("/rest/"):
            fake._api_enter()
            try:
                refused = fake._rate_check()
                if refused is not None:
                    self._send(refused)
                    return
                fake._sleep(fake.latency)
                self._dispatch_faulted(req, path, api=True)
            finally:
                fake._api_leave()
            return
        self._dispatch_faulted(req, path, api=False)

    def _dispatch_faulted(self, req: "_Request", path: str, *, api: bool) -> None:
        fake = self.server.fake
        fault = fake._take_fault(path)
        if fault is None:
            self._send(fake._with_rate_headers(fake._handle(req), api))
            return

        if fault.gate is not None:
            fault.gate()  # before Procore looks at the request
        if fault.consume or not fault.replaces:
            if not fault.consume:
                fake._sleep(fault.hang)
            real = fake._handle(req)
            if fault.consume:
                fake._sleep(fault.hang)
            replaced = fake._fault_response(fault)
            answer = replaced if replaced is not None else fake._edited(real, fault.edit)
        else:
            fake._sleep(fault.hang)
            answer = fake._fault_response(fault) or fake._handle(req)
        if fault.hook is not None:
            fault.hook()
        if fault.cut and not answer.drop:
            answer = replace(answer, cut=True)
        self._send(fake._with_rate_headers(answer, api))

    def _send(self, resp: _Response) -> None:
        if resp.drop:
            self.close_connection = True
            try:
                # RST rather than FIN, so the client sees the connection die mid-request.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            return
        try:
            self.send_response(resp.status)
            names = {k.lower() for k, _ in resp.headers}
            for k, v in resp.headers:
                self.send_header(k, v)
            if "content-length" not in names and "transfer-encoding" not in names:
                self.send_header("Content-Length", str(len(resp.body)))
            if not hasattr(self, "_headers_buffer"):
                self._headers_buffer = []
            self._headers_buffer.append(b"\r\n")  # end_headers(), with the body in the same write
            head = getattr(self, "_head", False)
            if resp.cut and not head:
                # the body breaks off mid-way: half of it, then the connection goes
                self._headers_buffer.append(resp.body[: len(resp.body) // 2])
                self.flush_headers()
                self.close_connection = True
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if resp.body and not head:
                self._headers_buffer.append(resp.body)
            self.flush_headers()
            if resp.stream is not None and not head:
                for chunk in resp.stream:
                    self.wfile.write(chunk)
        except OSError:  # client went away (e.g. timed out during a hang, or read enough of a huge body)
            self.close_connection = True


@dataclass
class _Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def query_params(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.query, keep_blank_values=True).items()}

    def params(self) -> dict[str, str]:
        """Query parameters overlaid with the body (form-encoded or JSON), like Rails' params."""
        params = self.query_params()
        ctype = self.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        raw = self.body.decode("utf-8", "replace")
        if not raw.strip():
            return params
        if ctype == "application/json" or (not ctype and raw.lstrip().startswith("{")):
            try:
                data = json.loads(raw)
            except ValueError:
                return params
            if isinstance(data, dict):
                for k, v in data.items():
                    if v is None:
                        continue
                    params[str(k)] = v if isinstance(v, str) else json.dumps(v)
            return params
        for k, v in parse_qs(raw, keep_blank_values=True).items():
            params[k] = v[0]
        return params

    def json_body(self) -> Any:
        raw = self.body.decode("utf-8", "replace").strip()
        return json.loads(raw) if raw else {}

    def bearer(self) -> str | None:
        auth = self.headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return None
        return value.strip()

    def basic(self) -> tuple[str, str] | None:
        auth = self.headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, pw = base64.b64decode(value.strip()).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return user, pw


class FakeProcore:
    """An in-process fake of Procore's login (OAuth 2.0) and REST API servers, on one base URL.

    Thread-safe: all state sits behind one lock. Use as a context manager or call
    `start()` / `stop()`. `url` is the base URL for both the login and the API host.
    """

    def __init__(
        self,
        client_id: str = "demo-client-id",
        client_secret: str = "demo-client-secret",
        access_token_life: int = 5400,
        code_life: int = 600,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        user: Mapping[str, Any] | None = None,
        companies: Sequence[Mapping[str, Any]] | None = None,
        per_page_default: int = 100,
        strict_replay: bool = False,
        verbose: bool = False,
        service_account_client_id: str = SERVICE_ACCOUNT_CLIENT_ID,
        service_account_client_secret: str = SERVICE_ACCOUNT_CLIENT_SECRET,
        service_account_companies: Sequence[int] | None = None,
        rate_limit: int = 100_000,
        rate_window: int = 3600,
        latency: float = 0.0,
        project_count: int = 2,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        # The demo service account: its own client (rotate the secret by assigning a new one).
        self.service_account_client_id = service_account_client_id
        self.service_account_client_secret = service_account_client_secret
        self.access_token_life = int(access_token_life)
        self.code_life = int(code_life)
        self.host = host
        self.port = port
        self.clock = clock
        self.user: dict[str, Any] = dict(user if user is not None else DEFAULT_USER)
        base = companies if companies is not None else DEFAULT_COMPANIES
        self.companies: list[dict[str, Any]] = [
            {"is_active": True, "my_company": False, "logo_url": None, **dict(c)} for c in base
        ]
        self.per_page_default = int(per_page_default)
        self.service_account_companies: list[int] = (
            [int(c) for c in service_account_companies] if service_account_companies is not None
            else [int(self.companies[0]["id"])] if self.companies else [])
        self.strict_replay = strict_replay
        self.verbose = verbose
        self.rate_limit = int(rate_limit)
        self.rate_window = max(int(rate_window), 1)
        self.latency = float(latency)
        self.project_count = int(project_count)
        self._window: tuple[int, int] = (0, 0)  # (window start, requests counted in it)
        self._api_in_flight = 0
        self._created: dict[int, list[dict[str, Any]]] = {}  # company id -> projects made by POST
        self._project_seq = 0

        self._lock = threading.RLock()
        self._codes: dict[str, _Code] = {}
        self._access: dict[str, _TokenPair] = {}
        self._refresh: dict[str, _TokenPair] = {}
        self._grant_seq = 0
        self._counts: Counter[str] = Counter({k: 0 for k in COUNTER_KEYS})
        self._faults: list[_Fault] = []
        self._chaos: _Chaos | None = None
        self._stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> "FakeProcore":
        """Bind and serve in a daemon thread. Returns self."""
        if self._httpd is not None:
            return self
        httpd = _Server((self.host, self.port), _Handler)
        httpd.fake = self
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._stopping.clear()
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="FakeProcore", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake hanging requests and close open connections."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "FakeProcore":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL of the login and API endpoints, e.g. "http://127.0.0.1:54321"."""
        if self._httpd is None:
            raise RuntimeError("FakeProcore is not running: call start() or use it as a context manager")
        host = self.host if self.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _sleep(self, seconds: float | None) -> None:
        if seconds:
            self._stopping.wait(float(seconds))

    # -- test controls ------------------------------------------------------------

    def issue_code(self, redirect_uri: str = OOB_REDIRECT_URI) -> str:
        """A fresh single-use authorization code, as if the user had just logged in."""
        with self._lock:
            return self._new_code(redirect_uri)

    def issue_tokens(self) -> dict[str, Any]:
        """A fresh grant (token response body) without going through a code exchange."""
        with self._lock:
            return self._token_body(self._new_pair(self._next_grant()))

    def set_access_token_life(self, seconds: int) -> None:
        """Lifetime (`expires_in`) of access tokens issued from now on."""
        with self._lock:
            self.access_token_life = int(seconds)

    def expire_access_tokens(self) -> None:
        """Make every access token issued so far expired (refresh tokens stay usable)."""
        with self._lock:
            for pair in self._access.values():
                pair.access_expired = True

    def revoke_all(self) -> None:
        """Revoke every grant (all access and refresh tokens, pending codes), as if the user revoked the app."""
        with self._lock:
            for pair in self._access.values():
                pair.access_revoked = True
                if pair.refresh_state == "active":
                    pair.refresh_state = "revoked"
            for code in self._codes.values():
                code.revoked = True

    def refresh_token_state(self, refresh_token: str) -> str:
        """State of a refresh token: "active", "used", "revoked" or "unknown"."""
        with self._lock:
            pair = self._refresh.get(refresh_token)
            return pair.refresh_state if pair else "unknown"

    def access_token_valid(self, access_token: str) -> bool:
        """Whether the API would accept this access token right now."""
        with self._lock:
            return self._valid_access(access_token) is not None

    @property
    def counts(self) -> Counter[str]:
        """A snapshot of the request counters (a Counter: unknown keys read as 0)."""
        with self._lock:
            return Counter(self._counts)

    def stats(self) -> dict[str, int]:
        """A copy of the request counters as a plain dict."""
        with self._lock:
            return dict(self._counts)

    def reset_stats(self) -> None:
        """Zero every counter."""
        with self._lock:
            self._counts = Counter({k: 0 for k in COUNTER_KEYS})

    # -- the REST API's rate limit and lists ------------------------------------------

    def set_rate_limit(self, limit: int, window: int) -> None:
        """Allow `limit` /rest/ requests per fixed window of `window` seconds (a new window starts
        counting from zero), as the spike window of Procore's rate limit."""
        with self._lock:
            self.rate_limit = int(limit)
            self.rate_window = max(int(window), 1)
            self._window = (0, 0)

    def created_projects(self, company_id: int) -> list[dict[str, Any]]:
        """The projects POST /rest/v1.0/projects made in the company, in order."""
        with self._lock:
            return [dict(p) for p in self._created.get(int(company_id), [])]

    def _api_enter(self) -> None:
        with self._lock:
            self._api_in_flight += 1
            self._counts["api_requests"] += 1
            if self._api_in_flight > self._counts["api_in_flight_max"]:
                self._counts["api_in_flight_max"] = self._api_in_flight

    def _api_leave(self) -> None:
        with self._lock:
            self._api_in_flight -= 1

    def _rate_state(self) -> tuple[int, int]:
        """(remaining, reset) of the current window, counting nothing; call with the lock held."""
        now = self.clock()
        start = int(now // self.rate_window) * self.rate_window
        if self._window[0] != start:
            self._window = (start, 0)
        return max(self.rate_limit - self._window[1], 0), start + self.rate_window

    def _rate_check(self) -> _Response | None:
        """Count a /rest/ request in its window; the 429 answer when the window's limit is used up."""
        with self._lock:
            self._rate_state()
            start, used = self._window
            self._window = (start, used + 1)  # refused requests count too, as at Procore
            if used < self.rate_limit:
                return None
            self._counts["requests"] += 1
            self._counts["rate_limited"] += 1
            reset = start + self.rate_window
            return _Response.json(429, {"error": "Too Many Requests",
                                        "error_description": "Rate limit exceeded: wait until X-Rate-Limit-Reset."},
                                  [("X-Rate-Limit-Limit", str(self.rate_limit)), ("X-Rate-Limit-Remaining", "0"),
                                   ("X-Rate-Limit-Reset", str(reset)),
                                   ("Retry-After", str(max(int(math.ceil(reset - self.clock())), 1)))])

    def _with_rate_headers(self, resp: _Response, api: bool) -> _Response:
        if not api or resp.drop or any(k.lower() == "x-rate-limit-remaining" for k, _ in resp.headers):
            return resp
        with self._lock:
            remaining, reset = self._rate_state()
        resp.headers = [*resp.headers, ("X-Rate-Limit-Limit", str(self.rate_limit)),
                        ("X-Rate-Limit-Remaining", str(remaining)), ("X-Rate-Limit-Reset", str(reset))]
        return resp

    # -- fault injection ----------------------------------------------------------

    def inject(
        self,
        status: int | None = None,
        count: int = 1,
        paths: str | Sequence[str] | None = None,
        retry_after: int | float | str | None = None,
        hang: float | None = None,
        drop: bool = False,
        consume: bool = False,
        body: Any = None,
        content_type: str | None = None,
        headers: Sequence[Sequence[str]] = (),
        gzip_bomb: int | None = None,
        huge_body: int | None = None,
        edit: Callable[[Any], Any] | None = None,
        hook: Callable[[], None] | None = None,
        gate: Callable[[], None] | None = None,
        cut: bool = False,
    ) -> None:
        """Fault the next `count` requests whose path starts with one of `paths` (None: any non-admin path).

        `status` answers that status with a JSON error body (or `body`, with `content_type`);
        429 also gets `X-Rate-Limit-*` headers. `hang` sleeps first (then answers normally if
        nothing else is set). `drop` closes the socket without answering. `consume=True`
        processes the request first (a refresh token is rotated, a code is used) and then
        replaces the answer with the fault: the "response lost" case.

        Hostile answers: `gzip_bomb=N` answers (status 200 unless given) a gzip-encoded body that
        inflates to N bytes; `huge_body=N` streams an N-byte body in chunked encoding; `headers` are added to a
        made-up answer. `edit` (a function of the real answer's JSON, returning the JSON to send)
        processes the request and changes its answer; `hook` is called after processing, just
        before the answer goes out (e.g. to change the client's files while it waits); `gate` is called
        before the request is looked at (e.g. to hold it until the test lets it through). `cut`
        sends the answer's headers and half of its body, then closes the connection (a body that
        breaks off mid-read).
        """
        if (gzip_bomb is not None or huge_body is not None) and status is None:
            status = 200
        if status is None and body is not None:
            status = 500
        if status is None and not drop and not hang and edit is None and hook is None and gate is None and not cut:
            raise ValueError("inject() needs status, body, hang, drop, gzip_bomb, huge_body, edit, hook, gate or cut")
        if count < 1:
            raise ValueError("count must be >= 1")
        fault = _Fault(
            status=int(status) if status is not None else None,
            count=int(count),
            paths=_norm_paths(paths),
            retry_after=retry_after,
            hang=float(hang) if hang else None,
            drop=bool(drop),
            consume=bool(consume),
            body=body,
            content_type=content_type,
            headers=tuple((str(k), str(v)) for k, v in headers),
            gzip_bomb=int(gzip_bomb) if gzip_bomb is not None else None,
            huge_body=int(huge_body) if huge_body is not None else None,
            edit=edit,
            hook=hook,
            gate=gate,
            cut=bool(cut),
        )
        if fault.gzip_bomb is not None:
            make_gzip_bomb(fault.gzip_bomb)  # made now (and cached), not while a client waits
        with self._lock:
            self._faults.append(fault)

    def chaos(
        self,
        rate: float,
        kinds: Sequence[str] = ("drop", "500", "503", "429", "delay"),
        seed: int | None = None,
        consume_share: float = 0.0,
        delay: float = 0.5,
        paths: str | Sequence[str] | None = None,
    ) -> None:
        """Fault a random share `rate` (0..1) of requests with one of `kinds`.

        Kinds: "drop", "delay" (sleep `delay` then answer normally) or a status code as a
        string ("500", "503", "429", ...). `consume_share` of the drop and 5xx faults are
        applied after processing (response lost); 429s and delays never are. Replaces any previous chaos setting;
        explicit `inject()` faults take precedence.
        """
        kinds_t = tuple(str(k) for k in kinds)
        for k in kinds_t:
            if k not in ("drop", "delay") and not (k.isdigit() and 100 <= int(k) <= 599):
                raise ValueError(f"unknown chaos kind {k!r}")
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        with self._lock:
            self._chaos = (
                _Chaos(
                    rate=float(rate),
                    kinds=kinds_t,
                    rng=random.Random(seed),
                    consume_share=float(consume_share),
                    delay=float(delay),
                    paths=_norm_paths(paths),
                )
                if rate > 0 and kinds_t
                else None
            )

    def clear_faults(self) -> None:
        """Drop pending injected faults and stop chaos."""
        with self._lock:
            self._faults.clear()
            self._chaos = None

    def pending_faults(self) -> list[dict[str, Any]]:
        """The injected faults not yet used up, as inject() kwargs (count = remaining)."""
        with self._lock:
            return [f.describe() for f in self._faults]

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            self._counts["requests"] += 1
            for i, f in enumerate(self._faults):
                if f.matches(path):
                    f.count -= 1
                    if f.count <= 0:
                        del self._faults[i]
                    self._counts["faults"] += 1
                    return f
            ch = self._chaos
            if ch is None or (ch.paths is not None and not any(path.startswith(p) for p in ch.paths)):
                return None
            if ch.rng.random() >= ch.rate:
                return None
            kind = ch.rng.choice(ch.kinds)
            # A rate limiter answers before the application sees the request: never consume a 429.
            consume = kind not in ("delay", "429") and ch.rng.random() < ch.consume_share
            self._counts["faults"] += 1
            if kind == "delay":
                return _Fault(hang=ch.delay)
            if kind == "drop":
                return _Fault(drop=True, consume=consume)
            status = int(kind)
            return _Fault(status=status, consume=consume, retry_after=1 if status in (429, 503) else None)

    def _fault_response(self, fault: _Fault) -> _Response | None:
        resp = self._made_up_response(fault)
        if resp is not None and fault.headers:
            resp.headers += list(fault.headers)
        return resp

    @staticmethod
    def _edited(real: _Response, edit: Callable[[Any], Any] | None) -> _Response:
        if edit is None:
            return real
        try:
            obj = json.loads(real.body.decode("utf-8"))
        except ValueError:
            return real
        kept = [(k, v) for k, v in real.headers if k.lower() not in ("content-type", "content-length")]
        return _Response.json(real.status, edit(obj), kept)

    def _made_up_response(self, fault: _Fault) -> _Response | None:
        if fault.drop:
            return _Response(0, drop=True)
        if fault.status is None:
            return None
        json_type = ("Content-Type", fault.content_type or "application/json; charset=utf-8")
        if fault.gzip_bomb is not None:
            return _Response(fault.status, make_gzip_bomb(fault.gzip_bomb), [json_type, ("Content-Encoding", "gzip")])
        if fault.huge_body is not None:
            return _Response(fault.status, b"", [json_type, ("Transfer-Encoding", "chunked")],
                             stream=_huge_body(fault.huge_body))
        headers: list[tuple[str, str]] = []
        if fault.retry_after is not None:
            ra = fault.retry_after
            headers.append(("Retry-After", str(int(ra)) if isinstance(ra, float) and ra.is_integer() else str(ra)))
        if fault.status == 429:
            try:
                wait = float(fault.retry_after) if fault.retry_after is not None else 1.0
            except ValueError:
                wait = 1.0
            headers += [
                ("X-Rate-Limit-Limit", "3600"),
                ("X-Rate-Limit-Remaining", "0"),
                ("X-Rate-Limit-Reset", str(int(self.clock() + max(wait, 1.0)))),
            ]
        if fault.body is None:
            try:
                phrase = HTTPStatus(fault.status).phrase
            except ValueError:
                phrase = "Error"
            obj = {
                "error": phrase.lower().replace(" ", "_").replace("-", "_") or "error",
                "error_description": f"Fake Procore injected fault: {fault.status} {phrase}",
            }
            return _Response.json(fault.status, obj, headers)
        if isinstance(fault.body, (bytes, bytearray)):
            data = bytes(fault.body)
            ctype = fault.content_type or "application/octet-stream"
        elif isinstance(fault.body, str):
            data = fault.body.encode("utf-8")
            ctype = fault.content_type or (
                "text/html; charset=utf-8" if fault.body.lstrip().startswith("<") else "text/plain; charset=utf-8"
            )
        else:
            data = _json_bytes(fault.body)
            ctype = fault.content_type or "application/json; charset=utf-8"
        return _Response(fault.status, data, [("Content-Type", ctype), *headers])

    # -- state helpers (call with the lock held) ----------------------------------

    def _new_code(self, redirect_uri: str) -> str:
        code = secrets.token_urlsafe(32)
        self._codes[code] = _Code(code=code, redirect_uri=redirect_uri, issued_at=self.clock())
        return code

    def _next_grant(self) -> int:
        self._grant_seq += 1
        return self._grant_seq

    def _new_pair(self, grant_id: int) -> _TokenPair:
        now = self.clock()
        pair = _TokenPair(
            access_token=secrets.token_urlsafe(32),
            refresh_token=secrets.token_urlsafe(32),
            grant_id=grant_id,
            issued_at=now,
            created_at=int(now),
            life=self.access_token_life,
        )
        self._access[pair.access_token] = pair
        self._refresh[pair.refresh_token] = pair
        return pair

    @staticmethod
    def _service_account_body(pair: _TokenPair) -> dict[str, Any]:
        # Doorkeeper's client-credentials answer: no refresh token, and "Bearer" capitalised.
        return {"access_token": pair.access_token, "token_type": "Bearer", "expires_in": pair.life,
                "created_at": pair.created_at}

    @staticmethod
    def _token_body(pair: _TokenPair) -> dict[str, Any]:
        return {
            "access_token": pair.access_token,
            "token_type": "bearer",
            "expires_in": pair.life,
            "refresh_token": pair.refresh_token,
            "scope": "",
            "created_at": pair.created_at,
        }

    def _valid_access(self, token: str | None) -> _TokenPair | None:
        if not token:
            return None
        pair = self._access.get(token)
        if pair is None or pair.access_revoked or pair.access_expired:
            return None
        if self.clock() >= pair.issued_at + pair.life:
            return None
        return pair

    def _revoke_grant(self, grant_id: int) -> None:
        for pair in self._access.values():
            if pair.grant_id == grant_id:
                pair.access_revoked = True
                if pair.refresh_state == "active":
                    pair.refresh_state = "revoked"

    # -- request handling ---------------------------------------------------------

    def _handle(self, req: _Request) -> _Response:
        with self._lock:
            resp = self._route(req)
            if resp.status == 401:
                self._counts["status_401"] += 1
            return resp

    def _route(self, req: _Request) -> _Response:
        path = req.path.rstrip("/") or "/"
        m = req.method
        if path == "/oauth/authorize" and m == "GET":
            self._counts["authorize"] += 1
            return self._authorize(req)
        if path.startswith("/oauth/authorize/") and m == "GET":
            self._counts["authorize_page"] += 1
            code = path[len("/oauth/authorize/") :]
            if code == "native":
                code = req.query_params().get("code", "")
            return self._code_page(code)
        if path == "/oauth/token" and m == "POST":
            return self._token(req)
        if path == "/oauth/token/info" and m == "GET":
            self._counts["token_info"] += 1
            return self._token_info(req)
        if path == "/oauth/revoke" and m == "POST":
            self._counts["revoke"] += 1
            return self._revoke(req)
        if path == "/rest/v1.0/me" and m == "GET":
            self._counts["me"] += 1
            return self._me(req)
        if path == "/rest/v1.0/companies" and m == "GET":
            self._counts["companies"] += 1
            return self._companies(req)
        if path == "/rest/v1.0/projects" and m == "GET":
            self._counts["projects"] += 1
            return self._projects(req)
        if path == "/rest/v1.0/projects" and m == "POST":
            return self._create_project(req)
        if path.startswith("/rest/v2.0/companies/") and path.endswith("/projects") and m == "GET":
            self._counts["v2_projects"] += 1
            return self._v2_projects(req, path[len("/rest/v2.0/companies/"):-len("/projects")])
        self._counts["not_found"] += 1
        return _Response.json(404, {"error": "not found"})

    # authorize -------------------------------------------------------------------

    @staticmethod
    def _redirect_ok(uri: str) -> bool:
        if uri == OOB_REDIRECT_URI:
            return True
        try:
            parts = urlsplit(uri)
        except ValueError:
            return False
        return parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1")

    def _error_page(self, title: str, detail: str) -> _Response:
        text = (
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Fake Procore (demo) - "
            f"{html.escape(title)}</title></head>\n<body>\n<h1>An error has occurred</h1>\n"
            f"<p>{html.escape(title)}</p>\n<p>{html.escape(detail)}</p>\n</body></html>\n"
        )
        return _Response.html(200, text)

    def _authorize(self, req: _Request) -> _Response:
        q = req.query_params()
        client_id = q.get("client_id", "")
        redirect_uri = q.get("redirect_uri", "")
        if client_id != self.client_id:
            return self._error_page(
                "Client authentication failed due to unknown client, no client authentication included, "
                "or unsupported authentication method.",
                f"Unknown client_id: {client_id!r}.",
            )
        if not redirect_uri or not self._redirect_ok(redirect_uri):
            return self._error_page(
                "The requested redirect uri is malformed or doesn't match client redirect URI.",
                f"redirect_uri {redirect_uri!r} is not registered for this application.",
            )
        if q.get("response_type") != "code":
            return self._error_page(
                "The authorization server does not support this response type.",
                f"response_type must be 'code', got {q.get('response_type', '')!r}.",
            )
        code = self._new_code(redirect_uri)
        if redirect_uri == OOB_REDIRECT_URI:
            # A plain path: a Location with the urn: scheme breaks HTTP clients.
            return _Response(302, b"", [("Location", f"/oauth/authorize/{code}"), ("Cache-Control", "no-store")])
        extra = {"code": code}
        if "state" in q:
            extra["state"] = q["state"]
        sep = "&" if urlsplit(redirect_uri).query else "?"
        return _Response(302, b"", [("Location", redirect_uri + sep + urlencode(extra)), ("Cache-Control", "no-store")])

    def _life_text(self) -> str:
        life = self.code_life
        if life % 60 == 0:
            minutes = life // 60
            return f"{minutes} minute{'s' if minutes != 1 else ''}"
        return f"{life} seconds"

    def _code_page(self, code: str) -> _Response:
        if not code or code not in self._codes:
            return _Response.html(
                404,
                "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Fake Procore (demo) - unknown code"
                "</title></head>\n<body>\n<h1>Fake Procore (demo)</h1>\n<p>Unknown authorization code.</p>\n"
                "</body></html>\n",
            )
        name = html.escape(str(self.user.get("name", "")))
        login = html.escape(str(self.user.get("login", "")))
        c = html.escape(code)
        life = self._life_text()
        text = (
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\n"
            "<title>Fake Procore (demo) - Authorization code</title></head>\n<body>\n"
            "<h1>Fake Procore (demo)</h1>\n"
            f"<p>Signed in as {name} ({login})</p>\n"
            f"<p>Authorization code: <code id=\"authorization_code\">{c}</code></p>\n"
            f"<p>Copy this code into procore-setup; it expires in {life}.</p>\n"
            "</body></html>\n"
        )
        return _Response.html(200, text, [("Cache-Control", "no-store")])

    # token -----------------------------------------------------------------------

    @staticmethod
    def _client_of(req: _Request, params: Mapping[str, str]) -> tuple[str | None, str | None]:
        """The client id and secret of a request: from the form, else from HTTP Basic."""
        cid, secret = params.get("client_id"), params.get("client_secret")
        basic = req.basic()
        if basic is not None and cid is None:
            cid, secret = basic
        return cid, secret

    def _client_ok(self, req: _Request, params: Mapping[str, str]) -> bool:
        return self._client_of(req, params) == (self.client_id, self.client_secret)

    def _service_account_ok(self, req: _Request, params: Mapping[str, str]) -> bool:
        return self._client_of(req, params) == (self.service_account_client_id, self.service_account_client_secret)

    @staticmethod
    def _missing(name: str) -> _Response:
        return _Response.json(
            400, {"error": "invalid_request", "error_description": f"Missing required parameter: {name}."}
        )

    def _invalid_grant(self) -> _Response:
        self._counts["invalid_grant"] += 1
        return _Response.json(400, INVALID_GRANT, [("Cache-Control", "no-store")])

    def _invalid_client(self) -> _Response:
        return _Response.json(401, INVALID_CLIENT, [("WWW-Authenticate", WWW_AUTHENTICATE_INVALID_CLIENT)])

    def _token_ok(self, pair: _TokenPair) -> _Response:
        return _Response.json(
            200, self._token_body(pair), [("Cache-Control", "no-store"), ("Pragma", "no-cache")]
        )

    def _token(self, req: _Request) -> _Response:
        params = req.params()
        grant_type = params.get("grant_type", "")
        if grant_type not in ("authorization_code", "refresh_token", "client_credentials"):
            self._counts["token:invalid"] += 1
            if not grant_type:
                return self._missing("grant_type")
            return _Response.json(400, UNSUPPORTED_GRANT_TYPE)
        self._counts[f"token:{grant_type}"] += 1
        if grant_type == "client_credentials":
            if not self._service_account_ok(req, params):
                return self._invalid_client()
            self._counts["client_credentials_ok"] += 1
            pair = self._new_pair(self._next_grant())
            # No refresh token: the client's credentials get the next token.
            self._refresh.pop(pair.refresh_token, None)
            pair.refresh_state, pair.service_account = "none", True
            return _Response.json(200, self._service_account_body(pair),
                                  [("Cache-Control", "no-store"), ("Pragma", "no-cache")])
        if grant_type == "authorization_code":
            for name in ("code", "redirect_uri"):
                if not params.get(name):
                    return self._missing(name)
            if not self._client_ok(req, params):
                return self._invalid_client()
            code = self._codes.get(params["code"])
            if (
                code is None
                or code.used
                or code.revoked
                or self.clock() >= code.issued_at + self.code_life
                or code.redirect_uri != params["redirect_uri"]
            ):
                return self._invalid_grant()
            code.used = True
            self._counts["code_ok"] += 1
            return self._token_ok(self._new_pair(self._next_grant()))

        # refresh_token
        if not params.get("refresh_token"):
            return self._missing("refresh_token")
        if not self._client_ok(req, params):
            return self._invalid_client()
        old = self._refresh.get(params["refresh_token"])
        if old is None or old.refresh_state != "active":
            if old is not None and old.refresh_state == "used" and self.strict_replay:
                self._revoke_grant(old.grant_id)  # replay looks like theft: kill the whole grant
            return self._invalid_grant()
        old.refresh_state = "used"
        old.access_revoked = True
        self._counts["refresh_ok"] += 1
        return self._token_ok(self._new_pair(old.grant_id))

    def _unauthorized(self) -> _Response:
        return _Response.json(401, INVALID_TOKEN, [("WWW-Authenticate", WWW_AUTHENTICATE_INVALID_TOKEN)])

    def _token_info(self, req: _Request) -> _Response:
        pair = self._valid_access(req.bearer())
        if pair is None:
            return self._unauthorized()
        remaining = int(pair.issued_at + pair.life - self.clock())
        return _Response.json(
            200,
            {
                # A client-credentials token has no resource owner (Doorkeeper: null).
                "resource_owner_id": None if pair.service_account else self.user.get("id"),
                "scope": [],
                "scopes": [],
                "expires_in_seconds": max(remaining, 0),
                "application": {"uid": self.service_account_client_id if pair.service_account else self.client_id},
                "created_at": pair.created_at,
            },
        )

    def _revoke(self, req: _Request) -> _Response:
        params = req.params()
        if not (self._client_ok(req, params) or self._service_account_ok(req, params)):
            return _Response.json(403, UNAUTHORIZED_REVOKE)
        token = params.get("token", "")
        pair = self._access.get(token) or self._refresh.get(token)
        if pair is not None:
            pair.access_revoked = True
            if pair.refresh_state == "active":
                pair.refresh_state = "revoked"
        return _Response.json(200, {})

    # API -------------------------------------------------------------------------

    def _company_header_problem(self, req: _Request) -> _Response | None:
        """For a service account's token (Multiple Procore Zones): the answer to a request without
        a Procore-Company-Id header of a company the app is installed in, or None."""
        header = req.headers.get("procore-company-id", "").strip()
        if not header:
            return _Response.json(400, {
                "error": "invalid_request",
                "error_description": "Missing required header: Procore-Company-Id (a service account's token "
                "needs it on every request).",
            })
        if not header.isdigit() or int(header) not in self.service_account_companies:
            return _Response.json(403, {
                "error": "forbidden",
                "error_description": "The app is not installed in the company of the Procore-Company-Id header.",
            })
        return None

    def _me(self, req: _Request) -> _Response:
        pair = self._valid_access(req.bearer())
        if pair is None:
            return self._unauthorized()
        if pair.service_account:
            return self._company_header_problem(req) or _Response.json(200, dict(SERVICE_ACCOUNT_USER))
        return _Response.json(200, {k: self.user.get(k) for k in ("id", "login", "name")})

    def _companies(self, req: _Request) -> _Response:
        pair = self._valid_access(req.bearer())
        if pair is None:
            return self._unauthorized()
        companies = self.companies
        if pair.service_account:
            problem = self._company_header_problem(req)
            if problem is not None:
                return problem
            companies = [c for c in self.companies if int(c["id"]) in self.service_account_companies]
        q = req.query_params()
        try:
            page = max(int(q.get("page") or 1), 1)
        except ValueError:
            page = 1
        try:
            per_page = max(int(q.get("per_page") or self.per_page_default), 1)
        except ValueError:
            per_page = self.per_page_default
        total = len(companies)
        last = max((total + per_page - 1) // per_page, 1)
        items = companies[(page - 1) * per_page : page * per_page]
        links = self._links(req, "/rest/v1.0/companies", q, page, per_page, last)
        headers = [("Total", str(total)), ("Per-Page", str(per_page)), ("Link", links)]
        return _Response.json(200, [dict(c) for c in items], headers)

    def _project(self, company_id: int, i: int) -> dict[str, Any]:
        """The i-th made-up project of a company (0-based): made when asked, so a list of 200,000 costs nothing."""
        if i == 0:
            return {"id": company_id * 10 + 1, "name": "Demo Tower", "project_number": "DT-001", "active": True,
                    "company": {"id": company_id}}
        if i == 1:
            return {"id": company_id * 10 + 2, "name": "Demo Warehouse", "project_number": "DW-002", "active": True,
                    "company": {"id": company_id}}
        # ids past 32 bits, as Procore's grow: a client must keep them exact
        return {"id": 5_000_000_000 + i, "name": f"Project {i}", "project_number": f"P-{i:06d}", "active": True,
                "company": {"id": company_id}}

    def _company_projects(self, company_id: int) -> tuple[int, Callable[[int], dict[str, Any]]]:
        created = self._created.get(company_id, [])
        made = max(self.project_count, 0)

        def item(i: int) -> dict[str, Any]:
            return self._project(company_id, i) if i < made else dict(created[i - made])

        return made + len(created), item

    @staticmethod
    def _page_of(q: Mapping[str, str], default: int, top: int | None = None) -> tuple[int, int]:
        try:
            page = max(int(q.get("page") or 1), 1)
        except ValueError:
            page = 1
        try:
            per_page = max(int(q.get("per_page") or default), 1)
        except ValueError:
            per_page = default
        return page, min(per_page, top) if top else per_page

    def _links(self, req: _Request, path: str, q: Mapping[str, str], page: int, per_page: int, last: int) -> str:
        host = req.headers.get("host", "").strip()
        base = f"http://{host}" if host else self.url

        def link(p: int) -> str:
            params = dict(q)
            params["page"] = str(p)
            params["per_page"] = str(per_page)
            return f"<{base}{path}?{urlencode(params)}>"

        links = []
        if page > 1:
            links.append(f'{link(1)}; rel="first"')
            links.append(f'{link(min(page - 1, last))}; rel="prev"')
        if page < last:
            links.append(f'{link(page + 1)}; rel="next"')
        links.append(f'{link(last)}; rel="last"')
        return ", ".join(links)

    def _project_company(self, req: _Request) -> int | _Response:
        if self._valid_access(req.bearer()) is None:
            return self._unauthorized()
        header = req.headers.get("procore-company-id", "").strip()
        if not header:
            return _Response.json(
                400,
                {
                    "error": "invalid_request",
                    "error_description": "Missing required header: Procore-Company-Id.",
                },
            )
        raw_id = req.query_params().get("company_id", "").strip() or header
        try:
            company_id = int(raw_id)
            header_id = int(header)
        except ValueError:
            return _Response.json(
                400, {"error": "invalid_request", "error_description": "company_id must be an integer."}
            )
        known = {int(c["id"]) for c in self.companies}
        if company_id not in known or header_id not in known:
            return _Response.json(404, {"error": "not found"})
        return company_id

    def _projects(self, req: _Request) -> _Response:
        company = self._project_company(req)
        if isinstance(company, _Response):
            return company
        q = req.query_params()
        page, per_page = self._page_of(q, self.per_page_default)
        total, item = self._company_projects(company)
        last = max((total + per_page - 1) // per_page, 1)
        items = [item(i) for i in range((page - 1) * per_page, min(page * per_page, total))]
        headers = [("Total", str(total)), ("Per-Page", str(per_page)),
                   ("Link", self._links(req, "/rest/v1.0/projects", q, page, per_page, last))]
        return _Response.json(200, items, headers)

    def _create_project(self, req: _Request) -> _Response:
        company = self._project_company(req)
        if isinstance(company, _Response):
            return company
        try:
            data = req.json_body()
        except ValueError:
            return _Response.json(400, {"error": "invalid_request", "error_description": "The body is not JSON."})
        fields = data.get("project") if isinstance(data, dict) else None
        name = fields.get("name") if isinstance(fields, dict) else None
        if not isinstance(name, str) or not name.strip():
            return _Response.json(422, {"errors": {"name": ["can't be blank"]},
                                        "error_description": "project[name] can't be blank"})
        self._project_seq += 1
        record = {"id": 9_000_000_000 + self._project_seq, "name": name, "active": True,
                  "project_number": fields.get("project_number") if isinstance(fields, dict) else None,
                  "company": {"id": company}}
        self._created.setdefault(company, []).append(record)
        self._counts["projects_created"] += 1
        return _Response.json(201, record)

    def _v2_projects(self, req: _Request, raw_company: str) -> _Response:
        company = self._project_company(req)
        if isinstance(company, _Response):
            return company
        if raw_company != str(company) and not (raw_company.isdigit() and int(raw_company) == company):
            return _Response.json(404, {"error": "not found"})
        q = req.query_params()
        page, per_page = self._page_of(q, 10, 100)  # v2: 10 a page by default, 100 at most
        total, item = self._company_projects(company)
        last = max((total + per_page - 1) // per_page, 1)
        data = []
        for i in range((page - 1) * per_page, min(page * per_page, total)):
            p = item(i)
            data.append({"id": str(p["id"]), "name": p["name"], "company_id": str(company)})
        path = f"/rest/v2.0/companies/{raw_company}/projects"
        return _Response.json(200, {"data": data}, [("Link", self._links(req, path, q, page, per_page, last))])

    # admin -----------------------------------------------------------------------

    def _handle_admin(self, req: _Request) -> _Response:
        route = req.path[len(ADMIN_PREFIX) :].strip("/") if req.path.startswith(ADMIN_PREFIX) else ""
        m = req.method
        try:
            data = req.json_body() if m in ("POST", "PUT", "PATCH") else {}
        except ValueError:
            return _Response.json(400, {"error": "invalid JSON body"})
        try:
            if route == "code" and m == "POST":
                uri = data.get("redirect_uri", OOB_REDIRECT_URI) if isinstance(data, dict) else OOB_REDIRECT_URI
                return _Response.json(200, {"code": self.issue_code(uri)})
            if route == "tokens" and m == "POST":
                return _Response.json(200, self.issue_tokens())
            if route == "stats" and m == "GET":
                return _Response.json(200, self.stats())
            if route == "stats" and m == "DELETE":
                self.reset_stats()
                return _Response.json(200, {"ok": True})
            if route == "faults" and m == "POST":
                items = data if isinstance(data, list) else [data]
                for item in items:
                    if not isinstance(item, dict):
                        raise TypeError("each fault must be a JSON object")
                    if "edit" in item or "hook" in item:
                        raise TypeError("edit and hook take Python functions: use FakeProcore.inject()")
                    self.inject(**item)
                return _Response.json(200, {"ok": True, "pending": self.pending_faults()})
            if route == "faults" and m == "GET":
                return _Response.json(200, {"pending": self.pending_faults()})
            if route == "faults" and m == "DELETE":
                self.clear_faults()
                return _Response.json(200, {"ok": True})
            if route == "chaos" and m == "POST":
                if not isinstance(data, dict):
                    raise TypeError("chaos body must be a JSON object")
                self.chaos(**data)
                return _Response.json(200, {"ok": True})
            if route == "revoke-all" and m == "POST":
                self.revoke_all()
                return _Response.json(200, {"ok": True})
            if route == "expire-access-tokens" and m == "POST":
                self.expire_access_tokens()
                return _Response.json(200, {"ok": True})
            if route == "config" and m == "POST":
                if not isinstance(data, dict):
                    raise TypeError("config body must be a JSON object")
                unknown = set(data) - {"access_token_life", "code_life", "strict_replay", "rate_limit", "rate_window",
                                       "latency", "project_count"}
                if unknown:
                    raise TypeError(f"unknown config keys: {sorted(unknown)}")
                with self._lock:
                    if "access_token_life" in data:
                        self.access_token_life = int(data["access_token_life"])
                    if "code_life" in data:
                        self.code_life = int(data["code_life"])
                    if "strict_replay" in data:
                        self.strict_replay = bool(data["strict_replay"])
                    if "rate_limit" in data or "rate_window" in data:
                        self.set_rate_limit(int(data.get("rate_limit", self.rate_limit)),
                                            int(data.get("rate_window", self.rate_window)))
                    if "latency" in data:
                        self.latency = float(data["latency"])
                    if "project_count" in data:
                        self.project_count = int(data["project_count"])
                    cfg = {
                        "access_token_life": self.access_token_life,
                        "code_life": self.code_life,
                        "strict_replay": self.strict_replay,
                    }
                return _Response.json(200, cfg)
        except (TypeError, ValueError) as exc:
            return _Response.json(400, {"error": str(exc)})
        return _Response.json(404, {"error": "not found"})
