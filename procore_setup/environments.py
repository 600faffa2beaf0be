"""The known Procore environments: data, no logic beyond lookup."""

from __future__ import annotations

from typing import NamedTuple

OOB_REDIRECT_URI = "urn:ietf:wg:oauth:2.0:oob"


class Environment(NamedTuple):
    id: str
    label: str
    login_url: str
    api_url: str
    note: str


ENVIRONMENTS: dict[str, Environment] = {
    e.id: e
    for e in (
        Environment(
            "production",
            "Production",
            "https://login.procore.com",
            "https://api.procore.com",
            "Live company data. Also used by On-Demand Sandboxes (they differ only by company id).",
        ),
        Environment(
            "sandbox",
            "Developer sandbox",
            "https://login-sandbox.procore.com",
            "https://sandbox.procore.com",
            "Uses the sandbox client id and secret from the Developer Portal.",
        ),
        Environment(
            "monthly-sandbox",
            "Monthly sandbox",
            "https://login-sandbox-monthly.procore.com",
            "https://api-monthly.procore.com",
            "Refreshed monthly from production; uses the production client id and secret.",
        ),
        Environment(
            "federal",
            "Procore for Government",
            "https://login.procoregov.com",
            "https://api.procoregov.com",
            "A separate app registration; no sandboxes.",
        ),
        Environment(
            "custom",
            "Custom hosts",
            "",
            "",
            "Any login and API base URL: proxies, new hosts, test servers.",
        ),
    )
}


def get(env_id: str) -> Environment:
    """The environment called `env_id`, or KeyError."""
    return ENVIRONMENTS[env_id]
