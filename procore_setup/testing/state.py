"""What the fake Procore knows: its clients, codes, token pairs, counters, rate window and projects.

No HTTP here: `routes.py` reads requests and writes answers, and asks this state to issue, use,
rotate and revoke. Every operation takes the one re-entrant lock (`_lock`), so the server's
request threads and the test that drives the fake see one consistent state.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

__all__ = [
    "COUNTER_KEYS",
    "DEFAULT_COMPANIES",
    "DEFAULT_USER",
    "FakeState",
    "OOB_REDIRECT_URI",
    "SERVICE_ACCOUNT_CLIENT_ID",
    "SERVICE_ACCOUNT_CLIENT_SECRET",
    "SERVICE_ACCOUNT_USER",
    "TokenPair",
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


@dataclass
class Code:
    code: str
    redirect_uri: str
    issued_at: float
    used: bool = False
    revoked: bool = False


@dataclass
class TokenPair:
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

    def body(self) -> dict[str, Any]:
        """Doorkeeper's token answer for this pair."""
        if self.service_account:
            # the client-credentials answer: no refresh token, and "Bearer" capitalised
            return {"access_token": self.access_token, "token_type": "Bearer", "expires_in": self.life,
                    "created_at": self.created_at}
        return {
            "access_token": self.access_token,
            "token_type": "bearer",
            "expires_in": self.life,
            "refresh_token": self.refresh_token,
            "scope": "",
            "created_at": self.created_at,
        }


