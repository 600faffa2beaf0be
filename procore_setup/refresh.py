""""Give me a valid token": refresh-if-needed under the lock, never losing the refresh token.

The headless module. It imports httpx (through `oauth`) only when a refresh is
really needed, so `token` with a valid token costs a file read and no more.

The sequence, all under the store's exclusive lock (written against the Store protocol:
the file today, shared stores later): read again -> still needed? -> mark "refresh in flight"
-> ask Procore -> save the new pair atomically -> only then hand the access token out.
"""

from __future__ import annotations

import functools
import os
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from .errors import (
    AnswerLost,
    NewerTokensInStore,
    ProcoreSetupError,
    StoreUnavailable,
    CredentialsFileError,
    InvalidClient,
    NotSent,
    ProcoreAPIError,
    ReauthRequired,
    StoreConflict,
    StoreWriteError,
    TemporaryFailure,
    TokensUnusable,
)
from .hints import reauth_command
from .profile import Credentials, Profile, login_command, utcnow
from .settings import UNATTENDED, Unlock

if TYPE_CHECKING:
    from .oauth import OAuthClient, TokenSet
    from .stores.base import Store

DEFAULT_TOKEN_MIN_VALID = 300  # `token`: refresh when fewer than 5 minutes are left
DEFAULT_REFRESH_MIN_VALID = 1200  # `refresh` (cron): refresh when fewer than 20 minutes are left


class RefreshResult:
    """What `ensure_fresh` did. `profile` holds the (decrypted) current data."""

    __slots__ = ("profile", "refreshed", "recovered_from_interrupt", "where", "warning", "save_warning")

    def __init__(self, profile: Profile, refreshed: bool, where: str, recovered_from_interrupt: bool = False,
                 warning: str | None = None, save_warning: str | None = None) -> None:
        self.profile = profile
        self.refreshed = refreshed
        self.where = where  # the store, as messages name it
        self.recovered_from_interrupt = recovered_from_interrupt
        self.warning = warning  # set when a refresh failed but the old token was still good enough
        # set (to why) when the new pair could only be saved by overwriting the file in place
        self.save_warning = save_warning

    @property
    def access_token(self) -> str:
        """The valid access token (ensure_fresh returns only a profile that has one)."""
        token = self.profile.access_token
        if not token:
            raise AssertionError("a RefreshResult without an access token")
        return token

    def __repr__(self) -> str:
        return f"RefreshResult(profile={self.profile.name!r}, refreshed={self.refreshed})"


def make_client(profile: Profile, *, timeout: float | None = None, **kwargs: Any) -> OAuthClient:
    """An OAuthClient for the profile's environment and client."""
    from .environments import OOB_REDIRECT_URI
    from .oauth import OAuthClient

    return OAuthClient(profile.login_url, profile.api_url, profile.client_id, profile.client_secret,
                       profile.redirect_uri or OOB_REDIRECT_URI, timeout=timeout, **kwargs)


def apply_tokens(profile: Profile, tokens: TokenSet, *, refreshed: bool) -> None:
    """Store a token response in the profile, its expiry counted from expires_in.

    Counted from when the request went out (the token was made after that), rounded down to
    the second the file stores: so the stored expiry is never later than Procore's, however
    long the answer took to come back.
    """
    now = utcnow()
    start = now
    if tokens.requested_at is not None:
        start = min(now, datetime.fromtimestamp(int(tokens.requested_at), timezone.utc))
    profile.set(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token or None,  # a service account's token comes without one
        token_type=tokens.token_type or "bearer",
        expires_at=start + timedelta(seconds=tokens.expires_in),
        created_at=tokens.created_at,
        refresh_started_at=None,
        refresh_budget=None,
        refresh_step=None,
        last_error=None,
        reauth_required=None,
    )
    # Kept for the margin of `_needs_refresh` (expires_at alone cannot tell a 30-second token
    # just issued from a 90-minute one about to expire).
    profile.set(expires_in=int(tokens.expires_in))
    if refreshed:
        profile.set(last_refresh_at=now)


