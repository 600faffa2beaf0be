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

Version 2 also authenticates where the secrets go. Each profile holds a ``seal``: AES-GCM of
a constant whose associated data is the profile's name and every field that decides where
its secrets are sent or who they belong to (``BOUND_FIELDS``), so that someone who can write
the store but lacks the passphrase cannot point a profile at their own host: the next run
refuses the profile before anything is sent. The key check of a version-2 table is made with
its own associated data, so a table set back to version 1 (no seals) is told from a wrong
passphrase. Version-1 tables are still read, and become version 2 on their next save with
the passphrase.

KDF cost. scrypt with n=2**15, r=8, p=1 needs 128*n*r = 32 MiB of memory and, on the
2-CPU x86 machine it was chosen on, 0.13 s of one core when idle (in-process: n=2**14
0.07 s, 2**15 0.13 s, 2**16 0.28 s, 2**17 0.54 s). It is paid once per process (a key
derived and checked is reused within the process, e.g. by `refresh --all`) and, where the
Linux kernel keyring can be used, once per access-token life across processes: the key is
cached there (keycache.py; PROCORE_SETUP_KEY_CACHE=0 turns it off). Without the cache it
was nearly the whole extra cost of `procore-setup token` on an encrypted file
(bench/bench_crypto.py: 3.6x a plain one); with it, what remains is importing
cryptography (~20 ms). See docs/performance.md. For comparison, rclone's config encryption, the reference to beat, keys
its secretbox with one unsalted SHA-256 of the password (no KDF at all). 2**15 keeps
`token` well under half a second, and an attacker with a copied file pays 32 MiB and
~0.1 s of a core per guess.
Files with other parameters are read as long as they are within sane bounds (n from
2**14 to 2**20, memory at most 1 GiB), so a tampered file cannot make a cron job
allocate without limit.

Where the passphrase comes from is `passphrase.py`; the commands that encrypt, decrypt and
change the passphrase of a store are `encryption.py`. This module is the primitives only.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

from .errors import CredentialsFileError

PREFIX = "enc:v1:"
VERSION = 2  # written; 1 is still read (no seals), and upgraded on a save with the key
READ_VERSIONS = (1, 2)
CIPHER = "aes-256-gcm"
KDF = "scrypt"
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
NONCE_BYTES = 12
KEY_BYTES = 32
_AAD_PREFIX = "procore-setup/v1/"
_CHECK_AADS = {1: "[encryption]/check", 2: "[encryption]/check/v2"}
# The seal's associated data starts differently from every secret's ("procore-setup/v1/NAME/FIELD"),
# so neither can stand for the other.
_SEAL_AAD_PREFIX = "procore-setup/v2/seal\n"
_SEAL_PLAINTEXT = b"procore-setup seal"
_CHECK_PLAINTEXT = "procore-setup key check"
# Bounds on parameters read from a file: a tampered file must not exhaust memory or time.
_MIN_N, _MAX_N = 2**14, 2**20
_MAX_R, _MAX_P = 32, 16
_MAX_MEMORY = 1 << 30