class FakeState:
    """The fake's data and the rules Procore's login server keeps for it (single-use codes,
    single-use rotating refresh tokens, a fixed rate-limit window), behind one lock."""

    def __init__(
        self,
        client_id: str = "demo-client-id",
        client_secret: str = "demo-client-secret",
        access_token_life: int = 5400,
        code_life: int = 600,
        clock: Callable[[], float] = time.time,
        user: Mapping[str, Any] | None = None,
        companies: Sequence[Mapping[str, Any]] | None = None,
        per_page_default: int = 100,
        strict_replay: bool = False,
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
        self.rate_limit = int(rate_limit)
        self.rate_window = max(int(rate_window), 1)
        self.latency = float(latency)
        self.project_count = int(project_count)
        self._window: tuple[int, int] = (0, 0)  # (window start, requests counted in it)
        self._api_in_flight = 0
        self._created: dict[int, list[dict[str, Any]]] = {}  # company id -> projects made by POST
        self._project_seq = 0

        self._lock = threading.RLock()
        self._codes: dict[str, Code] = {}
        self._access: dict[str, TokenPair] = {}
        self._refresh: dict[str, TokenPair] = {}
        self._grant_seq = 0
        self._counts: Counter[str] = Counter({k: 0 for k in COUNTER_KEYS})

    # -- test controls ------------------------------------------------------------

    def issue_code(self, redirect_uri: str = OOB_REDIRECT_URI) -> str:
        """A fresh single-use authorization code, as if the user had just logged in."""
        with self._lock:
            return self._new_code(redirect_uri)

    def issue_tokens(self) -> dict[str, Any]:
        """A fresh grant (token response body) without going through a code exchange."""
        with self._lock:
            return self._new_pair(self._next_grant()).body()

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
            return self.valid_access(access_token) is not None

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

    # -- what the routes ask of it ------------------------------------------------

    def count(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    def _new_code(self, redirect_uri: str) -> str:
        with self._lock:
            code = secrets.token_urlsafe(32)
            self._codes[code] = Code(code=code, redirect_uri=redirect_uri, issued_at=self.clock())
            return code

    def knows_code(self, code: str) -> bool:
        with self._lock:
            return bool(code) and code in self._codes

    def _next_grant(self) -> int:
        with self._lock:
            self._grant_seq += 1
            return self._grant_seq

    def _new_pair(self, grant_id: int) -> TokenPair:
        # (tests/conftest.py wraps this method to learn every token the fake issues)
        with self._lock:
            now = self.clock()
            pair = TokenPair(
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

    def redeem_code(self, code: str, redirect_uri: str) -> TokenPair | None:
        """The new pair for a code, used up now; None when the code is unknown, used, revoked,
        expired or was issued for another redirect URI (invalid_grant)."""
        with self._lock:
            found = self._codes.get(code)
            if (
                found is None
                or found.used
                or found.revoked
                or self.clock() >= found.issued_at + self.code_life
                or found.redirect_uri != redirect_uri
            ):
                return None
            found.used = True
            self._counts["code_ok"] += 1
            return self._new_pair(self._next_grant())

    def rotate(self, refresh_token: str) -> TokenPair | None:
        """The next pair of the refresh token's grant (the old pair used up); None when it is not
        active (invalid_grant). With `strict_replay`, a used token revokes its whole grant."""
        with self._lock:
            old = self._refresh.get(refresh_token)
            if old is None or old.refresh_state != "active":
                if old is not None and old.refresh_state == "used" and self.strict_replay:
                    self._revoke_grant(old.grant_id)  # replay looks like theft: kill the whole grant
                return None
            old.refresh_state = "used"
            old.access_revoked = True
            self._counts["refresh_ok"] += 1
            return self._new_pair(old.grant_id)

    def grant_service_account(self) -> TokenPair:
        """A new service-account token (client credentials): no refresh token."""
        with self._lock:
            self._counts["client_credentials_ok"] += 1
            pair = self._new_pair(self._next_grant())
            # No refresh token: the client's credentials get the next token.
            self._refresh.pop(pair.refresh_token, None)
            pair.refresh_state, pair.service_account = "none", True
            return pair

    def revoke_token(self, token: str) -> None:
        """Revoke the pair of an access or refresh token (Doorkeeper: unknown tokens are fine)."""
        with self._lock:
            pair = self._access.get(token) or self._refresh.get(token)
            if pair is not None:
                pair.access_revoked = True
                if pair.refresh_state == "active":
                    pair.refresh_state = "revoked"

    def valid_access(self, token: str | None) -> TokenPair | None:
        """The pair of an access token the API accepts now, else None."""
        if not token:
            return None
        with self._lock:
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

    # projects

    def company_projects(self, company_id: int) -> tuple[int, Callable[[int], dict[str, Any]]]:
        """How many projects a company has, and the i-th of them (0-based), made when asked."""
        with self._lock:
            created = list(self._created.get(company_id, []))
            made = max(self.project_count, 0)

        def item(i: int) -> dict[str, Any]:
            return _project(company_id, i) if i < made else dict(created[i - made])

        return made + len(created), item

    def create_project(self, company_id: int, name: str, number: Any) -> dict[str, Any]:
        with self._lock:
            self._project_seq += 1
            record = {"id": 9_000_000_000 + self._project_seq, "name": name, "active": True,
                      "project_number": number, "company": {"id": company_id}}
            self._created.setdefault(company_id, []).append(record)
            self._counts["projects_created"] += 1
            return record

    # the REST API's rate limit

    def api_enter(self) -> None:
        with self._lock:
            self._api_in_flight += 1
            self._counts["api_requests"] += 1
            if self._api_in_flight > self._counts["api_in_flight_max"]:
                self._counts["api_in_flight_max"] = self._api_in_flight

    def api_leave(self) -> None:
        with self._lock:
            self._api_in_flight -= 1

    def rate_state(self) -> tuple[int, int]:
        """(remaining, reset) of the current window, counting nothing."""
        with self._lock:
            now = self.clock()
            start = int(now // self.rate_window) * self.rate_window
            if self._window[0] != start:
                self._window = (start, 0)
            return max(self.rate_limit - self._window[1], 0), start + self.rate_window

    def take_rate_slot(self) -> int | None:
        """Count a /rest/ request in its window: None when allowed, else the window's reset time
        (the request counted as refused: refused requests count against the window, as at Procore)."""
        with self._lock:
            self.rate_state()
            start, used = self._window
            self._window = (start, used + 1)
            if used < self.rate_limit:
                return None
            self._counts["requests"] += 1
            self._counts["rate_limited"] += 1
            return start + self.rate_window


def _project(company_id: int, i: int) -> dict[str, Any]:
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