def _needs_refresh(profile: Profile, min_valid: float, force: bool, reject: str | None = None) -> bool:
    if force or profile.reauth_required:
        return True
    if profile.refresh_started_at is not None:
        # A refresh died in flight: Procore may have rotated the pair, and so killed the stored
        # access token. Find out now (a refresh either works or explains) rather than hand it out.
        return True
    if reject is not None and profile.access_token == reject:
        return True  # the API refused this very token: it is no good, whatever its expiry says
    return not profile.valid_for(_margin(profile, min_valid))


def _margin(profile: Profile, min_valid: float) -> float:
    """`min_valid`, but at most half of the stored token's whole life.

    A token that lives 30 s never has 300 s left: without the cap, `token --min-valid 300` would
    refresh on every call, and each refresh revokes the token the previous caller has just printed.
    """
    life = profile.expires_in
    if not isinstance(life, int) or isinstance(life, bool) or life < 0:
        return min_valid  # written by an older version (or edited): no cap
    return min(min_valid, life / 2)


def _check_usable(doc: Credentials, profile: Profile) -> None:
    """Refuse early, without a request, when a refresh cannot possibly work."""
    if profile.is_service_account:
        _check_service_account(doc, profile)
        return
    if profile.reauth_required:
        raise ReauthRequired(
            f"Profile {profile.name!r} needs a new login: {profile.last_error or 'Procore refused its refresh token.'}",
            hint=f"Re-authorize with: {reauth_command(doc.store, profile.name)}",
        )
    if not profile.refresh_token:
        raise ReauthRequired(
            f"Profile {profile.name!r} has no refresh token (never logged in, or revoked).",
            hint=f"Log in with: {reauth_command(doc.store, profile.name)}",
        )
    if not profile.client_secret:
        raise CredentialsFileError(
            f"{doc.where}: profile {profile.name!r} has no client_secret, which a refresh needs.",
            hint=f"Set it up again with: {reauth_command(doc.store, profile.name)}",
        )


def _check_service_account(doc: Credentials, profile: Profile) -> None:
    """A service account needs its client secret, and nothing else, to get a token."""
    fix = login_command(doc.store, profile)
    if profile.reauth_required:
        raise InvalidClient(
            f"Profile {profile.name!r} needs its client secret entered again: "
            f"{profile.last_error or 'Procore refused the client id or secret.'}",
            hint=f"Enter the current secret with: {fix}  (the profile's other settings are kept)",
        )
    if not profile.client_secret:
        raise CredentialsFileError(
            f"{doc.where}: profile {profile.name!r} is a service account with no client_secret, which a token "
            "request needs.",
            hint=f"Enter it with: {fix}",
        )


