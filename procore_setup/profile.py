"""The profile and document model: fields, types, validation. No I/O.

A document (`Credentials`) is what a store holds: its profiles, the default profile, the
encryption table, and every key the program does not know (kept as it is). A store loads
and saves documents; everything here works the same whichever store it came from, and
sits on the headless fast path, so it imports only the standard library.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from .errors import CredentialsFileError, InvalidURL, NotConfigured, ProfileMoved
from .hints import add_command, command, program, reauth_command, shell_quote, store_flag

if TYPE_CHECKING:
    from .stores.base import Store

SCHEMA_VERSION = 1
MAX_DEPTH = 32  # nesting of tables and arrays; a credentials file has 3, and writers recurse
SECRET_FIELDS = ("client_secret", "access_token", "refresh_token")

# (name, type) of every field a profile may hold. Unknown keys are kept as they are.
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "environment": (str,),
    "login_url": (str,),
    "api_url": (str,),
    "client_id": (str,),
    "client_secret": (str,),
    "redirect_uri": (str,),
    "access_token": (str,),
    "refresh_token": (str,),
    "token_type": (str,),
    "expires_at": (datetime,),
    "created_at": (int,),
    "last_refresh_at": (datetime,),
    "refresh_started_at": (datetime,),
    # with the in-flight mark: the holder's own limits, in seconds (oauth.holder_budget, holder_step)
    "refresh_budget": (int,),
    "refresh_step": (int,),
    "last_error": (str,),
    "reauth_required": (bool,),
    "user_id": (int,),
    "user_login": (str,),
    "user_name": (str,),
    "company_id": (int,),
    "company_name": (str,),
    "expires_in": (int,),  # the whole life Procore gave the stored access token, in seconds
    "kind": (str,),  # how the profile signs in (KINDS); absent: a person's login
    # set on the copy a `store move` is writing, until the source holds its tombstone: a copy
    # with it is not live yet, so nothing refreshes it (see Credentials.get)
    "moving_from": (str,),
    # In an encrypted store: the key's seal over the profile's name and BOUND_FIELDS (crypto.Cipher.seal)
    "seal": (str,),
}
# What decides where a profile's secrets are sent and whose they are: in an encrypted store these,
# with the profile's name, are sealed with the key, so a change made without the passphrase is refused.
BOUND_FIELDS = ("kind", "environment", "login_url", "api_url", "client_id", "redirect_uri")
SEAL_FIELD = "seal"
# The kinds of profile: a person's login (the authorization code, with a single-use refresh
# token) or a service account (the client-credentials grant: no person, no refresh token).
USER = "user"
SERVICE_ACCOUNT = "service_account"
KINDS = (USER, SERVICE_ACCOUNT)
REQUIRED_FIELDS = ("environment", "login_url", "api_url", "client_id")


def utcnow() -> datetime:
    """Now, in UTC, to the second (what the file stores)."""
    return datetime.now(timezone.utc).replace(microsecond=0)


T = TypeVar("T")


class _Field(Generic[T]):
    """A typed, read-only view of one known field of `Profile.data` (None when absent)."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key

    @overload
    def __get__(self, obj: None, owner: type) -> _Field[T]: ...
    @overload
    def __get__(self, obj: Profile, owner: type) -> T | None: ...

    def __get__(self, obj: Profile | None, owner: type) -> T | None | _Field[T]:
        if obj is None:
            return self
        return obj.data.get(self.key)


