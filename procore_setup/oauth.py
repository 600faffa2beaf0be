"""Every HTTP call to Procore, and the mapping of its answers to our exceptions.

Form-encoded bodies, explicit timeouts, a User-Agent naming the tool, bounded
retries with backoff that honour `Retry-After` and `X-Rate-Limit-Reset`.
No secret is ever formatted into an exception or a log line.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import math
import os
import random
import socket
import threading
import time
import zlib
from datetime import datetime, timezone
from typing import Any, Callable, TypeVar
from urllib.parse import urlencode

import httpx

from .version import __version__
from .environments import OOB_REDIRECT_URI
from .errors import (
    AnswerLost,
    InvalidClient,
    InvalidToken,
    NotSent,
    ReauthRequired,
    RequestRefused,
    ServerError,
    TemporaryFailure,
    TokensUnusable,
    UnexpectedResponse,
    UsageError,
)
from .checks import is_loopback, token_problem
from .text import DESCRIPTION_LIMIT, ERROR_LIMIT, clean, clean_or_none

log = logging.getLogger("procore_setup.oauth")

USER_AGENT = f"procore-setup/{__version__} (+https://pypi.org/project/procore-setup/) httpx/{httpx.__version__}"
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=15.0, write=10.0, pool=5.0)
MAX_ATTEMPTS = 3
RETRY_BUDGET = 30.0  # seconds of waiting between attempts, at most, for one call
MAX_WAIT = 20.0  # a Retry-After longer than this is not waited for: exit 5 and let cron retry

# How long a live holder's token request may still be running, and its answer still be saved,
# for the HTTP timeout `http_timeout` (PROCORE_SETUP_HTTP_TIMEOUT; None: the defaults): every
# attempt to its deadline, the waits between attempts, and the save of the answer (a shared store's
# reconnect-and-save retries, then its last-resort save). The holder writes these figures of its own
# into its in-flight mark (Profile.refresh_budget, refresh_step), so a run that finds the mark waits
# on the holder's limits (holder_time_left), never on its own settings: a waiter with a shorter HTTP
# timeout than the holder's must not call a chain dead that the holder's late answer keeps alive.
HOLDER_MARGIN = 5.0  # seconds: the process's own work around the request and the save
MARK_ROUNDING = 1.0  # the mark is stored to the second, rounded down
CLOCK_SKEW = 5.0  # the mark is another host's clock: allow for it being behind ours
MAX_HTTP_TIMEOUT = 600.0  # the most PROCORE_SETUP_HTTP_TIMEOUT may say (settings.http_timeout)


def attempt_seconds(http_timeout: float | None = None) -> float:
    """The longest one attempt of a request may take (its whole-attempt deadline)."""
    return _deadline_for(_timeout(http_timeout))


def save_seconds() -> float:
    """The longest the save of an answer may take: a shared store's reconnect-and-save retries,
    then its last-resort save (stores.rows). The file store's few retries fit in HOLDER_MARGIN."""
    from .stores.rows import LAST_RESORT_SECONDS, SAVE_RETRY_DELAYS

    return sum(SAVE_RETRY_DELAYS) + LAST_RESORT_SECONDS


def holder_step(http_timeout: float | None = None) -> int:
    """Seconds from the moment a holder's request goes out until its answer is in the store, at most:
    one attempt to its deadline, the save, and HOLDER_MARGIN."""
    return math.ceil(attempt_seconds(http_timeout) + save_seconds() + HOLDER_MARGIN)


def holder_budget(http_timeout: float | None = None) -> int:
    """Seconds, from its mark, a live holder's token request may take until its answer is saved:
    MAX_ATTEMPTS attempts, the RETRY_BUDGET of waiting between them, the save and HOLDER_MARGIN
    (165 s with the default timeouts)."""
    return math.ceil(MAX_ATTEMPTS * attempt_seconds(http_timeout) + RETRY_BUDGET + save_seconds() + HOLDER_MARGIN)


