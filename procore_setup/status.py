"""`procore-setup status`: what each profile holds and what is wrong with it, never a secret."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Callable

from .hints import add_command, command, shell_quote, token_command
from .profile import Credentials, Profile, login_command, mask, moved_to
from .stores.base import access_note, file_mode, readable_by
from .text import time_left

if TYPE_CHECKING:
    from .settings import Unlock
    from .stores.base import Store
from .errors import EXIT_NOT_CONFIGURED, EXIT_OK, EXIT_REAUTH, EXIT_TEMPORARY, ProcoreSetupError


def needs_login(prof: Profile) -> bool:
    """Whether only a person's new login (or, for a service account, the secret entered again)
    can give this profile a token again. A service account has no refresh token by design: it
    asks for a new token with its client credentials whenever it needs one."""
    if prof.is_service_account:
        return bool(prof.reauth_required) or not prof.client_secret
    return bool(prof.reauth_required) or not prof.refresh_token


# worded alike: what each kind is, as the wizard's first question puts it
KIND_NAMES = {"user": "a person's login", "service_account": "a service account"}


def problems(doc: Credentials, prof: Profile) -> list[str]:
    """Plain-language problems of a profile, each with what to do."""
    out: list[str] = []

    # The commands that mend a problem, worked out only when there is one (each asks PATH where the
    # program is): a new login, and the token command of this store and profile.
    def fix() -> str:
        return login_command(doc.store, prof)

    def renew() -> str:
        return token_command(doc.store, prof.name)

    if prof.is_service_account:
        return _service_account_problems(prof, fix, renew)
    if prof.reauth_required:
        out.append(f"needs a new login: {prof.last_error or 'Procore refused the refresh token'}; run: {fix()}")
    elif prof.refresh_started_at is not None:
        out.append(
            f"a refresh started at {prof.refresh_started_at.isoformat()} did not finish; the next refresh will "
            f"tell whether the chain survived (if Procore refuses it, run: {fix()})"
        )
    if not prof.refresh_token and not prof.reauth_required:
        out.append(f"no tokens stored (never logged in, or revoked); run: {fix()}")
    elif not prof.reauth_required:
        left = prof.seconds_left()
        if left is not None and left <= 0:
            out.append(f"access token expired; `{renew()}` or `refresh` will renew it")
    if not prof.client_secret:
        out.append(f"no client secret stored; refreshes will fail; run: {fix()}")
    return out


def _service_account_problems(prof: Profile, fix: Callable[[], str], renew: Callable[[], str]) -> list[str]:
    out: list[str] = []
    if prof.reauth_required:
        out.append(f"needs its client secret entered again: {prof.last_error or 'Procore refused the client'}; "
                   f"run: {fix()}")
    elif not prof.client_secret:
        out.append(f"no client secret stored; no token can be requested; run: {fix()}")
    else:
        left = prof.seconds_left()
        if left is not None and left <= 0:
            out.append(f"access token expired; `{renew()}` or `refresh` requests a new one")
    return out


def profile_info(doc: Credentials, prof: Profile) -> dict[str, Any]:
    left = prof.seconds_left()
    enc = doc.encrypted
    def secret(value: str | None) -> str:
        if enc and value:
            return "(encrypted)"
        return mask(value)

    return {
        "profile": prof.name,
        "kind": prof.kind,
        "default": doc.default_profile == prof.name,
        "environment": prof.environment,
        "login_url": prof.login_url,
        "api_url": prof.api_url,
        "client_id": prof.client_id,
        "client_secret": secret(prof.client_secret),
        "access_token": secret(prof.access_token),
        "refresh_token": secret(prof.refresh_token),
        "redirect_uri": prof.redirect_uri,
        "expires_at": prof.expires_at.isoformat() if prof.expires_at else None,
        "seconds_left": int(left) if left is not None else None,
        "last_refresh_at": prof.last_refresh_at.isoformat() if prof.last_refresh_at else None,
        "user": {"id": prof.user_id, "login": prof.user_login, "name": prof.user_name} if prof.user_id else None,
        "company": {"id": prof.company_id, "name": prof.company_name} if prof.company_id else None,
        "problems": problems(doc, prof),
    }


def _online(doc: Credentials, prof: Profile, info: dict[str, Any], unlock: Unlock,
            http_timeout: float | None) -> None:
    if not prof.access_token:
        info["online"] = {"ok": False, "error": "no access token stored"}
        return
    from .errors import InvalidToken
    from .refresh import make_client

    try:
        from .passphrase import open_secrets

        open_secrets(doc, unlock)
        changed = doc.seal_problem(prof.name)  # changed without the passphrase: its token goes nowhere
        if changed is not None:
            raise changed
        with make_client(prof, timeout=http_timeout) as client:
            data = client.token_info(prof.access_token)
        info["online"] = {
            "ok": True,
            "expires_in_seconds": data.get("expires_in_seconds"),
            "resource_owner_id": data.get("resource_owner_id"),
            "application_uid": (data.get("application") or {}).get("uid"),
        }
    except InvalidToken:
        info["online"] = {"ok": False, "error": "Procore refused the access token (expired or revoked); "
                                                f"`{command(doc.store, 'refresh', '--force', '--profile', shell_quote(prof.name))}` renews it"}
    except ProcoreSetupError as exc:
        info["online"] = {"ok": False, "error": exc.message}


def run_status(store: Store, name: str | None, *, as_json: bool, online: bool, unlock: Unlock,
               http_timeout: float | None = None) -> int:
    doc = store.load()
    profs = [doc.get(name)] if name or len(doc.profiles) == 1 else list(doc.profiles.values())
    infos = [profile_info(doc, p) for p in profs]
    if online:
        for p, info in zip(profs, infos):
            _online(doc, p, info, unlock, http_timeout)
    # A profile that cannot get a token without a person (refused, revoked, never logged in): exit 4,
    # as documented; a file without profiles is not configured (exit 3).
    code = EXIT_REAUTH if any(needs_login(p) for p in profs) else EXIT_OK
    if not profs:
        code = EXIT_NOT_CONFIGURED
    # --online asked Procore to confirm the tokens: when it could not (refused, unreachable), that is
    # exit 5, so a health check can tell; a profile that needs a new login keeps its 4 (the fix).
    if code == EXIT_OK and any(not info.get("online", {"ok": True})["ok"] for info in infos):
        code = EXIT_TEMPORARY
    address = store.address
    head: dict[str, Any] = {"store": address.describe(), "store_kind": address.kind,
            "path": address.describe(), "mode": file_mode(address),
            "readable_by": readable_by(store.address), "encrypted": doc.encrypted, "default_profile": doc.default_profile}
    # the tombstones' names and destinations come from the store: capped, printable, here and in --json
    moved = {_name(n): _name(moved_to(m)) for n, m in doc.moved.items()}
    if moved:
        head["moved"] = moved
    if as_json:
        import json

        print(json.dumps(dict(head, profiles=infos), indent=2))
        return code
    w = sys.stdout.write
    label = "file" if address.mode_path is not None else "store"
    w(f"{label}: {head['path']} ({access_note(store.address)}{', secrets encrypted' if doc.encrypted else ''})\n")
    note = store.durability_note()
    if note:
        w(f"note: {note}\n")
    for gone, to in sorted(moved.items()):
        w(f"moved: profile {gone!r} now lives in {to}\n")
    if not infos:
        w(f"no profiles yet: add one with {add_command(store)}\n")
    for info in infos:
        w("\n")
        w(f"[{info['profile']}]{' (default)' if info['default'] else ''}\n")
        w(f"  kind:          {KIND_NAMES.get(info['kind'], info['kind'])}\n")
        w(f"  environment:   {info['environment']}\n")
        w(f"  login / api:   {info['login_url']}  {info['api_url']}\n")
        w(f"  client id:     {info['client_id']}   secret: {info['client_secret']}\n")
        if info["kind"] == "service_account":
            w(f"  access token:  {info['access_token']}   (no refresh token: a new token is requested as needed)\n")
        else:
            w(f"  access token:  {info['access_token']}   refresh token: {info['refresh_token']}\n")
        w(f"  expires:       {info['expires_at'] or 'unknown'} ({time_left(info['seconds_left'])})\n")
        w(f"  last refresh:  {info['last_refresh_at'] or 'never'}\n")
        user = info["user"]
        # Names came from Procore and sit in a file anyone may have edited: printable, capped.
        w(f"  user:          {_name(user['name']) + ' <' + _name(user['login']) + '> id ' + str(user['id']) if user else 'unknown'}\n")
        company = info["company"]
        w(f"  company:       {str(company['id']) + ' ' + _name(company['name']) if company else 'none chosen'}\n")
        if "online" in info:
            o = info["online"]
            w(f"  online check:  {'ok, Procore says ' + str(o['expires_in_seconds']) + ' s left' if o['ok'] else 'FAILED: ' + o['error']}\n")
        for p in info["problems"]:
            w(f"  problem:       {p}\n")
    return code


def _name(value: str | None) -> str:
    from .text import NAME_LIMIT, clean

    return clean(value, NAME_LIMIT) if value else ""
