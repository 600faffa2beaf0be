"""Optional encryption of the secrets in the credentials file, under a passphrase.

Only the three secret fields (client_secret, access_token, refresh_token) are
encrypted; every other field stays readable, so `status` needs no passphrase.

The construction, all from the `cryptography` library (nothing hand-rolled):

* key: scrypt(passphrase NFC-normalised as UTF-8, salt) -> 32 bytes, with a random
  16-byte salt per file (a new one at each `encrypt`);
* each secret: AES-256-GCM with a random 96-bit nonce, stored as
  ``enc:v1:`` + urlsafe-base64(nonce || ciphertext || tag). The associated data is
  ``procore-setup/v1/<profile>/<field>``, so a value cannot be moved to another field
  or profile without the tag failing;
* a key-check value (AES-GCM of a constant under the key) in the ``[encryption]``
  table, so a wrong passphrase is detected before anything is decrypted or written.

The ``[encryption]`` table holds ``version``, ``cipher``, ``kdf``, ``n``, ``r``, ``p``,
``salt``, ``check`` and, optionally, ``passphrase_command``.

KDF cost. scrypt with n=2**15, r=8, p=1 needs 128*n*r = 32 MiB of memory and, on the
2-CPU x86 machine it was chosen on, 0.13 s of one core when idle (in-process: n=2**14
0.07 s, 2**15 0.13 s, 2**16 0.28 s, 2**17 0.54 s). It is paid once per process (a key
derived and checked is reused within the process, e.g. by `refresh --all`), and it is
nearly the whole extra cost of `procore-setup token` on an encrypted file, with ~35 ms
of importing cryptography: bench/bench_crypto.py measured a median of 114 ms plain
against 301 ms encrypted (+187 ms, 2.6x), and +320..380 ms on the same machine under
heavy load. For comparison, rclone's config encryption, the reference to beat, keys
its secretbox with one unsalted SHA-256 of the password (no KDF at all). 2**15 keeps
`token` well under half a second, and an attacker with a copied file pays 32 MiB and
~0.1 s of a core per guess.
Files with other parameters are read as long as they are within sane bounds (n from
2**14 to 2**20, memory at most 1 GiB), so a tampered file cannot make a cron job
allocate without limit.

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

import base64
import binascii
import hmac
import os
import sys
import unicodedata
from typing import TYPE_CHECKING, Any

from .errors import CredentialsFileError, PassphraseNeeded, UsageError, env_seconds

if TYPE_CHECKING:
    import subprocess

    from .credentials import Credentials, FileStore

PREFIX = "enc:v1:"
VERSION = 1
CIPHER = "aes-256-gcm"
KDF = "scrypt"
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
NONCE_BYTES = 12
KEY_BYTES = 32
ENV_PASSPHRASE = "PROCORE_SETUP_PASSPHRASE"
ENV_NEW_PASSPHRASE = "PROCORE_SETUP_NEW_PASSPHRASE"  # for `procore-setup passphrase`, unattended
ENV_TIMEOUT = "PROCORE_SETUP_PASSPHRASE_TIMEOUT"
DEFAULT_COMMAND_TIMEOUT = 10.0
KEYRING_TIMEOUT = 3.0
KEYRING_SERVICE = "procore-setup"
_AAD_PREFIX = "procore-setup/v1/"
_CHECK_AAD = "[encryption]/check"
_CHECK_PLAINTEXT = "procore-setup key check"
# Bounds on parameters read from a file: a tampered file must not exhaust memory or time.
_MIN_N, _MAX_N = 2**14, 2**20
_MAX_R, _MAX_P = 32, 16
_MAX_MEMORY = 1 << 30

# Keys this process has already derived and checked, by (path, salt, n, r, p): `refresh --all`
# opens the file once per profile, and neither the KDF nor a passphrase command should run again.
_KEYS: dict[tuple[Any, ...], bytes] = {}


def is_encrypted_value(value: Any) -> bool:
    """Whether a stored field value is one of our ciphertexts."""
    return isinstance(value, str) and value.startswith(PREFIX)


class Cipher:
    """AES-256-GCM under one derived key. Never shows the key in a repr."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "Cipher(aes-256-gcm)"

    def encrypt(self, plaintext: str, aad: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), (_AAD_PREFIX + aad).encode("utf-8"))
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")

    def decrypt(self, token: str, aad: str, path: str) -> str:
        from cryptography.exceptions import InvalidTag

        profile, _, field = aad.rpartition("/")
        where = f"{path}: the encrypted {field} of profile {profile!r}"
        if not is_encrypted_value(token):
            raise CredentialsFileError(f"{where} is not an encrypted value.", hint=_DAMAGED)
        body = token[len(PREFIX):]
        try:
            blob = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            raise CredentialsFileError(f"{where} is not valid base64.", hint=_DAMAGED) from None
        if len(blob) < NONCE_BYTES + 16:
            raise CredentialsFileError(f"{where} is truncated.", hint=_DAMAGED)
        try:
            plain = self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], (_AAD_PREFIX + aad).encode("utf-8"))
        except InvalidTag:
            raise CredentialsFileError(
                f"{where} does not decrypt although the passphrase is right: it was altered, damaged, "
                "or copied from another field, profile or file.",
                hint=_DAMAGED,
            ) from None
        try:
            return plain.decode("utf-8")
        except UnicodeDecodeError:
            raise CredentialsFileError(f"{where} is not UTF-8 text.", hint=_DAMAGED) from None