class _Required:
    """A field every stored profile has (check_document refuses a profile without it): a str."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key

    def __get__(self, obj: Profile | None, owner: type) -> str:
        if obj is None:
            raise AttributeError(self.key)
        return obj.data.get(self.key) or ""


class Profile:
    """One named profile: an environment, a client registration and its token chain.

    Secrets are plain strings here (decrypted, if the store is encrypted) and are left out of
    `repr`. Each known field is a typed property (None when absent); `data` holds every key,
    unknown ones included, exactly as stored.
    """

    __slots__ = ("name", "data")

    def __init__(self, name: str, data: dict[str, Any] | None = None) -> None:
        self.name = name
        self.data: dict[str, Any] = data if data is not None else {}

    environment = _Required("environment")
    login_url = _Required("login_url")
    api_url = _Required("api_url")
    client_id = _Required("client_id")
    client_secret = _Field[str]("client_secret")
    redirect_uri = _Field[str]("redirect_uri")
    access_token = _Field[str]("access_token")
    refresh_token = _Field[str]("refresh_token")
    token_type = _Field[str]("token_type")
    expires_at = _Field[datetime]("expires_at")
    expires_in = _Field[int]("expires_in")
    created_at = _Field[int]("created_at")
    last_refresh_at = _Field[datetime]("last_refresh_at")
    refresh_started_at = _Field[datetime]("refresh_started_at")
    refresh_budget = _Field[int]("refresh_budget")
    refresh_step = _Field[int]("refresh_step")
    last_error = _Field[str]("last_error")
    reauth_required = _Field[bool]("reauth_required")
    user_id = _Field[int]("user_id")
    user_login = _Field[str]("user_login")
    user_name = _Field[str]("user_name")
    company_id = _Field[int]("company_id")
    company_name = _Field[str]("company_name")

    @property
    def kind(self) -> str:
        """USER or SERVICE_ACCOUNT (check_document refuses any other); a profile written before
        kinds existed is a person's login."""
        value = self.data.get("kind")
        return value if isinstance(value, str) and value else USER

    @property
    def is_service_account(self) -> bool:
        return self.kind == SERVICE_ACCOUNT

    def set(self, **fields: Any) -> None:
        """Set known fields; None removes a field."""
        for key, value in fields.items():
            if key not in FIELD_TYPES:
                raise KeyError(key)
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value

    def seconds_left(self, now: datetime | None = None) -> float | None:
        """Seconds until the access token expires (negative when expired), None if unknown."""
        exp = self.expires_at
        if exp is None or not self.access_token:
            return None
        return (exp - (now or utcnow())).total_seconds()

    def valid_for(self, seconds: float, now: datetime | None = None) -> bool:
        left = self.seconds_left(now)
        return left is not None and left > seconds

    def copy(self) -> Profile:
        return Profile(self.name, dict(self.data))

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.data.items() if k not in SECRET_FIELDS}
        return f"Profile({self.name!r}, {shown!r})"


def login_command(store: Store | None, prof: Profile) -> str:
    """The exact command that gives `prof` a token again: a person's login, or, for a service
    account, the one that re-enters its client secret."""
    if prof.is_service_account:
        return command(store, "login", "--plain", "--service-account", "--profile", shell_quote(prof.name))
    return reauth_command(store, prof.name)


def mask(secret: str | None) -> str:
    """At most the last 4 characters of a secret, for status output."""
    if not secret:
        return "(none)"
    if len(secret) < 12:
        return "****"
    return "****" + secret[-4:]


