"""The `encrypt`, `decrypt` and `passphrase` commands: a store's secrets encrypted, decrypted, rekeyed."""

from __future__ import annotations

import hmac
import os
import sys
from typing import TYPE_CHECKING

from .crypto import Cipher, derive_key, table_params, verify_key, new_encryption_table
from .errors import CredentialsFileError, UsageError
from .passphrase import (
    ENV_NEW_PASSPHRASE,
    ENV_PASSPHRASE,
    _cipher_and_source,
    _find_passphrase,
    _prompt_new,
    _Source,
    keyring_passphrase,
    keyring_store,
    run_passphrase_command,
    shown_command,
)

if TYPE_CHECKING:
    from .credentials import Credentials, FileStore


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
    salt, n, r, p = table_params(store.path, table)
    if not verify_key(Cipher(derive_key(printed, salt, n, r, p)), table):
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