def ensure_fresh(store: Store, name: str | None = None, *, min_valid: float = DEFAULT_TOKEN_MIN_VALID,
                 force: bool = False, reject: str | None = None, lock_timeout: float | None = None,
                 unlock: Unlock = UNATTENDED, client_factory: Any = None,
                 fallback_valid: float | None = None, http_timeout: float | None = None) -> RefreshResult:
    """Return the profile with a token valid for more than `min_valid` seconds, refreshing if needed.

    `reject` is an access token the API has just refused: a refresh is done unless the file
    already holds a different one (another process refreshed meanwhile).
    `fallback_valid`: when the refresh certainly did nothing at Procore (no connection, rate
    limit) and the stored token is still valid for more than this many seconds, return
    it with a `warning` instead of failing: a script can go on with a token that works.
    `unlock`: this run's passphrase sources, for an encrypted store (made by the edge).
    """
    doc = store.load()
    profile = doc.get(name)
    # Decrypt (derive the key) before taking the lock: scrypt costs a tenth of a second, and the
    # key is reused for the re-read below, so waiting processes don't pay it while holding the lock.
    _open(doc, unlock)
    if not _needs_refresh(profile, min_valid, force, reject):
        return RefreshResult(profile, False, store.address.describe())

    with store.lock(lock_timeout):
        doc = store.load()  # read again: another process may have refreshed meanwhile
        _open(doc, unlock)
        profile = doc.get(profile.name)
        if not _needs_refresh(profile, min_valid, force, reject):
            return RefreshResult(profile, False, store.address.describe())
        _check_usable(doc, profile)
        # An earlier refresh interrupted in flight may have rotated the stored token away: then its
        # expiry proves nothing and it is no fallback.
        interrupted = profile.refresh_started_at is not None
        factory = client_factory or functools.partial(make_client, timeout=http_timeout)
        try:
            if profile.is_service_account:
                return _request_locked(store, doc, profile, factory)
            return _refresh_locked(store, doc, profile, factory, http_timeout, unlock.unattended())
        except TemporaryFailure as exc:
            # A refresh answered by anything but NotSent may have used the refresh token. A service
            # account's request spends nothing: whatever went wrong, the stored token is as good as it was.
            if not isinstance(exc, NotSent) and not profile.is_service_account:
                raise
            usable = fallback_valid is not None and profile.access_token != reject and profile.valid_for(fallback_valid)
            if interrupted:
                usable = False
            if not usable or force:
                raise
            return RefreshResult(profile, False, store.address.describe(), warning=exc.message)


def _request_locked(store: Store, doc: Credentials, profile: Profile, client_factory: Any) -> RefreshResult:
    """A service account's new token (the client-credentials grant), under the lock.

    Nothing is single-use: no in-flight mark, and a request that fails leaves the store as it
    was. The new token is saved before it is handed out, so the processes waiting for the lock
    read it instead of asking for one each.
    """
    client = client_factory(profile)
    try:
        tokens = client.client_credentials()
    except ReauthRequired:  # invalid_client: the secret was rotated, or the app uninstalled
        fix = login_command(doc.store, profile)
        profile.set(last_error=f"Procore refused the client id or secret (invalid_client). ({utcnow().isoformat()})",
                    reauth_required=True)
        store.save(doc)
        raise InvalidClient(
            f"Procore refused the client id or secret of service account profile {profile.name!r} "
            "(invalid_client): the secret was rotated, or the app was uninstalled from the company.",
            hint=f"Check the app's OAuth Credentials in Procore (Manage App), then enter the current secret with: "
            f"{fix}  (the profile's other settings are kept)",
        ) from None
    finally:
        client.close()
    apply_tokens(profile, tokens, refreshed=True)
    store.save(doc)
    return RefreshResult(profile, True, store.address.describe())