class Credentials:
    """The whole document: profiles, the default profile, and anything we do not know."""

    def __init__(self, raw: dict[str, Any] | None = None, *, store: Store | None = None,
                 revision: Any = None) -> None:
        self.raw: dict[str, Any] = raw if raw is not None else {"schema_version": SCHEMA_VERSION}
        self.store = store  # where it came from: messages name it, hints give its command-line flag
        # What the store holds as loaded (the file: its exact bytes), so that a refresh that sent
        # nothing can put it back, and a save can refuse to overwrite a newer one. Store-specific.
        self.revision = revision
        self.cipher: Any = None  # set by passphrase.unlock_with for an encrypted store
        self.profiles: dict[str, Profile] = {}
        for name, data in (self.raw.get("profiles") or {}).items():
            self.profiles[name] = Profile(name, dict(data))
        # Profiles handed out by get(): their secrets are checked as soon as they are decrypted.
        self._used: set[str] = set()
        # (profile, field) -> (stored value, why) of secrets of an encrypted file that are no
        # ciphertext of ours (plain text, an unknown enc:v2:): never used, never encrypted on a
        # save (that would launder them), written back exactly as they were.
        self._left: dict[tuple[str, str], tuple[str, str]] = {}
        # Each profile's bound fields and seal as loaded, and whether the store said they must be
        # sealed (an [encryption] table of version 2 or later): a save re-seals only what this run
        # changed itself or found sealed, never a change someone else made (see _sealed_fields).
        self._loaded_seals: dict[str, tuple[str, Any]] = {
            name: (bound_text(name, prof.data), prof.data.get(SEAL_FIELD)) for name, prof in self.profiles.items()}
        self._sealed_at_load = self.sealed
        self._seal_verdicts: dict[str, bool] = {}

    @property
    def where(self) -> str:
        """The store, as messages name it (a file's path)."""
        return self.store.address.describe() if self.store is not None else "the new credentials"

    # -- document-level settings -------------------------------------------------
    @property
    def default_profile(self) -> str | None:
        name = self.raw.get("default_profile")
        if name:
            return name
        if len(self.profiles) == 1:
            return next(iter(self.profiles))
        return "default" if "default" in self.profiles else None

    @default_profile.setter
    def default_profile(self, name: str | None) -> None:
        if name is None:
            self.raw.pop("default_profile", None)
        else:
            self.raw["default_profile"] = name

    @property
    def encryption(self) -> dict[str, Any] | None:
        enc = self.raw.get("encryption")
        return enc if isinstance(enc, dict) else None

    @property
    def encrypted(self) -> bool:
        return self.encryption is not None

    @property
    def sealed(self) -> bool:
        """Whether the profiles' bound fields are sealed with the key (an [encryption] table of
        version 2 or later; version 1 had no seals)."""
        enc = self.encryption
        version = enc.get("version") if enc is not None else None
        return isinstance(version, int) and not isinstance(version, bool) and version >= 2

    def seal_problem(self, name: str, cipher: Any = None) -> CredentialsFileError | None:
        """The error for a profile of a sealed store whose bound fields (or name) were changed by
        someone without the passphrase, as loaded; None if its seal holds, or cannot be checked yet
        (no key), or the store has no seals (version 1), or this run added the profile itself.
        `cipher`: the document's key, before it is set (to check before anything is decrypted)."""
        cipher = cipher or self.cipher
        if cipher is None or not self._sealed_at_load or name not in self._loaded_seals:
            return None
        if self._seal_holds(name, cipher):
            return None
        from .checks import shown
        from .errors import ChangedWithoutPassphrase

        prof = self.profiles.get(name)
        fix = login_command(self.store, prof) if prof is not None else reauth_command(self.store, name)
        return ChangedWithoutPassphrase(
            f"{self.where}: profile {shown(name, 64)!r} was changed by someone without the passphrase: its name, "
            "login URL, API URL, client id, redirect URI, kind or environment no longer match what was sealed "
            "with the key (or its seal was removed). It is refused, and nothing was sent.",
            hint="The store was left as it is. Find out who can write it. If you made the change yourself, set "
            f"the profile up again with the passphrase: {fix}",
        )

    def _seal_holds(self, name: str, cipher: Any = None) -> bool:
        """Whether the profile's seal, as loaded, opens for its bound fields as loaded (remembered:
        a new passphrase replaces the key, and the verdict is the old key's)."""
        verdict = self._seal_verdicts.get(name)
        if verdict is None:
            bound, seal = self._loaded_seals[name]
            key = cipher or self.cipher
            verdict = self._seal_verdicts[name] = seal is not None and key.seal_ok(bound, seal)
        return verdict

    def check_seals(self) -> None:
        """Raise the seal problem of the first profile that has one (for commands that rewrite every
        profile: decrypting or re-keying would vouch for a change someone else made)."""
        for name in sorted(self.profiles):
            problem = self.seal_problem(name)
            if problem is not None:
                raise problem

    # -- profiles ------------------------------------------------------------------
    def resolve_name(self, name: str | None) -> str:
        """The profile to use: the one named, or the default (the caller has looked at
        $PROCORE_SETUP_PROFILE: environment variables are read at the edge)."""
        name = name or self.default_profile
        if not name and not self.profiles and self.moved:
            raise self.moved_error(sorted(self.moved)[0])
        if not name and not self.profiles:
            raise NotConfigured(
                f"{self.where} holds no profiles yet.",
                hint=f"Add one with: {add_command(self.store)} (or: {add_command(self.store)} login --plain)",
            )
        if not name:
            listed = _listed(self.profiles)
            raise NotConfigured(
                f"{self.where}: several profiles ({listed}) and no default one.",
                hint="Name one with --profile NAME, or set a default in the wizard (procore-setup).",
            )
        return name

    def get(self, name: str | None = None, *, check: bool = True) -> Profile:
        """The profile to use (see resolve_name). With `check`, its values are checked the way
        they were when they arrived (URLs, tokens, credentials): a profile the file holds in a
        state the tool would refuse on arrival raises CredentialsFileError, and only that
        profile: the others stay usable. `check=False` is for removing or renaming a profile."""
        name = self.resolve_name(name)
        try:
            prof = self.profiles[name]
        except KeyError:
            if name in self.moved:
                raise self.moved_error(name) from None
            import difflib

            close = difflib.get_close_matches(name, list(self.profiles), n=1, cutoff=0.6)
            if close:  # a typo: name the profile that exists rather than offer to create the typo
                from .checks import shown

                raise NotConfigured(
                    f"No profile {name[:70]!r} in {self.where} (profiles: {_listed(self.profiles)}).",
                    hint=f"Did you mean {shown(close[0], 64)!r}? Give --profile {shell_quote(close[0])}.",
                ) from None
            raise NotConfigured(
                f"No profile {name[:70]!r} in {self.where} (profiles: {_listed(self.profiles)}).",
                hint=f"Set it up with: {reauth_command(self.store, name)}",
            ) from None
        if check:
            self._used.add(name)
            self.check(prof)
            source = prof.data.get("moving_from")
            if isinstance(source, str):
                from .checks import shown

                raise NotConfigured(
                    f"Profile {shown(name, 64)!r} in {self.where} is the copy of an unfinished move from "
                    f"{shown(source, 200)}: it is not used until the move is done (the original is still live).",
                    hint="Finish the move with: " + program() + store_flag(source)
                    + f" store move --to {shell_quote(self.where)} --profile {shell_quote(name)}",
                )
        return prof

    # -- tombstones of `store move` ------------------------------------------------
    @property
    def moved(self) -> dict[str, dict[str, Any]]:
        """Profiles moved to another store: name -> {"to": where, "at": when}."""
        moved = self.raw.get("moved")
        return moved if isinstance(moved, dict) else {}

    def mark_moved(self, name: str, to: str) -> None:
        """Replace profile `name` by a tombstone naming `to` (a store, as `describe` names it)."""
        self.profiles.pop(name, None)
        self.raw.setdefault("moved", {})[name] = {"to": to, "at": utcnow()}

    def unmark_moved(self, name: str) -> None:
        moved = self.raw.get("moved")
        if isinstance(moved, dict):
            moved.pop(name, None)
            if not moved:
                self.raw.pop("moved")

    def moved_error(self, name: str, command: str | None = None) -> ProfileMoved:
        """The error for a job that asked for moved profile `name`; `command`: the words of the
        command it ran, after the store's flag (default: `token --profile NAME`)."""
        from .checks import shown

        entry = self.moved.get(name) or {}
        to = moved_to(entry)
        at = entry.get("at")
        when = f" on {at.isoformat()}" if isinstance(at, datetime) else ""
        from_file = self.store is not None and self.store.address.option == "config"  # PROCORE_SETUP_CONFIG
        words = command or f"token --profile {shell_quote(name)}"
        return ProfileMoved(
            f"Profile {shown(name, 64)!r} was moved from {self.where} to {shown(to, MOVED_TO_LIMIT)}{when}; this copy "
            "is no longer used, and nothing was refreshed.",
            hint=f"Point the job at the new store: {program()}{store_flag(to)} {words}" + env_hint(from_file, to),
        )

    # -- what opening the secrets (passphrase.unlock_with) records ------------------------
    def keep_unopened(self, name: str, field: str, value: str, why: str) -> None:
        """A stored secret that is no ciphertext of ours: kept exactly as stored, never used."""
        self._left[(name, field)] = (value, why)

    def unopened_profiles(self) -> list[str]:
        """The profiles holding a secret that could not be opened (see keep_unopened)."""
        return sorted({name for name, _field in self._left})

    def handed_out(self) -> list[str]:
        """The profiles handed out by get() so far: checked again once their secrets are plain."""
        return sorted(self._used)

    def check(self, prof: Profile) -> None:
        """Raise CredentialsFileError (exit 6) if `prof` holds a value the tool would refuse."""
        problem = profile_problem(self, prof)
        if problem is not None:
            raise problem

    def add(self, profile: Profile) -> Profile:
        self.unmark_moved(profile.name)  # a new profile of that name lives here again
        self.profiles[profile.name] = profile
        return profile

    def remove(self, name: str) -> None:
        self.profiles.pop(name, None)
        if self.raw.get("default_profile") == name:
            self.default_profile = None

    def to_toml_dict(self) -> dict[str, Any]:
        # schema_version first, profiles last: easy to read by eye
        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        out.update((k, v) for k, v in self.raw.items() if k not in ("schema_version", "profiles"))
        if self.encrypted and self.cipher is not None:
            from .crypto import upgrade_table

            for name in self.profiles:  # verdicts first: upgrading the table makes the store sealed
                if self._sealed_at_load and name in self._loaded_seals:
                    self._seal_holds(name)
            upgrade_table(self.cipher, out["encryption"])  # a version-1 table: sealed from now on
        out["profiles"] = {
            name: self._sealed_fields(name, _encrypt_fields(self, name, dict(prof.data))) if self.encrypted
            else {k: v for k, v in prof.data.items() if k != SEAL_FIELD}
            for name, prof in self.profiles.items()
        }
        return out

    def _sealed_fields(self, name: str, data: dict[str, Any]) -> dict[str, Any]:
        """A profile's stored fields with its seal. Without the key the seal stays as it was. With
        it, a profile whose loaded seal did not hold (or was missing from a sealed store) keeps that
        seal, unless this run changed its bound fields itself (a new login): re-sealing it would
        vouch for what someone without the passphrase wrote."""
        if self.cipher is None:
            return data
        bound = bound_text(name, data)
        loaded = self._loaded_seals.get(name)
        if self._sealed_at_load and loaded is not None and loaded[0] == bound and not self._seal_holds(name):
            if loaded[1] is None:
                data.pop(SEAL_FIELD, None)
            else:
                data[SEAL_FIELD] = loaded[1]
            return data
        data[SEAL_FIELD] = self.cipher.seal(bound)
        return data


