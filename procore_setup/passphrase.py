"""Where the passphrase of an encrypted store comes from, and opening the store with it.

Where the passphrase comes from, first that answers wins:

1. ``PROCORE_SETUP_PASSPHRASE``;
2. a passphrase command (``--passphrase-command``, else ``passphrase_command`` in the
   ``[encryption]`` table), split with shlex and run without a shell, stdin closed,
   without the secret-bearing ``PROCORE_*`` variables in its environment, for at most
   ``PROCORE_SETUP_PASSPHRASE_TIMEOUT`` seconds (default 10); its stdout minus one
   trailing newline is the passphrase. Messages name only its program, never its arguments;
3. the OS keyring (service ``procore-setup``, user = the file's path), when the
   optional ``keyring`` package is installed and answers within 3 s;
4. a hidden prompt, only when stdin is a terminal.

`encrypt` takes a new passphrase from the same places except the keyring, asking
twice on a terminal; a passphrase command it stores must print that passphrase.

With none of them, the command fails at once (exit 6) saying how to give it, so a
cron job never waits for a prompt. A passphrase that comes but is wrong is an error
too (no fall-through to the next source), and nothing is written.
"""
from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from .crypto import Cipher, derive_key, set_back, table_params, verify_key
from .errors import ChangedWithoutPassphrase, CredentialsFileError, PassphraseNeeded, UsageError, env_seconds
from .hints import program

if TYPE_CHECKING:
    import subprocess

    from .profile import Credentials
    from .settings import Unlock

ENV_PASSPHRASE = "PROCORE_SETUP_PASSPHRASE"
ENV_NEW_PASSPHRASE = "PROCORE_SETUP_NEW_PASSPHRASE"  # for `procore-setup passphrase`, unattended
ENV_TIMEOUT = "PROCORE_SETUP_PASSPHRASE_TIMEOUT"
DEFAULT_COMMAND_TIMEOUT = 10.0
KEYRING_TIMEOUT = 3.0
KEYRING_SERVICE = "procore-setup"

# Keys this process has already derived and checked, by (path, salt, n, r, p): `refresh --all`
# opens the file once per profile, and neither the KDF nor a passphrase command should run again.
_KEYS: dict[tuple[Any, ...], bytes] = {}


# -- passphrase sources ------------------------------------------------------------------------

class _Source:
    """Where a passphrase came from, for messages (never the passphrase itself)."""

    def __init__(self, kind: str, label: str, passphrase: str, retry: Any = None) -> None:
        self.kind = kind  # "env", "command", "keyring" or "prompt"
        self.label = label
        self.passphrase = passphrase
        self.retry = retry  # a callable giving another try (the prompt), or None

    def __repr__(self) -> str:
        return f"_Source({self.label!r})"


def command_timeout() -> float:
    """Seconds a passphrase command may run: $PROCORE_SETUP_PASSPHRASE_TIMEOUT or 10."""
    return env_seconds(ENV_TIMEOUT, DEFAULT_COMMAND_TIMEOUT, 0.1, 600)


def shown_command(command: str, *secrets: str) -> str:
    """A passphrase command as messages show it: its program's name only, `…` for the rest.

    Its arguments may hold anything (`echo hunter2`, a vault token, a path that names the
    secret), and messages end up in cron mail. `secrets` (a passphrase it printed) are also
    blotted out of the name, in case the program is named after one.
    """
    import shlex

    from .checks import shown

    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    if not words:
        return "(empty)"
    name = os.path.basename(words[0]) or words[0]
    for secret in secrets:
        if secret:
            name = name.replace(secret, "…")
    return shown(name, 60) + (" …" if len(words) > 1 else "")


# What a passphrase command's environment leaves out: every PROCORE_ variable that names a
# secret (the passphrases, the client secret; the *_TIMEOUT settings are harmless). The
# command needs none of them, and whatever it runs (a helper, a shell, a logger) could leak them.
_SECRET_ENV_WORDS = ("SECRET", "PASSPHRASE", "TOKEN", "PASSWORD")


