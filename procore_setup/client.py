"""ProcoreClient: Procore's REST API with pagination, rate-limit pacing and safe retries.

    from procore_setup import ProcoreClient

    with ProcoreClient() as procore:                      # the default profile
        me = procore.get("/rest/v1.0/me").json()
        for project in procore.paginate("/rest/v1.0/projects", params={"company_id": 8675309}):
            print(project["name"])

An `httpx.Client` with the profile's API URL as `base_url` and `ProcoreAuth`; everything else
lives in its transport (`PacingTransport`, after httpx's own transports), so a plain
`procore.get(...)` paces and retries too:

- before a request goes: the rate limiter (`ratelimit.RateLimiter`) holds it while Remaining is
  0 before Reset, while a 429's wait runs, or while as many are in flight as Remaining allows;
  a wait past `max_wait` seconds raises `TemporaryFailure` (exit 5) naming when the limit resets;
- a 429 (and a 503, whatever the method: neither was processed) waits until Reset or Retry-After
  and goes again; GET, HEAD, PUT, DELETE and OPTIONS are retried on 502, 504 and on a connection
  that failed, with backoff and jitter, a bounded number of times; POST and PATCH only when no
  connection was made: a POST whose answer was lost is never sent twice (`AnswerLost`, exit 5);
- a request for any other origin than the profile's API URL is refused before it is sent
  (`InvalidValue`, exit 2): the token never leaves for another host. Redirects are not followed.

`AsyncProcoreClient` is the same for `httpx.AsyncClient`. `procore-setup api` is built on this.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from collections import deque
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Iterator, Mapping

import httpx

from . import filesystem
from .auth import ProcoreAuth
from .errors import (
    AnswerLost,
    APIRequestRefused,
    InvalidValue,
    NotSent,
    ProcoreSetupError,
    ReauthRequired,
    ServerError,
    TemporaryFailure,
    UnexpectedResponse,
)
from .ratelimit import FileState, RateLimiter, RateLimitExceeded, retry_after
from .text import DESCRIPTION_LIMIT, clean

if TYPE_CHECKING:
    from .stores.base import Store

__all__ = ["ProcoreClient", "AsyncProcoreClient", "PacingTransport", "AsyncPacingTransport", "DEFAULT_MAX_WAIT",
           "api_error", "error_text"]

DEFAULT_MAX_WAIT = 120.0  # seconds a request may wait for the rate limit before exit 5
DEFAULT_RETRIES = 4  # further attempts after a 502/503/504 or a failed connection
DEFAULT_BACKOFF = 0.25  # seconds before the first retry; doubled each time, with jitter
MAX_BACKOFF = 8.0
MAX_RATE_LIMIT_RETRIES = 10  # 429s one request may collect (each waited out) before giving up
MAX_IN_FLIGHT = 4  # pages fetched side by side by paginate()
# A page paginate() parses, decompressed, at most: parsed JSON takes up to ~25 times its bytes
# (`[{},{},...]`), and up to MAX_IN_FLIGHT pages are held at once.
MAX_PAGE_BYTES = 16 << 20
MAX_ITEMS_PER_PER_PAGE = 4  # a page holds at most 4 x per_page items (Procore sends per_page or fewer)
MIN_ITEMS_CAP = 50_000  # ... or this many, for a list that does not paginate and answers all at once
V1_PER_PAGE = 1000
V2_PER_PAGE = 100

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
NOT_SENT_ERRORS: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


# -- where requests may go -------------------------------------------------------------------

def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host.lower(), url.port or default


def shown_path(url: httpx.URL) -> str:
    """A request's path for messages (no query: it may hold anything the user typed)."""
    return clean(url.path or "/", 200)


def _proxy_for(api_url: str) -> str | None:
    """The proxy the environment names for the API host (none for loopback), as httpx would pick it."""
    import urllib.request

    from .checks import is_loopback
    from .oauth import check_proxy_environment

    url = httpx.URL(api_url)
    if is_loopback(url.host):
        return None
    check_proxy_environment()
    proxies = urllib.request.getproxies_environment()
    bypass = getattr(urllib.request, "proxy_bypass_environment")  # noqa: B009 - not in typeshed
    if proxies.get("no") and bypass(url.host, proxies):
        return None
    return proxies.get(url.scheme) or proxies.get("all") or None


# -- the retry policy (one place, for both transports) ------------------------------------------

def _backoff(attempt: int, base: float) -> float:
    """Exponential backoff with full jitter (AWS's "full jitter": spreads the retries of many clients)."""
    return random.uniform(0.5, 1.0) * min(MAX_BACKOFF, base * (2 ** attempt))


def _replayable(request: httpx.Request) -> bool:
    return isinstance(request.stream, httpx.ByteStream)


