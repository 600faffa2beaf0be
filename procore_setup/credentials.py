"""The credentials file: load, save, permissions, lock and atomic replace.

This module sits on the headless fast path (`token`, `status`, a no-op `refresh`),
so it imports only the standard library at module level: tomli_w (and tomlkit, for a
file with comments) is needed only to write, platformdirs only when no path was given,
cryptography only for an encrypted file.

Storage is behind a small interface (`load`, `save`, `lock`, `transaction`) so
that a shared store for teams can be added later without touching the callers.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
import time
from datetime import datetime, timezone
from typing import Any, Iterator

from .errors import (
    CredentialsFileError,
    FileTooBig,
    InvalidValue,
    LockTimeout,
    NotConfigured,
    UsageError,
    env_seconds,
)

SCHEMA_VERSION = 1
FILE_NAME = "credentials.toml"
MAX_FILE_BYTES = 1 << 20  # a credentials file is a few KB; anything this big is not ours
# A save may grow a file into the last SAVE_ROOM bytes below MAX_FILE_BYTES only from a file
# below that line: so the save of a new pair, which follows the in-flight mark's save, always
# fits (two tokens at their cap, encrypted, are ~44 KB), and the next refresh is refused before
# it sends anything.
SAVE_ROOM = 64 << 10
MAX_DEPTH = 32  # nesting of tables and arrays; a credentials file has 3, and writers recurse
SECRET_FIELDS = ("client_secret", "access_token", "refresh_token")
DEFAULT_LOCK_TIMEOUT = 60.0

# (name, type) of every field a profile may hold. Unknown keys are kept as they are.
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
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
    "last_error": (str,),
    "reauth_required": (bool,),
    "user_id": (int,),
    "user_login": (str,),
    "user_name": (str,),
    "company_id": (int,),
    "company_name": (str,),
    "expires_in": (int,),  # the whole life Procore gave the stored access token, in seconds
}
REQUIRED_FIELDS = ("environment", "login_url", "api_url", "client_id")


def utcnow() -> datetime:
    """Now, in UTC, to the second (what the file stores)."""
    return datetime.now(timezone.utc).replace(microsecond=0)


def default_path() -> str:
    """Where the credentials file lives: $PROCORE_SETUP_CONFIG, else the user config dir."""
    env = os.environ.get("PROCORE_SETUP_CONFIG")
    if env is not None:
        if not env.strip():
            raise UsageError(
                "PROCORE_SETUP_CONFIG is set but empty.",
                hint="Unset it, or set it to the path of a credentials file.",
            )
        return os.path.abspath(os.path.expanduser(env))
    from platformdirs import user_config_path  # only when no path was given

    return str(user_config_path("procore-setup", appauthor=False) / FILE_NAME)


class Profile:
    """One named profile: an environment, a client registration and its token chain.

    Secrets are plain strings here (decrypted, if the file is encrypted) and are
    left out of `repr`.
    """

    __slots__ = ("name", "data")

    def __init__(self, name: str, data: dict[str, Any] | None = None) -> None:
        self.name = name
        self.data: dict[str, Any] = data if data is not None else {}

    def __getattr__(self, field: str) -> Any:
        if field in _FIELD_TYPES:
            return self.data.get(field)
        raise AttributeError(field)

    def set(self, **fields: Any) -> None:
        """Set known fields; None removes a field."""
        for key, value in fields.items():
            if key not in _FIELD_TYPES:
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

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.data.items() if k not in SECRET_FIELDS}
        return f"Profile({self.name!r}, {shown!r})"


def mask(secret: str | None) -> str:
    """At most the last 4 characters of a secret, for status output."""
    if not secret:
        return "(none)"
    if len(secret) < 12:
        return "****"
    return "****" + secret[-4:]


class Credentials:
    """The whole document: profiles, the default profile, and anything we do not know."""

    def __init__(self, raw: dict[str, Any] | None = None, *, path: str = "", raw_bytes: bytes = b"") -> None:
        self.raw: dict[str, Any] = raw if raw is not None else {"schema_version": SCHEMA_VERSION}
        self.path = path
        self.raw_bytes = raw_bytes  # exactly what was read, so a failed refresh can put it back
        self.cipher: Any = None  # set by Store.open_secrets for an encrypted file
        self.profiles: dict[str, Profile] = {}
        for name, data in (self.raw.get("profiles") or {}).items():
            self.profiles[name] = Profile(name, dict(data))
        # Profiles handed out by get(): their secrets are checked as soon as they are decrypted.
        self._used: set[str] = set()
        # (profile, field) -> (stored value, why) of secrets of an encrypted file that are no
        # ciphertext of ours (plain text, an unknown enc:v2:): never used, never encrypted on a
        # save (that would launder them), written back exactly as they were.
        self._left: dict[tuple[str, str], tuple[str, str]] = {}

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

    # -- profiles ------------------------------------------------------------------
    def resolve_name(self, name: str | None) -> str:
        """The profile to use: the one named, $PROCORE_SETUP_PROFILE, or the default."""
        name = name or os.environ.get("PROCORE_SETUP_PROFILE") or self.default_profile
        if not name and not self.profiles:
            raise NotConfigured(
                f"{self.path} holds no profiles yet.",
                hint=f"Add one with: {add_command(self.path)} (or: {add_command(self.path)} login --plain)",
            )
        if not name:
            listed = _listed(self.profiles)
            raise NotConfigured(
                f"{self.path}: several profiles ({listed}) and no default one.",
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
            raise NotConfigured(
                f"No profile {name[:70]!r} in {self.path} (profiles: {_listed(self.profiles)}).",
                hint=f"Set it up with: procore-setup{_config_flag(self.path)} login --profile {shell_quote(name)}",
            ) from None
        if check:
            self._used.add(name)
            self.check(prof)
        return prof

    def check(self, prof: Profile) -> None:
        """Raise CredentialsFileError (exit 6) if `prof` holds a value the tool would refuse."""
        problem = _profile_problem(self, prof)
        if problem is not None:
            raise problem

    def add(self, profile: Profile) -> Profile:
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
        out["profiles"] = {
            name: _encrypt_fields(self, name, dict(prof.data)) if self.encrypted else dict(prof.data)
            for name, prof in self.profiles.items()
        }
        return out


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
                f"{doc.path}: internal error: cannot write a plain secret into an encrypted file "
                "without its passphrase."
            )
        data[field] = doc.cipher.encrypt(value, f"{name}/{field}")
    return data


def _config_flag(path: str) -> str:
    """` --config PATH` when PATH is not where the tool looks by default, else ''."""
    try:
        if os.environ.get("PROCORE_SETUP_CONFIG") or path != default_path():
            return f" --config {shell_quote(path)}"
    except Exception:
        return f" --config {shell_quote(path)}"
    return ""


def shell_quote(s: str) -> str:
    """`s` as one word of a POSIX shell command that a person can paste: shlex.quote, or for
    text with control characters (a line break, an escape sequence) bash's $'...' form, which
    spells them out so that they neither reach the terminal nor split the command."""
    import shlex

    if s.isprintable():
        return shlex.quote(s)
    out = []
    for c in s:
        if c in "\\'":
            out.append("\\" + c)
        elif c.isprintable():
            out.append(c)
        elif ord(c) < 0x100:
            out.append(f"\\x{ord(c):02x}")
        elif ord(c) < 0x10000:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    return "$'" + "".join(out) + "'"


def add_command(path: str) -> str:
    """The command that adds a profile to the file at `path` (the wizard)."""
    return f"procore-setup{_config_flag(path)}"


def reauth_command(path: str, profile: str) -> str:
    """The exact command that re-authorizes `profile` of the file at `path`."""
    return f"procore-setup{_config_flag(path)} login --profile {shell_quote(profile)}"


def _listed(profiles: dict[str, Any]) -> str:
    """The profile names for a message, each safe to print."""
    from .checks import shown

    return ", ".join(shown(n, 64) for n in sorted(profiles)) or "none"


_URL_FIELDS = (("login_url", "login URL"), ("api_url", "API URL"))
_TOKEN_FIELDS = ("access_token", "refresh_token")


def _profile_problem(doc: Credentials, prof: Profile, *, whole_file: bool = False) -> CredentialsFileError | None:
    """The first value of `prof` that the tool would refuse if it arrived now, as the error to
    raise (naming the profile and the field), or None. Nothing has been sent when it is raised.
    `whole_file`: for a command that rewrites every profile (decrypt)."""
    from .checks import check_base_url, credential_problem, shown, token_problem

    where = f"{doc.path}: profile {shown(prof.name, 64)!r}"

    def fix() -> str:  # only once there is a problem: it may look up the default path (platformdirs)
        command = reauth_command(doc.path, prof.name)
        return f"{command} (or remove that profile), then try again. Nothing was changed" if whole_file else command

    for field, what in _URL_FIELDS:
        value = prof.data.get(field)
        if not isinstance(value, str):
            continue  # missing or mistyped: _check_types reports it
        try:
            check_base_url(value, what)
        except InvalidValue as exc:
            text = exc.message[0].lower() + exc.message[1:].rstrip(".")
            return CredentialsFileError(
                f"{where}: {text} (field {field}).",
                hint=f"Nothing was sent, and the file was left as it is. Correct {field} in the file, "
                f"or set the profile up again: {fix()}",
            )
    unopened = doc.encrypted and doc.cipher is None
    for field in ("client_id", *SECRET_FIELDS):
        value = prof.data.get(field)
        if value is None:
            continue
        left = doc._left.get((prof.name, field))
        if left is not None and left[0] == value:
            why = left[1]
        elif unopened and field in SECRET_FIELDS:
            why = _not_ciphertext(value)
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


def _not_ciphertext(value: Any) -> str | None:
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


def _check_types(path: str, raw: dict[str, Any]) -> None:
    version = raw.get("schema_version")
    if version is None:
        raise CredentialsFileError(f"{path}: missing field schema_version.", hint=_FIX_BY_LOGIN)
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
                    hint=f"Set the profile up again: procore-setup{_config_flag(path)} login --profile "
                    f"{shell_quote(name)}",
                )
        for field, value in data.items():
            types = _FIELD_TYPES.get(field)
            if types is None:
                continue  # unknown keys survive untouched
            if enc is None and field in SECRET_FIELDS and isinstance(value, str) and value.startswith("enc:"):
                # else the ciphertext would be sent to Procore as if it were the token
                raise CredentialsFileError(
                    f"{path}: profile {name!r}: {field} is encrypted, but the file has no [encryption] "
                    "table to open it with.",
                    hint="Restore the file (or its [encryption] table) from a backup, or set the profile up "
                    f"again: procore-setup{_config_flag(path)} login --profile {shell_quote(name)}",
                )
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                want = " or ".join(t.__name__ for t in types)
                raise CredentialsFileError(
                    f"{path}: profile {name!r}: field {field} must be {_article(want)}, "
                    f"not {type(value).__name__}."
                )
            if isinstance(value, datetime) and value.tzinfo is None:
                raise CredentialsFileError(
                    f"{path}: profile {name!r}: field {field} needs a UTC offset (e.g. 2026-01-01T00:00:00Z)."
                )


_FIX_BY_LOGIN = "Set it up again with: procore-setup login (the broken file is left as it is)."


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


def _render(doc: Credentials) -> bytes:
    """The file's bytes for `doc`, keeping any comment a person wrote into its old bytes."""
    from .tomlfile import render

    return render(doc.to_toml_dict(), doc.raw_bytes)


