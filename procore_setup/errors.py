"""The one exception hierarchy of procore-setup; each class carries its CLI exit code.

Messages never contain a secret: callers format only paths, profile names, hosts,
status codes and Procore's own error descriptions into them.
"""

from __future__ import annotations

from typing import Any, TypeVar

_E = TypeVar("_E", bound="ProcoreSetupError")

# Exit codes, documented in the README and in `procore-setup --help`.
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_NOT_CONFIGURED = 3
EXIT_REAUTH = 4
EXIT_TEMPORARY = 5
EXIT_FILE = 6
EXIT_API_REFUSED = 7

EXIT_CODES_HELP = """\
exit codes:
  0  ok
  1  internal error (a bug: please report it)
  2  usage error (bad command line or bad answer)
  3  not configured (no credentials file, or no such profile)
  4  re-authorization required (refresh token or client credentials rejected, or tokens
     answered that cannot be used)
  5  temporary failure (network, server, rate limit, lock timeout, a 4xx that used nothing):
     retry later, nothing was lost; `status --online`: the online check failed
  6  credentials file unusable (insecure permissions, does not parse, missing fields,
     wrong or missing passphrase)
  7  `api`: Procore refused the request with a 4xx (other than 401 and 429): fix the request
     (its path, fields, company or permissions); the answer's body is on stdout"""


class ProcoreSetupError(Exception):
    """Base class. `str(err)` is a complete, user-facing message without secrets.

    `text` is what went wrong, as said where it happened; `notes` what the layers above learnt
    since (rendered after it, in `message`); `hint` what to do. A layer that knows more than the
    raiser (the command that logs this profile in again, a save that failed meanwhile) says so
    with `given()`, which keeps the class and every field: no message is rebuilt from another's.
    """

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.text = message
        self.hint = hint
        self.notes: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        return " ".join((self.text, *self.notes))

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n{self.hint}"
        return self.message

    def given(self: _E, *, hint: str | None = None, note: str | None = None, **fields: Any) -> _E:
        """A new error of this class with every field of this one, and what the caller knows: a
        `hint` in place of this one's, a `note` after its text, `fields` (existing ones only, e.g.
        after_lost_answer=True). Complete when returned: this one is left as it was."""
        return self.as_a(type(self), hint=hint, note=note, **fields)

    def as_a(self, cls: type[_E], *, hint: str | None = None, note: str | None = None, **fields: Any) -> _E:
        """`given`, as an error of the class `cls`, which has this one's fields (a subclass of this
        one's base with no fields of its own): a ServerError that turned out to be an AnswerLost."""
        new = cls.__new__(cls, *self.args)
        Exception.__init__(new, *self.args)
        new.__dict__.update(self.__dict__)
        for name, value in fields.items():
            if name not in new.__dict__:  # a field of the error, never its class's exit code
                raise TypeError(f"{cls.__name__} has no field {name}")
            setattr(new, name, value)
        if hint is not None:
            new.hint = hint
        if note is not None:
            new.notes = (*self.notes, note)
        return new


class UsageError(ProcoreSetupError):
    """Bad command line, bad flag value or a bad answer to a prompt."""

    exit_code = EXIT_USAGE