MOVED_TO_LIMIT = 200  # a tombstone's `to` comes from the store: capped wherever it is shown


def moved_to(entry: dict[str, Any]) -> str:
    """Where a tombstone says its profile went, capped (the store may hold anything there)."""
    to = str(entry.get("to", "another store"))
    return to if len(to) <= MOVED_TO_LIMIT else to[:MOVED_TO_LIMIT] + "…"


def env_hint(from_file: bool, to: str) -> str:
    """How a job that names its store by an environment variable points at `to` instead.

    A job moved off a file most likely sets PROCORE_SETUP_CONFIG: setting PROCORE_SETUP_STORE
    beside it is a usage error (both set), so it must go."""
    if from_file and "://" in to:
        return (f"  (or, in the job's environment, set PROCORE_SETUP_STORE={shell_quote(to)} instead of "
                "PROCORE_SETUP_CONFIG, and unset PROCORE_SETUP_CONFIG)")
    if from_file:
        return f"  (or set PROCORE_SETUP_CONFIG={shell_quote(to)})"
    return f"  (or set PROCORE_SETUP_STORE={shell_quote(to)})"


def bound_text(name: str, data: dict[str, Any]) -> str:
    """The profile's name and bound fields as one unambiguous text (each value's type and length,
    then the value), for the seal; a missing field is not the same as an empty one."""
    parts = []
    for value in (name, *(data.get(field) for field in BOUND_FIELDS)):
        if value is None:
            parts.append("-")
        else:
            text = str(value)
            parts.append(f"{type(value).__name__}:{len(text)}:{text}")
    return "\n".join(parts)