def holder_time_left(started: datetime, budget: int | None, step: int | None, *,
                     refused: bool) -> float:
    """Seconds, from now, that the holder of an in-flight mark made at `started` (another host's
    clock) may still save its answer: its whole `budget` counted from the mark (with the mark's
    rounding and the clocks' skew), and, once Procore has refused this run's request (`refused`:
    the holder's request went out before this run's), at most one `step` from now. `budget` and
    `step` are the holder's own (written into its mark); a mark written before they were (None)
    gets the defaults. A mark ahead of our clock counts as made just now. 0: the holder is past its
    own deadline (dead, or done)."""
    # The mark is read from the store: a figure no holder could have written (negative, or past what
    # the longest HTTP timeout allows) counts as missing, so a bad row cannot hold a waiter for days.
    whole = float(budget if budget is not None and 0 <= budget <= holder_budget(MAX_HTTP_TIMEOUT)
                  else holder_budget())
    age = max(0.0, (datetime.now(timezone.utc) - started).total_seconds())
    left = max(0.0, whole + MARK_ROUNDING + CLOCK_SKEW - age)
    if refused:
        left = min(left, float(step if step is not None and 0 <= step <= holder_step(MAX_HTTP_TIMEOUT)
                               else holder_step()))
    return left


T = TypeVar("T")


class TokenSet:
    """A token response. Secrets stay out of `repr`."""

    __slots__ = ("access_token", "refresh_token", "token_type", "expires_in", "created_at", "scope", "requested_at",
                 "clamped_from")

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
        self.clamped_from: str | None = None  # the server's expires_in, when it was cut to MAX_EXPIRES_IN

    def __repr__(self) -> str:
        return f"TokenSet(token_type={self.token_type!r}, expires_in={self.expires_in}, created_at={self.created_at})"


def authorize_url(login_url: str, client_id: str, redirect_uri: str = OOB_REDIRECT_URI, state: str | None = None) -> str:
    """The URL a person opens in a browser to log in and get a code."""
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri}
    if state:
        params["state"] = state
    return f"{login_url.rstrip('/')}/oauth/authorize?{urlencode(params)}"


def _timeout(seconds: float | None) -> httpx.Timeout:
    """httpx's timeouts for `seconds` per network step (PROCORE_SETUP_HTTP_TIMEOUT), or the defaults."""
    return DEFAULT_TIMEOUT if seconds is None else httpx.Timeout(seconds, connect=min(seconds, 5.0))


def _deadline_for(timeout: httpx.Timeout) -> float:
    """Seconds one attempt may take from connect to the last byte.

    httpx's timeouts bound each network operation, not the whole exchange: a server (or proxy)
    that sends one byte every few seconds never trips them, and would hold the process, and the
    refresh lock with it, for as long as it likes.
    """
    parts = [t for t in (timeout.connect, timeout.read, timeout.write) if t is not None]
    return max(1.0, 2 * max(parts)) if parts else 60.0


def _proxy_variable(scheme: str) -> str:
    """The environment variable `urllib.request.getproxies` (and so httpx) takes `scheme`'s proxy
    from: the lowercase one wins, even when empty."""
    lower = f"{scheme}_proxy"
    if lower in os.environ:
        return lower
    upper = lower.upper()
    return upper if upper in os.environ else "the system proxy settings"


def _proxy_problem(value: str) -> str | None:
    """Why httpx cannot use `value` as a proxy, or None. Never quotes the value: it may hold a password."""
    url_text = value if "://" in value else f"http://{value}"  # what httpx makes of it
    try:
        url = httpx.URL(url_text)
    except (httpx.InvalidURL, ValueError, TypeError):
        return "it is not a URL"
    scheme = url.scheme.lower()
    if scheme in ("socks5", "socks5h"):
        import importlib.util

        if importlib.util.find_spec("socksio") is None:
            return "a SOCKS proxy needs the socksio package (pip install 'httpx[socks]')"
    elif scheme not in ("http", "https"):
        return f"{clean(scheme, 20)}:// is no proxy scheme; use http://, https:// or socks5://"
    if not url.host:
        return "it names no host"
    return None