def _same(a: bytes, b: bytes) -> bool:
    """Constant-time equality: hmac.compare_digest's own function. `import hmac` (and
    cryptography's constant_time, which imports it) would load OpenSSL's hashlib as well, 3 ms
    on every `token` of an encrypted store, for nothing else."""
    try:
        import _operator
    except ImportError:  # another Python implementation
        import hmac

        return hmac.compare_digest(a, b)
    return _operator._compare_digest(a, b)


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
            raise CredentialsFileError(f"{where} is not an encrypted value.", hint=_damaged())
        body = token[len(PREFIX):]
        try:
            blob = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            raise CredentialsFileError(f"{where} is not valid base64.", hint=_damaged()) from None
        if len(blob) < NONCE_BYTES + 16:
            raise CredentialsFileError(f"{where} is truncated.", hint=_damaged())
        try:
            plain = self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], (_AAD_PREFIX + aad).encode("utf-8"))
        except InvalidTag:
            raise CredentialsFileError(
                f"{where} does not decrypt although the passphrase is right: it was altered, damaged, "
                "or copied from another field, profile or file.",
                hint=_damaged(),
            ) from None
        try:
            return plain.decode("utf-8")
        except UnicodeDecodeError:
            raise CredentialsFileError(f"{where} is not UTF-8 text.", hint=_damaged()) from None

    def seal(self, bound: str) -> str:
        """The seal of a profile's bound fields (`bound`: their encoding, see profile.bound_text)."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, _SEAL_PLAINTEXT, (_SEAL_AAD_PREFIX + bound).encode("utf-8"))
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")

    def seal_ok(self, bound: str, seal: Any) -> bool:
        """Whether `seal` was made under this key for exactly these bound fields."""
        plain = self._open(seal, (_SEAL_AAD_PREFIX + bound).encode("utf-8"))
        return plain is not None and _same(plain, _SEAL_PLAINTEXT)

    def _open(self, token: Any, aad: bytes) -> bytes | None:
        """The plaintext of one of our ciphertexts, or None if it is none or does not open."""
        from cryptography.exceptions import InvalidTag

        if not is_encrypted_value(token):
            return None
        body = token[len(PREFIX):]
        try:
            blob = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(blob) < NONCE_BYTES + 16:
            return None
        try:
            plain: bytes = self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except InvalidTag:
            return None
        return plain


def _damaged() -> str:
    from .hints import program

    return f"The file was left as it is. Set the profile up again with `{program()} login`, or restore a backup."


# -- key derivation -----------------------------------------------------------------------------

def derive_key(passphrase: str, salt: bytes, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> bytes:
    """The 32-byte key scrypt derives from the passphrase (NFC-normalised, UTF-8) and salt."""
    import unicodedata

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
        "check": cipher.encrypt(_CHECK_PLAINTEXT, _CHECK_AADS[VERSION]),
    }
    if passphrase_command:
        table["passphrase_command"] = passphrase_command
    return table, cipher


def table_params(path: str, table: dict[str, Any]) -> tuple[bytes, int, int, int]:
    """(salt, n, r, p) from the table, refusing anything unknown or out of bounds."""
    def bad(what: str) -> CredentialsFileError:
        return CredentialsFileError(f"{path}: [encryption] {what}.", hint=_damaged())

    version = table.get("version")
    if isinstance(version, bool) or version not in READ_VERSIONS or table.get("cipher") != CIPHER \
            or table.get("kdf") != KDF:
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


def table_version(table: dict[str, Any]) -> int:
    """The version of a table table_params has accepted (1 or 2)."""
    version = table.get("version")
    return version if isinstance(version, int) and version in READ_VERSIONS else VERSION


def verify_key(cipher: Cipher, table: dict[str, Any]) -> bool:
    """Whether `cipher` is the key of the table (its key-check value opens, for its version)."""
    plain = cipher._open(table.get("check"), (_AAD_PREFIX + _CHECK_AADS[table_version(table)]).encode())
    return plain is not None and _same(plain, _CHECK_PLAINTEXT.encode())


def set_back(cipher: Cipher, table: dict[str, Any]) -> bool:
    """Whether a table that says version 1 holds the key check of a version-2 one under this key:
    someone without the passphrase set it back, to make the profiles' seals look optional."""
    if table_version(table) != 1:
        return False
    plain = cipher._open(table.get("check"), (_AAD_PREFIX + _CHECK_AADS[2]).encode())
    return plain is not None and _same(plain, _CHECK_PLAINTEXT.encode())


def upgrade_table(cipher: Cipher, table: dict[str, Any]) -> None:
    """Make a version-1 table (opened with `cipher`) version 2, in place: its profiles get seals
    on the same save."""
    if table_version(table) < VERSION:
        table["version"] = VERSION
        table["check"] = cipher.encrypt(_CHECK_PLAINTEXT, _CHECK_AADS[VERSION])