def _encrypt_fields(doc: Credentials, name: str, data: dict[str, Any]) -> dict[str, Any]:
    from . import crypto

    for field in SECRET_FIELDS:
        value = data.get(field)
        if value is None or crypto.is_encrypted_value(value):
            continue
        left = doc._left.get((name, field))
        if left is not None and left[0] == value:
            continue  # not ours to encrypt: kept as it was stored (see Credentials._left)
        if doc.cipher is None:
            raise CredentialsFileError(
                f"{doc.where}: internal error: cannot write a plain secret into an encrypted file "
                "without its passphrase."
            )
        data[field] = doc.cipher.encrypt(value, f"{name}/{field}")
    return data


def _listed(profiles: dict[str, Any]) -> str:
    """The profile names for a message, each safe to print."""
    from .checks import shown

    return ", ".join(shown(n, 64) for n in sorted(profiles)) or "none"


_URL_FIELDS = (("login_url", "login URL"), ("api_url", "API URL"))
_TOKEN_FIELDS = ("access_token", "refresh_token")


def profile_problem(doc: Credentials, prof: Profile, *, whole_file: bool = False) -> CredentialsFileError | None:
    """The first value of `prof` that the tool would refuse if it arrived now, as the error to
    raise (naming the profile and the field), or None. Nothing has been sent when it is raised.
    `whole_file`: for a command that rewrites every profile (decrypt)."""
    from .checks import check_base_url, credential_problem, shown, token_problem

    where = f"{doc.where}: profile {shown(prof.name, 64)!r}"
    sealed = doc.seal_problem(prof.name)
    if sealed is not None:
        return sealed

    def fix() -> str:  # only once there is a problem: it may look up the default path (platformdirs)
        command = login_command(doc.store, prof)
        return f"{command} (or remove that profile), then try again. Nothing was changed" if whole_file else command

    for field, what in _URL_FIELDS:
        value = prof.data.get(field)
        if not isinstance(value, str):
            continue  # missing or mistyped: _check_types reports it
        try:
            check_base_url(value, what)
        except InvalidURL as exc:
            return CredentialsFileError(
                f"{where}: the {exc.what} {exc.problem} (field {field}).",
                hint=f"Nothing was sent, and the file was left as it is. Correct {field} in the file, "
                f"or set the profile up again: {fix()}",
            )
    unopened = doc.encrypted and doc.cipher is None
    for field in ("client_id", *SECRET_FIELDS):
        value = prof.data.get(field)
        if value is None:
            continue
        left = doc._left.get((prof.name, field))
        why: str | None
        if left is not None and left[0] == value:
            why = left[1]
        elif unopened and field in SECRET_FIELDS:
            why = not_ciphertext(value)
        elif field in _TOKEN_FIELDS:
            why = token_problem(value)
        else:
            why = credential_problem(value)
        if why is not None:
            return CredentialsFileError(
                f"{where}: the stored {field} {why}, which the tool would refuse from Procore or at login: "
                "the file was edited or damaged.",
                hint=f"Nothing was sent, and the file was left as it is. Log in again with: {fix()}",
            )
    return None