class _Attempts:
    """One request's attempts: what failed, and whether (and how long after) it may go again."""

    def __init__(self, request: httpx.Request, retries: int, backoff: float, max_wait: float) -> None:
        self.request = request
        self.method = request.method.upper()
        self.retries = retries
        self.backoff = backoff
        self.max_wait = max_wait
        self.failures = 0
        self.refusals = 0
        self.replayable = _replayable(request)

    def limit_error(self, exc: RateLimitExceeded, limiter: RateLimiter) -> TemporaryFailure:
        now = time.time()
        left = max(exc.until - now, 0)
        when = time.strftime("%H:%M:%S UTC", time.gmtime(exc.until))
        what = {"refused": "refused this client with 429 Too Many Requests",
                "stored": "was reached by another run of this profile"}.get(
            exc.why, "reported no requests left in this window")
        path = limiter.shared_file()
        stored = (f" The wait is recorded in {clean(path, 300)}, shared by the profile's processes; if it is "
                  "wrong, delete that file.") if path else ""
        return TemporaryFailure(
            f"Procore's rate limit {what}; it resets at {when} (in {math.ceil(left)} s), later than the "
            f"{self.max_wait:g} s this run may wait (--max-wait). Nothing more was sent.{stored}",
            hint="Run it again after the reset, or give a longer --max-wait.", retry_after=left, status=429)

    def after_status(self, response: httpx.Response) -> float | None:
        """Seconds to wait before sending again after this answer, or None to hand it back."""
        status = response.status_code
        if status == 429:
            self.refusals += 1
            return 0.0 if self.refusals <= MAX_RATE_LIMIT_RETRIES and self.replayable else None
        if status not in (502, 503, 504):
            return None
        if status != 503 and self.method not in IDEMPOTENT:
            return None  # a gateway error after a POST: Procore may have acted on it
        if self.failures >= self.retries or not self.replayable:
            return None
        self.failures += 1
        # After a 503 the rate limiter also holds the next request until its Retry-After is over:
        # the wait is the larger of the two (a Retry-After of 0 or in the past is no reason to hurry).
        return _backoff(self.failures - 1, self.backoff)

    def after_error(self, exc: httpx.TransportError) -> float:
        """Seconds to wait before sending again after a transport error, or raise the error that says what happened."""
        host = clean(self.request.url.host, 200)
        path = shown_path(self.request.url)
        reason = clean(str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__, 200)
        not_sent = isinstance(exc, NOT_SENT_ERRORS)
        may_retry = self.replayable and (not_sent or self.method in IDEMPOTENT)
        if may_retry and self.failures < self.retries:
            self.failures += 1
            return _backoff(self.failures - 1, self.backoff)
        if not_sent:
            raise NotSent(f"Cannot reach {host} ({reason}); nothing was sent.",
                          hint="Check the network (and any proxy settings), then run it again.") from None
        if self.method in IDEMPOTENT:
            raise AnswerLost(f"{self.method} {path} failed {self.failures + 1} times: {reason}.",
                             hint="Procore or the network is having trouble: run it again later.") from None
        raise AnswerLost(
            f"The {self.method} {path} reached {host} but its answer was lost ({reason}): Procore may have "
            f"applied it, so it was not sent again.",
            hint="Check whether it was applied (e.g. list the records) before sending it again.") from None


class _Guard:
    """What both transports check before anything is sent."""

    def __init__(self, api_url: str) -> None:
        self.api = httpx.URL(api_url)
        self.origin = _origin(self.api)

    def check(self, request: httpx.Request) -> None:
        if _origin(request.url) != self.origin:
            raise InvalidValue(
                f"Refusing to send the profile's token to {clean(request.url.scheme, 20)}://"
                f"{clean(request.url.netloc.decode('ascii', 'replace'), 200)}: the profile's API is "
                f"{clean(str(self.api), 200)}, and a request with its token goes nowhere else.",
                hint="Give a path (like /rest/v1.0/projects) or a URL on the profile's own API host.")