def _refresh_locked(store: Store, doc: Credentials, profile: Profile, client_factory: Any,
                    http_timeout: float | None, unlock: Unlock) -> RefreshResult:
    interrupted_at = profile.refresh_started_at
    before = doc.revision
    # Built first: importing httpx takes a good part of a second on a busy machine, and a
    # process killed then had sent nothing, so it must not leave an in-flight mark.
    client = client_factory(profile)
    try:
        try:
            # Record that a refresh is in flight, so a crash before the save below is explained next time.
            # On a store whose lock can be lost, a retry of an interrupted refresh keeps that refresh's
            # time: the wait for a live holder's answer (_await_refresh_in_flight) is then counted from
            # the first attempt, once, not restarted by every run that finds the chain dead.
            again = interrupted_at is not None and store.locks_can_be_lost
            profile.set(refresh_started_at=interrupted_at if again else utcnow())
            if not again:  # the mark carries this run's own limits: a run that finds it waits on them
                from .oauth import holder_budget, holder_step

                profile.set(refresh_budget=holder_budget(http_timeout), refresh_step=holder_step(http_timeout))
            store.save(doc)
            tokens = client.refresh(profile.refresh_token or "")  # _check_usable: there is one
        finally:
            client.close()
    except (NotSent, ProcoreAPIError):
        # Procore certainly did not act on the request (no connection, a rate limiter's 429,
        # or a 4xx refusal): put the store back exactly as it was.
        store.restore(doc, before)
        raise
    except AnswerLost as exc:
        raise exc.given(
            hint="The request reached Procore but its answer was lost or was a server error, so Procore may "
            "have used the refresh token. Run the command again: if Procore then refuses the grant, a new "
            "login is needed: " + reauth_command(doc.store, profile.name),
        ) from None
    except ReauthRequired as exc:
        newer = _refreshed_elsewhere(store, profile, sent=profile.refresh_token, unlock=unlock)
        if newer is None and interrupted_at is not None and store.locks_can_be_lost:
            newer = _await_refresh_in_flight(store, profile, profile.refresh_token, interrupted_at, unlock)
        if newer is not None:
            return RefreshResult(newer, False, store.address.describe(), save_warning=(
                "Procore refused the stored refresh token: another process refreshed this profile at the same "
                "time (one of the two had lost the store's lock); the newer tokens it saved are used, and "
                "nothing was overwritten."))
        raise _record_reauth(store, doc, profile, exc, interrupted_at) from None
    except TokensUnusable as exc:
        # Procore issued tokens, so the stored refresh token is most likely spent. The in-flight
        # mark stays: the next run tries the stored one and says whether the chain survived.
        raise exc.given(
            hint="A new login is most likely needed: " + reauth_command(doc.store, profile.name)
            + "  (the stored values are kept; if the stored refresh token still works, the next refresh says so)",
        ) from None
    # Save the new pair before anything else is done with it.
    apply_tokens(profile, tokens, refreshed=True)
    in_place = _save_new_pair(store, doc, profile)
    return RefreshResult(profile, True, store.address.describe(), recovered_from_interrupt=interrupted_at is not None,
                         save_warning=in_place)


SAVE_RETRY_DELAYS = (0.2, 0.5, 1.0)


def _await_refresh_in_flight(store: Store, profile: Profile, sent: str | None, started: datetime,
                             unlock: Unlock) -> Profile | None:
    """On a shared store, the in-flight mark this run found may belong to a holder that is alive and
    only lost its lock (a dropped lock connection, a lease that ran out): Procore refused the stored
    token because that holder's request used it, and its answer may still land in the store. Wait
    for it while such a request could still be running and its answer be saved, instead of calling
    for a new login over a chain that is alive; None if nothing came.

    The bounds are the holder's own, written into its mark (oauth.holder_time_left, which `store
    move` uses too): its whole budget from its mark, and one attempt and a save from now, since the
    request that used the token went out before Procore refused this run's. This run's own HTTP
    timeout plays no part."""
    import time

    from .oauth import holder_time_left

    left = holder_time_left(started, profile.refresh_budget, profile.refresh_step, refused=True)
    end = time.monotonic() + left
    while time.monotonic() < end:
        time.sleep(0.25)
        newer = _refreshed_elsewhere(store, profile, sent=sent, unlock=unlock)
        if newer is not None:
            return newer
    return None


def _open(doc: Credentials, unlock: Unlock) -> None:
    """Open an encrypted document's secrets (encryption is imported only for one)."""
    if doc.encrypted:
        from .passphrase import open_secrets

        open_secrets(doc, unlock)


def _refreshed_elsewhere(store: Store, profile: Profile, *, sent: str | None, unlock: Unlock) -> Profile | None:
    """After Procore refused the refresh token this run sent: the profile as the store holds it
    now, if another process has saved a newer pair meanwhile (a shared store's holder that lost
    its lock to a dropped connection: the next holder refreshed first), else None.

    Only a different refresh token with a valid access token counts; anything else, and any
    trouble reading, leaves the refusal to be recorded as usual.
    """
    try:
        doc = store.load()
        _open(doc, unlock.unattended())
        now = doc.get(profile.name)
    except Exception:  # noqa: BLE001 - the refusal stands; it is recorded by the caller
        return None
    if now.refresh_token and now.refresh_token != sent and not now.reauth_required and now.valid_for(60):
        return now
    return None