def check_proxy_environment() -> None:
    """Refuse (exit 2) a proxy setting httpx would choke on, naming the variable but not its value.

    httpx reads HTTP_PROXY, HTTPS_PROXY and ALL_PROXY (lowercase too) and builds a transport for
    each when a client is made, so a bad one fails every request, loopback or not.
    """
    import urllib.request

    proxies = urllib.request.getproxies()
    if any(h.strip() == "*" for h in proxies.get("no", "").split(",")):
        return  # NO_PROXY=*: httpx ignores every proxy setting
    for scheme in ("http", "https", "all"):
        value = proxies.get(scheme)
        problem = _proxy_problem(value) if value else None
        if problem:
            name = _proxy_variable(scheme)
            raise UsageError(
                f"{name} holds a proxy setting procore-setup cannot use: {problem}.",
                hint=f"Fix or unset {name}. procore-setup sends Procore's https requests through HTTPS_PROXY "
                "or ALL_PROXY (unless NO_PROXY names the host), and never uses a proxy for 127.0.0.1, ::1 "
                "or localhost.",
            )


def _direct_mounts(*urls: str) -> dict[str, None]:
    """httpx mounts that send requests to loopback hosts directly, whatever the proxy settings say:
    a proxy would see the client secret and tokens of a plain-http test server in clear."""
    mounts: dict[str, None] = {}
    for url in urls:
        try:
            host = httpx.URL(url).host
        except (httpx.InvalidURL, ValueError, TypeError):
            continue  # the request itself will say what is wrong with the URL
        if host and is_loopback(host):
            mounts[f"all://[{host}]" if ":" in host else f"all://{host}"] = None  # None: no proxy
    return mounts