_DAMAGED = "The file was left as it is. Set the profile up again with `procore-setup login`, or restore a backup."


# -- key derivation -----------------------------------------------------------------------------

def derive_key(passphrase: str, salt: bytes, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> bytes:
    """The 32-byte key scrypt derives from the passphrase (NFC-normalised, UTF-8) and salt."""
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    data = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    return Scrypt(salt=salt, length=KEY_BYTES, n=n, r=r, p=p).derive(data)


def new_encryption_table(passphrase: str, *, passphrase_command: str | None = None) -> tuple[dict[str, Any], Cipher]:
    """A fresh [encryption] table (new random salt) and the cipher for it."""
    salt = os.urandom(SALT_BYTES)
    cipher = Cipher(derive_key(passphrase, salt))
    table: dict[str, Any] = {
        "version": VERSION,
        "cipher": CIPHER,
        "kdf": KDF,
        "n": SCRYPT_N,
        "r": SCRYPT_R,
        "p": SCRYPT_P,
        "salt": base64.b64encode(salt).decode("ascii"),
        "check": cipher.encrypt(_CHECK_PLAINTEXT, _CHECK_AAD),
    }
    if passphrase_command:
        table["passphrase_command"] = passphrase_command
    return table, cipher


def _params(path: str, table: dict[str, Any]) -> tuple[bytes, int, int, int]:
    """(salt, n, r, p) from the table, refusing anything unknown or out of bounds."""
    def bad(what: str) -> CredentialsFileError:
        return CredentialsFileError(f"{path}: [encryption] {what}.", hint=_DAMAGED)

    version = table.get("version")
    if version != VERSION or table.get("cipher") != CIPHER or table.get("kdf") != KDF:
        if isinstance(version, int) and not isinstance(version, bool) and version > VERSION:
            raise CredentialsFileError(
                f"{path}: encrypted by a newer procore-setup (encryption version {version}).",
                hint="Upgrade procore-setup (pip install -U procore-setup).",
            )
        raise bad(f"has an unknown version, cipher or kdf (this procore-setup writes version {VERSION}, "
                  f"{CIPHER}, {KDF})")
    nums = {}
    for key in ("n", "r", "p"):
        v = table.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise bad(f"field {key} must be a positive integer")
        nums[key] = v
    n, r, p = nums["n"], nums["r"], nums["p"]
    if n & (n - 1) or not _MIN_N <= n <= _MAX_N or r > _MAX_R or p > _MAX_P or 128 * n * r > _MAX_MEMORY:
        raise bad(f"has scrypt parameters out of bounds (n={n}, r={r}, p={p}; n must be a power of two "
                  f"from 2**14 to 2**20, r at most {_MAX_R}, p at most {_MAX_P}, memory at most 1 GiB)")
    salt_text = table.get("salt")
    try:
        salt = base64.b64decode(salt_text, validate=True) if isinstance(salt_text, str) else b""
    except (binascii.Error, ValueError):
        salt = b""
    if not 16 <= len(salt) <= 64:
        raise bad("field salt must be 16 to 64 bytes in base64")
    if not is_encrypted_value(table.get("check")):
        raise bad("has no valid key-check value (field check)")
    return salt, n, r, p


def _verify(cipher: Cipher, table: dict[str, Any]) -> bool:
    from cryptography.exceptions import InvalidTag

    token = table["check"][len(PREFIX):]
    try:
        blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        plain = cipher._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], (_AAD_PREFIX + _CHECK_AAD).encode())
    except (InvalidTag, binascii.Error, ValueError):
        return False
    return hmac.compare_digest(plain, _CHECK_PLAINTEXT.encode())


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


