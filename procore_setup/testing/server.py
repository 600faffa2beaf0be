"""A fake Procore login + API server for tests, `--demo` mode and offline cron-script testing.

`FakeProcore` serves, on one base URL, the OAuth 2.0 endpoints of Procore's login
server (Doorkeeper's exact error bodies and statuses, single-use rotating refresh
tokens) and a few REST API endpoints (`/rest/v1.0/me`, `/companies`, `/projects`).
It can inject faults (error statuses, rate limits, hangs, dropped connections, and
"processed but the response was lost") to exercise retry and token-chain handling.

This module puts the pieces together: the fake's state (`state.py`: codes, tokens, counters),
its endpoints (`routes.py`) and its faults (`faults.py`: the `Fault` value), behind a threading
HTTP server. Standard library only. Typical use::

    with FakeProcore() as fake:
        code = fake.issue_code()          # as if the user had logged in
        fake.inject(Fault(status=429, times=2, retry_after=1, paths="/oauth/token"))
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
(`POST /_fake/code`, `GET /_fake/stats`, `POST|GET|DELETE /_fake/faults` (a Fault's fields as
JSON), `POST /_fake/chaos`, `POST /_fake/revoke-all`, `POST /_fake/expire-access-tokens`,
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

Hostile answers, for testing that a client stays bounded: `Fault(gzip_bomb=N)` answers a small
gzip stream that inflates to N bytes, `Fault(huge_body=N)` streams N bytes (chunked, no length),
`Fault(headers=...)` adds headers, and (in Python only) `Fault(edit=f)` passes the real JSON answer
through `f`, `Fault(hook=f)` calls `f()` while the request is handled, after processing, before
answering, and `Fault(gate=f)` calls it before processing.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import urlsplit

from .faults import Chaos, Fault, FaultQueue, apply, make_gzip_bomb
from .messages import Request, Response
from .routes import (
    INVALID_CLIENT,
    INVALID_GRANT,
    INVALID_TOKEN,
    UNAUTHORIZED_REVOKE,
    UNSUPPORTED_GRANT_TYPE,
    WWW_AUTHENTICATE_INVALID_CLIENT,
    WWW_AUTHENTICATE_INVALID_TOKEN,
    ProcoreRoutes,
)
from .state import (
    COUNTER_KEYS,
    DEFAULT_COMPANIES,
    DEFAULT_USER,
    OOB_REDIRECT_URI,
    SERVICE_ACCOUNT_CLIENT_ID,
    SERVICE_ACCOUNT_CLIENT_SECRET,
    SERVICE_ACCOUNT_USER,
    FakeState,
)

__all__ = [
    "FakeProcore",
    "Fault",
    "OOB_REDIRECT_URI",
    "DEFAULT_USER",
    "DEFAULT_COMPANIES",
    "SERVICE_ACCOUNT_CLIENT_ID",
    "SERVICE_ACCOUNT_CLIENT_SECRET",
    "SERVICE_ACCOUNT_USER",
    "COUNTER_KEYS",
    "INVALID_GRANT",
    "INVALID_CLIENT",
    "INVALID_TOKEN",
    "UNAUTHORIZED_REVOKE",
    "UNSUPPORTED_GRANT_TYPE",
    "WWW_AUTHENTICATE_INVALID_CLIENT",
    "WWW_AUTHENTICATE_INVALID_TOKEN",
    "make_gzip_bomb",
]

ADMIN_PREFIX = "/_fake/"


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
        req = Request(
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
            fake.api_enter()
            try:
                refused = fake._routes.rate_check()
                if refused is not None:
                    self._send(refused)
                    return
                fake._sleep(fake.latency)
                self._dispatch_faulted(req, path, api=True)
            finally:
                fake.api_leave()
            return
        self._dispatch_faulted(req, path, api=False)

    def _dispatch_faulted(self, req: Request, path: str, *, api: bool) -> None:
        fake = self.server.fake
        fault = fake._take_fault(path)
        if fault is None:
            answer = fake._handle(req)
        else:
            answer = apply(fault, lambda: fake._handle(req), fake._sleep, fake.clock)
        self._send(fake._routes.with_rate_headers(answer, api))

    def _send(self, resp: Response) -> None:
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


class FakeProcore(FakeState):
    """An in-process fake of Procore's login (OAuth 2.0) and REST API servers, on one base URL.

    Thread-safe: all state sits behind one lock. Use as a context manager or call
    `start()` / `stop()`. `url` is the base URL for both the login and the API host.
    The state's controls (`issue_code`, `counts`, `revoke_all`, ...) are FakeState's.
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
        super().__init__(
            client_id=client_id, client_secret=client_secret, access_token_life=access_token_life,
            code_life=code_life, user=user, companies=companies, per_page_default=per_page_default,
            strict_replay=strict_replay, service_account_client_id=service_account_client_id,
            service_account_client_secret=service_account_client_secret,
            service_account_companies=service_account_companies, rate_limit=rate_limit, rate_window=rate_window,
            latency=latency, project_count=project_count, clock=clock)
        self.host = host
        self.port = port
        self.verbose = verbose
        self._routes = ProcoreRoutes(self, lambda: self.url)
        self._faults = FaultQueue()
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

    # -- faults ---------------------------------------------------------------------

    def inject(self, fault: Fault, /) -> None:
        """Queue `fault` for the next `fault.times` requests it matches (see `Fault`). Faults are
        taken in the order they were injected; an injected fault goes before chaos."""
        if not isinstance(fault, Fault):
            raise TypeError(f"inject() takes one Fault, e.g. inject(Fault(status=503, times=2)), not {fault!r}")
        with self._lock:
            self._faults.add(fault)

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
        chaos = Chaos.make(rate, kinds, seed, consume_share, delay, paths)
        with self._lock:
            self._faults.chaos = chaos

    def clear_faults(self) -> None:
        """Drop pending injected faults and stop chaos."""
        with self._lock:
            self._faults.clear()

    def pending_faults(self) -> list[dict[str, Any]]:
        """The injected faults not yet used up, as JSON: their fields, and `count`, how many
        requests still get each."""
        with self._lock:
            return self._faults.pending()

    def _take_fault(self, path: str) -> Fault | None:
        """Count a (non-admin) request; the fault it gets, if any."""
        with self._lock:
            self._counts["requests"] += 1
            fault = self._faults.take(path)
            if fault is not None:
                self._counts["faults"] += 1
            return fault

    # -- requests -----------------------------------------------------------------------

    def _handle(self, req: Request) -> Response:
        """Procore's real answer to a request (what a fault may replace or edit)."""
        with self._lock:
            resp = self._routes.route(req)
            if resp.status == 401:
                self._counts["status_401"] += 1
            return resp

    def _handle_admin(self, req: Request) -> Response:
        route = req.path[len(ADMIN_PREFIX) :].strip("/") if req.path.startswith(ADMIN_PREFIX) else ""
        m = req.method
        try:
            data = req.json_body() if m in ("POST", "PUT", "PATCH") else {}
        except ValueError:
            return Response.json(400, {"error": "invalid JSON body"})
        try:
            if route == "code" and m == "POST":
                uri = data.get("redirect_uri", OOB_REDIRECT_URI) if isinstance(data, dict) else OOB_REDIRECT_URI
                return Response.json(200, {"code": self.issue_code(uri)})
            if route == "tokens" and m == "POST":
                return Response.json(200, self.issue_tokens())
            if route == "stats" and m == "GET":
                return Response.json(200, self.stats())
            if route == "stats" and m == "DELETE":
                self.reset_stats()
                return Response.json(200, {"ok": True})
            if route == "faults" and m == "POST":
                items = data if isinstance(data, list) else [data]
                faults = [Fault.from_json(item) for item in items]  # all checked before any is queued
                for fault in faults:
                    self.inject(fault)
                return Response.json(200, {"ok": True, "pending": self.pending_faults()})
            if route == "faults" and m == "GET":
                return Response.json(200, {"pending": self.pending_faults()})
            if route == "faults" and m == "DELETE":
                self.clear_faults()
                return Response.json(200, {"ok": True})
            if route == "chaos" and m == "POST":
                if not isinstance(data, dict):
                    raise TypeError("chaos body must be a JSON object")
                self.chaos(**data)
                return Response.json(200, {"ok": True})
            if route == "revoke-all" and m == "POST":
                self.revoke_all()
                return Response.json(200, {"ok": True})
            if route == "expire-access-tokens" and m == "POST":
                self.expire_access_tokens()
                return Response.json(200, {"ok": True})
            if route == "config" and m == "POST":
                return Response.json(200, self._configure(data))
        except (TypeError, ValueError) as exc:
            return Response.json(400, {"error": str(exc)})
        return Response.json(404, {"error": "not found"})

    def _configure(self, data: Any) -> dict[str, Any]:
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
            return {
                "access_token_life": self.access_token_life,
                "code_life": self.code_life,
                "strict_replay": self.strict_replay,
            }