class OAuthClient:
    """Talks to one Procore environment (a login host and an API host) for one client."""

    def __init__(self, login_url: str, api_url: str, client_id: str, client_secret: str | None,
                 redirect_uri: str = OOB_REDIRECT_URI, *, http: httpx.Client | None = None,
                 max_attempts: int = MAX_ATTEMPTS, retry_budget: float = RETRY_BUDGET,
                 sleep: Callable[[float], None] = time.sleep, timeout: float | None = None) -> None:
        self.login_url = login_url.rstrip("/")
        self.api_url = api_url.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri
        self._owns_http = http is None
        limits = _timeout(timeout)
        self.deadline = _deadline_for(limits)
        if http is None:
            check_proxy_environment()
            try:
                # No keep-alive: every request opens its own connection, so the deadline below can
                # always find the socket to cut (a handful of calls per run; nothing to gain from reuse).
                http = httpx.Client(
                    timeout=limits, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
                    follow_redirects=False, limits=httpx.Limits(max_keepalive_connections=0),
                    mounts=_direct_mounts(self.login_url, self.api_url),
                )
            except (ValueError, ImportError, httpx.InvalidURL) as exc:  # e.g. a NO_PROXY entry httpx cannot parse
                raise UsageError(
                    f"The proxy settings (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY) cannot be used: "
                    f"{type(exc).__name__}.", hint="Fix or unset them.") from None
        self.http = http
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
    def exchange_code(self, code: str) -> TokenSet:
        """Trade an authorization code for the first token pair."""
        return self._token_request({"grant_type": "authorization_code", "code": code}, what="exchanging the code")

    def refresh(self, refresh_token: str) -> TokenSet:
        """Trade a refresh token (single-use!) for a new pair."""
        return self._token_request(
            {"grant_type": "refresh_token", "refresh_token": refresh_token}, what="refreshing the token"
        )

    def client_credentials(self) -> TokenSet:
        """A service account's token (the client-credentials grant): no code, no refresh token.
        Nothing is single-use here, so a lost answer costs only the request."""
        return self._token_request({"grant_type": "client_credentials"}, what="requesting a service account's token")

    def token_info(self, access_token: str, *, company_id: int | None = None) -> dict[str, Any]:
        data = self._json("GET", f"{self.login_url}/oauth/token/info", what="asking for token info",
                          bearer=access_token, company_id=company_id)
        if not isinstance(data, dict):
            raise UnexpectedResponse("Procore's token info answer is not a JSON object.")
        app = data.get("application")
        uid = clean_or_none(app.get("uid")) if isinstance(app, dict) else None
        seconds, owner = data.get("expires_in_seconds"), data.get("resource_owner_id")
        return dict(
            data,
            resource_owner_id=owner if _is_int(owner) else clean_or_none(owner),
            expires_in_seconds=seconds if _is_int(seconds) else None,
            application={"uid": uid},
        )

    def revoke(self, token: str) -> None:
        """Revoke an access token (and with it its refresh token). Procore answers 200 even if unknown."""
        form = {"token": token, "client_id": self.client_id}
        if self._client_secret:
            form["client_secret"] = self._client_secret
        self._post_form(f"{self.login_url}/oauth/revoke", what="revoking the token", form=form)

    # -- API endpoints -------------------------------------------------------------------
    def me(self, access_token: str, *, company_id: int | None = None) -> dict[str, Any]:
        """Who the token belongs to. `company_id` sends Procore-Company-Id, which a service
        account's token needs even here (Multiple Procore Zones)."""
        data = self._json("GET", f"{self.api_url}/rest/v1.0/me", what="asking who is logged in", bearer=access_token,
                          company_id=company_id)
        if not isinstance(data, dict) or "id" not in data:
            raise UnexpectedResponse("Procore's /rest/v1.0/me answer has no user id.")
        # Shown on screens and stored in the file: capped and printable from here on.
        return dict(data, login=clean_or_none(data.get("login")), name=clean_or_none(data.get("name")))

    def companies(self, access_token: str, *, per_page: int = 100, max_pages: int = 50,
                  company_id: int | None = None) -> list[dict[str, Any]]:
        """Every company the user (or the service account's app) can reach, following pagination;
        `company_id` sends Procore-Company-Id (see `me`)."""
        out: list[dict[str, Any]] = []
        for page in range(1, max_pages + 1):
            resp_data, headers = self._json_and_headers(
                f"{self.api_url}/rest/v1.0/companies", what="listing companies", bearer=access_token,
                params={"page": page, "per_page": per_page}, company_id=company_id,
            )
            if not isinstance(resp_data, list):
                raise UnexpectedResponse("Procore's /rest/v1.0/companies answer is not a list.")
            out.extend(_company(c) for c in resp_data if isinstance(c, dict) and _company_id(c.get("id")) is not None)
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
        grant = form["grant_type"]
        form = dict(form, client_id=self.client_id)
        if grant != "client_credentials":  # no redirect in that grant
            form["redirect_uri"] = self.redirect_uri
        if self._client_secret:
            form["client_secret"] = self._client_secret
        sent: list[float] = []
        # a 401 that is not invalid_client is a refusal like any other 4xx here (token_request)
        data = self._json("POST", f"{self.login_url}/oauth/token", what=what, form=form, sent=sent, token_request=True)
        try:
            tokens = _parse_token(data, with_refresh=grant != "client_credentials")
        except _Unusable as exc:
            if not (isinstance(data, dict) and ("access_token" in data or "refresh_token" in data)):
                # no tokens in it at all: an answer we do not understand (exit 5, the mark kept)
                raise UnexpectedResponse(f"Procore's token answer {exc.problem}.") from None
            if grant == "client_credentials":  # nothing single-use was spent: the next request may work
                raise UnexpectedResponse(
                    f"Procore answered with a token this tool cannot use while {what} (Procore's token answer "
                    f"{exc.problem}).", hint="Try again later; nothing stored was used up.") from None
            # Procore answered 200 with tokens: it has issued a new pair, and so spent what was sent.
            spent = ("the code is used up" if grant == "authorization_code"
                     else "Procore has most likely used up the stored refresh token")
            raise TokensUnusable(
                f"Procore answered with tokens this tool cannot use while {what} (Procore's token answer "
                f"{exc.problem}): {spent}.",
                hint="Open the authorize URL again for a new code." if grant == "authorization_code"
                else None,
            ) from None
        tokens.requested_at = sent[-1]  # the attempt that was answered
        if tokens.clamped_from is not None and tokens.expires_in <= 0:
            log.warning("procore-setup: warning: %s gave the new access token a life of %s s: it counts as "
                        "expired already, so every run refreshes it (a clock or server problem at Procore?).",
                        httpx.URL(self.login_url).host, tokens.clamped_from)
        elif tokens.clamped_from is not None:
            log.warning("procore-setup: warning: %s gave the new access token a life of %s s; it is taken as "
                        "one day (%d s) and renewed before then.", httpx.URL(self.login_url).host,
                        tokens.clamped_from, MAX_EXPIRES_IN)
        return tokens

    def _json(self, method: str, url: str, *, what: str, form: dict[str, str] | None = None,
              bearer: str | None = None, params: dict[str, Any] | None = None, sent: list[float] | None = None,
              company_id: int | None = None, token_request: bool = False) -> Any:
        """One call, with its retries: the answer's JSON."""
        return self._exchange(method, url, what=what, form=form, bearer=bearer, params=params, sent=sent,
                              company_id=company_id, token_request=token_request)[0]

    def _json_and_headers(self, url: str, *, what: str, bearer: str, params: dict[str, Any],
                          company_id: int | None = None) -> tuple[Any, httpx.Headers]:
        """A GET, with its retries: the answer's JSON and its headers (a page's Total and Link)."""
        return self._exchange("GET", url, what=what, bearer=bearer, params=params, company_id=company_id)

    def _post_form(self, url: str, *, what: str, form: dict[str, str]) -> None:
        """A form POST, with its retries, whose answer says nothing but its status (revoke)."""
        self._exchange("POST", url, what=what, form=form, want_json=False)

    def _exchange(self, method: str, url: str, *, what: str, form: dict[str, str] | None = None,
                  bearer: str | None = None, params: dict[str, Any] | None = None, want_json: bool = True,
                  sent: list[float] | None = None, company_id: int | None = None,
                  token_request: bool = False) -> tuple[Any, httpx.Headers]:
        headers = {"Accept": "application/json"}
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        if company_id is not None:
            headers["Procore-Company-Id"] = str(int(company_id))

        def once() -> tuple[Any, httpx.Headers]:
            if sent is not None:
                sent.append(time.time())
            resp, body = self._send(method, url, what=what, headers=headers, form=form, params=params)
            return _interpret(resp, body, what=what, want_json=want_json, token_request=token_request), resp.headers

        return self._with_retries(once)

    def _send(self, method: str, url: str, *, what: str, headers: dict[str, str],
              form: dict[str, str] | None, params: dict[str, Any] | None) -> tuple[httpx.Response, bytes]:
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
            request = self.http.build_request(method, url, headers=headers, data=form, params=params,
                                              extensions={"trace": trace})
            resp = self.http.send(request, stream=True)
            try:
                body = _read_body(resp, what=what)
            finally:
                resp.close()
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
        return resp, body

    def _with_retries(self, once: Callable[[], T]) -> T:
        waited = 0.0
        maybe_used: TemporaryFailure | None = None  # an attempt Procore may have acted on
        for attempt in range(1, self.max_attempts + 1):
            try:
                return once()
            except RequestRefused as exc:
                # The same request would be refused again. (An earlier attempt Procore may have
                # acted on still decides what the caller is told.)
                raise _worst(exc, maybe_used) from None
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
                if maybe_used is None:
                    raise
                # An earlier attempt reached Procore and got no usable answer: that one used the grant.
                raise exc.given(note=f"(An earlier attempt's answer was lost or was an error: {maybe_used.message} "
                                "Procore had probably already used the grant.)", after_lost_answer=True) from None
        raise AssertionError("unreachable")