def _save_new_pair(store: Store, doc: Credentials, profile: Profile) -> str | None:
    """Save a pair Procore has just issued: the only copy of its refresh token is in memory now.

    The atomic way first, a few times (another process may free space; an I/O error may pass).
    Whatever stops it (a full disk, a quota, no inodes, a directory whose permissions changed
    during the request), the old file's own blocks can still take the new content: overwriting
    them is not atomic, but losing the pair is certain otherwise. Returns None, or a warning
    that says how the pair had to be saved, and why.
    """
    import time

    first: CredentialsFileError | None = None
    cause: ProcoreSetupError | None = None  # what stopped the atomic save, when it said so itself
    why = ""
    for delay in (0.0, *SAVE_RETRY_DELAYS):
        time.sleep(delay)
        try:
            store.save(doc)
            return None
        except StoreConflict as exc:  # changed under us (by hand): no retry will change that
            first, cause, why = exc, exc, f"{store.address.describe()} changed while the refresh ran"
            break
        except StoreUnavailable as exc:  # a shared store that retried its own reconnects already
            cause, why = exc, exc.message.rstrip(".")
            break
        except CredentialsFileError as exc:  # StoreWriteError, or the directory check of ensure_dir
            first = first or exc
            cause = cause or exc
            why = exc.reason if isinstance(exc, StoreWriteError) else exc.message.rstrip(".")
        except Exception as exc:  # noqa: BLE001 - e.g. an fsync that fails after the rename: try again
            why = (exc.strerror if isinstance(exc, OSError) else None) or type(exc).__name__
    try:
        how = store.save_last_resort(doc)
    except NewerTokensInStore:
        raise  # not lost: the store's tokens are newer, and live
    except Exception as exc:  # noqa: BLE001 - whatever it is, the pair is lost: say so, and what to do
        raise _pair_lost(store, doc, profile, first, cause, why, exc) from None
    if isinstance(first, StoreConflict):
        return f"the new tokens are saved {how} ({why}): an edit made to it during the refresh is lost."
    return f"the new tokens are saved, but only {how} ({why}). Fix that before the next refresh."


def _pair_lost(store: Store, doc: Credentials, profile: Profile, first: CredentialsFileError | None,
               cause: ProcoreSetupError | None, why: str, late: Exception) -> CredentialsFileError:
    """The error for a new pair that no way of saving took: what stopped the atomic save in its own
    words (`cause`, kept whole through `as_a`; else `why`), what the last resort met (`late`) unless
    that is the same, that the pair is lost, and one hint."""
    shared = store.address.networked  # a server that may come back, not a disk that is full
    if isinstance(late, ProcoreSetupError):
        late_said = late.message
    else:
        late_said = ((late.strerror if isinstance(late, OSError) else None) or type(late).__name__) + "."
    if late_said.rstrip(".") == why or (cause is not None and late_said == cause.message):
        late_said = ""
    else:
        late_said = ("The retries after that failed too: " if shared else
                     "Writing over the old file failed too: ") + late_said + " "
    fix = first.hint if first is not None and not isinstance(first, StoreWriteError) and first.hint else \
        ("Bring the store back (check that it is up and reachable from here)" if shared else
         "Fix the problem (free some space, or check the file system)")
    hint = f"{fix.rstrip('.')}, then log in again: " + reauth_command(doc.store, profile.name)
    lost = "The new tokens are lost, and Procore has used up the stored refresh token, so this profile needs a new login."
    saved_to = f"Procore issued new tokens for profile {profile.name!r}, but they could not be saved to " \
               f"{store.address.describe()}"
    if cause is None:
        return CredentialsFileError(f"{saved_to}: {why}. {late_said}{lost}", hint=hint)
    return cause.as_a(CredentialsFileError, note=f"{late_said}{saved_to}. {lost}", hint=hint)


