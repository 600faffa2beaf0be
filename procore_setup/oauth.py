"""Every HTTP call to Procore, and the mapping of its answers to our exceptions.

Form-encoded bodies, explicit timeouts, a User-Agent naming the tool, bounded
retries with backoff that honour `Retry-After` and `X-Rate-Limit-Reset`.
No secret is ever formatted into an exception or a log line.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import math
import random
import re
import socket
import threading
import time
from typing import Any, Callable, TypeVar
from urllib.parse import urlencode

import httpx

from . import __version__
from .environments import OOB_REDIRECT_URI
from .errors import (
    AnswerLost,
    InvalidClient,
    NotSent,
    ProcoreAPIError,
    ReauthRequired,
    TemporaryFailure,
    UnexpectedResponse,
    env_seconds,
)

log = logging.getLogger("procore_setup.oauth")

USER_AGENT = f"procore-setup/{__version__} (+https://pypi.org/project/procore-setup/) httpx/{httpx.__version__}"
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=15.0, write=10.0, pool=5.0)
MAX_ATTEMPTS = 3
RETRY_BUDGET = 30.0  # seconds of waiting between attempts, at most, for one call
MAX_WAIT = 20.0  # a Retry-After longer than this is not waited for: exit 5 and let cron retry

T = TypeVar("T")


class InvalidToken(ProcoreAPIError):
    """The access token was refused (401 `invalid_token`)."""


class TokenSet:
    """A token response. Secrets stay out of `repr`."""

    __slots__ = ("access_token", "refresh_token", "token_type", "expires_in", "created_at", "scope", "requested_at")

    def __init__(self, access_token: str, refresh_token: str, token_type: str, expires_in: int,
                 created_at: int | None, scope: str | None, requested_at: float | None = None) -> None:
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.token_type = token_type
        self.expires_in = expires_in
        self.created_at = created_at
        self.scope = scope
        # When the request that got this answer went out (time.time()), by our clock: the
        # token cannot have been made before it, so its life counts from here, never longer.
        self.requested_at = requested_at

    def __repr__(self) -> str:
        return f"TokenSet(token_type={self.token_type!r}, expires_in={self.expires_in}, created_at={self.created_at})"


def authorize_url(login_url: str, client_id: str, redirect_uri: str = OOB_REDIRECT_URI, state: str | None = None) -> str:
    """The URL a person opens in a browser to log in and get a code."""
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri}
    if state:
        params["state"] = state
    return f"{login_url.rstrip('/')}/oauth/authorize?{urlencode(params)}"


def _timeout_from_env() -> httpx.Timeout:
    t = env_seconds("PROCORE_SETUP_HTTP_TIMEOUT", -1.0, 0.1, 600)
    return DEFAULT_TIMEOUT if t < 0 else httpx.Timeout(t, connect=min(t, 5.0))


def _deadline_for(timeout: httpx.Timeout) -> float:
    """Seconds one attempt may take from connect to the last byte.

    httpx's timeouts bound each network operation, not the whole exchange: a server (or proxy)
    that sends one byte every few seconds never trips them, and would hold the process, and the
    refresh lock with it, for as long as it likes.
    """
    parts = [t for t in (timeout.connect, timeout.read, timeout.write) if t is not None]
    return max(1.0, 2 * max(parts)) if parts else 60.0


class OAuthClient:
    """Talks to one Procore environment (a login host and an API host) for one client."""

    def __init__(self, login_url: str, api_url: str, client_id: str, client_secret: str | None,
                 redirect_uri: str = OOB_REDIRECT_URI, *, http: httpx.Client | None = None,
                 max_attempts: int = MAX_ATTEMPTS, retry_budget: float = RETRY_BUDGET,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.login_url = login_url.rstrip("/")
        self.api_url = api_url.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri
        self._owns_http = http is None
        timeout = _timeout_from_env()
        self.deadline = _deadline_for(timeout)
        # No keep-alive: every request opens its own connection, so the deadline below can
        # always find the socket to cut (a handful of calls per run; nothing to gain from reuse).
        self.http = http or httpx.Client(
            timeout=timeout, headers={"User-Agent": USER_AGENT}, follow_redirects=False,
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self.max_attempts = max(1, max_attempts)
        self.retry_budget = retry_budget
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"OAuthClient(login_url={self.login_url!r}, api_url={self.api_url!r}, client_id={self.client_id!r})"

    def close(self) -> None:
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> OAuthClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- OAuth endpoints -------------------------------------------------------------
    def authorize_url(self, state: str | None = None) -> str:
        return authorize_url(self.login_url, self.client_id, self.redirect_uri, state)

    def exchange_code(self, code: str) -> TokenSet:
        """Trade an authorization code for the first token pair."""
        return self._token_request({"grant_type": "authorization_code", "code": code}, what="exchanging the code")

    def refresh(self, refresh_token: str) -> TokenSet:
        """Trade a refresh token (single-use!) for a new pair."""
        return self._token_request(
            {"grant_type": "refresh_token", "refresh_token": refresh_token}, what="refreshing the token"
        )

    def token_info(self, access_token: str) -> dict[str, Any]:
        data = self._call("GET", f"{self.login_url}/oauth/token/info", what="asking for token info",
                          bearer=access_token)
        if not isinstance(data, dict):
            raise UnexpectedResponse("Procore's token info answer is not a JSON object.")
        return data

    def revoke(self, token: str) -> None:
        """Revoke an access token (and with it its refresh token). Procore answers 200 even if unknown."""
        form = {"token": token, "client_id": self.client_id}
        if self._client_secret:
            form["client_secret"] = self._client_secret
        self._call("POST", f"{self.login_url}/oauth/revoke", what="revoking the token", form=form, want_json=False)

    # -- API endpoints -------------------------------------------------------------------
    def me(self, access_token: str) -> dict[str, Any]:
        data = self._call("GET", f"{self.api_url}/rest/v1.0/me", what="asking who is logged in", bearer=access_token)
        if not isinstance(data, dict) or "id" not in data:
            raise UnexpectedResponse("Procore's /rest/v1.0/me answer has no user id.")
        return data

    def companies(self, access_token: str, *, per_page: int = 100, max_pages: int = 50) -> list[dict[str, Any]]:
        """Every company the user can reach, following pagination."""
        out: list[dict[str, Any]] = []
        for page in range(1, max_pages + 1):
            resp_data, headers = self._call(
                "GET", f"{self.api_url}/rest/v1.0/companies", what="listing companies", bearer=access_token,
                params={"page": page, "per_page": per_page}, with_headers=True,
            )
            if not isinstance(resp_data, list):
                raise UnexpectedResponse("Procore's /rest/v1.0/companies answer is not a list.")
            out.extend(c for c in resp_data if isinstance(c, dict) and "id" in c)
            total = headers.get("Total")
            if total and total.isdigit() and len(out) >= int(total):
                break
            if 'rel="next"' not in headers.get("Link", "") and (not total or len(resp_data) < per_page):
                break
            if not resp_data:
                break
        return out

    # -- plumbing --------------------------------------------------------------------------
    def _token_request(self, form: dict[str, str], *, what: str) -> TokenSet:
        form = dict(form, client_id=self.client_id, redirect_uri=self.redirect_uri)
        if self._client_secret:
            form["client_secret"] = self._client_secret
        sent: list[float] = []
        data = self._call("POST", f"{self.login_url}/oauth/token", what=what, form=form, sent=sent)
        tokens = _parse_token(data)
        tokens.requested_at = sent[-1]  # the attempt that was answered
        return tokens

    def _call(self, method: str, url: str, *, what: str, form: dict[str, str] | None = None,
              bearer: str | None = None, params: dict[str, Any] | None = None, want_json: bool = True,
              with_headers: bool = False, sent: list[float] | None = None) -> Any:
        headers = {"Accept": "application/json"}
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"

        def once() -> Any:
            if sent is not None:
                sent.append(time.time())
            resp = self._send(method, url, what=what, headers=headers, form=form, params=params)
            data = _interpret(resp, what=what, want_json=want_json)
            return (data, resp.headers) if with_headers else data

        return self._with_retries(once)

    def _send(self, method: str, url: str, *, what: str, headers: dict[str, str],
              form: dict[str, str] | None, params: dict[str, Any] | None) -> httpx.Response:
        host = httpx.URL(url).host
        sockets: list[socket.socket] = []
        expired = threading.Event()

        def trace(event: str, info: dict[str, Any]) -> None:
            if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
                stream = info.get("return_value")
                sock = stream.get_extra_info("socket") if stream is not None else None
                if sock is not None:
                    sockets.append(sock)

        def cut() -> None:  # past the deadline: end the exchange, however slowly bytes still come
            expired.set()
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

        timer = threading.Timer(self.deadline, cut)
        timer.daemon = True
        timer.start()
        try:
            resp = self.http.request(method, url, headers=headers, data=form, params=params,
                                     extensions={"trace": trace})
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            if expired.is_set():
                raise AnswerLost(f"{host} took more than {self.deadline:g} s to answer while {what}.",
                                 hint="Try again later.") from None
            raise NotSent(f"Cannot reach {host} while {what}: {_describe(exc)}.",
                          hint="Check the network or the login URL, then try again. Nothing was changed.") from None
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            if expired.is_set():
                raise AnswerLost(f"{host} took more than {self.deadline:g} s to answer while {what} "
                                 "(it sent its answer too slowly).", hint="Try again later.") from None
            raise AnswerLost(f"No answer from {host} while {what}: {_describe(exc)}.",
                             hint="Try again later.") from None
        except httpx.HTTPError as exc:
            raise NotSent(f"HTTP error talking to {host} while {what}: {type(exc).__name__}.") from None
        finally:
            timer.cancel()
        log.debug("%s %s -> %s", method, httpx.URL(url).path, resp.status_code)
        return resp

    def _with_retries(self, once: Callable[[], T]) -> T:
        waited = 0.0
        maybe_used: TemporaryFailure | None = None  # an attempt Procore may have acted on
        for attempt in range(1, self.max_attempts + 1):
            try:
                return once()
            except TemporaryFailure as exc:
                if _may_have_acted(exc):
                    maybe_used = exc
                if attempt == self.max_attempts:
                    raise _worst(exc, maybe_used) from None
                wait = exc.retry_after if exc.retry_after is not None else 0.5 * 2 ** (attempt - 1) * (0.5 + random.random())
                if wait > MAX_WAIT or waited + wait > self.retry_budget:
                    raise _worst(exc, maybe_used) from None
                self._sleep(wait)
                waited += wait
            except ReauthRequired as exc:
                if maybe_used is not None:
                    # An earlier attempt reached Procore and got no usable answer: that one used the grant.
                    exc.message += (" (An earlier attempt's answer was lost or was an error: "
                                    f"{maybe_used.message} Procore had probably already used the grant.)")
                    exc.after_lost_answer = True
                raise
        raise AssertionError("unreachable")


def _may_have_acted(exc: TemporaryFailure) -> bool:
    """Whether Procore may have acted on a request that ended in `exc`.

    Procore's FAQ: any refresh call, successful or not, can use up the refresh token. Only a
    connection that was never made, or a rate limiter's 429, certainly left it alone.
    """
    if isinstance(exc, NotSent):
        return exc.status is not None and exc.status != 429
    return True


def _worst(exc: TemporaryFailure, maybe_used: TemporaryFailure | None) -> TemporaryFailure:
    """After the last attempt: if any attempt may have acted at Procore (an answer lost, or a
    5xx, which Procore's FAQ says can still use up a refresh token), raise AnswerLost, so the
    caller keeps its in-flight mark instead of assuming that nothing happened."""
    if maybe_used is not None and not isinstance(exc, AnswerLost):
        err = AnswerLost(exc.message, hint=exc.hint, retry_after=exc.retry_after)
        err.status = exc.status
        return err
    return exc


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    low = text.lower()
    if "certificate" in low or "ssl" in low or "tls" in low:
        return "TLS error (" + text.splitlines()[0][:200] + ")"
    return text.splitlines()[0][:200]


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if value:
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
        except (TypeError, ValueError):
            pass
    reset = resp.headers.get("X-Rate-Limit-Reset")
    if reset and reset.strip().isdigit():
        return max(0.0, int(reset) - time.time())
    return None


def _interpret(resp: httpx.Response, *, what: str, want_json: bool) -> Any:
    """Map one HTTP answer to data or to one of our exceptions."""
    host = resp.request.url.host
    status = resp.status_code
    if status in (429, 500, 502, 503, 504) or status >= 500:
        kind = "rate limit reached" if status == 429 else f"server error {status}"
        ra = _retry_after(resp)
        later = f" Procore asks to wait {ra:.0f} s." if ra is not None and ra >= 1 else ""
        err = NotSent(f"{host} answered {status} ({kind}) while {what}.{later}",
                      hint="Try again later. Nothing was changed.", retry_after=ra)
        err.status = status
        raise err
    if 300 <= status < 400:
        raise UnexpectedResponse(
            f"{host} redirected (HTTP {status}) while {what}, to {_safe_location(resp)}.",
            hint="Check the login and API URLs of this profile: they must point at Procore itself.",
        )
    data: Any = None
    text = resp.text
    if text.strip():
        try:
            data = resp.json()
        except ValueError:
            data = None
            if want_json or status >= 400:
                ctype = resp.headers.get("Content-Type", "unknown type").split(";")[0]
                raise UnexpectedResponse(
                    f"{host} answered HTTP {status} with {ctype}, not JSON, while {what}.",
                    hint="Check that the profile's URLs point at Procore (not a proxy or login page).",
                ) from None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, str) and (status >= 400 or error in ("invalid_grant", "invalid_client", "invalid_token")):
        desc = data.get("error_description") if isinstance(data.get("error_description"), str) else ""
        desc = desc[:300]
        if error == "invalid_grant":
            raise ReauthRequired(f"Procore refused the grant (invalid_grant) while {what}: {desc}")
        if error == "invalid_client":
            raise InvalidClient(f"Procore refused the client id or secret (invalid_client) while {what}: {desc}")
        if error == "invalid_token":
            raise InvalidToken(f"Procore refused the access token (invalid_token) while {what}.", status=status)
        raise ProcoreAPIError(f"Procore answered {status} {error} while {what}: {desc}", status=status)
    if status == 401:
        raise InvalidToken(f"Procore answered 401 Unauthorized while {what}.", status=status)
    if status >= 400:
        raise ProcoreAPIError(f"Procore answered HTTP {status} while {what}.", status=status)
    if want_json and data is None:
        raise UnexpectedResponse(f"{host} answered HTTP {status} with an empty body while {what}.")
    return data


def _safe_location(resp: httpx.Response) -> str:
    loc = resp.headers.get("Location", "")
    # the path only: a query string could carry a code or a token
    return loc.split("?", 1)[0][:200] or "nowhere"


MAX_TOKEN_CHARS = 16384  # Procore's tokens are tens of characters; a signed JWT is a few thousand
_TOKEN_RE = re.compile(r"[\x21-\x7e]+")


def _parse_token(data: Any) -> TokenSet:
    if not isinstance(data, dict):
        raise UnexpectedResponse("Procore's token answer is not a JSON object.")
    missing = [k for k in ("access_token", "refresh_token", "expires_in") if k not in data]
    if missing:
        raise UnexpectedResponse(f"Procore's token answer lacks {', '.join(missing)}.")
    access, refresh, expires_in = data["access_token"], data["refresh_token"], data["expires_in"]
    if not isinstance(access, str) or not access or not isinstance(refresh, str) or not refresh:
        raise UnexpectedResponse("Procore's token answer has an empty or non-text token.")
    for token in (access, refresh):
        # A bearer token is printable ASCII without spaces (RFC 6750). Anything else would be
        # pasted into scripts' Authorization headers (a line break injects headers) or, when
        # huge, make a credentials file this program then refuses to read.
        if len(token) > MAX_TOKEN_CHARS:
            raise UnexpectedResponse(f"Procore's token answer holds a token longer than {MAX_TOKEN_CHARS} characters.")
        if not _TOKEN_RE.fullmatch(token):
            raise UnexpectedResponse(
                "Procore's token answer holds a token with spaces, line breaks or non-ASCII characters.")
    if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)):
        if isinstance(expires_in, str) and expires_in.strip().isdigit():
            expires_in = int(expires_in)
        else:
            raise UnexpectedResponse("Procore's token answer has a non-numeric expires_in.")
    if not math.isfinite(expires_in):  # JSON's NaN and 1e400 (infinity) parse as floats
        raise UnexpectedResponse("Procore's token answer has a non-numeric expires_in.")
    expires_in = int(expires_in)
    # Guard the arithmetic: a lifetime of 0 or less means "already expired"; over ten years is nonsense.
    expires_in = max(0, min(expires_in, 10 * 365 * 86400))
    created = data.get("created_at")
    created_at = (int(created) if isinstance(created, (int, float)) and not isinstance(created, bool)
                  and math.isfinite(created) and abs(created) < 1e11 else None)
    token_type = data.get("token_type") if isinstance(data.get("token_type"), str) else "bearer"
    scope = data.get("scope") if isinstance(data.get("scope"), str) else None
    return TokenSet(access, refresh, token_type, expires_in, created_at, scope)

