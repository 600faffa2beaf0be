"""Offline test helpers: a fake Procore login + API server (`FakeProcore`) and the faults it can
inject (`Fault`), stdlib only.

Importing this package pulls in nothing heavy (no httpx, no textual).
Run `python -m procore_setup.testing` to serve a fake for testing scripts by hand.

The fake also grants client credentials to a demo service account (`SERVICE_ACCOUNT_CLIENT_ID`,
`SERVICE_ACCOUNT_CLIENT_SECRET`; per server `FakeProcore.service_account_client_id`/`_secret`),
whose token is `SERVICE_ACCOUNT_USER` on `/rest/v1.0/me` and reaches the companies
`FakeProcore.service_account_companies` (by default the first of `DEFAULT_COMPANIES`), only with
a `Procore-Company-Id` header naming one of them.
"""

from __future__ import annotations

from .server import (
    DEFAULT_COMPANIES,
    DEFAULT_USER,
    OOB_REDIRECT_URI,
    SERVICE_ACCOUNT_CLIENT_ID,
    SERVICE_ACCOUNT_CLIENT_SECRET,
    SERVICE_ACCOUNT_USER,
    FakeProcore,
    Fault,
)

__all__ = ["FakeProcore", "Fault", "OOB_REDIRECT_URI", "DEFAULT_USER", "DEFAULT_COMPANIES", "SERVICE_ACCOUNT_CLIENT_ID",
           "SERVICE_ACCOUNT_CLIENT_SECRET", "SERVICE_ACCOUNT_USER"]