def _may_have_acted(exc: TemporaryFailure) -> bool:
    """Whether Procore may have acted on a request that ended in `exc`.

    Procore's FAQ: any refresh call, successful or not, can use up the refresh token. Only a
    connection that was never made, or a rate limiter's 429, certainly left it alone.
    """
    return not isinstance(exc, NotSent)


def _worst(exc: TemporaryFailure, maybe_used: TemporaryFailure | None) -> TemporaryFailure:
    """After the last attempt: if any attempt may have acted at Procore (an answer lost, or a
    5xx, which Procore's FAQ says can still use up a refresh token), raise AnswerLost, so the
    caller keeps its in-flight mark instead of assuming that nothing happened."""
    if maybe_used is not None and not isinstance(exc, AnswerLost):
        return exc.as_a(AnswerLost, hint=_LOST_HINT if isinstance(exc, RequestRefused) else None)
    return exc


def _describe(exc: Exception) -> str:
    # httpx's and h11's messages can quote what the server sent (a bad header line): clean them.
    text = str(exc) or type(exc).__name__
    low = text.lower()
    first = clean(text.splitlines()[0] if text.strip() else type(exc).__name__, 200)
    if "certificate" in low or "ssl" in low or "tls" in low:
        return "TLS error (" + first + ")"
    return first


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