class PacingTransport(httpx.BaseTransport):
    """An httpx transport that paces requests by Procore's rate-limit headers and retries what is
    safe to retry, around another transport (an `httpx.HTTPTransport` by default)."""

    def __init__(self, api_url: str, limiter: RateLimiter | None = None, *, inner: httpx.BaseTransport | None = None,
                 max_wait: float = DEFAULT_MAX_WAIT, retries: int = DEFAULT_RETRIES,
                 backoff: float = DEFAULT_BACKOFF, sleep: Callable[[float], None] = time.sleep) -> None:
        self.guard = _Guard(api_url)
        self.limiter = limiter or RateLimiter()
        self.inner = inner or httpx.HTTPTransport(proxy=_proxy_for(api_url))
        self.max_wait = max_wait
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.guard.check(request)
        attempts = _Attempts(request, self.retries, self.backoff, self.max_wait)
        while True:
            try:
                self.limiter.acquire(self.max_wait)
            except RateLimitExceeded as exc:
                raise attempts.limit_error(exc, self.limiter) from None
            try:
                response = self.inner.handle_request(request)
            except httpx.TransportError as exc:
                if isinstance(exc, NOT_SENT_ERRORS):
                    self.limiter.cancel()
                else:
                    self.limiter.answered(None, None)
                self._sleep(attempts.after_error(exc))
                continue
            except BaseException:
                self.limiter.answered(None, None)
                raise
            self.limiter.answered(response.status_code, response.headers)
            wait = attempts.after_status(response)
            if wait is None:
                return response
            response.close()
            if wait:
                self._sleep(wait)

    def close(self) -> None:
        self.inner.close()


class AsyncPacingTransport(httpx.AsyncBaseTransport):
    """`PacingTransport` for `httpx.AsyncClient`."""

    def __init__(self, api_url: str, limiter: RateLimiter | None = None, *,
                 inner: httpx.AsyncBaseTransport | None = None, max_wait: float = DEFAULT_MAX_WAIT,
                 retries: int = DEFAULT_RETRIES, backoff: float = DEFAULT_BACKOFF) -> None:
        self.guard = _Guard(api_url)
        self.limiter = limiter or RateLimiter()
        self.inner = inner or httpx.AsyncHTTPTransport(proxy=_proxy_for(api_url))
        self.max_wait = max_wait
        self.retries = retries
        self.backoff = backoff

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        import anyio  # httpx's own dependency; its sleep runs on asyncio and trio alike

        self.guard.check(request)
        attempts = _Attempts(request, self.retries, self.backoff, self.max_wait)
        while True:
            try:
                await self.limiter.acquire_async(self.max_wait, anyio.sleep)
            except RateLimitExceeded as exc:
                raise attempts.limit_error(exc, self.limiter) from None
            try:
                response = await self.inner.handle_async_request(request)
            except httpx.TransportError as exc:
                if isinstance(exc, NOT_SENT_ERRORS):
                    self.limiter.cancel()
                else:
                    self.limiter.answered(None, None)
                await anyio.sleep(attempts.after_error(exc))
                continue
            except BaseException:
                self.limiter.answered(None, None)
                raise
            self.limiter.answered(response.status_code, response.headers)
            wait = attempts.after_status(response)
            if wait is None:
                return response
            await response.aclose()
            if wait:
                await anyio.sleep(wait)

    async def aclose(self) -> None:
        await self.inner.aclose()


# -- answers -------------------------------------------------------------------------------

def error_text(body: bytes) -> str:
    """Procore's error text from an error answer's body (JSON `error_description`, `error`,
    `errors`, `message`; else the start of the text), cleaned and capped; '' when there is none."""
    raw = body[:65536].decode("utf-8", "replace")
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        obj = None
    parts: list[str] = []
    if isinstance(obj, dict):
        for key in ("error_description", "message", "error", "errors", "reason"):
            value = obj.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value.get("description") or json.dumps(value)
            elif isinstance(value, list):
                value = "; ".join(str(v) for v in value[:5])
            if isinstance(value, (str, int, float)) and str(value).strip() and str(value) not in parts:
                parts.append(str(value))
            if len(parts) == 2:
                break
    elif raw.strip() and not raw.lstrip().startswith("<"):
        parts.append(raw.strip())
    return clean(": ".join(parts), DESCRIPTION_LIMIT) if parts else ""


def api_error(response: httpx.Response, body: bytes, *, relogin: str | None = None) -> ProcoreSetupError:
    """The error for an answer with an error status: what the CLI exits with, what paginate() raises.
    Its `answer` is the body (capped) and `content_type` the answer's, for a caller that shows them."""
    err = _api_error(response, body, relogin=relogin)
    err.answer = body  # type: ignore[attr-defined]
    err.content_type = response.headers.get("content-type", "")  # type: ignore[attr-defined]
    return err


