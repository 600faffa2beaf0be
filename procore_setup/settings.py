"""Settings that come from the environment, read once at the edge (the CLI, the wizard, the library).

The engine below takes them as arguments, so it never looks at os.environ itself. Standard
library only: the headless fast path reads these too.
"""

from __future__ import annotations

import os
from typing import Mapping

from .errors import env_seconds

HTTP_TIMEOUT_ENV = "PROCORE_SETUP_HTTP_TIMEOUT"
PROFILE_ENV = "PROCORE_SETUP_PROFILE"


def http_timeout(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds for each network step of a request ($PROCORE_SETUP_HTTP_TIMEOUT), None for the defaults."""
    value = env_seconds(HTTP_TIMEOUT_ENV, -1.0, 0.1, 600, environ=os.environ if environ is None else environ)
    return None if value < 0 else value


def profile(given: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The profile a run works on: the one given, else $PROCORE_SETUP_PROFILE (None: the store's default)."""
    env = os.environ if environ is None else environ
    return given or env.get(PROFILE_ENV) or None


def seconds_value(text: str) -> float | str:
    """A number of seconds from 0 to 86400, or (a str) what is wrong with it. The message never
    repeats the value: whatever was typed there may be a secret pasted into the wrong place,
    and parser errors end up in cron mail."""
    try:
        value = float(text)
    except ValueError:
        return "the value is not a number of seconds"
    if not 0 <= value <= 86400 or value != value:
        return "must be between 0 and 86400 seconds"
    return value