class FlowError(UsageError):
    """A step of the set-up failed: `step` is where the person goes to fix it, and `field`
    (when one answer is at fault) names that answer: "profile_name", "login_url", "api_url",
    "client_id", "client_secret", "redirect_uri" or "code"."""

    def __init__(self, message: str, *, step: str, hint: str | None = None, field: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.step = step
        self.field = field


class LoginRefused(FlowError):
    """Procore refused the code or the client at login (invalid_grant, invalid_client)."""

    exit_code = EXIT_REAUTH


class NotConfigured(ProcoreSetupError):
    """No credentials file, or no such profile in it."""

    exit_code = EXIT_NOT_CONFIGURED


class StoreEmpty(NotConfigured):
    """A shared store holds nothing of procore-setup's yet. `note`: why that may be (a server that
    keeps nothing across a restart), when the store has something to say; `command`: the command
    that sets one up."""

    def __init__(self, *, kind: str, store: str, command: str, note: str | None = None) -> None:
        super().__init__(f"The {kind} store {store} holds no procore-setup credentials yet."
                         + (f" {note}" if note else ""),
                         hint=f"Set one up with: {command} (or: {command} login --plain)")
        self.kind = kind
        self.store = store
        self.command = command
        self.note = note


class CredentialsFileError(ProcoreSetupError):
    """The credentials file exists but cannot be used: permissions, syntax, fields, passphrase."""

    exit_code = EXIT_FILE


class StoreWriteError(CredentialsFileError):
    """The store could not be written (a full disk, a quota, an I/O error); it holds what it held."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"Cannot write {where}: {reason}.",
                         hint="The file was left as it was. Free some space (or check the file system), "
                         "then try again.")
        self.reason = reason


class StoreConflict(CredentialsFileError):
    """A save was refused: the store no longer holds what this run read from it (a stale write)."""


class StoreChanged(StoreConflict):
    """A shared store's version moved while this run worked with it (another process wrote it
    without the lock, or this run lost its lock): nothing was overwritten. A lost lock, not a store
    that cannot be used, so exit 5: run the command again. `kind` ("PostgreSQL", "Redis") and
    `store` (its description, without the password) are what the message is made of."""

    exit_code = EXIT_TEMPORARY

    def __init__(self, *, kind: str, store: str) -> None:
        super().__init__(
            f"The {kind} store {store} changed while this command was working with it (another "
            "process wrote it without holding the lock, or this one lost its lock); it was not overwritten.",
            hint="Run the command again. Nothing was changed by this run.",
        )
        self.kind = kind
        self.store = store


class GrantNotSaved(CredentialsFileError):
    """Procore issued tokens at login, and the store could not take them: the code is spent."""


class LoginIncomplete(ProcoreSetupError):
    """A login saved its tokens, and a later step of it failed; the exit code is that step's."""

    def __init__(self, message: str, *, exit_code: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code

    @classmethod
    def after(cls, step: ProcoreSetupError, note: str) -> LoginIncomplete:
        """The failed step's error, every field of it kept (its words said once, its hint), with
        `note` after its text and its exit code."""
        new = step.as_a(cls, note=note)
        new.exit_code = step.exit_code
        return new


class PassphraseNeeded(CredentialsFileError):
    """The file is encrypted and no passphrase source answered (no env, command, keyring or terminal)."""


class ReauthRequired(ProcoreSetupError):
    """Procore rejected the grant (`invalid_grant`): a new interactive login is needed."""

    exit_code = EXIT_REAUTH

    def __init__(self, message: str, *, hint: str | None = None, after_lost_answer: bool = False) -> None:
        super().__init__(message, hint=hint)
        # True when an earlier attempt of the same call went out and lost its answer: that
        # attempt most likely used the grant, which is why this one was refused.
        self.after_lost_answer = after_lost_answer


class InvalidClient(ReauthRequired):
    """Procore rejected the client id or secret (`invalid_client`)."""


class TemporaryFailure(ProcoreSetupError):
    """Network trouble, a 5xx, a rate limit or a lock timeout. Retry later; nothing was lost."""

    exit_code = EXIT_TEMPORARY

    def __init__(self, message: str, *, hint: str | None = None, retry_after: float | None = None,
                 status: int | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after
        self.status = status  # the HTTP status, when Procore answered one (5xx, 429, 4xx)


class NotSent(TemporaryFailure):
    """Procore certainly did nothing with the request: no connection was made, a rate limiter
    refused it (429), or it was refused before the token in it was looked at (RequestRefused)."""


class ServerError(TemporaryFailure):
    """Procore answered a server error (5xx). Procore's FAQ says a refresh answered with an error
    can still have used the refresh token, so this is not NotSent: it may have acted."""


class AnswerLost(TemporaryFailure):
    """The request went out but no usable answer came back: Procore may have acted on it."""


class LockTimeout(TemporaryFailure):
    """Another process held the credentials lock for too long."""


class UnexpectedResponse(TemporaryFailure):
    """Procore answered something we cannot understand (HTML, bad JSON, missing fields)."""


class ProcoreAPIError(ProcoreSetupError):
    """An API call failed with a status we do not treat specially (e.g. 403, 404)."""

    def __init__(self, message: str, *, status: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class InvalidToken(ProcoreAPIError):
    """The access token was refused (401 `invalid_token`)."""


def env_seconds(name: str, default: float, low: float, high: float, *, environ: Any = None) -> float:
    """A number of seconds from the environment variable `name`, `default` when unset.

    Anything else than a number from `low` to `high` (NaN, text, 0 where 0 would hang or
    fail every call) is a usage error: a silently ignored typo would leave a cron job on
    the default.
    """
    import os

    raw = (os.environ if environ is None else environ).get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:  # also false for NaN
        raise UsageError(f"{name} must be a number of seconds from {low:g} to {high:g}, not {raw[:20]!r}.")
    return value


class InvalidValue(UsageError):
    """A value from outside (a URL, a token, a credential) that the tool will not use."""


class InvalidURL(InvalidValue):
    """A login or API base URL the tool will not use: "The {what} {problem}." (`what`: "login URL",
    `problem`: "has no host name"), so a caller that names the URL its own way renders the fields."""

    def __init__(self, what: str, problem: str, *, hint: str | None = None) -> None:
        super().__init__(f"The {what} {problem}.", hint=hint)
        self.what = what
        self.problem = problem


class FileTooBig(CredentialsFileError):
    """A save was refused because the file would be bigger than the tool reads back."""


class RequestRefused(NotSent):
    """Procore (or whatever answers at its address) refused the request with an HTTP 4xx other than
    a refused grant or client: a wrong URL (404), a malformed request (400 `invalid_request`), a
    firewall (403). Doorkeeper checks a request before it looks at the token in it, so nothing was
    used. Not retried: the same request gets the same answer."""


class TokensUnusable(ProcoreSetupError):
    """Procore answered a token request with tokens this tool cannot use (no refresh token, a
    malformed token, a token type other than bearer). Procore issued them, so it has most
    likely used up the refresh token or the code that was sent: a new login is probably needed."""

    exit_code = EXIT_REAUTH


class StoreUnavailable(TemporaryFailure):
    """A shared store could not be reached, or its connection dropped: nothing was changed by
    this run that the next run cannot finish (exit 5)."""


class StoreRefused(CredentialsFileError):
    """A shared store refused this run (wrong password, no such database, no rights, a schema it
    does not know): exit 6, like a credentials file that cannot be used."""


class DriverFailure(Exception):
    """What a store's own fast-path client (stores/libpq.py, stores/resp.py) says went wrong, as
    fields; never shown as it is: the store maps it, through the same table as its driver's errors,
    to StoreUnavailable, StoreRefused or UsageError, whose words name the store. Not a
    ProcoreSetupError, so one that escaped would be a bug (exit 1), not a message."""


class LibpqFailure(DriverFailure):
    """libpq said no: `message` (its text, which never holds the password) and `sqlstate` ('' when
    the server never answered with one); `connecting` when it happened before a connection existed."""

    def __init__(self, message: str, sqlstate: str = "", *, connecting: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.sqlstate = sqlstate
        self.connecting = connecting


class RespFailure(DriverFailure):
    """The plain-socket Redis read failed. `kind`: "unreachable" (no connection could be made),
    "timeout" (the server said nothing for a whole wait), "deadline" (the whole read took longer
    than its deadline: a server that trickles), "junk" (an answer that is no Redis reply this read
    can use: a protocol error, nested too deep, too big), "reply" (the server answered an error
    reply: `code` is its first word, WRONGPASS or NOPERM, and `reason` the rest) or "closed" (the
    connection ended before the answer did). `reason` never holds the password."""

    def __init__(self, kind: str, reason: str, *, code: str = "") -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.code = code


class ProfileMoved(NotConfigured):
    """The profile was moved to another store (`store move`); this copy is only a tombstone."""


class NewerTokensInStore(TemporaryFailure):
    """A pair this run holds was not saved because the store already holds newer tokens (another
    holder refreshed, or a person logged in, after this run lost its lock): nothing is lost."""


class APIRequestRefused(ProcoreSetupError):
    """`api`: Procore refused the request itself with a 4xx other than 401 and 429 (a wrong path, a
    field it rejects, a company or a permission the user lacks): the same request gets the same
    answer, so it is not retried. `status` is the HTTP status; the message names Procore's error text."""

    exit_code = EXIT_API_REFUSED

    def __init__(self, message: str, *, status: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class ChangedWithoutPassphrase(CredentialsFileError):
    """An encrypted store's profile (where its secrets go, whose they are) or its [encryption]
    table was changed by someone without the passphrase: its seal does not match. Refused
    before anything is sent (exit 6)."""