def _api_error(response: httpx.Response, body: bytes, *, relogin: str | None = None) -> ProcoreSetupError:
    status = response.status_code
    method = response.request.method.upper()
    path = shown_path(response.request.url)
    reason = clean(response.reason_phrase or "", 60)
    said = error_text(body)
    message = f"Procore answered {status} {reason} to {method} {path}" + (f": {said}" if said else "") + "."
    if status == 401:
        return ReauthRequired(message.rstrip(".") + " (after one refresh of the token).",
                              hint=f"Log in again with: {relogin}" if relogin else "Log in again.")
    if status == 429:
        left = retry_after(response.headers, time.time())
        return TemporaryFailure(message.rstrip(".") + " (the rate limit, again and again): run it again later.",
                                retry_after=left, status=status)
    if status >= 500:
        if method not in IDEMPOTENT and status != 503:
            message = message.rstrip(".") + " (Procore may have applied it anyway, so it was not sent again)."
        return ServerError(message, status=status)
    if status >= 400:
        return APIRequestRefused(message, status=status)
    if 300 <= status < 400:
        location = response.headers.get("location", "")
        try:
            where = response.request.url.join(location[:2000]) if location else None
        except (httpx.InvalidURL, ValueError):
            where = None
        to = f" to {clean(where.host, 200)}" if where is not None and where.host else ""
        return UnexpectedResponse(
            message.rstrip(".") + f" (a redirect{to}, not followed: the token goes nowhere but the profile's API).",
            hint="Use the path the API documents; a redirect from it is Procore's (or a proxy's) doing.",
            status=status)
    return UnexpectedResponse(message, status=status)


def body_error(exc: Exception, request: httpx.Request) -> ProcoreSetupError:
    """The error for an answer whose body broke off (or could not be decoded) after its headers came."""
    what = f"{request.method.upper()} {shown_path(request.url)}"
    reason = clean(str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__, 200)
    if isinstance(exc, httpx.DecodingError):
        return UnexpectedResponse(f"The answer to {what} could not be decoded ({reason}).")
    applied = "" if request.method.upper() in IDEMPOTENT else " Procore may have applied it; it was not sent again."
    return AnswerLost(f"The answer to {what} broke off ({reason}).{applied}")


def protocol_error(exc: httpx.RemoteProtocolError, request: httpx.Request) -> ProcoreSetupError:
    """The error for an answer httpx refuses to read at all (a redirect whose Location is not a URL)."""
    reason = clean(str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__, 200)
    return UnexpectedResponse(f"The answer to {request.method.upper()} {shown_path(request.url)} could not be read "
                              f"({reason}); nothing was followed.",
                              hint="This is the server's doing (or a proxy's); run it again later.")


def read_capped(chunks: Iterator[bytes], limit: int, what: str, request: httpx.Request | None = None) -> bytes:
    """The whole body, at most `limit` bytes of it; a body that breaks off raises `AnswerLost`
    (or, without `request`, httpx's own error)."""
    out = bytearray()
    try:
        for chunk in chunks:
            out += chunk
            if len(out) > limit:
                raise UnexpectedResponse(f"Procore answered more than {limit >> 20} MiB for {what}.",
                                         hint="Ask for smaller pages (per_page).")
    except (httpx.TransportError, httpx.DecodingError) as exc:
        if request is None:
            raise
        raise body_error(exc, request) from None
    return bytes(out)


# -- pagination (the plan shared by both clients) ------------------------------------------------

_JSON_SPACE = " \t\n\r"


class _TooManyItems(Exception):
    pass


def _array_items(text: str, cap: int) -> list[Any]:
    """A JSON array's items, decoded one at a time (what json.loads accepts, the same errors), and
    no more than `cap` of them: parsed JSON takes many times its bytes, so the count is checked
    before, not after, the whole page is in memory."""
    decode = json.JSONDecoder().raw_decode
    n = len(text)

    def skip(i: int) -> int:
        while i < n and text[i] in _JSON_SPACE:
            i += 1
        return i

    i = skip(skip(0) + 1)  # past the "["
    out: list[Any] = []
    if text[i:i + 1] == "]":
        i += 1
    else:
        while True:
            item, i = decode(text, i)
            out.append(item)
            if len(out) > cap:
                raise _TooManyItems
            i = skip(i)
            if text[i:i + 1] == ",":
                i = skip(i + 1)
            elif text[i:i + 1] == "]":
                i += 1
                break
            else:
                raise ValueError("expected , or ] in an array")
    if skip(i) != n:
        raise ValueError("extra data after the array")
    return out


