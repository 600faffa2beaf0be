"""An httpx.Auth that scripts plug into their own httpx clients.

    import httpx
    from procore_setup import ProcoreAuth

    with ProcoreAuth() as auth, httpx.Client(base_url="https://api.procore.com", auth=auth) as api:
        me = api.get("/rest/v1.0/me").json()

It adds the bearer token (and the saved `Procore-Company-Id`, unless the request
sets one), refreshes before expiry under the same lock as the CLI, and on a 401
refreshes once and retries once. One `ProcoreAuth` may serve many threads at once.

It holds the store open (a shared store keeps a connection): `auth.close()`, or use it as a
context manager (`with ProcoreAuth() as auth:`, `async with` too), when done.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, AsyncGenerator, Generator, Self

import httpx

from .stores import open_store
from .refresh import ensure_fresh

if TYPE_CHECKING:
    from .stores.base import Store


class ProcoreAuth(httpx.Auth):
    """Bearer auth from a procore-setup profile, for `httpx.Client` and `httpx.AsyncClient`."""

    def __init__(self, profile: str | None = None, config: str | os.PathLike[str] | None = None, *,
                 min_valid: float = 120, company_header: bool = True, passphrase_command: str | None = None,
                 store: str | Store | None = None) -> None:
        """`store`: a shared store's URL (postgresql://, redis://) or a file's path (or a store already
        opened); else `config`, else $PROCORE_SETUP_STORE / $PROCORE_SETUP_CONFIG, else the user's
        credentials file. `passphrase_command`: for an encrypted store, tried after
        $PROCORE_SETUP_PASSPHRASE and before the store's own (default:
        $PROCORE_SETUP_PASSPHRASE_COMMAND; "" for none)."""
        from . import settings

        self.unlock = settings.unlock_from(passphrase_command)  # never a prompt: a script has no person
        if store is not None and not isinstance(store, (str, os.PathLike)):
            self.store: Store = store  # opened by the caller (the CLI), with its password and settings
            self._owns_store = False  # the caller's to close
        else:
            self.store = open_store(config, store=store)
            self._owns_store = True
        try:
            self.profile = settings.profile(profile)
            self.http_timeout = settings.http_timeout()
        except BaseException:
            self.close()
            raise
        self.min_valid = min_valid
        self.company_header = company_header

    def __repr__(self) -> str:
        return f"ProcoreAuth(profile={self.profile!r}, store={self.store.address.describe()!r})"

    def close(self) -> None:
        """Close the store's connections (a store handed in already opened is its owner's to close).
        Idempotent; a request made after it connects again."""
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def _fresh(self, reject: str | None = None) -> tuple[str, int | None]:
        result = ensure_fresh(self.store, self.profile, min_valid=self.min_valid, reject=reject, fallback_valid=30,
                              http_timeout=self.http_timeout, unlock=self.unlock)
        return result.access_token, result.profile.company_id

    def _prepare(self, request: httpx.Request, token: str, company_id: int | None) -> None:
        request.headers["Authorization"] = f"Bearer {token}"
        if self.company_header and company_id and "Procore-Company-Id" not in request.headers:
            request.headers["Procore-Company-Id"] = str(company_id)

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token, company = self._fresh()
        self._prepare(request, token, company)
        response = yield request
        if response.status_code == 401:
            token, company = self._fresh(reject=token)
            self._prepare(request, token, company)
            yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        import anyio.to_thread

        # The refresh blocks on a file lock and a sync HTTP call: keep it off the event loop.
        token, company = await anyio.to_thread.run_sync(self._fresh)
        self._prepare(request, token, company)
        response = yield request
        if response.status_code == 401:
            token, company = await anyio.to_thread.run_sync(self._fresh, token)
            self._prepare(request, token, company)
            yield request
