"""Settings that come from the environment, read once at the edge (the CLI, the wizard, the library).

The engine below takes them as arguments, so it never looks at os.environ itself. Standard
library only: the headless fast path reads these too.
"""

from __future__ import annotations

import os
from typing import Mapping

from .errors import UsageError, env_seconds

HTTP_TIMEOUT_ENV = "PROCORE_SETUP_HTTP_TIMEOUT"
PROFILE_ENV = "PROCORE_SETUP_PROFILE"
PASSPHRASE_COMMAND_ENV = "PROCORE_SETUP_PASSPHRASE_COMMAND"


def http_timeout(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds for each network step of a request ($PROCORE_SETUP_HTTP_TIMEOUT), None for the defaults."""
    value = env_seconds(HTTP_TIMEOUT_ENV, -1.0, 0.1, 600, environ=os.environ if environ is None else environ)
    return None if value < 0 else value


def profile(given: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The profile a run works on: the one given, else $PROCORE_SETUP_PROFILE (None: the store's default)."""
    env = os.environ if environ is None else environ
    return given or env.get(PROFILE_ENV) or None


class Unlock:
    """How this run opens an encrypted store's secrets: one value, made once by the edge (the CLI
    from its arguments, the wizard, the library from its caller's) and handed down to whatever
    opens them (`passphrase.open_secrets`). It belongs to the run, not to the store.

    The passphrase comes from the first source that answers: $PROCORE_SETUP_PASSPHRASE, then
    `command` (this run's passphrase command), then the one stored in the document, the OS
    keyring, and a hidden prompt when `interactive` (stdin is a terminal).

    Frozen. A plain class with slots, not a NamedTuple: `token` imports this module, and making
    a NamedTuple class costs it about a quarter of a millisecond.
    """

    __slots__ = ("command", "interactive")
    command: str | None
    interactive: bool

    def __init__(self, command: str | None = None, interactive: bool = False) -> None:
        object.__setattr__(self, "command", command)
        object.__setattr__(self, "interactive", interactive)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("an Unlock is not changed: make another")

    def unattended(self) -> Unlock:
        """The same sources without the prompt (under a lock, no person may be waited for)."""
        return Unlock(self.command, False)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unlock) and (self.command, self.interactive) == (other.command, other.interactive)

    def __hash__(self) -> int:
        return hash((self.command, self.interactive))

    def __repr__(self) -> str:
        # A passphrase command's arguments may hold anything (`echo hunter2`): never shown.
        return f"Unlock(command={'<given>' if self.command else None}, interactive={self.interactive})"


# No passphrase command of this run's, and no prompt (the environment's passphrase, the document's
# own command and the keyring still answer): the default of engine calls given no Unlock.
UNATTENDED = Unlock()


def unlock_from(command: str | None, *, interactive: bool = False,
                environ: Mapping[str, str] | None = None) -> Unlock:
    """This run's Unlock: `command` (--passphrase-command, a library caller's argument; "" for
    none), else $PROCORE_SETUP_PASSPHRASE_COMMAND (set but empty: a usage error)."""
    if command is None:
        env = os.environ if environ is None else environ
        command = env.get(PASSPHRASE_COMMAND_ENV)
        if command is not None and not command.strip():
            raise UsageError(f"{PASSPHRASE_COMMAND_ENV} is set but empty.",
                             hint="Unset it, or set it to a command that prints the passphrase.")
    return Unlock(command or None, interactive)


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