class _Pages:
    """One paginate() call: the page size to ask for, the items of each page, what comes next."""

    def __init__(self, path: str, params: Mapping[str, Any] | None) -> None:
        self.path = path
        url_path = httpx.URL(path).path
        self.v2 = "/rest/v2" in url_path
        self.params: dict[str, Any] = dict(params or {})
        query = httpx.URL(path).params
        if "per_page" not in self.params and "per_page" not in query:
            self.params["per_page"] = V2_PER_PAGE if self.v2 else V1_PER_PAGE
        per_page = self.params.get("per_page", query.get("per_page"))
        self.per_page = int(per_page) if str(per_page).isdigit() else None
        page = self.params.get("page", query.get("page", 1))
        self.first = int(page) if str(page).isdigit() else 1
        # The items of the page before, by id (or by a digest of their JSON, for items without one): a
        # record added (or removed) while the pages are read shifts the others by a few places, into
        # the next page, never further.
        self._before: dict[Any, list[Any]] = {}
        self._last_body: bytes | None = None  # the digest of the page before's bytes
        self.repeated = False  # this page's bytes are the page before's: the server ignores `page`
        self.single = False  # the first answer was not a list: one item, no pages
        self._followed: set[str] = set()

    def page_params(self, page: int) -> dict[str, Any]:
        return {**self.params, "page": page}

    def items(self, body: bytes, url: httpx.URL) -> list[Any]:
        digest = hashlib.sha256(body).digest()
        self.repeated, self._last_body = digest == self._last_body, digest
        cap = max(MAX_ITEMS_PER_PER_PAGE * (self.per_page or 0), MIN_ITEMS_CAP)
        try:
            text = body.decode(json.detect_encoding(body), "surrogatepass")
            if text.lstrip(_JSON_SPACE)[:1] == "[":
                obj: Any = _array_items(text, cap)  # item by item: a page of a million `{}` stops at the cap
            else:
                obj = json.loads(text)
        except _TooManyItems:
            raise UnexpectedResponse(
                f"Procore's answer to GET {shown_path(url)} holds more than the {cap} items a page may hold "
                f"(4 x per_page, at least {MIN_ITEMS_CAP}): not read further.",
                hint="Ask for smaller pages (per_page).") from None
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
            raise UnexpectedResponse(f"Procore's answer to GET {shown_path(url)} is not JSON that can be read "
                                     "(not JSON, or nested too deeply).",
                                     hint="Check the path: --paginate needs a JSON list.") from None
        if isinstance(obj, dict) and isinstance(obj.get("data"), list):
            obj = obj["data"]
        if not isinstance(obj, list):
            self.single = True
            return [obj]
        if len(obj) > cap:
            raise UnexpectedResponse(
                f"Procore's answer to GET {shown_path(url)} holds {len(obj)} items, more than the {cap} a page "
                f"may hold (4 x per_page, at least {MIN_ITEMS_CAP}): not read further.",
                hint="Ask for smaller pages (per_page).")
        return obj

    @staticmethod
    def _key(item: Any) -> Any:
        """Where an item is looked for among the page before's: its id, else a digest of its JSON."""
        key = item.get("id") if isinstance(item, dict) else None
        if isinstance(key, (int, str)) and not isinstance(key, bool):
            return (type(key), key)
        text = json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()

    def fresh(self, items: list[Any]) -> Iterator[Any]:
        """A page's items less those that repeat an item of the page before (a record added while the
        pages were read shifts the others into the next page). Items are compared whole (same id is
        not enough), and never within a page: two equal-id items of one page (a person once per role)
        are both yielded. Only the page before is remembered: memory stays flat for any size."""
        before = self._before
        self._before = {}
        for item in items:
            key = self._key(item)
            self._before.setdefault(key, []).append(item)
            if any(item == old for old in before.get(key, ())):
                continue
            yield item

    def take(self, items: list[Any]) -> list[Any] | None:
        """A later page's new items; None when it shows the list has ended: an empty page, one whose
        bytes are the page before's, or one that only repeats the page before (a server that would
        otherwise be followed forever)."""
        if not items or self.repeated:
            return None
        fresh = list(self.fresh(items))
        return fresh or None

    def follow(self, link: str | None, response: httpx.Response) -> str | None:
        """`link` if it was not followed before in this run (a `next` that loops back ends the list).
        A `next` on another host is the server's fault (`UnexpectedResponse`): the token is not sent there."""
        if not link or link in self._followed:
            return None
        here = response.request.url
        try:
            there = here.join(link)
        except (httpx.InvalidURL, ValueError):
            raise UnexpectedResponse(f"Procore's answer to GET {shown_path(here)} names a next page that is not "
                                     "a URL.") from None
        if _origin(there) != _origin(here):
            raise UnexpectedResponse(
                f"Procore's answer to GET {shown_path(here)} names its next page on another host "
                f"({clean(there.scheme, 20)}://{clean(there.netloc.decode('ascii', 'replace'), 200)}): not "
                "followed, the token is sent nowhere but the profile's API. The items before it were printed.",
                hint="This is the server's doing (or a proxy's); run it again later or report it to Procore.")
        self._followed.add(link)
        return link

    def last_page(self, response: httpx.Response) -> int | None:
        """The number of the last page: from `Total` and `Per-Page`, else from the `last` link
        when it names a page of this same list; None when neither says."""
        headers = response.headers
        total, per = headers.get("total", ""), headers.get("per-page", "")
        if total.strip().isdigit() and per.strip().isdigit() and int(per) > 0:
            return max(self.first, math.ceil(int(total) / int(per)))
        try:
            last = response.links.get("last", {}).get("url")
            if not last:
                return None
            url = response.request.url.join(last)
            page = url.params.get("page", "")
        except Exception:  # noqa: BLE001 - a Link header httpx cannot parse: follow `next` instead
            return None
        if url.path != response.request.url.path or not page.isdigit():
            return None
        per_page = url.params.get("per_page")
        if per_page is not None and self.per_page is not None and per_page != str(self.per_page):
            return None  # the server counts in other pages than the ones this run asks for
        return max(self.first, int(page))

    @staticmethod
    def next_link(response: httpx.Response) -> str | None:
        try:
            return response.links.get("next", {}).get("url") or None
        except Exception:  # noqa: BLE001 - a Link header httpx cannot parse: no next page
            return None

    def guess_next(self, count: int) -> bool:
        """No Link and no Total on a v2 list: a full page may be followed by another. A v1 list without
        them is one page (Procore's docs: an endpoint that does not paginate sends no such headers)."""
        return self.v2 and self.per_page is not None and count >= self.per_page > 0