# A shared store's URL may hold its password; libpq and redis-cli read theirs from these.
_STORE_SECRET_ENV = ("PROCORE_SETUP_STORE", "PGPASSWORD", "REDISCLI_AUTH")


def _child_env() -> dict[str, str]:
    def secret(name: str) -> bool:
        upper = name.upper()
        return (upper.startswith("PROCORE") and any(w in upper for w in _SECRET_ENV_WORDS)
                and not upper.endswith("_TIMEOUT"))

    return {k: v for k, v in os.environ.items() if not secret(k) and k.upper() not in _STORE_SECRET_ENV}


def run_passphrase_command(command: str, path: str) -> str:
    """Run the command (no shell, stdin closed, time-limited); its stdout is the passphrase.

    Its stderr is captured and dropped, never passed through: under the wizard it would draw
    over the screen, and quoted in a message it could carry what the message must not (a
    trace of the command, the passphrase itself). A failure says to run it by hand.
    """
    import shlex
    import subprocess
    shown = shown_command(command)
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise CredentialsFileError(f"{path}: the passphrase command `{shown}` does not parse ({exc}).") from None
    if not argv:
        raise CredentialsFileError(f"{path}: the passphrase command is empty.")
    timeout = command_timeout()
    try:
        # A new session, so a timeout can kill the command and everything it started (a `sh -c`
        # wrapper's children would otherwise keep our pipe open and hang us anyway).
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True, close_fds=True, env=_child_env())
    except OSError as exc:
        raise CredentialsFileError(
            f"{path}: cannot run the passphrase command `{shown}`: {exc.strerror or exc}.",
            hint="Check the command (it is run without a shell, so no pipes or ~), or give the passphrase "
            f"in {ENV_PASSPHRASE}.",
        ) from None
    try:
        out, _err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise CredentialsFileError(
            f"{path}: the passphrase command `{shown}` did not finish within {timeout:g} s and was stopped.",
            hint=f"Check that it runs unattended (no prompt), or allow it longer with {ENV_TIMEOUT}=SECONDS.",
        ) from None
    except BaseException:
        _kill_group(proc)
        raise
    if proc.returncode != 0:
        how = (f"was killed by signal {-proc.returncode}" if proc.returncode < 0
               else f"failed with exit code {proc.returncode}")
        raise CredentialsFileError(
            f"{path}: the passphrase command `{shown}` {how}.",
            hint="Run it by hand to see why (its error output is not shown here); nothing was changed.",
        )
    try:
        text = out.decode("utf-8")
    except UnicodeDecodeError:
        raise CredentialsFileError(f"{path}: the passphrase command `{shown}` printed something that is not UTF-8.") from None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        raise CredentialsFileError(f"{path}: the passphrase command `{shown}` printed nothing.",
                                   hint="It must print the passphrase on its standard output.")
    return text


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    import signal
    import subprocess
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (OSError, AttributeError):
        try:
            proc.kill()
        except OSError:
            pass
    try:
        proc.communicate(timeout=2)
    except (subprocess.TimeoutExpired, OSError, ValueError):
        pass