def not_ciphertext(value: Any) -> str | None:
    """Why a secret of an encrypted file is not one of our ciphertexts, or None if it is one."""
    from .crypto import PREFIX

    if isinstance(value, str) and value.startswith(PREFIX):
        return None
    if isinstance(value, str) and value.startswith("enc:"):
        import re

        m = re.match(r"enc:[A-Za-z0-9]{1,8}:", value)
        return (f"is encrypted in a format this procore-setup does not know ({m.group(0) if m else 'enc:'}...; "
                f"it writes {PREFIX}...)")
    return "is not encrypted although the file is (plain text where a ciphertext belongs)"


def check_document(raw: dict[str, Any], store: Store | None) -> None:
    """Refuse a document whose structure or field types are not ours (exit 6); never writes."""
    path = store.address.describe() if store is not None else "the document"
    _check_types(path, raw, store)
    _check_depth(path, raw)


def _check_types(path: str, raw: dict[str, Any], store: Store | None) -> None:
    version = raw.get("schema_version")
    if version is None:
        raise CredentialsFileError(f"{path}: missing field schema_version.", hint=fix_by_login())
    if not isinstance(version, int) or isinstance(version, bool):
        raise CredentialsFileError(f"{path}: schema_version must be an integer, not {type(version).__name__}.")
    if version > SCHEMA_VERSION:
        raise CredentialsFileError(
            f"{path}: written by a newer procore-setup (schema version {version}; this one reads {SCHEMA_VERSION}).",
            hint="Upgrade procore-setup (pip install -U procore-setup).",
        )
    if version < 1:
        raise CredentialsFileError(f"{path}: unknown schema_version {version}.")
    dp = raw.get("default_profile")
    if dp is not None and not isinstance(dp, str):
        raise CredentialsFileError(f"{path}: default_profile must be a string.")
    enc = raw.get("encryption")
    if enc is not None and not isinstance(enc, dict):
        raise CredentialsFileError(f"{path}: [encryption] must be a table.")
    moved = raw.get("moved", {})
    if not isinstance(moved, dict) or not all(isinstance(v, dict) and isinstance(v.get("to"), str)
                                              for v in moved.values()):
        raise CredentialsFileError(f"{path}: [moved] must be a table of [moved.NAME] tables, each with a `to`.")
    profiles = raw.get("profiles", {})
    if not isinstance(profiles, dict):
        raise CredentialsFileError(f"{path}: profiles must be a table of [profiles.NAME] tables.")
    for name, data in profiles.items():
        if not isinstance(data, dict):
            raise CredentialsFileError(f"{path}: profiles.{_shown(name)} must be a table.")
        for field in REQUIRED_FIELDS:
            if not data.get(field):
                raise CredentialsFileError(
                    f"{path}: profile {name!r} is missing the field {field}.",
                    hint=f"Set the profile up again: {reauth_command(store, name)}",
                )
        for field, value in data.items():
            types = FIELD_TYPES.get(field)
            if types is None:
                continue  # unknown keys survive untouched
            if enc is None and field in SECRET_FIELDS and isinstance(value, str) and value.startswith("enc:"):
                # else the ciphertext would be sent to Procore as if it were the token
                raise CredentialsFileError(
                    f"{path}: profile {name!r}: {field} is encrypted, but the file has no [encryption] "
                    "table to open it with.",
                    hint="Restore the file (or its [encryption] table) from a backup, or set the profile up "
                    f"again: {reauth_command(store, name)}",
                )
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                want = " or ".join(t.__name__ for t in types)
                raise CredentialsFileError(
                    f"{path}: profile {name!r}: field {field} must be {_article(want)}, "
                    f"not {type(value).__name__}."
                )
            if field == "kind" and value not in KINDS:
                raise CredentialsFileError(
                    f"{path}: profile {_shown(name)!r}: unknown kind {_shown(str(value))!r} (this procore-setup knows "
                    f"{' and '.join(KINDS)}).",
                    hint="Correct the field kind in the file (the file was left as it is), or upgrade procore-setup "
                    "if a newer one wrote it.",
                )
            if isinstance(value, datetime) and value.tzinfo is None:
                raise CredentialsFileError(
                    f"{path}: profile {name!r}: field {field} needs a UTC offset (e.g. 2026-01-01T00:00:00Z)."
                )