def _child_env() -> dict[str, str]:
    def secret(name: str) -> bool:
        upper = name.upper()
        return (upper.startswith("PROCORE") and any(w in upper for w in _SECRET_ENV_WORDS)
                and not upper.endswith("_TIMEOUT"))

    return {k: v for k, v in os.environ.items() if not secret(k)}


def run_passphrase_command(command: str, path: str) -> str:
    """Run the command (no shell, stdin closed, time-limited); its stdout is the passphrase.

    Its stderr goes to ours, so its own diagnostics reach the user; its stdout is never shown.
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
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=None,
                                start_new_session=True, close_fds=True, env=_child_env())
    except OSError as exc:
        raise CredentialsFileError(
            f"{path}: cannot run the passphrase command `{shown}`: {exc.strerror or exc}.",
            hint="Check the command (it is run without a shell, so no pipes or ~), or give the passphrase "
            f"in {ENV_PASSPHRASE}.",
        ) from None
    try:
        out, _ = proc.communicate(timeout=timeout)
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
            hint="Run it by hand to see why; nothing was changed.",
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


def _find_passphrase(path: str, command: str | None, *, interactive: bool, new: bool) -> _Source:
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
    why = ""
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
        hint=_HOW_TO_GIVE.format(path=shlex.quote(path), env=ENV_PASSPHRASE),
    )


_HOW_TO_GIVE = """\
Give the passphrase in one of these ways:
  - set {env} in the environment of the job;
  - store a command that prints it: procore-setup --config {path} encrypt --passphrase-command 'pass show procore-setup';
  - keep it in the OS keyring: pip install 'procore-setup[keyring]'; procore-setup --config {path} encrypt --keyring;
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

    Raises CredentialsFileError (exit 6) for a missing or wrong passphrase; writes nothing.
    """
    return _cipher_and_source(doc, interactive=interactive, passphrase_command=passphrase_command)[0]


def _cipher_and_source(doc: Credentials, *, interactive: bool, passphrase_command: str | None,
                       use_cache: bool = True) -> tuple[Cipher, _Source | None]:
    """cipher_for, and where the right passphrase came from (None: a key this process knew)."""
    table = doc.encryption
    if table is None:
        raise CredentialsFileError(f"{doc.path}: internal error: the file is not encrypted.")
    salt, n, r, p = _params(doc.path, table)
    stored_cmd = table.get("passphrase_command")
    if stored_cmd is not None and not isinstance(stored_cmd, str):
        raise CredentialsFileError(f"{doc.path}: [encryption] passphrase_command must be a string.")
    cache_key = (doc.path, salt, n, r, p)
    known = _KEYS.get(cache_key) if use_cache else None
    if known is not None and _verify(Cipher(known), table):
        return Cipher(known), None
    command = passphrase_command or stored_cmd or None
    source = _find_passphrase(doc.path, command, interactive=interactive, new=False)
    attempts = 3 if source.retry else 1
    passphrase = source.passphrase
    for attempt in range(attempts):
        key = derive_key(passphrase, salt, n, r, p)
        cipher = Cipher(key)
        if _verify(cipher, table):
            _KEYS[cache_key] = key
            source.passphrase = passphrase
            return cipher, source
        if attempt + 1 < attempts:
            passphrase = source.retry()
    raise CredentialsFileError(
        f"Wrong passphrase for {doc.path} (from {source.label}).",
        hint="Nothing was changed. Check the passphrase and its source, and try again.",
    )


def unlock(doc: Credentials, passphrase: str) -> bool:
    """Check `passphrase` against an encrypted document and, if right, remember its key for this
    process (for front-ends that ask for it themselves, like the wizard). False if it is wrong."""
    table = doc.encryption
    if table is None or not passphrase:
        return False
    salt, n, r, p = _params(doc.path, table)
    key = derive_key(passphrase, salt, n, r, p)
    if not _verify(Cipher(key), table):
        return False
    _KEYS[(doc.path, salt, n, r, p)] = key
    return True


# -- the encrypt and decrypt commands -----------------------------------------------------------------

def encrypt_document(doc: Credentials, passphrase: str, *, passphrase_command: str | None = None) -> None:
    """Mark a plain document encrypted under `passphrase`; its secrets are encrypted when it is saved.

    For front-ends (the wizard's Saved screen) as well as `procore-setup encrypt`. The caller
    saves it with `store.save(doc)` under the lock.
    """
    if doc.encrypted:
        raise UsageError(f"{doc.path} is encrypted already.")
    if not passphrase:
        raise UsageError("The passphrase cannot be empty. Nothing was changed.")
    table, cipher = new_encryption_table(passphrase, passphrase_command=passphrase_command)
    doc.raw["encryption"] = table
    doc.cipher = cipher


def run_encrypt(store: FileStore, *, passphrase_command: str | None = None, interactive: bool = False,
                keyring: bool = False) -> int:
    """`procore-setup encrypt`: encrypt the secrets of the file, atomically, under the lock.

    On a file encrypted already, a new --passphrase-command is checked against the
    passphrase and stored, and --keyring stores the passphrase in the OS keyring; anything
    else is left as it is.
    """
    if passphrase_command is not None and not passphrase_command.strip():
        raise UsageError("--passphrase-command is empty.")
    with store.lock():
        doc = store.load()
        if doc.encrypted:
            if keyring:
                _keyring_for_encrypted(store, doc, passphrase_command, interactive)
                if not passphrase_command:
                    return 0
            return _set_command(store, doc, passphrase_command, interactive)
        source = _find_passphrase(store.path, passphrase_command, interactive=interactive, new=True)
        _warn_if_short(source.passphrase)
        if keyring:  # before the file changes: if the keyring cannot take it, nothing is changed
            _store_in_keyring(store.path, source.passphrase)
        count = _encrypt_locked(store, doc, source.passphrase, passphrase_command,
                                check_command=source.kind != "command", label=source.label)
    print(f"{store.path}: {count} secret(s) encrypted with the passphrase from {source.label}.")
    if keyring:
        print("The passphrase is in the OS keyring (service procore-setup, user = the file's path): "
              "runs of this user that can reach the keyring need nothing more.")
    elif passphrase_command:
        print("Unattended runs will get the passphrase from the stored command.")
    else:
        print(f"Scripts and cron jobs need the passphrase: set {ENV_PASSPHRASE}, store a command with "
              "`encrypt --passphrase-command CMD`, or keep it in the OS keyring with `encrypt --keyring`.")
    return 0


def encrypt_file(store: FileStore, passphrase: str, *, passphrase_command: str | None = None) -> int:
    """Encrypt the secrets of a plain file under `passphrase`, atomically under the lock.

    For front-ends that ask for the passphrase themselves (the wizard's Saved screen).
    Returns how many secrets were encrypted.
    """
    with store.lock():
        doc = store.load()
        if doc.encrypted:
            raise UsageError(f"{store.path} is encrypted already.")
        return _encrypt_locked(store, doc, passphrase, passphrase_command, check_command=True,
                               label="the wizard")


def _encrypt_locked(store: FileStore, doc: Credentials, passphrase: str, passphrase_command: str | None, *,
                    check_command: bool, label: str) -> int:
    if passphrase_command and check_command:
        # The command is stored for unattended runs: it had better print this very passphrase.
        shown = _unless_it_prints(passphrase_command, store.path, passphrase)
        if shown is not None:
            raise CredentialsFileError(
                f"The passphrase command `{shown}` does not print the passphrase given in {label}, "
                f"so unattended runs could not open {store.path}.",
                hint="Nothing was changed. Make them agree, or give only one of them.",
            )
    encrypt_document(doc, passphrase, passphrase_command=passphrase_command)
    store.save(doc)
    return _secret_count(doc)


def _unless_it_prints(command: str, path: str, passphrase: str, *also_hidden: str) -> str | None:
    """Run a passphrase command that is to be stored: None if it prints `passphrase`, else the
    command as a message may show it (whatever it printed, and the passphrases, blotted out)."""
    printed = run_passphrase_command(command, path)
    if hmac.compare_digest(printed.encode(), passphrase.encode()):
        return None
    return shown_command(command, printed, passphrase, *also_hidden)


def _store_in_keyring(path: str, passphrase: str) -> None:
    """Put the passphrase of `path` in the OS keyring and read it back, or raise (exit 6)."""
    why = keyring_store(path, passphrase)
    if why is None:
        back, why = keyring_passphrase(path)
        if back is not None and hmac.compare_digest(back.encode(), passphrase.encode()):
            return
        why = why or "it gives back a different value"
    raise CredentialsFileError(
        f"Cannot keep the passphrase of {path} in the OS keyring: {why}.",
        hint="Nothing was changed. The keyring needs the extra (pip install 'procore-setup[keyring]') and a "
        "working backend; or leave out --keyring and give the passphrase another way.",
    )


def _keyring_for_encrypted(store: FileStore, doc: Credentials, command: str | None, interactive: bool) -> None:
    """`encrypt --keyring` on a file encrypted already: check the passphrase, then keep it in the keyring."""
    _, source = _cipher_and_source(doc, interactive=interactive, passphrase_command=command, use_cache=False)
    assert source is not None
    if source.kind == "keyring":
        print(f"{store.path}: the OS keyring holds its passphrase already; nothing to do.")
        return
    _store_in_keyring(store.path, source.passphrase)
    print(f"{store.path}: its passphrase (from {source.label}) is now in the OS keyring.")


def _set_command(store: FileStore, doc: Credentials, command: str | None, interactive: bool) -> int:
    table = doc.encryption or {}
    if not command or command == table.get("passphrase_command"):
        print(f"{store.path}: the secrets are encrypted already; nothing to do.")
        print("To change the passphrase: procore-setup passphrase")
        return 0
    # The new command must open the file, or cron would be locked out.
    printed = run_passphrase_command(command, store.path)
    salt, n, r, p = _params(store.path, table)
    if not _verify(Cipher(derive_key(printed, salt, n, r, p)), table):
        raise CredentialsFileError(
            f"The passphrase command `{shown_command(command, printed)}` does not print the passphrase of "
            f"{store.path}.",
            hint="Nothing was changed.",
        )
    table["passphrase_command"] = command
    store.save(doc)  # the secrets are still the stored ciphertexts: no cipher needed
    print(f"{store.path}: passphrase command stored for unattended runs.")
    return 0


def run_change_passphrase(store: FileStore, *, passphrase_command: str | None = None,
                          new_passphrase_command: str | None = None, interactive: bool = False) -> int:
    """`procore-setup passphrase`: encrypt the secrets again under a new passphrase, in one atomic
    rewrite under the lock (the file is never plain on disk, not even for a moment).

    The old passphrase comes from the usual sources; the new one from --new-passphrase-command
    (then stored for unattended runs), $PROCORE_SETUP_NEW_PASSPHRASE, or a prompt on a terminal.
    A stored passphrase command that would print the old passphrase is refused, or cron would
    be locked out; a keyring entry that gave the old passphrase is updated first, and a keyring
    that cannot take the new one leaves everything as it was.
    """
    if new_passphrase_command is not None and not new_passphrase_command.strip():
        raise UsageError("--new-passphrase-command is empty.")
    with store.lock():
        doc = store.load()
        table = doc.encryption
        if table is None:
            raise UsageError(f"{store.path}: the secrets are not encrypted, so there is no passphrase to change.",
                             hint="To encrypt them: procore-setup encrypt")
        # the key this process may know is not enough: the new passphrase is compared to the old
        cipher, old = _cipher_and_source(doc, interactive=interactive, passphrase_command=passphrase_command,
                                         use_cache=False)
        assert old is not None
        stored_cmd = table.get("passphrase_command")  # a string: _cipher_and_source checked it
        store.open_secrets(doc, cipher=cipher)  # a value it cannot open stays as it is, still refused
        new = _new_passphrase(store.path, new_passphrase_command, interactive=interactive)
        if hmac.compare_digest(new.passphrase.encode(), old.passphrase.encode()):
            raise UsageError(f"The new passphrase (from {new.label}) is the same as the old one. Nothing was changed.")
        _warn_if_short(new.passphrase)
        keep_cmd = new_passphrase_command or stored_cmd
        if keep_cmd and not new_passphrase_command:
            shown = _unless_it_prints(keep_cmd, store.path, new.passphrase, old.passphrase)
            if shown is not None:
                raise CredentialsFileError(
                    f"The passphrase command stored in {store.path} (`{shown}`) does not print the new "
                    "passphrase, so unattended runs would be locked out.",
                    hint="Nothing was changed. Give the command that prints the new passphrase with "
                    "--new-passphrase-command CMD, or make the stored command print the new passphrase "
                    f"first and give the old one in {ENV_PASSPHRASE} or at the prompt.",
                )
        fresh, doc.cipher = new_encryption_table(new.passphrase, passphrase_command=keep_cmd)
        for key, value in table.items():  # keys a newer version wrote survive, as everywhere
            if key not in fresh and key != "passphrase_command":
                fresh[key] = value
        doc.raw["encryption"] = fresh
        if old.kind == "keyring":
            # The keyring entry first (checked by reading it back): if it cannot take the new
            # passphrase, runs that rely on it would be locked out, so nothing is changed.
            _store_in_keyring(store.path, new.passphrase)
            try:
                store.save(doc)
            except BaseException:
                keyring_store(store.path, old.passphrase)  # the file kept the old one: so does the keyring
                raise
        else:
            store.save(doc)
        count = _secret_count(doc)
    print(f"{store.path}: passphrase changed; {count} secret(s) encrypted again under the new one "
          f"(from {new.label}), with a new salt.")
    if new_passphrase_command:
        print("Unattended runs will get the passphrase from the new stored command.")
    elif keep_cmd:
        print("The stored passphrase command prints the new passphrase: unattended runs are unaffected.")
    if old.kind == "keyring":
        print("The OS keyring entry now holds the new passphrase.")
    elif old.kind == "env":
        print(f"Jobs that set {ENV_PASSPHRASE} need the new passphrase now.")
    return 0


def _new_passphrase(path: str, command: str | None, *, interactive: bool) -> _Source:
    """The new passphrase of `procore-setup passphrase`, from its own sources."""
    env = os.environ.get(ENV_NEW_PASSPHRASE)
    if env is not None and not env:
        raise UsageError(f"{ENV_NEW_PASSPHRASE} is set but empty. Nothing was changed.")
    if command:
        printed = run_passphrase_command(command, path)
        label = f"the new passphrase command `{shown_command(command, printed)}`"
        if env is not None and not hmac.compare_digest(env.encode(), printed.encode()):
            raise UsageError(f"{ENV_NEW_PASSPHRASE} and {label} give different passphrases. Nothing was changed.",
                             hint="Give only one of them, or make them agree.")
        return _Source("command", label, printed)
    if env is not None:
        return _Source("env", f"${ENV_NEW_PASSPHRASE}", env)
    if interactive:
        return _Source("prompt", "the prompt", _prompt_new(path))
    raise UsageError(
        f"No new passphrase for {path}: stdin is not a terminal, so none can be asked for.",
        hint=f"Give it in {ENV_NEW_PASSPHRASE}, or with --new-passphrase-command CMD, or run on a terminal. "
        "Nothing was changed.",
    )


def run_decrypt(store: FileStore, *, passphrase_command: str | None = None, interactive: bool = False) -> int:
    """`procore-setup decrypt`: store the secrets unencrypted again, atomically, under the lock."""
    with store.lock():
        doc = store.load()
        if not doc.encrypted:
            print(f"{store.path}: the secrets are not encrypted; nothing to do.")
            return 0
        store.open_secrets(doc, interactive=interactive, passphrase_command=passphrase_command, strict=True)
        doc.raw.pop("encryption", None)
        doc.cipher = None
        store.save(doc)
    print(f"{store.path}: secrets stored unencrypted again (the file stays owner-only, mode 0600).")
    return 0


def _secret_count(doc: Credentials) -> int:
    from .credentials import SECRET_FIELDS

    return sum(1 for prof in doc.profiles.values() for f in SECRET_FIELDS if prof.data.get(f))


def _warn_if_short(passphrase: str) -> None:
    if len(passphrase) < 8:
        print("procore-setup: warning: a passphrase shorter than 8 characters is easy to guess "
              "from a copy of the file.", file=sys.stderr)