def _store_file_state(auth: ProcoreAuth, profile: str) -> FileState | None:
    """The rate-limit budget shared by the profile's processes: a file beside the credentials file.

    For a shared store (PostgreSQL, Redis) the processes of this host share a file in the user's
    cache directory, named by a hash of the store's address; sharing it between hosts, through the
    store itself, is for later."""
    kind, where = auth.store.address.locator()
    if kind == "config":
        return FileState(where + ".ratelimit", profile)
    import hashlib

    try:
        from platformdirs import user_cache_dir

        directory = user_cache_dir("procore-setup")
        filesystem.make_private_dirs(directory)  # owner-only at every level made, whatever the umask
    except OSError:
        return None  # no cache directory: this process paces alone
    name = "ratelimit-" + hashlib.sha256(where.encode("utf-8")).hexdigest()[:32] + ".json"
    return FileState(os.path.join(directory, name), profile)


def _setup(profile: str | None, config: str | os.PathLike[str] | None, store: str | Store | None,
           passphrase_command: str | None) -> tuple[ProcoreAuth, str, str]:
    auth = ProcoreAuth(profile, config, store=store, passphrase_command=passphrase_command)
    try:
        prof = auth.store.load().get(auth.profile)
    except BaseException:
        auth.close()
        raise
    return auth, prof.name, prof.api_url.rstrip("/")


def _timeout() -> httpx.Timeout:
    from . import settings
    from .oauth import DEFAULT_TIMEOUT

    seconds = settings.http_timeout()
    return DEFAULT_TIMEOUT if seconds is None else httpx.Timeout(seconds, connect=min(seconds, 5.0))


def _headers(company_id: int | str | None) -> dict[str, str]:
    from .oauth import USER_AGENT

    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if company_id is not None:
        headers["Procore-Company-Id"] = str(company_id)
    return headers


class _ProfileClient:
    """What `ProcoreClient` and `AsyncProcoreClient` share: the profile, its auth and rate limiter,
    and the keyword arguments of their httpx client."""

    profile_name: str
    api_url: str
    max_in_flight: int
    page_retries: int
    limiter: RateLimiter
    procore_auth: ProcoreAuth

    def _prepare(self, profile: str | None, config: str | os.PathLike[str] | None, store: str | Store | None,
                 passphrase_command: str | None, max_in_flight: int, retries: int) -> None:
        auth, name, api_url = _setup(profile, config, store, passphrase_command)
        self.procore_auth = auth
        self.profile_name = name
        self.api_url = api_url
        self.max_in_flight = max(1, max_in_flight)
        self.page_retries = max(0, retries)
        try:
            self.limiter = RateLimiter(_store_file_state(auth, name))
        except BaseException:
            auth.close()
            raise

    def _client_kwargs(self, company_id: int | str | None) -> dict[str, Any]:
        """The httpx client's arguments this class sets (the caller's own may not repeat them)."""
        return dict(base_url=self.api_url, auth=self.procore_auth, trust_env=False,
                    headers=_headers(company_id), follow_redirects=False)

    def relogin_command(self) -> str:
        from .hints import reauth_command

        return reauth_command(self.procore_auth.store, self.profile_name)