MAX_BODY = 1 << 20  # bytes of an answer, read or decompressed: token answers are a few hundred
# A refusal after an attempt Procore may have acted on: the refusal's own hint ("changes nothing")
# would be wrong about that earlier attempt.
_LOST_HINT = ("An earlier attempt reached Procore and got no usable answer, so Procore may have acted on it. Check "
              "that the profile's login and API URLs point at Procore itself; if they do, try again later.")
_REFUSED_HINT = ("A refused request changes nothing at Procore: the stored tokens are as they were. Check that "
                 "the profile's login and API URLs point at Procore itself; if they do, try again later.")


class _Inflater:
    """gzip or deflate, decompressed with a bound on the output of every step (a 1 MB gzip bomb
    inflates to a gigabyte: httpx's own decoder would make all of it at once)."""

    def __init__(self, encoding: str) -> None:
        self.raw_deflate_tried = encoding != "deflate"
        self.z = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding != "deflate" else zlib.MAX_WBITS)

    def feed(self, data: bytes, room: int) -> bytes:
        """At most `room + 1` bytes out (more than `room`: the answer is too big)."""
        if self.z.eof:
            return b""  # anything after the end of the stream is not part of the answer
        try:
            return self.z.decompress(data, room + 1)
        except zlib.error:
            if self.raw_deflate_tried:
                raise
            # "deflate" is meant to be zlib-wrapped, but some servers send raw deflate
            self.raw_deflate_tried = True
            self.z = zlib.decompressobj(-zlib.MAX_WBITS)
            return self.z.decompress(data, room + 1)