def _record_reauth(store: Store, doc: Credentials, profile: Profile, exc: ReauthRequired,
                   interrupted_at: Any) -> ReauthRequired:
    """Keep every stored value, note the problem, and return the error that says exactly what to run."""
    fix = reauth_command(doc.store, profile.name)
    name = profile.name
    if isinstance(exc, InvalidClient):
        reason = "Procore refused the client id or secret (invalid_client)."
        err: ReauthRequired = exc.given(
            hint="Check the client id and secret in Procore's Developer Portal, then set the profile up again: " + fix,
        )
    else:
        started = interrupted_at.isoformat() if interrupted_at is not None else ""
        if exc.after_lost_answer and interrupted_at is not None:
            # Two suspects: the interrupted refresh, or this run's attempt whose answer was lost.
            reason = (f"The last refresh (started {started}) was interrupted, the next one's "
                      "answer was lost, and Procore then refused the refresh token (invalid_grant).")
            message = (
                f"The last refresh of profile {name!r} (started {started}) was interrupted before its result was "
                "saved, and this run's refresh reached Procore but its answer was lost on the way back (or was a "
                "server error); the retry was refused (invalid_grant): one of the two had used up the refresh "
                "token. A new login is needed."
            )
        elif exc.after_lost_answer:
            reason = ("The answer to a refresh was lost (or was a server error) and Procore then refused the "
                      "refresh token (invalid_grant).")
            message = (
                f"The refresh of profile {name!r} reached Procore but its answer was lost on the way back (or was "
                "a server error), and the retry was refused (invalid_grant): Procore had most likely already "
                "used the refresh token for the lost answer. A new login is needed."
            )
        elif interrupted_at is not None:
            reason = (f"The last refresh (started {started}) was interrupted before its result "
                      "was saved and had most likely used the refresh token: Procore then refused it (invalid_grant).")
            message = (
                f"The last refresh of profile {name!r} (started {started}) was interrupted before its result was "
                "saved, and Procore has now refused the refresh token (invalid_grant): the interrupted refresh "
                "most likely used it up. A new login is needed."
            )
        else:
            reason = "Procore refused the refresh token (invalid_grant)."
            message = (
                f"Procore refused the refresh token of profile {name!r} (invalid_grant): the grant was revoked, "
                f"or the token was used by another copy of {'the profile' if store.address.networked else 'this file'}. "
                "A new login is needed."
            )
        err = ReauthRequired(message, hint=f"Re-authorize with: {fix}  (your stored settings are kept)",
                             after_lost_answer=exc.after_lost_answer)
    if interrupted_at is None:
        profile.set(refresh_budget=None, refresh_step=None)  # the mark goes, and its limits with it
    profile.set(
        refresh_started_at=interrupted_at,
        last_error=f"{reason} ({utcnow().isoformat()})",
        reauth_required=True,
    )
    try:
        store.save(doc)
    except CredentialsFileError as failed:  # the refusal stands; only its record could not be kept
        return err.given(note=f"(This could not be recorded in {store.address.describe()}: {failed.message.rstrip('.')}.)")
    return err


def get_token(profile: str | None = None, *, config: str | os.PathLike[str] | None = None,
              min_valid: float = DEFAULT_TOKEN_MIN_VALID, force: bool = False,
              passphrase_command: str | None = None, store: str | None = None) -> str:
    """A valid access token for `profile`, refreshing under the store's lock if needed.

    The store: `store` (a postgresql:// or redis:// URL, or a file's path), else `config` (a
    credentials file), else $PROCORE_SETUP_STORE or $PROCORE_SETUP_CONFIG, else the user's file.

    Raises a `procore_setup.errors.ProcoreSetupError` subclass on failure; its message says what to do.
    """
    from .stores import open_store

    from . import settings

    unlock = settings.unlock_from(passphrase_command)
    opened = open_store(config, store=store)
    try:
        return ensure_fresh(opened, settings.profile(profile), min_valid=min_valid, force=force,
                            http_timeout=settings.http_timeout(), unlock=unlock).access_token
    finally:
        opened.close()  # a shared store's connection: not left for the garbage collector