class FileWriteError(CredentialsFileError):
    """The file could not be written (disk full, quota, I/O error); the old one is as it was."""

    def __init__(self, path: str, exc: OSError) -> None:
        self.reason = exc.strerror or str(exc)
        super().__init__(f"Cannot write {path}: {self.reason}.",
                         hint="The file was left as it was. Free some space (or check the file system), "
                         "then try again.")


def open_store(config: str | os.PathLike[str] | None = None, *, passphrase_command: str | None = None) -> FileStore:
    """The store a command or a script works on: the file at `config` (default: $PROCORE_SETUP_CONFIG or
    the user config dir). `passphrase_command` is this run's source of the passphrase of an encrypted
    file, tried after $PROCORE_SETUP_PASSPHRASE and before the file's stored command; default:
    $PROCORE_SETUP_PASSPHRASE_COMMAND."""
    if passphrase_command is None:
        env = os.environ.get(PASSPHRASE_COMMAND_ENV)
        if env is not None and not env.strip():
            raise UsageError(f"{PASSPHRASE_COMMAND_ENV} is set but empty.",
                             hint="Unset it, or set it to a command that prints the passphrase.")
        passphrase_command = env
    return FileStore(config, passphrase_command=passphrase_command)


PASSPHRASE_COMMAND_ENV = "PROCORE_SETUP_PASSPHRASE_COMMAND"