def _read_body(resp: httpx.Response, *, what: str) -> bytes:
    """The answer's body, never more than MAX_BODY bytes of it, before or after decompression.

    An answer to a token request that is too big is a lost answer (Procore may have acted, so
    the caller keeps its in-flight mark); an error page that is too big is only cut short, as
    its first megabyte says all there is to say.
    """
    host = resp.request.url.host
    ok = resp.status_code < 300

    def too_big() -> AnswerLost:
        return AnswerLost(f"{host} answered with more than {MAX_BODY // 1024} KiB while {what} (a token answer "
                          "is a few hundred bytes); the rest was not read.", hint="Try again later.")

    length = resp.headers.get("Content-Length", "").strip()
    if ok and length.isdigit() and int(length) > MAX_BODY:
        raise too_big()
    encodings = [e.strip().lower() for e in resp.headers.get("Content-Encoding", "").split(",") if e.strip()]
    encodings = [e for e in encodings if e != "identity"]
    if len(encodings) > 1 or (encodings and encodings[0] not in ("gzip", "x-gzip", "deflate")):
        raise AnswerLost(f"{host} answered in an encoding this tool does not read "
                         f"({clean(', '.join(encodings), 40)}) while {what}.", hint="Try again later.")
    inflater = _Inflater(encodings[0]) if encodings else None
    out = bytearray()
    raw = 0
    for chunk in resp.iter_raw():
        raw += len(chunk)
        room = MAX_BODY - len(out)
        try:
            piece = inflater.feed(chunk, room) if inflater is not None else chunk[: room + 1]
        except zlib.error:
            raise AnswerLost(f"{host} sent a corrupt compressed answer while {what}.", hint="Try again later.") from None
        if len(piece) > room or raw > MAX_BODY:
            if ok:
                raise too_big()
            out += piece[:room]
            break
        out += piece
    return bytes(out)


def _content_type(resp: httpx.Response) -> str:
    return clean(resp.headers.get("Content-Type", "unknown type").split(";")[0].strip() or "unknown type", 60)


def _interpret(resp: httpx.Response, body: bytes, *, what: str, want_json: bool, token_request: bool = False) -> Any:
    """Map one HTTP answer to data or to one of our exceptions. `token_request`: the answer to a
    token request, where a 401 other than invalid_client refuses the request (RequestRefused), not
    an access token (InvalidToken)."""
    unauthorized = _refused if token_request else _invalid_token
    host = resp.request.url.host
    status = resp.status_code
    if status == 429 or status >= 500:
        kind = "rate limit reached" if status == 429 else f"server error {status}"
        ra = _retry_after(resp)
        later = f" Procore asks to wait {ra:.0f} s." if ra is not None and ra >= 1 else ""
        cls = NotSent if status == 429 else ServerError  # a rate limiter answers before the application
        raise cls(f"{host} answered {status} ({kind}) while {what}.{later}",
                  hint="Try again later. Nothing was changed.", retry_after=ra, status=status)
    if 300 <= status < 400:
        raise UnexpectedResponse(
            f"{host} redirected (HTTP {status}) while {what}, to {_safe_location(resp)}.",
            hint="Check the login and API URLs of this profile: they must point at Procore itself.",
        )
    data: Any = None
    if body.strip():
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, too deep, too many digits
            data = None
            if status >= 400:
                raise _refused(f"{host} refused the request (HTTP {status}, {_content_type(resp)} instead of "
                               f"Procore's JSON) while {what}.", status)
            if want_json:
                raise UnexpectedResponse(
                    f"{host} answered HTTP {status} with {_content_type(resp)}, not JSON, while {what}.",
                    hint="Check that the profile's URLs point at Procore (not a proxy or login page).",
                ) from None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, str) and (status >= 400 or error in ("invalid_grant", "invalid_client", "invalid_token")):
        raw_desc = data.get("error_description")
        desc = clean(raw_desc, DESCRIPTION_LIMIT) if isinstance(raw_desc, str) else ""
        if error == "invalid_grant":
            raise ReauthRequired(f"Procore refused the grant (invalid_grant) while {what}: {desc}")
        if error == "invalid_client":
            raise InvalidClient(f"Procore refused the client id or secret (invalid_client) while {what}: {desc}")
        if error == "invalid_token":
            raise unauthorized(f"Procore refused the access token (invalid_token) while {what}.", status)
        said = f": {desc}" if desc else ""
        raise _refused(f"{host} refused the request (HTTP {status} {clean(error, ERROR_LIMIT)}) while {what}{said}",
                       status)
    if status == 401:
        raise unauthorized(f"Procore answered 401 Unauthorized while {what}.", status)
    if status >= 400:
        raise _refused(f"{host} refused the request (HTTP {status}) while {what}.", status)
    if want_json and data is None:
        raise UnexpectedResponse(f"{host} answered HTTP {status} with an empty body while {what}.")
    return data