class ProcoreClient(_ProfileClient, httpx.Client):
    """An `httpx.Client` for a procore-setup profile's Procore API: base URL, token, company
    header, rate-limit pacing and safe retries. A context manager, like any httpx.Client.

    `profile`, `config`, `store`: as `ProcoreAuth`. `company_id`: the `Procore-Company-Id` sent
    (default: the profile's saved company). `max_wait`: seconds a request may wait for the rate
    limit before `TemporaryFailure` is raised. Other keyword arguments go to `httpx.Client`.
    """

    def __init__(self, profile: str | None = None, *, config: str | os.PathLike[str] | None = None,
                 store: str | Store | None = None, company_id: int | str | None = None,
                 max_wait: float = DEFAULT_MAX_WAIT, max_in_flight: int = MAX_IN_FLIGHT,
                 retries: int = DEFAULT_RETRIES, passphrase_command: str | None = None, **kwargs: Any) -> None:
        self._prepare(profile, config, store, passphrase_command, max_in_flight, retries)
        try:
            transport = PacingTransport(self.api_url, self.limiter, max_wait=max_wait, retries=retries)
            kwargs.setdefault("timeout", _timeout())
            super().__init__(transport=transport, **self._client_kwargs(company_id), **kwargs)
        except BaseException:
            self.procore_auth.close()
            raise

    def __repr__(self) -> str:
        return f"ProcoreClient(profile={self.profile_name!r}, api_url={self.api_url!r})"

    def close(self) -> None:
        """Close the connections, the auth's store's too."""
        try:
            super().close()
        finally:
            self.procore_auth.close()

    def __exit__(self, *exc: Any) -> None:
        try:
            super().__exit__(*exc)
        finally:
            self.procore_auth.close()

    def _page(self, url: str, params: Mapping[str, Any] | None) -> tuple[bytes, httpx.Response]:
        """One page, read whole; a body that breaks off is asked for again (a GET: safe), a bounded
        number of times. Any status from 300 up raises (redirects are not followed)."""
        failures = 0
        while True:
            request = self.build_request("GET", url, params=params)
            try:
                response = self.send(request, stream=True)
            except httpx.RemoteProtocolError as exc:
                raise protocol_error(exc, request) from None
            try:
                what = f"a page of GET {shown_path(response.request.url)}"
                delay = -1.0
                try:
                    body = read_capped(response.iter_bytes(), MAX_PAGE_BYTES, what)
                except httpx.DecodingError as exc:
                    raise body_error(exc, response.request) from None
                except httpx.TransportError as exc:
                    if failures >= self.page_retries:
                        raise body_error(exc, response.request) from None
                    failures += 1
                    delay = _backoff(failures - 1, DEFAULT_BACKOFF)
            finally:
                response.close()
            if delay < 0:
                break
            time.sleep(delay)
        if response.status_code >= 300:
            raise api_error(response, body, relogin=self.relogin_command())
        return body, response

    def paginate(self, path: str, params: Mapping[str, Any] | None = None, *,
                 max_in_flight: int | None = None) -> Iterator[Any]:
        """Every item of every page of a list, in order, each once, lazily.

        v1 lists (a JSON array per page, `Total`/`Per-Page`/`Link` headers) and v2 lists (`{"data":
        [...]}`). Asks for big pages (per_page 1000 on v1, 100 on v2, unless `params` sets it) and,
        once `Total` is known, fetches the remaining pages side by side (`max_in_flight`, default 4),
        holding only those in memory. Raises a `ProcoreSetupError` on an error answer.
        """
        pages = _Pages(path, params)
        width = max(1, max_in_flight or self.max_in_flight)
        body, response = self._page(path, pages.params)
        items = pages.items(body, response.request.url)
        del body
        yield from pages.fresh(items)
        if pages.single:
            return
        last = pages.last_page(response)
        if last is not None and last > pages.first:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=width, thread_name_prefix="procore-page") as pool:
                todo = iter(range(pages.first + 1, last + 1))
                window: deque[Any] = deque()
                for page in todo:
                    window.append(pool.submit(self._page, path, pages.page_params(page)))
                    if len(window) >= width:
                        break
                try:
                    while window:
                        body, response = window.popleft().result()
                        items = pages.items(body, response.request.url)
                        del body
                        got = pages.take(items)
                        if got is None:
                            return  # fewer pages than Total said
                        # the next page only now: a list that just ended sends nothing more
                        nxt = next(todo, None)
                        if nxt is not None:
                            window.append(pool.submit(self._page, path, pages.page_params(nxt)))
                        yield from got
                finally:
                    for future in window:
                        future.cancel()
        link = pages.follow(pages.next_link(response), response)
        page = last if last is not None else pages.first
        while True:
            if link:
                body, response = self._page(link, None)
            elif last is None and pages.guess_next(len(items)):
                page += 1
                body, response = self._page(path, pages.page_params(page))
            else:
                return
            items = pages.items(body, response.request.url)
            del body
            got = pages.take(items)
            if got is None:
                return
            yield from got
            link = pages.follow(pages.next_link(response), response)