class FileStore:
    """The credentials file on the local disk, with a lock file beside it."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, passphrase_command: str | None = None) -> None:
        self.passphrase_command = passphrase_command or None
        given = os.fspath(path) if path is not None else default_path()
        if not given.strip():
            raise UsageError("The credentials path is empty.", hint="Give --config PATH a file path.")
        self.given_path = os.path.abspath(os.path.expanduser(given))
        # Work on the real file when the path is a symlink (dotfile managers): replacing
        # the link by a regular file would break the user's set-up.
        self.path = os.path.realpath(self.given_path)
        self.dir = os.path.dirname(self.path)
        self.lock_path = self.path + ".lock"

    def __repr__(self) -> str:
        return f"FileStore({self.path!r})"

    def describe(self) -> str:
        """The store as messages and `status` name it: the file's path."""
        return self.path

    def permissions(self) -> str | None:
        """Who may read the store, for messages: the file's mode as 0600-style text."""
        return file_mode(self.path)

    def exists(self) -> bool:
        return os.path.lexists(self.given_path)

    # -- reading -------------------------------------------------------------------
    def read_bytes(self) -> bytes:
        """The file's bytes after the ownership and permission checks ssh would make.

        Only a regular file is read, and no more than 64 KiB past MAX_FILE_BYTES: `--config`
        pointing at a FIFO, a device or a /proc file must fail at once, not hang or read
        gigabytes (/proc/self/pagemap says it has 0 bytes).
        """
        path = self.path
        self._check_link()
        with contextlib.suppress(OSError):  # a missing file is reported by the open below
            st = os.stat(path)
            if not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
                raise self._not_regular(st)  # without opening it: opening a device can have effects
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            if os.path.islink(self.given_path):
                raise CredentialsFileError(
                    f"{self.given_path} is a symlink to {path}, which does not exist.",
                    hint="Fix or remove the link.",
                ) from None
            raise NotConfigured(
                f"No credentials file at {path}.",
                hint=f"Set one up with: procore-setup{_config_flag(path)} (or `login --plain` on a plain terminal).",
            ) from None
        except IsADirectoryError:
            raise CredentialsFileError(
                f"{path} is a directory, not a credentials file.", hint="Point --config at a file."
            ) from None
        except PermissionError:
            raise CredentialsFileError(
                f"{path}: permission denied.", hint="Run as the user who owns it, or fix its owner."
            ) from None
        except OSError as exc:
            raise CredentialsFileError(f"{path}: cannot open: {exc.strerror}.") from None
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise CredentialsFileError(
                    f"{path} is a directory, not a credentials file.", hint="Point --config at a file."
                )
            if not stat.S_ISREG(st.st_mode):
                raise self._not_regular(st)
            self._check_owner_and_mode(st)
            if st.st_size > MAX_FILE_BYTES:
                raise self._too_big(f"{st.st_size} bytes")
            # O_NONBLOCK stays set: a regular file ignores it, while a pseudo-file that calls
            # itself regular (/proc/kmsg) would otherwise block the read forever.
            # Whole 64 KiB reads (some pseudo-files refuse odd sizes), stopping once past the cap.
            chunks, total = [], 0
            while total <= MAX_FILE_BYTES:
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    raise CredentialsFileError(
                        f"{path} cannot be read without waiting, so it is not a credentials file.",
                        hint="Point --config at a regular file.",
                    ) from None
                except OSError as exc:
                    raise CredentialsFileError(f"{path}: cannot read: {exc.strerror}.") from None
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
            if total > MAX_FILE_BYTES:
                raise self._too_big(f"more than {MAX_FILE_BYTES} bytes")
            return b"".join(chunks)
        finally:
            os.close(fd)

    def _not_regular(self, st: os.stat_result) -> CredentialsFileError:
        kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
        return CredentialsFileError(f"{self.path} is {kind}, not a credentials file.",
                                    hint="Point --config at a regular file.")

    def _too_big(self, size: str) -> CredentialsFileError:
        return CredentialsFileError(f"{self.path} is {size}: far too big for a credentials file.",
                                    hint="Check that --config points at the right file.")

    def _check_link(self) -> None:
        """A symlink at the given path must be the user's own (or root's): in a directory others
        can write to, someone else's link would point us at a file of their choosing."""
        try:
            st = os.lstat(self.given_path)
        except OSError:
            return
        if stat.S_ISLNK(st.st_mode) and hasattr(os, "geteuid") and st.st_uid not in (os.geteuid(), 0):
            raise CredentialsFileError(
                f"{self.given_path} is a symlink owned by another user (uid {st.st_uid}); refusing to follow it.",
                hint="Remove the link, or point --config at the file itself."
                + _shared_note(os.path.dirname(self.given_path)),
            )

    def _described(self) -> str:
        """The file as the user named it: the path given, and where it leads if that is a link."""
        if self.given_path != self.path:
            return f"{self.given_path} (a symlink to {self.path})"
        return self.path

    def _check_owner_and_mode(self, st: os.stat_result) -> None:
        path = self.path
        if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
            raise CredentialsFileError(
                f"{self._described()} is owned by another user (uid {st.st_uid}); refusing to use it.",
                hint="A credentials file must belong to the user who runs procore-setup."
                + _shared_note(self.dir),
            )
        if st.st_mode & 0o077:
            if self.given_path != path:
                # chmod follows the link: say where it leads, so nobody runs `chmod 600 /etc/passwd` blind
                hint = (f"If {path} really is your credentials file, fix it with: chmod 600 {shell_quote(path)}; "
                        f"if not, fix the link {shell_quote(self.given_path)}.")
            else:
                hint = f"Fix it with: chmod 600 {shell_quote(path)}"
            raise CredentialsFileError(
                f"Permissions {stat.S_IMODE(st.st_mode):04o} for {self._described()} are too open: "
                "group and others must have no access to a file of secrets.",
                hint=hint,
            )

    def load(self) -> Credentials:
        """Read and check the file. Never writes; the file is left as it is on any error."""
        data = self.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise CredentialsFileError(
                f"{self.path} is not UTF-8 text, so it is not a credentials file.", hint=_FIX_BY_LOGIN
            ) from None
        if not text.strip():
            raise CredentialsFileError(f"{self.path} is empty.", hint=_FIX_BY_LOGIN)
        import tomllib  # here, not at the top: the wizard's first run has no file to read

        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            # tomllib's message names the line and column, never the value
            raise CredentialsFileError(f"{self.path} does not parse as TOML: {exc}.", hint=_FIX_BY_LOGIN) from None
        except RecursionError:  # tomllib recurses into nested arrays: a thousand `[` exhaust it
            raise CredentialsFileError(
                f"{self.path} holds values nested thousands of levels deep, which no credentials file does.",
                hint=_FIX_BY_LOGIN,
            ) from None
        _check_types(self.path, raw)
        _check_depth(self.path, raw)
        return Credentials(raw, path=self.path, raw_bytes=data)

    def load_or_new(self) -> Credentials:
        """The document, or an empty one when there is no file yet (other errors propagate)."""
        if not os.path.lexists(self.given_path):
            return Credentials(path=self.path)
        return self.load()

    def open_secrets(self, doc: Credentials, *, interactive: bool = False, passphrase_command: str | None = None,
                     cipher: Any = None, strict: bool = False) -> None:
        """Decrypt the secrets of an encrypted document in place (no-op for a plain one, or one
        opened already). `cipher`, when given, is the document's (checked by the caller).

        A secret that is no ciphertext of ours (plain text, an unknown `enc:v2:`) is left as it
        is and makes its profile unusable (see Credentials.get), not the whole file; with
        `strict` (decrypting or re-encrypting the whole file) it is an error at once. Profiles
        handed out by get() already are checked here, once their secrets are plain.
        """
        if not doc.encrypted or doc.cipher is not None:
            return
        from . import crypto
        from .passphrase import cipher_for

        doc.cipher = cipher or cipher_for(doc, interactive=interactive,
                                                 passphrase_command=passphrase_command or self.passphrase_command)
        for name, prof in doc.profiles.items():
            for field in SECRET_FIELDS:
                value = prof.data.get(field)
                if value is None:
                    continue
                if crypto.is_encrypted_value(value):
                    prof.data[field] = doc.cipher.decrypt(value, f"{name}/{field}", path=doc.path)
                else:
                    doc._left[(name, field)] = (value, _not_ciphertext(value) or "is not usable")
        if strict:
            for name, _field in doc._left:
                problem = _profile_problem(doc, doc.profiles[name], whole_file=True)
                if problem is not None:
                    raise problem
        for name in sorted(doc._used):
            if name in doc.profiles:
                doc.check(doc.profiles[name])

    # -- writing -------------------------------------------------------------------
    def ensure_dir(self) -> None:
        """Create the directory owner-only (0700) if it does not exist."""
        if os.path.isdir(self.dir):
            st = os.stat(self.dir)
            if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
                raise CredentialsFileError(
                    f"The directory {self.dir} is writable by group or others, so someone else "
                    "could replace the credentials file.",
                    hint=f"Fix it with: chmod go-w {shell_quote(self.dir)}",
                )
            return
        try:
            # Every missing level 0700, not just the last: os.makedirs gives parents the umask's
            # default, which under `umask 000` is world-writable.
            missing = []
            path = self.dir
            while not os.path.isdir(path) and os.path.dirname(path) != path:
                missing.append(path)
                path = os.path.dirname(path)
            for path in reversed(missing):
                with contextlib.suppress(FileExistsError):
                    os.mkdir(path, 0o700)
        except OSError as exc:
            raise CredentialsFileError(f"Cannot create the directory {self.dir}: {exc.strerror}.") from None

    def save(self, doc: Credentials) -> None:
        """Atomically replace the file with `doc`: temp file 0600, fsync, rename, fsync dir.

        Refused (FileTooBig, the file left as it was) when the new bytes would be more than
        this program reads back: a file it writes must never be one it then refuses forever.
        """
        payload = _render(doc)
        limit = MAX_FILE_BYTES if len(doc.raw_bytes) <= MAX_FILE_BYTES - SAVE_ROOM else MAX_FILE_BYTES - SAVE_ROOM
        if len(payload) > limit:
            raise FileTooBig(
                f"Not saved: {self.path} would grow to {len(payload)} bytes, more than the {limit} a credentials "
                "file may have (this program would refuse to read it back).",
                hint=f"The file was left as it was. Its biggest entry is {_biggest(doc)}: remove that from "
                "the file, then try again.",
            )
        self.write_bytes(payload)
        doc.raw_bytes = payload

    def overwrite_in_place(self, doc: Credentials) -> None:
        """Last resort when no new file can be made (disk full, quota, no inodes): write `doc`
        over the existing file's own blocks. Not atomic, so only for new tokens that would
        otherwise be lost; refused (OSError) when the file's allocated space is too small."""
        payload = _render(doc)
        fd = os.open(self.path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0))
        try:
            st = os.fstat(fd)  # the file this handle writes, not whatever the path names by now
            if (not stat.S_ISREG(st.st_mode) or st.st_mode & 0o077
                    or (hasattr(os, "geteuid") and st.st_uid != os.geteuid())):
                raise OSError(errno.EPERM, f"{self.path} is no longer an owner-only file of this user")
            if st.st_blocks * 512 < len(payload):
                raise OSError(errno.ENOSPC, "the file's own blocks cannot hold the new content")
            view, offset = memoryview(payload), 0
            while offset < len(payload):
                offset += os.pwrite(fd, view[offset:], offset)
            os.ftruncate(fd, len(payload))
            os.fsync(fd)
        finally:
            os.close(fd)
        doc.raw_bytes = payload

    def write_bytes(self, payload: bytes) -> None:
        """Atomically replace the file's content with `payload`, owner-only from the first byte."""
        self.ensure_dir()
        tmp = os.path.join(self.dir, f".{os.path.basename(self.path)}.{os.getpid()}.{time.monotonic_ns()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
            try:
                try:
                    view = memoryview(payload)
                    while view:
                        n = os.write(fd, view)
                        view = view[n:]
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:  # a full disk, a quota, a read-only or failing file system
            raise FileWriteError(self.path, exc) from None
        _fsync_dir(self.dir)
        self._sweep_stale_temps()

    def _sweep_stale_temps(self) -> None:
        """Remove temp files left by writers that were killed (SIGKILL, OOM) before their rename.

        They are owner-only, but hold secrets and would pile up. A temp file is stale when the
        process named in it no longer exists.
        """
        prefix = f".{os.path.basename(self.path)}."
        try:
            names = os.listdir(self.dir)
        except OSError:
            return
        for name in names:
            if not (name.startswith(prefix) and name.endswith(".tmp")):
                continue
            pid = name[len(prefix):].split(".", 1)[0]
            if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
                continue
            with contextlib.suppress(OSError):
                full = os.path.join(self.dir, name)
                if os.lstat(full).st_uid == os.geteuid():  # in a shared directory, only ever our own
                    os.unlink(full)

    # -- locking -------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the exclusive lock beside the file, waiting at most `timeout` seconds."""
        import fcntl

        if timeout is None:
            timeout = lock_timeout()
        self.ensure_dir()
        fd = self._open_lock()
        try:
            deadline = time.monotonic() + timeout
            delay = 0.005
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LockTimeout(
                            f"Another procore-setup process has held the lock on {self.path} for "
                            f"more than {timeout:g} s.",
                            hint="It may be hung on the network; try again later. Nothing was changed. "
                            f"(Lock file: {self.lock_path})",
                        ) from None
                    time.sleep(delay)
                    delay = min(delay * 2, 0.1)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _open_lock(self) -> int:
        """The lock file, opened without following a link, and only if it is the user's own
        regular file that nobody else can open: in a directory others can write to (a sticky one
        like /tmp passes ensure_dir), another user could plant a link there (root would then create
        the file it points to) or hold a flock on a lock file of theirs and block every refresh."""
        flags = (os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
                 | getattr(os, "O_NOFOLLOW", 0))
        lock = self.lock_path
        try:
            fd = os.open(lock, flags, 0o600)
        except OSError as exc:
            if os.path.islink(lock):
                raise self._bad_lock("is a symbolic link", _rm(lock)) from None
            if isinstance(exc, PermissionError):
                with contextlib.suppress(OSError):
                    st = os.lstat(lock)
                    if st.st_uid != os.geteuid():
                        raise self._bad_lock(f"is owned by another user (uid {st.st_uid})", _FOREIGN_LOCK) from None
            raise FileWriteError(lock, exc) from None  # no inode left for it, a read-only file system
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise self._bad_lock("is not a regular file", _rm(lock))
            if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
                raise self._bad_lock(f"is owned by another user (uid {st.st_uid})", _FOREIGN_LOCK)
            if st.st_mode & 0o077:
                raise self._bad_lock(f"has permissions {stat.S_IMODE(st.st_mode):04o}, so others can open it "
                                     "(and hold the lock)", _rm(lock))
            if st.st_nlink != 1:
                raise self._bad_lock("has other hard links", _rm(lock))
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _bad_lock(self, problem: str, fix: str) -> CredentialsFileError:
        return CredentialsFileError(
            f"The lock file {self.lock_path} {problem}: another user could block every refresh, so it is "
            "not used. Nothing was changed.",
            hint=fix + _shared_note(self.dir),
        )

    @contextlib.contextmanager
    def transaction(self, *, timeout: float | None = None, create: bool = False, secrets: bool = True,
                    interactive: bool = False) -> Iterator[Credentials]:
        """Lock, read again, let the caller change the document, then save it atomically.

        Nothing is written if the block raises.
        """
        if not create and not self.exists():
            self.load()  # raises NotConfigured before the lock would create the directory and lock file
        with self.lock(timeout):
            doc = self.load_or_new() if create else self.load()
            if secrets:
                self.open_secrets(doc, interactive=interactive)
            yield doc
            self.save(doc)


_FOREIGN_LOCK = ("It holds nothing, so its owner (or root) can remove it; or keep the credentials file in a "
                 "directory only you can write to.")


def _rm(lock: str) -> str:
    return f"It holds nothing and is made again when needed; remove it with: rm -- {shell_quote(lock)}"


def _shared_note(directory: str) -> str:
    """A sentence for hints when `directory` can be written by others (a sticky one like /tmp
    passes the directory check, but anyone there can plant files), else ''."""
    try:
        st = os.stat(directory)
    except OSError:
        return ""
    if not st.st_mode & 0o022:
        return ""
    return (f" The directory {directory} can be written by others (mode {stat.S_IMODE(st.st_mode):04o}), so "
            "anyone can put files there: keep the credentials file in a directory only you can write to, "
            "e.g. ~/.config/procore-setup (mkdir -m 700), and give --config its path.")


def _biggest(doc: Credentials) -> str:
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


def lock_timeout() -> float:
    """Seconds to wait for the lock: $PROCORE_SETUP_LOCK_TIMEOUT or 60."""
    return env_seconds("PROCORE_SETUP_LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT, 0, 3600)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: leave its file alone
    return True


def _fsync_dir(path: str) -> None:
    if sys.platform == "win32":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_mode(path: str) -> str:
    """The file's permission bits as 0600-style text, or '?' when unreadable."""
    try:
        return f"{stat.S_IMODE(os.stat(path).st_mode):04o}"
    except OSError:
        return "?"