def _refused(message: str, status: int) -> RequestRefused:
    return RequestRefused(message, hint=_REFUSED_HINT, status=status)


def _invalid_token(message: str, status: int) -> InvalidToken:
    return InvalidToken(message, status=status)


def _safe_location(resp: httpx.Response) -> str:
    loc = resp.headers.get("Location", "")
    # the path only: a query string could carry a code or a token
    return clean(loc.split("?", 1)[0], 200) or "nowhere"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _company_id(value: Any) -> int | None:
    if _is_int(value):
        return value
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) < 20:
        return int(value)
    return None


def _company(c: dict[str, Any]) -> dict[str, Any]:
    """A company of /companies with a usable id and a name fit to show and store."""
    return dict(c, id=_company_id(c.get("id")), name=clean_or_none(c.get("name")))


class _Unusable(Exception):
    """A token answer this tool cannot use; `problem` says why, after "Procore's token answer"
    ("lacks expires_in"). Never leaves this module: _token_request words it for its grant."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


MAX_EXPIRES_IN = 86400  # seconds: Procore's access tokens live 5400


def _parse_token(data: Any, *, with_refresh: bool = True) -> TokenSet:
    """A token answer, checked and capped, or _Unusable. `with_refresh=False` (the client-credentials
    grant): no refresh token is expected, and one sent anyway is not kept (nothing would use it)."""
    if not isinstance(data, dict):
        raise _Unusable("is not a JSON object")
    wanted = ("access_token", "refresh_token", "expires_in") if with_refresh else ("access_token", "expires_in")
    missing = [k for k in wanted if k not in data]
    if missing:
        raise _Unusable(f"lacks {', '.join(missing)}")
    access, expires_in = data["access_token"], data["expires_in"]
    refresh = data["refresh_token"] if with_refresh else ""
    if not isinstance(access, str) or not access or not isinstance(refresh, str) or (with_refresh and not refresh):
        raise _Unusable("has an empty or non-text token")
    for token in (access, refresh) if with_refresh else (access,):
        # The rule a token read back from the file must pass too (checks.token_problem): a line
        # break would inject headers into scripts' Authorization, a huge one bloat the file.
        problem = token_problem(token)
        if problem:
            raise _Unusable(f"holds a token that {problem}")
    if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)):
        if isinstance(expires_in, str) and expires_in.strip().isdigit():
            expires_in = int(expires_in)
        else:
            raise _Unusable("has a non-numeric expires_in")
    if not math.isfinite(expires_in):  # JSON's NaN and 1e400 (infinity) parse as floats
        raise _Unusable("has a non-numeric expires_in")
    # A lifetime of 0 or less means "already expired". More than a day is no access token Procore
    # issues (90 minutes): believed, `token` might never renew it, and would hand out a dead token.
    # Both ends are warned about (see _token): a day, or "expired already" (every run would refresh).
    clamped_from = f"{expires_in:.3g}" if expires_in > MAX_EXPIRES_IN or expires_in <= 0 else None
    expires_in = max(0, min(int(expires_in), MAX_EXPIRES_IN))
    created = data.get("created_at")
    created_at = (int(created) if isinstance(created, (int, float)) and not isinstance(created, bool)
                  and math.isfinite(created) and abs(created) < 1e11 else None)
    token_type = data.get("token_type")
    if token_type is None:
        token_type = "bearer"
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        # Every caller sends "Authorization: Bearer ...": a token of another type would be refused.
        shown = clean(token_type, 20) if isinstance(token_type, str) else type(token_type).__name__
        raise _Unusable(f"has the token type {shown!r}, not bearer")
    scope = clean(data["scope"], DESCRIPTION_LIMIT) if isinstance(data.get("scope"), str) else None
    tokens = TokenSet(access, refresh, token_type, expires_in, created_at, scope)
    tokens.clamped_from = clamped_from
    return tokens