def _keyring_call(method: str, *args: str, timeout: float) -> tuple[Any, str | None]:
    """(result, None) of keyring.<method>(*args), or (None, why not) when keyring is absent,
    failing or slow.

    keyring is imported and asked in a daemon thread: a locked or absent desktop keyring
    (D-Bus waiting for an unlock dialog) must not hang a cron job.
    """
    import threading

    result: dict[str, Any] = {}

    def ask() -> None:
        try:
            import keyring  # optional extra: pip install 'procore-setup[keyring]'
        except ImportError:
            result["why"] = "not installed"
            return
        except Exception as exc:  # a broken install must not stop the other sources
            result["why"] = f"cannot be imported ({type(exc).__name__})"
            return
        try:
            result["value"] = getattr(keyring, method)(*args)
        except Exception as exc:
            result["why"] = f"failed ({type(exc).__name__})"

    t = threading.Thread(target=ask, name="procore-setup-keyring", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        return None, f"did not answer within {timeout:g} s"
    return result.get("value"), result.get("why")


def keyring_passphrase(path: str, timeout: float = KEYRING_TIMEOUT) -> tuple[str | None, str | None]:
    """(passphrase, None) from the OS keyring, or (None, why not) when it is absent, empty, failing or slow."""
    value, why = _keyring_call("get_password", KEYRING_SERVICE, path, timeout=timeout)
    if why is None and value:
        return str(value), None
    return None, why or "has no entry for this file"


def keyring_store(path: str, passphrase: str, timeout: float = KEYRING_TIMEOUT) -> str | None:
    """Store the passphrase of `path` in the OS keyring. None if done, else why not."""
    _, why = _keyring_call("set_password", KEYRING_SERVICE, path, passphrase, timeout=timeout)
    return why


def _prompt(label: str) -> str:
    import getpass

    try:
        return getpass.getpass(label)
    except EOFError:
        return ""


def _find_passphrase(path: str, command: str | None, *, interactive: bool, new: bool,
                     prefix: str | None = None) -> _Source:
    """The first passphrase source that answers, in the documented order."""
    env = os.environ.get(ENV_PASSPHRASE)
    if env is not None:
        if not env:
            raise CredentialsFileError(f"{ENV_PASSPHRASE} is set but empty.",
                                       hint="Unset it, or set it to the passphrase of " + path + ".")
        return _Source("env", f"${ENV_PASSPHRASE}", env)
    if command:
        printed = run_passphrase_command(command, path)
        return _Source("command", f"the passphrase command `{shown_command(command, printed)}`", printed)
    why: str | None = ""
    if not new:  # a new passphrase is chosen by the user, not found in a keyring entry
        value, why = keyring_passphrase(path)
        if value is not None:
            return _Source("keyring", "the OS keyring", value)
    if interactive:
        if new:
            return _Source("prompt", "the prompt", _prompt_new(path))
        return _Source("prompt", "the prompt", _prompt(f"Passphrase for {path}: "),
                       retry=lambda: _prompt(f"Wrong passphrase. Passphrase for {path}: "))
    if new:
        raise CredentialsFileError(
            f"No new passphrase for {path}: stdin is not a terminal, so none can be asked for.",
            hint=f"Give it in {ENV_PASSPHRASE}, or with --passphrase-command CMD, or run on a terminal. "
            "Nothing was changed.",
        )
    import shlex

    raise PassphraseNeeded(
        f"{path} has encrypted secrets, and no passphrase was given (stdin is not a terminal, "
        f"so none can be asked for; OS keyring: {why}).",
        hint=_HOW_TO_GIVE.format(cmd=prefix or f"{program()} --config {shlex.quote(path)}", env=ENV_PASSPHRASE),
    )


_HOW_TO_GIVE = """\
Give the passphrase in one of these ways:
  - set {env} in the environment of the job;
  - store a command that prints it: {cmd} encrypt --passphrase-command 'pass show procore-setup';
  - keep it in the OS keyring: pip install 'procore-setup[keyring]'; {cmd} encrypt --keyring;
  - run the command on a terminal, to be asked for it.
Nothing was changed."""


def _prompt_new(path: str) -> str:
    for _ in range(3):
        first = _prompt(f"New passphrase for {path}: ")
        if not first:
            print("procore-setup: the passphrase cannot be empty.", file=sys.stderr)
            continue
        if _prompt("Repeat it: ") == first:
            return first
        print("procore-setup: the two passphrases differ; try again.", file=sys.stderr)
    raise UsageError("No passphrase set (empty or mismatched three times). Nothing was changed.")


# -- opening an encrypted document ---------------------------------------------------------------

def cipher_for(doc: Credentials, *, interactive: bool = False, passphrase_command: str | None = None) -> Cipher:
    """The cipher of an encrypted document, from the first passphrase source that answers.

    Raises CredentialsFileError (exit 6) for a missing or wrong passphrase, and
    ChangedWithoutPassphrase for a profile handed out already (by `doc.get`) whose seal does
    not hold: before any of its secrets is decrypted, let alone sent. Writes nothing.
    """
    cipher = _cipher_and_source(doc, interactive=interactive, passphrase_command=passphrase_command)[0]
    for name in doc.handed_out():
        problem = doc.seal_problem(name, cipher)
        if problem is not None:
            raise problem
    return cipher


def _cipher_and_source(doc: Credentials, *, interactive: bool, passphrase_command: str | None,
                       use_cache: bool = True) -> tuple[Cipher, _Source | None]:
    """cipher_for, and where the right passphrase came from (None: a key this process knew)."""
    table = doc.encryption
    if table is None:
        raise CredentialsFileError(f"{doc.where}: internal error: the file is not encrypted.")
    salt, n, r, p = table_params(doc.where, table)
    stored_cmd = table.get("passphrase_command")
    if stored_cmd is not None and not isinstance(stored_cmd, str):
        raise CredentialsFileError(f"{doc.where}: [encryption] passphrase_command must be a string.")
    cache_key = (doc.where, salt, n, r, p)
    known = _KEYS.get(cache_key) if use_cache else None
    if known is not None and verify_key(Cipher(known), table):
        return Cipher(known), None
    cached = _cached_key(doc, salt, n, r, p) if use_cache else None
    if cached is not None:
        key = cached.lookup()
        if key is not None:
            cipher = Cipher(key)
            if verify_key(cipher, table):
                _KEYS[cache_key] = key
                return cipher, None
            cached.drop()  # a stale or wrong key (or not ours): discarded, never trusted
            _refuse_set_back(doc, cipher, table)
    command = passphrase_command or stored_cmd or None
    source = _find_passphrase(doc.where, command, interactive=interactive, new=False,
                              prefix=program() + doc.store.address.cli_flag(explicit=True) if doc.store else None)
    attempts = 3 if source.retry else 1
    passphrase = source.passphrase
    for attempt in range(attempts):
        key = derive_key(passphrase, salt, n, r, p)
        cipher = Cipher(key)
        if verify_key(cipher, table):
            _KEYS[cache_key] = key
            source.passphrase = passphrase
            if cached is not None:
                cached.keep(key, _token_life(doc))
            return cipher, source
        if attempt + 1 < attempts:
            passphrase = source.retry()
    _refuse_set_back(doc, cipher, table)
    raise CredentialsFileError(
        f"Wrong passphrase for {doc.where} (from {source.label}).",
        hint="Nothing was changed. Check the passphrase and its source, and try again.",
    )


def _refuse_set_back(doc: Credentials, cipher: Cipher, table: dict[str, Any]) -> None:
    if set_back(cipher, table):
        raise ChangedWithoutPassphrase(
            f"{doc.where}: its [encryption] table was changed by someone without the passphrase (set back to "
            "version 1, which has no seals over where the secrets are sent). It is refused, and nothing was sent.",
            hint="The store was left as it is. Find out who can write it, and restore it from a backup.",
        )


class _CachedKey:
    """The key cache's entry (keycache.py) for one store's salt and scrypt parameters."""

    __slots__ = ("_name",)

    def __init__(self, name: bytes) -> None:
        self._name = name

    def __repr__(self) -> str:
        return "_CachedKey()"

    def lookup(self) -> bytes | None:
        from . import keycache

        return keycache.lookup(self._name)

    def keep(self, key: bytes, seconds: float) -> None:
        from . import keycache

        keycache.store(self._name, key, seconds)

    def drop(self) -> None:
        from . import keycache

        keycache.drop(self._name)


def _cached_key(doc: Credentials, salt: bytes, n: int, r: int, p: int) -> _CachedKey | None:
    """The key cache's entry for this document, or None when the cache is turned off."""
    from . import keycache

    if not keycache.enabled():
        return None
    identity = doc.store.address.key_id() if doc.store is not None else doc.where
    return _CachedKey(keycache.name(identity, salt, n, r, p))


def _token_life(doc: Credentials) -> float:
    """How long a derived key may be cached: the longest remaining life of the document's access
    tokens (0: none is valid, so nothing is cached)."""
    from .profile import utcnow

    now = utcnow()
    lives = [(prof.expires_at - now).total_seconds() for prof in doc.profiles.values()
             if prof.expires_at is not None and prof.data.get("access_token")]
    return max(lives, default=0.0)


def forget_key(doc: Credentials, table: dict[str, Any]) -> None:
    """Forget the key of `table` (the document's old [encryption] table), in this process and in
    the key cache: for `passphrase` and `decrypt`."""
    salt, n, r, p = table_params(doc.where, table)
    _KEYS.pop((doc.where, salt, n, r, p), None)
    from . import keycache

    identity = doc.store.address.key_id() if doc.store is not None else doc.where
    keycache.drop(keycache.name(identity, salt, n, r, p))  # whether or not the cache is on now


def unlock(doc: Credentials, passphrase: str) -> bool:
    """Check `passphrase` against an encrypted document and, if right, remember its key for this
    process (for front-ends that ask for it themselves, like the wizard). False if it is wrong."""
    table = doc.encryption
    if table is None or not passphrase:
        return False
    salt, n, r, p = table_params(doc.where, table)
    key = derive_key(passphrase, salt, n, r, p)
    if not verify_key(Cipher(key), table):
        return False
    _KEYS[(doc.where, salt, n, r, p)] = key
    cached = _cached_key(doc, salt, n, r, p)
    if cached is not None:
        cached.keep(key, _token_life(doc))
    return True


# -- opening a document's secrets -----------------------------------------------------------------------

def unlock_with(doc: Credentials, cipher: Cipher, *, strict: bool = False) -> None:
    """Decrypt the secrets of an encrypted document in place with `cipher`, the document's (the
    caller got it from passphrase.cipher_for, which checked it). No-op for a plain document, or
    one opened already.

    A secret that is no ciphertext of ours (plain text, an unknown `enc:v2:`) is left as it
    is and makes its profile unusable (see Credentials.get), not the whole file; with
    `strict` (decrypting or re-encrypting the whole file) it is an error at once. Profiles
    handed out by get() already are checked here, once their secrets are plain.
    """
    if not doc.encrypted or doc.cipher is not None:
        return
    from .crypto import is_encrypted_value
    from .profile import SECRET_FIELDS, not_ciphertext, profile_problem

    doc.cipher = cipher
    for name, prof in doc.profiles.items():
        for secret in SECRET_FIELDS:
            value = prof.data.get(secret)
            if value is None:
                continue
            if is_encrypted_value(value):
                prof.data[secret] = cipher.decrypt(value, f"{name}/{secret}", path=doc.where)
            else:
                doc.keep_unopened(name, secret, value, not_ciphertext(value) or "is not usable")
    if strict:
        for name in doc.unopened_profiles():
            problem = profile_problem(doc, doc.profiles[name], whole_file=True)
            if problem is not None:
                raise problem
    for name in doc.handed_out():
        if name in doc.profiles:
            doc.check(doc.profiles[name])


def open_secrets(doc: Credentials, unlock: Unlock, *, strict: bool = False) -> None:
    """Get the cipher of an encrypted document from the first passphrase source that answers
    (this run's `unlock`: see settings.Unlock), then `unlock_with` it. No-op for a plain
    document, or one opened already."""
    if not doc.encrypted or doc.cipher is not None:
        return
    cipher = cipher_for(doc, interactive=unlock.interactive, passphrase_command=unlock.command)
    unlock_with(doc, cipher, strict=strict)