class AsyncProcoreClient(_ProfileClient, httpx.AsyncClient):
    """`ProcoreClient` for asyncio: an `httpx.AsyncClient` (`async with`), `async for item in
    client.paginate(...)`. The token refresh runs in a worker thread (it may wait for the lock)."""

    def __init__(self, profile: str | None = None, *, config: str | os.PathLike[str] | None = None,
                 store: str | Store | None = None, company_id: int | str | None = None,
                 max_wait: float = DEFAULT_MAX_WAIT, max_in_flight: int = MAX_IN_FLIGHT,
                 retries: int = DEFAULT_RETRIES, passphrase_command: str | None = None, **kwargs: Any) -> None:
        self._prepare(profile, config, store, passphrase_command, max_in_flight, retries)
        try:
            transport = AsyncPacingTransport(self.api_url, self.limiter, max_wait=max_wait, retries=retries)
            kwargs.setdefault("timeout", _timeout())
            super().__init__(transport=transport, **self._client_kwargs(company_id), **kwargs)
        except BaseException:
            self.procore_auth.close()
            raise

    def __repr__(self) -> str:
        return f"AsyncProcoreClient(profile={self.profile_name!r}, api_url={self.api_url!r})"

    async def aclose(self) -> None:
        """Close the connections, the auth's store's too."""
        try:
            await super().aclose()
        finally:
            self.procore_auth.close()

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await super().__aexit__(*exc)
        finally:
            self.procore_auth.close()

    async def _page(self, url: str, params: Mapping[str, Any] | None) -> tuple[bytes, httpx.Response]:
        """`ProcoreClient._page` for asyncio."""
        import anyio

        failures = 0
        while True:
            request = self.build_request("GET", url, params=params)
            try:
                response = await self.send(request, stream=True)
            except httpx.RemoteProtocolError as exc:
                raise protocol_error(exc, request) from None
            try:
                out = bytearray()
                delay = -1.0
                try:
                    async for chunk in response.aiter_bytes():
                        out += chunk
                        if len(out) > MAX_PAGE_BYTES:
                            raise UnexpectedResponse(
                                f"Procore answered more than {MAX_PAGE_BYTES >> 20} MiB for a page of GET "
                                f"{shown_path(response.request.url)}.", hint="Ask for smaller pages (per_page).")
                except httpx.DecodingError as exc:
                    raise body_error(exc, response.request) from None
                except httpx.TransportError as exc:
                    if failures >= self.page_retries:
                        raise body_error(exc, response.request) from None
                    failures += 1
                    delay = _backoff(failures - 1, DEFAULT_BACKOFF)
            finally:
                await response.aclose()
            if delay < 0:
                break
            await anyio.sleep(delay)
        body = bytes(out)
        if response.status_code >= 300:
            raise api_error(response, body, relogin=self.relogin_command())
        return body, response

    async def paginate(self, path: str, params: Mapping[str, Any] | None = None, *,
                       max_in_flight: int | None = None) -> AsyncIterator[Any]:
        """`ProcoreClient.paginate` for asyncio: `async for item in client.paginate(path)`. (Plain
        requests of this client run on trio too; paginate's pages side by side are asyncio tasks.)"""
        import asyncio  # here: the sync client and the CLI never pay for it

        pages = _Pages(path, params)
        width = max(1, max_in_flight or self.max_in_flight)
        body, response = await self._page(path, pages.params)
        items = pages.items(body, response.request.url)
        for item in pages.fresh(items):
            yield item
        if pages.single:
            return
        last = pages.last_page(response)
        if last is not None and last > pages.first:
            todo = iter(range(pages.first + 1, last + 1))
            window: deque[asyncio.Task[tuple[bytes, httpx.Response]]] = deque()
            for page in todo:
                window.append(asyncio.ensure_future(self._page(path, pages.page_params(page))))
                if len(window) >= width:
                    break
            try:
                while window:
                    body, response = await window.popleft()
                    items = pages.items(body, response.request.url)
                    got = pages.take(items)
                    if got is None:
                        return  # fewer pages than Total said
                    nxt = next(todo, None)  # the next page only now, as in ProcoreClient.paginate
                    if nxt is not None:
                        window.append(asyncio.ensure_future(self._page(path, pages.page_params(nxt))))
                    for item in got:
                        yield item
            finally:
                for task in window:
                    task.cancel()
        link = pages.follow(pages.next_link(response), response)
        page = last if last is not None else pages.first
        while True:
            if link:
                body, response = await self._page(link, None)
            elif last is None and pages.guess_next(len(items)):
                page += 1
                body, response = await self._page(path, pages.page_params(page))
            else:
                return
            items = pages.items(body, response.request.url)
            got = pages.take(items)
            if got is None:
                return
            for item in got:
                yield item
            link = pages.follow(pages.next_link(response), response)