def fix_by_login() -> str:
    return f"Set it up again with: {command(None, 'login')} (the broken file is left as it is)."


def _shown(text: str) -> str:
    from .checks import shown

    return shown(text, 64)


def _check_depth(path: str, raw: dict[str, Any]) -> None:
    """Refuse values nested deeper than MAX_DEPTH: tomli-w and tomlkit recurse, so a 300-deep
    array would make every save of the file fail. Iterative, for the same reason."""
    stack: list[tuple[Any, int, tuple[str, ...]]] = [(raw, 0, ())]
    while stack:
        value, depth, where = stack.pop()
        if depth > MAX_DEPTH:
            if len(where) >= 3 and where[0] == "profiles":
                what = f"profile {_shown(where[1])!r}: field {_shown(where[2])}"
            else:
                what = f"key {_shown(where[0])}"
            raise CredentialsFileError(
                f"{path}: {what} is nested more than {MAX_DEPTH} levels deep, which no credentials file is.",
                hint="Remove that value from the file (the file was left as it is).",
            )
        if isinstance(value, dict):
            # the path is kept to 3 parts (profiles, name, field): all a message needs
            stack.extend((v, depth + 1, (where + (str(k),)) if len(where) < 3 else where) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, depth + 1, where) for v in value)


def _article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def biggest_entry(doc: Credentials) -> str:
    """The entry of `doc` that takes the most room, for the hint of a save refused as too big."""
    best, size = "(unknown)", -1
    for key, value in doc.raw.items():
        if key == "profiles":
            continue
        if len(repr(value)) > size:
            best, size = f"the key {_shown(key)}", len(repr(value))
    for name, prof in doc.profiles.items():
        for key, value in prof.data.items():
            if key in SECRET_FIELDS:
                continue  # capped at arrival; and a message must not measure secrets
            if len(repr(value)) > size:
                best, size = f"the field {_shown(key)} of profile {_shown(name)!r}", len(repr(value))
    return best

